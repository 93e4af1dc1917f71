//! `session`: one `sfn` process's engine over a store directory, and the driver that
//! decides when the process may exit.
//!
//! Input: a store directory, its [`Setup`] (machines, mocks, local Lambda commands).
//! Output: a running [`Engine`] (one shard, a [`RedbStore`], the local SQS/SNS/Lambda
//! integrations) on which the unfinished executions of the registered machines have
//! resumed, and [`Session::drive`]'s verdict: the execution ended, or everything is idle
//! waiting for a callback. Never touches: argument parsing, what is printed (beyond the
//! JSON object of [`Finish`]), the setup file's format.
//!
//! **When is everything idle?** The engine has no "quiescent" call, so the driver watches
//! what it can: the shards' gauges (every execution parked, nothing in an inbox), the
//! tokio runtime it gives the engine (no task alive, but for those of parents waiting on a
//! Standard child: every handler call has answered and the answer is in a shard's
//! queue), the store's group commits (none outstanding), and
//! counters of those that must not move. Seen quiet for [`SETTLE`], it is confirmed with
//! two probes: synchronous starts of a one-Pass Express machine, each followed by the end
//! of the shard turn that ran it. The clock tells turns apart: a shard asks `real_wait`
//! only right before it parks (after publishing its gauges), and the clock notes, at every
//! reading on a shard thread, how many parks there have been. The second probe is sent
//! once the first one's turn has ended, so a turn that began after everything seen so far
//! was queued runs it: an acknowledged commit (whose shard then dispatches the next task),
//! an answer, a resumed execution's start. When that turn has ended, its effects are in
//! the counters and the gauges are fresh; nothing moved means nothing will until a
//! callback or a timer. This does not depend on how fast the shard is scheduled.
//!
//! **Timers.** A timer due before the Standard one-year limit (a Wait, a retry back-off, a
//! task timeout or heartbeat, `TimeoutSeconds`) keeps the process alive: it sleeps until
//! the timer fires, or with `--wait-scale` below 1 moves the clock to it at once (the
//! shard, parked for the scaled distance, then finds it due). `--max-sleep` bounds that:
//! past it the process exits as if parked, and `sfn resume` carries on later. The shards'
//! `next_timer` gauge may name a stale entry (a heartbeat deadline of a task that has been
//! answered since): the process then sleeps until that instant, when the shard drops it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sfn::clock::{Clock, NANOS_PER_SEC};
use sfn::executor::STANDARD_MAX_SECONDS;
use sfn::executor::{
    Engine, MachineSpec, ShardGaugesSnapshot, Shutdown, StartError, StateMachine, SyncError, SyncResult,
};
use sfn::handlers::{Handler, OwnedTaskContext, Registry};
use sfn::services::{FunctionError, Functions, Services, RESOURCES};
use sfn::store::{
    CommitAck, Created, ExecutionRecord, ListFilter, Page, QueueMessage, RecordStatus, RedbStore, Store, StoreError,
    TopicMessage, Write,
};
use sfn::validate::MachineType;
use sfn::vm::CallbackError;

use crate::clock::CliClock;
use crate::setup::Setup;
use crate::Failure;

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// How long everything must look idle before the driver probes the shard to confirm it.
pub const SETTLE: Duration = Duration::from_millis(20);
/// The probe machine (Express, one Pass state): registered on every session's engine,
/// never stored (Express executions keep no record).
const PROBE: &str = "sfn-cli-idle-probe";
const PROBE_DEFINITION: &str = r#"{"StartAt":"Probe","States":{"Probe":{"Type":"Pass","End":true}}}"#;
/// The longest the driver waits for a probed shard to end its turn (it always does at
/// once while it holds an execution; without one it parks with no timer and says nothing).
const PROBE_TURN: Duration = Duration::from_secs(1);
/// How often the driver looks.
const POLL: Duration = Duration::from_millis(3);
/// Sleeping longer than this for a timer is announced on stderr.
const NOTE_SLEEPS_OVER: i64 = 5 * NANOS_PER_SEC;
/// How long `sfn task` waits for a resumed execution to take its token back.
const TOKEN_WAIT: Duration = Duration::from_secs(5);

/// `arn:aws:states:us-east-1:123456789012:stateMachine:NAME`.
pub fn machine_arn(name: &str) -> String {
    format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}")
}

/// Opens the store in `dir` (creating it), naming the directory in the error.
pub fn open_store(dir: &Path) -> Result<Arc<RedbStore>, Failure> {
    RedbStore::open(dir).map(Arc::new).map_err(|e| {
        // redb keeps the file locked while a process has it open.
        let busy = if e.to_string().contains("already open") { " (is another sfn process using it?)" } else { "" };
        Failure::Usage(format!("cannot open the store in {}: {e}{busy}", dir.display()))
    })
}

fn store_failed(e: StoreError) -> Failure {
    Failure::Usage(format!("the store failed: {e}"))
}

/// What the driver sees move: task handlers in flight, group commits outstanding, and a
/// counter bumped by both, plus every callback token a wrapped handler was given.
#[derive(Default)]
pub struct Watch {
    calls: AtomicUsize,
    commits: AtomicUsize,
    activity: AtomicU64,
    tokens: Mutex<BTreeSet<String>>,
}

impl Watch {
    fn bump(&self) {
        self.activity.fetch_add(1, Ordering::SeqCst);
    }
}

/// Marks a handler call in flight until dropped (so a cancelled call counts as ended).
struct CallGuard(Arc<Watch>);

impl CallGuard {
    fn new(watch: &Arc<Watch>) -> CallGuard {
        watch.calls.fetch_add(1, Ordering::SeqCst);
        watch.bump();
        CallGuard(watch.clone())
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::SeqCst);
        self.0.bump();
    }
}

/// `handler`, counted by `watch` (the call is in flight from the moment the shard calls
/// it until its answer is ready).
fn watched(handler: Handler, watch: &Arc<Watch>) -> Handler {
    let Handler::Async(inner) = handler else { return handler };
    let watch = watch.clone();
    Handler::future(move |ctx: OwnedTaskContext, input: Json| {
        let guard = CallGuard::new(&watch);
        if let Some(t) = &ctx.task_token {
            watch.tokens.lock().expect("not poisoned").insert(t.clone());
        }
        let inner = inner.clone();
        async move {
            let answer = inner.call(ctx, input).await;
            drop(guard);
            answer
        }
    })
}

/// The store, with its group commits counted for the driver.
struct WatchedStore {
    inner: Arc<RedbStore>,
    watch: Arc<Watch>,
}

impl Store for WatchedStore {
    fn create_execution(&self, record: &ExecutionRecord, first: Vec<Write>) -> Result<Created, StoreError> {
        self.inner.create_execution(record, first)
    }
    fn execution(&self, execution_arn: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        self.inner.execution(execution_arn)
    }
    fn list_executions(
        &self,
        filter: &ListFilter,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<ExecutionRecord>, StoreError> {
        self.inner.list_executions(filter, max_results, next_token)
    }
    fn unfinished(&self, state_machine_arn: &str) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.inner.unfinished(state_machine_arn)
    }
    fn journal(&self, execution_arn: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.journal(execution_arn)
    }
    fn history(
        &self,
        execution_arn: &str,
        reverse: bool,
        max_results: usize,
        next_token: Option<&str>,
    ) -> Result<Page<Vec<u8>>, StoreError> {
        self.inner.history(execution_arn, reverse, max_results, next_token)
    }
    fn token(&self, token: &str) -> Result<Option<String>, StoreError> {
        self.inner.token(token)
    }
    fn submit(&self, writes: Vec<Write>, ack: CommitAck) {
        self.watch.commits.fetch_add(1, Ordering::SeqCst);
        self.watch.bump();
        let watch = self.watch.clone();
        self.inner.submit(
            writes,
            Box::new(move |result| {
                ack(result);
                watch.commits.fetch_sub(1, Ordering::SeqCst);
                watch.bump();
            }),
        );
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn create_queue(&self, name: &str) -> Result<(), StoreError> {
        self.inner.create_queue(name)
    }
    fn queues(&self) -> Result<Vec<String>, StoreError> {
        self.inner.queues()
    }
    fn send_message(&self, queue: &str, message: &QueueMessage) -> Result<(), StoreError> {
        self.inner.send_message(queue, message)
    }
    fn receive_messages(&self, queue: &str, max: usize) -> Result<Vec<QueueMessage>, StoreError> {
        self.inner.receive_messages(queue, max)
    }
    fn create_topic(&self, name: &str) -> Result<(), StoreError> {
        self.inner.create_topic(name)
    }
    fn topics(&self) -> Result<Vec<String>, StoreError> {
        self.inner.topics()
    }
    fn publish(&self, topic: &str, message: &TopicMessage) -> Result<u64, StoreError> {
        self.inner.publish(topic, message)
    }
    fn topic_messages(&self, topic: &str, from: u64, max: usize) -> Result<Vec<(u64, TopicMessage)>, StoreError> {
        self.inner.topic_messages(topic, from, max)
    }
}

/// A local Lambda function: `sh -c COMMAND` with the payload's JSON on stdin; its stdout
/// is the result (empty: `null`); a non-zero exit is an `Error` with stderr as message.
/// Runs on the engine's blocking pool (a command may take its time).
fn shell_function(functions: &Functions, name: &str, command: &str) {
    let (fname, command) = (name.to_owned(), command.to_owned());
    functions.register(name, move |payload: Json| {
        let (name, command) = (fname.clone(), command.clone());
        async move {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => rt
                    .spawn_blocking(move || run_shell(&name, &command, &payload))
                    .await
                    .unwrap_or_else(|e| Err(FunctionError::new("Error", format!("the function's thread failed: {e}")))),
                Err(_) => run_shell(&name, &command, &payload),
            }
        }
    });
}

fn run_shell(name: &str, command: &str, payload: &Json) -> Result<Json, FunctionError> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| FunctionError::new("Error", format!("cannot start `sh -c {command}`: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let bytes = serde_json::to_vec(payload).expect("JSON values serialise");
    // A separate writer: a command that prints before it reads (or never reads) must not
    // deadlock against a full pipe. A command that ignores its input is fine (EPIPE).
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&bytes);
    });
    let out = child.wait_with_output().map_err(|e| FunctionError::new("Error", format!("`{command}`: {e}")))?;
    let _ = writer.join();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let message = match stderr.trim() {
            "" => format!("`{command}` exited with {}", out.status),
            s => s.to_owned(),
        };
        return Err(FunctionError::new("Error", message));
    }
    if !stderr.is_empty() {
        eprint!("{stderr}");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Json::Null);
    }
    serde_json::from_str(&text).map_err(|e| {
        FunctionError::new("Error", format!("the output of `{command}` is not JSON ({e}): {}", text.trim()))
    })
}

/// How an execution the driver waited for ended.
#[derive(Debug)]
pub struct Ended {
    pub execution_arn: String,
    pub status: &'static str,
    /// JSON text.
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// What [`Session::drive`] found.
#[derive(Debug)]
pub enum Finish {
    Ended(Ended),
    /// Nothing will happen without a callback (or, with `--max-sleep`, before `next_timer`).
    Parked {
        waiting_for_callback: bool,
        next_timer: Option<i64>,
    },
}

/// What the driver waits for.
pub enum Until {
    /// A durable execution's record to leave RUNNING.
    Record(String),
    /// A synchronous Express start's answer.
    Sync(String, std::sync::mpsc::Receiver<Result<SyncResult, SyncError>>),
}

pub struct Session {
    pub dir: PathBuf,
    pub store: Arc<RedbStore>,
    pub engine: Engine,
    pub clock: Arc<CliClock>,
    /// The runtime the engine's asynchronous handlers run on: ours, so that the driver can
    /// count its live tasks.
    runtime: Option<tokio::runtime::Runtime>,
    probe: StateMachine,
    watch: Arc<Watch>,
    machines: Vec<StateMachine>,
    known_tokens: Vec<String>,
}

impl Session {
    /// Builds the engine on `store` and registers the setup's machines: Express ones first
    /// (a resumed parent may start a child at once), then Standard ones in the setup's
    /// order. Registering a Standard machine resumes its unfinished executions.
    pub fn start(dir: &Path, store: Arc<RedbStore>, setup: &Setup, seed: Option<u64>) -> Result<Session, Failure> {
        let watch = Arc::new(Watch::default());
        let clock = Arc::new(CliClock::new(setup.wait_scale, setup.clock_offset));
        let watched_store: Arc<dyn Store> = Arc::new(WatchedStore { inner: store.clone(), watch: watch.clone() });
        let functions = Functions::new();
        for (name, command) in &setup.lambdas {
            shell_function(&functions, name, command);
        }
        let services = Services::new(watched_store.clone(), functions, REGION, ACCOUNT).with_clock(clock.clone());
        let mut registry = Registry::new();
        for resource in RESOURCES {
            registry.register(resource, watched(services.handler(resource).expect("a listed resource"), &watch));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sfn-io")
            .enable_all()
            .build()
            .map_err(|e| Failure::Usage(format!("cannot start the I/O runtime: {e}")))?;
        // One shard: a command-line run holds a handful of executions, and one thread keeps
        // the gauges the driver reads in one place.
        let builder = Engine::builder()
            .shards(1)
            .tokio_handle(runtime.handle().clone())
            .clock(clock.clone())
            .region_account(REGION, ACCOUNT)
            .handlers(registry)
            .store(watched_store);
        // The engine's seed names the executions it starts: a fixed one would give every
        // process the same names, and a second `sfn run` on a store would find its
        // execution's name taken.
        let seed = seed.unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
        let engine = builder.seed(seed).build();
        let probe = engine
            .register(MachineSpec::new(PROBE, PROBE_DEFINITION.as_bytes(), MachineType::Express))
            .map_err(|e| Failure::Usage(format!("(internal error) the idle probe: {e}")))?;
        let mut session = Session {
            dir: dir.to_owned(),
            store,
            engine,
            clock,
            runtime: Some(runtime),
            probe,
            watch,
            machines: Vec::new(),
            known_tokens: setup.tokens.clone(),
        };
        let order = setup
            .machines
            .iter()
            .filter(|m| m.machine_type == MachineType::Express)
            .chain(setup.machines.iter().filter(|m| m.machine_type == MachineType::Standard));
        for m in order {
            let mocks = match &m.mocks {
                Some(r) => Some(r.parse().map_err(|e| Failure::Usage(format!("mocks of {}: {e}", m.name)))?),
                None => None,
            };
            let mut spec = MachineSpec::new(&m.name, m.definition.as_bytes(), m.machine_type);
            spec.mocks = mocks.as_ref();
            let registered = session.engine.register(spec).map_err(|e| match e {
                sfn::executor::RegisterError::InvalidDefinition(d) => Failure::Usage(format!(
                    "the definition of {} is not valid:\n{}",
                    m.name,
                    crate::list(&d).trim_end()
                )),
                other => Failure::Usage(format!("cannot register {}: {other}", m.name)),
            })?;
            session.machines.push(registered);
        }
        Ok(session)
    }

    pub fn machine(&self, name: &str) -> Option<&StateMachine> {
        self.machines.iter().find(|m| m.name() == name)
    }

    /// The execution a callback token is routed to, per the store.
    pub fn token_owner(&self, token: &str) -> Result<Option<String>, Failure> {
        self.store.token(token).map_err(store_failed)
    }

    /// The outermost execution above `arn` (following `startExecution` parents the store
    /// knows).
    pub fn root(&self, arn: &str) -> Result<String, Failure> {
        let mut arn = arn.to_owned();
        for _ in 0..64 {
            let parent = self.store.execution(&arn).map_err(store_failed)?.and_then(|r| r.started_by);
            match parent {
                Some(p) if self.store.execution(&p).map_err(store_failed)?.is_some() => arn = p,
                _ => break,
            }
        }
        Ok(arn)
    }

    /// Delivers a callback. A resumed execution takes its tokens back once its journal is
    /// replayed, so `TaskDoesNotExist` is retried (up to [`TOKEN_WAIT`]) while the store
    /// still routes the token.
    pub fn deliver(&self, token: &str, send: impl Fn(&Engine) -> Result<(), CallbackError>) -> Result<(), Failure> {
        let deadline = Instant::now() + TOKEN_WAIT;
        loop {
            match send(&self.engine) {
                Ok(()) => return Ok(()),
                Err(CallbackError::TaskDoesNotExist)
                    if Instant::now() < deadline && self.token_owner(token)?.is_some() =>
                {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(Failure::Aws(e.to_string())),
            }
        }
    }

    /// Whether everything looks idle, the gauges, and the activity count.
    fn look(&self) -> Result<(bool, Vec<ShardGaugesSnapshot>, u64), Failure> {
        // The counters first: anything that moves while the rest is read shows as a
        // changed activity count on the next look.
        let activity = self.watch.activity.load(Ordering::SeqCst);
        let calls = self.watch.calls.load(Ordering::SeqCst);
        let commits = self.watch.commits.load(Ordering::SeqCst);
        let tasks = self.runtime.as_ref().map_or(0, |rt| rt.metrics().num_alive_tasks());
        let gauges = self.engine.gauges();
        let quiet = calls == 0 && commits == 0 && gauges.iter().all(|g| g.inbox == 0 && g.executions == g.parked);
        Ok((quiet && (tasks == 0 || tasks <= self.waiting_tasks()?), gauges, activity))
    }

    /// The tokio tasks that stay alive while everything is idle: a parent waiting on a
    /// Standard child (`states:startExecution.sync`) polls the store for the child's end
    /// in a handler task (and the executor's task awaiting it), however long the child
    /// waits for its own callback. Two per running child whose parent is running.
    fn waiting_tasks(&self) -> Result<usize, Failure> {
        let mut n = 0;
        for m in self.machines.iter().filter(|m| m.machine_type() == MachineType::Standard) {
            for r in self.store.unfinished(m.arn()).map_err(store_failed)? {
                if let Some(parent) = &r.started_by {
                    let running = self.store.execution(parent).map_err(store_failed)?;
                    if running.is_some_and(|p| p.status == RecordStatus::Running) {
                        n += 2;
                    }
                }
            }
        }
        Ok(n)
    }

    /// Confirms what looked idle (see the module's doc): two probes, each followed by the
    /// end of the shard's turn; then everything must still look idle with nothing moved.
    fn confirm_idle(&self, activity: u64) -> Result<bool, Failure> {
        let input = sfn::executor::Input::from_json(&b"{}"[..]).expect("valid JSON");
        for _ in 0..2 {
            self.engine
                .start_sync(&self.probe, &input, None)
                .wait()
                .map_err(|e| Failure::Usage(format!("(internal error) the idle probe: {e}")))?;
            // The probe read the clock in the turn that ran it: wait for that turn's end.
            let turn = self.clock.shard_turn();
            let deadline = Instant::now() + PROBE_TURN;
            while self.clock.parks() <= turn && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let (quiet, _, now) = self.look()?;
        Ok(quiet && now == activity)
    }

    /// The earliest Standard one-year limit among the executions that may be running:
    /// timers from there on are those limits, not something to wait for.
    fn horizon(&self) -> Result<i64, Failure> {
        let mut earliest = i64::MAX;
        for m in self.machines.iter().filter(|m| m.machine_type() == MachineType::Standard) {
            for r in self.store.unfinished(m.arn()).map_err(store_failed)? {
                earliest = earliest.min(r.start_date);
            }
        }
        Ok(earliest.saturating_add(STANDARD_MAX_SECONDS as i64 * NANOS_PER_SEC - NANOS_PER_SEC))
    }

    fn ended(&self, until: &Until) -> Result<Option<Ended>, Failure> {
        match until {
            Until::Record(arn) => {
                let Some(r) = self.store.execution(arn).map_err(store_failed)? else {
                    return Err(Failure::Usage(format!("(internal error) the execution {arn} is not in the store")));
                };
                Ok((r.status != RecordStatus::Running).then(|| Ended {
                    execution_arn: r.execution_arn,
                    status: r.status.as_str(),
                    output: r.output,
                    error: r.error,
                    cause: r.cause,
                }))
            }
            Until::Sync(arn, rx) => match rx.try_recv() {
                Ok(Ok(r)) => Ok(Some(Ended {
                    execution_arn: r.execution_arn,
                    status: r.status.as_str(),
                    output: r.output,
                    error: r.error,
                    cause: r.cause,
                })),
                Ok(Err(SyncError::Start(StartError::Store(e)))) => Err(store_failed(StoreError::Io(e))),
                Ok(Err(SyncError::Start(e))) => Err(Failure::Aws(e.to_string())),
                Ok(Err(e)) => Err(Failure::Usage(format!("the execution of {arn} did not end: {e}"))),
                Err(std::sync::mpsc::TryRecvError::Empty) => Ok(None),
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    Err(Failure::Usage(format!("(internal error) the execution {arn} gave no result")))
                }
            },
        }
    }

    /// Runs until `until` ends, or until nothing can happen without a callback (see the
    /// module's doc). `max_sleep` bounds how long a pending timer keeps the process.
    pub fn drive(&self, until: &Until, max_sleep: Option<Duration>) -> Result<Finish, Failure> {
        // (when idleness was first seen, the activity count then, the gauges then)
        let mut idle_since: Option<(Instant, u64, Vec<ShardGaugesSnapshot>)> = None;
        let mut noted = None;
        loop {
            if let Some(e) = self.ended(until)? {
                return Ok(Finish::Ended(e));
            }
            let (quiet, gauges, activity) = self.look()?;
            if !quiet {
                idle_since = None;
                std::thread::sleep(POLL);
                continue;
            }
            let next_timer = gauges.iter().map(|g| g.next_timer).min().unwrap_or(i64::MAX);
            let timer = (next_timer < self.horizon()?).then_some(next_timer);
            let now = self.clock.now();
            // An Express run waits for its answer whatever --max-sleep says: it cannot be
            // resumed later.
            let beyond_max_sleep = match (timer, max_sleep, until) {
                (Some(t), Some(max), Until::Record(_)) => t.saturating_sub(now) > max.as_nanos() as i64,
                _ => false,
            };
            if let Some(t) = timer.filter(|_| !beyond_max_sleep) {
                idle_since = None;
                if t > now && self.clock.skips() {
                    self.clock.skip_to(t);
                } else if t - now > NOTE_SLEEPS_OVER && noted != Some(t) {
                    // A long silence should say why (and how to avoid it).
                    eprintln!(
                        "sfn: nothing to do but wait {} s for a timer (a Wait, a retry back-off or a task timeout \
                         or heartbeat); --max-sleep bounds this",
                        (t - now) / NANOS_PER_SEC
                    );
                    noted = Some(t);
                }
                let left = Duration::from_nanos(t.saturating_sub(self.clock.now()).max(0) as u64);
                std::thread::sleep(left.clamp(POLL, Duration::from_millis(50)));
                continue;
            }
            if matches!(until, Until::Sync(..)) {
                // An Express execution cannot wait for a callback: something is on its way.
                std::thread::sleep(POLL);
                continue;
            }
            match &idle_since {
                Some((since, a, g)) if *a == activity && *g == gauges => {
                    if since.elapsed() >= SETTLE {
                        if !self.confirm_idle(activity)? {
                            idle_since = None;
                            continue;
                        }
                        self.store.flush().map_err(store_failed)?;
                        if let Some(e) = self.ended(until)? {
                            return Ok(Finish::Ended(e));
                        }
                        let routed = !self.routed_tokens()?.is_empty();
                        return Ok(Finish::Parked {
                            waiting_for_callback: routed || timer.is_none(),
                            next_timer: timer,
                        });
                    }
                }
                _ => idle_since = Some((Instant::now(), activity, gauges)),
            }
            std::thread::sleep(POLL);
        }
    }

    /// Callback tokens (seen by this process or recorded by an earlier one) that the store
    /// still routes to a waiting execution.
    pub fn routed_tokens(&self) -> Result<Vec<String>, Failure> {
        let mut all: BTreeSet<String> = self.watch.tokens.lock().expect("not poisoned").clone();
        all.extend(self.known_tokens.iter().cloned());
        let mut routed = Vec::new();
        for t in all {
            if self.store.token(&t).map_err(store_failed)?.is_some() {
                routed.push(t);
            }
        }
        Ok(routed)
    }

    /// Stops the engine (executions still running stay in the store, to resume), makes
    /// everything durable, and records in `setup` what the next process needs.
    pub fn close(mut self, setup: &mut Setup) -> Result<(), Failure> {
        self.engine.shutdown(Shutdown::Abandon);
        // Handlers still running (a Lambda command) are abandoned: their executions run
        // them again when they resume.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        self.store.flush().map_err(store_failed)?;
        setup.tokens = self.routed_tokens()?;
        setup.clock_offset = self.clock.offset();
        setup.save(&self.dir).map_err(Failure::Usage)
    }
}

/// The one JSON object `sfn run`/`sfn task` print: the ended execution's status, output
/// or error and cause, and its ARN; or `RUNNING` with `waitingForCallback`.
pub fn finish_json(finish: &Finish, execution_arn: &str, dir: &Path) -> String {
    let mut out = String::from("{\"status\":");
    match finish {
        Finish::Ended(e) => {
            push_str(&mut out, e.status);
            if e.status == "SUCCEEDED" {
                out.push_str(",\"output\":");
                out.push_str(&json_text(e.output.as_deref().unwrap_or("null")));
            } else {
                out.push_str(",\"error\":");
                push_opt(&mut out, e.error.as_deref());
                out.push_str(",\"cause\":");
                push_opt(&mut out, e.cause.as_deref());
            }
            out.push_str(",\"executionArn\":");
            push_str(&mut out, &e.execution_arn);
        }
        Finish::Parked { waiting_for_callback, next_timer } => {
            push_str(&mut out, "RUNNING");
            out.push_str(",\"executionArn\":");
            push_str(&mut out, execution_arn);
            out.push_str(",\"waitingForCallback\":");
            out.push_str(if *waiting_for_callback { "true" } else { "false" });
            if let Some(t) = next_timer {
                out.push_str(",\"nextTimer\":");
                out.push_str(&epoch_seconds(*t).to_string());
            }
            out.push_str(",\"store\":");
            push_str(&mut out, &dir.display().to_string());
        }
    }
    out.push('}');
    out
}

/// Stored JSON text as it is, or as a string if it is not JSON (it always is; this keeps
/// the printed object valid whatever the store holds).
pub fn json_text(text: &str) -> String {
    if serde_json::from_str::<Json>(text).is_ok() {
        text.to_owned()
    } else {
        Json::from(text).to_string()
    }
}

fn push_str(out: &mut String, s: &str) {
    out.push_str(&Json::from(s).to_string());
}

fn push_opt(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => push_str(out, s),
        None => out.push_str("null"),
    }
}

/// Nanoseconds → epoch seconds with milliseconds, as AWS's JSON dates.
pub fn epoch_seconds(nanos: i64) -> Json {
    let millis = nanos.div_euclid(1_000_000);
    Json::from(millis as f64 / 1000.0)
}
