//! `executor::nested`: the `states:startExecution` integration — a Task that starts an
//! execution of another registered state machine on the same engine.
//!
//! Input: the task's parameters (`StateMachineArn`, `Input` as an object or JSON text,
//! optional `Name`). Output: AWS's response: for the request-response form
//! `{ExecutionArn, StartDate}`; for `.sync` the child's DescribeExecution record with
//! `Output` as a JSON string, for `.sync:2` with `Output` parsed. A child that does not
//! succeed fails the task with `States.TaskFailed` and that record as the cause, as AWS
//! reports it. Never touches: the parent execution (it sees only the answer).
//!
//! An Express child runs on the shards like any synchronous Express start and writes no
//! history; a Standard child is started like any Standard execution (durable when the
//! engine has a store) and watched until it ends.

use std::sync::{OnceLock, Weak};
use std::time::Duration;

use serde_json::{json, Map, Value as Json};

use super::{Engine, Inner, Input, StartError, SyncResult};
use crate::handlers::{Handler, OwnedTaskContext, Registry, TaskError};
use crate::local::Status;
use crate::store::RecordStatus;
use crate::validate::MachineType;

const START: &str = "arn:aws:states:::states:startExecution";
const SYNC: &str = "arn:aws:states:::states:startExecution.sync";
const SYNC2: &str = "arn:aws:states:::states:startExecution.sync:2";
const CALLBACK: &str = "arn:aws:states:::states:startExecution.waitForTaskToken";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Start,
    Sync,
    Sync2,
}

/// Registers the integration's resources, unless the embedder registered its own.
pub(super) fn register(registry: &mut Registry, engine: &std::sync::Arc<OnceLock<Weak<Inner>>>) {
    for (resource, mode) in [(START, Mode::Start), (CALLBACK, Mode::Start), (SYNC, Mode::Sync), (SYNC2, Mode::Sync2)] {
        let engine = engine.clone();
        registry.register_default(
            resource,
            Handler::future(move |ctx: OwnedTaskContext, params: Json| {
                let engine = engine.get().and_then(Weak::upgrade);
                async move {
                    let inner = engine.ok_or_else(|| TaskError::new("States.Runtime", "The engine has stopped."))?;
                    start_child(&Engine { inner, owner: false }, &ctx, params, mode).await
                }
            }),
        );
    }
}

fn sdk_error(error: &str, code: &str, status: u16, message: &str) -> TaskError {
    TaskError::new(
        format!("StepFunctions.{error}"),
        format!(
            "{message} (Service: AWSStepFunctions; Status Code: {status}; Error Code: {code}; Request ID: {}; Proxy: null)",
            uuid::Uuid::new_v4()
        ),
    )
}

/// The name of a Standard child started without `Name`: derived from the parent execution
/// and the call's invocation number, so the call made again after the parent resumed finds
/// the child it started before (Standard starts are idempotent on the name) instead of
/// starting a second one.
fn derived_name(ctx: &OwnedTaskContext) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{}\n{}", ctx.execution_arn, ctx.invocation).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

async fn start_child(engine: &Engine, ctx: &OwnedTaskContext, params: Json, mode: Mode) -> Result<Json, TaskError> {
    let arn = params.get("StateMachineArn").and_then(Json::as_str).ok_or_else(|| {
        sdk_error("InvalidArnException", "InvalidArn", 400, "Invalid Arn: 'StateMachineArn' is missing or not a string")
    })?;
    let machine = engine.inner.machines.read().iter().find(|m| m.0.arn == arn).cloned().ok_or_else(|| {
        sdk_error(
            "StateMachineDoesNotExistException",
            "StateMachineDoesNotExist",
            400,
            &format!("State Machine Does Not Exist: '{arn}'"),
        )
    })?;
    let input_text = match params.get("Input") {
        None | Some(Json::Null) => "{}".to_owned(),
        Some(Json::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let input = Input::from_json(input_text.clone().into_bytes())
        .map_err(|e| sdk_error("InvalidExecutionInputException", "InvalidExecutionInput", 400, &e.to_string()))?;
    let derived;
    let name = match params.get("Name").and_then(Json::as_str) {
        Some(n) => Some(n),
        None if machine.machine_type() == MachineType::Standard && engine.inner.store.is_some() => {
            derived = derived_name(ctx);
            Some(derived.as_str())
        }
        None => None,
    };
    let start_error = |e: StartError| match e {
        StartError::Throttled => sdk_error("ThrottlingException", "ThrottlingException", 400, "Rate exceeded"),
        StartError::InvalidName(m) => sdk_error("InvalidNameException", "InvalidName", 400, &m),
        StartError::ExecutionAlreadyExists(a) => sdk_error(
            "ExecutionAlreadyExistsException",
            "ExecutionAlreadyExists",
            400,
            &format!("Execution Already Exists: '{a}'"),
        ),
        other => TaskError::new("States.Runtime", other.to_string()),
    };
    if mode == Mode::Start || machine.machine_type() == MachineType::Standard {
        let (arn, start_date) = match engine.start(&machine, &input, name) {
            Ok(exec) => (exec.arn(), exec.start_date),
            // The child this very call started before the parent resumed, already ended.
            Err(StartError::ExecutionAlreadyExists(arn)) if params.get("Name").is_none() => {
                let store = engine.inner.store.as_ref().expect("derived names only with a store");
                match store.execution(&arn) {
                    Ok(Some(r))
                        if serde_json::from_str::<Json>(&r.input).ok() == serde_json::from_str(&input_text).ok() =>
                    {
                        (arn, r.start_date)
                    }
                    _ => return Err(start_error(StartError::ExecutionAlreadyExists(arn))),
                }
            }
            Err(e) => return Err(start_error(e)),
        };
        if mode == Mode::Start {
            return Ok(json!({ "ExecutionArn": arn, "StartDate": millis(start_date) }));
        }
        return watch_standard(engine, &arn, &input_text, mode).await;
    }
    let result =
        engine.start_sync(&machine, &input, name).await.map_err(|e| TaskError::new("States.Runtime", e.to_string()))?;
    describe(&result, machine.arn(), &input_text, mode)
}

/// Waits for a Standard child to end and describes it. A durable child is watched in the
/// store (it may outlive this process); an in-memory one through its metrics.
async fn watch_standard(engine: &Engine, arn: &str, input: &str, mode: Mode) -> Result<Json, TaskError> {
    let Some(store) = engine.inner.store.clone() else {
        return Err(TaskError::new(
            "States.Runtime",
            "Waiting for a Standard child execution (.sync) needs an engine with a store.",
        ));
    };
    loop {
        let record = store.execution(arn).map_err(|e| TaskError::new("States.Runtime", e.to_string()))?;
        if let Some(r) = record.filter(|r| r.status != RecordStatus::Running) {
            let status = match r.status {
                RecordStatus::Succeeded => Status::Succeeded,
                RecordStatus::TimedOut => Status::TimedOut,
                _ => Status::Failed,
            };
            let result = SyncResult {
                execution_arn: r.execution_arn.clone(),
                name: r.name.clone(),
                status,
                output: r.output.clone(),
                error: r.error.clone(),
                cause: r.cause.clone(),
                start_date: r.start_date,
                stop_date: r.stop_date.unwrap_or(r.start_date),
                billing: super::BillingDetails::new(0, 0),
                transitions: 0,
            };
            let mut d = describe(&result, &r.state_machine_arn, input, mode);
            if r.status == RecordStatus::Aborted {
                if let Err(e) = &mut d {
                    e.cause = e.cause.take().map(|c| c.replace("\"FAILED\"", "\"ABORTED\""));
                }
            }
            return d;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn millis(nanos: i64) -> i64 {
    nanos.div_euclid(1_000_000)
}

/// The child's DescribeExecution record, as the `.sync` integrations return it.
fn describe(r: &SyncResult, machine_arn: &str, input: &str, mode: Mode) -> Result<Json, TaskError> {
    let mut m = Map::new();
    m.insert("ExecutionArn".into(), json!(r.execution_arn));
    m.insert(
        "Input".into(),
        match mode {
            Mode::Sync2 => serde_json::from_str(input).unwrap_or(Json::Null),
            _ => json!(input),
        },
    );
    m.insert("InputDetails".into(), json!({ "Included": true }));
    m.insert("Name".into(), json!(r.name));
    if let Some(o) = &r.output {
        m.insert(
            "Output".into(),
            match mode {
                Mode::Sync2 => serde_json::from_str(o).unwrap_or(Json::Null),
                _ => json!(o),
            },
        );
        m.insert("OutputDetails".into(), json!({ "Included": true }));
    }
    m.insert("StartDate".into(), json!(millis(r.start_date)));
    m.insert("StateMachineArn".into(), json!(machine_arn));
    m.insert("Status".into(), json!(r.status.as_str()));
    m.insert("StopDate".into(), json!(millis(r.stop_date)));
    if r.status != Status::Succeeded {
        if let Some(e) = &r.error {
            m.insert("Error".into(), json!(e));
        }
        if let Some(c) = &r.cause {
            m.insert("Cause".into(), json!(c));
        }
        return Err(TaskError::new("States.TaskFailed", Json::Object(m).to_string()));
    }
    Ok(Json::Object(m))
}
