//! The VM's semantics on virtual time: Retry back-off and its timings, Catch matching,
//! Parallel/Map scheduling and failure propagation, Wait and timeouts, callbacks, variable
//! scoping, the context object, AWS's event ids in causes. Each test builds a small
//! definition, runs it on a `ManualClock`, and checks the outcome (and, where time matters,
//! the virtual time at which things happened).

use std::sync::{Arc, Mutex};

use bumpalo::Bump;
use serde_json::{json, Value as Json};
use sfn::clock::{Clock, ManualClock, NANOS_PER_SEC};
use sfn::compile::Bindings;
use sfn::handlers::{Handler, Registry, TaskError};
use sfn::local::{run_to_completion, RunOptions, RunResult, Status};
use sfn::program::Program;
use sfn::validate::MachineType;
use sfn::value::{parse_json, Value};
use sfn::vm::{CallbackError, Exec, ExecMeta, Outcome, Poll};

fn compile(def: &Json, registry: &Registry) -> Program {
    let text = serde_json::to_vec(def).unwrap();
    sfn::load(&text, MachineType::Standard, Bindings { handlers: Some(registry), mocks: None })
        .unwrap_or_else(|d| panic!("invalid test definition: {d:?}"))
}

fn meta(clock: &ManualClock) -> ExecMeta {
    ExecMeta::local("TestMachine", "test-execution", MachineType::Standard, clock.now())
}

fn run(def: &Json, input: &Json, registry: &Registry, clock: &ManualClock) -> RunResult {
    let prog = compile(def, registry);
    let input = serde_json::to_vec(input).unwrap();
    run_to_completion(&prog, &input, &RunOptions { clock, meta: meta(clock), seed: 1 }).unwrap()
}

fn output(r: &RunResult) -> Json {
    assert_eq!(r.status, Status::Succeeded, "{r:?}");
    serde_json::from_str(r.output.as_deref().unwrap()).unwrap()
}

/// A handler that fails `failures` times with `error`, then returns `{"ok": true}`, and
/// records the virtual time (seconds since the clock's start) of every call.
fn flaky(failures: usize, error: &'static str, clock: Arc<ManualClock>, calls: Arc<Mutex<Vec<f64>>>) -> Handler {
    let start = clock.now();
    Handler::sync_json(move |_, _| {
        let mut c = calls.lock().unwrap();
        c.push((clock.now() - start) as f64 / NANOS_PER_SEC as f64);
        if c.len() <= failures {
            Err(TaskError::new(error, "it failed"))
        } else {
            Ok(json!({"ok": true}))
        }
    })
}

const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:f";

#[test]
fn retry_backoff_follows_interval_rate_and_cap() {
    let clock = Arc::new(ManualClock::fixed());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::new();
    reg.register(FN, flaky(4, "Boom", clock.clone(), calls.clone()));
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true,
        "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 5, "MaxDelaySeconds": 10}]}}});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!(output(&r), json!({"ok": true}));
    // Delays 2, 6, 18→10 (capped), 54→10: calls at 0, 2, 8, 18, 28.
    assert_eq!(*calls.lock().unwrap(), vec![0.0, 2.0, 8.0, 18.0, 28.0]);
}

#[test]
fn retry_attempts_exhausted_then_caught_and_later_retriers_not_tried() {
    let clock = Arc::new(ManualClock::fixed());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::new();
    reg.register(FN, flaky(10, "Boom", clock.clone(), calls.clone()));
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN, "End": true,
              "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 2},
                        {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5}],
              "Catch": [{"ErrorEquals": ["Boom"], "ResultPath": "$.err", "Next": "Caught"}]},
        "Caught": {"Type": "Pass", "End": true}}});
    let r = run(&def, &json!({"in": 1}), &reg, &clock);
    assert_eq!(output(&r), json!({"in": 1, "err": {"Error": "Boom", "Cause": "it failed"}}));
    assert_eq!(calls.lock().unwrap().len(), 3, "first attempt + 2 retries of the first matching retrier");
}

#[test]
fn full_jitter_keeps_delays_within_the_computed_delay() {
    let clock = Arc::new(ManualClock::fixed());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::new();
    reg.register(FN, flaky(3, "Boom", clock.clone(), calls.clone()));
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 4, "BackoffRate": 2, "MaxAttempts": 3, "JitterStrategy": "FULL"}]}}});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!(r.status, Status::Succeeded);
    let c = calls.lock().unwrap();
    let gaps: Vec<f64> = c.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, max) in gaps.iter().zip([4.0, 8.0, 16.0]) {
        assert!(*gap >= 0.0 && *gap <= max, "gap {gap} beyond {max}: {gaps:?}");
    }
    assert!(gaps.iter().any(|g| *g != 4.0 && *g != 8.0 && *g != 16.0), "jitter should change the delays: {gaps:?}");
}

#[test]
fn max_attempts_zero_never_retries() {
    let clock = Arc::new(ManualClock::fixed());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::new();
    reg.register(FN, flaky(10, "Boom", clock.clone(), calls.clone()));
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true,
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}]}}});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!((r.status, r.error.as_deref(), r.cause.as_deref()), (Status::Failed, Some("Boom"), Some("it failed")));
    assert_eq!(calls.lock().unwrap().len(), 1);
}

#[test]
fn task_failed_wildcard_skips_timeouts_and_nothing_catches_runtime() {
    let clock = Arc::new(ManualClock::fixed());
    let mut reg = Registry::new();
    reg.register(FN, Handler::sync_json(|_, _| Err(TaskError { error: "States.Timeout".into(), cause: None })));
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN, "End": true,
              "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "TF"}, {"ErrorEquals": ["States.ALL"], "Next": "All"}]},
        "TF": {"Type": "Pass", "Result": "task-failed", "End": true},
        "All": {"Type": "Pass", "Result": "all", "End": true}}});
    assert_eq!(output(&run(&def, &json!({}), &reg, &clock)), json!("all"));

    // States.Runtime (here: OutputPath on a missing field) is never caught, not even by name.
    let mut reg = Registry::new();
    reg.register(FN, Handler::sync_json(|_, _| Ok(json!({}))));
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN, "OutputPath": "$.missing", "End": true,
              "Catch": [{"ErrorEquals": ["States.Runtime"], "Next": "C"}, {"ErrorEquals": ["States.ALL"], "Next": "C"}]},
        "C": {"Type": "Pass", "End": true}}});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert_eq!(
        r.cause.as_deref(),
        Some("An error occurred while executing the state 'T' (entered at the event id #2). Invalid path '$.missing' : No results for path: $['missing']")
    );
}

#[test]
fn event_ids_in_causes_count_aws_history_events() {
    let clock = Arc::new(ManualClock::fixed());
    let mut reg = Registry::new();
    reg.register(FN, Handler::sync_json(|_, _| Ok(json!({}))));
    // ExecutionStarted #1; Task entered #2, scheduled #3, started #4, succeeded #5, exited #6;
    // Pass entered #7, exited #8; Wait entered #9.
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": FN, "Next": "P"},
        "P": {"Type": "Pass", "Next": "W"},
        "W": {"Type": "Wait", "SecondsPath": "$.nope", "End": true}}});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!(
        r.cause.as_deref(),
        Some("An error occurred while executing the state 'W' (entered at the event id #9). The SecondsPath parameter does not reference an input value: $.nope")
    );
}

#[test]
fn parallel_keeps_branch_order_and_a_failed_branch_stops_the_others() {
    let clock = Arc::new(ManualClock::fixed());
    let reg = Registry::new();
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "Next": "A"}, "A": {"Type": "Pass", "Result": "slow", "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "fast", "End": true}}}]}}});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!(output(&r), json!(["slow", "fast"]));

    let clock = Arc::new(ManualClock::fixed());
    let start = clock.now();
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
        "Catch": [{"ErrorEquals": ["Bad"], "ResultPath": "$.error", "Next": "Done"}], "Branches": [
        {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "Next": "Never"}, "Never": {"Type": "Fail", "Error": "NotMe"}}},
        {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Bad", "Cause": "branch 2"}}}]},
        "Done": {"Type": "Pass", "End": true}}});
    let r = run(&def, &json!({"x": 1}), &reg, &clock);
    assert_eq!(output(&r), json!({"x": 1, "error": {"Error": "Bad", "Cause": "branch 2"}}));
    assert_eq!(clock.now(), start, "the waiting branch was cancelled, not waited for");
}

#[test]
fn map_respects_max_concurrency_and_keeps_item_order() {
    let clock = Arc::new(ManualClock::fixed());
    let start = clock.now();
    let reg = Registry::new();
    // Each iteration waits 10 s: with MaxConcurrency 2 and 5 items that takes 30 s.
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 2, "End": true,
        "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value", "c.$": "$.constant"},
        "ItemsPath": "$.items",
        "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": true}}}}}});
    let r = run(&def, &json!({"items": ["a", "b", "c", "d", "e"], "constant": 7}), &reg, &clock);
    assert_eq!(
        output(&r),
        json!([{"i":0,"v":"a","c":7},{"i":1,"v":"b","c":7},{"i":2,"v":"c","c":7},{"i":3,"v":"d","c":7},{"i":4,"v":"e","c":7}])
    );
    assert_eq!((clock.now() - start) / NANOS_PER_SEC, 30);

    let clock = Arc::new(ManualClock::fixed());
    let start = clock.now();
    let unbounded = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true,
        "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": true}}}}}});
    run(&unbounded, &json!([1, 2, 3, 4, 5]), &reg, &clock);
    assert_eq!((clock.now() - start) / NANOS_PER_SEC, 10, "MaxConcurrency 0 runs all items at once");
}

#[test]
fn distributed_map_tolerates_failures_up_to_the_threshold() {
    let clock = Arc::new(ManualClock::fixed());
    let reg = Registry::new();
    let def = |count: u64| {
        json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "ToleratedFailureCount": count,
            "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "C", "States": {
                "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericGreaterThan": 2, "Next": "F"}], "Default": "OK"},
                "F": {"Type": "Fail", "Error": "TooBig", "Cause": "item"},
                "OK": {"Type": "Pass", "End": true}}}}}})
    };
    let r = run(&def(2), &json!([1, 2, 3, 4]), &reg, &clock);
    assert_eq!(output(&r), json!([1, 2, {"Error": "TooBig", "Cause": "item"}, {"Error": "TooBig", "Cause": "item"}]));
    let r = run(&def(1), &json!([1, 2, 3, 4]), &reg, &clock);
    assert_eq!(r.error.as_deref(), Some("States.ExceedToleratedFailureThreshold"));
}

#[test]
fn wait_states_sleep_on_the_clock() {
    let clock = Arc::new(ManualClock::fixed());
    let start = clock.now();
    let reg = Registry::new();
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Wait", "Seconds": 5, "Next": "B"},
        "B": {"Type": "Wait", "SecondsPath": "$.s", "Next": "C"},
        "C": {"Type": "Wait", "Timestamp": "2000-01-01T00:00:00Z", "Next": "D"},
        "D": {"Type": "Wait", "TimestampPath": "$.t", "End": true}}});
    let until = sfn::timestamp::Timestamp::from_unix_nanos((start + 100 * NANOS_PER_SEC) as i128).format_iso_millis();
    let r = run(&def, &json!({"s": 7, "t": until}), &reg, &clock);
    assert_eq!(r.status, Status::Succeeded);
    assert_eq!((clock.now() - start) / NANOS_PER_SEC, 100, "5 + 7, the past timestamp does not wait, then until +100");
}

#[test]
fn execution_timeout_ends_timed_out_at_the_deadline() {
    let clock = Arc::new(ManualClock::fixed());
    let start = clock.now();
    let reg = Registry::new();
    let def =
        json!({"StartAt": "W", "TimeoutSeconds": 300, "States": {"W": {"Type": "Wait", "Seconds": 301, "End": true}}});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!(r.status, Status::TimedOut);
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
    assert_eq!(clock.now() - start, 300 * NANOS_PER_SEC);
}

/// Drives an execution by hand: runs, and between runs lets `step` act (answer calls,
/// send callbacks, advance time). Returns the outcome as a RunResult-like tuple.
fn drive(
    prog: &Program,
    input: &str,
    clock: &ManualClock,
    mut step: impl FnMut(&mut Exec<'_>, Poll),
) -> (String, Option<String>, Option<String>) {
    let bump = Bump::new();
    let input = parse_json(&bump, input.as_bytes()).unwrap();
    let meta = meta(clock);
    let mut exec = Exec::new(prog, &bump, input, &meta, 3);
    for _ in 0..1000 {
        let p = exec.run(clock, u32::MAX);
        if p == Poll::Finished {
            break;
        }
        step(&mut exec, p);
    }
    match exec.outcome().expect("finished") {
        Outcome::Succeeded(v) => ("SUCCEEDED".into(), Some(v.to_json_string()), None),
        Outcome::Failed(f) => ("FAILED".into(), f.error.map(Into::into), f.cause.map(Into::into)),
        Outcome::TimedOut(f) => ("TIMED_OUT".into(), f.error.map(Into::into), f.cause.map(Into::into)),
    }
}

#[test]
fn async_handlers_suspend_and_time_out() {
    let clock = ManualClock::fixed();
    let mut reg = Registry::new();
    reg.register(FN, Handler::future(|_, input| async move { Ok(json!({"echo": input})) }));
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "TimeoutSeconds": 30, "End": true,
        "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "Late"}]}, "Late": {"Type": "Pass", "Result": "late", "End": true}}});
    let prog = compile(&def, &reg);
    // Answered: the result arrives through complete_task.
    let out = drive(&prog, r#"{"a":1}"#, &clock, |exec, _| {
        for call in exec.take_async_calls() {
            let answer = sfn::local::block_on(call.handler.call(call.ctx, call.input));
            exec.complete_task(call.id, answer);
        }
    });
    assert_eq!(out, ("SUCCEEDED".into(), Some(r#"{"echo":{"a":1}}"#.into()), None));
    // Never answered: the task times out at exactly 30 s, and a late answer is ignored.
    let start = clock.now();
    let mut pending = Vec::new();
    let out = drive(&prog, "{}", &clock, |exec, p| {
        pending.extend(exec.take_async_calls().into_iter().map(|c| c.id));
        if let Poll::Blocked { wake_at: Some(t) } = p {
            assert_eq!(t - start, 30 * NANOS_PER_SEC);
            clock.sleep_until(t);
        }
    });
    assert_eq!(out, ("SUCCEEDED".into(), Some(r#""late""#.into()), None));
}

#[test]
fn an_uncaught_heartbeat_timeout_ends_the_execution_in_the_same_run() {
    // The timeout fires while the VM wakes its timers; the execution must report Finished
    // then, not Blocked with nothing left to wait for.
    let clock = ManualClock::fixed();
    let mut reg = Registry::new();
    let send = "arn:aws:states:::sqs:sendMessage.waitForTaskToken";
    reg.register(send, Handler::sync_json(|_, _| Ok(json!({}))));
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": send, "HeartbeatSeconds": 10,
        "Parameters": {"token.$": "$$.Task.Token"}, "End": true}}});
    let prog = compile(&def, &reg);
    let mut polls = Vec::new();
    let out = drive(&prog, "{}", &clock, |_, p| {
        polls.push(p);
        if let Poll::Blocked { wake_at: Some(t) } = p {
            clock.sleep_until(t);
        }
    });
    assert_eq!(out.0, "FAILED");
    assert_eq!(out.1.as_deref(), Some("States.Timeout"));
    assert_eq!(polls.len(), 1, "one wait, then the run that ends it: {polls:?}");
}

#[test]
fn callbacks_complete_with_their_token_and_heartbeats_time_out() {
    let clock = ManualClock::fixed();
    let seen_tokens = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut reg = Registry::new();
    let tokens = seen_tokens.clone();
    let send = "arn:aws:states:::sqs:sendMessage.waitForTaskToken";
    reg.register(
        send,
        Handler::sync_json(move |ctx, input| {
            assert_eq!(input["token"].as_str(), ctx.task_token);
            tokens.lock().unwrap().push(ctx.task_token.unwrap().to_owned());
            Ok(json!({"MessageId": "m-1"}))
        }),
    );
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": send, "HeartbeatSeconds": 10, "TimeoutSeconds": 100,
        "Parameters": {"token.$": "$$.Task.Token"}, "End": true,
        "Catch": [{"ErrorEquals": ["States.HeartbeatTimeout"], "Next": "NoHeartbeat"}]},
        "NoHeartbeat": {"Type": "Pass", "Result": "no heartbeat", "End": true}}});
    let prog = compile(&def, &reg);

    let out = drive(&prog, "{}", &clock, |exec, _| {
        let token = exec.waiting_tokens()[0].to_owned();
        assert_eq!(exec.send_task_heartbeat("not-a-token", &clock), Err(CallbackError::TaskDoesNotExist));
        exec.send_task_success(&token, br#"{"approved":true}"#).unwrap();
        assert_eq!(
            exec.send_task_success(&token, b"{}"),
            Err(CallbackError::TaskDoesNotExist),
            "tokens are single use"
        );
    });
    assert_eq!(out.1.as_deref(), Some(r#"{"approved":true}"#));

    let out = drive(&prog, "{}", &clock, |exec, _| {
        let token = exec.waiting_tokens()[0].to_owned();
        exec.send_task_failure(&token, "Rejected", Some("by a human")).unwrap();
    });
    assert_eq!(out, ("FAILED".into(), Some("Rejected".into()), Some("by a human".into())));

    // Heartbeats every 8 s keep it alive; then silence → heartbeat timeout after 10 s.
    let start = clock.now();
    let mut beats = 0;
    let out = drive(&prog, "{}", &clock, |exec, p| {
        if beats < 3 {
            clock.advance(8 * NANOS_PER_SEC);
            let token = exec.waiting_tokens()[0].to_owned();
            exec.send_task_heartbeat(&token, &clock).unwrap();
            beats += 1;
        } else if let Poll::Blocked { wake_at: Some(t) } = p {
            clock.sleep_until(t);
        }
    });
    assert_eq!(out.1.as_deref(), Some(r#""no heartbeat""#));
    assert_eq!((clock.now() - start) / NANOS_PER_SEC, 34);
    assert_eq!(seen_tokens.lock().unwrap().len(), 3);
}

#[test]
fn variables_are_scoped_and_assigned_after_the_state() {
    let clock = Arc::new(ManualClock::fixed());
    let reg = Registry::new();
    let def = json!({"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Assign": {"x": 1, "y": "outer"}, "Next": "Swap"},
        // Both reads see the values at state entry, so this swaps.
        "Swap": {"Type": "Pass", "Assign": {"x.$": "$y", "y.$": "$x"}, "Next": "Par"},
        "Par": {"Type": "Parallel", "Next": "Read", "ResultPath": "$.branches", "Branches": [
            {"StartAt": "B1", "States": {"B1": {"Type": "Pass", "Assign": {"x": "inner"}, "Next": "B2"},
                                         "B2": {"Type": "Pass", "Parameters": {"x.$": "$x", "y.$": "$y"}, "End": true}}}]},
        "Read": {"Type": "Pass", "Parameters": {"x.$": "$x", "y.$": "$y", "b.$": "$.branches"}, "End": true}}});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!(output(&r), json!({"x": "outer", "y": 1, "b": [{"x": "inner", "y": 1}]}));
}

#[test]
fn context_object_exposes_retry_count_and_task_token_where_aws_does() {
    let clock = Arc::new(ManualClock::fixed());
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut reg = Registry::new();
    reg.register(FN, flaky(2, "Boom", clock.clone(), calls));
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Pass", "Parameters": {"state.$": "$$.State"}, "ResultPath": "$.pass", "Next": "T"},
        "T": {"Type": "Task", "Resource": FN, "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1}],
              "ResultSelector": {"retries.$": "$$.State.RetryCount", "name.$": "$$.State.Name"}, "ResultPath": "$.task", "End": true}}});
    let r = run(&def, &json!({}), &reg, &clock);
    let out = output(&r);
    assert_eq!(out["task"], json!({"retries": 2, "name": "T"}));
    assert!(out["pass"]["state"].get("RetryCount").is_none(), "Pass states have no RetryCount: {out}");
    assert!(out["pass"]["state"]["EnteredTime"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn oversized_output_raises_data_limit_exceeded() {
    let clock = Arc::new(ManualClock::fixed());
    let reg = Registry::new();
    let big = "x".repeat(300_000);
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": big, "End": true}}});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!(r.error.as_deref(), Some("States.DataLimitExceeded"));
}

#[test]
fn state_data_growing_through_result_paths_hits_the_limit_at_the_state_that_crosses_it() {
    // Each state adds 60,000 bytes at a new key: four fit in 256 KiB, the fifth does not.
    // Outputs built by a ResultPath pass on composed bounds, without being walked.
    let clock = Arc::new(ManualClock::fixed());
    let reg = Registry::new();
    let chunk = "x".repeat(60_000);
    let mut states = serde_json::Map::new();
    let names = ["A", "B", "C", "D", "E"];
    for (i, name) in names.iter().enumerate() {
        let mut s = json!({"Type": "Pass", "Result": chunk, "ResultPath": format!("$.{}", name.to_lowercase())});
        match names.get(i + 1) {
            Some(next) => s["Next"] = json!(next),
            None => s["End"] = json!(true),
        }
        states.insert(name.to_string(), s);
    }
    let def = json!({"StartAt": "A", "States": states});
    let r = run(&def, &json!({}), &reg, &clock);
    assert_eq!(r.error.as_deref(), Some("States.DataLimitExceeded"), "{r:?}");
    assert!(r.cause.as_deref().unwrap_or("").contains("'E'"), "{r:?}");
    // Four states' worth passes.
    let mut def4 = def.clone();
    def4["States"]["D"] = json!({"Type": "Pass", "Result": chunk, "ResultPath": "$.d", "End": true});
    def4["States"].as_object_mut().unwrap().remove("E");
    let r = run(&def4, &json!({}), &reg, &clock);
    assert_eq!(r.status, Status::Succeeded, "{:?}", r.error);
    assert_eq!(output(&r).as_object().map(|o| o.len()), Some(4));
}

#[test]
fn parallel_results_and_inputs_pass_the_payload_check_on_bounds_and_are_walked_past_them() {
    // A Parallel's result array passes on its branches' bounds; the execution input on
    // 8 × its text length. Where the bounds add up past the limit the output is walked,
    // so a loose bound never fails a payload that fits, and one over the limit fails.
    let clock = Arc::new(ManualClock::fixed());
    let reg = Registry::new();
    let chunk = "x".repeat(62_000);
    let branch = |i: usize| json!({"StartAt": format!("B{i}"), "States": {format!("B{i}"): {"Type": "Pass", "Result": chunk, "End": true}}});
    let def = |n: usize| {
        json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "Branches": (0..n).map(branch).collect::<Vec<_>>(),
               "ResultPath": "$.p", "End": true}}})
    };
    let input = json!({"k": "y".repeat(20_000)});
    // 20 KB + 2 × 62 KB: the bounds (160 KB + 124 KB) are over the limit, the output is not.
    let r = run(&def(2), &input, &reg, &clock);
    assert_eq!(r.status, Status::Succeeded, "{r:?}");
    assert_eq!(output(&r)["p"].as_array().map(|a| a.len()), Some(2));
    // 4 × 62 KB fits on its own, and not with the input beside it.
    let r = run(&def(4), &json!({}), &reg, &clock);
    assert_eq!(r.status, Status::Succeeded, "{r:?}");
    let r = run(&def(4), &input, &reg, &clock);
    assert_eq!(r.error.as_deref(), Some("States.DataLimitExceeded"), "{r:?}");
}

#[test]
fn unbound_tasks_and_exhausted_mocks_fail_clearly() {
    let clock = Arc::new(ManualClock::fixed());
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true}}});
    let r = run(&def, &json!({}), &Registry::new(), &clock);
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert!(r.cause.as_deref().unwrap().contains("No handler is registered for resource"), "{r:?}");

    let text =
        serde_json::to_vec(&json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1}]}}}))
        .unwrap();
    let mocks = sfn::mocks::parse_mocks(&json!({"T": [{"Throw": {"Error": "E"}}]}), None, None).unwrap();
    let prog = sfn::load(&text, MachineType::Standard, Bindings { handlers: None, mocks: Some(&mocks) }).unwrap();
    let r = run_to_completion(&prog, b"{}", &RunOptions { clock: &*clock, meta: meta(&clock), seed: 1 }).unwrap();
    assert_eq!(r.error.as_deref(), Some("States.Runtime"));
    assert!(r.cause.as_deref().unwrap().contains("No mocked response for invocation #1 of state 'T'"), "{r:?}");
}

#[test]
fn sync_handlers_build_results_in_the_arena() {
    let clock = Arc::new(ManualClock::fixed());
    let mut reg = Registry::new();
    reg.register(
        "arn:aws:lambda:*:*:function:*",
        Handler::sync(|ctx, input, arena| {
            let n = input.get("n").and_then(|v| v.as_i64()).unwrap_or(0);
            Ok(arena.object(&[("double", Value::Int(n * 2)), ("state", arena.str(ctx.state_name))]))
        }),
    );
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true}}});
    assert_eq!(output(&run(&def, &json!({"n": 21}), &reg, &clock)), json!({"double": 42, "state": "T"}));
}

#[test]
fn async_failures_retry_after_their_backoff_on_the_execution_clock() {
    let clock = ManualClock::fixed();
    let start = clock.now();
    let attempts = Arc::new(Mutex::new(0));
    let mut reg = Registry::new();
    let a = attempts.clone();
    reg.register(
        FN,
        Handler::future(move |_, _| {
            let a = a.clone();
            async move {
                let mut n = a.lock().unwrap();
                *n += 1;
                if *n < 3 {
                    Err(TaskError::new("Busy", "try later"))
                } else {
                    Ok(json!("done"))
                }
            }
        }),
    );
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": FN, "End": true,
        "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 5, "BackoffRate": 2}]}}});
    let prog = compile(&def, &reg);
    let out = drive(&prog, "{}", &clock, |exec, p| {
        let calls = exec.take_async_calls();
        if calls.is_empty() {
            if let Poll::Blocked { wake_at: Some(t) } = p {
                clock.sleep_until(t);
            }
        }
        for call in calls {
            let answer = sfn::local::block_on(call.handler.call(call.ctx, call.input));
            exec.complete_task(call.id, answer);
        }
    });
    assert_eq!(out.1.as_deref(), Some(r#""done""#));
    assert_eq!(*attempts.lock().unwrap(), 3);
    assert_eq!((clock.now() - start) / NANOS_PER_SEC, 15, "back-offs of 5 s then 10 s, on the virtual clock");
}
