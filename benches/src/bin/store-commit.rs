//! `store-commit [--seconds S] [--executions N] [--threads T] [--events E] [--dir D]
//! [--json]`: durable state transitions per second through `RedbStore::submit` (group
//! commit).
//!
//! Models what the executor will do with a durable store: N logical executions, spread
//! over T submitter threads (like shards), each with at most one transition in flight: a
//! thread submits a transition for every execution it owns, then, each time an
//! acknowledgement comes back, records its latency and submits that execution's next
//! transition. A transition is one `Write::Journal` (40 bytes) and two `Write::Event`s
//! (~250 bytes of history JSON each; `--events`), as a Task state's step records. A write
//! counts once its acknowledgement has run, i.e. after its group's `fdatasync`.
//!
//! Prints transitions/s, commits/s, the mean group (submissions per commit), the commit
//! thread's busy share (how much of it inside redb's `commit`, how much on a CPU), the ack
//! latency (submit → ack) p50/p99/max from an hdrhistogram, and the disk's own fdatasync
//! latency measured before and after the run (what bounds one execution); `--json` prints
//! one JSON object with provenance instead (`results/store-commit.jsonl`, read in
//! `results/store-commit.md`). Guards the group commit: without it, throughput would be one
//! transition per fsync. The store lives in `--dir` (default: a fresh directory under the
//! system's temporary directory, removed at the end).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sfn::store::{CommitStats, ExecutionRecord, RecordStatus, RedbStore, Store, Write};
use sfn_benches::provenance;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    seconds: f64,
    warmup: f64,
    executions: usize,
    threads: usize,
    events: u32,
    dir: Option<PathBuf>,
    json: bool,
}

const USAGE: &str = "usage: store-commit [--seconds S (5)] [--warmup S (1)] [--executions N (64)] [--threads T (4)] [--events E (2)] [--dir DIR] [--json]";

fn parse_args() -> Args {
    let mut a = Args { seconds: 5.0, warmup: 1.0, executions: 64, threads: 4, events: 2, dir: None, json: false };
    let mut it = std::env::args().skip(1);
    let fail = |m: &str| -> ! {
        eprintln!("{m}\n{USAGE}");
        std::process::exit(2)
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--seconds" => a.seconds = value().parse().unwrap_or_else(|_| fail("--seconds: a number")),
            "--warmup" => a.warmup = value().parse().unwrap_or_else(|_| fail("--warmup: a number")),
            "--executions" => a.executions = value().parse().unwrap_or_else(|_| fail("--executions: a count")),
            "--threads" => a.threads = value().parse().unwrap_or_else(|_| fail("--threads: a count")),
            "--events" => a.events = value().parse().unwrap_or_else(|_| fail("--events: a count")),
            "--dir" => a.dir = Some(PathBuf::from(value())),
            "--json" => a.json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => fail(&format!("unknown argument {other:?}")),
        }
    }
    if a.executions == 0 || a.threads == 0 || a.seconds <= 0.0 {
        fail("--executions, --threads and --seconds must be positive");
    }
    a.threads = a.threads.min(a.executions);
    a
}

fn execution_arn(e: usize) -> String {
    format!("arn:aws:states:us-east-1:123456789012:execution:RiderPhotoProcessing:bench-{e:06}")
}

/// A journal entry of 40 bytes (what the executor appends per step: state index, outcome,
/// a digest of the result).
fn journal_entry(e: usize, seq: u32) -> Vec<u8> {
    let mut v = format!("step {seq:010} exec {e:06} ok ").into_bytes();
    v.resize(40, b'.');
    v
}

/// A history event of ~250 bytes, shaped like `GetExecutionHistory`'s.
fn event_json(e: usize, id: u32) -> Vec<u8> {
    format!(
        "{{\"timestamp\":\"2026-11-21T22:00:00.000Z\",\"type\":\"TaskStateEntered\",\"id\":{id},\"previousEventId\":{},\
         \"stateEnteredEventDetails\":{{\"name\":\"Face Detection\",\"input\":\"{{\\\"userId\\\":\\\"user_{e:06}\\\",\
         \\\"s3Bucket\\\":\\\"wildrydes\\\",\\\"s3Key\\\":\\\"1_happy_face.jpg\\\"}}\",\"inputDetails\":{{\"truncated\":false}}}}}}",
        id.saturating_sub(1)
    )
    .into_bytes()
}

fn transition(arn: &Arc<str>, e: usize, seq: u32, events: u32) -> Vec<Write> {
    let mut w = vec![Write::Journal { execution_arn: arn.clone(), seq, entry: journal_entry(e, seq) }];
    for k in 0..events {
        let id = 2 + (seq - 1) * events + k;
        w.push(Write::Event { execution_arn: arn.clone(), id, json: event_json(e, id) });
    }
    w
}

/// CPU time of this process's thread named `name` (`/proc/self/task/*/schedstat`: time on a
/// CPU, nanoseconds), or `None` off Linux.
fn thread_cpu_ns(name: &str) -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        if std::fs::read_to_string(dir.join("comm")).ok()?.trim_end() == name {
            let stat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            return stat.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

/// The disk's own durability latency beside the store: median of 50 `fdatasync`s of a
/// 4 KiB overwrite in `dir`, microseconds. On a shared disk this moves with the
/// neighbours' writes (0.15 to 4 ms on the project's VM), and it bounds what one execution
/// can do: one transition per fsync.
fn fsync_probe_us(dir: &std::path::Path) -> f64 {
    use std::io::{Seek, SeekFrom, Write as _};
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).expect("create the fsync probe file");
    let block = [0x5a_u8; 4096];
    let mut times = Vec::with_capacity(50);
    for _ in 0..50 {
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(&block).unwrap();
        let t = Instant::now();
        f.sync_data().expect("fdatasync");
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The commit thread's name as `/proc` shows it (15 bytes).
const COMMITTER: &str = "sfn-store-commi";

/// An acknowledgement as the submitting thread sees it.
struct Acked {
    local: usize,
    latency_ns: u64,
    ok: bool,
}

fn main() {
    let args = parse_args();
    let (dir, remove) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (std::env::temp_dir().join(format!("sfn-store-commit-{}", std::process::id())), true),
    };
    let _ = std::fs::create_dir_all(&dir);
    let fsync_before = fsync_probe_us(&dir);
    let store = Arc::new(RedbStore::open(&dir).unwrap_or_else(|e| {
        eprintln!("store-commit: {e}");
        std::process::exit(1)
    }));
    // The executions exist first (create_execution: record + journal entry 0 + event 1).
    let arns: Vec<Arc<str>> = (0..args.executions).map(|e| Arc::from(execution_arn(e))).collect();
    for (e, arn) in arns.iter().enumerate() {
        let record = ExecutionRecord {
            execution_arn: arn.to_string(),
            state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:RiderPhotoProcessing".to_owned(),
            name: format!("bench-{e:06}"),
            status: RecordStatus::Running,
            input: "{\"userId\":\"user_a\",\"s3Bucket\":\"wildrydes\",\"s3Key\":\"1_happy_face.jpg\"}".to_owned(),
            output: None,
            error: None,
            cause: None,
            start_date: 1_700_000_000_000_000_000,
            stop_date: None,
            seed: e as u64,
            definition_hash: "0f".repeat(32),
            started_by: None,
        };
        let first = vec![
            Write::Journal { execution_arn: arn.clone(), seq: 0, entry: journal_entry(e, 0) },
            Write::Event { execution_arn: arn.clone(), id: 1, json: event_json(e, 1) },
        ];
        store.create_execution(&record, first).expect("create");
    }

    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let transitions = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    let events = args.events;
    for t in 0..args.threads {
        let owned: Vec<(usize, Arc<str>)> =
            (t..args.executions).step_by(args.threads).map(|e| (e, arns[e].clone())).collect();
        let (store, measuring, stop, transitions, failures) =
            (store.clone(), measuring.clone(), stop.clone(), transitions.clone(), failures.clone());
        handles.push(
            std::thread::Builder::new()
                .name(format!("submitter-{t}"))
                .spawn(move || {
                    let mut hist = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).unwrap();
                    let (acks, acked) = crossbeam_channel::unbounded::<Acked>();
                    let mut next_seq = vec![1u32; owned.len()];
                    let submit = |local: usize, seq: u32| {
                        let (e, arn) = &owned[local];
                        let acks = acks.clone();
                        let sent = Instant::now();
                        store.submit(
                            transition(arn, *e, seq, events),
                            Box::new(move |r| {
                                let latency_ns = sent.elapsed().as_nanos() as u64;
                                let _ = acks.send(Acked { local, latency_ns, ok: r.is_ok() });
                            }),
                        );
                    };
                    for (local, seq) in next_seq.iter_mut().enumerate() {
                        submit(local, *seq);
                        *seq += 1;
                    }
                    let mut in_flight = owned.len();
                    while in_flight > 0 {
                        let a = acked.recv().expect("the store acknowledges every submission");
                        in_flight -= 1;
                        if !a.ok {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        if measuring.load(Ordering::Relaxed) {
                            transitions.fetch_add(1, Ordering::Relaxed);
                            hist.saturating_record(a.latency_ns);
                        }
                        if !stop.load(Ordering::Relaxed) {
                            submit(a.local, next_seq[a.local]);
                            next_seq[a.local] += 1;
                            in_flight += 1;
                        }
                    }
                    hist
                })
                .expect("spawn a submitter"),
        );
    }

    std::thread::sleep(Duration::from_secs_f64(args.warmup));
    let before: CommitStats = store.stats();
    let cpu_before = thread_cpu_ns(COMMITTER);
    let t0 = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let after = store.stats();
    let cpu = thread_cpu_ns(COMMITTER).zip(cpu_before).map(|(a, b)| (a - b) as f64 / 1e9 / elapsed);
    let load = provenance::load_average();
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).unwrap();
    for h in handles {
        hist.add(h.join().expect("submitter")).unwrap();
    }
    let n = transitions.load(Ordering::Relaxed);
    let commits = after.commits - before.commits;
    let submissions = after.submissions - before.submissions;
    let busy = (after.busy_nanos - before.busy_nanos) as f64 / 1e9 / elapsed;
    let in_commit = (after.commit_nanos - before.commit_nanos) as f64 / 1e9 / elapsed;
    let file_bytes = std::fs::metadata(store.path()).map(|m| m.len()).unwrap_or(0);
    let failed = failures.load(Ordering::Relaxed) + after.failed_commits;
    drop(store);
    let fsync_after = fsync_probe_us(&dir);
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }

    let tps = n as f64 / elapsed;
    let cps = commits as f64 / elapsed;
    let group = if commits == 0 { 0.0 } else { submissions as f64 / commits as f64 };
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
    if args.json {
        let line = serde_json::json!({
            "measure": "store_commit",
            "executions": args.executions,
            "threads": args.threads,
            "events_per_transition": args.events,
            "seconds": elapsed,
            "transitions": n,
            "transitions_per_s": tps.round(),
            "commits_per_s": cps.round(),
            "mean_group": (group * 10.0).round() / 10.0,
            "committer_busy": (busy * 1000.0).round() / 1000.0,
            "committer_in_redb_commit": (in_commit * 1000.0).round() / 1000.0,
            "committer_cpu": cpu.map(|c| (c * 1000.0).round() / 1000.0),
            "ack_latency_us": {"p50": us(0.5), "p99": us(0.99), "max": hist.max() as f64 / 1e3},
            "fsync_probe_us": {"before": fsync_before.round(), "after": fsync_after.round()},
            "failed": failed,
            "file_bytes": file_bytes,
            "date": provenance::utc_now(),
            "commit": provenance::git_commit(),
            "machine": {"cores": provenance::machine().cores, "cpu": provenance::machine().cpu},
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "loadavg_1m": load,
        });
        println!("{line}");
    } else {
        println!(
            "{} executions on {} threads, {elapsed:.1} s: {tps:.0} transitions/s ({:.0} writes/s), {cps:.0} commits/s, \
             mean group {group:.1}, commit thread busy {:.0}% (in redb's commit {:.0}%, on a CPU {}), \
             ack latency p50 {:.0} us p99 {:.0} us max {:.0} us; the disk's fdatasync {:.0} us before, {:.0} us after{}",
            args.executions,
            args.threads,
            (1 + args.events) as f64 * tps,
            busy * 100.0,
            in_commit * 100.0,
            cpu.map_or("?".to_owned(), |c| format!("{:.0}%", c * 100.0)),
            us(0.5),
            us(0.99),
            hist.max() as f64 / 1e3,
            fsync_before,
            fsync_after,
            if failed > 0 { format!(", {failed} FAILED") } else { String::new() },
        );
    }
    if failed > 0 {
        std::process::exit(1);
    }
}
