//! `executor::timers`: a shard's pending timers (Wait states, retry back-off, task
//! timeouts and heartbeats, the execution cap), in one min-heap.
//!
//! Input: (instant, slot, generation) entries. Output: the entries that are due.
//! Never touches: executions (the shard checks that an entry still matches the slot's
//! armed timer, so cancelled and re-armed timers are dropped lazily when they surface).
//!
//! Why a heap and not a hashed wheel: arming and firing are O(log n) with 16-byte
//! entries in one vector (a million pending timers are 16 MiB and ~20 comparisons per
//! operation), time is an arbitrary `i64` from an injectable clock (virtual time may jump
//! by hours), and there is no tick to drive. Each execution has at most one live entry
//! (its earliest deadline); stale entries are bounded by the number of re-arms.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timer {
    pub at: i64,
    pub slot: u32,
    pub gen: u32,
}

#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Timer>>,
}

impl Timers {
    pub fn arm(&mut self, t: Timer) {
        self.heap.push(Reverse(t));
    }

    /// The earliest pending instant (possibly of a stale entry: waking for it is harmless).
    pub fn next(&self) -> Option<i64> {
        self.heap.peek().map(|Reverse(t)| t.at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: i64) -> Option<Timer> {
        match self.heap.peek() {
            Some(Reverse(t)) if t.at <= now => self.heap.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn clear(&mut self) {
        self.heap.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_entries_come_out_in_time_order_and_later_ones_stay() {
        let mut t = Timers::default();
        for (at, slot) in [(30, 3), (10, 1), (20, 2), (40, 4)] {
            t.arm(Timer { at, slot, gen: 0 });
        }
        assert_eq!(t.next(), Some(10));
        let due: Vec<u32> = std::iter::from_fn(|| t.pop_due(30)).map(|x| x.slot).collect();
        assert_eq!(due, [1, 2, 3]);
        assert_eq!(t.next(), Some(40));
        assert_eq!(t.pop_due(39), None);
        assert_eq!(t.len(), 1);
    }
}
