//! `cap`: the 5-minute check: Express executions that would run past 300 s end exactly at
//! the cap, `TIMED_OUT` with `States.Timeout`; none ends earlier than it should; none is
//! lost; and the memory of the timed-out executions is returned.
//!
//! Input: a [`CapSpec`] (population per group, waves, shards, virtual or real time).
//! Output: a [`CapResult`] with one line per group and the memory figures. Never touches:
//! the open-loop driver (the population starts at once; the rate is `check-rate`'s job).
//!
//! The population, in equal groups (each one state machine):
//!
//! | group | what it does | expected |
//! |---|---|---|
//! | `wait-400s` | a 400-second Wait | TIMED_OUT at exactly 300 s |
//! | `slow-handler` | an asynchronous handler answering after 330 s | TIMED_OUT at exactly 300 s (the late answer is dropped) |
//! | `retry-loop` | a task that always fails, retried every 10 s up to 99 times | TIMED_OUT at exactly 300 s |
//! | `wait-loop` | a Choice loop around a 1-second Wait, forever | TIMED_OUT at exactly 300 s |
//! | `timeout-60s` | `TimeoutSeconds: 60` around a 120-second Wait | TIMED_OUT at 60 s (the definition's lower limit) |
//! | `wait-100s` | a 100-second Wait | SUCCEEDED, not before 100 s |
//! | `handler-50s` | an asynchronous handler answering after 50 s | SUCCEEDED, not before 50 s |
//!
//! Time: by default the engine runs on a [`ManualClock`] that this check moves forward one
//! virtual second at a time, waiting after each step until the shards have handled it, so
//! 340 virtual seconds take a few seconds of wall time and every instant is exact. With
//! `real_time` the engine reads the system clock and the check sleeps through the true
//! 5 minutes. Handlers that "take" N seconds wait on the same clock ([`Timers`]).
//!
//! Memory: after each wave every execution must be gone from the engine (no execution
//! held, none parked). An idle shard gives back what a burst grew beyond a small allowance
//! (pooled arenas, table slots) and then calls the engine's idle hook, which here is
//! mimalloc's `mi_collect`; this check collects its own thread's free pages too before
//! reading RSS. Two bounds follow: after the last wave resident memory is back within
//! 16 MiB (or a fifth of what the parked population grew) of where it was before the first
//! wave, and a second, identical wave needs no more memory than the first (within 4 MiB or
//! 5% of the first wave's growth). The figures (before, parked peak, after each wave,
//! pooled bytes) are reported either way.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};
use sfn::clock::{Clock, ManualClock, SystemClock, NANOS_PER_SEC};
use sfn::executor::{Engine, Input, MachineSpec, StartError, StateMachine, SyncError, SyncResult, SyncStart};
use sfn::handlers::{Handler, Registry, TaskError};
use sfn::local::Status;
use sfn::validate::MachineType;

use crate::sys;
use crate::target::{Embedded, EmbeddedConfig, Figures, Memory, Target};

const S: i64 = NANOS_PER_SEC;
/// AWS's limit for Express executions, seconds.
pub const CAP_S: i64 = 300;
/// How far past the cap the check runs: the slow handler's answer (330 s) has come and
/// gone, so nothing the population started is left anywhere.
const END_S: i64 = 340;

/// What the check runs.
#[derive(Clone, Debug)]
pub struct CapSpec {
    /// Executions per group per wave.
    pub per_group: u64,
    pub waves: u32,
    pub shards: usize,
    pub seed: u64,
    pub real_time: bool,
}

/// How one group must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// TIMED_OUT, States.Timeout, exactly `at` seconds after the start (the executor's cap
    /// is stamped at its instant).
    CapAt(i64),
    /// TIMED_OUT, States.Timeout, not before `at` seconds (the VM's own TimeoutSeconds is
    /// stamped when the shard handles it: within one step).
    TimeoutFrom(i64),
    /// SUCCEEDED, not before `at` seconds, and before the cap.
    SucceedFrom(i64),
}

impl Expect {
    fn describe(self) -> String {
        match self {
            Expect::CapAt(s) => format!("TIMED_OUT States.Timeout at exactly {s} s"),
            Expect::TimeoutFrom(s) => format!("TIMED_OUT States.Timeout at {s} s"),
            Expect::SucceedFrom(s) => format!("SUCCEEDED, not before {s} s"),
        }
    }
    /// The last second by which every execution of the group has ended.
    fn ends_by(self, slack: i64) -> i64 {
        match self {
            Expect::CapAt(s) => s,
            Expect::TimeoutFrom(s) | Expect::SucceedFrom(s) => s + slack,
        }
    }
    /// The first second at which an execution of the group may end.
    fn ends_from(self) -> i64 {
        match self {
            Expect::CapAt(s) | Expect::TimeoutFrom(s) | Expect::SucceedFrom(s) => s,
        }
    }
}

/// One group's tally.
#[derive(Clone, Debug, Default)]
pub struct GroupResult {
    pub name: &'static str,
    pub expect: String,
    pub started: u64,
    /// Ended as expected, at the expected time.
    pub as_expected: u64,
    /// Ended before it should have (seen by the count just before its first allowed end,
    /// or by its end time).
    pub early: u64,
    /// Ended after its limit.
    pub late: u64,
    /// Ended with another status or error.
    pub wrong_outcome: u64,
    /// No result (abandoned, or the engine dropped the reply).
    pub lost: u64,
    /// One example of a wrong or mistimed end, for the report.
    pub example: Option<String>,
}

/// Everything the check measured.
#[derive(Clone, Debug)]
pub struct CapResult {
    pub spec: CapSpec,
    pub groups: Vec<GroupResult>,
    pub figures: Figures,
    pub throttled: u64,
    pub start_seconds: f64,
    pub wall_seconds: f64,
    pub cpu_seconds: Option<f64>,
    /// CPU time the hypervisor took from the machine meanwhile ([`sys::machine_steal_seconds`]).
    pub steal_seconds: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub rss_before: Option<u64>,
    pub rss_parked_peak: Option<u64>,
    pub rss_after_waves: Vec<Option<u64>>,
    /// Engine memory after each wave (must hold no execution).
    pub memory_after_waves: Vec<Memory>,
    pub failures: Vec<String>,
}

impl CapResult {
    pub fn pass(&self) -> bool {
        self.failures.is_empty()
    }
    fn total(&self, f: impl Fn(&GroupResult) -> u64) -> u64 {
        self.groups.iter().map(f).sum()
    }
}

/// A group: its definition, handlers and expected end.
struct Group {
    name: &'static str,
    definition: String,
    handlers: Registry,
    expect: Expect,
    /// Sleeps on the check's clock each execution's handlers start (the check waits for
    /// them to be registered before it moves the clock).
    sleeps: u64,
}

fn population(timers: &Arc<Timers>) -> Vec<Group> {
    let sleepy = |secs: i64| {
        let timers = timers.clone();
        Handler::future(move |_, _| {
            let sleep = timers.sleep(secs * S);
            async move {
                sleep.await;
                Ok(json!({"answered": true}))
            }
        })
    };
    let mut slow = Registry::new();
    slow.register("arn:aws:lambda:us-east-1:123456789012:function:slow", sleepy(330));
    let mut answers = Registry::new();
    answers.register("arn:aws:lambda:us-east-1:123456789012:function:answers", sleepy(50));
    let mut failing = Registry::new();
    failing.register(
        "arn:aws:lambda:us-east-1:123456789012:function:flaky",
        Handler::sync(|_, _, _| Err(TaskError::new("Backend.Unavailable", "the back end is down"))),
    );
    let task = |resource: &str| {
        format!(
            r#"{{"StartAt":"Call","States":{{"Call":{{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:{resource}","End":true}}}}}}"#
        )
    };
    let wait = |secs: i64| {
        format!(r#"{{"StartAt":"Hold","States":{{"Hold":{{"Type":"Wait","Seconds":{secs},"End":true}}}}}}"#)
    };
    vec![
        Group { name: "wait-400s", definition: wait(400), handlers: Registry::new(), expect: Expect::CapAt(CAP_S), sleeps: 0 },
        Group {
            name: "slow-handler",
            definition: task("slow"),
            handlers: slow,
            expect: Expect::CapAt(CAP_S),
            sleeps: 1,
        },
        Group {
            name: "retry-loop",
            definition: r#"{"StartAt":"Call","States":{"Call":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:flaky","Retry":[{"ErrorEquals":["States.ALL"],"IntervalSeconds":10,"MaxAttempts":99,"BackoffRate":1.0}],"End":true}}}"#.into(),
            handlers: failing,
            expect: Expect::CapAt(CAP_S),
            sleeps: 0,
        },
        Group {
            name: "wait-loop",
            definition: r#"{"StartAt":"Tick","States":{"Tick":{"Type":"Wait","Seconds":1,"Next":"Again"},"Again":{"Type":"Choice","Choices":[{"Variable":"$.stop","IsPresent":true,"Next":"Done"}],"Default":"Tick"},"Done":{"Type":"Succeed"}}}"#.into(),
            handlers: Registry::new(),
            expect: Expect::CapAt(CAP_S),
            sleeps: 0,
        },
        Group {
            name: "timeout-60s",
            definition: r#"{"TimeoutSeconds":60,"StartAt":"Hold","States":{"Hold":{"Type":"Wait","Seconds":120,"End":true}}}"#.into(),
            handlers: Registry::new(),
            expect: Expect::TimeoutFrom(60),
            sleeps: 0,
        },
        Group {
            name: "wait-100s",
            definition: wait(100),
            handlers: Registry::new(),
            expect: Expect::SucceedFrom(100),
            sleeps: 0,
        },
        Group {
            name: "handler-50s",
            definition: task("answers"),
            handlers: answers,
            expect: Expect::SucceedFrom(50),
            sleeps: 1,
        },
    ]
}

/// Runs the check.
pub fn run(spec: &CapSpec, mut say: impl FnMut(&str)) -> Result<CapResult, String> {
    let manual = (!spec.real_time).then(|| Arc::new(ManualClock::fixed()));
    let clock: Arc<dyn Clock> = match &manual {
        Some(m) => m.clone(),
        None => Arc::new(SystemClock),
    };
    let timers = Arc::new(Timers::new(clock.clone()));
    let target = Embedded::new(&EmbeddedConfig {
        shards: spec.shards,
        inbox_capacity: 65_536,
        seed: spec.seed,
        clock: Some(clock.clone()),
        park_spin: Duration::ZERO,
    });
    let engine = target.engine();
    let groups = population(&timers);
    let mut machines = Vec::new();
    for g in &groups {
        let spec = MachineSpec {
            handlers: Some(&g.handlers),
            ..MachineSpec::new(g.name, g.definition.as_bytes(), MachineType::Express)
        };
        machines.push(engine.register(spec).map_err(|e| format!("check-cap's {} definition: {e}", g.name))?);
    }
    let input = Input::from_json(&b"{}"[..]).expect("valid JSON");
    let stepper = Stepper { engine, clock: clock.clone(), virtual_time: manual.is_some() };
    let mut results: Vec<GroupResult> = groups
        .iter()
        .map(|g| GroupResult { name: g.name, expect: g.expect.describe(), ..GroupResult::default() })
        .collect();
    // A step is one second of the engine's clock; in real time a late wake-up moves a
    // VM-enforced end by up to a step, hence the slack.
    let slack = if spec.real_time { 2 } else { 1 };
    let mut failures = Vec::new();
    let mut throttled = 0;
    let wall0 = Instant::now();
    let cpu0 = sys::process_cpu_seconds();
    let steal0 = sys::machine_steal_seconds();
    let rss_before = sys::rss_bytes();
    let mut rss_parked_peak = rss_before;
    let mut rss_after_waves = Vec::new();
    let mut memory_after_waves = Vec::new();
    let mut start_seconds = 0.0;

    for wave in 1..=spec.waves {
        say(&format!("wave {wave}/{}: starting {} executions", spec.waves, spec.per_group * groups.len() as u64));
        let t_start = Instant::now();
        let t0 = clock.now();
        let mut pending: Vec<Vec<SyncStart>> = Vec::new();
        for m in &machines {
            let mut v = Vec::with_capacity(spec.per_group as usize);
            for _ in 0..spec.per_group {
                v.push(start(engine, m, &input, &mut throttled));
            }
            pending.push(v);
        }
        start_seconds += t_start.elapsed().as_secs_f64();
        let expected_begun: u64 = spec.per_group * machines.len() as u64 * u64::from(wave);
        wait_until(Duration::from_secs(60), || target.figures(&all(&machines)).begun >= expected_begun)
            .map_err(|_| "the engine did not begin every execution within 60 s".to_owned())?;
        // A parked execution's handler runs on tokio: its sleep starts (and so its instant
        // is set) when the handler is first called, which may be after the shard parked.
        let sleeps: u64 = groups.iter().map(|g| g.sleeps * spec.per_group).sum::<u64>() * u64::from(wave);
        wait_until(Duration::from_secs(60), || timers.created() >= sleeps)
            .map_err(|_| "the handlers did not start their sleeps within 60 s".to_owned())?;
        stepper.quiesce()?;
        let ended_before: Vec<u64> = machines.iter().map(|m| engine.ended(m)).collect();

        let mut checked_early = vec![false; groups.len()];
        for second in 1..=END_S {
            match &manual {
                Some(m) => m.set(t0 + second * S),
                None => sleep_until_clock(&*clock, t0 + second * S),
            }
            if timers.fire_due() > 0 && manual.is_some() {
                // Woken handlers answer through tokio and the shards' control queues.
                wait_until(Duration::from_secs(30), || timers.answered() >= timers.woken())
                    .map_err(|_| "handlers woken on the virtual clock did not answer within 30 s".to_owned())?;
                // Their answers reach the shards through tokio and the control queues; the
                // shards publish how many they have handled (each resolved sleep is one
                // handler's answer).
                let answered = timers.answered();
                wait_until(Duration::from_secs(30), || {
                    engine.gauges().iter().map(|g| g.answers).sum::<u64>() >= answered
                })
                .map_err(|_| "the shards did not receive the handlers' answers within 30 s".to_owned())?;
            }
            stepper.quiesce()?;
            if second % 60 == 0 {
                say(&format!(
                    "wave {wave}: {second} s of {END_S} ({} time)",
                    if manual.is_some() { "virtual" } else { "real" }
                ));
            }
            for (i, g) in groups.iter().enumerate() {
                // Just before the first second an end is allowed, none may have ended.
                if !checked_early[i] && second == g.expect.ends_from() - 1 {
                    checked_early[i] = true;
                    let ended = engine.ended(&machines[i]) - ended_before[i];
                    if ended > 0 {
                        results[i].early += ended;
                        results[i].example.get_or_insert(format!("{ended} had ended at {second} s"));
                    }
                }
            }
            if second == CAP_S - 1 {
                rss_parked_peak = rss_parked_peak.max(sys::rss_bytes());
            }
        }
        // Every group has passed its end by now (END_S is past the cap and every limit).
        for (i, (g, v)) in groups.iter().zip(pending).enumerate() {
            for p in v {
                results[i].started += 1;
                match settle(p) {
                    Some(r) => tally(&mut results[i], g.expect, slack, &r),
                    None => results[i].lost += 1,
                }
            }
            debug_assert!(g.expect.ends_by(slack) < END_S);
        }
        // Give the shards a moment to publish their gauges after the last end.
        stepper.quiesce()?;
        std::thread::sleep(Duration::from_millis(20));
        let mem = target.memory().unwrap_or_default();
        if mem.executions != 0 || mem.parked != 0 {
            failures.push(format!(
                "after wave {wave} the engine still holds {} execution(s), {} parked",
                mem.executions, mem.parked
            ));
        }
        memory_after_waves.push(mem);
        sys::release_free_memory();
        rss_after_waves.push(sys::rss_bytes());
    }

    let figures = target.figures(&all(&machines));
    for g in &results {
        if g.as_expected != g.started {
            failures.push(format!(
                "{}: {} of {} ended as expected ({}); early {}, late {}, wrong outcome {}, lost {}{}",
                g.name,
                g.as_expected,
                g.started,
                g.expect,
                g.early,
                g.late,
                g.wrong_outcome,
                g.lost,
                g.example.as_deref().map(|e| format!("; e.g. {e}")).unwrap_or_default()
            ));
        }
    }
    if figures.aborted > 0 {
        failures.push(format!("{} execution(s) aborted", figures.aborted));
    }
    // Back to baseline: what the parked population grew, all but a small remainder (the
    // shards' idle allowance, handler threads' caches), is returned once it has ended.
    if let (Some(Some(a)), Some(b), Some(p)) = (rss_after_waves.last(), rss_before, rss_parked_peak) {
        let allowed = (16u64 << 20).max(p.saturating_sub(b) / 5);
        if a.saturating_sub(b) > allowed {
            failures.push(format!(
                "resident memory {:.1} MiB after the last wave, {:.1} MiB above the {:.1} MiB before it (allowed \
                 {:.1} MiB): memory of ended executions is not returned",
                *a as f64 / (1 << 20) as f64,
                a.saturating_sub(b) as f64 / (1 << 20) as f64,
                b as f64 / (1 << 20) as f64,
                allowed as f64 / (1 << 20) as f64
            ));
        }
    }
    if spec.waves >= 2 {
        if let (Some(Some(a1)), Some(Some(a2)), Some(b), Some(p)) =
            (rss_after_waves.first(), rss_after_waves.last(), rss_before, rss_parked_peak)
        {
            let growth1 = p.saturating_sub(b);
            let allowed = (4u64 << 20).max(growth1 / 20);
            if a2.saturating_sub(*a1) > allowed {
                failures.push(format!(
                    "resident memory grew by {:.1} MiB from wave 1 to wave {} (allowed {:.1} MiB): memory of \
                     ended executions is not reused",
                    a2.saturating_sub(*a1) as f64 / (1 << 20) as f64,
                    spec.waves,
                    allowed as f64 / (1 << 20) as f64
                ));
            }
        }
    }
    let cpu_seconds = cpu0.zip(sys::process_cpu_seconds()).map(|(a, b)| b - a);
    target.shutdown();
    Ok(CapResult {
        spec: spec.clone(),
        groups: results,
        figures,
        throttled,
        start_seconds,
        wall_seconds: wall0.elapsed().as_secs_f64(),
        cpu_seconds,
        steal_seconds: steal0.zip(sys::machine_steal_seconds()).map(|(a, b)| b - a),
        peak_rss_bytes: sys::peak_rss_bytes(),
        rss_before,
        rss_parked_peak,
        rss_after_waves,
        memory_after_waves,
        failures,
    })
}

fn all(machines: &[StateMachine]) -> Vec<crate::target::EmbeddedMachine> {
    let input = Input::from_json(&b"{}"[..]).expect("valid JSON");
    machines.iter().map(|m| crate::target::EmbeddedMachine { machine: m.clone(), input: input.clone() }).collect()
}

/// Starts one synchronous execution (its result says how and when it ended), retrying
/// after a pause while every inbox is full.
fn start(engine: &Engine, m: &StateMachine, input: &Input, throttled: &mut u64) -> SyncStart {
    loop {
        let mut s = engine.start_sync(m, input, None);
        // A refused start answers at once; an accepted one is pending until it ends.
        match Pin::new(&mut s).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Err(SyncError::Start(StartError::Throttled))) => {
                *throttled += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            _ => return s,
        }
    }
}

/// The result of a start, if it has one (it has ended by now, or never will).
fn settle(p: SyncStart) -> Option<SyncResult> {
    let mut p = p;
    match Pin::new(&mut p).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(r)) => Some(r),
        Poll::Ready(Err(_)) | Poll::Pending => None,
    }
}

/// Judges one execution's end against its group's expectation.
pub fn tally(g: &mut GroupResult, expect: Expect, slack: i64, r: &SyncResult) {
    let took = r.stop_date - r.start_date;
    let secs = took as f64 / S as f64;
    let timed_out = r.status == Status::TimedOut && r.error.as_deref() == Some("States.Timeout");
    let (ok_status, from, to) = match expect {
        Expect::CapAt(s) => (timed_out, s * S, s * S),
        Expect::TimeoutFrom(s) => (timed_out, s * S, (s + slack) * S),
        Expect::SucceedFrom(s) => (r.status == Status::Succeeded, s * S, ((s + slack) * S).min(CAP_S * S - 1)),
    };
    if !ok_status {
        g.wrong_outcome += 1;
        g.example.get_or_insert(format!(
            "{} ended {} {} after {secs:.3} s",
            r.name,
            r.status.as_str(),
            r.error.as_deref().unwrap_or("")
        ));
    } else if took < from {
        g.early += 1;
        g.example.get_or_insert(format!("{} ended after {secs:.3} s", r.name));
    } else if took > to {
        g.late += 1;
        g.example.get_or_insert(format!("{} ended after {secs:.3} s", r.name));
    } else {
        g.as_expected += 1;
    }
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() >= deadline {
            return Err(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// Virtual time: waits until the shards have handled the current instant: every shard is
/// asleep (so the gauges it published before parking are current: nothing was sent to it
/// since), had no timer due at or before `now` left (its earliest pending timer is later)
/// and every execution it holds parked. Shards with pending timers read a manual clock
/// again every millisecond, so this takes a few milliseconds per step. (In
/// real time, nothing to wait for: the shards keep up with the clock by themselves.)
struct Stepper<'e> {
    engine: &'e Engine,
    clock: Arc<dyn Clock>,
    virtual_time: bool,
}

impl Stepper<'_> {
    fn quiesce(&self) -> Result<(), String> {
        if !self.virtual_time {
            return Ok(());
        }
        let now = self.clock.now();
        wait_until(Duration::from_secs(30), || {
            self.engine
                .gauges()
                .iter()
                .all(|g| g.asleep && g.next_timer > now && g.executions == g.parked && g.inbox == 0)
        })
        .map_err(|_| "the shards did not handle a virtual-time step within 30 s".to_owned())
    }
}

fn sleep_until_clock(clock: &dyn Clock, t: i64) {
    let now = clock.now();
    if t > now {
        std::thread::sleep(Duration::from_nanos((t - now) as u64));
    }
}

/// Sleeps on the engine's clock for handlers that "take" a while: a future resolves once
/// the clock has reached its instant and [`Timers::fire_due`] has been called (each step
/// of the check calls it).
pub struct Timers {
    clock: Arc<dyn Clock>,
    due: Mutex<BinaryHeap<Reverse<(i64, u64)>>>,
    wakers: Mutex<std::collections::HashMap<u64, Waker>>,
    next: AtomicU64,
    woken: AtomicU64,
    resolved: AtomicU64,
}

impl Timers {
    pub fn new(clock: Arc<dyn Clock>) -> Timers {
        Timers {
            clock,
            due: Mutex::new(BinaryHeap::new()),
            wakers: Mutex::new(std::collections::HashMap::new()),
            next: AtomicU64::new(0),
            woken: AtomicU64::new(0),
            resolved: AtomicU64::new(0),
        }
    }

    /// A future that resolves `nanos` after now on the clock.
    pub fn sleep(self: &Arc<Self>, nanos: i64) -> Sleep {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let at = self.clock.now() + nanos;
        self.due.lock().expect("not poisoned").push(Reverse((at, id)));
        Sleep { timers: self.clone(), at, id, registered: false }
    }

    /// Sleeps started so far.
    pub fn created(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// Sleepers woken so far.
    pub fn woken(&self) -> u64 {
        self.woken.load(Ordering::SeqCst)
    }

    /// Sleeps that have resolved (their handler answers right after).
    pub fn answered(&self) -> u64 {
        self.resolved.load(Ordering::SeqCst)
    }

    /// Wakes every sleeper whose instant has come; returns how many.
    pub fn fire_due(&self) -> u64 {
        let now = self.clock.now();
        let mut n = 0;
        let mut due = self.due.lock().expect("not poisoned");
        let mut wakers = self.wakers.lock().expect("not poisoned");
        while let Some(&Reverse((at, id))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            if let Some(w) = wakers.remove(&id) {
                n += 1;
                self.woken.fetch_add(1, Ordering::SeqCst);
                w.wake();
            }
        }
        n
    }
}

pub struct Sleep {
    timers: Arc<Timers>,
    at: i64,
    id: u64,
    /// Polled once while not due: a waker is (or was) registered for it.
    registered: bool,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let t = &self.timers;
        let mut wakers = t.wakers.lock().expect("not poisoned");
        if t.clock.now() >= self.at {
            // Counted only if `fire_due` woke it (a sleep already due when first polled was
            // never registered, so nobody waits for its count).
            if wakers.remove(&self.id).is_none() && self.registered {
                t.resolved.fetch_add(1, Ordering::SeqCst);
            }
            return Poll::Ready(());
        }
        wakers.insert(self.id, cx.waker().clone());
        drop(wakers);
        self.get_mut().registered = true;
        Poll::Pending
    }
}

/// The JSON summary: check-rate's fields (what applies), then the cap's own.
pub fn to_json(r: &CapResult) -> Json {
    let f = &r.figures;
    let du = |q: f64| (f.duration_ns.value_at_quantile(q) as f64 / 1e2).round() / 10.0;
    let real = r.spec.real_time;
    let sl = |q: f64| real.then(|| (f.start_latency_ns.value_at_quantile(q) as f64 / 1e2).round() / 10.0);
    let started = r.total(|g| g.started);
    let machine = sfn_benches::provenance::machine();
    let mut j = json!({
        "check": "check-cap",
        "target_rate": null,
        "achieved_start_rate": (started as f64 / r.start_seconds.max(1e-9)).round(),
        "accepted": started,
        "throttled": r.throttled,
        "succeeded": f.succeeded,
        "failed": f.failed,
        "timed_out": f.timed_out,
        "lost": r.total(|g| g.lost),
        "rerun": f.rerun,
        "start_latency_us": {"p50": sl(0.5), "p99": sl(0.99), "p999": sl(0.999), "max": real.then(|| f.start_latency_ns.max() as f64 / 1e3)},
        "duration_us": {"p50": du(0.5), "p99": du(0.99), "max": f.duration_ns.max() as f64 / 1e3},
        "cpu_seconds": r.cpu_seconds.map(|c| (c * 100.0).round() / 100.0),
        "peak_rss_bytes": r.peak_rss_bytes,
        "verdict": if r.pass() { "PASS" } else { "FAIL" },
        "failures": r.failures,
        "notes": if real {
            "real time: durations and start latencies on the system clock"
        } else {
            "virtual time: durations are on the engine's manual clock; start latency is not measured (the clock stands still while the population starts); achieved_start_rate is starts per second of wall time while starting, no target rate"
        },
        "cap": {
            "time": if real { "real" } else { "virtual" },
            "cap_s": CAP_S,
            "waves": r.spec.waves,
            "per_group_per_wave": r.spec.per_group,
            "shards": r.spec.shards,
            "timed_out_at_cap": r.groups.iter().filter(|g| g.expect.contains("exactly")).map(|g| g.as_expected).sum::<u64>(),
            "ended_early": r.total(|g| g.early),
            "ended_late": r.total(|g| g.late),
            "wrong_outcome": r.total(|g| g.wrong_outcome),
            "groups": r.groups.iter().map(|g| json!({
                "name": g.name, "expected": g.expect, "started": g.started, "as_expected": g.as_expected,
                "early": g.early, "late": g.late, "wrong_outcome": g.wrong_outcome, "lost": g.lost, "example": g.example,
            })).collect::<Vec<_>>(),
            "memory": {
                "rss_before_bytes": r.rss_before,
                "rss_parked_peak_bytes": r.rss_parked_peak,
                "rss_after_wave_bytes": r.rss_after_waves,
                "after_wave": r.memory_after_waves.iter().map(|m| json!({
                    "executions": m.executions, "parked": m.parked, "parked_arena_bytes": m.parked_bytes,
                    "pooled_arena_bytes": m.pooled_bytes, "table_bytes": m.table_bytes, "timers": m.timers,
                })).collect::<Vec<_>>(),
            },
            "wall_seconds": (r.wall_seconds * 100.0).round() / 100.0,
        },
        "seed": r.spec.seed,
        "date": sfn_benches::provenance::utc_now(),
        "commit": sfn_benches::provenance::git_commit(),
        "machine": {"cores": machine.cores, "cpu": machine.cpu},
        "loadavg_1m": sfn_benches::provenance::load_average(),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    });
    // Outside the literal, as in `report::to_json` (serde_json's macro recursion limit).
    j["steal_seconds"] = json!(r.steal_seconds.map(|c| (c * 100.0).round() / 100.0));
    j
}

/// The human summary.
pub fn to_text(r: &CapResult) -> String {
    let mib = |b: Option<u64>| b.map_or("?".to_owned(), |b| format!("{:.1} MiB", b as f64 / (1 << 20) as f64));
    let mut s = format!(
        "loadgen check-cap: {} waves × {} executions on the embedded engine ({} shard(s)), {} time, {:.1} s wall\n",
        r.spec.waves,
        r.spec.per_group * r.groups.len() as u64,
        r.spec.shards,
        if r.spec.real_time { "real" } else { "virtual" },
        r.wall_seconds
    );
    s += &format!(
        "{:<14} {:>8} {:>11} {:>6} {:>6} {:>6} {:>6}  expected\n",
        "group", "started", "as expected", "early", "late", "wrong", "lost"
    );
    for g in &r.groups {
        s += &format!(
            "{:<14} {:>8} {:>11} {:>6} {:>6} {:>6} {:>6}  {}\n",
            g.name, g.started, g.as_expected, g.early, g.late, g.wrong_outcome, g.lost, g.expect
        );
    }
    s += &format!(
        "memory         RSS {} before, {} with the population parked, after each wave: {}\n",
        mib(r.rss_before),
        mib(r.rss_parked_peak),
        r.rss_after_waves.iter().map(|b| mib(*b)).collect::<Vec<_>>().join(", ")
    );
    if let Some(m) = r.memory_after_waves.last() {
        s += &format!(
            "engine after   {} executions held, {} parked; {:.1} MiB of reset arenas pooled for reuse\n",
            m.executions,
            m.parked,
            m.pooled_bytes as f64 / (1 << 20) as f64
        );
    }
    s += &format!("verdict        {}\n", if r.pass() { "PASS" } else { "FAIL" });
    for f in &r.failures {
        s += &format!("  - {f}\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: Status, error: Option<&str>, secs: f64) -> SyncResult {
        SyncResult {
            execution_arn: String::new(),
            name: "x".into(),
            status,
            output: None,
            error: error.map(str::to_owned),
            cause: None,
            start_date: 1_000 * S,
            stop_date: 1_000 * S + (secs * S as f64) as i64,
            billing: sfn::executor::BillingDetails {
                billed_memory_used_in_mb: 64,
                billed_duration_in_milliseconds: 100,
            },
            transitions: 1,
        }
    }

    #[test]
    fn the_cap_must_be_hit_exactly_with_states_timeout() {
        let mut g = GroupResult::default();
        let cap = Expect::CapAt(300);
        tally(&mut g, cap, 1, &result(Status::TimedOut, Some("States.Timeout"), 300.0));
        tally(&mut g, cap, 1, &result(Status::TimedOut, Some("States.Timeout"), 299.999));
        tally(&mut g, cap, 1, &result(Status::TimedOut, Some("States.Timeout"), 300.001));
        tally(&mut g, cap, 1, &result(Status::Failed, Some("States.Timeout"), 300.0));
        tally(&mut g, cap, 1, &result(Status::TimedOut, Some("States.TaskFailed"), 300.0));
        assert_eq!((g.as_expected, g.early, g.late, g.wrong_outcome), (1, 1, 1, 2));
        assert!(g.example.unwrap().contains("299.999"));
    }

    #[test]
    fn successes_may_not_come_early_or_after_the_cap() {
        let mut g = GroupResult::default();
        let e = Expect::SucceedFrom(100);
        tally(&mut g, e, 1, &result(Status::Succeeded, None, 100.0));
        tally(&mut g, e, 1, &result(Status::Succeeded, None, 100.9));
        tally(&mut g, e, 1, &result(Status::Succeeded, None, 99.0));
        tally(&mut g, e, 1, &result(Status::Succeeded, None, 102.0));
        tally(&mut g, e, 1, &result(Status::TimedOut, Some("States.Timeout"), 300.0));
        assert_eq!((g.as_expected, g.early, g.late, g.wrong_outcome), (2, 1, 1, 1));
    }

    #[test]
    fn clock_sleeps_resolve_only_when_fired_past_their_instant() {
        let clock = Arc::new(ManualClock::new(0));
        let timers = Arc::new(Timers::new(clock.clone()));
        let mut sleep = Box::pin(timers.sleep(10 * S));
        let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct Flag(Arc<std::sync::atomic::AtomicBool>);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let waker = Waker::from(Arc::new(Flag(woken.clone())));
        let mut cx = Context::from_waker(&waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.set(9 * S);
        timers.fire_due();
        assert!(!woken.load(std::sync::atomic::Ordering::SeqCst));
        clock.set(10 * S);
        timers.fire_due();
        assert!(woken.load(std::sync::atomic::Ordering::SeqCst));
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
    }
}
