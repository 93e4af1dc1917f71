//! `schedule`: when each start of an open-loop run is meant to be sent.
//!
//! Input: a target rate, a duration, an arrival process and a seed. Output: the intended
//! send times (nanoseconds from the run's origin) in order, and which of the scenario's
//! weighted components each start runs. Never touches: clocks, threads, the engine — the
//! sender reads the real clock; this module only says when it *should* have sent, which
//! is what start latency is measured from (so a late sender shows up as latency, not as
//! a silently lower rate: no coordinated omission).
//!
//! Both arrival processes offer exactly `round(rate × duration)` starts in the duration, so
//! the achieved rate can be compared with the target to 1%:
//! - `Constant`: start `i` at `i / rate`.
//! - `Poisson`: the arrival times of a Poisson process of that rate *conditioned on* that
//!   many arrivals in the duration, which are the order statistics of as many uniform
//!   times: gaps are (nearly) exponential and bursts happen, but the count is exact. They
//!   are generated in order, one at a time, from the seed (no table of a million times).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How starts arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    /// Evenly spaced.
    Constant,
    /// Random, as a Poisson process (see the module docs).
    Poisson,
}

/// The intended send times of one run, in order.
pub struct Schedule {
    arrivals: Arrivals,
    total: u64,
    issued: u64,
    duration_ns: f64,
    /// Poisson: the previous order statistic, in [0, 1).
    last_u: f64,
    rng: SmallRng,
}

impl Schedule {
    /// `rate` starts per second for `duration_s` seconds. Both must be positive and finite
    /// (the CLI checks them first).
    pub fn new(arrivals: Arrivals, rate: f64, duration_s: f64, seed: u64) -> Schedule {
        assert!(rate > 0.0 && rate.is_finite() && duration_s > 0.0 && duration_s.is_finite());
        Schedule {
            arrivals,
            total: (rate * duration_s).round().max(1.0) as u64,
            issued: 0,
            duration_ns: duration_s * 1e9,
            last_u: 0.0,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Starts the schedule offers in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Starts handed out so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// The next intended send time, in nanoseconds from the origin.
    pub fn next_at(&mut self) -> Option<u64> {
        if self.issued >= self.total {
            return None;
        }
        let i = self.issued;
        self.issued += 1;
        let frac = match self.arrivals {
            // Integer arithmetic: even spacing to the nanosecond.
            Arrivals::Constant => {
                return Some((u128::from(i) * self.duration_ns as u128 / u128::from(self.total)) as u64)
            }
            Arrivals::Poisson => {
                // The next of n sorted uniforms, given the previous one u: the minimum of
                // the k = n − i uniforms left in [u, 1) is u + (1 − u)(1 − V^(1/k)).
                let k = (self.total - i) as f64;
                let v: f64 = self.rng.random();
                self.last_u += (1.0 - self.last_u) * (1.0 - v.powf(1.0 / k));
                self.last_u
            }
        };
        Some((frac * self.duration_ns) as u64)
    }
}

/// Picks a component for each start by weight, deterministically from a seed (smooth
/// weighted round-robin: over any window of Σweights starts, each component gets exactly
/// its weight, interleaved rather than in blocks).
pub struct Mix {
    weights: Vec<u32>,
    current: Vec<i64>,
    total: i64,
}

impl Mix {
    /// Weights must not all be zero (scenarios are built with positive weights).
    pub fn new(weights: &[u32]) -> Mix {
        let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
        assert!(total > 0, "a mix needs a positive weight");
        Mix { weights: weights.to_vec(), current: vec![0; weights.len()], total }
    }

    /// The component of the next start.
    pub fn pick(&mut self) -> usize {
        let mut best = 0;
        for (i, &w) in self.weights.iter().enumerate() {
            self.current[i] += i64::from(w);
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= self.total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut s: Schedule) -> Vec<u64> {
        std::iter::from_fn(|| s.next_at()).collect()
    }

    #[test]
    fn constant_spacing_offers_exactly_rate_times_duration_evenly() {
        let times = all(Schedule::new(Arrivals::Constant, 100_000.0, 0.5, 1));
        assert_eq!(times.len(), 50_000);
        assert_eq!(times[0], 0);
        assert!(times.windows(2).all(|w| w[1] - w[0] == 10_000), "10 µs apart");
        assert_eq!(*times.last().unwrap(), 499_990_000);
    }

    #[test]
    fn poisson_offers_the_same_count_within_the_duration_with_exponential_gaps() {
        let rate = 100_000.0;
        let times = all(Schedule::new(Arrivals::Poisson, rate, 1.0, 42));
        assert_eq!(times.len(), 100_000);
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order");
        assert!(*times.last().unwrap() < 1_000_000_000);
        // Exponential gaps of mean 10 µs: the mean is 10 µs, about 63% are shorter than
        // the mean, and the spread (standard deviation) equals the mean. Deterministic for
        // the seed; the bounds are wide enough for any seed.
        let gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!((mean - 10_000.0).abs() < 100.0, "mean gap {mean}");
        let short = gaps.iter().filter(|&&g| g < mean).count() as f64 / gaps.len() as f64;
        assert!((short - 0.632).abs() < 0.01, "share below the mean {short}");
        let sd = (gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64).sqrt();
        assert!((sd / mean - 1.0).abs() < 0.03, "coefficient of variation {}", sd / mean);
    }

    #[test]
    fn the_same_seed_gives_the_same_poisson_schedule() {
        let a = all(Schedule::new(Arrivals::Poisson, 1000.0, 1.0, 7));
        let b = all(Schedule::new(Arrivals::Poisson, 1000.0, 1.0, 7));
        let c = all(Schedule::new(Arrivals::Poisson, 1000.0, 1.0, 8));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_tiny_rate_still_offers_one_start() {
        assert_eq!(all(Schedule::new(Arrivals::Constant, 0.1, 1.0, 1)), vec![0]);
    }

    #[test]
    fn the_mix_follows_the_weights_interleaved() {
        let mut mix = Mix::new(&[3, 1, 0, 6]);
        let picks: Vec<usize> = (0..10).map(|_| mix.pick()).collect();
        let count = |k| picks.iter().filter(|&&p| p == k).count();
        assert_eq!((count(0), count(1), count(2), count(3)), (3, 1, 0, 6));
        // Smooth: the heaviest component never runs more than twice in a row here.
        assert!(picks.windows(3).all(|w| !(w[0] == 3 && w[1] == 3 && w[2] == 3)), "{picks:?}");
        let again: Vec<usize> = (0..10).map(|_| mix.pick()).collect();
        assert_eq!(picks, again, "the pattern repeats every Σweights starts");
    }
}
