//! `report`: the verdict of a run and its two renderings (one JSON object, a human
//! summary).
//!
//! Input: a [`RunResult`] from the driver and the [`Criteria`] to judge it by. Output: the
//! verdict with every reason it failed, JSON, text. Never touches: the target, clocks.
//!
//! The rules (`check-rate`; a sweep point uses the same plus "nothing throttled"):
//! - the achieved start rate is within `rate_tolerance` (1%) of the target rate;
//! - nothing was lost: every accepted start reached a final status (SUCCEEDED, FAILED,
//!   TIMED_OUT) before the drain deadline; an execution abandoned at shutdown is lost;
//! - p99 start latency is under the bound (1 ms): from each start's intended send time to
//!   the execution beginning on the target (for the embedded engine: a shard took it from
//!   its inbox and entered its first state);
//! - a built-in scenario's executions all SUCCEED (their definitions cannot fail).

use serde_json::{json, Value as Json};

use crate::run::RunResult;
use sfn_benches::provenance;

/// What a run must meet.
#[derive(Clone, Copy, Debug)]
pub struct Criteria {
    /// Relative: 0.01 is 1%.
    pub rate_tolerance: f64,
    pub p99_bound_us: f64,
    /// Every execution must succeed (built-in scenarios).
    pub all_succeed: bool,
    /// Throttled starts fail the run (sweep points).
    pub no_throttling: bool,
}

/// PASS, or FAIL with the reasons.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn pass(&self) -> bool {
        self.failures.is_empty()
    }
    pub fn word(&self) -> &'static str {
        if self.pass() {
            "PASS"
        } else {
            "FAIL"
        }
    }
}

/// Judges a run. Pure: the same numbers always give the same verdict.
pub fn judge(r: &RunResult, c: &Criteria) -> Verdict {
    let mut failures = Vec::new();
    if let Some(target) = r.target_rate {
        let off = (r.achieved_start_rate() - target).abs() / target;
        if off > c.rate_tolerance {
            failures.push(format!(
                "achieved start rate {:.0}/s is {:.2}% off the target {target:.0}/s (tolerance {:.2}%)",
                r.achieved_start_rate(),
                off * 100.0,
                c.rate_tolerance * 100.0
            ));
        }
    }
    if r.lost() > 0 {
        failures
            .push(format!("{} accepted start(s) lost: they reached no final status by the drain deadline", r.lost()));
    }
    let p99 = r.start_latency_us(0.99);
    if r.figures.start_latency_ns.is_empty() {
        failures.push("no execution ended, so there is no start latency to judge".into());
    } else if p99 >= c.p99_bound_us {
        failures.push(format!("p99 start latency {p99:.1} µs is not under the bound {:.1} µs", c.p99_bound_us));
    }
    if c.all_succeed && r.figures.failed + r.figures.timed_out > 0 {
        failures.push(format!(
            "{} execution(s) FAILED and {} TIMED_OUT; every execution of a built-in scenario succeeds",
            r.figures.failed, r.figures.timed_out
        ));
    }
    if c.no_throttling && r.throttled > 0 {
        failures.push(format!("{} start(s) throttled", r.throttled));
    }
    if r.refused > 0 {
        failures.push(format!("{} start(s) refused: {}", r.refused, r.first_refusal.as_deref().unwrap_or("")));
    }
    Verdict { failures }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The JSON summary: the fields first, then what explains them, then provenance.
pub fn to_json(kind: &str, r: &RunResult, c: &Criteria, v: &Verdict) -> Json {
    let sl = |q| round1(r.start_latency_us(q));
    let du = |q| round1(r.duration_us(q));
    let machine = provenance::machine();
    let mut j = json!({
        "check": kind,
        "target_rate": r.target_rate,
        "achieved_start_rate": r.achieved_start_rate().round(),
        "accepted": r.accepted,
        "throttled": r.throttled,
        "succeeded": r.figures.succeeded,
        "failed": r.figures.failed,
        "timed_out": r.figures.timed_out,
        "lost": r.lost(),
        "rerun": r.figures.rerun,
        "start_latency_us": {"p50": sl(0.5), "p99": sl(0.99), "p999": sl(0.999), "max": round1(r.figures.start_latency_ns.max() as f64 / 1e3)},
        "duration_us": {"p50": du(0.5), "p99": du(0.99), "max": round1(r.figures.duration_ns.max() as f64 / 1e3)},
        "cpu_seconds": r.cpu_seconds.map(|c| (c * 100.0).round() / 100.0),
        "sender_cpu_seconds": r.sender_cpu_seconds.map(|c| (c * 100.0).round() / 100.0),
        "peak_rss_bytes": r.peak_rss_bytes,
        "verdict": v.word(),
        "failures": v.failures,
        "criteria": {
            "rate_tolerance": c.rate_tolerance,
            "p99_start_latency_bound_us": c.p99_bound_us,
            "all_succeed": c.all_succeed,
            "no_throttling": c.no_throttling,
        },
        "start_latency_definition": "from the start's intended send time to the execution beginning on the target (embedded engine: a shard took it from its inbox and entered its first state)",
        "scenario": r.scenario,
        "target": r.target,
        "shards": r.shards,
        "arrivals": r.arrivals,
        "seed": r.seed,
        "duration_s": r.duration_s,
        "warmup_s": r.warmup_s,
        "offered": r.offered,
        "refused": r.refused,
        "aborted": r.figures.aborted,
        "transitions": r.figures.transitions,
        "send_window_s": (r.send_window_s * 1e6).round() / 1e6,
        "send_interval_us": r.send_interval_us,
        "sender_wakeups": r.sender_wakeups,
        "sender_late_us": {"p99": round1(r.late_ns.value_at_quantile(0.99) as f64 / 1e3), "max": round1(r.late_ns.max() as f64 / 1e3)},
        "drain_s": (r.drain_s * 1e3).round() / 1e3,
        "cpu_cores": r.cpu_seconds.map(|c| (c / r.wall_s * 1000.0).round() / 1000.0),
        "date": provenance::utc_now(),
        "commit": provenance::git_commit(),
        "machine": {"cores": machine.cores, "cpu": machine.cpu},
        "loadavg_1m": provenance::load_average(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    });
    // Outside the literal: more keys there pass serde_json's macro recursion limit.
    j["steal_seconds"] = json!(r.steal_seconds.map(|c| (c * 100.0).round() / 100.0));
    j["start_batch"] = json!(r.start_batch);
    j["park_spin_us"] = json!(r.park_spin_us);
    j
}

/// The human summary.
pub fn to_text(kind: &str, r: &RunResult, c: &Criteria, v: &Verdict) -> String {
    let mut s = String::new();
    let machine = provenance::machine();
    let load = provenance::load_average().map_or("unknown".into(), |l| l.to_string());
    s += &format!("loadgen {kind}: {} on the {}\n", r.scenario, r.target);
    s += &format!("machine        {} cores, {} (load average {load})\n", machine.cores, machine.cpu);
    if let Some(t) = r.target_rate {
        s += &format!(
            "rate           target {}/s ({} arrivals), achieved {}/s over {:.3} s\n",
            thousands(t.round() as u64),
            r.arrivals,
            thousands(r.achieved_start_rate().round() as u64),
            r.send_window_s.max(r.duration_s)
        );
    }
    s += &format!(
        "starts         {} offered, {} accepted, {} throttled{}\n",
        thousands(r.offered),
        thousands(r.accepted),
        thousands(r.throttled),
        if r.refused > 0 { format!(", {} refused", r.refused) } else { String::new() }
    );
    s += &format!(
        "ended          {} succeeded, {} failed, {} timed out; {} lost, {} re-run (drained in {:.2} s)\n",
        thousands(r.figures.succeeded),
        thousands(r.figures.failed),
        thousands(r.figures.timed_out),
        thousands(r.lost()),
        r.figures.rerun,
        r.drain_s
    );
    s += &format!(
        "start latency  p50 {}  p99 {}  p99.9 {}  max {}   (intended send → execution begun)\n",
        us(r.start_latency_us(0.5)),
        us(r.start_latency_us(0.99)),
        us(r.start_latency_us(0.999)),
        us(r.figures.start_latency_ns.max() as f64 / 1e3)
    );
    s += &format!(
        "duration       p50 {}  p99 {}  max {}   (accepted → ended)\n",
        us(r.duration_us(0.5)),
        us(r.duration_us(0.99)),
        us(r.figures.duration_ns.max() as f64 / 1e3)
    );
    s += &format!(
        "sender         p99 {} late, max {} late; up to {} start{} per call, a wake-up at most every {} µs\n",
        us(r.late_ns.value_at_quantile(0.99) as f64 / 1e3),
        us(r.late_ns.max() as f64 / 1e3),
        r.start_batch,
        if r.start_batch == 1 { "" } else { "s" },
        r.send_interval_us
    );
    if let Some(cpu) = r.cpu_seconds {
        s += &format!("cpu            {cpu:.2} s ({:.2} cores", cpu / r.wall_s);
        if let Some(sender) = r.sender_cpu_seconds {
            s += &format!("; the sender {sender:.2} s");
        }
        s += ")";
        if let Some(steal) = r.steal_seconds.filter(|&x| x > 0.0) {
            s += &format!(", {steal:.2} s stolen from the machine by its hypervisor");
        }
        if let Some(p) = r.peak_rss_bytes {
            s += &format!(", peak RSS {:.1} MiB", p as f64 / (1 << 20) as f64);
        }
        s += "\n";
    }
    s += &format!(
        "criteria       rate within {:.1}%, nothing lost, p99 start latency < {} µs{}{}\n",
        c.rate_tolerance * 100.0,
        c.p99_bound_us,
        if c.all_succeed { ", every execution succeeds" } else { "" },
        if c.no_throttling { ", nothing throttled" } else { "" }
    );
    s += &format!("verdict        {}\n", v.word());
    for f in &v.failures {
        s += &format!("  - {f}\n");
    }
    s
}

pub fn us(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1} ms", x / 1000.0)
    } else {
        format!("{x:.1} µs")
    }
}

pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{histogram, Figures};

    fn result(accepted: u64, succeeded: u64, p99_us: u64, send_window_s: f64) -> RunResult {
        let mut lat = histogram();
        // 99 fast starts and one at `p99_us`: p99 is the fast one unless many are slow.
        for i in 0..succeeded {
            lat.record(if i % 100 < 98 { 20_000 } else { p99_us * 1000 }).unwrap();
        }
        let mut dur = histogram();
        dur.record(50_000).unwrap();
        RunResult {
            scenario: "rider".into(),
            target: "embedded engine, 2 shards".into(),
            shards: 2,
            park_spin_us: 0,
            arrivals: "constant",
            seed: 1,
            target_rate: Some(100_000.0),
            duration_s: 1.0,
            warmup_s: 0.0,
            offered: 100_000,
            accepted,
            throttled: 100_000 - accepted,
            refused: 0,
            first_refusal: None,
            send_window_s,
            send_interval_us: 100,
            start_batch: 64,
            sender_wakeups: 1_000,
            late_ns: histogram(),
            figures: Figures {
                begun: accepted,
                succeeded,
                failed: 0,
                timed_out: 0,
                aborted: 0,
                rerun: 0,
                transitions: succeeded * 6,
                start_latency_ns: lat,
                duration_ns: dur,
            },
            drain_s: 0.01,
            wall_s: 1.01,
            cpu_seconds: Some(0.5),
            sender_cpu_seconds: Some(0.1),
            steal_seconds: Some(0.0),
            peak_rss_bytes: Some(50 << 20),
        }
    }

    const CHECK_RATE: Criteria =
        Criteria { rate_tolerance: 0.01, p99_bound_us: 1000.0, all_succeed: true, no_throttling: false };

    #[test]
    fn a_run_on_rate_with_nothing_lost_and_fast_starts_passes() {
        let r = result(100_000, 100_000, 300, 1.0);
        let v = judge(&r, &CHECK_RATE);
        assert!(v.pass(), "{v:?}");
        assert_eq!(v.word(), "PASS");
    }

    #[test]
    fn each_rule_fails_on_its_own_and_says_why() {
        // 1.5% of the starts throttled: the achieved rate is 1.5% low.
        let v = judge(&result(98_500, 98_500, 300, 1.0), &CHECK_RATE);
        assert_eq!(v.failures.len(), 1, "{v:?}");
        assert!(v.failures[0].contains("1.50% off"), "{v:?}");
        // A sender 2% late: same count, longer window.
        let v = judge(&result(100_000, 100_000, 300, 1.02), &CHECK_RATE);
        assert!(v.failures[0].contains("off the target"), "{v:?}");
        // Within 1%: throttling alone is not a check-rate failure...
        assert!(judge(&result(99_500, 99_500, 300, 1.0), &CHECK_RATE).pass());
        // ... but is for a sweep point.
        let sweep = Criteria { no_throttling: true, ..CHECK_RATE };
        assert!(judge(&result(99_500, 99_500, 300, 1.0), &sweep).failures[0].contains("500 start(s) throttled"));
        // Lost: accepted but never ended.
        let v = judge(&result(100_000, 99_990, 300, 1.0), &CHECK_RATE);
        assert!(v.failures.iter().any(|f| f.starts_with("10 accepted start(s) lost")), "{v:?}");
        // p99 over the bound: 2% of the starts are slow.
        let v = judge(&result(100_000, 100_000, 1500, 1.0), &CHECK_RATE);
        assert!(v.failures[0].starts_with("p99 start latency 15"), "{v:?}");
        // A failed execution of a built-in scenario.
        let mut r = result(100_000, 99_999, 300, 1.0);
        r.figures.failed = 1;
        let v = judge(&r, &CHECK_RATE);
        assert!(v.failures[0].contains("1 execution(s) FAILED"), "{v:?}");
        assert!(judge(&r, &Criteria { all_succeed: false, ..CHECK_RATE }).pass());
    }

    #[test]
    fn the_json_summary_has_the_documented_fields() {
        let r = result(100_000, 100_000, 300, 1.0);
        let v = judge(&r, &CHECK_RATE);
        let j = to_json("check-rate", &r, &CHECK_RATE, &v);
        for key in [
            "target_rate",
            "achieved_start_rate",
            "accepted",
            "throttled",
            "succeeded",
            "failed",
            "timed_out",
            "lost",
            "rerun",
            "cpu_seconds",
            "sender_cpu_seconds",
            "steal_seconds",
            "peak_rss_bytes",
            "verdict",
            "date",
            "commit",
            "machine",
            "command",
            "loadavg_1m",
        ] {
            assert!(j.get(key).is_some(), "missing {key}: {j}");
        }
        for q in ["p50", "p99", "p999", "max"] {
            assert!(j["start_latency_us"][q].is_number(), "start_latency_us.{q}");
        }
        for q in ["p50", "p99", "max"] {
            assert!(j["duration_us"][q].is_number(), "duration_us.{q}");
        }
        assert_eq!(j["verdict"], "PASS");
        assert_eq!(j["achieved_start_rate"], 100_000.0);
        // 20 µs, within the histograms' 1% precision.
        assert!((j["start_latency_us"]["p50"].as_f64().unwrap() - 20.0).abs() <= 0.2, "{j}");
        assert_eq!(j["lost"], 0);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(100), "100");
    }
}
