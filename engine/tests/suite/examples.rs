//! The example workflows (`examples/`) end to end: rider-photo with its Step Functions Local
//! mock file (every test case) and with registered inline handlers, in JSONPath and in
//! JSONata (the same outputs); the selective-checkpointing
//! Standard parent with handlers for its queue, topic and nested Express child, approvals
//! delivered through the callback API.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bumpalo::Bump;
use serde_json::{json, Value as Json};
use sfn::clock::{Clock, ManualClock};
use sfn::compile::Bindings;
use sfn::handlers::{Handler, Registry, TaskError};
use sfn::local::{run_to_completion, RunOptions, Status};
use sfn::mocks::parse_mocks;
use sfn::program::Program;
use sfn::validate::MachineType;
use sfn::value::parse_json;
use sfn::vm::{Exec, ExecMeta, Outcome, Poll};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(example(name)).unwrap()
}

fn rider_input() -> Json {
    serde_json::from_slice(&read("rider-photo.input.json")).unwrap()
}

/// The rider-photo workflow in both query languages.
const RIDER: [&str; 2] = ["rider-photo.express.asl.json", "rider-photo-jsonata.express.asl.json"];

fn run_rider(definition: &str, bindings: Bindings<'_>) -> (Status, Json) {
    let prog = sfn::load(&read(definition), MachineType::Express, bindings).unwrap();
    let clock = ManualClock::fixed();
    let meta = ExecMeta::local("RiderPhotoProcessingExpress", "run-1", MachineType::Express, clock.now());
    let r = run_to_completion(&prog, &read("rider-photo.input.json"), &RunOptions { clock: &clock, meta, seed: 1 })
        .unwrap();
    let out = r.output.as_deref().map_or(Json::Null, |o| serde_json::from_str(o).unwrap());
    (r.status, out)
}

#[test]
fn rider_photo_runs_every_mock_test_case() {
    let mocks: Json = serde_json::from_slice(&read("rider-photo.mocks.json")).unwrap();
    for definition in RIDER {
        let happy = parse_mocks(&mocks, None, Some("HappyPath")).unwrap();
        let (status, out) = run_rider(definition, Bindings { handlers: None, mocks: Some(&happy) });
        let mut expected = rider_input();
        expected["detectedFaceDetails"] =
            json!({"BoundingBox": {"Width": 0.31, "Height": 0.42, "Left": 0.35, "Top": 0.21}, "Confidence": 99.98});
        expected["parallelResult"] = json!([
            "a1b2c3d4-face-id",
            {"thumbnail": {"s3key": "resized-1_happy_face.jpg", "s3bucket": "thumbnails"}}
        ]);
        // Compared as text too: key order is part of the output users see.
        assert_eq!(out.to_string(), expected.to_string(), "{definition}");
        assert_eq!((status, out), (Status::Succeeded, expected), "{definition}");

        // Both error paths end in the notification task, whose result is the output.
        for case in ["DuplicateFace", "NoFace"] {
            let set = parse_mocks(&mocks, Some("RiderPhotoProcessingExpress"), Some(case)).unwrap();
            let (status, out) = run_rider(definition, Bindings { handlers: None, mocks: Some(&set) });
            assert_eq!((status, out), (Status::Succeeded, json!({"notified": true})), "{definition} {case}");
        }
    }
}

#[test]
fn rider_photo_runs_with_registered_handlers() {
    let fn_arn = |name: &str| format!("arn:aws:lambda:us-west-2:012345678912:function:wild-ryde-step-module-{name}");
    let notified = Arc::new(Mutex::new(Vec::<Json>::new()));
    let build = |duplicate: bool| {
        let mut reg = Registry::new();
        reg.register(
            fn_arn("FaceDetectionFunction-4AYSKX2EGPV0"),
            Handler::sync_json(|_, input| {
                assert_eq!(input["s3Key"], "1_happy_face.jpg");
                Ok(json!({"Confidence": 99.9}))
            }),
        );
        reg.register(
            fn_arn("FaceSearchFunction-1IT67V4J214DC"),
            Handler::sync_json(move |_, _| {
                if duplicate {
                    Err(TaskError::new("FaceAlreadyExistsError", "Face in the picture is already in the system."))
                } else {
                    Ok(json!({"duplicate": false}))
                }
            }),
        );
        reg.register(fn_arn("IndexFaceFunction-15658V8WUI67V"), Handler::sync_json(|_, _| Ok(json!("face-123"))));
        reg.register(
            fn_arn("ThumbnailFunction-A30TCJMIG0U8"),
            Handler::sync_json(|_, _| Ok(json!({"thumbnail": "t.jpg"}))),
        );
        reg.register(
            fn_arn("PersistMetadataFunction-9PDCT2DT7K70"),
            Handler::sync_json(|_, _| Ok(json!({"ok": true}))),
        );
        let seen = notified.clone();
        reg.register(
            fn_arn("NotificationPlaceholderFunct-CDRLZC8BRFWP"),
            Handler::sync_json(move |_, input| {
                seen.lock().unwrap().push(input);
                Ok(json!({"notified": true}))
            }),
        );
        reg
    };

    let mut outputs = Vec::new();
    for definition in RIDER {
        let reg = build(false);
        let (status, out) = run_rider(definition, Bindings { handlers: Some(&reg), mocks: None });
        assert_eq!(status, Status::Succeeded, "{definition}");
        assert_eq!(out["detectedFaceDetails"], json!({"Confidence": 99.9}));
        assert_eq!(out["parallelResult"], json!(["face-123", {"thumbnail": "t.jpg"}]));
        assert!(notified.lock().unwrap().is_empty());
        outputs.push(out.to_string());

        let reg = build(true);
        let (status, out) = run_rider(definition, Bindings { handlers: Some(&reg), mocks: None });
        assert_eq!((status, out), (Status::Succeeded, json!({"notified": true})), "{definition}");
        let mut seen = notified.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            seen[0]["errorInfo"],
            json!({"Error": "FaceAlreadyExistsError", "Cause": "Face in the picture is already in the system."}),
            "{definition}: the caught error is placed at errorInfo"
        );
        outputs.push(seen.pop().unwrap().to_string());
    }
    // JSONata and JSONPath give byte-identical outputs and notification inputs.
    assert_eq!(outputs[0..2], outputs[2..4]);
}

/// The selective-checkpointing pattern: a Standard parent pauses twice for a human (task
/// tokens sent to a queue), publishes to a topic, and runs the Express child synchronously.
struct Checkpointing {
    prog: Program,
    queue: Arc<Mutex<Vec<Json>>>,
    topic: Arc<Mutex<Vec<String>>>,
    child_updates: Arc<Mutex<Vec<String>>>,
}

fn checkpointing() -> Checkpointing {
    let queue = Arc::new(Mutex::new(Vec::new()));
    let topic = Arc::new(Mutex::new(Vec::new()));
    let child_updates = Arc::new(Mutex::new(Vec::new()));

    // The Express child: its four lambda:invoke updates go to one handler.
    let mut child_reg = Registry::new();
    let updates = child_updates.clone();
    child_reg.register(
        "arn:aws:states:::lambda:invoke",
        Handler::sync_json(move |_, input| {
            updates.lock().unwrap().push(input["Payload"]["Message"].as_str().unwrap().to_owned());
            Ok(json!({"StatusCode": 200, "Payload": {"updated": true}}))
        }),
    );
    let child = Arc::new(
        sfn::load(
            &read("selective-checkpointing.express-child.asl.json"),
            MachineType::Express,
            Bindings { handlers: Some(&child_reg), mocks: None },
        )
        .unwrap(),
    );

    let mut reg = Registry::new();
    let q = queue.clone();
    reg.register(
        "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        Handler::sync_json(move |_, input| {
            q.lock().unwrap().push(input["MessageBody"].clone());
            Ok(json!({"MessageId": "m"}))
        }),
    );
    let t = topic.clone();
    reg.register(
        "arn:aws:states:::sns:publish",
        Handler::sync_json(move |_, input| {
            t.lock().unwrap().push(input["Message"].as_str().unwrap().to_owned());
            Ok(json!({"MessageId": "n"}))
        }),
    );
    reg.register(
        "arn:aws:states:::states:startExecution.sync",
        Handler::sync_json(move |ctx, input| {
            assert_eq!(
                input["StateMachineArn"],
                "arn:aws:states:us-east-1:123456789012:stateMachine:Checkpoint-UpdateDatabaseExpress"
            );
            assert_eq!(input["Input"]["AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID"], ctx.execution_arn);
            let clock = ManualClock::fixed();
            let meta = ExecMeta::local("Checkpoint-UpdateDatabaseExpress", "child", MachineType::Express, clock.now());
            let child_input = serde_json::to_vec(&input["Input"]).unwrap();
            let r = run_to_completion(&child, &child_input, &RunOptions { clock: &clock, meta, seed: 2 }).unwrap();
            if r.status != Status::Succeeded {
                return Err(TaskError::new("States.TaskFailed", format!("child {:?}", r.error)));
            }
            Ok(json!({"Status": "SUCCEEDED", "Output": r.output}))
        }),
    );
    let prog = sfn::load(
        &read("selective-checkpointing.standard.asl.json"),
        MachineType::Standard,
        Bindings { handlers: Some(&reg), mocks: None },
    )
    .unwrap();
    Checkpointing { prog, queue, topic, child_updates }
}

/// Runs the parent, answering each approval request in turn with `answers`; returns the
/// final status and error.
fn run_checkpointing(c: &Checkpointing, answers: &[bool]) -> (&'static str, Option<String>) {
    let clock = ManualClock::fixed();
    let bump = Bump::new();
    let input = parse_json(&bump, br#"{"orderId":"o-1"}"#).unwrap();
    let meta = ExecMeta::local("Checkpoint", "order-1", MachineType::Standard, clock.now());
    let mut exec = Exec::new(&c.prog, &bump, input, &meta, 9);
    let mut next = answers.iter();
    loop {
        match exec.run(&clock, u32::MAX) {
            Poll::Finished => break,
            Poll::Blocked { .. } => {
                let token = exec.waiting_tokens()[0].to_owned();
                let body = c.queue.lock().unwrap().last().cloned().unwrap();
                assert_eq!(body["TaskToken"], token, "the queued message carries the task token");
                if *next.next().expect("more approvals requested than answered") {
                    exec.send_task_success(&token, br#"{"approved":true}"#).unwrap();
                } else {
                    exec.send_task_failure(&token, "Rejected", Some("declined by the approver")).unwrap();
                }
            }
            Poll::Yielded => {}
        }
    }
    match exec.outcome().unwrap() {
        Outcome::Succeeded(_) => ("SUCCEEDED", None),
        Outcome::Failed(f) => ("FAILED", f.error.map(str::to_owned)),
        Outcome::TimedOut(f) => ("TIMED_OUT", f.error.map(str::to_owned)),
    }
}

#[test]
fn selective_checkpointing_runs_end_to_end() {
    let c = checkpointing();
    assert_eq!(run_checkpointing(&c, &[true, true]), ("SUCCEEDED", None));
    assert_eq!(
        *c.topic.lock().unwrap(),
        vec![
            "Order has been approved. Resuming workflow.",
            "Payment processing succeeded. Resuming workflow.",
            "Order and payment received, database is updated and the package is ready to ship."
        ]
    );
    assert_eq!(
        *c.child_updates.lock().unwrap(),
        vec!["Update order history.", "Update data warehouse.", "Update customer profile.", "Update inventory."]
    );
    assert_eq!(c.queue.lock().unwrap().len(), 2);
}

#[test]
fn selective_checkpointing_rejected_approval_notifies_failure() {
    let c = checkpointing();
    assert_eq!(run_checkpointing(&c, &[false]), ("SUCCEEDED", None));
    assert_eq!(*c.topic.lock().unwrap(), vec!["Order not approved. Order failed."]);
    assert!(c.child_updates.lock().unwrap().is_empty());

    let c = checkpointing();
    run_checkpointing(&c, &[true, false]);
    assert_eq!(
        *c.topic.lock().unwrap(),
        vec!["Order has been approved. Resuming workflow.", "Payment processing failed."]
    );
}
