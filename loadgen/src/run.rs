//! `run`: the open-loop driver: sends starts on schedule, watches, drains, measures.
//!
//! Input: a [`Target`] with a registered scenario, a [`LoadSpec`] (rate, duration,
//! arrivals, seed, warm-up, drain deadline), a [`Progress`] sink. Output: a [`RunResult`]
//! (counts, histograms, CPU time, memory). Never touches: verdicts (`report`).
//!
//! One sender thread walks the [`Schedule`]. It sleeps until the next intended send time
//! and then sends every start that is due, each with its intended time; it never waits for an
//! execution to finish, so a slow target shows up as start latency and backlog, not as a
//! lower offered rate. The thread sleeps rather than spins: on a 2-core machine the
//! shards need the cores, so starts go out in bursts, at most one wake-up per
//! `send_interval` (default 100 µs) plus the OS's timer lateness (about 50 µs on Linux),
//! and that lateness is in the start latency, honestly. Each wake-up of the sender takes
//! a core from a shard (two context switches and a colder cache for it), so fewer,
//! larger bursts leave the target more of the machine. A burst's starts are gathered per
//! machine and handed over `start_batch` at a time ([`Target::start_many`]: one
//! `Engine::start_batch` call on the embedded engine). The
//! calling thread reports progress meanwhile. After the last start, the run waits (up to
//! the drain deadline) for every accepted start to reach a final status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::schedule::{Arrivals, Mix, Schedule};
use crate::sys;
use crate::target::{histogram, Figures, Tally, Target};

/// What load to offer.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Starts per second.
    pub rate: f64,
    /// Seconds of measured load.
    pub duration_s: f64,
    pub arrivals: Arrivals,
    pub seed: u64,
    /// Seconds of the same load before measuring, on separately registered machines (so
    /// none of its figures mix with the measured ones); drained before measuring.
    pub warmup_s: f64,
    /// How long to wait after the last start for every execution to end.
    pub drain: Duration,
    /// The sender thread's timer slack, nanoseconds (0: the kernel's default).
    pub sender_timer_slack_ns: u64,
    /// The least time between two of the sender's wake-ups: what is due by then goes out
    /// in one burst, each start still counted from its own intended time.
    pub send_interval: Duration,
    /// Most starts of one machine handed to the target in one call
    /// ([`Target::start_many`]); 1: one call per start.
    pub start_batch: usize,
}

/// Everything a run measured.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub scenario: String,
    pub target: String,
    pub shards: usize,
    /// How long the target's shards look for work before parking, µs
    /// ([`crate::target::EmbeddedConfig::park_spin`]; 0: they park at once).
    pub park_spin_us: u64,
    pub arrivals: &'static str,
    pub seed: u64,
    pub target_rate: Option<f64>,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Starts the schedule offered.
    pub offered: u64,
    pub accepted: u64,
    pub throttled: u64,
    pub refused: u64,
    pub first_refusal: Option<String>,
    /// From the origin to the last start actually sent, seconds.
    pub send_window_s: f64,
    /// The least time between the sender's wake-ups ([`LoadSpec::send_interval`]), µs.
    pub send_interval_us: u64,
    /// Times the sender slept and woke during the measured load.
    pub sender_wakeups: u64,
    /// [`LoadSpec::start_batch`].
    pub start_batch: usize,
    /// How late the sender was for each start (actual − intended, the actual time read
    /// every `READ_CLOCK_EVERY` starts of a burst), nanoseconds.
    pub late_ns: Histogram<u64>,
    /// The target's figures after the drain.
    pub figures: Figures,
    /// From the last start to the last execution ending (or the deadline), seconds.
    pub drain_s: f64,
    /// From the origin to the end of the drain, seconds.
    pub wall_s: f64,
    /// Process CPU time over `wall_s` (sender, target, everything), seconds.
    pub cpu_seconds: Option<f64>,
    /// The sender thread's share of it (its sleeps and wake-ups, and each start's call
    /// into the target), seconds.
    pub sender_cpu_seconds: Option<f64>,
    /// CPU time the hypervisor took from this machine's vCPUs over `wall_s` (all of
    /// them, not only this process's), seconds: see [`sys::machine_steal_seconds`].
    pub steal_seconds: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
}

impl RunResult {
    /// Accepted starts per second over the run's send window (at least the duration): a
    /// sender falling behind stretches the window and lowers the rate.
    pub fn achieved_start_rate(&self) -> f64 {
        self.accepted as f64 / self.send_window_s.max(self.duration_s)
    }

    /// Accepted starts that reached no final status.
    pub fn lost(&self) -> u64 {
        self.accepted.saturating_sub(self.figures.finished())
    }

    pub fn start_latency_us(&self, q: f64) -> f64 {
        self.figures.start_latency_ns.value_at_quantile(q) as f64 / 1e3
    }

    pub fn duration_us(&self, q: f64) -> f64 {
        self.figures.duration_ns.value_at_quantile(q) as f64 / 1e3
    }
}

/// What the progress display is told, about twice a second.
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    pub phase: &'static str,
    pub elapsed_s: f64,
    pub total_s: f64,
    pub issued: u64,
    pub offered: u64,
    pub accepted: u64,
    pub throttled: u64,
    pub ended: u64,
    /// Starts per second over the last interval.
    pub rate: f64,
    /// p99 start latency of the executions ended so far, µs.
    pub p99_us: f64,
}

/// Where progress goes: a bar on a terminal, lines otherwise, or nowhere.
pub trait Progress {
    fn tick(&mut self, t: &Tick);
    fn done(&mut self);
}

/// Counters the sender publishes.
#[derive(Default)]
struct Shared {
    issued: AtomicU64,
    accepted: AtomicU64,
    throttled: AtomicU64,
}

/// Starts the sender sends between two readings of the clock within a burst.
const READ_CLOCK_EVERY: u32 = 8;

/// What the sender thread returns.
struct Sent {
    tally: Tally,
    late_ns: Histogram<u64>,
    last_sent: Duration,
    /// Times the sender slept and woke.
    wakeups: u64,
    /// The sender thread's CPU time, seconds.
    cpu_seconds: Option<f64>,
}

/// Runs the warm-up (if any) and the measured load on `machines` (and `warmup` machines),
/// drains, and returns what was measured.
pub fn run<T: Target>(
    target: &T,
    machines: &[T::Machine],
    warmup: &[T::Machine],
    weights: &[u32],
    spec: &LoadSpec,
    progress: &mut dyn Progress,
) -> RunResult {
    if spec.warmup_s > 0.0 && !warmup.is_empty() {
        let w = LoadSpec { duration_s: spec.warmup_s, seed: spec.seed ^ 0x5741_524d, ..spec.clone() };
        let (sent, _) = phase(target, warmup, weights, &w, "warm-up", progress);
        drain(target, warmup, sent.tally.accepted, spec.drain, "warm-up drain", progress);
    }
    let cpu0 = sys::process_cpu_seconds();
    let steal0 = sys::machine_steal_seconds();
    let (sent, origin) = phase(target, machines, weights, spec, "load", progress);
    let drained_from = Instant::now();
    drain(target, machines, sent.tally.accepted, spec.drain, "drain", progress);
    let drain_s = drained_from.elapsed().as_secs_f64();
    let wall_s = origin.elapsed().as_secs_f64();
    let cpu_seconds = cpu0.zip(sys::process_cpu_seconds()).map(|(a, b)| b - a);
    let steal_seconds = steal0.zip(sys::machine_steal_seconds()).map(|(a, b)| b - a);
    progress.done();
    let offered = Schedule::new(spec.arrivals, spec.rate, spec.duration_s, spec.seed).total();
    RunResult {
        scenario: String::new(),
        target: target.describe(),
        shards: 0,
        park_spin_us: 0,
        arrivals: match spec.arrivals {
            Arrivals::Constant => "constant",
            Arrivals::Poisson => "poisson",
        },
        seed: spec.seed,
        target_rate: Some(spec.rate),
        duration_s: spec.duration_s,
        warmup_s: spec.warmup_s,
        offered,
        accepted: sent.tally.accepted,
        throttled: sent.tally.throttled,
        refused: sent.tally.refused,
        first_refusal: sent.tally.first_refusal,
        send_window_s: sent.last_sent.as_secs_f64(),
        send_interval_us: spec.send_interval.as_micros() as u64,
        start_batch: spec.start_batch,
        sender_wakeups: sent.wakeups,
        late_ns: sent.late_ns,
        figures: target.figures(machines),
        drain_s,
        wall_s,
        cpu_seconds,
        sender_cpu_seconds: sent.cpu_seconds,
        steal_seconds,
        peak_rss_bytes: sys::peak_rss_bytes(),
    }
}

/// One phase of load: the sender on its own thread, progress on this one.
fn phase<T: Target>(
    target: &T,
    machines: &[T::Machine],
    weights: &[u32],
    spec: &LoadSpec,
    name: &'static str,
    progress: &mut dyn Progress,
) -> (Sent, Instant) {
    let shared = Shared::default();
    let schedule = Schedule::new(spec.arrivals, spec.rate, spec.duration_s, spec.seed);
    let offered = schedule.total();
    let origin = Instant::now() + Duration::from_millis(1);
    let sent = std::thread::scope(|s| {
        let sender = std::thread::Builder::new()
            .name("loadgen-sender".into())
            .spawn_scoped(s, || {
                if spec.sender_timer_slack_ns > 0 && !sys::set_timer_slack_ns(spec.sender_timer_slack_ns) {
                    eprintln!("loadgen: the kernel refused the sender's timer slack; it keeps the default");
                }
                send(target, machines, weights, schedule, origin, (spec.send_interval, spec.start_batch), &shared)
            })
            .expect("the OS starts the sender thread");
        let mut last = (Instant::now(), 0u64);
        while !sender.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
            if last.0.elapsed() >= Duration::from_millis(500) {
                let issued = shared.issued.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (issued - last.1) as f64 / (now - last.0).as_secs_f64();
                last = (now, issued);
                let f = target.figures(machines);
                progress.tick(&Tick {
                    phase: name,
                    elapsed_s: now.saturating_duration_since(origin).as_secs_f64(),
                    total_s: spec.duration_s,
                    issued,
                    offered,
                    accepted: shared.accepted.load(Ordering::Relaxed),
                    throttled: shared.throttled.load(Ordering::Relaxed),
                    ended: f.finished() + f.aborted,
                    rate,
                    p99_us: f.start_latency_ns.value_at_quantile(0.99) as f64 / 1e3,
                });
            }
        }
        sender.join().expect("the sender thread does not panic")
    });
    (sent, origin)
}

/// The sender: every start at (or as soon as possible after) its intended time. The
/// starts due at a wake-up are gathered per machine and handed over `start_batch` at a
/// time, and before the sender sleeps or reads the clock again.
fn send<T: Target>(
    target: &T,
    machines: &[T::Machine],
    weights: &[u32],
    mut schedule: Schedule,
    origin: Instant,
    (send_interval, start_batch): (Duration, usize),
    shared: &Shared,
) -> Sent {
    let cpu0 = sys::thread_cpu_seconds();
    let mut mix = Mix::new(weights);
    let mut out = Sent {
        tally: Tally::default(),
        late_ns: histogram(),
        last_sent: Duration::ZERO,
        wakeups: 0,
        cpu_seconds: None,
    };
    let start_batch = start_batch.max(1);
    // Due starts not handed over yet, per machine.
    let mut gathered: Vec<Vec<Instant>> = machines.iter().map(|_| Vec::with_capacity(start_batch)).collect();
    let flush = |gathered: &mut Vec<Vec<Instant>>, out: &mut Sent| {
        for (m, due) in gathered.iter_mut().enumerate() {
            if !due.is_empty() {
                target.start_many(&machines[m], due, &mut out.tally);
                due.clear();
            }
        }
    };
    let mut now = Instant::now();
    let mut woke = now;
    let mut since_read = 0u32;
    while let Some(at) = schedule.next_at() {
        let due = origin + Duration::from_nanos(at);
        let mut slept = false;
        if due > now {
            // What is due goes out before the sender reads the clock or sleeps.
            flush(&mut gathered, &mut out);
            // `now` may be up to `READ_CLOCK_EVERY` starts old: read it before deciding
            // to sleep.
            now = Instant::now();
            since_read = 0;
            if due > now {
                // No sooner than `send_interval` after the last wake-up: everything due by
                // then goes out in this burst.
                let wake = due.max(woke + send_interval);
                std::thread::sleep(wake - now);
                now = Instant::now();
                woke = now;
                slept = true;
                out.wakeups += 1;
            }
        }
        let late = now.saturating_duration_since(due);
        let _ = out.late_ns.record(late.as_nanos() as u64);
        let m = mix.pick();
        gathered[m].push(due);
        if gathered[m].len() >= start_batch {
            target.start_many(&machines[m], &gathered[m], &mut out.tally);
            gathered[m].clear();
        }
        // Publish after a sleep or every 64 starts (a shared cache line written per start
        // would cost the sender more than the start itself).
        let issued = schedule.issued();
        if slept || issued.is_multiple_of(64) {
            shared.issued.store(issued, Ordering::Relaxed);
            shared.accepted.store(out.tally.accepted, Ordering::Relaxed);
            shared.throttled.store(out.tally.throttled, Ordering::Relaxed);
        }
        // Starts sent in a burst are each later than the one before; the clock is read
        // every few starts (each read is a sizeable share of a start's cost here), so
        // `late_ns` may under-state a burst's lateness by that many starts' time. Start
        // latency is unaffected: the target counts it from `due`.
        since_read += 1;
        if since_read == READ_CLOCK_EVERY {
            now = Instant::now();
            since_read = 0;
        }
    }
    flush(&mut gathered, &mut out);
    now = Instant::now();
    out.last_sent = now.saturating_duration_since(origin);
    out.cpu_seconds = cpu0.zip(sys::thread_cpu_seconds()).map(|(a, b)| b - a);
    shared.issued.store(schedule.issued(), Ordering::Relaxed);
    shared.accepted.store(out.tally.accepted, Ordering::Relaxed);
    shared.throttled.store(out.tally.throttled, Ordering::Relaxed);
    out
}

/// Waits until `accepted` executions of `machines` have ended, or `deadline` passes.
fn drain<T: Target>(
    target: &T,
    machines: &[T::Machine],
    accepted: u64,
    deadline: Duration,
    name: &'static str,
    progress: &mut dyn Progress,
) {
    let t0 = Instant::now();
    let mut last_tick = t0;
    loop {
        let ended = target.ended(machines);
        if ended >= accepted || t0.elapsed() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
        if last_tick.elapsed() >= Duration::from_millis(500) {
            last_tick = Instant::now();
            let f = target.figures(machines);
            progress.tick(&Tick {
                phase: name,
                elapsed_s: t0.elapsed().as_secs_f64(),
                total_s: deadline.as_secs_f64(),
                issued: accepted,
                offered: accepted,
                accepted,
                throttled: 0,
                ended: f.finished() + f.aborted,
                rate: 0.0,
                p99_us: f.start_latency_ns.value_at_quantile(0.99) as f64 / 1e3,
            });
        }
    }
}
