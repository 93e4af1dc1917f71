//! `durable-transitions [--executions N] [--states K] [--threads T] [--dir DIR]`: durable
//! state transitions per second through the whole engine.
//!
//! N Standard executions of a K-state Pass chain run on the sharded engine with a
//! `RedbStore` (in a fresh directory under DIR, default the system's temporary directory):
//! each state is journaled with its history events and group-committed (fsync) before the
//! next one runs, exactly as any durable execution. T threads start them (every start is
//! itself a durable commit). The figure is states entered per second of wall time from the
//! first start to the last end; it prints one JSON line with the provenance. The issue's
//! target is 20,000 durable transitions/s on the project's 2-core machine (AWS's default
//! quota is 4,000 per account).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sfn::executor::{Engine, Input, MachineSpec, Shutdown};
use sfn::store::{RedbStore, Store};
use sfn::validate::MachineType;
use sfn_benches::provenance;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn chain(states: usize) -> String {
    let mut s = String::from(r#"{"StartAt":"S0","States":{"#);
    for i in 0..states {
        if i > 0 {
            s.push(',');
        }
        if i + 1 == states {
            s.push_str(&format!(r#""S{i}":{{"Type":"Pass","Result":{i},"ResultPath":"$.last","End":true}}"#));
        } else {
            s.push_str(&format!(r#""S{i}":{{"Type":"Pass","Result":{i},"ResultPath":"$.last","Next":"S{}"}}"#, i + 1));
        }
    }
    s.push_str("}}");
    s
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let executions = arg(&args, "--executions", 20_000);
    let states = arg(&args, "--states", 10).max(1);
    let threads = arg(&args, "--threads", 16).max(1);
    let base = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let dir = base.join(format!("sfn-durable-transitions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Arc::new(RedbStore::open(&dir).unwrap_or_else(|e| panic!("{e}")));
    let engine = Arc::new(Engine::builder().store(store.clone()).build());
    let def = chain(states);
    let m = engine.register(MachineSpec::new("Chain", def.as_bytes(), MachineType::Standard)).expect("valid");
    let input = Input::from_json(&b"{}"[..]).unwrap();

    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (engine, m, input) = (engine.clone(), m.clone(), input.clone());
            s.spawn(move || {
                for i in (t..executions).step_by(threads) {
                    engine.start(&m, &input, Some(&format!("run-{i}"))).expect("start");
                }
            });
        }
    });
    let started = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while engine.ended(&m) < executions as u64 {
        assert!(Instant::now() < deadline, "the executions did not end within 10 minutes");
        std::thread::sleep(Duration::from_millis(2));
    }
    store.flush().expect("flush");
    let elapsed = t0.elapsed();
    let metrics = engine.metrics(&m);
    assert_eq!(metrics.succeeded, executions as u64, "every execution succeeds");
    let transitions = metrics.transitions;
    // Spot check: the last execution's record and history are stored.
    let last = format!("arn:aws:states:us-east-1:123456789012:execution:Chain:run-{}", executions - 1);
    let rec = store.execution(&last).unwrap().expect("stored");
    assert_eq!(rec.status, sfn::store::RecordStatus::Succeeded);
    let events = store.history(&last, false, 10_000, None).unwrap().items.len();
    let line = provenance::stamp(
        serde_json::json!({
            "measure": "durable_transitions_per_second",
            "executions": executions,
            "states_per_execution": states,
            "starter_threads": threads,
            "transitions": transitions,
            "events_per_execution": events,
            "seconds": elapsed.as_secs_f64(),
            "start_seconds": started.as_secs_f64(),
            "transitions_per_second": transitions as f64 / elapsed.as_secs_f64(),
            "executions_per_second": executions as f64 / elapsed.as_secs_f64(),
        }),
        format!("target/release/durable-transitions --executions {executions} --states {states} --threads {threads}"),
    );
    println!("{line}");
    engine.shutdown(Shutdown::Drain(Duration::from_secs(5)));
    drop(engine);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
