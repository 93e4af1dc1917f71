//! `executor`: the sharded runtime: many executions at once on a few threads.
//!
//! Input: registered state machines, start requests (asynchronous `start`, synchronous
//! `start_sync`), answers of asynchronous handlers. Output: finished executions (their
//! status reaches `start_sync` callers, the metrics and the logs). Never touches: definition
//! JSON after registration (programs are compiled once and shared read-only), other
//! processes (nothing is durable here: an Express execution lives in memory).
//!
//! The shape: N shards (default one per core), each a thread owning its executions, its
//! arena pool and its timers. `start` picks a shard (of the round-robin one and the next,
//! the one with fewer starts waiting) and pushes the request into that shard's bounded
//! lock-free inbox (crossbeam `ArrayQueue`); a full inbox (every shard's) fails the start
//! at once with [`StartError::Throttled`] instead of queueing without bound. An execution
//! stays on its shard from start to end; Parallel branches and Map iterations are
//! interleaved inside it by the VM. Asynchronous handlers run on a tokio
//! runtime; their answers come back through the shard's control queue (unbounded, for
//! messages that must never be refused). A synchronous handler runs inline on the shard.
//!
//! At-least-once: a panic inside an execution (a handler's, or the engine's) tears that
//! execution down and restarts it from its original input on the next shard; a panic in a
//! shard's own loop restarts every execution the shard held. Handlers must therefore be
//! idempotent, as AWS documents for asynchronous Express executions. A synchronous start
//! (`start_sync`) is at most once, as AWS's StartSyncExecution: a panic fails it instead.
//!
//! The Express cap: no Express execution runs longer than 300 s (or the definition's lower
//! `TimeoutSeconds`); past it the execution ends `TIMED_OUT` with `States.Timeout`, its
//! timers are dropped and its arena goes back to the pool. The cap is checked when the
//! execution's timer fires and between run slices (a slice is `step_budget` states), so a
//! busy execution is stopped within one slice; a synchronous handler that never returns
//! cannot be interrupted (it runs on the shard's thread), which is why handlers that wait
//! on I/O should be asynchronous.
//!
//! Express logs: a machine registered with a [`LoggingConfig`] records AWS's history events
//! for its level only (the VM filters before building anything); after every run slice the
//! shard formats them as CloudWatch records and hands them to the engine's
//! [`LogWriter`], whose bounded queue drops and counts lines rather than stalling a shard.
//! Express executions keep no history beyond that, as at AWS.

mod arenas;
mod durable;
mod live;
mod metrics;
mod nested;
mod shard;
mod table;
mod timers;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bumpalo::Bump;
use bytes::Bytes;
use crossbeam_queue::{ArrayQueue, SegQueue};
use crossbeam_utils::sync::Unparker;
use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, RwLock};

pub use metrics::MachineMetrics;

use crate::clock::{Clock, SystemClock, NANOS_PER_SEC};
use crate::compile::Bindings;
use crate::diag::Diagnostic;
use crate::handlers::{Registry, TaskError};
use crate::local::Status;
use crate::logs::{LogLevel, LogWriter, LoggingConfig};
use crate::mocks::MockSet;
use crate::program::FrozenBump;
use crate::program::Program;
use crate::store::{Created, ExecutionRecord, ListFilter, Page, RecordStatus, Store, StoreError, Write};
use crate::validate::MachineType;
use crate::value::{byte_offset, JsonParser, Value};
use crate::vm::CallbackError;

/// AWS's limit for Express executions.
pub const EXPRESS_MAX_SECONDS: u64 = 300;
/// AWS's limit for Standard executions (one year).
pub const STANDARD_MAX_SECONDS: u64 = 366 * 24 * 3600;
/// AWS's limit on execution input and on every payload.
pub const INPUT_LIMIT: usize = crate::value::PAYLOAD_LIMIT;

/// How to build an [`Engine`].
pub struct EngineBuilder {
    shards: usize,
    inbox_capacity: usize,
    clock: Arc<dyn Clock>,
    handlers: Registry,
    tokio: Option<tokio::runtime::Handle>,
    region: String,
    account: String,
    step_budget: u32,
    max_reruns: u32,
    arena_bytes: usize,
    arena_keep_bytes: usize,
    seed: u64,
    logs: Option<LogWriter>,
    on_idle: Option<IdleHook>,
    store: Option<Arc<dyn Store>>,
    park_spin: Duration,
}

/// Called on a shard thread when the shard has no execution left and has given back
/// what the last burst grew (see [`EngineBuilder::on_idle`]).
pub type IdleHook = Arc<dyn Fn() + Send + Sync>;

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            shards: std::thread::available_parallelism().map_or(1, |n| n.get()),
            inbox_capacity: 65_536,
            clock: Arc::new(SystemClock),
            handlers: Registry::new(),
            tokio: None,
            region: "us-east-1".into(),
            account: "123456789012".into(),
            step_budget: 256,
            max_reruns: 3,
            arena_bytes: 960,
            arena_keep_bytes: 64 * 1024,
            seed: 0x5f6e_2024,
            logs: None,
            on_idle: None,
            store: None,
            park_spin: Duration::ZERO,
        }
    }
}

impl EngineBuilder {
    /// Executor threads (default: one per core).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n.max(1);
        self
    }

    /// Starts each shard's inbox holds before `start` is throttled (default 65,536). The
    /// bound is what keeps memory finite when starts arrive faster than shards run them.
    pub fn inbox_capacity(mut self, n: usize) -> Self {
        self.inbox_capacity = n.max(1);
        self
    }

    /// The clock every timer and timestamp reads (default: the system clock). Tests use
    /// [`crate::clock::ManualClock`]; load tests [`crate::clock::SpeedClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Task handlers, by resource ARN (exact or pattern), for every machine registered
    /// later unless its [`MachineSpec`] brings its own.
    pub fn handlers(mut self, handlers: Registry) -> Self {
        self.handlers = handlers;
        self
    }

    /// The tokio runtime asynchronous handlers run on. Without one, the engine starts a
    /// one-thread runtime the first time an asynchronous handler is called.
    pub fn tokio_handle(mut self, handle: tokio::runtime::Handle) -> Self {
        self.tokio = Some(handle);
        self
    }

    /// Region and account in the ARNs the engine makes.
    pub fn region_account(mut self, region: &str, account: &str) -> Self {
        self.region = region.into();
        self.account = account.into();
        self
    }

    /// States an execution may enter before its shard turns to other work (default 256).
    pub fn step_budget(mut self, n: u32) -> Self {
        self.step_budget = n.max(1);
        self
    }

    /// Restarts after panics before an execution is failed instead (default 3).
    pub fn max_reruns(mut self, n: u32) -> Self {
        self.max_reruns = n;
        self
    }

    /// First chunk of a new arena (default 960 bytes: with bumpalo's footer and the
    /// allocator's overhead, one 1 KiB block; a rider-photo execution parked at its first
    /// task uses about 700 bytes of it) and the largest arena a pool keeps after reset
    /// (default 64 KiB; a bigger one, left by an unusually large execution, is freed). An
    /// arena keeps its largest chunk across resets, so a pooled arena is as big as the
    /// largest execution it served, up to that bound. A new arena for a machine whose last
    /// execution on the shard needed more than `first` starts at that need (within `keep`).
    pub fn arena_sizes(mut self, first: usize, keep: usize) -> Self {
        self.arena_bytes = first;
        self.arena_keep_bytes = keep;
        self
    }

    /// Seed for execution names, UUIDs and each execution's random source.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Where Express log records go (machines registered with a [`LoggingConfig`] other
    /// than `OFF`). Shards hand lines to the writer's bounded queue and never wait for it:
    /// when it falls behind, lines are dropped and counted ([`Engine::log_lines_dropped`]).
    pub fn log_writer(mut self, writer: LogWriter) -> Self {
        self.logs = Some(writer);
        self
    }

    /// A function each shard calls, on its own thread, when its last execution has ended
    /// and it has dropped the pooled arenas and table slots beyond what it keeps for the
    /// next burst. The engine does not know the global allocator; a program using mimalloc
    /// passes `mi_collect` here so the freed pages go back to the OS (the `sfn` and
    /// `loadgen` binaries do).
    pub fn on_idle(mut self, hook: IdleHook) -> Self {
        self.on_idle = Some(hook);
        self
    }

    /// Where Standard executions are kept (see [`crate::store`]). With a store, every state
    /// transition of a Standard execution is committed to it before the next one runs,
    /// its history is recorded, `start` is idempotent on the execution name, and
    /// registering a machine resumes its unfinished executions from their journals.
    /// Without one, Standard executions run in memory like Express ones.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// How long a shard that runs out of work keeps looking for more before it parks
    /// (default zero: it parks at once). While it looks it gives its core to any other
    /// runnable thread between looks, and senders need not wake it. A parked shard's
    /// thread sleeps in the kernel, and on a virtual machine its idle vCPU halts: the next
    /// start then waits for a wake-up system call, the scheduler and, on a busy host, the
    /// hypervisor to run the vCPU again. The price is CPU: a shard that sees work at least
    /// every `spin` never parks, so its core shows busy all the time. For latency-bound
    /// deployments on dedicated cores; leave it at zero when the cores are shared with
    /// other work. Measured effect: results/README.md (`loadgen --park-spin-us`).
    pub fn park_spin(mut self, spin: Duration) -> Self {
        self.park_spin = spin;
        self
    }

    /// Starts the shards.
    pub fn build(self) -> Engine {
        let engine_ref = Arc::new(OnceLock::new());
        let inner = Arc::new(Inner {
            shards: OnceLock::new(),
            next: CachePadded::new(AtomicUsize::new(0)),
            batches: CachePadded::new(AtomicUsize::new(0)),
            accepting: AtomicBool::new(true),
            clock: self.clock,
            handlers: self.handlers,
            tokio: OnceLock::new(),
            machines: RwLock::new(Vec::new()),
            callbacks: Mutex::new(std::collections::HashMap::new()),
            expired: Mutex::new(ExpiredTokens::default()),
            region: self.region,
            account: self.account,
            step_budget: self.step_budget,
            max_reruns: self.max_reruns,
            arena_bytes: self.arena_bytes,
            arena_keep_bytes: self.arena_keep_bytes,
            park_spin: self.park_spin,
            seed: self.seed,
            threads: Mutex::new(Vec::new()),
            logs: RwLock::new(self.logs),
            on_idle: self.on_idle,
            store: self.store,
            engine_ref: engine_ref.clone(),
        });
        let _ = engine_ref.set(Arc::downgrade(&inner));
        if let Some(h) = self.tokio {
            let _ = inner.tokio.set(Tokio::Borrowed(h));
        }
        let mut shards = Vec::with_capacity(self.shards);
        let mut parkers = Vec::with_capacity(self.shards);
        for _ in 0..self.shards {
            let parker = crossbeam_utils::sync::Parker::new();
            shards.push(ShardQueues {
                starts: Inbox::new(self.inbox_capacity),
                control: SegQueue::new(),
                unparker: parker.unparker().clone(),
                sleeping: CachePadded::new(AtomicBool::new(false)),
                gauges: ShardGauges::default(),
            });
            parkers.push(parker);
        }
        let _ = inner.shards.set(shards);
        let mut threads = inner.threads.lock();
        for (index, parker) in parkers.into_iter().enumerate() {
            let inner2 = inner.clone();
            let t = std::thread::Builder::new()
                .name(format!("sfn-shard-{index}"))
                .spawn(move || shard::run(inner2, index, parker))
                .expect("the OS starts a shard thread");
            threads.push(t);
        }
        drop(threads);
        Engine { inner, owner: true }
    }
}

/// A state machine to register.
pub struct MachineSpec<'d> {
    pub name: &'d str,
    pub definition: &'d [u8],
    pub machine_type: MachineType,
    /// Handlers for this machine only (default: the engine's).
    pub handlers: Option<&'d Registry>,
    /// Mocked task answers (Step Functions Local's format, see [`crate::mocks`]).
    pub mocks: Option<&'d MockSet>,
    /// Default: `arn:aws:iam::ACCOUNT:role/service-role/StepFunctions-NAME-role`.
    pub role_arn: Option<&'d str>,
    /// AWS's `loggingConfiguration` (level, includeExecutionData); default `OFF`. Records
    /// go to the engine's [`EngineBuilder::log_writer`].
    pub logging: LoggingConfig,
}

impl<'d> MachineSpec<'d> {
    pub fn new(name: &'d str, definition: &'d [u8], machine_type: MachineType) -> Self {
        MachineSpec {
            name,
            definition,
            machine_type,
            handlers: None,
            mocks: None,
            role_arn: None,
            logging: LoggingConfig::default(),
        }
    }
}

/// Why a state machine was not registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The definition has problems (every one of them, located by JSON pointer).
    #[error("InvalidDefinition: {}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("; "))]
    InvalidDefinition(Vec<Diagnostic>),
    /// AWS's naming rules: 1–80 characters, none of whitespace, `<>{}[]?*"#%\^|~`$&,;:/`
    /// or control characters.
    #[error("InvalidName: {0}")]
    InvalidName(String),
    #[error("StateMachineAlreadyExists: a state machine named {0:?} is registered")]
    AlreadyExists(String),
    /// Logging asked for, but the engine has no log writer.
    #[error("InvalidLoggingConfiguration: {0}")]
    InvalidLoggingConfiguration(String),
}

/// A registered state machine. Cheap to clone; starting it needs no lookup.
///
/// The entry is cache-padded, as is [`Input`]'s data: every start bumps the `Arc`'s count
/// on the starting thread's core, and a shard reading a field on that count's cache line
/// would pull the line across cores (and the next start push it back) once per execution.
#[derive(Clone)]
pub struct StateMachine(Arc<CachePadded<MachineEntry>>);

pub(crate) struct MachineEntry {
    name: String,
    arn: String,
    role_arn: String,
    machine_type: MachineType,
    program: Arc<Program>,
    /// `arn:aws:states:R:A:express:NAME:` or `…:execution:NAME:`.
    exec_arn_prefix: String,
    /// The Express cap or the Standard maximum, or the definition's lower TimeoutSeconds
    /// (which the VM enforces itself, with its own cause).
    max_nanos: i64,
    /// Some task waits for a callback (`.waitForTaskToken`): its tokens are routed.
    callbacks: bool,
    logging: LoggingConfig,
    /// Standard on an engine with a store: journaled, resumable, with a history.
    durable: bool,
    /// Hex SHA-256 of the definition (a resumed execution must find the same one).
    definition_hash: String,
    throttled: AtomicU64,
    stats: Box<[metrics::ShardStats]>,
}

impl StateMachine {
    pub fn name(&self) -> &str {
        &self.0.name
    }
    pub fn arn(&self) -> &str {
        &self.0.arn
    }
    pub fn machine_type(&self) -> MachineType {
        self.0.machine_type
    }
    pub fn program(&self) -> &Arc<Program> {
        &self.0.program
    }
}

impl fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachine").field("arn", &self.0.arn).finish()
    }
}

/// Execution input: JSON text, checked once and parsed once. Cloning shares both, so one
/// input can start any number of executions without copying or parsing again (the load
/// generator does this; so does a caller that starts many executions with one input).
#[derive(Clone)]
pub struct Input(Arc<CachePadded<InputData>>);

struct InputData {
    text: Bytes,
    /// The text parsed into an arena of its own, read by every execution started with this
    /// input in place of a parse into its own arena (a shard spent ~1,800 instructions, a
    /// sixth of a rider-photo execution, parsing its 80 bytes with simd-json). `None` for
    /// input taken back from a store unchecked, and where simd-json refused what serde_json
    /// accepted: the shard parses those into the execution's arena and reports a failure
    /// there.
    parsed: Option<ParsedInput>,
}

self_cell::self_cell!(
    /// The parsed input: values in a frozen arena, immutable, shared by the executions (on
    /// any shard) that hold the `Input`.
    struct ParsedInput {
        owner: FrozenBump,
        #[covariant]
        dependent: Value,
    }
);

thread_local! {
    /// simd-json's buffers, kept per thread: building them costs more than parsing a small
    /// input.
    static INPUT_PARSER: std::cell::RefCell<JsonParser> = std::cell::RefCell::new(JsonParser::new());
}

/// Why an input was refused (AWS: `InvalidExecutionInput`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("InvalidExecutionInput: input is not valid JSON at byte {offset}: {message}")]
    NotJson { offset: usize, message: String },
    #[error("InvalidExecutionInput: input is {0} bytes; the limit is 262144")]
    TooLarge(usize),
}

impl Input {
    /// Checks that `text` is one JSON value within AWS's 256 KiB limit, and parses it.
    pub fn from_json(text: impl Into<Bytes>) -> Result<Input, InputError> {
        let text = text.into();
        if text.len() > INPUT_LIMIT {
            return Err(InputError::TooLarge(text.len()));
        }
        // serde_json decides what is valid (and says where it is not), as before parsing
        // moved here; simd-json builds the values the executions read.
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&text) {
            let offset = byte_offset(&text, e.line(), e.column());
            return Err(InputError::NotJson { offset, message: e.to_string() });
        }
        let parsed = INPUT_PARSER.with_borrow_mut(|parser| {
            // Room for the copy simd-json parses in place and the values: one chunk.
            let bump = Bump::with_capacity(text.len() * 3 + 64);
            ParsedInput::try_new(FrozenBump(bump), |frozen| parser.parse(&frozen.0, &text)).ok()
        });
        Ok(Input(Arc::new(CachePadded::new(InputData { text, parsed }))))
    }

    /// Input read back from where it was checked before (a store); parsed when it begins.
    fn stored(text: Bytes) -> Input {
        Input(Arc::new(CachePadded::new(InputData { text, parsed: None })))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0.text
    }

    /// The parsed value, when [`Input::from_json`] parsed it.
    pub(crate) fn parsed(&self) -> Option<Value<'_>> {
        self.0.parsed.as_ref().map(|p| *p.borrow_dependent())
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Input").field(&String::from_utf8_lossy(&self.0.text)).finish()
    }
}

/// Why a start was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// Every shard's inbox is full (the API maps this to `ThrottlingException`).
    #[error("ThrottlingException: every shard's inbox is full")]
    Throttled,
    #[error("InvalidName: {0}")]
    InvalidName(String),
    /// `start_sync` on a Standard machine.
    #[error("StateMachineTypeNotSupported: synchronous starts are for Express state machines")]
    TypeNotSupported,
    /// The engine is shutting down.
    #[error("the engine is shutting down")]
    ShuttingDown,
    /// A Standard execution with this name exists, and is closed or had another input.
    #[error("ExecutionAlreadyExists: Execution Already Exists: '{0}'")]
    ExecutionAlreadyExists(String),
    /// The store failed to record the start.
    #[error("the store failed: {0}")]
    Store(String),
}

/// A started execution.
#[derive(Clone, Debug)]
pub struct Execution {
    machine: StateMachine,
    /// The caller's name; `None`: named with a random UUID (as AWS names unnamed
    /// executions), derived from `key` when asked for.
    name: Option<Arc<str>>,
    /// The execution's identity key (`identity_key`): its UUID and generated name.
    key: u64,
    /// Clock nanoseconds.
    pub start_date: i64,
}

impl Execution {
    /// `arn:aws:states:R:A:express:MACHINE:NAME:UUID` (Express) or
    /// `arn:aws:states:R:A:execution:MACHINE:NAME` (Standard).
    pub fn arn(&self) -> String {
        execution_arn(&self.machine.0, self.name.as_ref(), self.key)
    }

    pub fn name(&self) -> String {
        execution_name(self.name.as_ref(), self.key)
    }
}

/// An execution's name: the caller's, or the UUID drawn from its identity key.
fn execution_name(given: Option<&Arc<str>>, key: u64) -> String {
    match given {
        Some(n) => n.to_string(),
        None => uuid::Uuid::from_u128(identity_uuid(key, NAME_LANE)).to_string(),
    }
}

/// An execution's ARN ([`Execution::arn`]).
fn execution_arn(m: &MachineEntry, given: Option<&Arc<str>>, key: u64) -> String {
    let mut s = m.exec_arn_prefix.clone();
    s.push_str(&execution_name(given, key));
    if m.machine_type == MachineType::Express {
        s.push(':');
        s.push_str(&uuid::Uuid::from_u128(identity_uuid(key, UUID_LANE)).to_string());
    }
    s
}

/// What a synchronous start returns (StartSyncExecution's fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResult {
    pub execution_arn: String,
    pub name: String,
    pub status: Status,
    /// Compact JSON text (SUCCEEDED only).
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Clock nanoseconds.
    pub start_date: i64,
    pub stop_date: i64,
    pub billing: BillingDetails,
    /// States entered.
    pub transitions: u64,
}

/// AWS's billing figures for a synchronous Express execution: duration rounded up to
/// 100 ms, memory (the execution's arena) rounded up to 64 MB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BillingDetails {
    pub billed_memory_used_in_mb: u64,
    pub billed_duration_in_milliseconds: u64,
}

impl BillingDetails {
    fn new(duration_nanos: i64, memory_bytes: usize) -> Self {
        let ms = (duration_nanos.max(0) as u64).div_ceil(1_000_000);
        let mb = (memory_bytes as u64).div_ceil(1 << 20).max(1);
        BillingDetails {
            billed_duration_in_milliseconds: ms.div_ceil(100).max(1) * 100,
            billed_memory_used_in_mb: mb.div_ceil(64) * 64,
        }
    }
}

/// Why a synchronous start gave no result.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Start(#[from] StartError),
    /// The engine shut down before the execution ended.
    #[error("the engine shut down before the execution ended")]
    Abandoned,
}

/// The answer to `start_sync`: a future (usable from any executor, or with
/// [`SyncStart::wait`] from plain threads).
pub struct SyncStart {
    rx: Result<tokio::sync::oneshot::Receiver<SyncResult>, Option<StartError>>,
}

impl SyncStart {
    /// Blocks the calling thread until the execution ends.
    pub fn wait(self) -> Result<SyncResult, SyncError> {
        crate::local::block_on(self)
    }
}

impl Future for SyncStart {
    type Output = Result<SyncResult, SyncError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.rx {
            Ok(rx) => Pin::new(rx).poll(cx).map(|r| r.map_err(|_| SyncError::Abandoned)),
            Err(e) => Poll::Ready(Err(SyncError::Start(e.take().expect("polled after completion")))),
        }
    }
}

/// How `shutdown` treats executions still running.
#[derive(Clone, Copy, Debug)]
pub enum Shutdown {
    /// Stop taking starts, let running and queued executions end; after `deadline` (real
    /// time) abandon whatever is left.
    Drain(Duration),
    /// Stop now; running and queued executions are abandoned.
    Abandon,
}

/// What `shutdown` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Executions (and queued starts) dropped unfinished.
    pub abandoned: u64,
    /// The log writer's I/O error, if writing or flushing the records failed.
    pub log_error: Option<String>,
}

/// Live figures of one shard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardGaugesSnapshot {
    /// Executions the shard holds (running or parked).
    pub executions: u64,
    /// Of those, the ones waiting (for a timer or an asynchronous answer).
    pub parked: u64,
    /// Bytes held by the arenas of those executions.
    pub arena_bytes: u64,
    /// Bytes of the shard's execution table (slots and their bookkeeping, and the room
    /// each held or pooled execution is built in).
    pub table_bytes: u64,
    /// Reset arenas kept for reuse, and their bytes.
    pub pooled_arenas: u64,
    pub pooled_bytes: u64,
    /// Pending timer entries (including stale ones not yet surfaced).
    pub timers: u64,
    /// The earliest pending timer (clock nanoseconds; possibly a stale entry), `i64::MAX`
    /// with none: every timer due before it has fired. Published when the shard goes
    /// idle, so with `parked == executions` it tells a driver of virtual time that the
    /// shard has handled every instant before it.
    pub next_timer: i64,
    /// Entries waiting in the inbox: single starts and `start_batch` chunks (one each).
    pub inbox: u64,
    /// Asynchronous handler answers the shard had taken from its control queue and handled
    /// (including answers for executions that ended meanwhile) when it last went idle:
    /// with a count of the answers handlers gave, a driver of virtual time knows when
    /// every one has been handled.
    pub answers: u64,
    /// Parked (or about to park) with nothing sent to it since: it published these gauges
    /// just before, so they are current. A shard that is awake may be handling starts or
    /// messages its last published gauges do not show yet.
    pub asleep: bool,
}

#[derive(Default)]
pub(crate) struct ShardGauges {
    executions: metrics::Counter,
    parked: metrics::Counter,
    arena_bytes: metrics::Counter,
    table_bytes: metrics::Counter,
    pooled_arenas: metrics::Counter,
    pooled_bytes: metrics::Counter,
    timers: metrics::Counter,
    next_timer: metrics::Counter,
    answers: metrics::Counter,
}

/// A shard's starts not begun yet: single ones and `start_batch` chunks, one entry each,
/// and how many starts they carry in all.
pub(crate) struct Inbox {
    queue: ArrayQueue<Inbound>,
    /// Starts the waiting chunks carry beyond one each: with the queue's length, the
    /// starts waiting. Added before a chunk is pushed and taken off after it is popped, so
    /// it never counts fewer than wait. Single starts leave it alone (their path pays
    /// nothing for it).
    extra: CachePadded<AtomicUsize>,
}

impl Inbox {
    fn new(capacity: usize) -> Inbox {
        Inbox { queue: ArrayQueue::new(capacity), extra: CachePadded::new(AtomicUsize::new(0)) }
    }

    fn push(&self, start: Inbound) -> Result<(), Inbound> {
        let extra = start.starts() - 1;
        if extra > 0 {
            self.extra.fetch_add(extra, Ordering::Relaxed);
        }
        self.queue.push(start).inspect_err(|_| {
            if extra > 0 {
                self.extra.fetch_sub(extra, Ordering::Relaxed);
            }
        })
    }

    pub(crate) fn pop(&self) -> Option<Inbound> {
        let start = self.queue.pop()?;
        let extra = start.starts() - 1;
        if extra > 0 {
            self.extra.fetch_sub(extra, Ordering::Relaxed);
        }
        Some(start)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Entries waiting.
    fn len(&self) -> usize {
        self.queue.len()
    }

    /// Starts waiting (at least; a chunk being pushed may be counted already).
    fn waiting(&self) -> usize {
        self.queue.len() + self.extra.load(Ordering::Relaxed)
    }
}

pub(crate) struct ShardQueues {
    starts: Inbox,
    control: SegQueue<Control>,
    unparker: Unparker,
    /// Set by the shard just before it parks, cleared by whoever wakes it (or by the shard
    /// when its timer wakes it): "parked, and nobody has woken it yet". Waking a parked
    /// thread costs both sides a system call and a context switch, so senders wake only
    /// when this is set, and `submit` prefers a shard that is awake.
    sleeping: CachePadded<AtomicBool>,
    gauges: ShardGauges,
}

impl ShardQueues {
    fn send(&self, c: Control) {
        self.control.push(c);
        self.wake();
    }

    /// After pushing to this shard's queues: wakes the shard if it is parked or about to
    /// park. The swap is a full barrier, paired with the shard's fence between setting
    /// `sleeping` and its last look at the queues, so either the shard sees the push or
    /// this sees the flag.
    fn wake(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst) {
            self.unparker.unpark();
        }
    }

    fn asleep(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }
}

/// A start request on its way to (or held by) a shard. Every start crosses from the
/// starting thread's core to a shard's through a queue slot, so it is kept to 56 bytes:
/// with the slot's stamp, one cache line. What few starts have (a name, a reply, a
/// durable record) is boxed in `extra`.
pub(crate) struct Start {
    machine: StateMachine,
    input: Input,
    /// The execution's identity key: its UUID and, when unnamed, its name derive from it
    /// (`identity_uuid`), on the shard rather than on the starting thread.
    key: u64,
    /// When `start` accepted it (clock nanoseconds).
    accepted_at: i64,
    /// When the caller made the request (`start_requested`; otherwise `accepted_at`): the
    /// start-latency histogram counts from here.
    requested_at: i64,
    /// Runs so far that ended in a panic.
    reruns: u32,
    extra: Option<Box<StartExtra>>,
}

// One cache line with the queue slot's 8-byte stamp.
const _: () = assert!(std::mem::size_of::<Start>() <= 56);

/// Starts handed to a shard together (`Engine::start_batch`): unnamed asynchronous starts
/// of one machine on one input, accepted at one clock reading. The starting thread's work
/// per start is then an entry in `requested_at`; the shard makes each `Start` as it begins
/// it.
pub(crate) struct StartBatch {
    machine: StateMachine,
    input: Input,
    /// The first start's sequence number; the i-th one's is `first_seq + i`.
    first_seq: u64,
    accepted_at: i64,
    /// When each start was requested (clock nanoseconds, at most `accepted_at`).
    requested_at: Vec<i64>,
}

impl StartBatch {
    fn len(&self) -> usize {
        self.requested_at.len()
    }
}

/// What a shard's inbox holds.
pub(crate) enum Inbound {
    One(Start),
    Batch(Box<StartBatch>),
}

impl Inbound {
    /// Starts it carries.
    fn starts(&self) -> usize {
        match self {
            Inbound::One(_) => 1,
            Inbound::Batch(b) => b.len(),
        }
    }

    fn machine(&self) -> &StateMachine {
        match self {
            Inbound::One(s) => &s.machine,
            Inbound::Batch(b) => &b.machine,
        }
    }
}

const _: () = assert!(std::mem::size_of::<Inbound>() <= 56);

/// Most starts one `start_batch` chunk carries. A chunk begins on one shard, one start
/// after another, so a batch is cut into at least one chunk per shard (80 starts on 2
/// shards: 40 and 40, not 64 and 16, which would give one shard four fifths of the work)
/// and a large one into chunks of this size.
pub const START_BATCH_MAX: usize = 64;

/// The parts of a start that most starts (unnamed asynchronous Express ones) lack.
#[derive(Default)]
pub(crate) struct StartExtra {
    /// The caller's name for the execution.
    name: Option<Arc<str>>,
    /// Where a synchronous start's result goes.
    reply: Option<tokio::sync::oneshot::Sender<SyncResult>>,
    /// A durable (Standard, stored) execution: its record and, when resuming, its journal.
    durable: Option<DurableStart>,
}

pub(crate) struct DurableStart {
    record: ExecutionRecord,
    journal: Vec<Vec<u8>>,
}

impl Start {
    /// These two read the machine through the start's handle: no reference-count traffic
    /// on its cache line, which the starting thread's core writes on every start.
    fn arn(&self) -> String {
        execution_arn(&self.machine.0, self.given_name(), self.key)
    }

    fn name_string(&self) -> String {
        execution_name(self.given_name(), self.key)
    }

    fn given_name(&self) -> Option<&Arc<str>> {
        self.extra.as_ref().and_then(|x| x.name.as_ref())
    }

    /// The execution's UUID (the last part of an Express execution's ARN).
    fn uuid(&self) -> u128 {
        identity_uuid(self.key, UUID_LANE)
    }

    /// The UUID an unnamed execution is named with.
    fn generated_name(&self) -> u128 {
        identity_uuid(self.key, NAME_LANE)
    }

    fn extra(&mut self) -> &mut StartExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    fn take_reply(&mut self) -> Option<tokio::sync::oneshot::Sender<SyncResult>> {
        self.extra.as_mut().and_then(|x| x.reply.take())
    }

    fn take_durable(&mut self) -> Option<DurableStart> {
        self.extra.as_mut().and_then(|x| x.durable.take())
    }

    fn set_durable(&mut self, d: DurableStart) {
        self.extra().durable = Some(d);
    }
}

/// Messages a shard must never refuse.
pub(crate) enum Control {
    /// A re-run (after a panic elsewhere).
    Start(Start),
    /// An asynchronous handler answered (or panicked: `Err(message)`).
    Answer { slot: u32, gen: u32, call: u64, result: Result<Result<serde_json::Value, TaskError>, String> },
    /// Finish what is running, then stop; abandon what is left at `deadline` (real time).
    Drain(std::time::Instant),
    /// SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat for a task of the execution
    /// in `slot`.
    Callback {
        slot: u32,
        gen: u32,
        token: Box<str>,
        action: Callback,
        reply: tokio::sync::oneshot::Sender<Result<(), CallbackError>>,
    },
    /// The group commit holding a durable execution's last writes is durable (or failed).
    Committed { slot: u32, gen: u32, result: Result<(), String> },
    /// Test hook: panic in the shard's own loop (not inside an execution).
    Panic,
}

/// Tokens whose task timed out: a bounded set, oldest forgotten first.
#[derive(Default)]
pub(crate) struct ExpiredTokens {
    set: std::collections::HashSet<Box<str>>,
    order: std::collections::VecDeque<Box<str>>,
}

/// How many timed-out tokens the engine remembers.
const EXPIRED_TOKENS_KEPT: usize = 65_536;

/// Starts an awake shard may have waiting before `submit` wakes a parked one instead:
/// about 60 µs of a short workflow's work, less than waking a parked shard can take on a
/// virtual machine (a system call, then the host running the idle vCPU again). On this
/// project's 2-vCPU VM (rider, 2 shards, 3-s `loadgen check-rate` runs, three alternating
/// runs each): 16 took 0.92-1.02 CPU-s at 100,000/s with one p99 miss, 64 0.82-0.87 with
/// p99 184-295 µs; at 600,000/s 64 passed 3 of 3 (p99 249-494 µs), 16 2 of 3, 256 1 of 3.
const PREFER_AWAKE_BELOW: usize = 64;

impl ExpiredTokens {
    pub(crate) fn insert(&mut self, token: &str) {
        if self.set.insert(token.into()) {
            self.order.push_back(token.into());
            if self.order.len() > EXPIRED_TOKENS_KEPT {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

/// A callback held until its task's handler has returned.
pub(crate) struct EarlyCallback {
    token: Box<str>,
    action: Callback,
    reply: tokio::sync::oneshot::Sender<Result<(), CallbackError>>,
}

/// What a task callback says.
pub(crate) enum Callback {
    Success(Box<str>),
    Failure { error: Box<str>, cause: Option<Box<str>> },
    Heartbeat,
}

/// The answer to a task callback (a future, or [`CallbackReply::wait`] from plain threads).
pub struct CallbackReply {
    rx: Result<tokio::sync::oneshot::Receiver<Result<(), CallbackError>>, Option<CallbackError>>,
}

impl CallbackReply {
    /// Blocks the calling thread until the shard has applied (or refused) the callback.
    pub fn wait(self) -> Result<(), CallbackError> {
        crate::local::block_on(self)
    }
}

impl Future for CallbackReply {
    type Output = Result<(), CallbackError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.rx {
            // A dropped reply means the execution ended first: the task no longer exists.
            Ok(rx) => Pin::new(rx).poll(cx).map(|r| r.unwrap_or(Err(CallbackError::TaskDoesNotExist))),
            Err(e) => Poll::Ready(Err(e.take().expect("polled after completion"))),
        }
    }
}

enum Tokio {
    Borrowed(tokio::runtime::Handle),
    Owned(tokio::runtime::Runtime),
}

impl Tokio {
    fn handle(&self) -> &tokio::runtime::Handle {
        match self {
            Tokio::Borrowed(h) => h,
            Tokio::Owned(rt) => rt.handle(),
        }
    }
}

pub(crate) struct Inner {
    shards: OnceLock<Vec<ShardQueues>>,
    /// The start sequence, bumped by every start on the caller's thread: on a line of its
    /// own, away from the fields the shards read.
    next: CachePadded<AtomicUsize>,
    /// Batches handed out (`start_batch`): their round-robin turn, as `next` is single
    /// starts'.
    batches: CachePadded<AtomicUsize>,
    accepting: AtomicBool,
    clock: Arc<dyn Clock>,
    handlers: Registry,
    tokio: OnceLock<Tokio>,
    machines: RwLock<Vec<StateMachine>>,
    /// Task tokens of callback tasks now waiting → (shard, slot, generation). Only
    /// executions of machines with `.waitForTaskToken` tasks touch it.
    callbacks: Mutex<std::collections::HashMap<Box<str>, (u32, u32, u32)>>,
    /// Tokens whose task timed out, most recent `EXPIRED_TOKENS_KEPT` (SendTask* with them
    /// gets `TaskTimedOut` rather than `TaskDoesNotExist`).
    expired: Mutex<ExpiredTokens>,
    region: String,
    account: String,
    step_budget: u32,
    max_reruns: u32,
    arena_bytes: usize,
    arena_keep_bytes: usize,
    /// `EngineBuilder::park_spin`.
    park_spin: Duration,
    seed: u64,
    threads: Mutex<Vec<JoinHandle<u64>>>,
    /// Read-locked by shards only for machines that log; taken at shutdown to flush.
    logs: RwLock<Option<LogWriter>>,
    on_idle: Option<IdleHook>,
    store: Option<Arc<dyn Store>>,
    /// The engine itself, for the built-in `states:startExecution` integration.
    engine_ref: Arc<OnceLock<std::sync::Weak<Inner>>>,
}

impl Inner {
    fn shards(&self) -> &[ShardQueues] {
        self.shards.get().expect("shards are set before any thread starts")
    }

    fn tokio(&self) -> &tokio::runtime::Handle {
        self.tokio
            .get_or_init(|| {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("sfn-io")
                    .enable_all()
                    .build()
                    .expect("the OS starts the I/O runtime's thread");
                Tokio::Owned(rt)
            })
            .handle()
    }
}

/// The engine: shards, registered machines, metrics. Dropping it abandons whatever runs.
pub struct Engine {
    inner: Arc<Inner>,
    /// Dropping the owner stops the engine; the handles the built-in integrations hold
    /// (`states:startExecution`) do not.
    owner: bool,
}

impl Engine {
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// Validates and compiles a definition once; its program is then shared by every
    /// shard. Express definitions that use `.sync` or `.waitForTaskToken` are refused, as
    /// AWS does.
    pub fn register(&self, spec: MachineSpec<'_>) -> Result<StateMachine, RegisterError> {
        check_name(spec.name).map_err(RegisterError::InvalidName)?;
        if spec.logging.level != LogLevel::Off && self.inner.logs.read().is_none() {
            return Err(RegisterError::InvalidLoggingConfiguration(format!(
                "{} logging needs a destination: build the engine with EngineBuilder::log_writer",
                spec.logging.level.as_str()
            )));
        }
        let durable = spec.machine_type == MachineType::Standard && self.inner.store.is_some();
        let mut handlers = spec.handlers.unwrap_or(&self.inner.handlers).clone();
        nested::register(&mut handlers, &self.inner.engine_ref);
        if durable {
            // Every answer must pass through the shard, which journals it.
            handlers = handlers.to_async();
        }
        let program =
            crate::load(spec.definition, spec.machine_type, Bindings { handlers: Some(&handlers), mocks: spec.mocks })
                .map_err(RegisterError::InvalidDefinition)?;
        let definition_hash = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(spec.definition))
        };
        let (region, account, name) = (&self.inner.region, &self.inner.account, spec.name);
        let cap = match spec.machine_type {
            MachineType::Express => EXPRESS_MAX_SECONDS,
            MachineType::Standard => STANDARD_MAX_SECONDS,
        };
        let kind = match spec.machine_type {
            MachineType::Express => "express",
            MachineType::Standard => "execution",
        };
        let entry = MachineEntry {
            name: name.to_owned(),
            arn: format!("arn:aws:states:{region}:{account}:stateMachine:{name}"),
            role_arn: spec.role_arn.map_or_else(
                || format!("arn:aws:iam::{account}:role/service-role/StepFunctions-{name}-role"),
                str::to_owned,
            ),
            machine_type: spec.machine_type,
            exec_arn_prefix: format!("arn:aws:states:{region}:{account}:{kind}:{name}:"),
            max_nanos: cap as i64 * NANOS_PER_SEC,
            callbacks: program.tasks.iter().any(|t| t.callback),
            logging: spec.logging,
            durable,
            definition_hash,
            program: Arc::new(program),
            throttled: AtomicU64::new(0),
            stats: (0..self.inner.shards().len()).map(|_| metrics::ShardStats::default()).collect(),
        };
        let mut machines = self.inner.machines.write();
        if machines.iter().any(|m| m.0.name == spec.name) {
            return Err(RegisterError::AlreadyExists(spec.name.to_owned()));
        }
        let m = StateMachine(Arc::new(CachePadded::new(entry)));
        machines.push(m.clone());
        drop(machines);
        if durable {
            self.resume(&m);
        }
        Ok(m)
    }

    /// Resumes every unfinished execution of a durable machine from its journal. One whose
    /// definition changed since it started cannot be replayed: it fails.
    fn resume(&self, m: &StateMachine) {
        let Some(store) = &self.inner.store else { return };
        let records = match store.unfinished(&m.0.arn) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("sfn: cannot list the unfinished executions of {}: {e}", m.0.arn);
                return;
            }
        };
        for record in records {
            if record.definition_hash != m.0.definition_hash {
                let now = self.inner.clock.now();
                let mut r = record;
                r.status = RecordStatus::Failed;
                r.stop_date = Some(now);
                r.error = Some("States.Runtime".into());
                r.cause = Some(
                    "The execution cannot resume: the state machine's definition is not the one it started with."
                        .into(),
                );
                store.submit(vec![Write::Record(Box::new(r))], Box::new(|_| {}));
                continue;
            }
            let journal = match store.journal(&record.execution_arn) {
                Ok(j) => j,
                Err(e) => {
                    eprintln!("sfn: cannot read the journal of {}: {e}", record.execution_arn);
                    continue;
                }
            };
            let seq = self.inner.next.fetch_add(1, Ordering::Relaxed);
            let start = Start {
                machine: m.clone(),
                input: Input::stored(Bytes::from(record.input.clone().into_bytes())),
                key: identity_key(self.inner.seed, seq as u64),
                accepted_at: record.start_date,
                requested_at: record.start_date,
                reruns: 0,
                extra: Some(Box::new(StartExtra {
                    name: Some(record.name.as_str().into()),
                    reply: None,
                    durable: Some(DurableStart { record, journal }),
                })),
            };
            let shards = self.inner.shards();
            shards[seq % shards.len()].send(Control::Start(start));
        }
    }

    /// A registered machine by name.
    pub fn machine(&self, name: &str) -> Option<StateMachine> {
        self.inner.machines.read().iter().find(|m| m.0.name == name).cloned()
    }

    /// Starts an execution and returns as soon as a shard's inbox took it (asynchronous
    /// Express: at least once). `name` defaults to a random UUID.
    pub fn start(&self, machine: &StateMachine, input: &Input, name: Option<&str>) -> Result<Execution, StartError> {
        let (start, exec, seq) = self.request(machine, input, name, None)?;
        if machine.0.durable {
            return self.start_durable(start, exec, seq);
        }
        self.submit(Inbound::One(start), seq)?;
        Ok(exec)
    }

    /// A durable start: the record is committed first (idempotent on the name, as AWS's
    /// StartExecution is for Standard machines), then the execution goes to a shard's
    /// control queue, which never refuses (a committed start must run).
    fn start_durable(&self, mut start: Start, exec: Execution, seq: usize) -> Result<Execution, StartError> {
        let store = self.inner.store.as_ref().expect("durable machines exist only with a store");
        let m = &start.machine.0;
        let record = ExecutionRecord {
            execution_arn: exec.arn(),
            state_machine_arn: m.arn.clone(),
            name: exec.name(),
            status: RecordStatus::Running,
            input: String::from_utf8_lossy(start.input.as_bytes()).into_owned(),
            output: None,
            error: None,
            cause: None,
            start_date: start.accepted_at,
            stop_date: None,
            seed: fold_uuid(start.uuid()),
            definition_hash: m.definition_hash.clone(),
            started_by: started_by(start.input.as_bytes()),
        };
        match store.create_execution(&record, Vec::new()).map_err(|e| StartError::Store(e.to_string()))? {
            Created::New => {}
            Created::Existing(old) => {
                let same_input = serde_json::from_str::<serde_json::Value>(&old.input).ok()
                    == serde_json::from_slice::<serde_json::Value>(start.input.as_bytes()).ok();
                if old.status == RecordStatus::Running && same_input {
                    return Ok(Execution { start_date: old.start_date, ..exec });
                }
                return Err(StartError::ExecutionAlreadyExists(old.execution_arn));
            }
        }
        start.set_durable(DurableStart { record, journal: Vec::new() });
        let shards = self.inner.shards();
        shards[seq % shards.len()].send(Control::Start(start));
        Ok(exec)
    }

    /// The store's record of a durable execution (DescribeExecution).
    pub fn describe_execution(&self, execution_arn: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        match &self.inner.store {
            Some(s) => s.execution(execution_arn),
            None => Ok(None),
        }
    }

    /// Durable executions, newest first (ListExecutions).
    pub fn list_executions(
        &self,
        filter: &ListFilter,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<ExecutionRecord>, StoreError> {
        match &self.inner.store {
            Some(s) => s.list_executions(filter, max_results, next_token),
            None => Ok(Page { items: Vec::new(), next_token: None }),
        }
    }

    /// A durable execution's history events as JSON (GetExecutionHistory).
    pub fn execution_history(
        &self,
        execution_arn: &str,
        reverse: bool,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<Vec<u8>>, StoreError> {
        match &self.inner.store {
            Some(s) => s.history(execution_arn, reverse, max_results, next_token),
            None => Ok(Page { items: Vec::new(), next_token: None }),
        }
    }

    /// The engine's store, if it has one.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.inner.store.as_ref()
    }

    /// [`Engine::start`] for a request made earlier, at `requested_at` (nanoseconds on the
    /// engine's clock): when a server received it, or when a load generator meant to send
    /// it. The execution is the same; only the metrics' start latency counts from
    /// `requested_at` instead of from acceptance, so that time spent before the call (in a
    /// server's queue, or a generator running late) is not hidden. A `requested_at` later
    /// than acceptance counts as acceptance.
    pub fn start_requested(
        &self,
        machine: &StateMachine,
        input: &Input,
        name: Option<&str>,
        requested_at: i64,
    ) -> Result<Execution, StartError> {
        let (mut start, exec, seq) = self.request(machine, input, name, None)?;
        start.requested_at = requested_at.min(start.accepted_at);
        if machine.0.durable {
            return self.start_durable(start, exec, seq);
        }
        self.submit(Inbound::One(start), seq)?;
        Ok(exec)
    }

    /// Starts one unnamed execution per entry of `requested_at` (clock nanoseconds, as in
    /// [`Engine::start_requested`]), handing them to the shards in chunks (at least one
    /// per shard, at most `START_BATCH_MAX` starts each): one clock reading per call, one
    /// inbox slot and one pair of reference-count increments per chunk instead of per
    /// start. For a caller that has many starts at once (a load generator's burst, a
    /// consumer draining a queue). Returns how many were accepted; a chunk is accepted or
    /// throttled whole. Standard machines start one by one (each is committed to the store
    /// first).
    pub fn start_batch(
        &self,
        machine: &StateMachine,
        input: &Input,
        requested_at: &[i64],
    ) -> Result<usize, StartError> {
        if machine.0.durable {
            let mut accepted = 0;
            for &at in requested_at {
                match self.start_requested(machine, input, None, at) {
                    Ok(_) => accepted += 1,
                    Err(StartError::Throttled) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(accepted);
        }
        if !self.inner.accepting.load(Ordering::Relaxed) {
            return Err(StartError::ShuttingDown);
        }
        let accepted_at = self.inner.clock.now();
        let mut accepted = 0;
        let per_chunk = requested_at.len().div_ceil(self.inner.shards().len()).clamp(1, START_BATCH_MAX);
        for chunk in requested_at.chunks(per_chunk) {
            let seq = self.inner.next.fetch_add(chunk.len(), Ordering::Relaxed);
            let batch = StartBatch {
                machine: machine.clone(),
                input: input.clone(),
                first_seq: seq as u64,
                accepted_at,
                requested_at: chunk.iter().map(|&t| t.min(accepted_at)).collect(),
            };
            let turn = self.inner.batches.fetch_add(1, Ordering::Relaxed);
            if self.submit(Inbound::Batch(Box::new(batch)), turn).is_ok() {
                accepted += chunk.len();
            }
        }
        Ok(accepted)
    }

    /// Starts an Express execution and resolves with its result (StartSyncExecution: at
    /// most once).
    pub fn start_sync(&self, machine: &StateMachine, input: &Input, name: Option<&str>) -> SyncStart {
        if machine.0.machine_type != MachineType::Express {
            return SyncStart { rx: Err(Some(StartError::TypeNotSupported)) };
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let submitted = self
            .request(machine, input, name, Some(tx))
            .and_then(|(start, _, seq)| self.submit(Inbound::One(start), seq));
        match submitted {
            Ok(()) => SyncStart { rx: Ok(rx) },
            Err(e) => SyncStart { rx: Err(Some(e)) },
        }
    }

    fn request(
        &self,
        machine: &StateMachine,
        input: &Input,
        name: Option<&str>,
        reply: Option<tokio::sync::oneshot::Sender<SyncResult>>,
    ) -> Result<(Start, Execution, usize), StartError> {
        if !self.inner.accepting.load(Ordering::Relaxed) {
            return Err(StartError::ShuttingDown);
        }
        let name: Option<Arc<str>> = match name {
            Some(n) => {
                check_name(n).map_err(StartError::InvalidName)?;
                Some(n.into())
            }
            None => None,
        };
        let seq = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let key = identity_key(self.inner.seed, seq as u64);
        let accepted_at = self.inner.clock.now();
        let extra = (name.is_some() || reply.is_some())
            .then(|| Box::new(StartExtra { name: name.clone(), reply, durable: None }));
        let start = Start {
            machine: machine.clone(),
            input: input.clone(),
            key,
            accepted_at,
            requested_at: accepted_at,
            reruns: 0,
            extra,
        };
        Ok((start, Execution { machine: machine.clone(), name, key, start_date: accepted_at }, seq))
    }

    /// Two choices: of the shard next in round-robin order and the one after it, an awake
    /// one while fewer than `PREFER_AWAKE_BELOW` starts wait in its inbox (waking a parked
    /// shard costs more than the start), else the one with fewer starts waiting
    /// (round-robin alone lets a periodic mix of long and short executions pile the long
    /// ones on one shard, while the other idles); a full inbox passes the start on to the
    /// next shard, and only when every inbox is full is the start throttled. `turn` is the
    /// round-robin position (a start's sequence number, or a batch's count). Waiting is
    /// counted in starts, not inbox entries: a `start_batch` chunk is one entry of up to
    /// `START_BATCH_MAX` starts, and counting entries let 16 chunks (up to 1,024 starts, a
    /// millisecond of a shard's work) queue behind a busy shard while the other slept.
    fn submit(&self, start: Inbound, turn: usize) -> Result<(), StartError> {
        let shards = self.inner.shards();
        let mut first = turn % shards.len();
        if shards.len() > 1 {
            let other = (first + 1) % shards.len();
            let (a, b) = (&shards[first], &shards[other]);
            let (waiting_a, waiting_b) = (a.starts.waiting(), b.starts.waiting());
            first = match (a.asleep(), b.asleep()) {
                (true, false) if waiting_b < PREFER_AWAKE_BELOW => other,
                (false, true) if waiting_a < PREFER_AWAKE_BELOW => first,
                _ if waiting_b < waiting_a => other,
                _ => first,
            };
        }
        let mut start = start;
        for i in 0..shards.len() {
            let q = &shards[(first + i) % shards.len()];
            match q.starts.push(start) {
                Ok(()) => {
                    q.wake();
                    return Ok(());
                }
                Err(back) => start = back,
            }
        }
        start.machine().0.throttled.fetch_add(start.starts() as u64, Ordering::Relaxed);
        Err(StartError::Throttled)
    }

    /// SendTaskSuccess: the task waiting with `token` completes with `output` (JSON text).
    pub fn send_task_success(&self, token: &str, output: &str) -> CallbackReply {
        self.callback(token, Callback::Success(output.into()))
    }

    /// SendTaskFailure: the task waiting with `token` fails with `error` and `cause`.
    pub fn send_task_failure(&self, token: &str, error: &str, cause: Option<&str>) -> CallbackReply {
        self.callback(token, Callback::Failure { error: error.into(), cause: cause.map(Into::into) })
    }

    /// SendTaskHeartbeat: the task waiting with `token` is alive.
    pub fn send_task_heartbeat(&self, token: &str) -> CallbackReply {
        self.callback(token, Callback::Heartbeat)
    }

    fn callback(&self, token: &str, action: Callback) -> CallbackReply {
        if token.is_empty() || token.len() > 2048 {
            return CallbackReply { rx: Err(Some(CallbackError::InvalidToken)) };
        }
        let Some(&(shard, slot, gen)) = self.inner.callbacks.lock().get(token) else {
            let e = if self.inner.expired.lock().set.contains(token) {
                CallbackError::TaskTimedOut
            } else {
                CallbackError::TaskDoesNotExist
            };
            return CallbackReply { rx: Err(Some(e)) };
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.shards()[shard as usize].send(Control::Callback {
            slot,
            gen,
            token: token.into(),
            action,
            reply: tx,
        });
        CallbackReply { rx: Ok(rx) }
    }

    /// A snapshot of one machine's counters and histograms.
    pub fn metrics(&self, machine: &StateMachine) -> MachineMetrics {
        MachineMetrics::sum(machine.0.throttled.load(Ordering::Relaxed), &machine.0.stats)
    }

    /// Log lines dropped because the log writer's queue was full (never blocking a shard
    /// is the point; this says what it cost).
    pub fn log_lines_dropped(&self) -> u64 {
        self.inner.logs.read().as_ref().map_or(0, LogWriter::dropped)
    }

    /// Log lines handed to the destination.
    pub fn log_lines_written(&self) -> u64 {
        self.inner.logs.read().as_ref().map_or(0, LogWriter::written)
    }

    /// Executions of `machine` that have ended (any status, including aborted): a cheap
    /// counter read, for waiting on completions without building histograms.
    pub fn ended(&self, machine: &StateMachine) -> u64 {
        MachineMetrics::ended(&machine.0.stats)
    }

    /// Live figures per shard.
    pub fn gauges(&self) -> Vec<ShardGaugesSnapshot> {
        self.inner
            .shards()
            .iter()
            .map(|q| {
                let g = &q.gauges;
                ShardGaugesSnapshot {
                    executions: g.executions.get(),
                    parked: g.parked.get(),
                    arena_bytes: g.arena_bytes.get(),
                    table_bytes: g.table_bytes.get(),
                    pooled_arenas: g.pooled_arenas.get(),
                    pooled_bytes: g.pooled_bytes.get(),
                    timers: g.timers.get(),
                    next_timer: g.next_timer.get() as i64,
                    inbox: q.starts.len() as u64,
                    answers: g.answers.get(),
                    asleep: q.asleep(),
                }
            })
            .collect()
    }

    pub fn shard_count(&self) -> usize {
        self.inner.shards().len()
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Stops the engine: starts are refused from now on, and this returns once every shard
    /// thread has ended. Takes `&self` so an engine shared behind an `Arc` can be stopped;
    /// a second call finds nothing left to stop.
    pub fn shutdown(&self, mode: Shutdown) -> ShutdownReport {
        self.stop(mode)
    }

    fn stop(&self, mode: Shutdown) -> ShutdownReport {
        self.inner.accepting.store(false, Ordering::SeqCst);
        let deadline = std::time::Instant::now()
            + match mode {
                Shutdown::Drain(d) => d,
                Shutdown::Abandon => Duration::ZERO,
            };
        for q in self.inner.shards() {
            q.send(Control::Drain(deadline));
        }
        let threads = std::mem::take(&mut *self.inner.threads.lock());
        let abandoned = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
        // Every shard has stopped: write out and flush what the log writer holds.
        let writer = self.inner.logs.write().take();
        let log_result = writer.map_or(Ok(()), LogWriter::shutdown).map_err(|e| e.to_string());
        ShutdownReport { abandoned, log_error: log_result.err() }
    }

    /// Test hook: makes shard `index` panic in its own loop (outside any execution), to
    /// exercise the re-run of every execution it held.
    #[doc(hidden)]
    pub fn inject_shard_panic(&self, index: usize) {
        self.inner.shards()[index].send(Control::Panic);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.owner && !self.inner.threads.lock().is_empty() {
            self.stop(Shutdown::Abandon);
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last reference may go away on one of the runtime's own threads (a handler's
        // answer task); dropping a runtime there panics, shutting it down in the background
        // never does. Handlers still running are cancelled: their answers have nowhere to go.
        if let Some(Tokio::Owned(rt)) = self.tokio.take() {
            rt.shutdown_background();
        }
    }
}

/// AWS's rules for state machine and execution names.
/// The parent execution named in a child's input (`AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID`).
fn started_by(input: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(input).ok()?;
    v.get("AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID")?.as_str().map(str::to_owned)
}

fn check_name(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if n == 0 || n > 80 {
        return Err(format!("name {name:?} must have 1 to 80 characters"));
    }
    if let Some(c) = name.chars().find(|&c| {
        c.is_whitespace()
            || c.is_control()
            || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
    }) {
        return Err(format!("name {name:?} contains the character {c:?}, which AWS does not allow"));
    }
    Ok(())
}

/// A version-4 UUID from the engine's seed and a start's sequence number (`lane` tells the
/// execution's UUID from its generated name).
/// An execution's identity key: the engine's seed and the start's sequence number mixed
/// (its UUID and generated name follow from it, `identity_uuid`).
fn identity_key(seed: u64, seq: u64) -> u64 {
    seed ^ seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// `identity_uuid` lanes: the execution's UUID, the UUID an unnamed execution is named with.
const UUID_LANE: u64 = 0;
const NAME_LANE: u64 = 1;

/// A 64-bit seed folded from a UUID (the execution's random draws start from it).
fn fold_uuid(u: u128) -> u64 {
    u as u64 ^ (u >> 64) as u64
}

/// A random (version 4) UUID drawn from an identity key and a lane.
fn identity_uuid(key: u64, lane: u64) -> u128 {
    let s = std::cell::Cell::new(key ^ lane.wrapping_mul(0xd1b5_4a32_d192_ed03));
    let hi = crate::eval::splitmix64(&s);
    let lo = crate::eval::splitmix64(&s);
    let bytes = ((hi as u128) << 64 | lo as u128).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid().as_u128()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_aws_rules() {
        assert!(check_name("order-1_A").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(81)).is_err());
        for bad in ["a b", "a:b", "a/b", "a*b", "a\u{1}b"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn billing_rounds_up_to_100_ms_and_64_mb() {
        let b = BillingDetails::new(1, 10);
        assert_eq!((b.billed_duration_in_milliseconds, b.billed_memory_used_in_mb), (100, 64));
        let b = BillingDetails::new(100_000_001, 65 << 20);
        assert_eq!((b.billed_duration_in_milliseconds, b.billed_memory_used_in_mb), (200, 128));
    }

    #[test]
    fn inputs_are_checked_once_with_the_byte_offset() {
        assert!(Input::from_json(&b"{\"a\": [1, 2]}"[..]).is_ok());
        match Input::from_json(&b"{\"a\": [1, 2}"[..]) {
            Err(InputError::NotJson { offset, .. }) => assert_eq!(offset, 11),
            other => panic!("{other:?}"),
        }
        assert_eq!(Input::from_json(vec![b' '; INPUT_LIMIT + 1]).unwrap_err(), InputError::TooLarge(INPUT_LIMIT + 1));
    }

    #[test]
    fn uuids_are_version_4_and_differ_per_start() {
        let a = uuid::Uuid::from_u128(identity_uuid(identity_key(1, 0), UUID_LANE));
        let b = uuid::Uuid::from_u128(identity_uuid(identity_key(1, 1), UUID_LANE));
        let name = uuid::Uuid::from_u128(identity_uuid(identity_key(1, 0), NAME_LANE));
        assert_eq!(a.get_version_num(), 4);
        assert_ne!(a, b);
        assert_ne!(a, name);
    }
}
