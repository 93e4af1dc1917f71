//! `executor::metrics`: counters and latency histograms per state machine.
//!
//! Input: what the shards observe (starts taken, executions ended, transitions, latencies).
//! Output: [`MachineMetrics`] snapshots for the embedding program (and the API server).
//! Never touches: executions, queues.
//!
//! Each (machine, shard) pair has its own cache-line-aligned block written only by that
//! shard, so recording is a plain load and store (no read-modify-write shared between
//! cores) and no shard ever waits for another. Histograms sit behind a mutex that only the
//! owning shard and an occasional reader take. Readers sum the blocks; a snapshot is
//! therefore consistent per shard, not across shards. Throttled starts are counted by the
//! caller of `start` (the only place that knows), in one shared counter: that path is the
//! slow path by definition.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Latencies are recorded in nanoseconds with 2 significant digits (1% resolution), sized
/// up front for an hour (36 KiB each) so that recording never allocates on the hot path;
/// a longer duration (a Standard execution) grows the histogram once.
fn histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_max(3_600 * 1_000_000_000, 2).expect("valid bounds and precision");
    h.auto(true);
    h
}

/// A counter with one writer: increments are a load and a store, readers see a value at
/// most one increment old.
#[derive(Default)]
pub(super) struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// For gauges: the writer publishes a level rather than counting.
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// One shard's figures for one machine.
#[repr(align(128))]
pub(super) struct ShardStats {
    pub accepted: Counter,
    pub succeeded: Counter,
    pub failed: Counter,
    pub timed_out: Counter,
    pub aborted: Counter,
    pub rerun: Counter,
    pub transitions: Counter,
    /// Arena bytes the machine's last execution on this shard ended with: the size class
    /// its next start takes an arena from (`executor::arenas`). A level, not a count.
    pub arena_need: Counter,
    pub hist: Mutex<Hists>,
}

pub(super) struct Hists {
    pub start_latency: Histogram<u64>,
    pub duration: Histogram<u64>,
}

impl Default for ShardStats {
    fn default() -> Self {
        ShardStats {
            accepted: Counter::default(),
            succeeded: Counter::default(),
            failed: Counter::default(),
            timed_out: Counter::default(),
            aborted: Counter::default(),
            rerun: Counter::default(),
            transitions: Counter::default(),
            arena_need: Counter::default(),
            hist: Mutex::new(Hists { start_latency: histogram(), duration: histogram() }),
        }
    }
}

/// A snapshot of one state machine's figures, summed over the shards.
#[derive(Clone, Debug)]
pub struct MachineMetrics {
    /// Starts taken by a shard (accepted starts still queued are not counted yet).
    pub accepted: u64,
    /// Starts refused because every shard's inbox was full.
    pub throttled: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// Executions dropped unfinished by a shutdown that stopped waiting for them.
    pub aborted: u64,
    /// Executions restarted from their input after a panic (at-least-once).
    pub rerun: u64,
    /// States entered, over all runs (re-runs included).
    pub transitions: u64,
    /// From the start request to the shard beginning the execution (taking it from the
    /// inbox, parsing its input, entering its first state), in nanoseconds of the engine's
    /// clock. The request is the accepted start, or the earlier instant given to
    /// `Engine::start_requested`.
    pub start_latency_ns: Histogram<u64>,
    /// From the start to the end of each finished execution, in nanoseconds of the
    /// engine's clock (virtual time in tests).
    pub duration_ns: Histogram<u64>,
}

impl MachineMetrics {
    /// Executions taken and not yet ended.
    pub fn running(&self) -> u64 {
        self.accepted.saturating_sub(self.succeeded + self.failed + self.timed_out + self.aborted)
    }

    /// Executions ended (any status).
    pub fn finished(&self) -> u64 {
        self.succeeded + self.failed + self.timed_out
    }

    /// Ended executions (any status) without building histograms: cheap enough to poll.
    pub(super) fn ended(shards: &[ShardStats]) -> u64 {
        shards.iter().map(|s| s.succeeded.get() + s.failed.get() + s.timed_out.get() + s.aborted.get()).sum()
    }

    pub(super) fn sum(throttled: u64, shards: &[ShardStats]) -> MachineMetrics {
        let mut m = MachineMetrics {
            accepted: 0,
            throttled,
            succeeded: 0,
            failed: 0,
            timed_out: 0,
            aborted: 0,
            rerun: 0,
            transitions: 0,
            start_latency_ns: histogram(),
            duration_ns: histogram(),
        };
        for s in shards {
            // Histograms first: a counter read after its histogram never shows fewer
            // executions than the histogram holds.
            {
                let h = s.hist.lock();
                m.start_latency_ns.add(&h.start_latency).expect("auto-resizing histograms accept any value");
                m.duration_ns.add(&h.duration).expect("auto-resizing histograms accept any value");
            }
            m.accepted += s.accepted.get();
            m.succeeded += s.succeeded.get();
            m.failed += s.failed.get();
            m.timed_out += s.timed_out.get();
            m.aborted += s.aborted.get();
            m.rerun += s.rerun.get();
            m.transitions += s.transitions.get();
        }
        m
    }
}
