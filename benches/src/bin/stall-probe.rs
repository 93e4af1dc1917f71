//! `stall-probe [SECONDS] [THREADS]`: how long the machine stops running busy threads. One
//! thread per core (or `THREADS`) reads the clock in a loop for `SECONDS` (default 5) and
//! records every gap over 50 µs: time it was not running (the hypervisor ran something else
//! on its vCPU, an interrupt, another process). A start that arrives while the thread that
//! would begin it is stopped waits for the rest of the stop, so per thread it prints the
//! p99 and p99.9 of that wait for an arrival at a random instant (the least `w` such that
//! stops longer than `w` cover at most 1% / 0.1% of the time past their first `w`): with
//! the cores busy, no engine on this machine gets a start-latency p99 below that at that
//! moment. Also: the stopped time, stops over 1 ms, the longest, and the machine's steal
//! time (`/proc/stat`) meanwhile. With `JSON=1` it prints one JSON line with provenance,
//! for `results/machine.jsonl`.

use std::time::{Duration, Instant};

use sfn_benches::provenance;

const GAP: Duration = Duration::from_micros(50);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: stall-probe [SECONDS] [THREADS]";
    let parse = |i: usize, default: f64| match args.get(i) {
        None => default,
        Some(s) => s.parse::<f64>().ok().filter(|v| *v > 0.0).unwrap_or_else(|| {
            eprintln!("{s:?} is not a positive number; {usage}");
            std::process::exit(2)
        }),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (seconds, threads) = (parse(1, 5.0), parse(2, cores as f64) as usize);
    let steal0 = sfn_benches::machine_steal_seconds();
    let run = Duration::from_secs_f64(seconds);
    let handles: Vec<_> = (0..threads).map(|_| std::thread::spawn(move || probe(run))).collect();
    let stats: Vec<Stats> = handles.into_iter().map(|h| h.join().expect("a probe thread")).collect();
    let steal = steal0.zip(sfn_benches::machine_steal_seconds()).map(|(a, b)| b - a);
    if std::env::var_os("JSON").is_some() {
        let line = provenance::stamp(
            serde_json::json!({
                "measure": "stall_probe",
                "seconds": seconds,
                "threads": stats.iter().map(Stats::json).collect::<Vec<_>>(),
                "steal_seconds": steal.map(|s| (s * 100.0).round() / 100.0),
            }),
            format!("JSON=1 target/release/stall-probe {seconds} {threads}"),
        );
        println!("{line}");
        return;
    }
    for (i, s) in stats.iter().enumerate() {
        println!("thread {i}: {}", s.text());
    }
    match steal {
        Some(s) => println!("steal (all cores, /proc/stat): {s:.2} s"),
        None => println!("steal: /proc/stat not readable"),
    }
}

struct Stats {
    seconds: f64,
    /// Every stop over `GAP`, nanoseconds.
    stops: Vec<u64>,
}

impl Stats {
    fn stopped_ms(&self) -> f64 {
        self.stops.iter().sum::<u64>() as f64 / 1e6
    }

    /// The least wait `w` (µs) such that an arrival at a random instant waits longer than
    /// `w` with probability at most `share`: the stops' parts past `w` cover that share.
    fn wait_quantile_us(&self, share: f64) -> f64 {
        let total = self.seconds * 1e9;
        let over = |w: u64| self.stops.iter().map(|&g| g.saturating_sub(w)).sum::<u64>() as f64 / total;
        let (mut lo, mut hi) = (0u64, self.stops.iter().copied().max().unwrap_or(0));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if over(mid) <= share {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo as f64 / 1e3
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "stopped_ms": (self.stopped_ms() * 10.0).round() / 10.0,
            "stops_over_1ms": self.stops.iter().filter(|&&g| g > 1_000_000).count(),
            "longest_us": self.stops.iter().max().map_or(0, |g| g / 1000),
            "arrival_wait_p99_us": self.wait_quantile_us(0.01).round(),
            "arrival_wait_p999_us": self.wait_quantile_us(0.001).round(),
        })
    }

    fn text(&self) -> String {
        format!(
            "stopped {:.1} ms in {} stops over 50 µs ({} over 1 ms, longest {} µs); an arrival at a random instant waits p99 {:.0} µs, p99.9 {:.0} µs",
            self.stopped_ms(),
            self.stops.len(),
            self.stops.iter().filter(|&&g| g > 1_000_000).count(),
            self.stops.iter().max().map_or(0, |g| g / 1000),
            self.wait_quantile_us(0.01),
            self.wait_quantile_us(0.001),
        )
    }
}

fn probe(run: Duration) -> Stats {
    let t0 = Instant::now();
    let mut last = t0;
    let mut stops = Vec::new();
    loop {
        let now = Instant::now();
        let gap = now - last;
        if gap > GAP {
            stops.push(gap.as_nanos() as u64);
        }
        last = now;
        if now - t0 >= run {
            return Stats { seconds: (now - t0).as_secs_f64(), stops };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arrival_wait_counts_only_the_part_of_a_stop_past_it() {
        // One 2-ms stop in a second: an arrival lands in it 0.2% of the time, and waits
        // more than 1 ms 0.1% of the time.
        let s = Stats { seconds: 1.0, stops: vec![2_000_000, 60_000] };
        assert_eq!(s.wait_quantile_us(0.01), 0.0);
        assert_eq!(s.wait_quantile_us(0.001), 1000.0);
        assert!((s.stopped_ms() - 2.06).abs() < 1e-9);
        let none = Stats { seconds: 1.0, stops: Vec::new() };
        assert_eq!(none.wait_quantile_us(0.01), 0.0);
    }
}
