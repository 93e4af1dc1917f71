//! Durable Standard executions on a store, on virtual time: records, histories, idempotent
//! starts, callbacks, nested executions, and resuming on a new engine without running a
//! completed step again.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as Json};
use sfn::clock::{ManualClock, NANOS_PER_SEC};
use sfn::executor::{Engine, Shutdown, StartError, StateMachine};
use sfn::handlers::{Handler, Registry, TaskError};
use sfn::store::{ListFilter, MemStore, RecordStatus, Store};
use sfn::validate::MachineType;
use sfn::vm::CallbackError;

use crate::support::{eventually, input, register};

const S: i64 = NANOS_PER_SEC;

fn engine(clock: &Arc<ManualClock>, store: &Arc<MemStore>, handlers: Registry) -> Engine {
    Engine::builder().shards(2).clock(clock.clone()).handlers(handlers).store(store.clone()).seed(11).build()
}

fn status(e: &Engine, arn: &str) -> RecordStatus {
    e.describe_execution(arn).unwrap().expect("stored").status
}

fn history(e: &Engine, arn: &str) -> Vec<Json> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = e.execution_history(arn, false, 3, token.as_deref()).unwrap();
        out.extend(page.items.iter().map(|b| serde_json::from_slice::<Json>(b).unwrap()));
        match page.next_token {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}

fn types(h: &[Json]) -> Vec<String> {
    h.iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

/// Step one counts its invocations; Approve hands out a token; then a Wait; then Two.
const ORDER: &str = r#"{"StartAt":"One","States":{
  "One":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:one","ResultPath":"$.one","Next":"Approve"},
  "Approve":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
    "Parameters":{"FunctionName":"notify","Payload":{"token.$":"$$.Task.Token"}},"ResultPath":"$.approval","Next":"Pause"},
  "Pause":{"Type":"Wait","Seconds":10,"Next":"Two"},
  "Two":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:two","ResultPath":"$.two","End":true}}}"#;

struct Calls {
    one: AtomicU32,
    two: AtomicU32,
    tokens: Mutex<Vec<String>>,
}

fn handlers(calls: &Arc<Calls>) -> Registry {
    let mut r = Registry::new();
    let c = calls.clone();
    r.register(
        "arn:aws:lambda:us-east-1:123456789012:function:one",
        Handler::sync_json(move |_, _| {
            c.one.fetch_add(1, Ordering::SeqCst);
            Ok(json!("one done"))
        }),
    );
    let c = calls.clone();
    r.register(
        "arn:aws:lambda:us-east-1:123456789012:function:two",
        Handler::future(move |_, _| {
            let c = c.clone();
            async move {
                c.two.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TaskError>(json!("two done"))
            }
        }),
    );
    let c = calls.clone();
    r.register(
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        Handler::sync_json(move |ctx, _| {
            c.tokens.lock().unwrap().push(ctx.task_token.unwrap().to_owned());
            Ok(json!({"StatusCode": 200}))
        }),
    );
    r
}

fn new_calls() -> Arc<Calls> {
    Arc::new(Calls { one: AtomicU32::new(0), two: AtomicU32::new(0), tokens: Mutex::new(Vec::new()) })
}

#[test]
fn a_standard_execution_is_stored_with_its_history_and_resumes_on_a_new_engine() {
    let clock = Arc::new(ManualClock::fixed());
    let store = Arc::new(MemStore::new());
    let calls = new_calls();
    let e1 = engine(&clock, &store, handlers(&calls));
    let m = register(&e1, "Order", ORDER, MachineType::Standard);
    let x = e1.start(&m, &input(r#"{"order":7}"#), Some("order-7")).unwrap();
    let arn = x.arn();
    assert_eq!(arn, "arn:aws:states:us-east-1:123456789012:execution:Order:order-7");
    eventually("the approval token", || !calls.tokens.lock().unwrap().is_empty());
    eventually("the token is routed in the store", || {
        let t = calls.tokens.lock().unwrap()[0].clone();
        store.token(&t).unwrap().as_deref() == Some(arn.as_str())
    });
    assert_eq!(status(&e1, &arn), RecordStatus::Running);

    // Idempotent on the name: same input returns the running execution, another fails.
    let again = e1.start(&m, &input(r#"{"order": 7}"#), Some("order-7")).unwrap();
    assert_eq!(again.arn(), arn);
    assert!(matches!(
        e1.start(&m, &input(r#"{"order":8}"#), Some("order-7")),
        Err(StartError::ExecutionAlreadyExists(a)) if a == arn
    ));

    // "Crash": the engine goes away with the execution waiting for its callback.
    e1.shutdown(Shutdown::Abandon);
    drop(e1);
    assert_eq!(calls.one.load(Ordering::SeqCst), 1);

    let e2 = engine(&clock, &store, handlers(&calls));
    let m2 = register(&e2, "Order", ORDER, MachineType::Standard);
    let token = calls.tokens.lock().unwrap()[0].clone();
    // The replay hands out the same token (the callback task is not invoked again).
    eventually("the resumed execution accepts the callback", || {
        !matches!(e2.send_task_success(&token, r#"{"approved":true}"#).wait(), Err(CallbackError::TaskDoesNotExist))
    });
    assert_eq!(calls.tokens.lock().unwrap().len(), 1, "the callback task ran again on resume");
    assert_eq!(
        e2.send_task_success(&token, "{}").wait(),
        Err(CallbackError::TaskDoesNotExist),
        "a used token is refused"
    );
    // The Wait: nothing before its 10 s, the end after.
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(status(&e2, &arn), RecordStatus::Running);
    clock.advance(11 * S);
    eventually("the end", || status(&e2, &arn) != RecordStatus::Running);
    let rec = e2.describe_execution(&arn).unwrap().unwrap();
    assert_eq!(rec.status, RecordStatus::Succeeded, "{rec:?}");
    let out: Json = serde_json::from_str(rec.output.as_deref().unwrap()).unwrap();
    assert_eq!(out, json!({"order":7,"one":"one done","approval":{"approved":true},"two":"two done"}));
    assert_eq!(calls.one.load(Ordering::SeqCst), 1, "a completed step ran again");
    assert_eq!(calls.two.load(Ordering::SeqCst), 1);
    assert!(store.token(&token).unwrap().is_none(), "the token route is removed at the end");

    let h = history(&e2, &arn);
    assert_eq!(
        types(&h),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionSucceeded",
            "TaskStateExited",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSubmitted",
            "TaskSucceeded",
            "TaskStateExited",
            "WaitStateEntered",
            "WaitStateExited",
            "TaskStateEntered",
            "LambdaFunctionScheduled",
            "LambdaFunctionStarted",
            "LambdaFunctionSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    for (i, ev) in h.iter().enumerate() {
        assert_eq!(ev["id"], json!(i + 1));
        // AWS chains the first state's entry to 0, like ExecutionStarted.
        let previous = if i == 1 { 0 } else { i };
        assert_eq!(ev["previousEventId"], json!(previous), "{}", Json::Array(h.clone()));
    }
    // Reverse order, paginated.
    let last = e2.execution_history(&arn, true, 1, None).unwrap();
    assert_eq!(types(&[serde_json::from_slice(&last.items[0]).unwrap()]), ["ExecutionSucceeded"]);
    assert!(last.next_token.is_some());

    let listed = e2
        .list_executions(
            &ListFilter { state_machine_arn: Some(m2.arn().to_owned()), status: Some(RecordStatus::Succeeded) },
            10,
            None,
        )
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    // A closed execution's name cannot be reused.
    assert!(matches!(
        e2.start(&m2, &input(r#"{"order":7}"#), Some("order-7")),
        Err(StartError::ExecutionAlreadyExists(_))
    ));
}

#[test]
fn a_callback_failure_is_caught_and_heartbeats_time_out() {
    let def = r#"{"StartAt":"Ask","States":{
      "Ask":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken","HeartbeatSeconds":5,
        "Parameters":{"FunctionName":"notify","Payload":{"token.$":"$$.Task.Token"}},
        "Catch":[{"ErrorEquals":["Rejected"],"ResultPath":"$.why","Next":"Refused"}],"End":true},
      "Refused":{"Type":"Pass","End":true}}}"#;
    let clock = Arc::new(ManualClock::fixed());
    let store = Arc::new(MemStore::new());
    let calls = new_calls();
    let e = engine(&clock, &store, handlers(&calls));
    let m = register(&e, "Ask", def, MachineType::Standard);
    let a = e.start(&m, &input("{}"), Some("a")).unwrap().arn();
    eventually("a's token", || calls.tokens.lock().unwrap().len() == 1);
    let token = calls.tokens.lock().unwrap()[0].clone();
    eventually("routed", || e.send_task_heartbeat(&token).wait().is_ok());
    e.send_task_failure(&token, "Rejected", Some("no stock")).wait().unwrap();
    eventually("a ends", || status(&e, &a) != RecordStatus::Running);
    let rec = e.describe_execution(&a).unwrap().unwrap();
    assert_eq!(rec.status, RecordStatus::Succeeded);
    assert_eq!(rec.output.as_deref(), Some(r#"{"why":{"Error":"Rejected","Cause":"no stock"}}"#));

    // No heartbeat within 5 s: States.HeartbeatTimeout, not caught.
    let b = e.start(&m, &input("{}"), Some("b")).unwrap().arn();
    eventually("b's token", || calls.tokens.lock().unwrap().len() == 2);
    let token_b = calls.tokens.lock().unwrap()[1].clone();
    eventually("b parked", || store.token(&token_b).unwrap().is_some());
    clock.advance(6 * S);
    eventually("b ends", || status(&e, &b) != RecordStatus::Running);
    let rec = e.describe_execution(&b).unwrap().unwrap();
    // AWS reports an expired heartbeat as States.Timeout (States.HeartbeatTimeout is only a
    // name for ErrorEquals).
    assert_eq!((rec.status, rec.error.as_deref()), (RecordStatus::Failed, Some("States.Timeout")));
    assert_eq!(e.send_task_success(&token_b, "{}").wait(), Err(CallbackError::TaskTimedOut));
    assert_eq!(e.send_task_heartbeat("").wait(), Err(CallbackError::InvalidToken));
    assert_eq!(e.send_task_success("no-such-token", "{}").wait(), Err(CallbackError::TaskDoesNotExist));
    assert!(types(&history(&e, &b)).contains(&"TaskTimedOut".to_owned()));
}

#[test]
fn a_standard_parent_runs_an_express_child_synchronously() {
    let child = r#"{"StartAt":"Work","States":{"Work":{"Type":"Pass","Parameters":{"done.$":"$.n"},"End":true}}}"#;
    let failing = r#"{"StartAt":"Boom","States":{"Boom":{"Type":"Fail","Error":"Broken","Cause":"gears"}}}"#;
    let parent = |resource: &str, target: &str| {
        format!(
            r#"{{"StartAt":"Child","States":{{"Child":{{"Type":"Task","Resource":"{resource}",
              "Parameters":{{"StateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:{target}",
                "Input":{{"n":3,"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$":"$$.Execution.Id"}}}},"End":true}}}}}}"#
        )
    };
    let clock = Arc::new(ManualClock::fixed());
    let store = Arc::new(MemStore::new());
    let e = engine(&clock, &store, Registry::new());
    register(&e, "Child", child, MachineType::Express);
    register(&e, "Failing", failing, MachineType::Express);
    let p1 = register(&e, "P1", &parent("arn:aws:states:::states:startExecution.sync", "Child"), MachineType::Standard);
    let p2 =
        register(&e, "P2", &parent("arn:aws:states:::states:startExecution.sync:2", "Child"), MachineType::Standard);
    let p3 =
        register(&e, "P3", &parent("arn:aws:states:::states:startExecution.sync", "Failing"), MachineType::Standard);
    let p4 =
        register(&e, "P4", &parent("arn:aws:states:::states:startExecution.sync", "Missing"), MachineType::Standard);
    let run = |m: &StateMachine| {
        let arn = e.start(m, &input("{}"), None).unwrap().arn();
        eventually("the parent ends", || status(&e, &arn) != RecordStatus::Running);
        e.describe_execution(&arn).unwrap().unwrap()
    };
    let r1 = run(&p1);
    assert_eq!(r1.status, RecordStatus::Succeeded, "{r1:?}");
    let o1: Json = serde_json::from_str(r1.output.as_deref().unwrap()).unwrap();
    assert_eq!(o1["Output"], json!(r#"{"done":3}"#), "{o1}");
    assert_eq!(o1["Status"], "SUCCEEDED");
    assert_eq!(o1["StateMachineArn"], "arn:aws:states:us-east-1:123456789012:stateMachine:Child");
    assert!(o1["ExecutionArn"].as_str().unwrap().starts_with("arn:aws:states:us-east-1:123456789012:express:Child:"));
    let child_input: Json = serde_json::from_str(o1["Input"].as_str().unwrap()).unwrap();
    assert_eq!(child_input["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"], json!(r1.execution_arn));
    for key in ["InputDetails", "Name", "StartDate", "StopDate"] {
        assert!(o1.get(key).is_some(), "{key} missing from {o1}");
    }
    let r2 = run(&p2);
    let o2: Json = serde_json::from_str(r2.output.as_deref().unwrap()).unwrap();
    assert_eq!(o2["Output"], json!({"done": 3}));
    let r3 = run(&p3);
    assert_eq!((r3.status, r3.error.as_deref()), (RecordStatus::Failed, Some("States.TaskFailed")));
    let cause: Json = serde_json::from_str(r3.cause.as_deref().unwrap()).unwrap();
    assert_eq!((cause["Status"].as_str(), cause["Error"].as_str()), (Some("FAILED"), Some("Broken")));
    let r4 = run(&p4);
    assert_eq!(r4.error.as_deref(), Some("StepFunctions.StateMachineDoesNotExistException"), "{r4:?}");
    // The Express child wrote no record.
    let all = e.list_executions(&ListFilter::default(), 100, None).unwrap();
    assert!(all.items.iter().all(|r| r.state_machine_arn.contains(":stateMachine:P")), "{:?}", all.items);
}

#[test]
fn a_resumed_parent_finds_the_standard_child_it_started_instead_of_starting_another() {
    let child = r#"{"StartAt":"Ask","States":{
      "Ask":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters":{"FunctionName":"notify","Payload":{"token.$":"$$.Task.Token"}},"End":true}}}"#;
    let parent = r#"{"StartAt":"Child","States":{"Child":{"Type":"Task",
      "Resource":"arn:aws:states:::states:startExecution.sync:2",
      "Parameters":{"StateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:Kid","Input":{"n":1}},
      "OutputPath":"$.Output","End":true}}}"#;
    let clock = Arc::new(ManualClock::fixed());
    let store = Arc::new(MemStore::new());
    let calls = new_calls();
    let e1 = engine(&clock, &store, handlers(&calls));
    register(&e1, "Kid", child, MachineType::Standard);
    let p = register(&e1, "Parent", parent, MachineType::Standard);
    let arn = e1.start(&p, &input("{}"), Some("p")).unwrap().arn();
    eventually("the child's token", || calls.tokens.lock().unwrap().len() == 1);
    // The token is routed in the store with the commit that journals the handler's answer;
    // abandoning before that would leave the call unanswered, and a resumed child calls
    // it again (at least once), handing out a second token.
    eventually("the child's token is routed in the store", || {
        let t = calls.tokens.lock().unwrap()[0].clone();
        store.token(&t).unwrap().is_some()
    });
    e1.shutdown(Shutdown::Abandon);
    drop(e1);

    let e2 = engine(&clock, &store, handlers(&calls));
    register(&e2, "Kid", child, MachineType::Standard);
    register(&e2, "Parent", parent, MachineType::Standard);
    let token = calls.tokens.lock().unwrap()[0].clone();
    eventually("the resumed child takes the callback", || {
        !matches!(e2.send_task_success(&token, r#"{"ok":1}"#).wait(), Err(CallbackError::TaskDoesNotExist))
    });
    eventually("the parent ends", || status(&e2, &arn) != RecordStatus::Running);
    let rec = e2.describe_execution(&arn).unwrap().unwrap();
    assert_eq!((rec.status, rec.output.as_deref()), (RecordStatus::Succeeded, Some(r#"{"ok":1}"#)), "{rec:?}");
    let kids = e2
        .list_executions(
            &ListFilter {
                state_machine_arn: Some("arn:aws:states:us-east-1:123456789012:stateMachine:Kid".into()),
                status: None,
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(kids.items.len(), 1, "a second child was started: {:?}", kids.items);
    assert_eq!(calls.tokens.lock().unwrap().len(), 1);
}
