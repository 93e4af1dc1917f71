//! `parked-memory [async-task|wait] [N]`: bytes per parked execution on the sharded engine.
//!
//! Parks N rider-photo executions (default 100,000), one way per run (each in its own
//! process, so the resident-memory figure is not blurred by the other): (1) waiting for an
//! asynchronous handler (the first Lambda task answers only when the engine shuts down),
//! (2) in a Wait state (the same workflow with a 60-second Wait in front). For each it
//! prints one JSON line: the engine's own accounting (arena bytes of the parked executions
//! plus the shard's table and timers, divided by N), and the process's resident-memory
//! growth per execution (which also counts the tokio tasks of the pending handler calls and
//! allocator overhead). The target is 2 KiB per parked rider-photo execution.

use std::time::{Duration, Instant};

use sfn::executor::{Engine, Input, MachineSpec, Shutdown};
use sfn::handlers::{Handler, TaskError};
use sfn::validate::MachineType;
use sfn_benches::{provenance, rider_handlers, Workload};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const FACE_DETECTION: &str =
    "arn:aws:lambda:us-west-2:012345678912:function:wild-ryde-step-module-FaceDetectionFunction-4AYSKX2EGPV0";

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn measure(kind: &str, definition: &[u8], n: u64) {
    let mut handlers = rider_handlers();
    handlers.register(
        FACE_DETECTION,
        Handler::future(|_, _| std::future::pending::<Result<serde_json::Value, TaskError>>()),
    );
    let engine = Engine::builder().shards(1).inbox_capacity(1 << 20).handlers(handlers).build();
    let machine = engine
        .register(MachineSpec::new("RiderPhotoProcessingExpress", definition, MachineType::Express))
        .expect("valid definition");
    let input = Input::from_json(Workload::Rider.input()).expect("valid input");
    // Warm the runtime (threads, pools) before the baseline.
    engine.start(&machine, &input, None).expect("accepted");
    let parked = |e: &Engine| e.gauges().iter().map(|g| g.parked).sum::<u64>();
    while parked(&engine) < 1 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let rss0 = rss_bytes();
    for _ in 0..n {
        while engine.start(&machine, &input, None).is_err() {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while parked(&engine) < n + 1 {
        assert!(Instant::now() < deadline, "executions did not park");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    let rss1 = rss_bytes();
    let g = &engine.gauges()[0];
    let engine_bytes = g.arena_bytes + g.table_bytes;
    let line = provenance::stamp(
        serde_json::json!({
            "measure": "parked_execution_bytes",
            "parked_in": kind,
            "workload": "rider",
            "executions": g.parked,
            "arena_bytes_per_execution": g.arena_bytes / g.parked,
            "engine_bytes_per_execution": engine_bytes / g.parked,
            "rss_bytes_per_execution": rss1.saturating_sub(rss0) / n,
            "rss_bytes": rss1,
        }),
        format!("target/release/parked-memory {kind} {n}"),
    );
    println!("{line}");
    let report = engine.shutdown(Shutdown::Abandon);
    assert_eq!(report.abandoned, n + 1);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("async-task", String::as_str);
    let n = args.get(2).map_or(100_000, |a| a.parse().expect("N is a number"));
    if kind == "async-task" {
        measure("async-task", Workload::Rider.definition(), n);
        return;
    }
    assert_eq!(kind, "wait", "usage: parked-memory [async-task|wait] [N]");
    // The same workflow behind a 60-second Wait.
    let mut def: serde_json::Value = serde_json::from_slice(Workload::Rider.definition()).expect("JSON");
    let start = def["StartAt"].as_str().expect("StartAt").to_owned();
    def["States"]["Hold"] = serde_json::json!({"Type": "Wait", "Seconds": 60, "Next": start});
    def["StartAt"] = "Hold".into();
    measure("wait", &serde_json::to_vec(&def).expect("JSON"), n);
}
