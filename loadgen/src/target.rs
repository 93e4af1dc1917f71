//! `target`: what loadgen sends starts to.
//!
//! Input: a [`Scenario`] to register, starts to send. Output: whether each start was
//! accepted, and the figures of the executions (statuses, start latency, duration).
//! Never touches: schedules or verdicts (the driver and the checks own those).
//!
//! [`Target`] is the seam: the embedded engine ([`Embedded`], in this process, no server)
//! implements it today; the HTTP API server and a multi-node cluster are meant to
//! implement the same trait, so one tool drives all three. A target measures start latency
//! from each start's *intended* send time (the driver passes that `Instant`) to the
//! moment the execution begins on the target: for the embedded engine, when a shard takes
//! it from its inbox, sets it up (reading the input's values, parsed once when the input
//! was checked) and enters its first state.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sfn::clock::Clock;
use sfn::executor::{Engine, Input, MachineSpec, Shutdown, StartError, StateMachine};
use sfn::local::Status;

use crate::scenario::{Component, Scenario};

/// The answer to one start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Started {
    Accepted,
    /// The target refused it for lack of room (the embedded engine: every inbox full).
    Throttled,
    /// Refused for another reason (shutting down, bad name, ...).
    Refused(String),
}

/// What became of the starts a sender handed to a target.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub accepted: u64,
    pub throttled: u64,
    pub refused: u64,
    pub first_refusal: Option<String>,
}

impl Tally {
    pub fn add(&mut self, s: Started) {
        match s {
            Started::Accepted => self.accepted += 1,
            Started::Throttled => self.throttled += 1,
            Started::Refused(why) => {
                self.refused += 1;
                self.first_refusal.get_or_insert(why);
            }
        }
    }
}

/// Figures of a set of machines (one run), summed.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Starts the target has begun (accepted starts still queued are not counted).
    pub begun: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// Dropped unfinished by a shutdown.
    pub aborted: u64,
    /// Executions run again after a panic (at least once).
    pub rerun: u64,
    pub transitions: u64,
    /// Intended send time → execution begun, nanoseconds.
    pub start_latency_ns: Histogram<u64>,
    /// Accepted → ended, nanoseconds of the target's clock.
    pub duration_ns: Histogram<u64>,
}

impl Figures {
    /// Executions that reached a final status.
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed + self.timed_out
    }
}

/// The target's memory, for checking that it is returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// Executions held (running or parked).
    pub executions: u64,
    pub parked: u64,
    /// Bytes of parked executions' arenas.
    pub parked_bytes: u64,
    /// Reset arenas kept for reuse, and the executors' tables.
    pub pooled_bytes: u64,
    pub table_bytes: u64,
    pub timers: u64,
}

/// Something loadgen can start executions on.
pub trait Target: Send + Sync {
    /// A registered workflow, as the target starts it.
    type Machine: Send + Sync;

    /// One line saying what this is ("embedded engine, 2 shards").
    fn describe(&self) -> String;

    /// Registers every component of `scenario` under a fresh name (`label` + component),
    /// so each run's figures are its own; with `check`, runs each built-in component once
    /// and compares its output with the expected one. Errors name the file and problem.
    fn prepare(&self, label: &str, scenario: &Scenario, check: bool) -> Result<Vec<Self::Machine>, String>;

    /// Starts one execution whose intended send time was `due` (this call may come later:
    /// the target measures start latency from `due`).
    fn start(&self, machine: &Self::Machine, due: Instant) -> Started;

    /// Starts one execution of `machine` per entry of `due` (each its intended send time,
    /// as for `start`), adding what happened to `tally`. The default calls `start` for
    /// each; a target with a batch interface hands them over together.
    fn start_many(&self, machine: &Self::Machine, due: &[Instant], tally: &mut Tally) {
        for &d in due {
            tally.add(self.start(machine, d));
        }
    }

    /// Executions of `machines` that ended (any status): cheap enough to poll.
    fn ended(&self, machines: &[Self::Machine]) -> u64;

    /// Counters and histograms of `machines`.
    fn figures(&self, machines: &[Self::Machine]) -> Figures;

    /// Memory held, when the target can tell (an in-process engine can).
    fn memory(&self) -> Option<Memory>;
}

/// How to build the embedded engine.
#[derive(Clone)]
pub struct EmbeddedConfig {
    pub shards: usize,
    pub inbox_capacity: usize,
    pub seed: u64,
    pub clock: Option<Arc<dyn Clock>>,
    /// [`sfn::executor::EngineBuilder::park_spin`] (zero: shards park at once).
    pub park_spin: Duration,
}

/// The sharded engine in this process.
pub struct Embedded {
    engine: Engine,
    shards: usize,
    park_spin: Duration,
    /// The engine runs on the system clock (not a virtual one given in the config).
    real_clock: bool,
    /// Where `Instant`s fall on the engine's clock, so that a start's intended time is
    /// converted without reading either clock.
    epoch: ClockEpoch,
}

/// A pair of readings of the monotonic clock and the engine's, taken together, and
/// re-taken every `RESYNC_EVERY` conversions (the engine's system clock is wall time,
/// which NTP may slew against the monotonic one; 4,096 starts are 41 ms at 100,000/s).
struct ClockEpoch {
    origin: Instant,
    /// The engine's clock at `origin`, nanoseconds.
    engine_ns: AtomicI64,
    /// Nanoseconds from `origin` at which `engine_ns` was read.
    at_ns: AtomicI64,
    conversions: AtomicU64,
}

const RESYNC_EVERY: u64 = 4096;

impl ClockEpoch {
    fn new(clock: &dyn Clock) -> ClockEpoch {
        let origin = Instant::now();
        let e = ClockEpoch {
            origin,
            engine_ns: AtomicI64::new(0),
            at_ns: AtomicI64::new(0),
            conversions: AtomicU64::new(0),
        };
        e.sync(clock);
        e
    }

    fn sync(&self, clock: &dyn Clock) {
        let engine_ns = clock.now();
        let at_ns = self.origin.elapsed().as_nanos() as i64;
        self.engine_ns.store(engine_ns, Ordering::Relaxed);
        self.at_ns.store(at_ns, Ordering::Relaxed);
    }

    /// `t` on the engine's clock. A clock that does not follow real time (a virtual one)
    /// is read each time: `t` is then "now, minus how long ago `t` was".
    fn engine_time(&self, t: Instant, clock: &dyn Clock, real: bool) -> i64 {
        if !real {
            return clock.now().saturating_sub(t.elapsed().as_nanos() as i64);
        }
        if self.conversions.fetch_add(1, Ordering::Relaxed).is_multiple_of(RESYNC_EVERY) {
            self.sync(clock);
        }
        let since_origin = t.saturating_duration_since(self.origin).as_nanos() as i64;
        self.engine_ns.load(Ordering::Relaxed) + (since_origin - self.at_ns.load(Ordering::Relaxed))
    }
}

/// A machine registered on the embedded engine, with its input (shared: starting copies
/// nothing).
pub struct EmbeddedMachine {
    pub machine: StateMachine,
    pub input: Input,
}

impl Embedded {
    pub fn new(config: &EmbeddedConfig) -> Embedded {
        let mut b = Engine::builder()
            .shards(config.shards)
            .inbox_capacity(config.inbox_capacity)
            .seed(config.seed)
            // mimalloc keeps pages a thread freed until that thread collects; an idle
            // shard has just freed a burst's arenas and table.
            // SAFETY: mi_collect takes no pointer and may be called on any thread.
            .on_idle(std::sync::Arc::new(|| unsafe { libmimalloc_sys::mi_collect(true) }));
        b = b.park_spin(config.park_spin);
        if let Some(c) = &config.clock {
            b = b.clock(c.clone());
        }
        let engine = b.build();
        let epoch = ClockEpoch::new(&**engine.clock());
        Embedded {
            engine,
            shards: config.shards.max(1),
            park_spin: config.park_spin,
            epoch,
            real_clock: config.clock.is_none(),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    fn register(&self, label: &str, c: &Component) -> Result<EmbeddedMachine, String> {
        let name = format!("{label}-{}", c.name);
        let spec = MachineSpec {
            handlers: Some(&c.handlers),
            mocks: c.mocks.as_ref(),
            ..MachineSpec::new(&name, &c.definition, c.machine_type)
        };
        let machine = self.engine.register(spec).map_err(|e| match e {
            sfn::executor::RegisterError::InvalidDefinition(diags) => {
                let list: String = diags.iter().map(|d| format!("\n  {d}")).collect();
                format!("{} is not a valid definition:{list}", c.definition_source)
            }
            other => format!("{}: {other}", c.definition_source),
        })?;
        let input = Input::from_json(c.input.clone())
            .map_err(|e| format!("the execution input {} is not valid: {e}", c.input_source))?;
        Ok(EmbeddedMachine { machine, input })
    }

    /// Shuts the engine down, abandoning what still runs; returns how many were.
    pub fn shutdown(&self) -> u64 {
        self.engine.shutdown(Shutdown::Abandon).abandoned
    }
}

impl Target for Embedded {
    type Machine = EmbeddedMachine;

    fn describe(&self) -> String {
        let mut d = format!("embedded engine, {} shard{}", self.shards, if self.shards == 1 { "" } else { "s" });
        if !self.park_spin.is_zero() {
            d += &format!(", looking {} µs for work before parking", self.park_spin.as_micros());
        }
        d
    }

    fn prepare(&self, label: &str, scenario: &Scenario, check: bool) -> Result<Vec<EmbeddedMachine>, String> {
        let machines: Vec<EmbeddedMachine> =
            scenario.components.iter().map(|c| self.register(label, c)).collect::<Result<_, _>>()?;
        if check {
            // All at once: a component that waits does not hold up the others.
            let pending: Vec<_> =
                machines.iter().map(|m| self.engine.start_sync(&m.machine, &m.input, Some("loadgen-check"))).collect();
            for ((c, m), p) in scenario.components.iter().zip(&machines).zip(pending) {
                let r = p.wait().map_err(|e| format!("{}: the check run was not started: {e}", m.machine.name()))?;
                if let Some(expected) = &c.expected_output {
                    if r.status != Status::Succeeded || r.output.as_deref() != Some(expected.as_str()) {
                        return Err(format!(
                            "scenario {} changed behaviour: {} ended {} with output {} error {} cause {}; expected \
                             SUCCEEDED with {expected}",
                            scenario.name,
                            c.name,
                            r.status.as_str(),
                            r.output.as_deref().unwrap_or("-"),
                            r.error.as_deref().unwrap_or("-"),
                            r.cause.as_deref().unwrap_or("-"),
                        ));
                    }
                }
            }
        }
        Ok(machines)
    }

    #[inline]
    fn start(&self, m: &EmbeddedMachine, due: Instant) -> Started {
        let requested_at = self.epoch.engine_time(due, &**self.engine.clock(), self.real_clock);
        match self.engine.start_requested(&m.machine, &m.input, None, requested_at) {
            Ok(_) => Started::Accepted,
            Err(StartError::Throttled) => Started::Throttled,
            Err(e) => Started::Refused(e.to_string()),
        }
    }

    /// One [`Engine::start_batch`] call: the engine hands the starts to the shards in
    /// chunks (at least one per shard, at most `START_BATCH_MAX` starts each).
    fn start_many(&self, m: &EmbeddedMachine, due: &[Instant], tally: &mut Tally) {
        let clock = &**self.engine.clock();
        let requested: Vec<i64> = due.iter().map(|&d| self.epoch.engine_time(d, clock, self.real_clock)).collect();
        match self.engine.start_batch(&m.machine, &m.input, &requested) {
            Ok(n) => {
                tally.accepted += n as u64;
                tally.throttled += (due.len() - n) as u64;
            }
            Err(e) => {
                tally.refused += due.len() as u64;
                tally.first_refusal.get_or_insert(e.to_string());
            }
        }
    }

    fn ended(&self, machines: &[EmbeddedMachine]) -> u64 {
        machines.iter().map(|m| self.engine.ended(&m.machine)).sum()
    }

    fn figures(&self, machines: &[EmbeddedMachine]) -> Figures {
        let mut f = Figures {
            begun: 0,
            succeeded: 0,
            failed: 0,
            timed_out: 0,
            aborted: 0,
            rerun: 0,
            transitions: 0,
            start_latency_ns: histogram(),
            duration_ns: histogram(),
        };
        for m in machines {
            let x = self.engine.metrics(&m.machine);
            f.begun += x.accepted;
            f.succeeded += x.succeeded;
            f.failed += x.failed;
            f.timed_out += x.timed_out;
            f.aborted += x.aborted;
            f.rerun += x.rerun;
            f.transitions += x.transitions;
            f.start_latency_ns.add(&x.start_latency_ns).expect("auto-resizing histograms accept any value");
            f.duration_ns.add(&x.duration_ns).expect("auto-resizing histograms accept any value");
        }
        f
    }

    fn memory(&self) -> Option<Memory> {
        let mut m = Memory::default();
        for g in self.engine.gauges() {
            m.executions += g.executions;
            m.parked += g.parked;
            m.parked_bytes += g.arena_bytes;
            m.pooled_bytes += g.pooled_bytes;
            m.table_bytes += g.table_bytes;
            m.timers += g.timers;
        }
        Some(m)
    }
}

/// Nanoseconds, 2 significant digits (1%), growing as needed: the engine's precision.
pub fn histogram() -> Histogram<u64> {
    let mut h = Histogram::new(2).expect("valid precision");
    h.auto(true);
    h
}
