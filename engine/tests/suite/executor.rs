//! The sharded runtime on virtual time: starts, the Express cap, timers, asynchronous
//! handlers, backpressure, panics and re-runs, shutdown.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sfn::clock::{Clock, ManualClock, NANOS_PER_SEC};
use sfn::executor::{Engine, MachineSpec, Shutdown, StartError, StateMachine};
use sfn::handlers::{Handler, Registry, TaskError};
use sfn::local::Status;
use sfn::validate::MachineType;

use crate::support::{eventually, input, register};

const S: i64 = NANOS_PER_SEC;

fn engine(clock: &Arc<ManualClock>, shards: usize, handlers: Registry) -> Engine {
    Engine::builder().shards(shards).clock(clock.clone()).handlers(handlers).seed(7).build()
}

fn parked(engine: &Engine) -> u64 {
    engine.gauges().iter().map(|g| g.parked).sum()
}

const PASS2: &str = r#"{"StartAt":"A","States":{
  "A":{"Type":"Pass","Result":{"x":1},"ResultPath":"$.a","Next":"B"},
  "B":{"Type":"Pass","End":true}}}"#;

#[test]
fn start_sync_returns_output_arn_and_billing() {
    let clock = Arc::new(ManualClock::fixed());
    let e = engine(&clock, 2, Registry::new());
    let m = register(&e, "Pass2", PASS2, MachineType::Express);
    let r = e.start_sync(&m, &input(r#"{"in":true}"#), Some("run-1")).wait().unwrap();
    assert_eq!(r.status, Status::Succeeded);
    assert_eq!(r.output.as_deref(), Some(r#"{"in":true,"a":{"x":1}}"#));
    assert!(
        r.execution_arn.starts_with("arn:aws:states:us-east-1:123456789012:express:Pass2:run-1:"),
        "{}",
        r.execution_arn
    );
    assert_eq!(r.name, "run-1");
    assert_eq!((r.billing.billed_duration_in_milliseconds, r.billing.billed_memory_used_in_mb), (100, 64));
    assert_eq!(r.transitions, 2);
}

#[test]
fn start_latency_counts_from_the_request_time_the_caller_gives() {
    let clock = Arc::new(ManualClock::fixed());
    let e = engine(&clock, 1, Registry::new());
    let m = register(&e, "Pass2", PASS2, MachineType::Express);
    let t0 = clock.now();
    // Made 3 s before it reached the engine (a generator running late, a server's queue).
    let x = e.start_requested(&m, &input("{}"), None, t0 - 3 * S).unwrap();
    assert_eq!(x.start_date, t0, "the execution still starts when it was accepted");
    eventually("the first execution ends", || e.ended(&m) == 1);
    assert_eq!(e.metrics(&m).start_latency_ns.max() / S as u64, 3);
    // A request time after acceptance counts as acceptance (time does not move here).
    e.start_requested(&m, &input("{}"), None, t0 + 60 * S).unwrap();
    e.start(&m, &input("{}"), None).unwrap();
    eventually("all end", || e.ended(&m) == 3);
    let metrics = e.metrics(&m);
    assert_eq!(metrics.start_latency_ns.len(), 3);
    assert_eq!(metrics.start_latency_ns.count_between(0, 0), 2);
}

#[test]
fn one_input_parsed_once_serves_many_executions_after_the_caller_drops_it() {
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let e = engine(&clock, 2, Registry::new());
    // Reads the input after a Wait, when the caller's handle is long gone, and builds new
    // data from it (the shared values are read, never written).
    let m = register(
        &e,
        "WaitThenBuild",
        r#"{"StartAt":"W","States":{
          "W":{"Type":"Wait","Seconds":5,"Next":"P"},
          "P":{"Type":"Pass","Parameters":{"who.$":"$.user.name","n.$":"States.ArrayLength($.items)"},
               "ResultPath":"$.built","End":true}}}"#,
        MachineType::Express,
    );
    let text = r#"{"user":{"name":"ada"},"items":[1,2.5,"three",{"four":[4]}],"esc":"a\"b\u00e9"}"#;
    let shared = input(text);
    let pending: Vec<_> = (0..200).map(|_| e.start_sync(&m, &shared, None)).collect();
    drop(shared);
    eventually("all 200 park on their Wait", || parked(&e) == 200);
    clock.set(t0 + 5 * S);
    let expected =
        r#"{"user":{"name":"ada"},"items":[1,2.5,"three",{"four":[4]}],"esc":"a\"bé","built":{"who":"ada","n":4}}"#;
    for p in pending {
        let r = p.wait().unwrap();
        assert_eq!((r.status, r.output.as_deref()), (Status::Succeeded, Some(expected)));
    }
    assert_eq!(e.metrics(&m).succeeded, 200);
}

#[test]
fn idle_shards_publish_their_earliest_pending_timer() {
    let clock = Arc::new(ManualClock::fixed());
    let e = engine(&clock, 1, Registry::new());
    let m = register(
        &e,
        "Wait10",
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":10,"End":true}}}"#,
        MachineType::Express,
    );
    let t0 = clock.now();
    eventually("an idle shard with no timer says so", || e.gauges()[0].next_timer == i64::MAX);
    e.start(&m, &input("{}"), None).unwrap();
    eventually("the execution parks on its Wait", || parked(&e) == 1 && e.gauges()[0].next_timer == t0 + 10 * S);
    clock.set(t0 + 10 * S);
    eventually("the Wait fires and nothing is left", || e.ended(&m) == 1 && e.gauges()[0].next_timer == i64::MAX);
}

#[test]
fn an_express_execution_waiting_301_s_times_out_at_exactly_300_s() {
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let e = engine(&clock, 2, Registry::new());
    let m = register(
        &e,
        "Wait301",
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":301,"End":true}}}"#,
        MachineType::Express,
    );
    let pending = e.start_sync(&m, &input("{}"), None);
    eventually("the execution parks", || parked(&e) == 1);
    clock.set(t0 + 299 * S);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(e.ended(&m), 0, "nothing ends before the cap");
    clock.set(t0 + 300 * S);
    let r = pending.wait().unwrap();
    assert_eq!(r.status, Status::TimedOut);
    assert_eq!(r.error.as_deref(), Some("States.Timeout"));
    assert_eq!(r.stop_date - r.start_date, 300 * S);
    // Its timer is gone and its arena is back in the pool.
    eventually("the shard publishes its gauges", || e.gauges().iter().all(|g| g.executions == 0 && g.parked == 0));
    let metrics = e.metrics(&m);
    assert_eq!((metrics.accepted, metrics.timed_out), (1, 1));
    assert_eq!(metrics.duration_ns.max() / S as u64, 300);
}

#[test]
fn the_definitions_lower_timeout_wins_over_the_cap() {
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let e = engine(&clock, 1, Registry::new());
    let def = r#"{"TimeoutSeconds":10,"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":20,"End":true}}}"#;
    let m = register(&e, "Timeout10", def, MachineType::Express);
    let pending = e.start_sync(&m, &input("{}"), None);
    eventually("the execution parks", || parked(&e) == 1);
    clock.set(t0 + 10 * S);
    let r = pending.wait().unwrap();
    assert_eq!((r.status, r.error.as_deref()), (Status::TimedOut, Some("States.Timeout")));
    assert_eq!(r.stop_date - r.start_date, 10 * S);
}

#[test]
fn retry_back_off_runs_on_the_shards_timers() {
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut handlers = Registry::new();
    let (c2, clock2) = (calls.clone(), clock.clone());
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:flaky",
        Handler::sync_json(move |_, _| {
            let mut c = c2.lock().unwrap();
            c.push((clock2.now() - t0) / S);
            if c.len() < 3 {
                Err(TaskError::new("Flaky", "not yet"))
            } else {
                Ok(serde_json::json!("done"))
            }
        }),
    );
    let e = engine(&clock, 1, handlers);
    let def = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:flaky",
        "Retry":[{"ErrorEquals":["Flaky"],"IntervalSeconds":2,"BackoffRate":3,"MaxAttempts":3}],"End":true}}}"#;
    let m = register(&e, "Flaky", def, MachineType::Express);
    let pending = e.start_sync(&m, &input("{}"), None);
    eventually("first attempt", || calls.lock().unwrap().len() == 1 && parked(&e) == 1);
    clock.set(t0 + 2 * S - 1);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(calls.lock().unwrap().len(), 1);
    clock.set(t0 + 2 * S);
    eventually("second attempt", || calls.lock().unwrap().len() == 2 && parked(&e) == 1);
    clock.set(t0 + 8 * S - 1);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(calls.lock().unwrap().len(), 2);
    clock.set(t0 + 8 * S);
    let r = pending.wait().unwrap();
    assert_eq!((r.status, r.output.as_deref()), (Status::Succeeded, Some("\"done\"")));
    assert_eq!(*calls.lock().unwrap(), [0, 2, 8]);
}

#[test]
fn asynchronous_handlers_answer_through_the_shard_and_time_out() {
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let mut handlers = Registry::new();
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:echo",
        Handler::future(|ctx, input| async move { Ok(serde_json::json!({"state": ctx.state_name, "got": input})) }),
    );
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:never",
        Handler::future(|_, _| std::future::pending::<Result<serde_json::Value, TaskError>>()),
    );
    let e = engine(&clock, 2, handlers);
    let def = r#"{"StartAt":"Echo","States":{
      "Echo":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:echo","Next":"Never"},
      "Never":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:never","TimeoutSeconds":5,
        "Catch":[{"ErrorEquals":["States.Timeout"],"ResultPath":"$.timeout","Next":"Done"}],"End":true},
      "Done":{"Type":"Pass","End":true}}}"#;
    let m = register(&e, "Async", def, MachineType::Express);
    let pending = e.start_sync(&m, &input(r#"{"k":1}"#), None);
    eventually("the second task is in flight", || parked(&e) == 1 && e.gauges().iter().any(|g| g.timers > 0));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(e.ended(&m), 0);
    clock.set(t0 + 5 * S);
    let r = pending.wait().unwrap();
    assert_eq!(r.status, Status::Succeeded, "{r:?}");
    let out: serde_json::Value = serde_json::from_str(r.output.as_deref().unwrap()).unwrap();
    assert_eq!(out["state"], "Echo");
    assert_eq!(out["got"], serde_json::json!({"k": 1}));
    assert_eq!(out["timeout"]["Error"], "States.Timeout");
}

#[test]
fn callbacks_route_to_the_shard_and_heartbeats_extend_the_task() {
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let token = Arc::new(Mutex::new(None::<String>));
    let mut handlers = Registry::new();
    let t2 = token.clone();
    handlers.register(
        "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        Handler::sync_json(move |ctx, _| {
            *t2.lock().unwrap() = ctx.task_token.map(str::to_owned);
            Ok(serde_json::json!({}))
        }),
    );
    let e = engine(&clock, 2, handlers);
    let def = r#"{"StartAt":"Ask","States":{"Ask":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters":{"QueueUrl":"q","MessageBody":{"token.$":"$$.Task.Token"}},"HeartbeatSeconds":10,"TimeoutSeconds":100,"End":true}}}"#;
    let m = register(&e, "Approval", def, MachineType::Standard);

    // Answered: the output is what SendTaskSuccess carried; the token is then spent.
    e.start(&m, &input("{}"), Some("one")).unwrap();
    eventually("the token is handed out", || token.lock().unwrap().is_some() && parked(&e) == 1);
    let tk = token.lock().unwrap().take().unwrap();
    clock.set(t0 + 8 * S);
    e.send_task_heartbeat(&tk).wait().unwrap();
    clock.set(t0 + 15 * S); // past the first heartbeat deadline, within the second
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(e.ended(&m), 0);
    e.send_task_success(&tk, r#"{"approved":true}"#).wait().unwrap();
    eventually("the execution succeeds", || e.metrics(&m).succeeded == 1);
    assert_eq!(e.send_task_success(&tk, "{}").wait(), Err(sfn::vm::CallbackError::TaskDoesNotExist));
    assert_eq!(e.send_task_heartbeat("no-such-token").wait(), Err(sfn::vm::CallbackError::TaskDoesNotExist));

    // Silent: the missed heartbeat fails the task.
    let t1 = clock.now();
    e.start(&m, &input("{}"), Some("two")).unwrap();
    eventually("the token is handed out", || token.lock().unwrap().is_some() && parked(&e) == 1);
    clock.set(t1 + 10 * S);
    eventually("the execution fails", || e.metrics(&m).failed == 1);
}

/// `shards` shards with an inbox of `inbox` each, running a machine whose one Task waits
/// until `gate` opens; one execution is started and inside the handler (its shard busy)
/// when this returns.
struct Gated {
    clock: Arc<ManualClock>,
    engine: Engine,
    machine: StateMachine,
    input: sfn::executor::Input,
    gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    entered: Arc<AtomicU32>,
}

fn gated(shards: usize, inbox: usize) -> Gated {
    let clock = Arc::new(ManualClock::fixed());
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let entered = Arc::new(AtomicU32::new(0));
    let mut handlers = Registry::new();
    let (g2, e2) = (gate.clone(), entered.clone());
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:gate",
        Handler::sync_json(move |_, input| {
            e2.fetch_add(1, Ordering::SeqCst);
            let (lock, cv) = &*g2;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            Ok(input)
        }),
    );
    let e = Engine::builder().shards(shards).inbox_capacity(inbox).clock(clock.clone()).handlers(handlers).build();
    let def = r#"{"StartAt":"G","States":{"G":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:gate","End":true}}}"#;
    let m = register(&e, "Gate", def, MachineType::Express);
    let i = input("{}");
    e.start(&m, &i, None).unwrap();
    eventually("the shard is inside the handler", || entered.load(Ordering::SeqCst) == 1);
    Gated { clock, engine: e, machine: m, input: i, gate, entered }
}

#[test]
fn a_full_inbox_throttles_and_nothing_is_lost_or_counted_twice() {
    let Gated { engine: e, machine: m, input: i, gate, entered, .. } = gated(1, 4);
    for _ in 0..4 {
        e.start(&m, &i, None).unwrap();
    }
    assert_eq!(e.start(&m, &i, None).unwrap_err(), StartError::Throttled);
    assert_eq!(e.start(&m, &i, None).unwrap_err(), StartError::Throttled);
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    eventually("every accepted start ends", || e.ended(&m) == 5);
    let metrics = e.metrics(&m);
    assert_eq!((metrics.accepted, metrics.throttled, metrics.succeeded, metrics.rerun), (5, 2, 5, 0));
    assert_eq!(entered.load(Ordering::SeqCst), 5);
}

#[test]
fn batches_are_accepted_or_throttled_by_the_chunk_and_count_from_each_request_time() {
    let Gated { clock, engine: e, machine: m, input: i, gate, entered } = gated(1, 2);
    // 200 starts are chunks of 64, 64, 64 and 8; an inbox of 2 takes the first two.
    let t0 = clock.now();
    let requested: Vec<i64> = (0..200).map(|k| t0 - 2 * S - k).collect();
    assert_eq!(e.start_batch(&m, &i, &requested), Ok(128));
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    eventually("every accepted start ends", || e.ended(&m) == 129);
    let metrics = e.metrics(&m);
    assert_eq!((metrics.accepted, metrics.throttled, metrics.succeeded, metrics.rerun), (129, 72, 129, 0));
    assert_eq!(entered.load(Ordering::SeqCst), 129);
    // Each start counts from its own request time (2 s before acceptance, less k ns).
    assert_eq!(metrics.start_latency_ns.count_between(2 * S as u64 - 200, 2 * S as u64 + 200), 128);
    e.shutdown(Shutdown::Abandon);
    assert_eq!(e.start_batch(&m, &i, &requested), Err(StartError::ShuttingDown));
}

#[test]
fn chunks_waiting_behind_a_busy_shard_wake_the_sleeping_one() {
    // One shard is stuck in a handler (awake), the other has parked. One chunk of 64
    // starts waiting at the busy one is as many starts as `submit` leaves there (counting
    // inbox entries would leave 16 chunks): the next chunk goes to the parked shard and
    // wakes it, and it begins every start, the busy shard's waiting chunk included, while
    // the busy one is still stuck.
    let Gated { clock, engine: e, gate, .. } = gated(2, 1024);
    let quick = register(&e, "Pass2", PASS2, MachineType::Express);
    eventually("the idle shard parks", || e.gauges().iter().filter(|g| g.asleep).count() == 1);
    let requested = vec![clock.now(); 200];
    let accepted = e.start_batch(&quick, &input("{}"), &requested);
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.ended(&quick) < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let ended = e.ended(&quick);
    // Open the gate before asserting: the engine's drop waits for the stuck shard.
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    assert_eq!(accepted, Ok(200));
    assert_eq!(ended, 200, "the quick starts waited for the busy shard");
}

#[test]
fn a_shard_looking_for_work_still_fires_its_timer_on_time_and_then_parks() {
    // park_spin longer than the Wait: the shard stops looking when the timer is due.
    let e = Engine::builder().shards(1).park_spin(Duration::from_secs(4)).build();
    let def = r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"Next":"P"},"P":{"Type":"Pass","End":true}}}"#;
    let m = register(&e, "Wait1", def, MachineType::Express);
    let t0 = Instant::now();
    e.start(&m, &input("{}"), None).unwrap();
    eventually("the execution ends", || e.ended(&m) == 1);
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(1) && took < Duration::from_millis(3500), "{took:?}");
    // With nothing left, it looks for at most 4 s more, then parks.
    eventually("the shard parks", || e.gauges()[0].asleep);
    assert_eq!(e.metrics(&m).succeeded, 1);
}

#[test]
fn a_handler_that_panics_once_gives_exactly_one_rerun_and_a_success() {
    let clock = Arc::new(ManualClock::fixed());
    let calls = Arc::new(AtomicU32::new(0));
    let mut handlers = Registry::new();
    let c2 = calls.clone();
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:once",
        Handler::sync_json(move |_, input| {
            if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("first call fails hard");
            }
            Ok(input)
        }),
    );
    let e = engine(&clock, 2, handlers);
    let def = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:once","End":true}}}"#;
    let m = register(&e, "Once", def, MachineType::Express);
    e.start(&m, &input(r#"{"v":1}"#), None).unwrap();
    eventually("the execution ends", || e.ended(&m) == 1);
    let metrics = e.metrics(&m);
    assert_eq!((metrics.accepted, metrics.rerun, metrics.succeeded, metrics.failed), (1, 1, 1, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Synchronous starts are at most once: the panic fails the execution instead.
    calls.store(0, Ordering::SeqCst);
    let r = e.start_sync(&m, &input("{}"), None).wait().unwrap();
    assert_eq!((r.status, r.error.as_deref()), (Status::Failed, Some("States.Runtime")));
    assert!(r.cause.unwrap().contains("first call fails hard"));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn an_asynchronous_handler_that_panics_reruns_the_execution() {
    let clock = Arc::new(ManualClock::fixed());
    let calls = Arc::new(AtomicU32::new(0));
    let mut handlers = Registry::new();
    let c2 = calls.clone();
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:once",
        Handler::future(move |_, input| {
            let first = c2.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                assert!(!first, "first call fails hard");
                Ok(input)
            }
        }),
    );
    let e = engine(&clock, 2, handlers);
    let def = r#"{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:once","End":true}}}"#;
    let m = register(&e, "AsyncOnce", def, MachineType::Express);
    e.start(&m, &input("{}"), None).unwrap();
    eventually("the execution ends", || e.ended(&m) == 1);
    let metrics = e.metrics(&m);
    assert_eq!((metrics.rerun, metrics.succeeded), (1, 1));
}

#[test]
fn a_shard_that_panics_hands_every_execution_it_held_to_a_rerun() {
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let e = engine(&clock, 2, Registry::new());
    let m = register(
        &e,
        "Wait5",
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":5,"End":true}}}"#,
        MachineType::Express,
    );
    for _ in 0..100 {
        e.start(&m, &input("{}"), None).unwrap();
    }
    eventually("all park", || parked(&e) == 100);
    // Placement may leave either shard empty (it prefers an awake shard, and an idle one
    // takes starts from the other): the shard holding the most is the one that panics.
    let (victim, held) =
        e.gauges().iter().map(|g| g.executions).enumerate().max_by_key(|&(_, n)| n).expect("two shards");
    assert!(held > 0);
    e.inject_shard_panic(victim);
    eventually("the panicked shard is empty", || e.gauges()[victim].executions == 0 && parked(&e) == 100);
    clock.set(t0 + 5 * S);
    eventually("every execution ends", || e.ended(&m) == 100);
    let metrics = e.metrics(&m);
    assert_eq!((metrics.accepted, metrics.succeeded, metrics.rerun), (100, 100, held));
}

#[test]
fn drain_lets_running_executions_finish_and_abandon_drops_them() {
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let e = engine(&clock, 2, Registry::new());
    let m = register(
        &e,
        "Wait5",
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":5,"End":true}}}"#,
        MachineType::Express,
    );
    for _ in 0..10 {
        e.start(&m, &input("{}"), None).unwrap();
    }
    eventually("all park", || parked(&e) == 10);
    let c2 = clock.clone();
    let advance = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        c2.set(t0 + 5 * S);
    });
    let metrics_before = e.metrics(&m);
    assert_eq!(metrics_before.running(), 10);
    let report = e.shutdown(Shutdown::Drain(Duration::from_secs(10)));
    advance.join().unwrap();
    assert_eq!(report.abandoned, 0);

    let e = engine(&clock, 2, Registry::new());
    let m = register(
        &e,
        "Wait5",
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":5,"End":true}}}"#,
        MachineType::Express,
    );
    for _ in 0..10 {
        e.start(&m, &input("{}"), None).unwrap();
    }
    let pending = e.start_sync(&m, &input("{}"), None);
    eventually("all park", || parked(&e) == 11);
    let report = e.shutdown(Shutdown::Abandon);
    assert_eq!(report.abandoned, 11);
    assert!(matches!(pending.wait(), Err(sfn::executor::SyncError::Abandoned)));
    assert_eq!(e.metrics(&m).aborted, 11);
    assert_eq!(e.start(&m, &input("{}"), None).unwrap_err(), StartError::ShuttingDown);
    assert_eq!(e.shutdown(Shutdown::Abandon).abandoned, 0, "a second shutdown finds nothing to stop");
}

#[test]
fn express_definitions_with_callbacks_are_refused_and_names_are_checked() {
    let clock = Arc::new(ManualClock::fixed());
    let e = engine(&clock, 1, Registry::new());
    let def = r#"{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage.waitForTaskToken","End":true}}}"#;
    let err = e.register(MachineSpec::new("Cb", def.as_bytes(), MachineType::Express)).unwrap_err();
    assert!(err.to_string().contains("waitForTaskToken"), "{err}");
    let m = register(&e, "Pass2", PASS2, MachineType::Express);
    assert!(matches!(e.start(&m, &input("{}"), Some("bad name")), Err(StartError::InvalidName(_))));
    assert!(e.register(MachineSpec::new("Pass2", PASS2.as_bytes(), MachineType::Express)).is_err());
    let std = register(&e, "Std", PASS2, MachineType::Standard);
    assert!(matches!(
        e.start_sync(&std, &input("{}"), None).wait(),
        Err(sfn::executor::SyncError::Start(StartError::TypeNotSupported))
    ));
    let exec = e.start(&std, &input("{}"), Some("n1")).unwrap();
    assert_eq!(exec.arn(), "arn:aws:states:us-east-1:123456789012:execution:Std:n1");
}

/// Many executions of several shapes across shards, with panicking and asynchronous
/// handlers: every accepted start ends exactly once, and the re-runs are exactly the panics.
#[test]
fn stress_every_accepted_start_ends_exactly_once() {
    use std::collections::HashMap;
    let panics = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicU32::new(0));
    let finals = Arc::new(Mutex::new(HashMap::<i64, u32>::new()));
    let mut handlers = Registry::new();
    let (p2, c2) = (panics.clone(), calls.clone());
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:sometimes-panics",
        Handler::sync_json(move |_, input| {
            if c2.fetch_add(1, Ordering::SeqCst) % 97 == 96 {
                p2.fetch_add(1, Ordering::SeqCst);
                panic!("every 97th call panics");
            }
            Ok(input)
        }),
    );
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:later",
        Handler::future(|_, input| async move {
            tokio::time::sleep(Duration::from_micros(200)).await;
            Ok(input)
        }),
    );
    let f2 = finals.clone();
    handlers.register(
        "arn:aws:lambda:us-east-1:123456789012:function:final",
        Handler::sync_json(move |_, input| {
            *f2.lock().unwrap().entry(input["id"].as_i64().unwrap()).or_default() += 1;
            Ok(input)
        }),
    );
    let e = Engine::builder().shards(2).inbox_capacity(1024).handlers(handlers).max_reruns(1000).build();
    let shapes = [
        r#"{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"P"},"P":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:sometimes-panics","Next":"F"},
            "F":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:final","End":true}}}"#,
        r#"{"StartAt":"L","States":{"L":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:later","Next":"F"},
            "F":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:final","End":true}}}"#,
        r#"{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":3,"ResultPath":"$.done",
            "ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:sometimes-panics","End":true}}},"Next":"F"},
            "F":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:final","End":true}}}"#,
        r#"{"StartAt":"Par","States":{"Par":{"Type":"Parallel","ResultPath":null,"Branches":[
            {"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":0,"End":true}}},
            {"StartAt":"L","States":{"L":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:later","End":true}}}],"Next":"F"},
            "F":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:final","End":true}}}"#,
    ];
    let machines: Vec<StateMachine> =
        shapes.iter().enumerate().map(|(i, d)| register(&e, &format!("Shape{i}"), d, MachineType::Express)).collect();
    const N: i64 = 20_000;
    let mut accepted = vec![0u64; machines.len()];
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in 0..N {
        let k = id as usize % machines.len();
        let i = input(&format!(r#"{{"id":{id},"items":[1,2,3,4,5]}}"#));
        loop {
            match e.start(&machines[k], &i, None) {
                Ok(_) => break,
                Err(StartError::Throttled) => {
                    assert!(Instant::now() < deadline, "the engine stopped taking starts");
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(other) => panic!("{other}"),
            }
        }
        accepted[k] += 1;
    }
    let total_ended = || machines.iter().map(|m| e.ended(m)).sum::<u64>();
    let deadline = Instant::now() + Duration::from_secs(60);
    while total_ended() < N as u64 {
        assert!(Instant::now() < deadline, "only {} of {N} executions ended", total_ended());
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut reruns = 0;
    for (m, &acc) in machines.iter().zip(&accepted) {
        let metrics = e.metrics(m);
        assert_eq!(metrics.accepted, acc, "{}", m.name());
        assert_eq!(metrics.succeeded, acc, "{}: {metrics:?}", m.name());
        assert_eq!(metrics.failed + metrics.timed_out + metrics.aborted, 0);
        reruns += metrics.rerun;
    }
    assert!(panics.load(Ordering::SeqCst) > 0, "the test exercises panics");
    assert_eq!(reruns, panics.load(Ordering::SeqCst) as u64, "every panic, and only panics, caused a re-run");
    let finals = finals.lock().unwrap();
    assert_eq!(finals.len(), N as usize, "every execution reached its last state");
    let report = e.shutdown(Shutdown::Drain(Duration::from_secs(5)));
    assert_eq!(report.abandoned, 0);
}

#[test]
fn express_logs_follow_the_level_and_reach_the_writer() {
    use sfn::logs::{Destination, LogLevel, LogWriter, LoggingConfig, MemoryRing};
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let ring = MemoryRing::new(1000);
    let writer = LogWriter::start(Destination::Memory(ring.clone()), 1000).unwrap();
    let e = Engine::builder().shards(2).clock(clock.clone()).log_writer(writer).build();
    let mut spec = MachineSpec::new("Logged", PASS2.as_bytes(), MachineType::Express);
    spec.logging = LoggingConfig { level: LogLevel::All, include_execution_data: true };
    let all = e.register(spec).unwrap();
    let failing = r#"{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Boom","Cause":"it broke"}}}"#;
    let mut spec = MachineSpec::new("Errors", failing.as_bytes(), MachineType::Express);
    spec.logging = LoggingConfig { level: LogLevel::Error, include_execution_data: false };
    let errors = e.register(spec).unwrap();
    let mut spec = MachineSpec::new(
        "Capped",
        br#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":400,"End":true}}}"#,
        MachineType::Express,
    );
    spec.logging = LoggingConfig { level: LogLevel::Fatal, include_execution_data: false };
    let capped = e.register(spec).unwrap();

    let r = e.start_sync(&all, &input(r#"{"in":1}"#), Some("logged-1")).wait().unwrap();
    assert_eq!(r.status, Status::Succeeded);
    assert_eq!(e.start_sync(&errors, &input("{}"), None).wait().unwrap().status, Status::Failed);
    let pending = e.start_sync(&capped, &input("{}"), None);
    eventually("the capped execution parks", || parked(&e) == 1);
    clock.set(t0 + 300 * S);
    assert_eq!(pending.wait().unwrap().status, Status::TimedOut);
    let report = e.shutdown(Shutdown::Drain(Duration::from_secs(5)));
    assert_eq!(report.log_error, None);

    let records: Vec<serde_json::Value> = ring.lines().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |arn_part: &str| -> Vec<&serde_json::Value> {
        records.iter().filter(|r| r["execution_arn"].as_str().unwrap().contains(arn_part)).collect()
    };
    let logged = of(":express:Logged:logged-1:");
    let types: Vec<&str> = logged.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "ExecutionStarted",
            "PassStateEntered",
            "PassStateExited",
            "PassStateEntered",
            "PassStateExited",
            "ExecutionSucceeded"
        ]
    );
    assert_eq!(logged[0]["id"], "1");
    assert_eq!(logged[0]["previous_event_id"], "0");
    assert_eq!(logged[0]["details"]["input"], r#"{"in":1}"#);
    assert_eq!(logged[5]["details"]["output"], r#"{"in":1,"a":{"x":1}}"#);
    assert_eq!(logged[0]["redrive_count"], "0");

    let errs = of(":express:Errors:");
    let types: Vec<&str> = errs.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["FailStateEntered", "ExecutionFailed"], "ERROR keeps only error events");
    assert!(errs[0]["details"].get("input").is_none(), "no execution data: {}", errs[0]);
    assert_eq!(errs[1]["details"]["error"], "Boom");

    let capped = of(":express:Capped:");
    let types: Vec<&str> = capped.iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ExecutionTimedOut"]);
    assert_eq!(capped[0]["event_timestamp"], ((t0 + 300 * S) / 1_000_000).to_string());
}

#[test]
fn logging_without_a_writer_is_refused() {
    use sfn::logs::{LogLevel, LoggingConfig};
    let clock = Arc::new(ManualClock::fixed());
    let e = engine(&clock, 1, Registry::new());
    let mut spec = MachineSpec::new("Logged", PASS2.as_bytes(), MachineType::Express);
    spec.logging = LoggingConfig { level: LogLevel::All, include_execution_data: true };
    let err = e.register(spec).unwrap_err();
    assert!(err.to_string().starts_with("InvalidLoggingConfiguration"), "{err}");
}

#[test]
fn idle_shards_give_back_what_a_burst_grew() {
    // 20,000 executions parked in a Wait at once, then all ended by the cap: the shards
    // keep at most their idle allowance of pooled arenas and no oversized table. Placement
    // may put most of them on one shard (it prefers an awake one, and idle shards take
    // starts from busy ones), and a shard that held at most 4,096 keeps its table; with
    // 20,000 at most one shard can, so the total still shrinks tenfold.
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let e = Engine::builder().shards(2).inbox_capacity(16_384).clock(clock.clone()).seed(7).build();
    let m = register(
        &e,
        "Burst",
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":400,"End":true}}}"#,
        MachineType::Express,
    );
    let n = 20_000;
    for _ in 0..n {
        e.start(&m, &input(r#"{"k":"v"}"#), None).expect("room in the inboxes");
    }
    eventually("every execution parks", || parked(&e) == n);
    let big: u64 = e.gauges().iter().map(|g| g.table_bytes).sum();
    clock.set(t0 + 300 * S);
    eventually("every execution ends", || e.ended(&m) == n);
    eventually("the shards go idle and trim", || {
        e.gauges().iter().all(|g| g.executions == 0 && g.timers == 0 && g.pooled_arenas <= 1024)
    });
    let small: u64 = e.gauges().iter().map(|g| g.table_bytes).sum();
    assert!(small * 10 < big, "table bytes {big} while parked, {small} idle");
    assert_eq!(e.metrics(&m).timed_out, n);

    // The shards still work, and a late timer of an old execution cannot touch a new one.
    let again = e.start_sync(&m, &input("{}"), None);
    clock.set(t0 + 700 * S);
    let r = again.wait().unwrap();
    assert_eq!(r.status, Status::TimedOut);
    assert_eq!(r.stop_date - r.start_date, 300 * S);
}

#[test]
fn parked_executions_do_not_hold_the_arenas_large_ones_grew() {
    // A machine whose executions grow their arenas to ~40 KiB runs first (side by side, in
    // a Wait), leaving their arenas pooled; then a small machine's executions park in a
    // Wait. They take arenas of their own size, not the large ones (which would hold
    // ~40 KiB each for the whole Wait).
    let clock = Arc::new(ManualClock::fixed());
    let t0 = clock.now();
    let e = Engine::builder().shards(1).clock(clock.clone()).seed(3).build();
    let big = register(
        &e,
        "Big",
        r#"{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"a.$":"States.ArrayRange(1, 1000, 1)","b.$":"States.ArrayRange(1, 1000, 1)"},"Next":"W"},"W":{"Type":"Wait","Seconds":1,"End":true}}}"#,
        MachineType::Express,
    );
    let small = register(
        &e,
        "Small",
        r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":60,"End":true}}}"#,
        MachineType::Express,
    );
    let n = 200;
    let runs: Vec<_> = (0..n).map(|_| e.start_sync(&big, &input("{}"), None)).collect();
    eventually("every large execution parks", || parked(&e) == n);
    clock.set(t0 + S);
    for r in runs {
        assert_eq!(r.wait().unwrap().status, Status::Succeeded);
    }
    let pooled = || e.gauges().iter().map(|g| g.pooled_bytes).sum::<u64>();
    eventually("the large executions' arenas are pooled", || pooled() > n * (16 << 10));
    let pooled = pooled();
    for _ in 0..n {
        e.start(&small, &input(r#"{"k":"v"}"#), None).expect("room in the inbox");
    }
    eventually("every small execution parks", || parked(&e) == n);
    let held: u64 = e.gauges().iter().map(|g| g.arena_bytes).sum();
    assert!(held / n < 8 << 10, "{} arena bytes per parked execution ({pooled} pooled by Big)", held / n);
}
