//! `executor::arenas`: a shard's pool of reset arenas, kept in size classes.
//!
//! Input: arenas of ended executions (reset: each keeps only its largest chunk), and for
//! each start the bytes its machine's last execution on this shard used. Output: an arena
//! for the start. Never touches: executions, other shards' pools.
//!
//! Why classes: an arena keeps its largest chunk across resets, so one pool shared by every
//! machine hands the arena a 100-item Map grew to the next start, whatever it is. A start
//! that then parks for a second (a Wait) holds that memory the whole time: in a mix of
//! short, parked and large executions, parked ones held 5 → 12 KiB each as the pool filled
//! with grown arenas. Each class holds arenas of up to twice the size of the class below;
//! a start takes one from its machine's class or the one above, else a smaller one (it
//! grows as needed), else a new one sized to the need, and never one far bigger than its
//! machine has needed.

use bumpalo::Bump;

/// Class `i` holds arenas of at most `SMALLEST << i` bytes; the last class everything up
/// to the pool's keep bound.
const SMALLEST: usize = 2 << 10;
const CLASSES: usize = 6;

/// Boxed on purpose: an execution borrows its arena at a fixed address, and pooling the
/// box (not just the `Bump`) keeps taking an arena free of allocation.
#[allow(clippy::vec_box)]
pub(super) struct ArenaPool {
    classes: [Vec<Box<Bump>>; CLASSES],
    /// Capacity of a new arena when no need is known.
    first: usize,
    /// Arenas larger than this are freed instead of pooled.
    keep: usize,
    len: usize,
    bytes: usize,
}

fn class(bytes: usize) -> usize {
    let mut c = 0;
    while c + 1 < CLASSES && bytes > SMALLEST << c {
        c += 1;
    }
    c
}

impl ArenaPool {
    pub fn new(first: usize, keep: usize) -> ArenaPool {
        ArenaPool { classes: Default::default(), first, keep, len: 0, bytes: 0 }
    }

    /// An arena for an execution expected to use `need` bytes (0: unknown).
    pub fn take(&mut self, need: usize) -> Box<Bump> {
        let c = class(need);
        let above = (c + 1).min(CLASSES - 1);
        let found = [c, above].into_iter().chain((0..c).rev()).find(|&i| !self.classes[i].is_empty());
        match found.and_then(|i| self.classes[i].pop()) {
            Some(a) => {
                self.len -= 1;
                self.bytes -= a.allocated_bytes();
                a
            }
            // Not `clamp`: a builder may set `first` above `keep`.
            None => Box::new(Bump::with_capacity(need.min(self.keep).max(self.first))),
        }
    }

    /// Pools a reset arena, or frees it when it is larger than the keep bound.
    pub fn give(&mut self, arena: Box<Bump>) {
        let bytes = arena.allocated_bytes();
        if bytes <= self.keep {
            self.len += 1;
            self.bytes += bytes;
            self.classes[class(bytes)].push(arena);
        }
    }

    /// Keeps at most `arenas` arenas and `bytes` bytes, the smallest classes first; true
    /// when anything was freed.
    pub fn trim(&mut self, arenas: usize, bytes: usize) -> bool {
        if self.len <= arenas && self.bytes <= bytes {
            return false;
        }
        let (mut kept, mut kept_bytes) = (0, 0);
        for class in &mut self.classes {
            let mut keep = 0;
            for a in class.iter() {
                if kept == arenas || kept_bytes + a.allocated_bytes() > bytes {
                    break;
                }
                kept += 1;
                kept_bytes += a.allocated_bytes();
                keep += 1;
            }
            class.truncate(keep);
            class.shrink_to_fit();
        }
        self.len = kept;
        self.bytes = kept_bytes;
        true
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grown(bytes: usize) -> Box<Bump> {
        let mut a = Box::new(Bump::with_capacity(960));
        a.alloc_slice_fill_copy(bytes, 0u8);
        a.reset();
        a
    }

    #[test]
    fn a_start_never_gets_an_arena_far_bigger_than_its_machine_needed() {
        let mut pool = ArenaPool::new(960, 64 << 10);
        for _ in 0..4 {
            pool.give(grown(40 << 10));
        }
        let small = pool.take(3 << 10);
        assert!(small.allocated_bytes() <= 4 << 10, "a new small arena, not a 40 KiB one");
        assert_eq!(pool.len(), 4);
        let big = pool.take(40 << 10);
        assert!(big.allocated_bytes() >= 32 << 10, "a large need takes a large arena");
        assert_eq!(pool.len(), 3);
        pool.give(small);
        // With its own class empty, a large need takes a smaller arena before a new one.
        let mut pool2 = ArenaPool::new(960, 64 << 10);
        pool2.give(grown(3 << 10));
        assert_eq!(pool2.take(40 << 10).allocated_bytes(), grown(3 << 10).allocated_bytes());
        assert_eq!(pool2.len(), 0);
    }

    #[test]
    fn new_arenas_are_sized_to_the_need_within_the_bounds() {
        let mut pool = ArenaPool::new(960, 64 << 10);
        assert!(pool.take(0).allocated_bytes() >= 960);
        assert!(pool.take(6 << 10).allocated_bytes() >= 6 << 10);
        assert!(pool.take(1 << 20).allocated_bytes() < 128 << 10, "capped at the keep bound");
    }

    #[test]
    fn a_first_size_above_the_keep_bound_is_not_a_panic() {
        let mut pool = ArenaPool::new(8 << 10, 1 << 10);
        assert!(pool.take(64 << 10).allocated_bytes() >= 8 << 10);
        pool.give(grown(4 << 10));
        assert_eq!(pool.len(), 0, "over the keep bound: freed");
    }

    #[test]
    fn oversized_arenas_are_freed_and_trim_keeps_the_smallest() {
        let mut pool = ArenaPool::new(960, 16 << 10);
        pool.give(grown(40 << 10));
        assert_eq!(pool.len(), 0, "over the keep bound");
        for _ in 0..3 {
            pool.give(grown(8 << 10));
            pool.give(grown(1 << 10));
        }
        let total = pool.bytes();
        assert!(pool.trim(4, usize::MAX));
        assert_eq!(pool.len(), 4);
        assert!(pool.bytes() < total);
        // The three small ones stay, and one of the larger.
        assert_eq!(pool.classes[0].len(), 3);
        assert!(!pool.trim(4, usize::MAX), "nothing more to give back");
    }
}
