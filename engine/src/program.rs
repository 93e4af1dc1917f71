//! `program`: the compiled form of a state machine — one flat instruction vector plus
//! constant pools.
//!
//! Input: built by `compile`. Output: read by `vm` (and printed by [`Program::disassemble`]).
//! Never touches: definition JSON (everything here is already parsed), execution state.
//!
//! Layout: every state is a contiguous range of [`Op`]s starting with `Op::Enter`; Parallel
//! branches and Map processors are further ranges of the same vector, entered at the pc
//! their spec records. Operands are `u32` indexes into the typed tables below, so an `Op`
//! is 8 bytes and the VM never looks at a state name or parses anything while it runs.
//!
//! The VM works on four registers per frame: `raw` (the state input), `eff` (the effective
//! input after `InputPath`/`Parameters`), `res` (the state's result) and `out` (the state
//! output). `Enter` sets all four to the state input; each op below says what it writes.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use bumpalo::Bump;

use crate::choice::Rule;
use crate::handlers::Binding;
use crate::intern::Interner;
use crate::paths::{Path, ReferencePath};
use crate::template::{ConstId, Dynamic, Template};
use crate::timestamp::Timestamp;
use crate::validate::{Assign, MachineType, MapMode};
use crate::value::Value;

/// Index into [`Program::ops`].
pub type Pc = u32;
/// Index into [`Program::states`].
pub type StateId = u32;

/// One instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Start of a state: counts the `…StateEntered` event, records entry time and event id,
    /// resets retry counters; `raw = eff = res = out = input`.
    Enter(StateId),
    /// `eff = res = paths[i](raw)` (`InputPath`).
    InputPath(u32),
    /// `eff = res = {}` (`InputPath: null`).
    InputNull,
    /// `eff = res = templates[i]($ = eff)` (`Parameters`), then the payload size check.
    Parameters(u32),
    /// `res = consts[i]` (Pass `Result`).
    PassResult(u32),
    /// `res = task(eff)`; may suspend the frame (asynchronous handler, retry back-off).
    Task(u32),
    /// Suspends the frame until the wait's time (reads `eff` for the `*Path` forms).
    Wait(u32),
    /// Runs the branches on `eff` in child frames; `res` = their outputs in branch order.
    Parallel(u32),
    /// Runs the processor per item of `eff`; `res` = outputs in item order.
    Map(u32),
    /// `res = templates[i]($ = res)` (`ResultSelector`).
    ResultSelector(u32),
    /// `out = ref_paths[i].set(raw, res)` (`ResultPath`).
    ResultPath(u32),
    /// `out = raw` (`ResultPath: null`).
    DiscardResult,
    /// `out = res` (`ResultPath` absent or `$`).
    ResultToOutput,
    /// `out = paths[i](out)` (`OutputPath`).
    OutputPath(u32),
    /// `out = {}` (`OutputPath: null`).
    OutputNull,
    /// `out = templates[i]` with `$states.result = res` (JSONata `Output`).
    Output(u32),
    /// Evaluates `assigns[i]` with `$ = res` against the variables as they were at state
    /// entry, then stores them in the frame's scope.
    Assign(u32),
    /// Evaluates `choices[i]` on `eff`, applies its OutputPath and Assign, counts
    /// `ChoiceStateExited` and jumps (or raises `States.NoChoiceMatched`).
    Choice(u32),
    /// Counts `…StateExited`; the next state's input is `out`; jump.
    Next(Pc),
    /// Counts `…StateExited`; the frame (execution, branch or iteration) ends with `out`.
    End,
    /// Raises the Fail state's error (`fails[i]`, paths read `raw`).
    Fail(u32),
}

// Cache lines are the budget: a size regression must fail the build, not the benchmark.
const _: () = assert!(std::mem::size_of::<Op>() == 8);

/// What kind of state a `StateId` is: decides which events it counts and which context
/// fields it exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    Pass,
    Task,
    Choice,
    Wait,
    Succeed,
    Fail,
    Parallel,
    Map,
}

impl StateKind {
    /// States that can retry expose `$$.State.RetryCount`.
    pub fn can_retry(self) -> bool {
        matches!(self, StateKind::Task | StateKind::Parallel | StateKind::Map)
    }
}

/// Per-state side table, read on the cold paths (errors, context object, disassembly).
#[derive(Clone, Debug)]
pub struct StateInfo {
    pub name: Box<str>,
    pub kind: StateKind,
    /// Pc of the state's `Enter`.
    pub enter: Pc,
    /// Pc a retry jumps back to (the op after `Enter`).
    pub retry_pc: Pc,
    /// Indexes into `retriers` / `catchers`.
    pub retriers: std::ops::Range<u32>,
    pub catchers: std::ops::Range<u32>,
    /// For a Task state, its index into `tasks`.
    pub task: Option<u32>,
}

/// Which errors a retrier or catcher handles.
#[derive(Clone, Debug)]
pub struct ErrorMatcher {
    /// `States.ALL`: everything but `States.Runtime`.
    pub all: bool,
    /// `States.TaskFailed`: everything but `States.Timeout` (and `States.Runtime`).
    pub task_failed: bool,
    /// `States.Timeout` also matches heartbeat timeouts (AWS reports those as `States.Timeout`).
    pub names: Box<[Box<str>]>,
}

impl ErrorMatcher {
    pub fn new(names: &[String]) -> Self {
        ErrorMatcher {
            all: names.iter().any(|n| n == "States.ALL"),
            task_failed: names.iter().any(|n| n == "States.TaskFailed"),
            names: names.iter().map(|n| n.as_str().into()).collect(),
        }
    }

    /// Whether this matcher handles an error named `error` (`None` for a Fail state without
    /// `Error`). `heartbeat` marks a heartbeat timeout, reported as `States.Timeout`.
    pub fn matches(&self, error: Option<&str>, heartbeat: bool) -> bool {
        let name = error.unwrap_or("");
        if name == "States.Runtime" {
            return false;
        }
        if self.all {
            return true;
        }
        if self.task_failed && name != "States.Timeout" {
            return true;
        }
        if heartbeat && self.names.iter().any(|n| &**n == "States.HeartbeatTimeout") {
            return true;
        }
        error.is_some() && self.names.iter().any(|n| **n == *name)
    }
}

#[derive(Clone, Debug)]
pub struct RetrySpec {
    pub errors: ErrorMatcher,
    pub interval_seconds: u64,
    pub max_attempts: u64,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<u64>,
    pub jitter_full: bool,
}

impl RetrySpec {
    /// Delay before retry number `attempt` (1-based), before jitter:
    /// `IntervalSeconds × BackoffRate^(attempt−1)`, capped by `MaxDelaySeconds`.
    pub fn delay_seconds(&self, attempt: u64) -> f64 {
        let exp = (attempt.saturating_sub(1)).min(1_000) as i32;
        let d = self.interval_seconds as f64 * self.backoff_rate.powi(exp);
        match self.max_delay_seconds {
            Some(max) => d.min(max as f64),
            None => d.min(crate::validate::MAX_SECONDS as f64 * 10.0),
        }
    }
}

/// What a `ResultPath` (of a state or a catcher) does with a result.
#[derive(Clone, Copy, Debug)]
pub enum ResultPlacement {
    Replace,
    Discard,
    At(u32),
    /// A JSONata catcher's `Output`: `templates[i]` with `$states.errorOutput`.
    Output(u32),
}

#[derive(Clone, Debug)]
pub struct CatchSpec {
    pub errors: ErrorMatcher,
    pub result: ResultPlacement,
    pub assign: Option<u32>,
    pub target: Pc,
}

/// Seconds given literally or by a path into the effective input.
#[derive(Clone, Copy, Debug)]
pub enum SecondsSpec {
    Fixed(u64),
    Path(u32),
    /// `templates[i]`, a `{% %}` expression (JSONata).
    Query(u32),
}

/// How a Task's resource was classified; decides its history events and result shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceKind {
    /// `arn:aws:lambda:…:function:…`: legacy Lambda task (`LambdaFunction*` events).
    LambdaFunction,
    /// `arn:aws:states:::service:api[.pattern]`: an optimised or SDK integration.
    Integration,
    /// `arn:aws:states:…:activity:…`.
    Activity,
    /// Anything else (registered handlers may still serve it).
    Other,
}

impl ResourceKind {
    pub fn classify(resource: &str) -> Self {
        if resource.starts_with("arn:aws:lambda:") || resource.starts_with("arn:aws-") && resource.contains(":lambda:")
        {
            ResourceKind::LambdaFunction
        } else if resource.contains(":states:::") {
            ResourceKind::Integration
        } else if resource.contains(":activity:") {
            ResourceKind::Activity
        } else {
            ResourceKind::Other
        }
    }
}

#[derive(Clone)]
pub struct TaskSpec {
    pub resource: Box<str>,
    pub kind: ResourceKind,
    /// `.waitForTaskToken`: the context exposes `$$.Task.Token`.
    pub callback: bool,
    pub binding: Binding,
    pub timeout: Option<SecondsSpec>,
    pub heartbeat: Option<SecondsSpec>,
    pub credentials: Option<u32>,
}

impl fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSpec").field("resource", &self.resource).field("binding", &self.binding.describe()).finish()
    }
}

#[derive(Clone, Copy, Debug)]
pub enum WaitSpec {
    Seconds(u64),
    SecondsPath(u32),
    Timestamp(Timestamp),
    TimestampPath(u32),
    /// `templates[i]` (JSONata `Seconds: "{% %}"`).
    SecondsQuery(u32),
    /// `templates[i]` (JSONata `Timestamp: "{% %}"`).
    TimestampQuery(u32),
}

#[derive(Clone, Debug)]
pub struct ChoiceRule {
    pub rule: Rule,
    pub target: Pc,
    pub assign: Option<u32>,
    /// JSONata `Output` of the rule (`templates[i]`).
    pub output: Option<u32>,
}

/// What a Choice state outputs.
#[derive(Clone, Copy, Debug)]
pub enum ChoiceOutput {
    /// Its input (JSONPath `OutputPath: $`, or no JSONata `Output`).
    Input,
    /// `OutputPath: null`.
    Null,
    /// `OutputPath`: `paths[i]`.
    Path(u32),
    /// JSONata `Output`: `templates[i]`.
    Template(u32),
}

#[derive(Clone, Debug)]
pub struct ChoiceSpec {
    pub rules: Vec<ChoiceRule>,
    pub default: Option<Pc>,
    /// The state's `Assign` and output, for the Default branch (and the output of a
    /// matched rule without its own `Output`).
    pub assign: Option<u32>,
    pub output: ChoiceOutput,
}

#[derive(Clone, Debug)]
pub enum FailField {
    Literal(Box<str>),
    Dynamic {
        field: &'static str,
        expr: Dynamic,
    },
    /// `templates[i]`, a `{% %}` expression (JSONata).
    Query(u32),
}

#[derive(Clone, Debug)]
pub struct FailSpec {
    pub error: Option<FailField>,
    pub cause: Option<FailField>,
}

#[derive(Clone, Debug)]
pub struct ParallelSpec {
    pub branches: Vec<Pc>,
}

/// A count or percentage given literally or by a path.
#[derive(Clone, Copy, Debug)]
pub enum AmountSpec {
    Fixed(f64),
    Path(u32),
    /// `templates[i]`, a `{% %}` expression (JSONata).
    Query(u32),
}

#[derive(Clone, Debug)]
pub struct MapSpec {
    pub start: Pc,
    pub mode: MapMode,
    pub items_path: Option<u32>,
    /// JSONata `Items` (`templates[i]`).
    pub items: Option<u32>,
    pub item_selector: Option<u32>,
    /// The Map state is in JSONata mode (its input errors are `States.QueryEvaluationError`).
    pub jsonata: bool,
    pub max_concurrency: Option<AmountSpec>,
    pub tolerated_count: Option<AmountSpec>,
    pub tolerated_percentage: Option<AmountSpec>,
}

self_cell::self_cell!(
    /// The program's constants, built once in an arena of their own and shared read-only by
    /// every execution (a `Result` or a constant `Parameters` subtree is never copied).
    pub struct ConstPool {
        owner: FrozenBump,
        #[covariant]
        dependent: ConstValues,
    }
);

type ConstValues<'a> = Vec<Value<'a>>;

/// An arena that is no longer allocated from (a program's constants, a parsed execution
/// input).
pub struct FrozenBump(pub(crate) Bump);

// Safety: `Bump` is `!Sync` only because allocating through `&Bump` mutates it. A
// `FrozenBump` is allocated from exclusively inside the builder of the self-cell that owns
// it (`ConstPool::new`, `executor::ParsedInput::try_new`), before that cell exists, and the
// cell never hands out a `&Bump` afterwards; all later access is reading the immutable
// values it owns, which is safe from any thread.
unsafe impl Sync for FrozenBump {}

impl ConstPool {
    pub fn build(values: &[serde_json::Value]) -> ConstPool {
        ConstPool::new(FrozenBump(Bump::new()), |frozen| {
            values.iter().map(|v| Value::from_serde(&frozen.0, v)).collect()
        })
    }

    /// The constants, valid for as long as the program is borrowed.
    pub fn values(&self) -> &[Value<'_>] {
        self.borrow_dependent()
    }
}

impl fmt::Debug for ConstPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.values().iter().map(|v| v.to_json_string())).finish()
    }
}

/// A compiled state machine.
#[derive(Debug)]
pub struct Program {
    pub ops: Vec<Op>,
    pub states: Vec<StateInfo>,
    pub paths: Vec<Path>,
    pub ref_paths: Vec<ReferencePath>,
    pub templates: Vec<Template>,
    pub assigns: Vec<Assign>,
    pub tasks: Vec<TaskSpec>,
    pub waits: Vec<WaitSpec>,
    pub choices: Vec<ChoiceSpec>,
    pub fails: Vec<FailSpec>,
    pub parallels: Vec<ParallelSpec>,
    pub maps: Vec<MapSpec>,
    pub retriers: Vec<RetrySpec>,
    pub catchers: Vec<CatchSpec>,
    pub consts: ConstPool,
    pub names: Interner,
    pub start: Pc,
    pub machine_type: MachineType,
    pub timeout_seconds: Option<u64>,
    /// Some expression reads `$$`: state entry times must be recorded.
    pub uses_context: bool,
    /// The frames an execution's stacks start with room for: the root and every Parallel
    /// branch, at most [`FRAMES_HINT_MAX`] (Map iterations grow the stacks as they start).
    /// Sized up front, the stacks are allocated once instead of doubling from one slot.
    pub frames_hint: u32,
}

/// The bound on [`Program::frames_hint`]: a machine with many Parallel states rarely runs
/// them all at once, and the stacks still grow when it does.
pub const FRAMES_HINT_MAX: u32 = 16;

/// A program shared by all shards.
pub type SharedProgram = Arc<Program>;

impl Program {
    /// A readable listing of the program: one line per op, states as labels, operands
    /// resolved. Golden files of this listing keep the compiler's output reviewable.
    pub fn disassemble(&self) -> String {
        let mut out = String::new();
        let label = |pc: Pc| -> String {
            match self.states.iter().find(|s| s.enter == pc) {
                Some(s) => format!("{pc} <{}>", s.name),
                None => pc.to_string(),
            }
        };
        let _ = writeln!(
            out,
            "; {} machine, {} ops, {} states, {} constants, start {}",
            self.machine_type.as_str(),
            self.ops.len(),
            self.states.len(),
            self.consts.values().len(),
            label(self.start)
        );
        if let Some(t) = self.timeout_seconds {
            let _ = writeln!(out, "; TimeoutSeconds {t}");
        }
        for (pc, op) in self.ops.iter().enumerate() {
            let pc = pc as Pc;
            if let Op::Enter(s) = op {
                let st = &self.states[*s as usize];
                let _ = writeln!(out, "\n{}: ; {:?} state #{s}", st.name, st.kind);
                for r in &self.retriers[st.retriers.start as usize..st.retriers.end as usize] {
                    let _ = writeln!(
                        out,
                        "    ; retry {:?} interval={}s max={} backoff={} maxdelay={:?} jitter={}",
                        r.errors.names,
                        r.interval_seconds,
                        r.max_attempts,
                        r.backoff_rate,
                        r.max_delay_seconds,
                        if r.jitter_full { "FULL" } else { "NONE" }
                    );
                }
                for c in &self.catchers[st.catchers.start as usize..st.catchers.end as usize] {
                    let _ = writeln!(
                        out,
                        "    ; catch {:?} -> {} result={:?} assign={:?}",
                        c.errors.names,
                        label(c.target),
                        self.placement(c.result),
                        c.assign
                    );
                }
            }
            let _ = write!(out, "{pc:5}  ");
            let _ = match *op {
                Op::Enter(s) => writeln!(out, "enter        #{s}"),
                Op::InputPath(i) => writeln!(out, "input_path   {}", self.paths[i as usize]),
                Op::InputNull => writeln!(out, "input_null"),
                Op::Parameters(i) => writeln!(out, "parameters   {}", self.templates[i as usize]),
                Op::PassResult(i) => writeln!(out, "result       #{i} = {}", self.consts.values()[i as usize]),
                Op::Task(i) => {
                    let t = &self.tasks[i as usize];
                    writeln!(
                        out,
                        "task         {} via {} timeout={:?} heartbeat={:?}",
                        t.resource,
                        t.binding.describe(),
                        t.timeout,
                        t.heartbeat
                    )
                }
                Op::Wait(i) => writeln!(out, "wait         {}", self.wait_text(&self.waits[i as usize])),
                Op::Parallel(i) => {
                    let p = &self.parallels[i as usize];
                    writeln!(
                        out,
                        "parallel     [{}]",
                        p.branches.iter().map(|&b| label(b)).collect::<Vec<_>>().join(", ")
                    )
                }
                Op::Map(i) => {
                    let m = &self.maps[i as usize];
                    let items = match (m.items, m.items_path) {
                        (Some(t), _) => self.templates[t as usize].to_string(),
                        (None, Some(p)) => self.paths[p as usize].to_string(),
                        (None, None) => "$".to_owned(),
                    };
                    writeln!(
                        out,
                        "map          {:?} items={} selector={} processor={} max_concurrency={:?}",
                        m.mode,
                        items,
                        m.item_selector.map_or("-".to_owned(), |t| self.templates[t as usize].to_string()),
                        label(m.start),
                        m.max_concurrency
                    )
                }
                Op::ResultSelector(i) => writeln!(out, "result_sel   {}", self.templates[i as usize]),
                Op::ResultPath(i) => writeln!(out, "result_path  {}", self.ref_paths[i as usize].text()),
                Op::DiscardResult => writeln!(out, "discard_result"),
                Op::ResultToOutput => writeln!(out, "result_to_output"),
                Op::OutputPath(i) => writeln!(out, "output_path  {}", self.paths[i as usize]),
                Op::OutputNull => writeln!(out, "output_null"),
                Op::Output(i) => writeln!(out, "output       {}", self.templates[i as usize]),
                Op::Assign(i) => {
                    let a = &self.assigns[i as usize];
                    writeln!(
                        out,
                        "assign       {}",
                        a.vars
                            .iter()
                            .map(|(n, t)| format!("${} = {t}", self.names.name(*n)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
                Op::Choice(i) => {
                    let c = &self.choices[i as usize];
                    let _ = writeln!(out, "choice       #{i}");
                    for r in &c.rules {
                        let _ = writeln!(
                            out,
                            "                 {} -> {}{}{}",
                            r.rule,
                            label(r.target),
                            r.assign.map_or(String::new(), |a| format!(" assign #{a}")),
                            r.output.map_or(String::new(), |t| format!(" output {}", self.templates[t as usize]))
                        );
                    }
                    if let ChoiceOutput::Template(t) = c.output {
                        let _ = writeln!(out, "                 output {}", self.templates[t as usize]);
                    }
                    writeln!(
                        out,
                        "                 default -> {}",
                        c.default.map_or("States.NoChoiceMatched".to_owned(), label)
                    )
                }
                Op::Next(pc) => writeln!(out, "next         {}", label(pc)),
                Op::End => writeln!(out, "end"),
                Op::Fail(i) => {
                    let f = &self.fails[i as usize];
                    writeln!(out, "fail         error={} cause={}", fail_text(&f.error), fail_text(&f.cause))
                }
            };
        }
        out
    }

    fn placement(&self, p: ResultPlacement) -> String {
        match p {
            ResultPlacement::Replace => "$".into(),
            ResultPlacement::Discard => "null".into(),
            ResultPlacement::At(i) => self.ref_paths[i as usize].text().into(),
            ResultPlacement::Output(t) => format!("output {}", self.templates[t as usize]),
        }
    }

    fn wait_text(&self, w: &WaitSpec) -> String {
        match *w {
            WaitSpec::Seconds(s) => format!("{s}s"),
            WaitSpec::SecondsPath(p) => format!("seconds at {}", self.paths[p as usize]),
            WaitSpec::Timestamp(t) => format!("until {}", t.format_iso_millis()),
            WaitSpec::TimestampPath(p) => format!("until timestamp at {}", self.paths[p as usize]),
            WaitSpec::SecondsQuery(t) => format!("seconds {}", self.templates[t as usize]),
            WaitSpec::TimestampQuery(t) => format!("until {}", self.templates[t as usize]),
        }
    }
}

fn fail_text(f: &Option<FailField>) -> String {
    match f {
        None => "-".into(),
        Some(FailField::Literal(s)) => format!("{s:?}"),
        Some(FailField::Dynamic { expr, .. }) => expr.text().to_owned(),
        Some(FailField::Query(t)) => format!("template #{t}"),
    }
}

/// Used by `compile` to turn a constant id from validation into a pool index.
pub fn const_index(id: ConstId) -> u32 {
    id.0
}
