//! `workflow`: the commands that run executions on the engine with a store: `sfn run`
//! (when it needs the engine, see [`needs_engine`]), `sfn task success|failure|heartbeat`
//! and `sfn resume`.
//!
//! Input: the parsed arguments. Output: the one JSON object of `session::finish_json` (the
//! contract `sfn run` has always had, plus `executionArn`), the setup file updated in the
//! store directory. Never touches: the in-process local driver (`sfn run`'s other path,
//! in `main`), the store's own format.
//!
//! Each command is one process: it opens the store, registers the machines the setup
//! file lists (which resumes their unfinished executions from their journals), does its
//! part, drives until the execution it reports on ends or everything waits for a
//! callback, then stops the engine, flushes the store and saves the setup file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;
use sfn::executor::{Input, StartError};
use sfn::services::RESOURCES;
use sfn::store::{ListFilter, RecordStatus, Store};
use sfn::validate::MachineType;

use crate::session::{finish_json, open_store, Finish, Session, Until};
use crate::setup::{self, MachineDef, MockRef, Setup};
use crate::{read, Failure};

/// Whether `sfn run` uses the engine with a store: when asked to (`--store`, `--machine`,
/// `--lambda`, `--queue`, `--topic`), or when the definition has a Task only the engine
/// can answer (the local SQS/SNS/Lambda integrations, `states:startExecution`, a
/// `.waitForTaskToken` resource) and no mock file answers tasks instead. Otherwise the
/// in-process local driver runs it, as it always has (the conformance corpus: every case
/// that names such a resource is mocked).
pub fn needs_engine(asked: bool, mocked: bool, definition: &[u8]) -> bool {
    asked || (!mocked && names_engine_resource(definition))
}

fn names_engine_resource(definition: &[u8]) -> bool {
    fn walk(v: &Json) -> bool {
        match v {
            Json::Object(o) => {
                let task_resource = (o.get("Type").and_then(Json::as_str) == Some("Task"))
                    .then(|| o.get("Resource").and_then(Json::as_str))
                    .flatten();
                if let Some(r) = task_resource {
                    if r.ends_with(".waitForTaskToken")
                        || r.starts_with("arn:aws:states:::states:startExecution")
                        || RESOURCES.contains(&r)
                    {
                        return true;
                    }
                }
                o.values().any(walk)
            }
            Json::Array(a) => a.iter().any(walk),
            _ => false,
        }
    }
    serde_json::from_slice::<Json>(definition).is_ok_and(|d| walk(&d))
}

/// `sfn run`'s arguments, as the engine path uses them.
pub struct RunRequest<'a> {
    pub definition: &'a Path,
    pub text: Vec<u8>,
    pub input: Option<&'a Path>,
    pub mocks: Option<&'a Path>,
    pub test_case: Option<&'a str>,
    /// The machine's name: `--name`, else the definition's file name.
    pub name: String,
    pub name_flag: Option<&'a str>,
    pub machine_type: MachineType,
    pub wait_scale: f64,
    pub seed: Option<u64>,
    pub store: Option<&'a Path>,
    pub machines: &'a [String],
    pub lambdas: &'a [String],
    pub queues: &'a [String],
    pub topics: &'a [String],
    pub execution_name: Option<&'a str>,
    pub max_sleep: Option<Duration>,
}

/// `NAME=FILE[:express|:standard]`. Without a suffix the type is Express when the file
/// name says so (`*.express.asl.json`), else Standard.
fn machine_arg(arg: &str) -> Result<(String, PathBuf, MachineType), Failure> {
    let (name, rest) = arg
        .split_once('=')
        .ok_or_else(|| Failure::Usage(format!("--machine {arg}: expected NAME=FILE[:express|:standard]")))?;
    let (file, ty) = match rest.rsplit_once(':') {
        Some((f, "express")) => (f, Some(MachineType::Express)),
        Some((f, "standard")) => (f, Some(MachineType::Standard)),
        _ => (rest, None),
    };
    let ty = ty.unwrap_or_else(|| {
        let file_name = Path::new(file).file_name().and_then(|f| f.to_str()).unwrap_or("");
        if file_name.contains(".express.") {
            MachineType::Express
        } else {
            MachineType::Standard
        }
    });
    if name.is_empty() || file.is_empty() {
        return Err(Failure::Usage(format!("--machine {arg}: expected NAME=FILE[:express|:standard]")));
    }
    Ok((name.to_owned(), PathBuf::from(file), ty))
}

fn utf8(text: Vec<u8>, path: &Path) -> Result<String, Failure> {
    String::from_utf8(text).map_err(|_| Failure::Usage(format!("{} is not UTF-8 text", path.display())))
}

fn start_failed(e: StartError) -> Failure {
    match e {
        StartError::Store(m) => Failure::Usage(format!("the store failed: {m}")),
        other => Failure::Aws(other.to_string()),
    }
}

/// A fresh directory for a run without `--store` (removed at exit unless the execution
/// is still waiting).
fn temporary_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!("sfn-run-{}-{nanos}", std::process::id()))
}

/// `sfn run` on the engine.
pub fn run(r: RunRequest<'_>) -> Result<String, Failure> {
    let input_text = match r.input {
        Some(p) => read(p).map_err(Failure::Usage)?,
        None => b"{}".to_vec(),
    };
    let input = Input::from_json(input_text)
        .map_err(|e| Failure::Usage(format!("the execution input is not valid JSON: {e}")))?;
    let mock_file: Option<Json> = match r.mocks {
        Some(p) => {
            let raw = read(p).map_err(Failure::Usage)?;
            Some(
                serde_json::from_slice(&raw)
                    .map_err(|e| Failure::Usage(format!("{} is not valid JSON: {e}", p.display())))?,
            )
        }
        None => None,
    };
    let main_mocks = match &mock_file {
        Some(doc) => {
            // The same selection as the local driver's: `--name`, else the file's only one.
            let m = MockRef {
                file: doc.clone(),
                state_machine: r.name_flag.map(str::to_owned),
                test_case: r.test_case.map(str::to_owned),
            };
            m.parse().map_err(|e| Failure::Usage(format!("{}: {e}", r.mocks.expect("given").display())))?;
            Some(m)
        }
        None => None,
    };
    let mut children = Vec::new();
    for arg in r.machines {
        let (name, file, machine_type) = machine_arg(arg)?;
        let text = utf8(read(&file).map_err(Failure::Usage)?, &file)?;
        // A child is mocked when a MockConfigFile lists it by name.
        let mocks = mock_file.as_ref().filter(|doc| doc["StateMachines"].get(&name).is_some()).map(|doc| MockRef {
            file: doc.clone(),
            state_machine: Some(name.clone()),
            test_case: r.test_case.map(str::to_owned),
        });
        children.push(MachineDef { name, machine_type, definition: text, mocks });
    }
    let mut lambdas = Vec::new();
    for arg in r.lambdas {
        let (name, command) = arg
            .split_once('=')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| Failure::Usage(format!("--lambda {arg}: expected NAME=COMMAND")))?;
        lambdas.push((name.to_owned(), command.to_owned()));
    }

    let (dir, temporary) = match r.store {
        Some(d) => (d.to_owned(), false),
        None => (temporary_dir(), true),
    };
    let result = run_in(&r, &dir, temporary, children, main_mocks, lambdas, &input);
    if temporary && !matches!(result, Ok((_, Finish::Parked { .. }))) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (arn, finish) = result?;
    if temporary && matches!(finish, Finish::Parked { .. }) {
        eprintln!(
            "sfn run: the execution waits in {}: carry on with `sfn task ... --store {0}` or `sfn resume --store {0}`",
            dir.display()
        );
    }
    Ok(finish_json(&finish, &arn, &dir))
}

/// `sfn run` in its store directory: the setup merged and saved once the engine has
/// accepted every definition (a store is never left with a setup it cannot start), the
/// queues and topics created, the execution started and driven.
fn run_in(
    r: &RunRequest<'_>,
    dir: &Path,
    temporary: bool,
    children: Vec<MachineDef>,
    main_mocks: Option<MockRef>,
    lambdas: Vec<(String, String)>,
    input: &Input,
) -> Result<(String, Finish), Failure> {
    let mut setup =
        if temporary { Setup::default() } else { Setup::load(dir).map_err(Failure::Usage)?.unwrap_or_default() };
    setup.wait_scale = r.wait_scale;
    for c in children {
        setup.put_machine(c);
    }
    setup.put_machine(MachineDef {
        name: r.name.clone(),
        machine_type: r.machine_type,
        definition: utf8(r.text.clone(), r.definition)?,
        mocks: main_mocks,
    });
    for (n, c) in lambdas {
        setup.put_lambda(n, c);
    }
    let store = open_store(dir)?;
    for q in r.queues {
        store.create_queue(q).map_err(|e| Failure::Usage(format!("cannot create the queue {q}: {e}")))?;
    }
    for t in r.topics {
        store.create_topic(t).map_err(|e| Failure::Usage(format!("cannot create the topic {t}: {e}")))?;
    }
    let session = Session::start(dir, store, &setup, r.seed)?;
    let outcome = (|| {
        // Saved before the execution starts: a process that dies from here on leaves a
        // directory that `sfn resume` carries on.
        setup.save(dir).map_err(Failure::Usage)?;
        let machine = session.machine(&r.name).expect("registered by Session::start").clone();
        let until = match r.machine_type {
            MachineType::Standard => {
                let x = session.engine.start(&machine, input, r.execution_name).map_err(start_failed)?;
                Until::Record(x.arn())
            }
            MachineType::Express => {
                let sync = session.engine.start_sync(&machine, input, r.execution_name);
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let _ = tx.send(sync.wait());
                });
                Until::Sync(r.name.clone(), rx)
            }
        };
        let finish = session.drive(&until, r.max_sleep)?;
        let arn = match until {
            Until::Record(a) => a,
            Until::Sync(..) => String::new(),
        };
        Ok((arn, finish))
    })();
    session.close(&mut setup)?;
    outcome
}

/// A store directory an earlier `sfn run` set up (the setup file must be there).
fn set_up(dir: &Path) -> Result<Setup, Failure> {
    if !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "no store in {}: the directory does not exist (start with `sfn run DEF --store {0}`)",
            dir.display()
        )));
    }
    Setup::load(dir).map_err(Failure::Usage)?.ok_or_else(|| {
        Failure::Usage(format!(
            "no sfn run has used the store in {}: {} is missing (start with `sfn run DEF --store {0}`)",
            dir.display(),
            setup::FILE
        ))
    })
}

/// What `sfn task` says to the waiting task.
pub enum Callback<'a> {
    Success { output: &'a str },
    Failure { error: &'a str, cause: Option<&'a str> },
    Heartbeat,
}

/// `sfn task success|failure|heartbeat TOKEN --store DIR`.
pub fn task(
    dir: &Path,
    token: &str,
    callback: Callback<'_>,
    max_sleep: Option<Duration>,
    wait_scale: Option<f64>,
) -> Result<String, Failure> {
    let mut setup = set_up(dir)?;
    setup.wait_scale = wait_scale.unwrap_or(setup.wait_scale);
    let store = open_store(dir)?;
    // Checked before anything resumes: an unknown token changes nothing.
    let Some(owner) = store.token(token).map_err(|e| Failure::Usage(format!("the store failed: {e}")))? else {
        return Err(Failure::Aws("TaskDoesNotExist: no task is waiting for this token".into()));
    };
    if let Callback::Success { output } = callback {
        if let Err(e) = serde_json::from_str::<Json>(output) {
            return Err(Failure::Aws(format!("InvalidOutput: the output is not valid JSON: {e}")));
        }
    }
    let session = Session::start(dir, store, &setup, None)?;
    let outcome = (|| {
        session.deliver(token, |engine| match &callback {
            Callback::Success { output } => engine.send_task_success(token, output).wait(),
            Callback::Failure { error, cause } => engine.send_task_failure(token, error, *cause).wait(),
            Callback::Heartbeat => engine.send_task_heartbeat(token).wait(),
        })?;
        let target = session.root(&owner)?;
        let finish = session.drive(&Until::Record(target.clone()), max_sleep)?;
        Ok(finish_json(&finish, &target, dir))
    })();
    session.close(&mut setup)?;
    outcome
}

/// `sfn resume --store DIR [ARN]`: carries on with the unfinished executions (after
/// `--max-sleep`, or a process that was stopped), reporting on `arn` or the most
/// recently started one still running.
pub fn resume(
    dir: &Path,
    arn: Option<&str>,
    max_sleep: Option<Duration>,
    wait_scale: Option<f64>,
) -> Result<String, Failure> {
    let mut setup = set_up(dir)?;
    setup.wait_scale = wait_scale.unwrap_or(setup.wait_scale);
    let store = open_store(dir)?;
    let target = match arn {
        Some(a) => {
            if store.execution(a).map_err(|e| Failure::Usage(format!("the store failed: {e}")))?.is_none() {
                return Err(Failure::Aws(format!("ExecutionDoesNotExist: Execution Does Not Exist: '{a}'")));
            }
            a.to_owned()
        }
        None => {
            let filter = ListFilter { state_machine_arn: None, status: Some(RecordStatus::Running) };
            let page = store
                .list_executions(&filter, 1, None)
                .map_err(|e| Failure::Usage(format!("the store failed: {e}")))?;
            match page.items.into_iter().next() {
                Some(r) => r.execution_arn,
                None => {
                    return Err(Failure::Aws(format!(
                        "ExecutionDoesNotExist: no execution is running in {}",
                        dir.display()
                    )))
                }
            }
        }
    };
    let session = Session::start(dir, store, &setup, None)?;
    let outcome = (|| {
        let target = session.root(&target)?;
        let finish = session.drive(&Until::Record(target.clone()), max_sleep)?;
        Ok(finish_json(&finish, &target, dir))
    })();
    session.close(&mut setup)?;
    outcome
}
