//! `engine-throughput WORKLOAD SHARDS N`: starts N executions of a built-in workload on the
//! sharded engine and prints executions per second (`SHARDS` 0: the same executions run
//! directly on the calling thread, the baseline without the runtime). With `JSON=1` set it
//! prints one JSON line with provenance instead, for `results/executor.jsonl`. A plain driver for profilers (perf,
//! callgrind), without criterion's statistics in the same process.

use sfn_benches::{provenance, EngineBench, Runner, Workload};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: engine-throughput WORKLOAD SHARDS N   (WORKLOAD: pass4, rider, choice-loop, map100)";
    let [_, w, shards, n] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Some(w) = Workload::ALL.into_iter().find(|x| x.name() == w) else {
        eprintln!("unknown workload {w:?}; {usage}");
        std::process::exit(2);
    };
    let (Ok(shards), Ok(n)) = (shards.parse::<usize>(), n.parse::<u64>()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    if shards == 0 {
        // The baseline: the same executions on this thread, through a reused `Runner`
        // (no queues, no shard bookkeeping).
        let prog = w.load();
        let mut runner = Runner::new(w.machine_type());
        w.check(&prog, &mut runner);
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            runner.run(&prog, w.input()).expect("valid input");
        }
        let elapsed = t0.elapsed();
        println!(
            "{} direct: {n} executions in {:.3} s = {:.0} executions/s",
            w.name(),
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64()
        );
        return;
    }
    let bench = EngineBench::new(w, shards);
    bench.run(n.min(10_000)); // warm-up
    let elapsed = bench.run(n);
    if std::env::var_os("JSON").is_some() {
        let m = bench.engine.metrics(&bench.machine);
        let line = provenance::stamp(
            serde_json::json!({
                "measure": "engine_throughput",
                "workload": w.name(),
                "shards": shards,
                "executions": n,
                "seconds": elapsed.as_secs_f64(),
                "executions_per_s": (n as f64 / elapsed.as_secs_f64()).round(),
                "transitions_per_s": (m.transitions as f64 / m.finished() as f64 * n as f64 / elapsed.as_secs_f64()).round(),
                "start_latency_ns": {"p50": m.start_latency_ns.value_at_quantile(0.5), "p99": m.start_latency_ns.value_at_quantile(0.99)},
            }),
            format!("JSON=1 target/release/engine-throughput {} {shards} {n}", w.name()),
        );
        println!("{line}");
        return;
    }
    println!(
        "{} shards={shards}: {n} executions in {:.3} s = {:.0} executions/s",
        w.name(),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
