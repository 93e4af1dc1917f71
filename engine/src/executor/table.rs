//! `executor::table`: a shard's table of execution slots: a vector that grows by whole
//! chunks and never moves what it holds.
//!
//! Input: slots pushed at the end. Output: slots by index. Never touches: what a slot holds.
//!
//! Why not a `Vec`: a slot holds a whole execution, and a `Vec` that doubles copies every
//! slot. On this project's 2-vCPU machine a shard stalled 1.4–17.8 ms in one start while its
//! table doubled from 2,048 to 16,384 slots (the first second of the `mixed` load, while
//! one-second Waits pile up), which is start latency for every start queued behind it.
//! Here growing allocates one more chunk and copies nothing but the chunk list.

use std::ops::{Index, IndexMut};

/// Slots per chunk (a power of two).
const CHUNK: usize = 1024;

pub(super) struct Table<T> {
    /// Every chunk has capacity `CHUNK` and is full except the last.
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table { chunks: Vec::new(), len: 0 }
    }
}

impl<T> Table<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated (a whole number of chunks).
    pub fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    /// Appends `value`; returns its index.
    pub fn push(&mut self, value: T) -> usize {
        if self.len == self.capacity() {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("a chunk with room").push(value);
        self.len += 1;
        self.len - 1
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.chunks.iter_mut().flatten()
    }
}

impl<T> Index<usize> for Table<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl<T> IndexMut<usize> for Table<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_keep_their_index_and_address_as_the_table_grows() {
        let mut t = Table::default();
        assert_eq!(push_all(&mut t, 0..3), [0, 1, 2]);
        let first = &t[0] as *const u64;
        push_all(&mut t, 3..(3 * CHUNK as u64 + 5));
        assert_eq!(t.len(), 3 * CHUNK + 5);
        assert_eq!(t.capacity(), 4 * CHUNK);
        assert_eq!(first, &t[0] as *const u64, "growing moved a slot");
        for i in [0, CHUNK - 1, CHUNK, 2 * CHUNK + 7, 3 * CHUNK + 4] {
            assert_eq!(t[i], i as u64);
            assert_eq!(t.get(i), Some(&(i as u64)));
        }
        assert_eq!(t.get(3 * CHUNK + 5), None);
        t[CHUNK] = 7;
        *t.get_mut(CHUNK + 1).unwrap() = 8;
        assert_eq!((t[CHUNK], t[CHUNK + 1]), (7, 8));
        assert_eq!(t.iter().count(), t.len());
        t.iter_mut().for_each(|x| *x = 1);
        assert!(t.iter().all(|&x| x == 1));
    }

    fn push_all(t: &mut Table<u64>, values: std::ops::Range<u64>) -> Vec<usize> {
        values.map(|v| t.push(v)).collect()
    }
}
