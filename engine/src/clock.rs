//! `clock`: the injectable source of time.
//!
//! Input: nothing. Output: the current time in Unix nanoseconds, and a way to wait until a
//! later time. Never touches: execution state.
//!
//! Everything that depends on time (Wait states, retry back-off, task and execution
//! timeouts, `$$.Execution.StartTime`) reads a `Clock`, so tests run on [`ManualClock`]
//! (virtual time: instant and deterministic) and the CLI's `--wait-scale` is a
//! [`ScaledClock`] (waits are shortened in real time, but the execution still sees the full
//! wait elapse, so timestamps and deadlines stay consistent).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
#[cfg(not(unix))]
use std::time::{SystemTime, UNIX_EPOCH};

pub const NANOS_PER_SEC: i64 = 1_000_000_000;

pub trait Clock: Send + Sync {
    /// Now, in nanoseconds since the Unix epoch.
    fn now(&self) -> i64;
    /// Blocks (or advances virtual time) until `now() >= t`.
    fn sleep_until(&self, t: i64);
    /// How long, in real time, a thread that waits for `t` while also watching a queue
    /// (a shard of the executor) may park before it reads the clock again. The default
    /// is the distance on this clock; virtual clocks answer shorter.
    fn real_wait(&self, t: i64) -> Duration {
        Duration::from_nanos(t.saturating_sub(self.now()).max(0) as u64)
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[cfg(unix)]
pub fn system_now() -> i64 {
    // One vDSO call and a multiply: `SystemTime::duration_since` added a checked
    // subtraction of two timespecs and 128-bit arithmetic to each of the two or three
    // readings an execution takes (about 1% of a rider-photo execution's instructions).
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Safety: `ts` is a valid, writable timespec and CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    // time_t and c_long are 32 bits wide on some unix targets.
    #[allow(clippy::unnecessary_cast)]
    (ts.tv_sec as i64).saturating_mul(NANOS_PER_SEC).saturating_add(ts.tv_nsec as i64).max(0)
}

#[cfg(not(unix))]
pub fn system_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        system_now()
    }
    fn sleep_until(&self, t: i64) {
        let now = self.now();
        if t > now {
            std::thread::sleep(Duration::from_nanos((t - now) as u64));
        }
    }
}

/// Virtual time: starts where it is told and only moves when slept or advanced.
#[derive(Debug)]
pub struct ManualClock {
    nanos: AtomicI64,
}

impl ManualClock {
    pub fn new(start_nanos: i64) -> Self {
        ManualClock { nanos: AtomicI64::new(start_nanos) }
    }

    /// Starts at 2024-01-01T00:00:00Z: a fixed, recognisable instant for tests.
    pub fn fixed() -> Self {
        Self::new(1_704_067_200 * NANOS_PER_SEC)
    }

    pub fn advance(&self, nanos: i64) {
        self.nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    pub fn set(&self, nanos: i64) {
        self.nanos.store(nanos, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.nanos.load(Ordering::SeqCst)
    }
    fn sleep_until(&self, t: i64) {
        self.nanos.fetch_max(t, Ordering::SeqCst);
    }
    /// Time moves when a test says so, which no parked thread can see: look again after a
    /// millisecond.
    fn real_wait(&self, t: i64) -> Duration {
        if t <= self.now() {
            Duration::ZERO
        } else {
            Duration::from_millis(1)
        }
    }
}

/// Virtual time that runs `speed` times faster than real time, from the moment it is
/// created (which reads as the real time then). Unlike [`ScaledClock`], which skips the
/// wait of whoever sleeps, every thread sees the same time, so it suits the executor's
/// shards: with speed 1000, a 5-minute Express cap arrives after 0.3 s.
#[derive(Debug)]
pub struct SpeedClock {
    origin: i64,
    real_origin: std::time::Instant,
    speed: f64,
}

impl SpeedClock {
    pub fn new(speed: f64) -> Self {
        assert!(speed > 0.0 && speed.is_finite(), "SpeedClock speed must be a positive number");
        SpeedClock { origin: system_now(), real_origin: std::time::Instant::now(), speed }
    }
}

impl Clock for SpeedClock {
    fn now(&self) -> i64 {
        let real = self.real_origin.elapsed().as_nanos() as f64;
        self.origin + (real * self.speed) as i64
    }
    fn sleep_until(&self, t: i64) {
        std::thread::sleep(self.real_wait(t));
    }
    fn real_wait(&self, t: i64) -> Duration {
        let ahead = t.saturating_sub(self.now()).max(0) as f64;
        // Round up so a waiter never wakes just before its instant and spins.
        Duration::from_nanos((ahead / self.speed).ceil() as u64)
    }
}

/// Wall time in which every wait is scaled by `factor` (like Step Functions Local's
/// `WAIT_TIME_SCALE`): 0 skips waits, 0.1 makes them ten times shorter. The skipped part is
/// added to the clock, so the execution observes the full wait.
#[derive(Debug)]
pub struct ScaledClock {
    factor: f64,
    skipped: AtomicI64,
}

impl ScaledClock {
    pub fn new(factor: f64) -> Self {
        ScaledClock { factor: factor.max(0.0), skipped: AtomicI64::new(0) }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> i64 {
        system_now() + self.skipped.load(Ordering::SeqCst)
    }
    /// The skipped part of a wait is only known to whoever sleeps: a shard that merely
    /// parks waits the scaled time and then finds the instant reached only if someone
    /// slept through it. Prefer [`SpeedClock`] for the executor.
    fn real_wait(&self, t: i64) -> Duration {
        let ahead = t.saturating_sub(self.now()).max(0) as f64;
        Duration::from_nanos((ahead * self.factor) as u64)
    }
    fn sleep_until(&self, t: i64) {
        let wait = t - self.now();
        if wait <= 0 {
            return;
        }
        let real = (wait as f64 * self.factor) as i64;
        if real > 0 {
            std::thread::sleep(Duration::from_nanos(real as u64));
        }
        let target = t - self.now();
        if target > 0 {
            self.skipped.fetch_add(target, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_now_is_the_system_time_in_unix_nanoseconds() {
        let std_now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
        let (before, now, after) = (std_now(), system_now(), std_now());
        assert!(before <= now && now <= after, "{before} <= {now} <= {after}");
    }

    #[test]
    fn manual_clock_only_moves_when_told() {
        let c = ManualClock::new(10);
        assert_eq!(c.now(), 10);
        c.sleep_until(5);
        assert_eq!(c.now(), 10);
        c.sleep_until(50);
        assert_eq!(c.now(), 50);
    }

    #[test]
    fn speed_clock_runs_faster_than_real_time_and_waits_the_scaled_distance() {
        let c = SpeedClock::new(1000.0);
        let start = c.now();
        let t = start + 200 * 1_000_000_000; // 200 virtual seconds: 0.2 real seconds
        assert!(c.real_wait(t) <= Duration::from_millis(200));
        c.sleep_until(t);
        assert!(c.now() >= t);
    }

    #[test]
    fn scaled_clock_with_zero_factor_skips_the_wait_but_reports_it() {
        let c = ScaledClock::new(0.0);
        let start = c.now();
        let t = start + 3_600 * NANOS_PER_SEC;
        let real = std::time::Instant::now();
        c.sleep_until(t);
        assert!(real.elapsed() < Duration::from_secs(1));
        assert!(c.now() >= t);
    }
}
