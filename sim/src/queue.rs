//! The event queue: one binary heap ordered by (time, tie-break key, sequence number).
//!
//! Equal timestamps are ordered by insertion sequence (FIFO) unless the seeded tie-break
//! mode gives each event a random key first; the sequence number keeps the order total in
//! both modes, so a (configuration, seed) pair always pops the same sequence.
//! Push and pop are O(log n).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::event::Event;

struct Entry {
    time: u64,
    key: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed: BinaryHeap is a max-heap and we want the earliest entry on top.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.key, other.seq).cmp(&(self.time, self.key, self.seq))
    }
}

/// A min-queue of timed events with a total, documented order.
#[derive(Default)]
pub struct EventQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl EventQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedule `event` at `time`; `key` orders it among events of the same time (0 in FIFO
    /// mode, a random draw in seeded mode).
    pub fn push(&mut self, time: u64, key: u64, event: Event) {
        self.seq += 1;
        self.heap.push(Entry {
            time,
            key,
            seq: self.seq,
            event,
        });
    }

    /// Time of the earliest event, if any.
    pub fn peek_time(&self) -> Option<u64> {
        self.heap.peek().map(|e| e.time)
    }

    /// Remove and return the earliest event if its time is before `limit`.
    pub fn pop_before(&mut self, limit: u64) -> Option<(u64, Event)> {
        if self.heap.peek()?.time >= limit {
            return None;
        }
        self.heap.pop().map(|e| (e.time, e.event))
    }

    /// Number of queued events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}
