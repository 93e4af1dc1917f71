//! `clock`: the clock of an engine-backed `sfn` process: wall time plus an offset that
//! only grows, and `--wait-scale` done by the driver rather than by whoever sleeps.
//!
//! Input: the wait scale and the offset an earlier process left in the store directory.
//! Output: the engine's [`Clock`]. Never touches: the engine (the driver in `session`
//! decides when to skip ahead, with [`CliClock::skip_to`]).
//!
//! Why not `sfn::clock::ScaledClock`: it advances time only for a thread that sleeps, and
//! the executor's shards never sleep on the clock (they park for `real_wait`). Here, once
//! every execution is idle but for a timer, the driver moves the clock to that timer at
//! once; the shard, parked for the scaled distance, then finds its instant reached. The
//! offset is saved in the store directory so that a later process never sees time run
//! backwards: journaled clock readings, deadlines and history dates stay ordered.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use sfn::clock::{system_now, Clock, NANOS_PER_SEC};

/// Timers further away than this are not scaled: they are the Standard one-year limit (or
/// waits that long), and a shard parked on one with scale 0 would spin instead of sleeping.
const UNSCALED_BEYOND: i64 = 300 * 24 * 3600 * NANOS_PER_SEC;

#[derive(Debug)]
pub struct CliClock {
    scale: f64,
    offset: AtomicI64,
    /// Calls of [`Clock::real_wait`]: a shard asks it only right before it parks, after it
    /// has published its gauges, so this counts the shards' turns that ended with a timer
    /// pending (the driver's evidence that a shard has been through a whole turn).
    parks: AtomicU64,
    /// `parks` as of the last clock reading on a shard thread: names the turn the shard
    /// was in (a reading after the `n`th park is in a turn that ends with park `n + 1`).
    shard_turn: AtomicU64,
}

thread_local! {
    /// The executor names its shard threads `sfn-shard-N`.
    static ON_SHARD: bool = std::thread::current().name().is_some_and(|n| n.starts_with("sfn-shard-"));
}

impl CliClock {
    /// `scale` is `--wait-scale` (checked by the caller: finite, >= 0); `offset` what the
    /// last process using the store left (0 for a new one).
    pub fn new(scale: f64, offset: i64) -> CliClock {
        CliClock {
            scale,
            offset: AtomicI64::new(offset.max(0)),
            parks: AtomicU64::new(0),
            shard_turn: AtomicU64::new(0),
        }
    }

    /// How far ahead of wall time this clock is (nanoseconds).
    pub fn offset(&self) -> i64 {
        self.offset.load(Ordering::SeqCst)
    }

    /// Moves the clock forward to `t` now (a no-op if it is there already).
    pub fn skip_to(&self, t: i64) {
        let ahead = t - self.now();
        if ahead > 0 {
            self.offset.fetch_add(ahead, Ordering::SeqCst);
        }
    }

    /// How many times a shard has been about to park (see the field).
    pub fn parks(&self) -> u64 {
        self.parks.load(Ordering::SeqCst)
    }

    /// The turn of the shard's latest clock reading: it has ended once
    /// [`CliClock::parks`] exceeds this.
    pub fn shard_turn(&self) -> u64 {
        self.shard_turn.load(Ordering::SeqCst)
    }

    /// Whether the driver shortens waits (scale below 1).
    pub fn skips(&self) -> bool {
        self.scale < 1.0
    }
}

impl Clock for CliClock {
    fn now(&self) -> i64 {
        if ON_SHARD.with(|s| *s) {
            self.shard_turn.store(self.parks.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        system_now() + self.offset.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, t: i64) {
        let ahead = t.saturating_sub(self.now()).max(0);
        std::thread::sleep(self.distance(t));
        if self.skips() && ahead <= UNSCALED_BEYOND {
            self.skip_to(t);
        }
    }

    fn real_wait(&self, t: i64) -> Duration {
        self.parks.fetch_add(1, Ordering::SeqCst);
        self.distance(t)
    }
}

impl CliClock {
    /// Not a reading of the clock for [`CliClock::shard_turn`]: `real_wait` asks it at
    /// the very end of a turn.
    fn distance(&self, t: i64) -> Duration {
        let now = system_now() + self.offset.load(Ordering::SeqCst);
        let ahead = t.saturating_sub(now).max(0);
        if self.scale == 1.0 || ahead > UNSCALED_BEYOND {
            Duration::from_nanos(ahead as u64)
        } else {
            Duration::from_nanos((ahead as f64 * self.scale) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_moves_the_clock_forward_only() {
        let c = CliClock::new(0.0, 0);
        let t = c.now() + 3600 * NANOS_PER_SEC;
        assert_eq!(c.real_wait(t), Duration::ZERO);
        c.skip_to(t);
        assert!(c.now() >= t);
        let offset = c.offset();
        c.skip_to(t - NANOS_PER_SEC);
        assert_eq!(c.offset(), offset, "never backwards");
        // The one-year limit is waited in real time, whatever the scale.
        let far = c.now() + 366 * 24 * 3600 * NANOS_PER_SEC;
        assert!(c.real_wait(far) > Duration::from_secs(300 * 24 * 3600));
    }

    #[test]
    fn scale_one_is_wall_time_plus_the_saved_offset() {
        let c = CliClock::new(1.0, 5 * NANOS_PER_SEC);
        let d = c.now() - system_now();
        assert!((4 * NANOS_PER_SEC..=6 * NANOS_PER_SEC).contains(&d));
        assert!(!c.skips());
    }
}
