//! `sfn`: the command-line front end of the engine.
//!
//! `sfn run` executes a definition and prints one JSON object with the final status (the
//! contract `tests/conformance/check.py` relies on); `sfn validate` prints every
//! diagnostic; `sfn compile --disassemble` prints the compiled program. Standard workflows
//! that wait for callbacks run on the engine with a durable store in a directory
//! (`workflow`, `session`): `sfn task` answers them, `sfn resume` carries them on, and
//! `sfn executions`, `sfn queue` and `sfn topic` read and feed the store (`inspect`).
//!
//! Exit status: 0 when the command was carried out (whatever the execution's status, also
//! when it waits for a callback), 1 when `validate` finds the definition invalid or a
//! request is refused as AWS would refuse it (the message starts with AWS's error name:
//! `TaskDoesNotExist`, `ExecutionDoesNotExist`, ...), 2 when the files, arguments or the
//! store could not be used.

mod clock;
mod inspect;
mod session;
mod setup;
mod workflow;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use sfn::clock::{Clock, ScaledClock, SystemClock};
use sfn::compile::Bindings;
use sfn::diag::{Diagnostic, Severity};
use sfn::local::{run_to_completion, RunOptions};
use sfn::mocks::{parse_mocks, MockSet};
use sfn::validate::MachineType;
use sfn::vm::ExecMeta;

// mimalloc: the engine makes many small allocations outside the per-execution arenas
// (definitions, compiled programs, output strings); mimalloc is measurably faster than the
// system allocator for that pattern and is only chosen here, in the binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sfn", version, about = "Run and check Amazon States Language state machines")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum TypeArg {
    Standard,
    Express,
}

impl From<TypeArg> for MachineType {
    fn from(t: TypeArg) -> Self {
        match t {
            TypeArg::Standard => MachineType::Standard,
            TypeArg::Express => MachineType::Express,
        }
    }
}

/// When `sfn run` uses the engine with a store, and what it prints then.
const RUN_HELP: &str = "\
Engine or local driver: `run` executes on the engine with a durable store when --store, \
--machine, --lambda, --queue or --topic is given, or when the definition has a Task on \
sqs:sendMessage, sns:publish, lambda:invoke, states:startExecution or a .waitForTaskToken \
resource and no --mocks answer it. Otherwise it runs in-process on the local driver, as it \
always has (the conformance corpus runs there).

On the engine it prints {\"status\", \"output\"|\"error\",\"cause\", \"executionArn\"} when the \
execution ends. A Standard execution that cannot go on without a callback (every \
execution idle, no timer pending) makes it print {\"status\":\"RUNNING\", \"executionArn\", \
\"waitingForCallback\":true, \"store\"} and exit 0, leaving everything in the store \
directory: answer with `sfn task success|failure|heartbeat TOKEN --store DIR`. A Wait, a \
retry back-off or a task timeout keeps the process running until it fires (--max-sleep \
bounds that; --wait-scale below 1 shortens it). Without --store the store is a temporary \
directory, removed at exit unless the execution still waits.";

#[derive(Subcommand)]
enum Command {
    /// Run one execution and print {"status": ..., "output"|"error"/"cause": ...}.
    #[command(after_long_help = RUN_HELP)]
    Run(RunArgs),
    /// Check a definition and print every problem found.
    Validate {
        definition: PathBuf,
        /// Print the result as JSON, shaped like ValidateStateMachineDefinition's response.
        #[arg(long)]
        json: bool,
        #[arg(long = "type", value_enum, default_value = "standard")]
        machine_type: TypeArg,
    },
    /// Compile a definition.
    Compile {
        definition: PathBuf,
        /// Print the compiled program.
        #[arg(long)]
        disassemble: bool,
        #[arg(long = "type", value_enum, default_value = "standard")]
        machine_type: TypeArg,
    },
    /// Answer a task waiting for a callback in a store, then drive on like `run` and print
    /// the same JSON object (for the execution the token belongs to, or its parent).
    Task {
        #[command(subcommand)]
        action: TaskAction,
    },
    /// Carry on with the unfinished executions in a store (after --max-sleep, or a process
    /// that was stopped) and print the JSON object `run` prints.
    Resume {
        /// The execution to report on (default: the most recently started one running).
        execution_arn: Option<String>,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
        /// The longest the process sleeps for a timer (default: no limit; see `run`).
        #[arg(long, value_name = "SECONDS")]
        max_sleep: Option<f64>,
        /// Replaces the --wait-scale the store's run was given (kept for later commands).
        #[arg(long)]
        wait_scale: Option<f64>,
    },
    /// Read the executions kept in a store.
    Executions {
        #[command(subcommand)]
        action: ExecutionsAction,
    },
    /// The store's local SQS queues.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// The store's local SNS topics.
    Topic {
        #[command(subcommand)]
        action: TopicAction,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The ASL definition (JSON).
    definition: PathBuf,
    /// Execution input: a JSON file, or `-` for stdin. Default: {}.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Mocked Task responses: a Step Functions Local MockConfigFile, or the per-state
    /// list form ({"State": [{"Return": ...}, {"Throw": {...}}]}). Default: the file
    /// named by SFN_MOCK_CONFIG, as Step Functions Local reads it.
    #[arg(long, env = "SFN_MOCK_CONFIG")]
    mocks: Option<PathBuf>,
    /// The MockConfigFile test case to use (default: the machine's only one).
    #[arg(long)]
    test_case: Option<String>,
    /// State machine name (picks the machine in a MockConfigFile; default: the file's
    /// only one, else the definition's file name).
    #[arg(long)]
    name: Option<String>,
    /// Standard or Express semantics (context object, ARNs, allowed integrations).
    #[arg(long = "type", value_enum, default_value = "standard")]
    machine_type: TypeArg,
    /// Scale Wait states and retry back-off in real time (0 skips them; 1 is real time).
    #[arg(long, default_value_t = 1.0)]
    wait_scale: f64,
    /// Seed for States.UUID, States.MathRandom, retry jitter and task tokens (on the
    /// engine also for the execution names it generates).
    #[arg(long)]
    seed: Option<u64>,
    /// Keep executions, queues and topics in this directory (created if needed), durable
    /// across processes. Default: a temporary directory.
    #[arg(long)]
    store: Option<PathBuf>,
    /// Another state machine on the same engine, e.g. the child of a
    /// states:startExecution task; ARN arn:aws:states:us-east-1:123456789012:stateMachine:NAME.
    /// Default type: express when the file name contains `.express.`, else standard.
    #[arg(long = "machine", value_name = "NAME=FILE[:express|:standard]")]
    machines: Vec<String>,
    /// A local Lambda function for lambda:invoke: `sh -c COMMAND` reads the payload JSON on
    /// stdin and prints the result JSON; a non-zero exit fails with errorType Error and
    /// stderr as errorMessage.
    #[arg(long = "lambda", value_name = "NAME=COMMAND")]
    lambdas: Vec<String>,
    /// Create this SQS queue in the store first.
    #[arg(long = "queue", value_name = "NAME")]
    queues: Vec<String>,
    /// Create this SNS topic in the store first.
    #[arg(long = "topic", value_name = "NAME")]
    topics: Vec<String>,
    /// The execution's name (default: a UUID). Starting a Standard execution with the name
    /// of a running one with the same input reports on that one, as StartExecution does.
    #[arg(long)]
    execution_name: Option<String>,
    /// The longest the process sleeps for a timer while nothing else happens; past it,
    /// it exits printing RUNNING (carry on with `sfn resume`). Default: no limit.
    #[arg(long, value_name = "SECONDS")]
    max_sleep: Option<f64>,
}

#[derive(Subcommand)]
enum TaskAction {
    /// SendTaskSuccess.
    Success {
        /// The task token (tokens may start with `-`: taken as they are).
        #[arg(allow_hyphen_values = true)]
        token: String,
        /// The task's result (JSON text).
        #[arg(long)]
        output: String,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
        /// The longest the process sleeps for a timer (default: no limit; see `run`).
        #[arg(long, value_name = "SECONDS")]
        max_sleep: Option<f64>,
        /// Replaces the --wait-scale the store's run was given (kept for later commands).
        #[arg(long)]
        wait_scale: Option<f64>,
    },
    /// SendTaskFailure.
    Failure {
        /// The task token (tokens may start with `-`: taken as they are).
        #[arg(allow_hyphen_values = true)]
        token: String,
        /// The error name (what the state's Retry and Catch match).
        #[arg(long)]
        error: String,
        /// A longer description of the failure.
        #[arg(long)]
        cause: Option<String>,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
        /// The longest the process sleeps for a timer (default: no limit; see `run`).
        #[arg(long, value_name = "SECONDS")]
        max_sleep: Option<f64>,
        /// Replaces the --wait-scale the store's run was given (kept for later commands).
        #[arg(long)]
        wait_scale: Option<f64>,
    },
    /// SendTaskHeartbeat.
    Heartbeat {
        /// The task token (tokens may start with `-`: taken as they are).
        #[arg(allow_hyphen_values = true)]
        token: String,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
        /// The longest the process sleeps for a timer (default 0: a heartbeat moves nothing
        /// on, and sleeping to the deadline it pushed back would defeat it; see `run`).
        #[arg(long, value_name = "SECONDS")]
        max_sleep: Option<f64>,
        /// Replaces the --wait-scale the store's run was given (kept for later commands).
        #[arg(long)]
        wait_scale: Option<f64>,
    },
}

#[derive(Subcommand)]
enum ExecutionsAction {
    /// One JSON object per line (ListExecutions' items), most recently started first.
    List {
        /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
        #[arg(long)]
        status: Option<String>,
        /// Only this state machine's (a name or an ARN).
        #[arg(long)]
        state_machine: Option<String>,
        /// At most this many.
        #[arg(long)]
        max: Option<usize>,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
    },
    /// DescribeExecution's fields as one JSON object.
    Describe {
        execution_arn: String,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
    },
    /// GetExecutionHistory's {"events": [...], "nextToken": ...}.
    History {
        execution_arn: String,
        /// Newest event first.
        #[arg(long)]
        reverse: bool,
        /// Events per page (default 100).
        #[arg(long)]
        max: Option<usize>,
        /// The page after the one that returned this token.
        #[arg(long)]
        next_token: Option<String>,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Create a queue (no-op if it exists).
    Create {
        name: String,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
    },
    /// Take up to --max of the oldest messages off the queue, one JSON object per line:
    /// {"MessageId", "Body", "MD5OfBody"}.
    Receive {
        name: String,
        #[arg(long, default_value_t = 10)]
        max: usize,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
    },
}

#[derive(Subcommand)]
enum TopicAction {
    /// Create a topic (no-op if it exists).
    Create {
        name: String,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
    },
    /// Print the messages published to the topic, one JSON object per line with its
    /// position (from 0), oldest first.
    Tail {
        name: String,
        /// The first position to print.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// The store directory.
        #[arg(long)]
        store: PathBuf,
    },
}

/// Why a command was not carried out.
#[derive(Debug)]
pub enum Failure {
    /// Refused as AWS would refuse the request (exit 1); the message starts with AWS's
    /// error name.
    Aws(String),
    /// The files, arguments or store could not be used (exit 2).
    Usage(String),
}

fn report(command: &str, result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Aws(m)) => {
            eprintln!("sfn {command}: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(m)) => {
            eprintln!("sfn {command}: {m}");
            ExitCode::from(2)
        }
    }
}

fn print(result: Result<String, Failure>) -> Result<(), Failure> {
    result.map(|line| println!("{line}"))
}

fn check_wait_scale(scale: Option<f64>) -> Result<(), Failure> {
    match scale {
        Some(f) if !(f.is_finite() && f >= 0.0) => {
            Err(Failure::Usage(format!("--wait-scale must be a number >= 0, not {f}")))
        }
        _ => Ok(()),
    }
}

fn max_sleep(seconds: Option<f64>) -> Result<Option<Duration>, Failure> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s))),
        Some(s) => Err(Failure::Usage(format!("--max-sleep must be a number of seconds >= 0, not {s}"))),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => report("run", print(run(args))),
        Command::Validate { definition, json, machine_type } => validate(&definition, json, machine_type.into()),
        Command::Compile { definition, disassemble, machine_type } => {
            let text = match read(&definition) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("sfn compile: {e}");
                    return ExitCode::from(2);
                }
            };
            match sfn::load(&text, machine_type.into(), Bindings::default()) {
                Ok(prog) => {
                    if disassemble {
                        print!("{}", prog.disassemble());
                    } else {
                        println!("compiled: {} ops, {} states", prog.ops.len(), prog.states.len());
                    }
                    ExitCode::SUCCESS
                }
                Err(diags) => {
                    eprint!("sfn compile: {} is not a valid definition:\n{}", definition.display(), list(&diags));
                    ExitCode::from(2)
                }
            }
        }
        Command::Task { action } => {
            let (token, store, sleep, scale, callback) = match &action {
                TaskAction::Success { token, output, store, max_sleep, wait_scale } => {
                    (token, store, max_sleep, wait_scale, workflow::Callback::Success { output })
                }
                TaskAction::Failure { token, error, cause, store, max_sleep, wait_scale } => (
                    token,
                    store,
                    max_sleep,
                    wait_scale,
                    workflow::Callback::Failure { error, cause: cause.as_deref() },
                ),
                TaskAction::Heartbeat { token, store, max_sleep, wait_scale } => {
                    (token, store, &max_sleep.or(Some(0.0)), wait_scale, workflow::Callback::Heartbeat)
                }
            };
            let result = check_wait_scale(*scale)
                .and_then(|()| max_sleep(*sleep))
                .and_then(|s| workflow::task(store, token, callback, s, *scale));
            report("task", print(result))
        }
        Command::Resume { execution_arn, store, max_sleep: sleep, wait_scale } => {
            let result = check_wait_scale(wait_scale)
                .and_then(|()| max_sleep(sleep))
                .and_then(|s| workflow::resume(&store, execution_arn.as_deref(), s, wait_scale));
            report("resume", print(result))
        }
        Command::Executions { action } => report(
            "executions",
            match action {
                ExecutionsAction::List { status, state_machine, max, store } => {
                    inspect::list(&store, status.as_deref(), state_machine.as_deref(), max)
                }
                ExecutionsAction::Describe { execution_arn, store } => inspect::describe(&store, &execution_arn),
                ExecutionsAction::History { execution_arn, reverse, max, next_token, store } => {
                    inspect::history(&store, &execution_arn, reverse, max, next_token.as_deref())
                }
            },
        ),
        Command::Queue { action } => report(
            "queue",
            match action {
                QueueAction::Create { name, store } => inspect::queue_create(&store, &name),
                QueueAction::Receive { name, max, store } => inspect::queue_receive(&store, &name, max),
            },
        ),
        Command::Topic { action } => report(
            "topic",
            match action {
                TopicAction::Create { name, store } => inspect::topic_create(&store, &name),
                TopicAction::Tail { name, from, store } => inspect::topic_tail(&store, &name, from),
            },
        ),
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("cannot read stdin: {e}"))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

pub(crate) fn list(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

/// `sfn run`: on the engine with a store when [`workflow::needs_engine`] says so, else on
/// the in-process local driver.
fn run(a: RunArgs) -> Result<String, Failure> {
    check_wait_scale(Some(a.wait_scale))?;
    let text = read(&a.definition).map_err(Failure::Usage)?;
    let asked = a.store.is_some()
        || !a.machines.is_empty()
        || !a.lambdas.is_empty()
        || !a.queues.is_empty()
        || !a.topics.is_empty();
    let name = a.name.clone().unwrap_or_else(|| machine_name_from(&a.definition));
    if workflow::needs_engine(asked, a.mocks.is_some(), &text) {
        return workflow::run(workflow::RunRequest {
            definition: &a.definition,
            text,
            input: a.input.as_deref(),
            mocks: a.mocks.as_deref(),
            test_case: a.test_case.as_deref(),
            name,
            name_flag: a.name.as_deref(),
            machine_type: a.machine_type.into(),
            wait_scale: a.wait_scale,
            seed: a.seed,
            store: a.store.as_deref(),
            machines: &a.machines,
            lambdas: &a.lambdas,
            queues: &a.queues,
            topics: &a.topics,
            execution_name: a.execution_name.as_deref(),
            max_sleep: max_sleep(a.max_sleep)?,
        });
    }
    run_local(&a, &text, &name).map_err(Failure::Usage)
}

/// One execution on the local driver, on this thread.
fn run_local(a: &RunArgs, text: &[u8], machine_name: &str) -> Result<String, String> {
    let machine_type: MachineType = a.machine_type.into();
    let input = match &a.input {
        Some(p) => read(p)?,
        None => b"{}".to_vec(),
    };
    let mock_set: Option<MockSet> = match &a.mocks {
        Some(p) => {
            let raw = read(p)?;
            let doc: serde_json::Value =
                serde_json::from_slice(&raw).map_err(|e| format!("{} is not valid JSON: {e}", p.display()))?;
            Some(
                parse_mocks(&doc, a.name.as_deref(), a.test_case.as_deref())
                    .map_err(|e| format!("{}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let bindings = Bindings { handlers: None, mocks: mock_set.as_ref() };
    let prog = sfn::load(text, machine_type, bindings)
        .map_err(|d| format!("{} is not a valid definition:\n{}", a.definition.display(), list(&d).trim_end()))?;
    let scaled;
    let system = SystemClock;
    let clock: &dyn Clock = if a.wait_scale == 1.0 {
        &system
    } else {
        scaled = ScaledClock::new(a.wait_scale);
        &scaled
    };
    let execution_name = a.execution_name.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let meta = ExecMeta::local(machine_name, &execution_name, machine_type, clock.now());
    let seed = a.seed.unwrap_or_else(|| clock.now() as u64);
    let result = run_to_completion(&prog, &input, &RunOptions { clock, meta, seed })
        .map_err(|e| format!("the execution input is not valid JSON: {e}"))?;
    Ok(result.to_json())
}

/// `examples/rider-photo.express.asl.json` → `rider-photo`.
fn machine_name_from(path: &Path) -> String {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("StateMachine");
    let stem = file.split('.').next().unwrap_or(file);
    if stem.is_empty() {
        "StateMachine".to_owned()
    } else {
        stem.to_owned()
    }
}

fn validate(definition: &Path, json: bool, machine_type: MachineType) -> ExitCode {
    let text = match read(definition) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sfn validate: {e}");
            return ExitCode::from(2);
        }
    };
    let diags = match sfn::parse::parse_definition(&text) {
        Err(d) => d,
        Ok(doc) => sfn::validate::check(&doc, machine_type).1,
    };
    let failed = diags.iter().any(|d| d.severity == Severity::Error);
    if json {
        let items: Vec<serde_json::Value> = diags
            .iter()
            .map(|d| serde_json::json!({"severity": d.severity.as_str(), "code": d.code, "message": d.message, "location": d.location}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"result": if failed { "FAIL" } else { "OK" }, "diagnostics": items, "truncated": false})
        );
    } else if diags.is_empty() {
        println!("{}: OK", definition.display());
    } else {
        print!("{}", list(&diags));
        println!("{}: {}", definition.display(), if failed { "INVALID" } else { "OK (with warnings)" });
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
