//! `vm`: runs one execution of a [`Program`] until it finishes or every frame is waiting.
//!
//! Input: a program, an arena, the execution input and metadata, a [`Clock`]. Output: the
//! execution's outcome (status, output or error/cause), or "blocked until T / waiting for a
//! task answer", after which the driver resumes it.
//! Never touches: I/O, threads, definition JSON, state names on the hot path (names are
//! read only to build error causes and the context object).
//!
//! An execution is a small tree of frames: the root frame runs the machine; a Parallel
//! state runs its branches, and a Map state its iterations, in child frames, interleaved on
//! this thread (a LIFO run queue, so without waits or asynchronous tasks they run in order,
//! deterministically). Each frame has the registers `raw`, `eff`, `res`, `out` (see
//! `program`), a pc, its retry counters and a variable scope. The whole execution state
//! lives in the arena, so it can be parked and resumed, and dropped at once.
//!
//! Event ids: causes of runtime errors quote the id of the failing state's `…StateEntered`
//! history event (`entered at the event id #4`). The VM counts events the way AWS numbers a
//! Standard execution's history (ExecutionStarted is 1; Entered/Exited per state; Task
//! Scheduled/Started/Succeeded-or-Failed; Parallel/Map Started/Succeeded and per-iteration
//! events), so these ids match AWS's without recording the history.
//!
//! History: every counted event also gets its `previousEventId` (each frame keeps the id
//! of its last event; see `emit`), and an execution asked to with
//! [`Exec::record_events`] keeps the events its mask selects, as [`HistoryEvent`]s in its
//! arena, for the driver to take with [`Exec::drain_events`]. Without a mask the only cost
//! is one predictable branch per event: nothing is built and the clock is not read.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::Arc;

use bumpalo::collections::Vec as BVec;
use bumpalo::Bump;

use crate::clock::{Clock, NANOS_PER_SEC};
use crate::eval::{splitmix64, Env, EvalError};
use crate::handlers::{AsyncHandler, Binding, Handler, MockReply, OwnedTaskContext, TaskContext, TaskError};
use crate::history::{EventDetails, EventMask, EventType, HistoryEvent};
use crate::intern::Sym;
use crate::paths::Path;
use crate::program::*;
use crate::template::Template;
use crate::timestamp::{self, Timestamp};
use crate::validate::{MachineType, MapMode};
use crate::value::{self, Arena, Value, PAYLOAD_LIMIT};

const NONE: u32 = u32::MAX;

/// Facts about an execution that the context object (`$$`) exposes.
#[derive(Clone, Debug)]
pub struct ExecMeta {
    pub execution_arn: String,
    pub name: String,
    pub state_machine_arn: String,
    pub state_machine_name: String,
    pub role_arn: String,
    /// Unix nanoseconds.
    pub start_time: i64,
    pub redrive_count: u32,
}

impl ExecMeta {
    /// Plausible ARNs in account 123456789012, region us-east-1, for local runs.
    pub fn local(machine_name: &str, execution_name: &str, machine_type: MachineType, start_time: i64) -> ExecMeta {
        let state_machine_arn = format!("arn:aws:states:us-east-1:123456789012:stateMachine:{machine_name}");
        let execution_arn = match machine_type {
            MachineType::Standard => {
                format!("arn:aws:states:us-east-1:123456789012:execution:{machine_name}:{execution_name}")
            }
            MachineType::Express => {
                format!(
                    "arn:aws:states:us-east-1:123456789012:express:{machine_name}:{execution_name}:{execution_name}"
                )
            }
        };
        ExecMeta {
            execution_arn,
            name: execution_name.to_owned(),
            state_machine_arn,
            state_machine_name: machine_name.to_owned(),
            role_arn: format!("arn:aws:iam::123456789012:role/service-role/StepFunctions-{machine_name}-role"),
            start_time,
            redrive_count: 0,
        }
    }
}

/// An error raised in an execution: its name (`None` for a Fail state without `Error`),
/// its cause, and whether it is a heartbeat timeout (reported as `States.Timeout`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Failure<'a> {
    pub error: Option<&'a str>,
    pub cause: Option<&'a str>,
    pub heartbeat: bool,
}

impl<'a> Failure<'a> {
    pub fn new(error: &'a str, cause: Option<&'a str>) -> Self {
        Failure { error: Some(error), cause, heartbeat: false }
    }

    /// `States.Runtime` is never retried or caught.
    pub fn is_runtime(&self) -> bool {
        self.error == Some("States.Runtime")
    }
}

/// How an execution ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome<'a> {
    Succeeded(Value<'a>),
    Failed(Failure<'a>),
    TimedOut(Failure<'a>),
}

/// What `run` left the execution doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Finished; see [`Exec::outcome`].
    Finished,
    /// Every frame waits. `wake_at` is the earliest timer (Wait, retry back-off, timeout);
    /// `None` means only asynchronous answers can move it on.
    Blocked { wake_at: Option<i64> },
    /// The step budget ran out; call `run` again.
    Yielded,
}

/// An asynchronous task invocation for the driver to start. Its answer comes back through
/// [`Exec::complete_task`] with the same `id`.
pub struct AsyncCall {
    pub id: u64,
    pub handler: Arc<dyn AsyncHandler>,
    pub ctx: OwnedTaskContext,
    pub input: serde_json::Value,
}

/// Why SendTaskSuccess/Failure/Heartbeat was refused (AWS's error names).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// No task of this execution waits for this token (unknown, already used, or timed out).
    #[error("TaskDoesNotExist: no task is waiting for this token")]
    TaskDoesNotExist,
    /// The output is not valid JSON.
    #[error("InvalidOutput: {0}")]
    InvalidOutput(String),
    /// The task this token belonged to timed out (TimeoutSeconds or HeartbeatSeconds).
    #[error("TaskTimedOut: the task for this token timed out")]
    TaskTimedOut,
    /// Not a task token at all (empty, or longer than AWS's 2,048 characters).
    #[error("InvalidToken: the task token is malformed")]
    InvalidToken,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Status {
    Ready,
    /// Waiting until the given time (Wait state, retry back-off); resumes at `pc`.
    Sleeping(i64),
    /// A retry back-off decided where no clock was at hand (an asynchronous answer or a
    /// callback): the next `run` turns it into `Sleeping(now + delay)`.
    Backoff(i64),
    /// Waiting for an asynchronous handler's answer; `deadline` is the task timeout.
    AwaitingTask {
        call: u64,
        deadline: i64,
    },
    /// A `.waitForTaskToken` task waiting for SendTaskSuccess/Failure with its token;
    /// `deadline` is the task timeout, `heartbeat` the time the next heartbeat is due.
    AwaitingCallback {
        deadline: i64,
        heartbeat: i64,
    },
    /// Waiting for child frames (Parallel, Map).
    Joining,
    Done,
    Failed,
    Cancelled,
    Free,
}

struct Frame<'a> {
    pc: Pc,
    state: StateId,
    status: Status,
    raw: Value<'a>,
    eff: Value<'a>,
    res: Value<'a>,
    out: Value<'a>,
    scope: u32,
    parent: u32,
    slot: u32,
    join: u32,
    entered_event: u32,
    entered_at: i64,
    /// Id of this frame's last history event: the next event's `previousEventId`.
    last_event: u32,
    /// A child failed this frame's Parallel/Map: `…StateFailed` is due unless it retries.
    join_failed: bool,
    /// Attempts used per retrier of the current state.
    retries: BVec<'a, u64>,
    retry_total: u32,
    task_token: Option<&'a str>,
    /// HeartbeatSeconds of the running task, in nanoseconds (0: none).
    heartbeat_nanos: i64,
    /// When the running task was started.
    task_started: i64,
    /// The last state data (input or output) and the last result of this frame that
    /// passed the payload-size check, with bounds of their size: a value that is one of
    /// them is not walked again, and a `ResultPath` output's bound is composed from its
    /// parts' (see `Exec::compose_bound`).
    checked: Checked<'a>,
    checked_res: Checked<'a>,
}

/// A value that passed the payload-size check and an upper bound of its JSON text's
/// length (`UNWALKED`: passed without being walked, as an execution's or a branch's input).
#[derive(Clone, Copy)]
struct Checked<'a> {
    value: Value<'a>,
    bound: u32,
}

const UNWALKED: u32 = u32::MAX;

impl<'a> Checked<'a> {
    fn input(value: Value<'a>) -> Self {
        Checked { value, bound: UNWALKED }
    }
}

struct Join<'a> {
    map: u32,
    results: BVec<'a, Value<'a>>,
    items: &'a [Value<'a>],
    selector_input: Value<'a>,
    started: u32,
    finished: u32,
    running: u32,
    max_concurrency: u32,
    failures: u32,
    tolerated_count: Option<u64>,
    tolerated_percentage: Option<f64>,
    /// An upper bound of the JSON length of the results so far (brackets, a separator
    /// per result, each result's own bound), or `UNWALKED` once a result has none: when
    /// the join completes, its result array passes the payload check on this bound.
    bound: u32,
}

struct Scope<'a> {
    parent: u32,
    vars: BVec<'a, (Sym, Value<'a>)>,
}

/// One execution.
pub struct Exec<'a> {
    prog: &'a Program,
    bump: &'a Bump,
    consts: &'a [Value<'a>],
    frames: BVec<'a, Frame<'a>>,
    free: BVec<'a, u32>,
    runnable: BVec<'a, u32>,
    joins: BVec<'a, Join<'a>>,
    scopes: BVec<'a, Scope<'a>>,
    mock_counts: BVec<'a, u32>,
    input: Value<'a>,
    meta: ExecInfo<'a>,
    ctx_execution: Cell<Option<(Value<'a>, Value<'a>)>>,
    rng: Cell<u64>,
    events: u32,
    /// Which event types to record ([`EventMask::NONE`]: none, the usual case).
    record: EventMask,
    /// The recorded events and what recording needs; `None` until `record_events`.
    rec: Option<&'a mut Recorder<'a>>,
    transitions: u64,
    deadline: Option<i64>,
    /// Frames whose status has a deadline (timers to check).
    timed: u32,
    next_call: u64,
    outbox: Vec<AsyncCall>,
    /// Tokens of callback tasks that timed out since the driver last asked.
    expired: Vec<&'a str>,
    outcome: Option<Outcome<'a>>,
    /// JSONata conversions of this execution's values (empty unless it runs JSONata).
    memo: crate::jsonata::Memo,
}

/// What an execution keeps while it records history events. It lives in the arena and is
/// made by the first `record_events`, so an execution that never records carries one null
/// pointer and its frames stay as small as before.
struct Recorder<'a> {
    events: BVec<'a, HistoryEvent<'a>>,
    /// Per frame, the variables its current state assigned (for `…StateExited`).
    assigned: BVec<'a, &'a [(&'a str, Value<'a>)]>,
    /// Events from `events[outside_from..]` were recorded between turns (asynchronous
    /// answers, callbacks): the next `run` stamps them with its clock.
    outside_from: usize,
    /// The time events are stamped with: read at each turn, state entry and task
    /// completion.
    now: i64,
}

/// [`ExecMeta`], borrowed: what an execution keeps of its metadata. A driver that keeps many
/// executions (the sharded executor) builds this from strings it owns elsewhere (the
/// machine's ARNs, the execution's name formatted into its arena), so starting an
/// execution allocates nothing on the heap.
#[derive(Clone, Copy, Debug)]
pub struct ExecInfo<'a> {
    pub execution_arn: &'a str,
    pub name: &'a str,
    pub state_machine_arn: &'a str,
    pub state_machine_name: &'a str,
    pub role_arn: &'a str,
    /// Unix nanoseconds.
    pub start_time: i64,
    pub redrive_count: u32,
}

impl ExecMeta {
    pub fn borrow(&self) -> ExecInfo<'_> {
        ExecInfo {
            execution_arn: &self.execution_arn,
            name: &self.name,
            state_machine_arn: &self.state_machine_arn,
            state_machine_name: &self.state_machine_name,
            role_arn: &self.role_arn,
            start_time: self.start_time,
            redrive_count: self.redrive_count,
        }
    }
}

/// Evaluation environment of one frame.
struct FrameEnv<'e, 'a> {
    exec: &'e Exec<'a>,
    frame: u32,
    input: Value<'a>,
    map_item: Option<(u32, Value<'a>)>,
    /// JSONata's `$states.result` (in `Output` and `Assign` of a Task, Parallel or Map).
    result: Option<Value<'a>>,
    /// JSONata's `$states.errorOutput` (in a catcher's `Output` and `Assign`).
    error_output: Option<Value<'a>>,
}

impl<'a> Env<'a> for FrameEnv<'_, 'a> {
    fn bump(&self) -> &'a Bump {
        self.exec.bump
    }
    fn input(&self) -> Value<'a> {
        self.input
    }
    fn context(&self) -> Value<'a> {
        self.exec.context(self.frame, self.map_item)
    }
    fn variable(&self, name: Sym) -> Option<Value<'a>> {
        self.exec.lookup(self.exec.frames[self.frame as usize].scope, name)
    }
    fn random_u64(&self) -> u64 {
        splitmix64(&self.exec.rng)
    }
    fn states(&self, context: bool) -> Value<'a> {
        let mut members: smallvec::SmallVec<[value::Member<'a>; 4]> = smallvec::SmallVec::new();
        members.push(("input", self.exec.frames[self.frame as usize].raw));
        if let Some(r) = self.result {
            members.push(("result", r));
        }
        if let Some(e) = self.error_output {
            members.push(("errorOutput", e));
        }
        if context {
            members.push(("context", self.context()));
        }
        value::object(self.exec.bump, &members)
    }
    fn jsonata_memo(&self) -> Option<&crate::jsonata::Memo> {
        Some(&self.exec.memo)
    }
    fn now_millis(&self) -> i64 {
        // The state's entry time (programs with JSONata always record it): jsonata-js also
        // fixes the time once per evaluation.
        self.exec.frames[self.frame as usize].entered_at.div_euclid(1_000_000)
    }
}

/// Result of running a frame's ops: keep going, or the frame stopped (blocked, finished or
/// failed; its status says which).
enum Flow {
    Continue,
    Stop,
}

impl Status {
    /// The time this status ends by itself (timer or timeout), if any.
    fn deadline(self) -> Option<i64> {
        match self {
            Status::Sleeping(t) => Some(t),
            Status::Backoff(_) => Some(i64::MIN),
            Status::AwaitingTask { deadline, .. } if deadline != i64::MAX => Some(deadline),
            Status::AwaitingCallback { deadline, heartbeat } if deadline.min(heartbeat) != i64::MAX => {
                Some(deadline.min(heartbeat))
            }
            _ => None,
        }
    }
}

impl<'a> Exec<'a> {
    /// Starts an execution (counts `ExecutionStarted`). `seed` drives `States.UUID`,
    /// `States.MathRandom` without a seed, retry jitter and task tokens.
    pub fn new(prog: &'a Program, bump: &'a Bump, input: Value<'a>, meta: &'a ExecMeta, seed: u64) -> Exec<'a> {
        Exec::start(prog, bump, input, meta.borrow(), seed)
    }

    /// [`Exec::new`] with borrowed metadata.
    pub fn start(prog: &'a Program, bump: &'a Bump, input: Value<'a>, meta: ExecInfo<'a>, seed: u64) -> Exec<'a> {
        let mut exec = Exec::blank(prog, bump, input, meta, seed);
        exec.enter_root();
        exec
    }

    /// [`Exec::start`], built in `room` (a slot its driver pools): the ~700-byte `Exec` is
    /// written once, where it stays, instead of being built and then moved there.
    pub fn start_in<'r>(
        room: &'r mut MaybeUninit<Exec<'a>>,
        prog: &'a Program,
        bump: &'a Bump,
        input: Value<'a>,
        meta: ExecInfo<'a>,
        seed: u64,
    ) -> &'r mut Exec<'a> {
        let exec = room.write(Exec::blank(prog, bump, input, meta, seed));
        exec.enter_root();
        exec
    }

    /// Tells a new execution that its input was parsed from `len` bytes of JSON text. Its
    /// compact JSON is then at most 8 × `len` bytes (a string prints no longer than it was
    /// written; a number, at least 3 characters when it is a float, prints in at most 24),
    /// so when that is within the payload limit the input passes the size check without
    /// being walked. Call it before the first `run`.
    pub fn input_text_len(&mut self, len: usize) {
        let bound = len.saturating_mul(8);
        if bound <= PAYLOAD_LIMIT {
            if let Some(root) = self.frames.first_mut() {
                if same(&root.raw, &self.input) {
                    root.checked = Checked { value: self.input, bound: bound as u32 };
                }
            }
        }
    }

    /// An execution with nothing entered yet. Inlined so that `start_in` writes the fields
    /// straight into its room.
    #[inline(always)]
    fn blank(prog: &'a Program, bump: &'a Bump, input: Value<'a>, meta: ExecInfo<'a>, seed: u64) -> Exec<'a> {
        let deadline =
            prog.timeout_seconds.map(|t| meta.start_time.saturating_add((t as i64).saturating_mul(NANOS_PER_SEC)));
        // The stacks get the room the program's Parallel branches need at once (one
        // allocation each); with no branches, the root's frame and scope and nothing more.
        let n = prog.frames_hint.max(1) as usize;
        let nested = prog.parallels.len() + prog.maps.len();
        Exec {
            prog,
            bump,
            consts: prog.consts.values(),
            frames: BVec::with_capacity_in(n, bump),
            free: BVec::with_capacity_in(n - 1, bump),
            runnable: BVec::with_capacity_in(n, bump),
            joins: BVec::with_capacity_in(nested.min(n), bump),
            scopes: BVec::with_capacity_in(n, bump),
            mock_counts: BVec::new_in(bump),
            input,
            meta,
            ctx_execution: Cell::new(None),
            rng: Cell::new(seed),
            events: 1,
            record: EventMask::NONE,
            rec: None,
            transitions: 0,
            deadline,
            timed: 0,
            next_call: 0,
            outbox: Vec::new(),
            expired: Vec::new(),
            outcome: None,
            memo: Default::default(),
        }
    }

    /// The root scope and frame, ready to run the start state.
    fn enter_root(&mut self) {
        self.scopes.push(Scope { parent: NONE, vars: BVec::new_in(self.bump) });
        let root = self.new_frame(self.prog.start, self.input, 0, NONE, 0);
        self.runnable.push(root);
    }

    /// The outcome, once `run` returned `Poll::Finished`.
    pub fn outcome(&self) -> Option<Outcome<'a>> {
        self.outcome
    }

    /// State transitions so far (states entered).
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// History events counted so far (AWS numbering).
    pub fn event_count(&self) -> u32 {
        self.events
    }

    /// Records, from now on, the history events whose types are in `mask` (a log level's
    /// mask, or [`EventMask::ALL`] for `GetExecutionHistory`). Called before the first
    /// `run`, it also records `ExecutionStarted` (stamped with the execution's start time).
    /// Ids are the same whether or not events are recorded; `previousEventId`s are tracked
    /// only while recording, so call this before the first `run` (as drivers do) for them
    /// to be exact.
    pub fn record_events(&mut self, mask: EventMask) {
        self.record = mask;
        if mask.is_empty() && self.rec.is_none() {
            // Level OFF: nothing to keep, and `run` stays on its fast path.
            return;
        }
        let bump = self.bump;
        let start = self.meta.start_time;
        let rec = self.rec.get_or_insert_with(|| {
            bump.alloc(Recorder {
                events: BVec::new_in(bump),
                assigned: BVec::new_in(bump),
                outside_from: 0,
                now: start,
            })
        });
        if self.events == 1 && rec.events.is_empty() && mask.contains(EventType::ExecutionStarted) {
            rec.events.push(HistoryEvent {
                id: 1,
                previous_event_id: 0,
                timestamp: start,
                kind: EventType::ExecutionStarted,
                details: EventDetails::ExecutionStarted { input: self.input, role_arn: self.meta.role_arn },
            });
        }
        rec.outside_from = rec.events.len();
    }

    /// Hands every event recorded since the last call to `f`, in id order, and forgets them.
    /// Call it after each `run` (and after delivering answers if no `run` follows).
    pub fn drain_events(&mut self, mut f: impl FnMut(&HistoryEvent<'a>)) {
        if let Some(rec) = self.rec.as_deref_mut() {
            for ev in rec.events.iter() {
                f(ev);
            }
            rec.events.clear();
            rec.outside_from = 0;
        }
    }

    /// Asynchronous task invocations started since the last call; the driver must run
    /// them and report back with [`Exec::complete_task`].
    pub fn take_async_calls(&mut self) -> Vec<AsyncCall> {
        std::mem::take(&mut self.outbox)
    }

    /// Delivers an asynchronous answer. Answers for calls that no longer wait (the task
    /// timed out, or its branch was cancelled) are ignored.
    pub fn complete_task(&mut self, call: u64, result: Result<serde_json::Value, TaskError>) {
        let Some(f) =
            self.frames.iter().position(|fr| matches!(fr.status, Status::AwaitingTask { call: c, .. } if c == call))
        else {
            return;
        };
        let f = f as u32;
        let Status::AwaitingTask { deadline, .. } = self.frames[f as usize].status else { unreachable!() };
        match result {
            Ok(v) if self.current_task(f).is_some_and(|t| t.callback) => {
                // The handler delivered the task token; the result comes with SendTaskSuccess.
                self.emit(f, move |s| s.task_submitted(f, Value::from_serde(s.bump, &v)));
                let fr = &self.frames[f as usize];
                let heartbeat = match fr.heartbeat_nanos {
                    0 => i64::MAX,
                    h => fr.task_started.saturating_add(h),
                };
                self.set_status(f, Status::AwaitingCallback { deadline, heartbeat });
            }
            Ok(v) => {
                let v = Value::from_serde(self.bump, &v);
                self.finish_task(f, v);
            }
            Err(e) => {
                let fail = self.task_failure(&e);
                self.emit(f, move |s| s.task_error(f, TaskOutcome::Failed, fail));
                self.set_status(f, Status::Ready);
                self.raise_later(f, fail);
            }
        }
    }

    /// Tokens of callback tasks that timed out since the last call (callbacks with them get
    /// `TaskTimedOut`).
    pub fn take_expired_tokens(&mut self) -> Vec<&'a str> {
        std::mem::take(&mut self.expired)
    }

    /// The tokens of the callback tasks now waiting for SendTaskSuccess/Failure.
    pub fn waiting_tokens(&self) -> Vec<&'a str> {
        self.frames
            .iter()
            .filter(|fr| matches!(fr.status, Status::AwaitingCallback { .. }))
            .filter_map(|fr| fr.task_token)
            .collect()
    }

    fn callback_frame(&self, token: &str) -> Result<u32, CallbackError> {
        self.frames
            .iter()
            .position(|fr| matches!(fr.status, Status::AwaitingCallback { .. }) && fr.task_token == Some(token))
            .map(|f| f as u32)
            .ok_or(CallbackError::TaskDoesNotExist)
    }

    /// SendTaskSuccess: the callback task with `token` completes with `output` (JSON text).
    pub fn send_task_success(&mut self, token: &str, output: &[u8]) -> Result<(), CallbackError> {
        let f = self.callback_frame(token)?;
        let v = crate::value::parse_json(self.bump, output).map_err(|e| CallbackError::InvalidOutput(e.to_string()))?;
        self.finish_task(f, v);
        Ok(())
    }

    /// SendTaskFailure: the callback task with `token` fails with `error`/`cause`.
    pub fn send_task_failure(&mut self, token: &str, error: &str, cause: Option<&str>) -> Result<(), CallbackError> {
        let f = self.callback_frame(token)?;
        let fail = self.task_failure(&TaskError { error: error.to_owned(), cause: cause.map(str::to_owned) });
        self.emit(f, move |s| s.task_error(f, TaskOutcome::Failed, fail));
        self.set_status(f, Status::Ready);
        self.raise_later(f, fail);
        Ok(())
    }

    /// SendTaskHeartbeat: the callback task with `token` is alive; its heartbeat timer
    /// restarts.
    pub fn send_task_heartbeat(&mut self, token: &str, clock: &dyn Clock) -> Result<(), CallbackError> {
        let f = self.callback_frame(token)?;
        let fr = &self.frames[f as usize];
        if let (Status::AwaitingCallback { deadline, .. }, h) = (fr.status, fr.heartbeat_nanos) {
            if h > 0 {
                self.set_status(f, Status::AwaitingCallback { deadline, heartbeat: clock.now().saturating_add(h) });
            }
        }
        Ok(())
    }

    /// A task produced its result `v`: size check, then the state goes on.
    fn finish_task(&mut self, f: u32, v: Value<'a>) {
        self.emit(f, move |s| s.task_succeeded(f, v));
        self.set_status(f, Status::Ready);
        let fr = &mut self.frames[f as usize];
        fr.res = v;
        fr.pc += 1;
        match self.check_task_result(f) {
            Ok(()) => self.runnable.push(f),
            Err(fail) => {
                // The failure belongs to the Task op, not the op after it.
                self.frames[f as usize].pc -= 1;
                self.raise_later(f, fail);
            }
        }
    }

    fn task_failure(&self, e: &TaskError) -> Failure<'a> {
        Failure {
            error: Some(self.bump.alloc_str(&e.error)),
            cause: e.cause.as_deref().map(|c| &*self.bump.alloc_str(c)),
            heartbeat: false,
        }
    }

    /// The Task spec of the state frame `f` is in, if it is a Task.
    fn current_task(&self, f: u32) -> Option<&'a TaskSpec> {
        let prog = self.prog;
        prog.states[self.frames[f as usize].state as usize].task.map(|t| &prog.tasks[t as usize])
    }

    /// Runs until the execution finishes, every frame waits, or `budget` states have been
    /// entered.
    pub fn run(&mut self, clock: &dyn Clock, budget: u32) -> Poll {
        let Some(rec) = self.rec.as_deref_mut() else {
            return self.turn(clock, budget);
        };
        // Events recorded between turns (answers, callbacks) happened just now.
        rec.now = clock.now();
        for ev in &mut rec.events[rec.outside_from..] {
            ev.timestamp = rec.now;
        }
        let poll = self.turn(clock, budget);
        if let Some(rec) = self.rec.as_deref_mut() {
            rec.outside_from = rec.events.len();
        }
        poll
    }

    #[inline]
    fn turn(&mut self, clock: &dyn Clock, budget: u32) -> Poll {
        let mut entered = 0u32;
        loop {
            if self.outcome.is_some() {
                return Poll::Finished;
            }
            if self.timed > 0 || self.runnable.is_empty() {
                let now = clock.now();
                if let Some(d) = self.deadline {
                    if now >= d {
                        self.time_out(d);
                        return Poll::Finished;
                    }
                }
                self.wake(now);
                // A timeout that fired may have ended the execution (no catcher).
                if self.outcome.is_some() {
                    return Poll::Finished;
                }
            }
            let Some(f) = self.runnable.pop() else {
                return Poll::Blocked { wake_at: self.next_wake() };
            };
            if self.frames[f as usize].status != Status::Ready {
                continue;
            }
            if entered >= budget {
                self.runnable.push(f);
                return Poll::Yielded;
            }
            self.step(f, clock, &mut entered, budget);
        }
    }

    // ------------------------------------------------------------------------------------
    // Frames

    fn new_frame(&mut self, pc: Pc, input: Value<'a>, scope: u32, parent: u32, slot: u32) -> u32 {
        let frame = Frame {
            pc,
            state: 0,
            status: Status::Ready,
            raw: input,
            eff: input,
            res: input,
            out: input,
            scope,
            parent,
            slot,
            join: NONE,
            entered_event: 0,
            entered_at: 0,
            last_event: 0,
            join_failed: false,
            retries: BVec::new_in(self.bump),
            retry_total: 0,
            task_token: None,
            heartbeat_nanos: 0,
            task_started: 0,
            checked: Checked::input(input),
            checked_res: Checked::input(Value::Null),
        };
        match self.free.pop() {
            Some(i) => {
                let old = std::mem::replace(&mut self.frames[i as usize], frame);
                // Keep the retry counters' buffer.
                let mut retries = old.retries;
                retries.clear();
                self.frames[i as usize].retries = retries;
                i
            }
            None => {
                self.frames.push(frame);
                self.frames.len() as u32 - 1
            }
        }
    }

    fn new_scope(&mut self, parent: u32) -> u32 {
        self.scopes.push(Scope { parent, vars: BVec::new_in(self.bump) });
        self.scopes.len() as u32 - 1
    }

    /// Changes a frame's status, keeping the count of frames with deadlines.
    fn set_status(&mut self, f: u32, status: Status) {
        let fr = &mut self.frames[f as usize];
        let was = fr.status.deadline().is_some();
        let is = status.deadline().is_some();
        fr.status = status;
        match (was, is) {
            (false, true) => self.timed += 1,
            (true, false) => self.timed -= 1,
            _ => {}
        }
    }

    fn lookup(&self, mut scope: u32, name: Sym) -> Option<Value<'a>> {
        while scope != NONE {
            let s = &self.scopes[scope as usize];
            if let Some((_, v)) = s.vars.iter().rev().find(|(n, _)| *n == name) {
                return Some(*v);
            }
            scope = s.parent;
        }
        None
    }

    fn wake(&mut self, now: i64) {
        if self.timed == 0 {
            return;
        }
        for i in 0..self.frames.len() {
            let f = i as u32;
            match self.frames[i].status {
                Status::Backoff(delay) => self.set_status(f, Status::Sleeping(now.saturating_add(delay))),
                Status::Sleeping(t) if t <= now => {
                    self.set_status(f, Status::Ready);
                    self.runnable.push(f);
                }
                Status::AwaitingTask { deadline, .. } if deadline <= now => {
                    self.set_status(f, Status::Ready);
                    let fail = Failure::new("States.Timeout", None);
                    self.emit(f, move |s| s.task_error(f, TaskOutcome::TimedOut, fail));
                    self.raise_later(f, fail);
                }
                Status::AwaitingCallback { deadline, heartbeat } if deadline.min(heartbeat) <= now => {
                    self.set_status(f, Status::Ready);
                    if let Some(t) = self.frames[i].task_token {
                        self.expired.push(t);
                    }
                    let mut fail = Failure::new("States.Timeout", None);
                    self.emit(f, move |s| s.task_error(f, TaskOutcome::TimedOut, fail));
                    // AWS reports a missed heartbeat as States.Timeout; catchers naming
                    // States.HeartbeatTimeout match it too.
                    fail.heartbeat = heartbeat < deadline;
                    self.raise_later(f, fail);
                }
                _ => {}
            }
        }
    }

    fn next_wake(&self) -> Option<i64> {
        let timers = self.frames.iter().filter_map(|f| f.status.deadline());
        timers.chain(self.deadline).min()
    }

    /// Raises a failure for a frame that is not currently running (timer, async answer).
    fn raise_later(&mut self, f: u32, fail: Failure<'a>) {
        if let Flow::Continue = self.raise(f, fail, None) {
            self.runnable.push(f);
        }
    }

    /// The definition's `TimeoutSeconds` passed; `deadline` is when.
    fn time_out(&mut self, deadline: i64) {
        self.end_timed_out("The execution ran longer than its TimeoutSeconds allows.", deadline);
    }

    /// Ends the execution now with `TIMED_OUT` / `States.Timeout` and `cause`, unless it has
    /// finished already. For drivers that enforce a limit the definition does not state
    /// (the Express 5-minute cap); the definition's own `TimeoutSeconds` is enforced by
    /// `run` itself.
    /// `at` is the instant the limit was reached (the event's timestamp when recording).
    pub fn end_timed_out(&mut self, cause: &'a str, at: i64) {
        if self.outcome.is_some() {
            return;
        }
        if let Some(rec) = self.rec.as_deref_mut() {
            rec.now = at;
        }
        let fail = Failure { error: Some("States.Timeout"), cause: Some(cause), heartbeat: false };
        self.emit(ROOT, move |_| {
            (EventType::ExecutionTimedOut, EventDetails::Error { error: fail.error, cause: fail.cause })
        });
        self.outcome = Some(Outcome::TimedOut(fail));
    }

    fn env(&self, f: u32, input: Value<'a>) -> FrameEnv<'_, 'a> {
        FrameEnv { exec: self, frame: f, input, map_item: None, result: None, error_output: None }
    }

    /// JSONata's `$states.result` of frame `f`'s state, if its kind has one.
    fn state_result(&self, f: u32) -> Option<Value<'a>> {
        let fr = &self.frames[f as usize];
        self.prog.states[fr.state as usize].kind.can_retry().then_some(fr.res)
    }

    // ------------------------------------------------------------------------------------
    // The run loop

    fn step(&mut self, f: u32, clock: &dyn Clock, entered: &mut u32, budget: u32) {
        let prog = self.prog;
        loop {
            let fi = f as usize;
            let pc = self.frames[fi].pc;
            let op = prog.ops[pc as usize];
            let flow = match op {
                Op::Enter(s) => {
                    if *entered >= budget {
                        self.runnable.push(f);
                        return;
                    }
                    *entered += 1;
                    self.transitions += 1;
                    if self.deadline.is_some() || prog.uses_context || !self.record.is_empty() {
                        let now = clock.now();
                        if let Some(d) = self.deadline.filter(|&d| now >= d) {
                            self.time_out(d);
                            return;
                        }
                        self.frames[fi].entered_at = now;
                        if let Some(rec) = self.rec.as_deref_mut() {
                            rec.now = now;
                        }
                    }
                    let info = &prog.states[s as usize];
                    let id = self.emit(f, move |x| {
                        (
                            entered_type(info.kind),
                            EventDetails::StateEntered { name: &info.name, input: x.frames[fi].raw },
                        )
                    });
                    let fr = &mut self.frames[fi];
                    fr.state = s;
                    fr.entered_event = id;
                    fr.eff = fr.raw;
                    fr.res = fr.raw;
                    fr.out = fr.raw;
                    fr.retry_total = 0;
                    fr.retries.clear();
                    fr.retries.resize((info.retriers.end - info.retriers.start) as usize, 0);
                    fr.task_token = None;
                    if info.task.is_some_and(|t| prog.tasks[t as usize].callback) {
                        self.new_task_token(f);
                    }
                    fr_next(&mut self.frames[fi]);
                    Flow::Continue
                }
                Op::InputPath(p) => {
                    let raw = self.frames[fi].raw;
                    match self.eval_path(f, &prog.paths[p as usize], raw) {
                        Ok(v) => {
                            let fr = &mut self.frames[fi];
                            fr.eff = v;
                            fr.res = v;
                            fr_next(fr);
                            Flow::Continue
                        }
                        Err(fail) => self.raise(f, fail, Some(clock)),
                    }
                }
                Op::InputNull => {
                    let fr = &mut self.frames[fi];
                    fr.eff = Value::EMPTY_OBJECT;
                    fr.res = Value::EMPTY_OBJECT;
                    fr_next(fr);
                    Flow::Continue
                }
                Op::Parameters(t) => {
                    let eff = self.frames[fi].eff;
                    let r = prog.templates[t as usize].eval(&self.env(f, eff), self.consts);
                    match r.map_err(|e| self.eval_failure(f, e)).and_then(|v| self.check_size(f, v).map(|b| (v, b))) {
                        Ok((v, bound)) => {
                            let fr = &mut self.frames[fi];
                            fr.eff = v;
                            fr.res = v;
                            fr.checked_res = Checked { value: v, bound };
                            fr_next(fr);
                            Flow::Continue
                        }
                        Err(fail) => self.raise(f, fail, Some(clock)),
                    }
                }
                Op::PassResult(c) => {
                    let fr = &mut self.frames[fi];
                    fr.res = self.consts[c as usize];
                    fr_next(fr);
                    Flow::Continue
                }
                Op::Task(t) => self.task(f, t, clock),
                Op::Wait(w) => self.wait(f, w, clock),
                Op::Parallel(p) => self.parallel(f, p),
                Op::Map(m) => self.map(f, m, clock),
                Op::ResultSelector(t) => {
                    let res = self.frames[fi].res;
                    match prog.templates[t as usize].eval(&self.env(f, res), self.consts) {
                        Ok(v) => {
                            let fr = &mut self.frames[fi];
                            fr.res = v;
                            fr_next(fr);
                            Flow::Continue
                        }
                        Err(e) => {
                            let fail = self.eval_failure(f, e);
                            self.raise(f, fail, Some(clock))
                        }
                    }
                }
                Op::ResultPath(p) => {
                    let fr = &self.frames[fi];
                    let path = &prog.ref_paths[p as usize];
                    match path.set(self.bump, fr.raw, fr.res) {
                        Ok(v) => {
                            self.compose_bound(f, v, path.growth_bound());
                            let fr = &mut self.frames[fi];
                            fr.out = v;
                            fr_next(fr);
                            Flow::Continue
                        }
                        Err(e) => {
                            let fail = self.eval_failure(f, e);
                            self.raise(f, fail, Some(clock))
                        }
                    }
                }
                Op::DiscardResult => {
                    let fr = &mut self.frames[fi];
                    fr.out = fr.raw;
                    fr_next(fr);
                    Flow::Continue
                }
                Op::ResultToOutput => {
                    let fr = &mut self.frames[fi];
                    fr.out = fr.res;
                    fr_next(fr);
                    Flow::Continue
                }
                Op::OutputPath(p) => {
                    let out = self.frames[fi].out;
                    match self.eval_path(f, &prog.paths[p as usize], out) {
                        Ok(v) => {
                            let fr = &mut self.frames[fi];
                            fr.out = v;
                            fr_next(fr);
                            Flow::Continue
                        }
                        Err(fail) => self.raise(f, fail, Some(clock)),
                    }
                }
                Op::OutputNull => {
                    let fr = &mut self.frames[fi];
                    fr.out = Value::EMPTY_OBJECT;
                    fr_next(fr);
                    Flow::Continue
                }
                Op::Output(t) => {
                    let res = self.frames[fi].res;
                    let env = FrameEnv { result: self.state_result(f), ..self.env(f, res) };
                    match prog.templates[t as usize].eval(&env, self.consts) {
                        Ok(v) => {
                            let fr = &mut self.frames[fi];
                            fr.out = v;
                            fr_next(fr);
                            Flow::Continue
                        }
                        Err(e) => {
                            let fail = self.eval_failure(f, e);
                            self.raise(f, fail, Some(clock))
                        }
                    }
                }
                Op::Assign(a) => {
                    let res = self.frames[fi].res;
                    match self.assign(f, a, res, self.state_result(f), None) {
                        Ok(()) => {
                            fr_next(&mut self.frames[fi]);
                            Flow::Continue
                        }
                        Err(fail) => self.raise(f, fail, Some(clock)),
                    }
                }
                Op::Choice(c) => self.choice(f, c, clock),
                Op::Next(target) => {
                    if let Err(fail) = self.check_output(f) {
                        self.raise(f, fail, Some(clock))
                    } else {
                        self.emit_exited(f);
                        let fr = &mut self.frames[fi];
                        fr.raw = fr.out;
                        fr.pc = target;
                        Flow::Continue
                    }
                }
                Op::End => {
                    if let Err(fail) = self.check_output(f) {
                        self.raise(f, fail, Some(clock))
                    } else {
                        self.emit_exited(f);
                        self.finish_frame(f);
                        Flow::Stop
                    }
                }
                Op::Fail(i) => {
                    let fail = self.fail_state(f, &prog.fails[i as usize]);
                    self.raise(f, fail, Some(clock))
                }
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    /// Output size check for states that changed their input (a pass-through cannot grow)
    /// and whose output has not passed already.
    fn check_output(&mut self, f: u32) -> Result<(), Failure<'a>> {
        let fr = &self.frames[f as usize];
        let out = fr.out;
        if same(&out, &fr.raw) || same(&out, &fr.checked.value) || same(&out, &fr.checked_res.value) {
            return Ok(());
        }
        let bound = self.check_size(f, out)?;
        self.frames[f as usize].checked = Checked { value: out, bound };
        Ok(())
    }

    /// The bound frame `f` knows for `v`, or `v` walked (and remembered when it is the
    /// state's input); `None` when `v` is over the limit.
    fn payload_bound(&mut self, f: u32, v: Value<'a>) -> Option<u32> {
        if let Some(b) = self.known_bound(f, v) {
            return Some(b);
        }
        let fr = &mut self.frames[f as usize];
        let bound = v.json_bound(PAYLOAD_LIMIT)? as u32;
        if same(&v, &fr.raw) {
            fr.checked = Checked { value: v, bound };
        }
        Some(bound)
    }

    /// A bound of `v`'s JSON length that frame `f` already knows (its checked output or
    /// task result), without walking.
    fn known_bound(&self, f: u32, v: Value<'a>) -> Option<u32> {
        let fr = &self.frames[f as usize];
        if fr.checked.bound != UNWALKED && same(&v, &fr.checked.value) {
            Some(fr.checked.bound)
        } else if fr.checked_res.bound != UNWALKED && same(&v, &fr.checked_res.value) {
            Some(fr.checked_res.bound)
        } else {
            None
        }
    }

    /// `out` is `raw` with `res` placed at a reference path that adds at most `growth`
    /// bytes of keys and braces: its JSON is at most `raw`'s bound + `res`'s + `growth`.
    /// When that is within the limit, `out` passes without being walked (the state data
    /// of a workflow that keeps adding results to its input is then walked once, not once
    /// per state); otherwise `check_output` walks it.
    fn compose_bound(&mut self, f: u32, out: Value<'a>, growth: usize) {
        let fr = &self.frames[f as usize];
        let (raw, res) = (fr.raw, fr.res);
        let Some(a) = self.payload_bound(f, raw) else { return };
        let Some(b) = self.payload_bound(f, res) else { return };
        let bound = a as usize + b as usize + growth;
        if bound <= PAYLOAD_LIMIT {
            self.frames[f as usize].checked = Checked { value: out, bound: bound as u32 };
        }
    }

    /// The payload-size check: `Ok` with an upper bound of `v`'s JSON length when it fits.
    fn check_size(&self, f: u32, v: Value<'a>) -> Result<u32, Failure<'a>> {
        if let Some(bound) = v.json_bound(PAYLOAD_LIMIT) {
            return Ok(bound as u32);
        }
        let name = &self.prog.states[self.frames[f as usize].state as usize].name;
        Err(Failure::new(
            "States.DataLimitExceeded",
            Some(self.bump.alloc_str(&format!(
                "The state/task '{name}' returned a result with a size exceeding the maximum number of bytes service limit."
            ))),
        ))
    }

    fn check_task_result(&mut self, f: u32) -> Result<(), Failure<'a>> {
        let fr = &mut self.frames[f as usize];
        if let Some(bound) = fr.res.json_bound(PAYLOAD_LIMIT) {
            fr.checked_res = Checked { value: fr.res, bound: bound as u32 };
            return Ok(());
        }
        let info = &self.prog.states[fr.state as usize];
        let task = self.current_task(f);
        let what = match task {
            Some(t) if t.kind == ResourceKind::Integration => integration_service(&t.resource).to_owned(),
            Some(t) => t.resource.to_string(),
            None => info.name.to_string(),
        };
        Err(Failure::new(
            "States.DataLimitExceeded",
            Some(self.bump.alloc_str(&format!(
                "The state/task '{what}' returned a result with a size exceeding the maximum number of bytes service limit."
            ))),
        ))
    }

    /// AWS's decoration of runtime error causes.
    fn runtime_cause(&self, f: u32, detail: &str) -> &'a str {
        let fr = &self.frames[f as usize];
        let name = &self.prog.states[fr.state as usize].name;
        self.bump.alloc_str(&format!(
            "An error occurred while executing the state '{name}' (entered at the event id #{}). {detail}",
            fr.entered_event
        ))
    }

    fn runtime(&self, f: u32, detail: &str) -> Failure<'a> {
        Failure::new("States.Runtime", Some(self.runtime_cause(f, detail)))
    }

    fn eval_failure(&self, f: u32, e: EvalError) -> Failure<'a> {
        Failure::new(e.kind.error_name(), Some(self.runtime_cause(f, &e.message)))
    }

    /// InputPath/OutputPath (and other whole-value paths): Jayway's message, prefixed the
    /// way AWS words it (`Invalid path '$.x' : No results for path: $['x']`).
    fn eval_path(&self, f: u32, path: &Path, input: Value<'a>) -> Result<Value<'a>, Failure<'a>> {
        path.eval(&self.env(f, input))
            .map_err(|e| self.runtime(f, &format!("Invalid path '{}' : {}", path.text(), e.message)))
    }

    /// Evaluates and stores `assigns[a]`: `$` is `input` (JSONPath); JSONata reads
    /// `$states.result`/`$states.errorOutput` where the caller has them.
    fn assign(
        &mut self,
        f: u32,
        a: u32,
        input: Value<'a>,
        result: Option<Value<'a>>,
        error_output: Option<Value<'a>>,
    ) -> Result<(), Failure<'a>> {
        let assign = &self.prog.assigns[a as usize];
        let mut values: smallvec::SmallVec<[(Sym, Value<'a>); 8]> = smallvec::SmallVec::new();
        {
            let env = FrameEnv { result, error_output, ..self.env(f, input) };
            for (name, t) in &assign.vars {
                let v = t.eval(&env, self.consts).map_err(|e| self.eval_failure(f, e))?;
                values.push((*name, v));
            }
        }
        self.check_assign_size(f, &values)?;
        if !self.record.is_empty() {
            let prog = self.prog;
            let list = self.bump.alloc_slice_fill_iter(values.iter().map(|(n, v)| (prog.names.name(*n), *v)));
            self.set_assigned(f, list);
        }
        let scope = self.frames[f as usize].scope as usize;
        let vars = &mut self.scopes[scope].vars;
        for (name, v) in values {
            match vars.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = v,
                None => vars.push((name, v)),
            }
        }
        Ok(())
    }

    /// AWS's variable limits: each value, and all the values of one `Assign` together, at
    /// most 256 KiB of JSON (the 10 MiB per execution is not enforced).
    fn check_assign_size(&self, f: u32, values: &[(Sym, Value<'a>)]) -> Result<(), Failure<'a>> {
        let state = &self.prog.states[self.frames[f as usize].state as usize].name;
        let too_big = |what: String| {
            Failure::new(
                "States.DataLimitExceeded",
                Some(self.bump.alloc_str(&format!(
                    "The state/task '{state}' assigned {what} with a size exceeding the maximum number of bytes service limit."
                ))),
            )
        };
        for (name, v) in values {
            if !v.fits_json_len(PAYLOAD_LIMIT) {
                return Err(too_big(format!("the variable '{}'", self.prog.names.name(*name))));
            }
        }
        if values.len() > 1 {
            let mut total = 0usize;
            for (_, v) in values {
                total += v.json_len_capped(PAYLOAD_LIMIT + 1);
                if total > PAYLOAD_LIMIT {
                    return Err(too_big("variables".to_owned()));
                }
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------------------------
    // Errors: Retry, Catch, propagation

    /// Handles a failure raised in frame `f`'s current state. Returns `Continue` when the
    /// frame goes on running now (caught), `Stop` otherwise (retrying later, or failed).
    fn raise(&mut self, f: u32, fail: Failure<'a>, clock: Option<&dyn Clock>) -> Flow {
        let prog = self.prog;
        let fi = f as usize;
        let info = &prog.states[self.frames[fi].state as usize];
        let joined = std::mem::take(&mut self.frames[fi].join_failed);
        if !fail.is_runtime() {
            let retriers = &prog.retriers[info.retriers.start as usize..info.retriers.end as usize];
            if let Some((k, r)) =
                retriers.iter().enumerate().find(|(_, r)| r.errors.matches(fail.error, fail.heartbeat))
            {
                let used = self.frames[fi].retries[k];
                if used < r.max_attempts {
                    let fr = &mut self.frames[fi];
                    fr.retries[k] = used + 1;
                    fr.retry_total += 1;
                    let mut delay = r.delay_seconds(used + 1);
                    if r.jitter_full {
                        let u = (splitmix64(&self.rng) >> 11) as f64 / (1u64 << 53) as f64;
                        delay *= u;
                    }
                    fr.pc = info.retry_pc;
                    if info.task.is_some_and(|t| prog.tasks[t as usize].callback) {
                        self.new_task_token(f);
                    }
                    let delay_nanos = (delay * NANOS_PER_SEC as f64) as i64;
                    if delay_nanos > 0 {
                        let status = match clock {
                            Some(c) => Status::Sleeping(c.now().saturating_add(delay_nanos)),
                            None => Status::Backoff(delay_nanos),
                        };
                        self.set_status(f, status);
                        return Flow::Stop;
                    }
                    return Flow::Continue;
                }
            }
        }
        self.join_failed(f, joined);
        if !fail.is_runtime() {
            let catchers = &prog.catchers[info.catchers.start as usize..info.catchers.end as usize];
            if let Some(c) = catchers.iter().find(|c| c.errors.matches(fail.error, fail.heartbeat)) {
                return self.catch(f, c, fail, clock);
            }
        }
        self.fail_frame(f, fail);
        Flow::Stop
    }

    /// A Parallel/Map state that a child failed and that does not retry records
    /// `…StateFailed` (AWS records none before a retry: the next attempt's `…StateStarted`
    /// follows the failed child's last event).
    fn join_failed(&mut self, f: u32, joined: bool) {
        if joined {
            let kind = match self.prog.states[self.frames[f as usize].state as usize].kind {
                StateKind::Map => EventType::MapStateFailed,
                _ => EventType::ParallelStateFailed,
            };
            self.emit(f, move |_| (kind, EventDetails::None));
        }
    }

    fn catch(&mut self, f: u32, c: &'a CatchSpec, fail: Failure<'a>, clock: Option<&dyn Clock>) -> Flow {
        let fi = f as usize;
        let mut members: smallvec::SmallVec<[value::Member<'a>; 2]> = smallvec::SmallVec::new();
        if let Some(e) = fail.error {
            members.push(("Error", Value::Str(e)));
        }
        // AWS gives catchers an empty Cause when the error has none.
        members.push(("Cause", Value::Str(fail.cause.unwrap_or(""))));
        let error_output = value::object(self.bump, &members);
        let raw = self.frames[fi].raw;
        let out = match c.result {
            ResultPlacement::Replace => error_output,
            ResultPlacement::Discard => raw,
            ResultPlacement::Output(t) => {
                let env = FrameEnv { error_output: Some(error_output), ..self.env(f, error_output) };
                match self.prog.templates[t as usize].eval(&env, self.consts) {
                    Ok(v) => v,
                    Err(e) => {
                        let fail = self.eval_failure(f, e);
                        self.fail_frame(f, fail);
                        return Flow::Stop;
                    }
                }
            }
            ResultPlacement::At(p) => match self.prog.ref_paths[p as usize].set(self.bump, raw, error_output) {
                Ok(v) => v,
                Err(e) => {
                    let fail = self.eval_failure(f, e);
                    self.fail_frame(f, fail);
                    return Flow::Stop;
                }
            },
        };
        if !self.record.is_empty() {
            self.set_assigned(f, &[]);
        }
        if let Some(a) = c.assign {
            if let Err(fail) = self.assign(f, a, error_output, None, Some(error_output)) {
                self.fail_frame(f, fail);
                return Flow::Stop;
            }
        }
        let _ = clock;
        self.frames[fi].out = out;
        self.emit_exited(f);
        let fr = &mut self.frames[fi];
        fr.raw = out;
        fr.pc = c.target;
        Flow::Continue
    }

    /// The frame ends with a failure: the execution fails, or the parent Parallel/Map
    /// state sees the failure (after its other children are stopped).
    fn fail_frame(&mut self, f: u32, fail: Failure<'a>) {
        let fi = f as usize;
        self.set_status(f, Status::Failed);
        let parent = self.frames[fi].parent;
        if parent == NONE {
            self.emit(f, move |_| {
                (EventType::ExecutionFailed, EventDetails::Error { error: fail.error, cause: fail.cause })
            });
            self.outcome = Some(Outcome::Failed(fail));
            return;
        }
        let slot = self.frames[fi].slot;
        let last = self.frames[fi].last_event;
        self.release(f);
        let j = self.frames[parent as usize].join;
        let join = &mut self.joins[j as usize];
        join.running -= 1;
        join.finished += 1;
        if join.map != NONE {
            let done =
                self.emit_after(move |_| last, move |s| (EventType::MapIterationFailed, s.iteration(parent, slot)));
            let join = &mut self.joins[j as usize];
            join.failures += 1;
            let total = join.items.len() as f64;
            let within = match (join.tolerated_count, join.tolerated_percentage) {
                (None, None) => false,
                (count, pct) => {
                    let by_count = count.is_some_and(|c| join.failures as u64 <= c);
                    let by_pct = pct.is_some_and(|p| total > 0.0 && join.failures as f64 * 100.0 / total <= p);
                    by_count || by_pct
                }
            };
            if within {
                let mut members: smallvec::SmallVec<[value::Member<'a>; 2]> = smallvec::SmallVec::new();
                if let Some(e) = fail.error {
                    members.push(("Error", Value::Str(e)));
                }
                members.push(("Cause", Value::Str(fail.cause.unwrap_or(""))));
                let v = value::object(self.bump, &members);
                let join = &mut self.joins[j as usize];
                join.results[slot as usize] = v;
                join.bound = UNWALKED;
                self.after_child(parent, last, done);
                return;
            }
            let exceeded = join.tolerated_count.is_some() || join.tolerated_percentage.is_some();
            self.cancel_children(parent, last);
            self.set_status(parent, Status::Ready);
            self.set_last_event(parent, last);
            self.frames[parent as usize].join_failed = true;
            let fail = if exceeded {
                Failure::new(
                    "States.ExceedToleratedFailureThreshold",
                    Some("The specified tolerated failure threshold was exceeded"),
                )
            } else {
                fail
            };
            self.raise_later(parent, fail);
        } else {
            self.cancel_children(parent, last);
            self.set_status(parent, Status::Ready);
            self.set_last_event(parent, last);
            self.frames[parent as usize].join_failed = true;
            self.raise_later(parent, fail);
        }
    }

    /// Stops every running descendant of `parent`. Each records what AWS records for an
    /// aborted branch or iteration, after `cause` (the event that failed the join): its
    /// state's `…StateAborted` if it was inside a Task, Wait, Parallel or Map state, then
    /// `MapIterationAborted` for a Map iteration.
    fn cancel_children(&mut self, parent: u32, cause: u32) {
        let mut stack = vec![parent];
        while let Some(p) = stack.pop() {
            for i in 0..self.frames.len() {
                let fr = &self.frames[i];
                if fr.parent == p
                    && !matches!(fr.status, Status::Free | Status::Done | Status::Failed | Status::Cancelled)
                {
                    let in_state = fr.entered_event != 0 && !matches!(self.prog.ops[fr.pc as usize], Op::Enter(_));
                    let aborted = match self.prog.states[fr.state as usize].kind {
                        StateKind::Task => Some(EventType::TaskStateAborted),
                        StateKind::Wait => Some(EventType::WaitStateAborted),
                        StateKind::Map => Some(EventType::MapStateAborted),
                        StateKind::Parallel => Some(EventType::ParallelStateAborted),
                        _ => None,
                    };
                    if let Some(kind) = aborted.filter(|_| in_state) {
                        self.emit_after(move |_| cause, move |_| (kind, EventDetails::None));
                    }
                    if self.joins[self.frames[p as usize].join as usize].map != NONE {
                        let slot = self.frames[i].slot;
                        self.emit_after(
                            move |_| cause,
                            move |s| (EventType::MapIterationAborted, s.iteration(p, slot)),
                        );
                    }
                    self.set_status(i as u32, Status::Cancelled);
                    stack.push(i as u32);
                    self.release(i as u32);
                }
            }
        }
    }

    /// Returns a finished child frame to the free list.
    fn release(&mut self, f: u32) {
        self.set_status(f, Status::Free);
        self.free.push(f);
    }

    fn finish_frame(&mut self, f: u32) {
        let fi = f as usize;
        let parent = self.frames[fi].parent;
        let out = self.frames[fi].out;
        if parent == NONE {
            self.set_status(f, Status::Done);
            self.emit(f, move |_| (EventType::ExecutionSucceeded, EventDetails::Output { output: out }));
            self.outcome = Some(Outcome::Succeeded(out));
            return;
        }
        let slot = self.frames[fi].slot;
        let last = self.frames[fi].last_event;
        let bound = self.known_bound(f, out);
        self.release(f);
        let j = self.frames[parent as usize].join as usize;
        let join = &mut self.joins[j];
        join.results[slot as usize] = out;
        join.bound = match bound {
            Some(b) if join.bound != UNWALKED => join.bound.saturating_add(b.saturating_add(1)),
            _ => UNWALKED,
        };
        join.running -= 1;
        join.finished += 1;
        let done = if join.map != NONE {
            self.emit_after(move |_| last, move |s| (EventType::MapIterationSucceeded, s.iteration(parent, slot)))
        } else {
            last
        };
        self.after_child(parent, last, done);
    }

    /// A child of `parent` finished: start the next Map iteration, or complete the join.
    /// `child_last` is the child's last event (a next iteration's `MapIterationStarted`
    /// follows it); `done` the event that ended the child (`MapIteration…`, or for a
    /// Parallel branch its last event), which `…StateSucceeded` and `…StateExited` follow.
    fn after_child(&mut self, parent: u32, child_last: u32, done: u32) {
        let j = self.frames[parent as usize].join as usize;
        let join = &self.joins[j];
        if join.finished as usize == join.results.len() {
            let results = self.bump.alloc_slice_copy(&join.results);
            let bound = join.bound;
            let kind = if join.map != NONE { EventType::MapStateSucceeded } else { EventType::ParallelStateSucceeded };
            self.set_last_event(parent, done);
            self.emit_after(move |_| done, move |_| (kind, EventDetails::None));
            self.set_status(parent, Status::Ready);
            let fr = &mut self.frames[parent as usize];
            fr.res = Value::Array(results);
            if bound as usize <= PAYLOAD_LIMIT {
                // Every result's bound is known: the array passes without a walk.
                fr.checked_res = Checked { value: fr.res, bound };
            }
            fr.pc += 1;
            self.runnable.push(parent);
        } else if join.map != NONE && (join.started as usize) < join.items.len() {
            self.set_last_event(parent, child_last);
            let _ = self.spawn_iteration(parent);
        }
    }

    // ------------------------------------------------------------------------------------
    // States

    /// A callback task gets a fresh token on entry and on every retry (the callers check
    /// that the state's task is one, so the other tasks do not pay for a call).
    #[cold]
    fn new_task_token(&mut self, f: u32) {
        let mut bytes = [0u8; 48];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&splitmix64(&self.rng).to_le_bytes());
        }
        use base64::Engine as _;
        let mut text = [0u8; 64];
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut text)
            .expect("48 bytes encode to 64 characters");
        let token = std::str::from_utf8(&text[..n]).expect("base64 is ASCII");
        self.frames[f as usize].task_token = Some(self.bump.alloc_str(token));
    }

    fn seconds(&self, f: u32, spec: SecondsSpec, field: &str) -> Result<i64, Failure<'a>> {
        match spec {
            SecondsSpec::Fixed(n) => Ok(n as i64),
            SecondsSpec::Path(p) => {
                // Read from the state input, not the Parameters result (AWS: the path
                // points into the state input).
                let path = &self.prog.paths[p as usize];
                let v = self.eval_path(f, path, self.frames[f as usize].raw)?;
                match v.as_i64() {
                    Some(n) if n > 0 => Ok(n),
                    _ => Err(self.runtime(
                        f,
                        &format!(
                            "The {field}Path field refers to value \"{}\" which is not a valid positive integer: {}",
                            plain(&v),
                            path.text()
                        ),
                    )),
                }
            }
            SecondsSpec::Query(t) => {
                let v = self.query(f, t)?;
                match v.as_i64() {
                    Some(n) if n > 0 => Ok(n),
                    _ => Err(self.query_failure(
                        f,
                        &format!("The {field} field must be a positive integer, but was: {}", v.to_json_string()),
                    )),
                }
            }
        }
    }

    /// Evaluates `templates[t]` (a JSONata field of the current state: `$states.input` is
    /// the state input).
    fn query(&self, f: u32, t: u32) -> Result<Value<'a>, Failure<'a>> {
        let raw = self.frames[f as usize].raw;
        self.prog.templates[t as usize].eval(&self.env(f, raw), self.consts).map_err(|e| self.eval_failure(f, e))
    }

    /// `States.QueryEvaluationError` with `detail` after AWS's runtime prefix.
    fn query_failure(&self, f: u32, detail: &str) -> Failure<'a> {
        self.eval_failure(f, EvalError::query(detail))
    }

    fn task(&mut self, f: u32, t: u32, clock: &dyn Clock) -> Flow {
        let prog = self.prog;
        let spec = &prog.tasks[t as usize];
        let fi = f as usize;
        let timeout = match spec.timeout.map(|s| self.seconds(f, s, "TimeoutSeconds")).transpose() {
            Ok(v) => v,
            Err(fail) => return self.raise(f, fail, Some(clock)),
        };
        let heartbeat = match spec.heartbeat.map(|s| self.seconds(f, s, "HeartbeatSeconds")).transpose() {
            Ok(v) => v,
            Err(fail) => return self.raise(f, fail, Some(clock)),
        };
        if let Some(c) = spec.credentials {
            let eff = self.frames[fi].eff;
            if let Err(e) = prog.templates[c as usize].eval(&self.env(f, eff), self.consts) {
                let fail = self.eval_failure(f, e);
                return self.raise(f, fail, Some(clock));
            }
        }
        let input = self.frames[fi].eff;
        self.emit(f, move |s| s.task_scheduled(spec, input, timeout, heartbeat));
        self.emit(f, move |s| s.task_started(spec));
        let state_name: &'a str = &prog.states[self.frames[fi].state as usize].name;
        let retry_count = self.frames[fi].retry_total;
        let mut timed_out = false;
        // Timeouts are measured from here; clock reads only when a task has one.
        let started = if timeout.is_some() || heartbeat.is_some() { clock.now() } else { 0 };
        let deadline = timeout.map_or(i64::MAX, |s| started.saturating_add(s.saturating_mul(NANOS_PER_SEC)));
        {
            let fr = &mut self.frames[fi];
            fr.task_started = started;
            fr.heartbeat_nanos = heartbeat.map_or(0, |h| h.saturating_mul(NANOS_PER_SEC));
        }
        let result: Result<Value<'a>, Failure<'a>> = match &spec.binding {
            Binding::Mock(m) => {
                // A mock answers callback tasks too (Step Functions Local semantics: the
                // mocked response is what SendTaskSuccess would have delivered).
                while self.mock_counts.len() <= t as usize {
                    self.mock_counts.push(0);
                }
                let n = self.mock_counts[t as usize];
                self.mock_counts[t as usize] += 1;
                match m.replies.get(n as usize).and_then(|r| r.as_ref()) {
                    Some(MockReply::Return(c)) => Ok(self.consts[c.0 as usize]),
                    Some(MockReply::Throw { error, cause }) => {
                        Err(Failure { error: Some(error), cause: cause.as_deref(), heartbeat: false })
                    }
                    None => Err(self.runtime(
                        f,
                        &format!(
                            "No mocked response for invocation #{n} of state '{state_name}'{}",
                            m.test_case.as_ref().map_or(String::new(), |c| format!(" in test case '{c}'"))
                        ),
                    )),
                }
            }
            Binding::Handler(Handler::Sync(h)) => {
                let ctx = TaskContext {
                    state_name,
                    resource: &spec.resource,
                    retry_count,
                    task_token: self.frames[fi].task_token,
                    execution_arn: self.meta.execution_arn,
                };
                match h.call(&ctx, input, Arena::new(self.bump)) {
                    Ok(v) if spec.callback => {
                        // The handler delivered the token; the result comes with
                        // SendTaskSuccess (or the task times out).
                        self.tick(clock);
                        self.emit(f, move |s| s.task_submitted(f, v));
                        let hb = self.frames[fi].heartbeat_nanos;
                        let heartbeat = if hb > 0 { clock.now().saturating_add(hb) } else { i64::MAX };
                        self.set_status(f, Status::AwaitingCallback { deadline, heartbeat });
                        return Flow::Stop;
                    }
                    // An inline handler cannot be interrupted; one that overran its
                    // TimeoutSeconds is reported as timed out, as AWS would have.
                    Ok(_) if timeout.is_some() && clock.now() > deadline => {
                        timed_out = true;
                        Err(Failure::new("States.Timeout", None))
                    }
                    Ok(v) => Ok(v),
                    Err(e) => Err(self.task_failure(&e)),
                }
            }
            Binding::Handler(Handler::Async(h)) => {
                let id = self.next_call;
                self.next_call += 1;
                self.outbox.push(AsyncCall {
                    id,
                    handler: h.clone(),
                    ctx: OwnedTaskContext {
                        state_name: state_name.to_owned(),
                        resource: spec.resource.to_string(),
                        retry_count,
                        task_token: self.frames[fi].task_token.map(str::to_owned),
                        execution_arn: self.meta.execution_arn.to_owned(),
                        invocation: id,
                    },
                    input: input.to_serde(),
                });
                self.set_status(f, Status::AwaitingTask { call: id, deadline });
                return Flow::Stop;
            }
            Binding::Unbound => Err(self.runtime(
                f,
                &format!(
                    "No handler is registered for resource '{}' and the state has no mocked response.",
                    spec.resource
                ),
            )),
        };
        self.tick(clock);
        match result {
            Ok(v) => {
                self.emit(f, move |s| s.task_succeeded(f, v));
                self.frames[fi].res = v;
                if let Err(fail) = self.check_task_result(f) {
                    return self.raise(f, fail, Some(clock));
                }
                fr_next(&mut self.frames[fi]);
                Flow::Continue
            }
            Err(fail) => {
                let outcome = if timed_out { TaskOutcome::TimedOut } else { TaskOutcome::Failed };
                self.emit(f, move |s| s.task_error(f, outcome, fail));
                self.raise(f, fail, Some(clock))
            }
        }
    }

    fn wait(&mut self, f: u32, w: u32, clock: &dyn Clock) -> Flow {
        let fi = f as usize;
        let eff = self.frames[fi].eff;
        let until = match self.prog.waits[w as usize] {
            WaitSpec::Seconds(n) => Ok(clock.now().saturating_add((n as i64).saturating_mul(NANOS_PER_SEC))),
            WaitSpec::Timestamp(t) => Ok(t.unix_nanos().clamp(i64::MIN as i128, i64::MAX as i128) as i64),
            WaitSpec::SecondsPath(p) => {
                let path = &self.prog.paths[p as usize];
                match path.eval(&self.env(f, eff)) {
                    Err(_) => Err(self.runtime(
                        f,
                        &format!("The SecondsPath parameter does not reference an input value: {}", path.text()),
                    )),
                    Ok(v) => match v {
                        Value::Int(n) if n >= 0 => Ok(clock.now().saturating_add(n.saturating_mul(NANOS_PER_SEC))),
                        Value::Int(_) => Err(self.runtime(
                            f,
                            &format!(
                                "The SecondsPath parameter references a negative value: {} == {}",
                                path.text(),
                                plain(&v)
                            ),
                        )),
                        _ => Err(self.runtime(
                            f,
                            &format!(
                                "The SecondsPath parameter cannot be parsed as a long value: {} == {}",
                                path.text(),
                                plain(&v)
                            ),
                        )),
                    },
                }
            }
            WaitSpec::TimestampPath(p) => {
                let path = &self.prog.paths[p as usize];
                match path.eval(&self.env(f, eff)) {
                    Err(_) => Err(self.runtime(f, &format!("The TimestampPath parameter does not reference an input value: {}", path.text()))),
                    Ok(v) => match v.as_str().and_then(timestamp::parse) {
                        Some(t) => Ok(t.unix_nanos().clamp(i64::MIN as i128, i64::MAX as i128) as i64),
                        None => Err(self.runtime(
                            f,
                            &format!(
                                "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {}",
                                path.text(),
                                plain(&v)
                            ),
                        )),
                    },
                }
            }
            WaitSpec::SecondsQuery(t) => self.query(f, t).and_then(|v| match v.as_i64() {
                Some(n) if n >= 0 => Ok(clock.now().saturating_add(n.saturating_mul(NANOS_PER_SEC))),
                _ => Err(self.query_failure(
                    f,
                    &format!("The Seconds field must be a non-negative integer, but was: {}", v.to_json_string()),
                )),
            }),
            WaitSpec::TimestampQuery(t) => self.query(f, t).and_then(|v| match v.as_str().and_then(timestamp::parse) {
                Some(t) => Ok(t.unix_nanos().clamp(i64::MIN as i128, i64::MAX as i128) as i64),
                None => Err(self.query_failure(
                    f,
                    &format!(
                        "The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: {}",
                        plain(&v)
                    ),
                )),
            }),
        };
        match until {
            Err(fail) => self.raise(f, fail, Some(clock)),
            Ok(t) => {
                fr_next(&mut self.frames[fi]);
                if t > clock.now() {
                    self.set_status(f, Status::Sleeping(t));
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            }
        }
    }

    fn choice(&mut self, f: u32, c: u32, clock: &dyn Clock) -> Flow {
        let spec = &self.prog.choices[c as usize];
        let fi = f as usize;
        let eff = self.frames[fi].eff;
        let mut chosen = None;
        {
            let env = self.env(f, eff);
            for r in &spec.rules {
                match r.rule.eval(&env) {
                    Ok(true) => {
                        chosen = Some((r.target, r.assign, r.output));
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        let fail = self.eval_failure(f, e);
                        return self.raise(f, fail, Some(clock));
                    }
                }
            }
        }
        let (target, assign, rule_output) = match chosen {
            Some(x) => x,
            None => match spec.default {
                Some(d) => (d, spec.assign, None),
                None => {
                    let fail = Failure::new(
                        "States.NoChoiceMatched",
                        Some(self.runtime_cause(f, "No Choice Rule matched and no Default was specified.")),
                    );
                    return self.raise(f, fail, Some(clock));
                }
            },
        };
        // A matched JSONata rule's own `Output` wins over the state's.
        let output = rule_output.map_or(spec.output, ChoiceOutput::Template);
        let out = match output {
            ChoiceOutput::Input => eff,
            ChoiceOutput::Null => Value::EMPTY_OBJECT,
            ChoiceOutput::Path(p) => match self.eval_path(f, &self.prog.paths[p as usize], eff) {
                Ok(v) => v,
                Err(fail) => return self.raise(f, fail, Some(clock)),
            },
            ChoiceOutput::Template(t) => match self.query(f, t) {
                Ok(v) => v,
                Err(fail) => return self.raise(f, fail, Some(clock)),
            },
        };
        if let Some(a) = assign {
            if let Err(fail) = self.assign(f, a, eff, None, None) {
                return self.raise(f, fail, Some(clock));
            }
        }
        self.frames[fi].out = out;
        self.emit_exited(f);
        let fr = &mut self.frames[fi];
        fr.raw = out;
        fr.pc = target;
        Flow::Continue
    }

    fn fail_state(&self, f: u32, spec: &FailSpec) -> Failure<'a> {
        let raw = self.frames[f as usize].raw;
        let text = |field: &Option<FailField>, name: &str| -> Result<Option<&'a str>, Failure<'a>> {
            match field {
                None => Ok(None),
                Some(FailField::Literal(s)) => Ok(Some(self.bump.alloc_str(s))),
                Some(FailField::Dynamic { field, expr }) => {
                    let env = self.env(f, raw);
                    let v = match expr {
                        crate::template::Dynamic::Path(p) => p.eval(&env).map_err(|_| {
                            self.runtime(
                                f,
                                &format!("The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'", p.text(), raw.to_json_string()),
                            )
                        })?,
                        crate::template::Dynamic::Intrinsic(c) => c.eval(&env).map_err(|e| self.eval_failure(f, e))?,
                    };
                    match v {
                        Value::Str(s) => Ok(Some(s)),
                        other => Err(self.runtime(
                            f,
                            &format!(
                                "The value of the field '{field}' must be a string, but was: {}",
                                other.to_json_string()
                            ),
                        )),
                    }
                }
                Some(FailField::Query(t)) => match self.query(f, *t)? {
                    Value::Str(s) => Ok(Some(s)),
                    other => Err(self.query_failure(
                        f,
                        &format!(
                            "The value of the field '{name}' must be a string, but was: {}",
                            other.to_json_string()
                        ),
                    )),
                },
            }
        };
        match (text(&spec.error, "Error"), text(&spec.cause, "Cause")) {
            (Ok(error), Ok(cause)) => Failure { error, cause, heartbeat: false },
            (Err(fail), _) | (_, Err(fail)) => fail,
        }
    }

    fn parallel(&mut self, f: u32, p: u32) -> Flow {
        let spec = &self.prog.parallels[p as usize];
        let fi = f as usize;
        let eff = self.frames[fi].eff;
        let n = spec.branches.len();
        let mut results = BVec::with_capacity_in(n, self.bump);
        results.resize(n, Value::Null);
        self.joins.push(Join {
            map: NONE,
            results,
            items: &[],
            selector_input: Value::Null,
            started: n as u32,
            finished: 0,
            running: n as u32,
            max_concurrency: 0,
            failures: 0,
            tolerated_count: None,
            tolerated_percentage: None,
            bound: 2,
        });
        let j = self.joins.len() as u32 - 1;
        let started = self.emit(f, move |_| (EventType::ParallelStateStarted, EventDetails::None));
        let fr = &mut self.frames[fi];
        fr.join = j;
        let scope = fr.scope;
        self.set_status(f, Status::Joining);
        // Reverse order: the run queue is LIFO, so branch 0 runs first.
        for (slot, &start) in spec.branches.iter().enumerate().rev() {
            let child_scope = self.new_scope(scope);
            let c = self.new_frame(start, eff, child_scope, f, slot as u32);
            self.set_last_event(c, started);
            self.runnable.push(c);
        }
        Flow::Stop
    }

    /// Reads a Map count/percentage: a literal, or a path whose value may be a number or a
    /// numeric string (AWS accepts `"1"`).
    fn amount(&self, f: u32, spec: Option<AmountSpec>, field: &str, integer: bool) -> Result<Option<f64>, Failure<'a>> {
        match spec {
            None => Ok(None),
            Some(AmountSpec::Fixed(n)) => Ok(Some(n)),
            Some(AmountSpec::Path(p)) => {
                let path = &self.prog.paths[p as usize];
                let v = self.eval_path(f, path, self.frames[f as usize].eff)?;
                let n = match v {
                    Value::Int(i) => Some(i as f64),
                    Value::Float(x) if !integer || x.fract() == 0.0 => Some(x),
                    Value::Str(s) if integer => s.trim().parse::<i64>().ok().map(|i| i as f64),
                    Value::Str(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
                    _ => None,
                };
                match n {
                    Some(n) => Ok(Some(n)),
                    None => Err(self.runtime(
                        f,
                        &format!(
                            "The {field}Path field refers to value \"{}\" which is not a valid {}: {}",
                            plain(&v),
                            if integer { "integer" } else { "float" },
                            path.text()
                        ),
                    )),
                }
            }
            Some(AmountSpec::Query(t)) => {
                let v = self.query(f, t)?;
                match v {
                    Value::Int(i) => Ok(Some(i as f64)),
                    Value::Float(x) if !integer || x.fract() == 0.0 => Ok(Some(x)),
                    other => Err(self.query_failure(
                        f,
                        &format!(
                            "The {field} field must be {}, but was: {}",
                            if integer { "an integer" } else { "a number" },
                            other.to_json_string()
                        ),
                    )),
                }
            }
        }
    }

    fn map(&mut self, f: u32, m: u32, clock: &dyn Clock) -> Flow {
        let spec = &self.prog.maps[m as usize];
        let fi = f as usize;
        let eff = self.frames[fi].eff;
        let items = match (spec.items, spec.items_path) {
            (Some(t), _) => match &self.prog.templates[t as usize] {
                // One expression: it must give an array, or AWS names its type.
                Template::Query(q) => match q.eval(&self.env(f, eff)) {
                    Ok(Value::Array(a)) => Ok(Value::Array(a)),
                    Ok(other) => Err(self.eval_failure(f, q.type_error("array", other))),
                    Err(e) => Err(self.eval_failure(f, e)),
                },
                t => t.eval(&self.env(f, eff), self.consts).map_err(|e| self.eval_failure(f, e)),
            },
            (None, Some(p)) => self.eval_path(f, &self.prog.paths[p as usize], eff),
            (None, None) => Ok(eff),
        };
        let items = match items {
            Ok(Value::Array(a)) => a,
            Ok(other) => {
                let detail = format!("Map state input must be an array but was: {}", other.to_json_string());
                let fail = if spec.jsonata { self.query_failure(f, &detail) } else { self.runtime(f, &detail) };
                return self.raise(f, fail, Some(clock));
            }
            Err(fail) => return self.raise(f, fail, Some(clock)),
        };
        let limits = (|| {
            let max = self.amount(f, spec.max_concurrency, "MaxConcurrency", true)?;
            if max.is_some_and(|m| m < 0.0) {
                return Err(self.runtime(f, "MaxConcurrency cannot be negative."));
            }
            let count = self.amount(f, spec.tolerated_count, "ToleratedFailureCount", true)?;
            if count.is_some_and(|c| c < 0.0) {
                return Err(self.runtime(f, "ToleratedFailureCount cannot be negative."));
            }
            let pct = self.amount(f, spec.tolerated_percentage, "ToleratedFailurePercentage", false)?;
            if pct.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
                return Err(self.runtime(f, "ToleratedFailurePercentage must be between 0 and 100."));
            }
            Ok((max, count, pct))
        })();
        let (max, count, pct) = match limits {
            Ok(x) => x,
            Err(fail) => return self.raise(f, fail, Some(clock)),
        };
        // Tolerated failures apply to distributed Maps; an inline Map fails on the first
        // failed iteration.
        let (count, pct) = if spec.mode == MapMode::Distributed { (count, pct) } else { (None, None) };
        let n = items.len();
        let mut results = BVec::with_capacity_in(n, self.bump);
        results.resize(n, Value::Null);
        self.joins.push(Join {
            map: m,
            results,
            items,
            selector_input: eff,
            started: 0,
            finished: 0,
            running: 0,
            max_concurrency: max.map_or(0, |m| m.min(u32::MAX as f64) as u32),
            failures: 0,
            tolerated_count: count.map(|c| c as u64),
            tolerated_percentage: pct,
            bound: 2,
        });
        let j = self.joins.len() as u32 - 1;
        let started =
            self.emit(f, move |_| (EventType::MapStateStarted, EventDetails::MapStarted { length: n as u32 }));
        self.frames[fi].join = j;
        if n == 0 {
            self.emit_after(move |_| started, move |_| (EventType::MapStateSucceeded, EventDetails::None));
            let fr = &mut self.frames[fi];
            fr.res = Value::EMPTY_ARRAY;
            fr_next(fr);
            return Flow::Continue;
        }
        self.set_status(f, Status::Joining);
        let limit = match self.joins[j as usize].max_concurrency {
            0 => n,
            c => (c as usize).min(n),
        };
        let mut spawned: smallvec::SmallVec<[u32; 16]> = smallvec::SmallVec::new();
        for _ in 0..limit {
            match self.spawn_iteration(f) {
                Ok(Some(c)) => spawned.push(c),
                Ok(None) => break,
                Err(fail) => {
                    self.cancel_children(f, self.frames[fi].last_event);
                    self.set_status(f, Status::Ready);
                    return self.raise(f, fail, Some(clock));
                }
            }
        }
        // Spawning pushed them in item order; reverse so item 0 runs first.
        let k = spawned.len();
        let top = self.runnable.len();
        self.runnable[top - k..].reverse();
        Flow::Stop
    }

    /// Starts the next iteration of `parent`'s Map: builds its input (ItemSelector with
    /// `$$.Map.Item`), makes a frame with its own variable scope.
    fn spawn_iteration(&mut self, parent: u32) -> Result<Option<u32>, Failure<'a>> {
        let j = self.frames[parent as usize].join as usize;
        let join = &self.joins[j];
        let i = join.started;
        let Some(&item) = join.items.get(i as usize) else {
            return Ok(None);
        };
        let spec = &self.prog.maps[join.map as usize];
        let input = match spec.item_selector {
            None => item,
            Some(t) => {
                let env = FrameEnv { map_item: Some((i, item)), ..self.env(parent, join.selector_input) };
                self.prog.templates[t as usize].eval(&env, self.consts).map_err(|e| self.eval_failure(parent, e))?
            }
        };
        let join = &mut self.joins[j];
        join.started += 1;
        join.running += 1;
        let started = self.emit_after(
            |s| s.frames[parent as usize].last_event,
            |s| (EventType::MapIterationStarted, s.iteration(parent, i)),
        );
        let scope = self.frames[parent as usize].scope;
        let child_scope = self.new_scope(scope);
        let c = self.new_frame(spec.start, input, child_scope, parent, i);
        self.set_last_event(c, started);
        self.runnable.push(c);
        Ok(Some(c))
    }

    // ------------------------------------------------------------------------------------
    // History events
    //
    // Every event gets AWS's id whether or not it is recorded (runtime error causes quote
    // them). Its `previousEventId` is the last event of the frame it happens in (`emit`),
    // except where AWS hangs an event off another one (`emit_after`): a Map iteration's
    // events and `…StateSucceeded` follow the child's events, not the parent's chain.
    // Recorded at AWS (LocalStack's snapshots): a root frame starts at 0 (the first
    // `…StateEntered` follows no event), a Map iteration at its `MapIterationStarted`.

    /// Numbers the next event, after frame `f`'s last one (which it becomes); records it
    /// if the mask asks for its type. `build` runs only while recording, and so does the
    /// chain bookkeeping: without a mask an event costs an increment and one branch.
    #[inline(always)]
    fn emit(&mut self, f: u32, build: impl FnOnce(&Self) -> (EventType, EventDetails<'a>)) -> u32 {
        self.events += 1;
        let id = self.events;
        if !self.record.is_empty() {
            let prev = std::mem::replace(&mut self.frames[f as usize].last_event, id);
            self.record_event(id, prev, build);
        }
        id
    }

    /// Numbers the next event with `prev(self)` as its `previousEventId`, leaving the
    /// frames' chains alone.
    #[inline(always)]
    fn emit_after(
        &mut self,
        prev: impl FnOnce(&Self) -> u32,
        build: impl FnOnce(&Self) -> (EventType, EventDetails<'a>),
    ) -> u32 {
        self.events += 1;
        let id = self.events;
        if !self.record.is_empty() {
            let prev = prev(self);
            self.record_event(id, prev, build);
        }
        id
    }

    #[cold]
    #[inline(never)]
    fn record_event(&mut self, id: u32, prev: u32, build: impl FnOnce(&Self) -> (EventType, EventDetails<'a>)) {
        let (kind, details) = build(self);
        if self.record.contains(kind) {
            if let Some(rec) = self.rec.as_deref_mut() {
                rec.events.push(HistoryEvent { id, previous_event_id: prev, timestamp: rec.now, kind, details });
            }
        }
    }

    /// Sets frame `f`'s last event (chain bookkeeping, only while recording).
    #[inline(always)]
    fn set_last_event(&mut self, f: u32, id: u32) {
        if !self.record.is_empty() {
            self.frames[f as usize].last_event = id;
        }
    }

    /// Reads the clock for the next events' timestamps, only while recording.
    #[inline(always)]
    fn tick(&mut self, clock: &dyn Clock) {
        if let Some(rec) = self.rec.as_deref_mut() {
            rec.now = clock.now();
        }
    }

    /// `…StateExited` for frame `f`'s state, with its output register and the variables it
    /// assigned.
    #[inline(always)]
    fn emit_exited(&mut self, f: u32) {
        self.events += 1;
        if !self.record.is_empty() {
            self.record_exited(f, self.events);
        }
    }

    #[cold]
    #[inline(never)]
    fn record_exited(&mut self, f: u32, id: u32) {
        let prev = std::mem::replace(&mut self.frames[f as usize].last_event, id);
        let assigned = self.rec.as_deref().and_then(|r| r.assigned.get(f as usize).copied()).unwrap_or(&[]);
        self.record_event(id, prev, |s| {
            let fr = &s.frames[f as usize];
            let info = &s.prog.states[fr.state as usize];
            (exited_type(info.kind), EventDetails::StateExited { name: &info.name, output: fr.out, assigned })
        });
        self.set_assigned(f, &[]);
    }

    fn set_assigned(&mut self, f: u32, list: &'a [(&'a str, Value<'a>)]) {
        if let Some(rec) = self.rec.as_deref_mut() {
            let f = f as usize;
            if rec.assigned.len() <= f {
                rec.assigned.resize(f + 1, &[]);
            }
            rec.assigned[f] = list;
        }
    }

    /// `MapIteration…` details: the Map state's name and the item index.
    fn iteration(&self, map_frame: u32, index: u32) -> EventDetails<'a> {
        let prog = self.prog;
        EventDetails::MapIteration { name: &prog.states[self.frames[map_frame as usize].state as usize].name, index }
    }

    /// AWS's `resourceType`/`resource` pair: `arn:aws:states:::lambda:invoke` → `lambda`,
    /// `invoke`; `…:::aws-sdk:s3:listBuckets` → `aws-sdk:s3`, `listBuckets`;
    /// `…:::states:startExecution.sync:2` → `states`, `startExecution.sync:2`. Other ARNs
    /// (registered handlers) keep the whole ARN as `resource`, their service as the type.
    fn resource_parts(spec: &'a TaskSpec) -> (&'a str, &'a str) {
        let resource: &'a str = &spec.resource;
        match resource.split_once(":::") {
            Some((_, rest)) => {
                let cut = match rest.strip_prefix("aws-sdk:") {
                    Some(sdk) => sdk.find(':').map(|i| i + "aws-sdk:".len()),
                    None => rest.find(':'),
                };
                match cut {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (rest, rest),
                }
            }
            None => (resource.split(':').nth(2).unwrap_or(""), resource),
        }
    }

    fn task_scheduled(
        &self,
        spec: &'a TaskSpec,
        input: Value<'a>,
        timeout: Option<i64>,
        heartbeat: Option<i64>,
    ) -> (EventType, EventDetails<'a>) {
        let timeout_seconds = timeout.map(|t| t as u64);
        let heartbeat_seconds = heartbeat.map(|h| h as u64);
        let resource: &'a str = &spec.resource;
        match spec.kind {
            ResourceKind::LambdaFunction => (
                EventType::LambdaFunctionScheduled,
                EventDetails::Scheduled { resource, input, timeout_seconds, heartbeat_seconds: None },
            ),
            ResourceKind::Activity => (
                EventType::ActivityScheduled,
                EventDetails::Scheduled { resource, input, timeout_seconds, heartbeat_seconds },
            ),
            ResourceKind::Integration | ResourceKind::Other => {
                let (resource_type, resource) = Self::resource_parts(spec);
                let region = self.meta.execution_arn.split(':').nth(3).unwrap_or("");
                (
                    EventType::TaskScheduled,
                    EventDetails::TaskScheduled {
                        resource_type,
                        resource,
                        region,
                        parameters: input,
                        timeout_seconds,
                        heartbeat_seconds,
                    },
                )
            }
        }
    }

    fn task_started(&self, spec: &'a TaskSpec) -> (EventType, EventDetails<'a>) {
        match spec.kind {
            ResourceKind::LambdaFunction => (EventType::LambdaFunctionStarted, EventDetails::None),
            ResourceKind::Activity => (EventType::ActivityStarted, EventDetails::None),
            ResourceKind::Integration | ResourceKind::Other => {
                let (resource_type, resource) = Self::resource_parts(spec);
                (EventType::TaskStarted, EventDetails::TaskStarted { resource_type, resource })
            }
        }
    }

    fn task_submitted(&self, f: u32, output: Value<'a>) -> (EventType, EventDetails<'a>) {
        let spec = self.current_task(f).expect("a task state");
        let (resource_type, resource) = Self::resource_parts(spec);
        (EventType::TaskSubmitted, EventDetails::TaskOutput { resource_type, resource, output })
    }

    fn task_succeeded(&self, f: u32, output: Value<'a>) -> (EventType, EventDetails<'a>) {
        let spec = self.current_task(f).expect("a task state");
        match spec.kind {
            ResourceKind::LambdaFunction => (EventType::LambdaFunctionSucceeded, EventDetails::Output { output }),
            ResourceKind::Activity => (EventType::ActivitySucceeded, EventDetails::Output { output }),
            ResourceKind::Integration | ResourceKind::Other => {
                let (resource_type, resource) = Self::resource_parts(spec);
                (EventType::TaskSucceeded, EventDetails::TaskOutput { resource_type, resource, output })
            }
        }
    }

    fn task_error(&self, f: u32, outcome: TaskOutcome, fail: Failure<'a>) -> (EventType, EventDetails<'a>) {
        let spec = self.current_task(f).expect("a task state");
        let (error, cause) = (fail.error, fail.cause);
        let timed_out = outcome == TaskOutcome::TimedOut;
        match spec.kind {
            ResourceKind::LambdaFunction => (
                if timed_out { EventType::LambdaFunctionTimedOut } else { EventType::LambdaFunctionFailed },
                EventDetails::Error { error, cause },
            ),
            ResourceKind::Activity => (
                if timed_out { EventType::ActivityTimedOut } else { EventType::ActivityFailed },
                EventDetails::Error { error, cause },
            ),
            ResourceKind::Integration | ResourceKind::Other => {
                let (resource_type, resource) = Self::resource_parts(spec);
                (
                    if timed_out { EventType::TaskTimedOut } else { EventType::TaskFailed },
                    EventDetails::TaskError { resource_type, resource, error, cause },
                )
            }
        }
    }

    // ------------------------------------------------------------------------------------
    // The context object

    fn context(&self, f: u32, map_item: Option<(u32, Value<'a>)>) -> Value<'a> {
        let bump = self.bump;
        let (execution, state_machine) = match self.ctx_execution.get() {
            Some(x) => x,
            None => {
                let m = &self.meta;
                let start =
                    Value::Str(bump.alloc_str(&Timestamp::from_unix_nanos(m.start_time as i128).format_iso_millis()));
                let execution = match self.prog.machine_type {
                    MachineType::Standard => value::object(
                        bump,
                        &[
                            ("Id", Value::Str(m.execution_arn)),
                            ("Input", self.input),
                            ("StartTime", start),
                            ("Name", Value::Str(m.name)),
                            ("RoleArn", Value::Str(m.role_arn)),
                            ("RedriveCount", Value::Int(m.redrive_count as i64)),
                        ],
                    ),
                    MachineType::Express => value::object(
                        bump,
                        &[
                            ("Id", Value::Str(m.execution_arn)),
                            ("Input", self.input),
                            ("Name", Value::Str(m.name)),
                            ("RoleArn", Value::Str(m.role_arn)),
                            ("StartTime", start),
                        ],
                    ),
                };
                let sm = value::object(
                    bump,
                    &[("Id", Value::Str(m.state_machine_arn)), ("Name", Value::Str(m.state_machine_name))],
                );
                self.ctx_execution.set(Some((execution, sm)));
                (execution, sm)
            }
        };
        let fr = &self.frames[f as usize];
        let info = &self.prog.states[fr.state as usize];
        let entered =
            Value::Str(bump.alloc_str(&Timestamp::from_unix_nanos(fr.entered_at as i128).format_iso_millis()));
        let state = if info.kind.can_retry() {
            value::object(
                bump,
                &[
                    ("Name", Value::Str(&info.name)),
                    ("EnteredTime", entered),
                    ("RetryCount", Value::Int(fr.retry_total as i64)),
                ],
            )
        } else {
            value::object(bump, &[("Name", Value::Str(&info.name)), ("EnteredTime", entered)])
        };
        let mut members: smallvec::SmallVec<[value::Member<'a>; 5]> = smallvec::SmallVec::new();
        members.push(("Execution", execution));
        members.push(("StateMachine", state_machine));
        members.push(("State", state));
        if let Some(token) = fr.task_token {
            members.push(("Task", value::object(bump, &[("Token", Value::Str(token))])));
        }
        if let Some((index, item)) = map_item {
            let item = value::object(bump, &[("Index", Value::Int(index as i64)), ("Value", item)]);
            members.push(("Map", value::object(bump, &[("Item", item)])));
        }
        value::object(bump, &members)
    }
}

#[inline]
fn fr_next(fr: &mut Frame<'_>) {
    fr.pc += 1;
}

/// True when two values are the same arena object (or equal scalars): a cheap "unchanged"
/// test that never walks the values.
fn same(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => std::ptr::eq(x.as_ptr(), y.as_ptr()) && x.len() == y.len(),
        (Value::Array(x), Value::Array(y)) => std::ptr::eq(x.as_ptr(), y.as_ptr()) && x.len() == y.len(),
        (Value::Str(x), Value::Str(y)) => std::ptr::eq(x.as_ptr(), y.as_ptr()) && x.len() == y.len(),
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => false,
    }
}

/// A value as AWS quotes it inside messages: strings raw, everything else as JSON.
fn plain(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => (*s).to_owned(),
        other => other.to_json_string(),
    }
}

/// `arn:aws:states:::lambda:invoke` → `lambda`.
fn integration_service(resource: &str) -> &str {
    resource.split(":::").nth(1).and_then(|r| r.split(':').next()).unwrap_or(resource)
}

/// The root frame is the first frame made and is never released.
const ROOT: u32 = 0;

/// How a task ended without a result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TaskOutcome {
    Failed,
    TimedOut,
}

fn entered_type(kind: StateKind) -> EventType {
    match kind {
        StateKind::Pass => EventType::PassStateEntered,
        StateKind::Task => EventType::TaskStateEntered,
        StateKind::Choice => EventType::ChoiceStateEntered,
        StateKind::Wait => EventType::WaitStateEntered,
        StateKind::Succeed => EventType::SucceedStateEntered,
        StateKind::Fail => EventType::FailStateEntered,
        StateKind::Parallel => EventType::ParallelStateEntered,
        StateKind::Map => EventType::MapStateEntered,
    }
}

/// A Fail state never exits; it has no `…Exited` type, and the VM never asks for one.
fn exited_type(kind: StateKind) -> EventType {
    match kind {
        StateKind::Pass => EventType::PassStateExited,
        StateKind::Task => EventType::TaskStateExited,
        StateKind::Choice => EventType::ChoiceStateExited,
        StateKind::Wait => EventType::WaitStateExited,
        StateKind::Succeed | StateKind::Fail => EventType::SucceedStateExited,
        StateKind::Parallel => EventType::ParallelStateExited,
        StateKind::Map => EventType::MapStateExited,
    }
}
