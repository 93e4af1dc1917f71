//! `wake-jitter [SECONDS] [SLEEP_US]`: the machine's noise floor for start latency. One
//! thread sleeps `SLEEP_US` (default 20 µs) over and over for `SECONDS` (default 5) and
//! prints how long each sleep really took: p50/p99/p99.9/p99.99/max and how many took over
//! 1 ms, once with the default timer slack and once with a slack of 1 ns. Every sender
//! sleep and every wake-up of a parked shard pays this, so a p99 start latency near these
//! figures measures the machine (a VM's idle vCPUs, the hypervisor), not the engine. It
//! also prints the CPU time the sleeping thread was charged per sleep (entering the sleep,
//! the timer, the switch back): what each sender sleep and shard park costs in CPU. With
//! `JSON=1` it prints one JSON line with provenance, for `results/machine.jsonl`.

use std::time::{Duration, Instant};

use sfn_benches::provenance;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: wake-jitter [SECONDS] [SLEEP_US]";
    let parse = |i: usize, default: f64| match args.get(i) {
        None => default,
        Some(s) => s.parse::<f64>().unwrap_or_else(|_| {
            eprintln!("{s:?} is not a number; {usage}");
            std::process::exit(2)
        }),
    };
    let (seconds, sleep_us) = (parse(1, 5.0), parse(2, 20.0));
    let sleep = Duration::from_nanos((sleep_us * 1e3) as u64);
    let default_slack = measure(seconds / 2.0, sleep);
    // The kernel may delay a sleeping thread's timer by up to its slack (50 µs by default)
    // to batch wake-ups; then measure with a slack of 1 ns.
    let low_slack = sfn_benches::set_timer_slack_ns(1).then(|| measure(seconds / 2.0, sleep));
    if std::env::var_os("JSON").is_some() {
        let line = provenance::stamp(
            serde_json::json!({
                "measure": "wake_jitter",
                "sleep_us": sleep_us,
                "seconds": seconds,
                "default_slack": default_slack.json(),
                "slack_1ns": low_slack.as_ref().map(Stats::json),
            }),
            format!("JSON=1 target/release/wake-jitter {seconds} {sleep_us}"),
        );
        println!("{line}");
        return;
    }
    println!("sleep {sleep_us} µs, default timer slack: {}", default_slack.text());
    match low_slack {
        Some(s) => println!("sleep {sleep_us} µs, timer slack 1 ns:   {}", s.text()),
        None => println!("(could not set the timer slack)"),
    }
}

struct Stats {
    sleeps: usize,
    /// The thread's CPU time over the run, per sleep, in microseconds.
    cpu_us_per_sleep: f64,
    /// Microseconds per quantile: p50, p99, p99.9, p99.99, max.
    q: [u64; 5],
    over_1ms: usize,
}

impl Stats {
    fn json(&self) -> serde_json::Value {
        let [p50, p99, p999, p9999, max] = self.q;
        serde_json::json!({"sleeps": self.sleeps, "cpu_us_per_sleep": (self.cpu_us_per_sleep * 10.0).round() / 10.0, "p50_us": p50, "p99_us": p99, "p999_us": p999,
            "p9999_us": p9999, "max_us": max, "over_1ms": self.over_1ms})
    }

    fn text(&self) -> String {
        let [p50, p99, p999, p9999, max] = self.q;
        format!(
            "{} sleeps, took p50 {p50} µs, p99 {p99} µs, p99.9 {p999} µs, p99.99 {p9999} µs, max {max} µs; {} over 1 ms; {:.1} µs CPU each",
            self.sleeps, self.over_1ms, self.cpu_us_per_sleep
        )
    }
}

fn measure(seconds: f64, sleep: Duration) -> Stats {
    let thread_cpu_ns = || sfn_benches::thread_cpu_ns().expect("the thread CPU clock");
    let cpu0 = thread_cpu_ns();
    let t0 = Instant::now();
    let mut took = Vec::new();
    while t0.elapsed().as_secs_f64() < seconds {
        let a = Instant::now();
        std::thread::sleep(sleep);
        took.push(a.elapsed().as_micros() as u64);
    }
    let cpu_us_per_sleep = (thread_cpu_ns() - cpu0) as f64 / 1e3 / took.len() as f64;
    took.sort_unstable();
    let at = |p: f64| took[((took.len() - 1) as f64 * p) as usize];
    Stats {
        sleeps: took.len(),
        cpu_us_per_sleep,
        q: [at(0.5), at(0.99), at(0.999), at(0.9999), took[took.len() - 1]],
        over_1ms: took.iter().filter(|&&t| t > 1000).count(),
    }
}
