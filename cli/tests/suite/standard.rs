//! Standard workflows through the `sfn` binary, one process per command as a user runs
//! them: `run` on a store until an execution waits for a callback, `queue receive` for the
//! token, `task` to answer (resuming in a new process), `topic tail`, `executions`; the
//! selective-checkpointing example end to end on both branches; the errors' names and exit
//! codes; Waits with `--wait-scale`, `--max-sleep` and `resume`; local Lambda commands.
//!
//! Every command runs with a deadline (a hung process fails its test instead of hanging
//! the suite), in a store directory of its own under the system's temp directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value as Json};

/// No single command may take longer (the slowest here take well under a second).
const DEADLINE: Duration = Duration::from_secs(20);

const PARENT: &str = "examples/selective-checkpointing.standard.asl.json";
const CHILD: &str = "Checkpoint-UpdateDatabaseExpress=examples/selective-checkpointing.express-child.asl.json:express";
const LAMBDA: &str = "Checkpoint-UpdateDatabaseLambdaFunction=cat";
const QUEUE: &str = "Checkpoint-SQSQueue";
const TOPIC: &str = "Checkpoint-SNSTopic";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh directory for one test (its store, its temporary files).
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sfn-standard-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs `sfn ARGS` in the repository with `TMPDIR` set to `tmp`, within [`DEADLINE`].
fn sfn_with_tmp(tmp: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfn"))
        .args(args)
        .current_dir(repo())
        .env("TMPDIR", tmp)
        .env_remove("SFN_MOCK_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            child.kill().unwrap();
            let o = child.wait_with_output().unwrap();
            panic!(
                "`sfn {}` took longer than {DEADLINE:?}; stderr: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().unwrap()
}

fn sfn(args: &[&str]) -> Output {
    sfn_with_tmp(&std::env::temp_dir(), args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The one JSON object a command printed, after checking it exited 0.
fn object(o: &Output) -> Json {
    assert!(o.status.success(), "exit {:?}; stdout: {}; stderr: {}", o.status.code(), stdout(o), stderr(o));
    let text = stdout(o);
    let mut lines = text.lines();
    let v = serde_json::from_str(lines.next().expect("one line")).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(lines.next(), None, "one object only: {text}");
    v
}

/// Every line a command printed, as JSON.
fn lines(o: &Output) -> Vec<Json> {
    assert!(o.status.success(), "exit {:?}; stderr: {}", o.status.code(), stderr(o));
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Creates the example's queue and topic in `store`, runs the parent until it waits for
/// the approval, and returns its ARN.
fn start_checkpointing(store: &Path) -> String {
    let created = object(&sfn(&["queue", "create", QUEUE, "--store", s(store)]));
    assert_eq!(created["QueueUrl"], format!("https://sqs.us-east-1.amazonaws.com/123456789012/{QUEUE}"));
    let created = object(&sfn(&["topic", "create", TOPIC, "--store", s(store)]));
    assert_eq!(created["TopicArn"], format!("arn:aws:sns:us-east-1:123456789012:{TOPIC}"));
    let v = object(&sfn(&[
        "run",
        PARENT,
        "--store",
        s(store),
        "--machine",
        CHILD,
        "--lambda",
        LAMBDA,
        "--execution-name",
        "order-1",
    ]));
    let arn = "arn:aws:states:us-east-1:123456789012:execution:selective-checkpointing:order-1";
    assert_eq!(v, json!({"status": "RUNNING", "executionArn": arn, "waitingForCallback": true, "store": s(store)}));
    arn.to_owned()
}

/// Takes the one message waiting in the queue and returns its task token.
fn receive_token(store: &Path, title: &str) -> String {
    let messages = lines(&sfn(&["queue", "receive", QUEUE, "--store", s(store)]));
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["MessageId", "Body", "MD5OfBody"]);
    let body: Json = serde_json::from_str(m["Body"].as_str().unwrap()).unwrap();
    assert!(body["MessageTitle"].as_str().unwrap().starts_with(title), "{body}");
    body["TaskToken"].as_str().unwrap().to_owned()
}

fn topic_messages(store: &Path) -> Vec<String> {
    let tail = lines(&sfn(&["topic", "tail", TOPIC, "--store", s(store)]));
    for (i, m) in tail.iter().enumerate() {
        assert_eq!(m["position"], json!(i));
    }
    tail.iter().map(|m| m["Message"].as_str().unwrap().to_owned()).collect()
}

fn history_types(store: &Path, arn: &str) -> Vec<String> {
    let h = object(&sfn(&["executions", "history", arn, "--store", s(store), "--max", "1000"]));
    assert!(h.get("nextToken").is_none(), "one page holds it all: {h}");
    h["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn selective_checkpointing_approved_end_to_end() {
    let store = scratch("approved").join("store");
    let arn = start_checkpointing(&store);
    assert_eq!(topic_messages(&store), Vec::<String>::new(), "nothing published before the approval");

    let token = receive_token(&store, "Order Request received");
    let v = object(&sfn(&["task", "success", &token, "--output", "{}", "--store", s(&store)]));
    assert_eq!(v, json!({"status": "RUNNING", "executionArn": arn, "waitingForCallback": true, "store": s(&store)}));
    // The used token is gone.
    let o = sfn(&["task", "success", &token, "--output", "{}", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("TaskDoesNotExist"), "{}", stderr(&o));

    let token = receive_token(&store, "Payment sent to third-party");
    let v = object(&sfn(&["task", "success", &token, "--output", r#"{"paid": true}"#, "--store", s(&store)]));
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["executionArn"], arn);
    // The last state's output: sns:publish's response.
    assert!(v["output"]["MessageId"].is_string(), "{v}");
    assert_eq!(v["output"]["SdkHttpMetadata"]["HttpStatusCode"], 200);

    assert_eq!(
        topic_messages(&store),
        [
            "Order has been approved. Resuming workflow.",
            "Payment processing succeeded. Resuming workflow.",
            "Order and payment received, database is updated and the package is ready to ship.",
        ]
    );
    assert_eq!(lines(&sfn(&["queue", "receive", QUEUE, "--store", s(&store)])), Vec::<Json>::new());

    let task = |name: &str| -> Vec<&str> {
        match name {
            "callback" => vec![
                "TaskStateEntered",
                "TaskScheduled",
                "TaskStarted",
                "TaskSubmitted",
                "TaskSucceeded",
                "TaskStateExited",
            ],
            _ => vec!["TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited"],
        }
    };
    let mut want = vec!["ExecutionStarted"];
    for step in ["callback", "publish", "callback", "publish", "startExecution.sync", "publish"] {
        want.extend(task(step));
    }
    want.push("ExecutionSucceeded");
    assert_eq!(history_types(&store, &arn), want);

    // GetExecutionHistory's paging, both ways.
    let first = object(&sfn(&["executions", "history", &arn, "--store", s(&store), "--max", "2"]));
    let ids: Vec<&Json> = first["events"].as_array().unwrap().iter().map(|e| &e["id"]).collect();
    assert_eq!(ids, [&json!(1), &json!(2)]);
    let token = first["nextToken"].as_str().expect("more pages");
    let second =
        object(&sfn(&["executions", "history", &arn, "--store", s(&store), "--max", "2", "--next-token", token]));
    assert_eq!(second["events"][0]["id"], 3);
    let last = object(&sfn(&["executions", "history", &arn, "--store", s(&store), "--max", "1", "--reverse"]));
    assert_eq!(last["events"][0]["type"], "ExecutionSucceeded");

    let d = object(&sfn(&["executions", "describe", &arn, "--store", s(&store)]));
    assert_eq!(d["executionArn"], arn);
    assert_eq!(d["stateMachineArn"], "arn:aws:states:us-east-1:123456789012:stateMachine:selective-checkpointing");
    assert_eq!(
        (d["name"].as_str(), d["status"].as_str(), d["input"].as_str()),
        (Some("order-1"), Some("SUCCEEDED"), Some("{}"))
    );
    let output: Json = serde_json::from_str(d["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, v["output"]);
    let (start, stop) = (d["startDate"].as_f64().unwrap(), d["stopDate"].as_f64().unwrap());
    assert!(start > 1.6e9 && stop >= start && stop - start < 60.0, "epoch seconds: {start} {stop}");
    assert!(d.get("error").is_none());

    // A closed execution's name cannot be used again (StartExecution's rule).
    let o = sfn(&["run", PARENT, "--store", s(&store), "--execution-name", "order-1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ExecutionAlreadyExists"), "{}", stderr(&o));

    let listed = lines(&sfn(&["executions", "list", "--store", s(&store)]));
    assert_eq!(listed.len(), 1, "the Express child keeps no record: {listed:?}");
    assert_eq!(listed[0]["status"], "SUCCEEDED");
    assert!(lines(&sfn(&["executions", "list", "--status", "RUNNING", "--store", s(&store)])).is_empty());
}

#[test]
fn selective_checkpointing_rejected_approval_notifies_the_failure() {
    let store = scratch("rejected").join("store");
    let arn = start_checkpointing(&store);
    let token = receive_token(&store, "Order Request received");
    let v = object(&sfn(&[
        "task",
        "failure",
        &token,
        "--error",
        "Rejected",
        "--cause",
        "out of stock",
        "--store",
        s(&store),
    ]));
    assert_eq!(v["status"], "SUCCEEDED", "the catcher notified and ended: {v}");
    assert_eq!(v["executionArn"], arn);
    assert_eq!(topic_messages(&store), ["Order not approved. Order failed."]);
    let types = history_types(&store, &arn);
    assert_eq!(types[4..6], ["TaskSubmitted", "TaskFailed"], "{types:?}");
    assert_eq!(types.last().unwrap(), "ExecutionSucceeded");
}

#[test]
fn a_heartbeat_keeps_the_execution_waiting() {
    let store = scratch("heartbeat").join("store");
    let arn = start_checkpointing(&store);
    let token = receive_token(&store, "Order Request received");
    let v = object(&sfn(&["task", "heartbeat", &token, "--store", s(&store)]));
    assert_eq!(v, json!({"status": "RUNNING", "executionArn": arn, "waitingForCallback": true, "store": s(&store)}));
    let v = object(&sfn(&["task", "success", &token, "--output", "{}", "--store", s(&store)]));
    assert_eq!(v["status"], "RUNNING", "the same token still answers the task: {v}");

    // A task with HeartbeatSeconds: its deadline is a timer, which would keep `run` until
    // it fires; --max-sleep 0 hands over at once, and `task heartbeat` does by default.
    let dir = scratch("heartbeat-deadline");
    let def = dir.join("ask.asl.json");
    std::fs::write(
        &def,
        r#"{"StartAt":"Ask","States":{"Ask":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage.waitForTaskToken",
          "HeartbeatSeconds":600,"Parameters":{"QueueUrl":"Asks","MessageBody":{"TaskToken.$":"$$.Task.Token"}},"End":true}}}"#,
    )
    .unwrap();
    let store = dir.join("store");
    let v = object(&sfn(&["run", s(&def), "--store", s(&store), "--queue", "Asks", "--max-sleep", "0"]));
    assert_eq!((v["status"].as_str(), v["waitingForCallback"].as_bool()), (Some("RUNNING"), Some(true)), "{v}");
    let deadline = v["nextTimer"].as_f64().expect("the heartbeat deadline");
    let m = lines(&sfn(&["queue", "receive", "Asks", "--store", s(&store)]));
    let body: Json = serde_json::from_str(m[0]["Body"].as_str().unwrap()).unwrap();
    let token = body["TaskToken"].as_str().unwrap();
    let v = object(&sfn(&["task", "heartbeat", token, "--store", s(&store)]));
    assert_eq!(v["status"], "RUNNING");
    // (The shard's gauge may still name the old deadline: a timer entry re-armed later
    // stays in its heap until it is due.)
    assert!(v["nextTimer"].as_f64().unwrap() >= deadline, "{v}");
    let v = object(&sfn(&["task", "success", token, "--output", r#""ok""#, "--store", s(&store)]));
    assert_eq!((v["status"].as_str(), v["output"].as_str()), (Some("SUCCEEDED"), Some("ok")), "{v}");
}

#[test]
fn errors_name_aws_errors_and_exit_1_or_exit_2_for_unusable_stores() {
    let dir = scratch("errors");
    let store = dir.join("store");
    let missing = dir.join("missing");
    // `task` on a directory that does not exist, or that no `run` set up: exit 2, said why.
    let o = sfn(&["task", "success", "tok", "--output", "{}", "--store", s(&missing)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no store in") && stderr(&o).contains("does not exist"), "{}", stderr(&o));
    assert!(!missing.exists(), "nothing created");
    object(&sfn(&["queue", "create", QUEUE, "--store", s(&store)]));
    let o = sfn(&["task", "heartbeat", "tok", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("sfn-cli.json is missing"), "{}", stderr(&o));
    let o = sfn(&["task", "success", "tok", "--output", "{}"]);
    assert_eq!(o.status.code(), Some(2), "--store is required");

    // A run whose definitions the engine refuses leaves no setup behind.
    let bad = dir.join("bad.asl.json");
    std::fs::write(&bad, r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}"#).unwrap();
    let o = sfn(&["run", s(&bad), "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/States/A/Next"), "{}", stderr(&o));
    assert!(!store.join("sfn-cli.json").exists());
    for args in [["--machine", "NoFile"], ["--lambda", "=cat"]] {
        let o = sfn(&["run", PARENT, "--store", s(&store), args[0], args[1]]);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("expected NAME="), "{}", stderr(&o));
    }

    // An unknown token on a store in use.
    start_checkpointing(&store);
    let o = sfn(&["task", "success", "no-such-token", "--output", "{}", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("sfn task: TaskDoesNotExist"), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    // Tokens are base64url: one may start with '-' and is still a token, not an option.
    let o = sfn(&["task", "heartbeat", "-no-such-token", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("TaskDoesNotExist"), "{}", stderr(&o));
    let token = receive_token(&store, "Order Request received");
    let o = sfn(&["task", "success", &token, "--output", "{not json", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("InvalidOutput"), "{}", stderr(&o));

    let o = sfn(&["queue", "receive", "Nope", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("QueueDoesNotExist"), "{}", stderr(&o));
    let o = sfn(&["topic", "tail", "Nope", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("NotFound"), "{}", stderr(&o));
    let o =
        sfn(&["executions", "describe", "arn:aws:states:us-east-1:123456789012:execution:x:y", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("ExecutionDoesNotExist"), "{}", stderr(&o));
    let o = sfn(&["executions", "list", "--status", "DONE", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(2));
    let o = sfn(&["executions", "list", "--store", s(&missing)]);
    assert_eq!(o.status.code(), Some(2));

    // The execution still waits, untouched by all of that.
    let v = object(&sfn(&["task", "success", &token, "--output", "{}", "--store", s(&store)]));
    assert_eq!(v["status"], "RUNNING");
    // Starting a running execution's name again with the same input reports on it.
    let again = sfn(&["run", PARENT, "--store", s(&store), "--execution-name", "order-1"]);
    assert_eq!(object(&again)["status"], "RUNNING");
}

#[test]
fn waits_sleep_or_skip_and_max_sleep_hands_over_to_resume() {
    let dir = scratch("waits");
    let def = dir.join("wait.asl.json");
    std::fs::write(
        &def,
        r#"{"StartAt":"Hour","States":{
          "Hour":{"Type":"Wait","Seconds":3600,"Next":"Short"},
          "Short":{"Type":"Wait","Seconds":1,"Next":"Done"},
          "Done":{"Type":"Pass","Result":{"done":true},"End":true}}}"#,
    )
    .unwrap();
    // --wait-scale 0 skips the hour on the engine too, and a later process keeps the
    // clock where it was (the history never goes backwards).
    let store = dir.join("skip");
    let v = object(&sfn(&["run", s(&def), "--store", s(&store), "--wait-scale", "0"]));
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"], json!({"done": true}));
    let arn = v["executionArn"].as_str().unwrap();
    let h = object(&sfn(&["executions", "history", arn, "--store", s(&store)]));
    let at = |ty: &str| {
        h["events"].as_array().unwrap().iter().find(|e| e["type"] == ty).unwrap()["timestamp"].as_f64().unwrap()
    };
    assert!(at("ExecutionSucceeded") - at("ExecutionStarted") >= 3601.0, "{h}");

    // --max-sleep: the process does not wait an hour; `resume` carries on (here with the
    // rest of the wait skipped).
    let store = dir.join("handover");
    let started = Instant::now();
    let v = object(&sfn(&["run", s(&def), "--store", s(&store), "--max-sleep", "0.2"]));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(v["status"], "RUNNING");
    assert_eq!(v["waitingForCallback"], false, "only a timer is pending: {v}");
    assert!(v["nextTimer"].as_f64().unwrap() > 1.6e9, "{v}");
    let setup: Json = serde_json::from_slice(&std::fs::read(store.join("sfn-cli.json")).unwrap()).unwrap();
    assert_eq!((setup["format"].as_u64(), setup["machines"][0]["name"].as_str()), (Some(1), Some("wait")));
    let v = object(&sfn(&["resume", "--store", s(&store), "--wait-scale", "0"]));
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"], json!({"done": true}));
    let o = sfn(&["resume", "--store", s(&store)]);
    assert_eq!(o.status.code(), Some(1), "nothing left to resume");

    // A one-second Wait in real time keeps the process until it has passed.
    let short = dir.join("short.asl.json");
    std::fs::write(&short, r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"End":true}}}"#).unwrap();
    let started = Instant::now();
    let v = object(&sfn(&["run", s(&short), "--store", s(&dir.join("real"))]));
    assert_eq!(v["status"], "SUCCEEDED");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn lambda_commands_answer_lambda_invoke_and_temporary_stores_are_removed() {
    let dir = scratch("lambda");
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let input = dir.join("in.json");
    std::fs::write(&input, r#"{"n": 2}"#).unwrap();
    let def = dir.join("double.asl.json");
    std::fs::write(
        &def,
        r#"{"StartAt":"Double","States":{"Double":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
          "Parameters":{"FunctionName":"double","Payload.$":"$"},"OutputPath":"$.Payload","End":true}}}"#,
    )
    .unwrap();
    let double = r#"double=python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"n": d["n"] * 2}))'"#;
    for ty in ["standard", "express"] {
        let v = object(&sfn_with_tmp(&tmp, &["run", s(&def), "--type", ty, "--input", s(&input), "--lambda", double]));
        assert_eq!(v["status"], "SUCCEEDED", "{ty}: {v}");
        assert_eq!(v["output"], json!({"n": 4}));
        let kind = if ty == "express" { ":express:double:" } else { ":execution:double:" };
        assert!(v["executionArn"].as_str().unwrap().contains(kind), "{v}");
    }
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "the temporary stores are gone");

    // A failing command fails the task with errorType Error and its stderr.
    let v = object(&sfn(&["run", s(&def), "--lambda", "double=echo no doubling today >&2; exit 3"]));
    assert_eq!(v["status"], "FAILED");
    assert_eq!(v["error"], "Error");
    let cause: Json = serde_json::from_str(v["cause"].as_str().unwrap()).unwrap();
    assert_eq!(
        (cause["errorType"].as_str(), cause["errorMessage"].as_str()),
        (Some("Error"), Some("no doubling today"))
    );

    // Without --lambda (and without mocks) the engine still runs it: no such function.
    let v = object(&sfn(&["run", s(&def)]));
    assert_eq!(v["error"], "Lambda.ResourceNotFoundException", "{v}");
    // With mocks and nothing else, the local driver answers from them as before.
    let mocks = dir.join("mocks.json");
    std::fs::write(&mocks, r#"{"Double": [{"Return": {"Payload": {"n": 9}}}]}"#).unwrap();
    let o = sfn(&["run", s(&def), "--mocks", s(&mocks)]);
    assert_eq!(stdout(&o).trim(), r#"{"status":"SUCCEEDED","output":{"n":9}}"#);
}

#[test]
fn a_parent_waiting_on_a_standard_child_parks_instead_of_hanging() {
    let dir = scratch("nested");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let parent = write(
        "parent.asl.json",
        r#"{"StartAt":"Child","States":{"Child":{"Type":"Task","Resource":"arn:aws:states:::states:startExecution.sync:2",
          "Parameters":{"StateMachineArn":"arn:aws:states:us-east-1:123456789012:stateMachine:Child",
            "Input":{"n":1,"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$":"$$.Execution.Id"}},
          "OutputPath":"$.Output","End":true}}}"#,
    );
    let quick = write("quick.asl.json", r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#);
    let asking = write(
        "asking.asl.json",
        r#"{"StartAt":"Ask","States":{"Ask":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage.waitForTaskToken",
          "Parameters":{"QueueUrl":"Q","MessageBody":{"TaskToken.$":"$$.Task.Token"}},"End":true}}}"#,
    );
    // A Standard child that ends at once: one process runs both.
    let child = format!("Child={}:standard", s(&quick));
    let v = object(&sfn(&["run", s(&parent), "--store", s(&dir.join("quick")), "--machine", &child]));
    assert_eq!(v["status"], "SUCCEEDED", "{v}");
    assert_eq!(v["output"]["n"], 1);
    // One that waits for a callback: the parent's watch on it does not keep the process.
    let store = dir.join("asking");
    let child = format!("Child={}:standard", s(&asking));
    let v = object(&sfn(&["run", s(&parent), "--store", s(&store), "--queue", "Q", "--machine", &child]));
    assert_eq!((v["status"].as_str(), v["waitingForCallback"].as_bool()), (Some("RUNNING"), Some(true)), "{v}");
    let running = lines(&sfn(&["executions", "list", "--status", "RUNNING", "--store", s(&store)]));
    assert_eq!(running.len(), 2, "parent and child: {running:?}");
}
