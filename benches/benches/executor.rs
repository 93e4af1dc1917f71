//! Guards the sharded runtime's throughput: executions (and state transitions) per second
//! across all shards, with starts coming through the public `Engine::start` API from the
//! bench thread, as an embedding service would send them.
//!
//! For each workload (4-Pass chain, rider-photo with inline handlers, a 100-iteration
//! Choice loop, an inline Map over 100 items) and for 1 and 2 shards, one iteration starts
//! a batch of executions and waits for all of them to end; criterion reports executions
//! per second. Transitions per second are executions per second times the workload's
//! transitions per execution (printed once per workload). Scaling from 1 to 2 shards is the
//! ratio of the two figures; on a 2-core machine the starting thread shares the cores with
//! the shards, which is part of what is measured.
//!
//! Every workload's output is checked once through `start_sync` before timing, and after
//! timing every execution must have succeeded through exactly the workload's states.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sfn_benches::{EngineBench, Runner, Workload};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Executions per timed batch: large enough that start-up and the final wait are noise.
fn batch(w: Workload) -> u64 {
    match w {
        Workload::Pass4 | Workload::Rider | Workload::RiderJsonata => 20_000,
        Workload::ChoiceLoop | Workload::Map100 => 2_000,
    }
}

fn executor(c: &mut Criterion) {
    for w in Workload::ALL {
        let mut runner = Runner::new(w.machine_type());
        w.check(&w.load(), &mut runner);
        eprintln!("{}: {} state transitions per execution", w.name(), runner.transitions());
        let mut group = c.benchmark_group(format!("executor/{}", w.name()));
        group.throughput(Throughput::Elements(1));
        for shards in [1, 2] {
            let bench = EngineBench::new(w, shards);
            let n = batch(w);
            group.bench_function(format!("shards-{shards}"), |b| {
                b.iter_custom(|iters| {
                    // `iters` executions, in batches of `n`.
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let k = left.min(n);
                        total += bench.run(k);
                        left -= k;
                    }
                    total
                })
            });
            // Checksum of the timed executions: all succeeded, each entering exactly the
            // workload's states (the one checked through start_sync included).
            let metrics = bench.engine.metrics(&bench.machine);
            assert_eq!(metrics.failed + metrics.timed_out + metrics.aborted, 0, "{} failed on the engine", w.name());
            assert_eq!(
                metrics.transitions,
                metrics.succeeded * runner.transitions(),
                "{}: executions on the engine entered other states than the direct run",
                w.name()
            );
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = executor
}
criterion_main!(benches);
