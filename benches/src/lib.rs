//! Workloads shared by the criterion benches (`benches/benches/`) and `loadgen`.
//!
//! Input: nothing at run time — the definitions, inputs and expected outputs are compiled
//! in from `benches/data/` and `examples/`. Output: a compiled [`Program`] per workload and
//! a [`Runner`] that executes it the way a production shard would.
//! Never touches: the engine's internals (only its public API), the file system, threads.
//!
//! Why a [`Runner`]: production keeps one arena per shard and resets it between
//! executions, and keeps its JSON parser's buffers warm. A fresh `Bump` per execution costs
//! a `malloc`/`free` of its first chunk every time and would charge the engine for work
//! production does not do, so every measurement here goes through a reused arena, a reused
//! [`JsonParser`] and a reused output buffer.
//!
//! Every workload carries its expected output; benches and loadgen check it once before
//! measuring, so an "optimisation" that changes behaviour fails loudly instead of looking
//! fast.
//!
//! Also the two thread-level helpers `wake-jitter` and `loadgen` share: [`thread_cpu_ns`]
//! and [`set_timer_slack_ns`].

pub mod provenance;

/// The calling thread's CPU time (user + system) in nanoseconds, from
/// `CLOCK_THREAD_CPUTIME_ID` (exact, no file read); `None` if the OS refuses the clock.
pub fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Safety: clock_gettime writes only the timespec it is given.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    ok.then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time the hypervisor gave to others while this machine's vCPUs wanted to run (the
/// `steal` column of `/proc/stat`, all CPUs), seconds. On a VM this is when a thread
/// stalls for milliseconds with nothing in the guest to blame; a run's latency figures
/// are the machine's as much as the engine's when it is not near zero.
pub fn machine_steal_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    steal_from_proc_stat(&stat)
}

/// The aggregate `cpu` line: user nice system idle iowait irq softirq steal ….
fn steal_from_proc_stat(stat: &str) -> Option<f64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let steal: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(steal as f64 / 100.0)
}

/// Sets the calling thread's timer slack (`PR_SET_TIMERSLACK`): how much later than asked
/// the kernel may end its sleeps, to batch wake-ups; 0 restores the default (50 µs). True
/// when the kernel agreed.
pub fn set_timer_slack_ns(ns: u64) -> bool {
    // SAFETY: prctl with PR_SET_TIMERSLACK reads only its integer arguments.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = ns;
        false
    }
}

use bumpalo::Bump;
use sfn::clock::{Clock, ManualClock};
use sfn::compile::Bindings;
use sfn::diag::Diagnostic;
use sfn::executor::{Engine, Input, MachineSpec, StateMachine};
use sfn::handlers::{Handler, Registry, TaskContext, TaskError};
use sfn::local::Status;
use sfn::mocks::MockSet;
use sfn::program::Program;
use sfn::validate::MachineType;
use sfn::value::{Arena, JsonError, JsonParser, Value};
use sfn::vm::{Exec, ExecMeta, Outcome};

/// A built-in workload: a definition, its input, the handlers its tasks call and the output
/// it must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `Pass` → `Pass` → `Pass` → `Pass`, each shaping a small object with `Result` or
    /// `Parameters` (`benches/data/pass4.asl.json`). Pure VM and value work: no tasks.
    Pass4,
    /// The Wild Rydes rider-photo workflow (`examples/rider-photo.express.asl.json`): five
    /// Lambda tasks answered by inline handlers, `ResultPath`s, a two-branch `Parallel`.
    Rider,
    /// The same workflow written in JSONata (`examples/rider-photo-jsonata.express.asl.json`):
    /// `Output` expressions with `$merge` instead of `ResultPath`s; same handlers, same
    /// output. What a JSONata definition costs beside its JSONPath twin.
    RiderJsonata,
    /// A Choice + Pass loop of 100 iterations (`benches/data/choice-loop.asl.json`): the
    /// cost of a state transition, 202 of them per execution.
    ChoiceLoop,
    /// An inline Map over 100 items with `ItemSelector` and the Map context
    /// (`benches/data/map100.asl.json`): child frames, joins, intrinsics.
    Map100,
}

impl Workload {
    pub const ALL: [Workload; 5] =
        [Workload::Pass4, Workload::Rider, Workload::RiderJsonata, Workload::ChoiceLoop, Workload::Map100];

    /// Short name, as used in bench ids and on loadgen's command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Pass4 => "pass4",
            Workload::Rider => "rider",
            Workload::RiderJsonata => "rider-jsonata",
            Workload::ChoiceLoop => "choice-loop",
            Workload::Map100 => "map100",
        }
    }

    pub fn definition(self) -> &'static [u8] {
        match self {
            Workload::Pass4 => include_bytes!("../data/pass4.asl.json"),
            Workload::Rider => include_bytes!("../../examples/rider-photo.express.asl.json"),
            Workload::RiderJsonata => include_bytes!("../../examples/rider-photo-jsonata.express.asl.json"),
            Workload::ChoiceLoop => include_bytes!("../data/choice-loop.asl.json"),
            Workload::Map100 => include_bytes!("../data/map100.asl.json"),
        }
    }

    pub fn input(self) -> &'static [u8] {
        match self {
            Workload::Pass4 => include_bytes!("../data/pass4.input.json"),
            Workload::Rider | Workload::RiderJsonata => include_bytes!("../../examples/rider-photo.input.json"),
            Workload::ChoiceLoop => include_bytes!("../data/choice-loop.input.json"),
            Workload::Map100 => include_bytes!("../data/map100.input.json"),
        }
    }

    /// The compact JSON text of the execution's output.
    pub fn expected_output(self) -> &'static str {
        let text = match self {
            Workload::Pass4 => include_str!("../data/pass4.output.json"),
            Workload::Rider | Workload::RiderJsonata => include_str!("../data/rider.output.json"),
            Workload::ChoiceLoop => include_str!("../data/choice-loop.output.json"),
            Workload::Map100 => include_str!("../data/map100.output.json"),
        };
        text.trim_end()
    }

    pub fn machine_type(self) -> MachineType {
        MachineType::Express
    }

    /// The handlers the workload's tasks are bound to.
    pub fn registry(self) -> Registry {
        match self {
            Workload::Rider | Workload::RiderJsonata => rider_handlers(),
            Workload::Pass4 | Workload::ChoiceLoop | Workload::Map100 => Registry::new(),
        }
    }

    /// Parses, validates and compiles the definition with its handlers bound.
    pub fn load(self) -> Program {
        let registry = self.registry();
        load(self.definition(), self.machine_type(), Some(&registry), None)
            .unwrap_or_else(|d| panic!("the built-in {} definition is invalid: {d:?}", self.name()))
    }

    /// Runs the workload once on `runner` and panics unless it succeeds with exactly the
    /// expected output. Benches and loadgen call this before measuring.
    pub fn check(self, prog: &Program, runner: &mut Runner) {
        let status = runner.run(prog, self.input()).expect("the built-in input is valid JSON");
        let got = runner.output_str();
        assert!(
            status == Status::Succeeded && got == self.expected_output(),
            "workload {} changed behaviour:\n  status:   {status:?}\n  output:   {got}\n  expected: {}",
            self.name(),
            self.expected_output()
        );
    }
}

/// `sfn::load` with handlers and mocks bound.
pub fn load(
    definition: &[u8],
    machine_type: MachineType,
    handlers: Option<&Registry>,
    mocks: Option<&MockSet>,
) -> Result<Program, Vec<Diagnostic>> {
    sfn::load(definition, machine_type, Bindings { handlers, mocks })
}

const LAMBDA: &str = "arn:aws:lambda:us-west-2:012345678912:function:wild-ryde-step-module-";

/// Inline handlers for the rider-photo workflow's Lambda functions. Each builds a result of
/// the shape the real function returns, straight into the execution's arena, reading the
/// input where the real one would.
pub fn rider_handlers() -> Registry {
    let mut r = Registry::new();
    r.register(format!("{LAMBDA}FaceDetectionFunction-4AYSKX2EGPV0"), Handler::sync(face_detection));
    r.register(format!("{LAMBDA}FaceSearchFunction-1IT67V4J214DC"), Handler::sync(face_search));
    r.register(format!("{LAMBDA}IndexFaceFunction-15658V8WUI67V"), Handler::sync(index_face));
    r.register(format!("{LAMBDA}ThumbnailFunction-A30TCJMIG0U8"), Handler::sync(thumbnail));
    r.register(format!("{LAMBDA}PersistMetadataFunction-9PDCT2DT7K70"), Handler::sync(persist_metadata));
    // Not on the happy path; bound so that a failing variant of the input still runs.
    r.register(format!("{LAMBDA}NotificationPlaceholderFunct-CDRLZC8BRFWP"), Handler::sync(notify));
    r
}

/// Rekognition-like face details: a bounding box and a confidence.
fn face_detection<'a>(_: &TaskContext<'_>, input: Value<'a>, arena: Arena<'a>) -> Result<Value<'a>, TaskError> {
    if input.get("s3Key").and_then(|k| k.as_str()).is_none() {
        return Err(TaskError::new("PhotoDoesNotMeetRequirementError", "No photo given"));
    }
    let bbox = arena.object(&[
        ("Width", Value::Float(0.31)),
        ("Height", Value::Float(0.42)),
        ("Left", Value::Float(0.35)),
        ("Top", Value::Float(0.21)),
    ]);
    Ok(arena.object(&[("BoundingBox", bbox), ("Confidence", Value::Float(99.98))]))
}

fn face_search<'a>(_: &TaskContext<'_>, _: Value<'a>, arena: Arena<'a>) -> Result<Value<'a>, TaskError> {
    Ok(arena.object(&[("duplicate", Value::Bool(false))]))
}

/// A face id derived from the user id, as the index would return.
fn index_face<'a>(_: &TaskContext<'_>, input: Value<'a>, arena: Arena<'a>) -> Result<Value<'a>, TaskError> {
    let user = input.get("userId").and_then(|u| u.as_str()).unwrap_or("anonymous");
    Ok(Value::Str(arena.concat(&["face-", user, "-a1b2c3d4"])))
}

fn thumbnail<'a>(_: &TaskContext<'_>, input: Value<'a>, arena: Arena<'a>) -> Result<Value<'a>, TaskError> {
    let key = input.get("s3Key").and_then(|k| k.as_str()).unwrap_or("");
    let s3key = Value::Str(arena.concat(&["resized-", key]));
    let thumb = arena.object(&[("s3key", s3key), ("s3bucket", Value::Str("thumbnails"))]);
    Ok(arena.object(&[("thumbnail", thumb)]))
}

fn persist_metadata<'a>(_: &TaskContext<'_>, _: Value<'a>, arena: Arena<'a>) -> Result<Value<'a>, TaskError> {
    Ok(arena.object(&[("ok", Value::Bool(true))]))
}

fn notify<'a>(_: &TaskContext<'_>, _: Value<'a>, arena: Arena<'a>) -> Result<Value<'a>, TaskError> {
    Ok(arena.object(&[("notified", Value::Bool(true))]))
}

/// A workload on the sharded engine ([`sfn::executor`]): the engine, the registered
/// machine and one shared input (cloning it shares the bytes, so starting costs no copy).
pub struct EngineBench {
    pub engine: Engine,
    pub machine: StateMachine,
    pub input: Input,
    pub workload: Workload,
}

impl EngineBench {
    /// An engine with `shards` shards running `w`; checks the output once (through
    /// `start_sync`) before anything is measured.
    pub fn new(w: Workload, shards: usize) -> EngineBench {
        let engine = Engine::builder().shards(shards).handlers(w.registry()).build();
        let machine = engine
            .register(MachineSpec::new(w.name(), w.definition(), w.machine_type()))
            .unwrap_or_else(|e| panic!("the built-in {} definition is invalid: {e}", w.name()));
        let input = Input::from_json(w.input()).expect("the built-in input is valid JSON");
        let r = engine.start_sync(&machine, &input, None).wait().expect("the engine runs");
        assert!(
            r.status == Status::Succeeded && r.output.as_deref() == Some(w.expected_output()),
            "workload {} changed behaviour on the engine: {r:?}",
            w.name()
        );
        EngineBench { engine, machine, input, workload: w }
    }

    /// Starts `n` executions (asynchronous Express starts, retried after a short sleep
    /// when throttled) and returns when all of them have ended. The waiting thread sleeps
    /// between polls so that it leaves the cores to the shards.
    pub fn run(&self, n: u64) -> std::time::Duration {
        let t0 = std::time::Instant::now();
        let target = self.engine.ended(&self.machine) + n;
        for _ in 0..n {
            while self.engine.start(&self.machine, &self.input, None).is_err() {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
        while self.engine.ended(&self.machine) < target {
            std::thread::sleep(std::time::Duration::from_micros(50));
        }
        t0.elapsed()
    }
}

/// Everything one thread (one shard, in production) keeps between executions: the arena,
/// reset rather than freed; a warm JSON parser; the output buffer; a virtual clock.
pub struct Runner {
    bump: Bump,
    parser: JsonParser,
    out: Vec<u8>,
    meta: ExecMeta,
    clock: ManualClock,
    transitions: u64,
}

impl Runner {
    pub fn new(machine_type: MachineType) -> Runner {
        let clock = ManualClock::fixed();
        let meta = ExecMeta::local("Bench", "bench-execution", machine_type, clock.now());
        Runner { bump: Bump::new(), parser: JsonParser::new(), out: Vec::new(), meta, clock, transitions: 0 }
    }

    /// One whole execution: reset the arena, parse `input`, run to the end, write the
    /// output (or the error) as JSON into [`Runner::output`].
    pub fn run(&mut self, prog: &Program, input: &[u8]) -> Result<Status, JsonError> {
        self.bump.reset();
        let text_len = input.len();
        let input = self.parser.parse(&self.bump, input)?;
        let mut exec = Exec::new(prog, &self.bump, input, &self.meta, 1);
        exec.input_text_len(text_len);
        drive(&mut exec, &self.clock);
        self.transitions = exec.transitions();
        self.out.clear();
        Ok(write_outcome(exec.outcome().expect("finished"), &mut self.out))
    }

    /// The last execution's output JSON (SUCCEEDED) or `{"error":…,"cause":…}`.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    pub fn output_str(&self) -> &str {
        std::str::from_utf8(&self.out).expect("the engine writes UTF-8")
    }

    /// States entered by the last execution.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    pub fn meta(&self) -> &ExecMeta {
        &self.meta
    }

    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }
}

/// Runs an execution to the end (`sfn::local::drive`: asynchronous tasks polled on this
/// thread, timers passing in virtual time on the benches' `ManualClock`).
pub fn drive(exec: &mut Exec<'_>, clock: &dyn Clock) {
    sfn::local::drive(exec, clock).expect("the execution waits for a task callback, which benches cannot send");
}

/// Writes the output of a successful execution, or `{"error":…,"cause":…}`.
pub fn write_outcome(outcome: Outcome<'_>, out: &mut Vec<u8>) -> Status {
    let (status, failure) = match outcome {
        Outcome::Succeeded(v) => {
            v.write_json(out);
            return Status::Succeeded;
        }
        Outcome::Failed(f) => (Status::Failed, f),
        Outcome::TimedOut(f) => (Status::TimedOut, f),
    };
    let members = [
        ("error", failure.error.map_or(Value::Null, Value::Str)),
        ("cause", failure.cause.map_or(Value::Null, Value::Str)),
    ];
    Value::Object(&members).write_json(out);
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steal_column_is_the_eighth_after_cpu() {
        let stat = "cpu  3968356 57731 240463 4240858 10483 0 6963 38973 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(steal_from_proc_stat(stat), Some(389.73));
        assert_eq!(steal_from_proc_stat("cpu0 1 2\n"), None);
    }

    #[test]
    fn workloads_produce_their_expected_output() {
        for w in Workload::ALL {
            let prog = w.load();
            let mut runner = Runner::new(w.machine_type());
            w.check(&prog, &mut runner);
            // A reset arena gives the same answer the second time.
            w.check(&prog, &mut runner);
        }
    }
}
