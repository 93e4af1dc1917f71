//! Counts heap allocations per execution on the sharded engine's hot path, once the arena
//! pool is warm: `Engine::start` on the calling thread, the inbox hand-off, and the shard
//! beginning, running and ending the execution (metrics included).
//!
//! Why it holds at zero: the start request is a fixed-size value in a preallocated
//! `ArrayQueue` slot; the input is shared, not copied (`Input` clones share bytes); the
//! execution is built in a reused table slot over a pooled arena; names and ARNs are
//! written into that arena; histograms are sized up front. A change that allocates per
//! execution fails here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sfn_benches::{EngineBench, Workload};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// Safety: forwards every call to `System` unchanged; it only counts them.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Starts `n` executions and waits (sleeping, which does not allocate) until they ended.
fn run(bench: &EngineBench, n: u64) {
    let target = bench.engine.ended(&bench.machine) + n;
    for _ in 0..n {
        bench.engine.start(&bench.machine, &bench.input, None).expect("the inbox has room");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while bench.engine.ended(&bench.machine) < target {
        assert!(Instant::now() < deadline, "executions did not end");
        std::thread::sleep(Duration::from_millis(1));
    }
}

// The only test in this binary: another test running on a parallel thread would be counted.
#[test]
fn a_warm_engine_allocates_nothing_per_execution() {
    for w in [Workload::Pass4, Workload::Rider] {
        let bench = EngineBench::new(w, 1);
        // Warm up in batches of the size measured, so the table and the pool reach the
        // size the measured batch needs.
        for _ in 0..3 {
            run(&bench, 1_000);
        }
        let before = ALLOCS.load(Ordering::Relaxed);
        run(&bench, 1_000);
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(allocs, 0, "{}: {allocs} heap allocations for 1,000 warm executions", w.name());
        let metrics = bench.engine.metrics(&bench.machine);
        assert_eq!(metrics.succeeded, 4_001, "{}: every execution succeeded", w.name());
    }
}
