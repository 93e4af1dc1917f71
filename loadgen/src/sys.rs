//! `sys`: what the OS says about this process: CPU time and resident memory (Linux
//! `/proc`; `None` elsewhere) and a thread's CPU time (its CPU clock); and the settings
//! loadgen changes: transparent huge pages for the process, the sender's timer slack.
//!
//! Input: `/proc/self/*`, `/proc/stat`, the thread CPU clock. Output: numbers. Never
//! touches: anything else.

/// CPU time (user + system) of the whole process, every thread, in seconds. `/proc`
/// counts in USER_HZ, which Linux fixes at 100 for user space: 10 ms resolution.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_from_stat(&stat)
}

/// Machine-wide steal time (shared with `stall-probe`).
pub use sfn_benches::machine_steal_seconds;

/// Sets the calling thread's timer slack (shared with `wake-jitter`).
pub use sfn_benches::set_timer_slack_ns;

/// CPU time of the calling thread, in seconds (exact: the thread's CPU clock, the same
/// reading `wake-jitter` takes).
pub fn thread_cpu_seconds() -> Option<f64> {
    sfn_benches::thread_cpu_ns().map(|ns| ns as f64 / 1e9)
}

/// utime + stime from a `stat` line. Fields after the command name (which may contain
/// spaces, hence the last ')'): state is field 3, utime 14, stime 15.
fn cpu_from_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Resident memory now (`VmRSS`), bytes.
pub fn rss_bytes() -> Option<u64> {
    status_kib("VmRSS:").map(|k| k * 1024)
}

/// Peak resident memory of the process so far (`VmHWM`), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    status_kib("VmHWM:").map(|k| k * 1024)
}

/// Hands the calling thread's free pages back to the OS (mimalloc keeps a thread's freed
/// pages until that thread collects). Called before reading RSS after a wave, so the
/// figure shows what is still in use, not what the allocator has cached.
pub fn release_free_memory() {
    // SAFETY: mi_collect takes no pointer and may be called on any thread.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`, which
/// overrides the allocator's `madvise(MADV_HUGEPAGE)`); true when the kernel agreed.
///
/// Why: mimalloc asks for huge pages for its arenas, and the first touch of each 2 MiB page
/// zeroes it while the faulting thread waits. While parked executions accumulate (the first
/// second of `mixed`, whose Waits hold 15,000 executions), shards fault in fresh arena
/// memory and stalled for 6–24 ms at a time on this project's 2-vCPU machine (perf:
/// `clear_page_erms` under `do_huge_pmd_anonymous_page`), which alone took mixed's p99
/// start latency from ~0.6 ms to 4–9 ms. Latency-sensitive servers (Redis, databases)
/// recommend the same. `--thp` leaves them on.
pub fn disable_transparent_huge_pages() -> bool {
    // SAFETY: prctl with PR_SET_THP_DISABLE reads only its integer arguments.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0
    }
    #[cfg(not(target_os = "linux"))]
    false
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_spaces_in_the_name_parse() {
        let line = "123 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_from_stat(line), Some(3.0));
        assert_eq!(cpu_from_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu_figures_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes().unwrap() > 0);
            assert!(peak_rss_bytes().unwrap() >= rss_bytes().unwrap() / 2);
            assert!(process_cpu_seconds().is_some());
        }
    }
}
