//! The event queue: one binary heap ordered by (time, tie-break key, sequence number).
//!
//! Equal timestamps are ordered by insertion sequence (FIFO) unless the seeded tie-break
//! mode gives each event a random key first; the sequence number keeps the order total in
//! both modes, so a (configuration, seed) pair always pops the same sequence.
//! Push and pop are O(log n).

use std::cmp::{Ordering, Reverse};
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
///
/// Beside the ordering heap it keeps, per CPU, the times of the events aimed at that CPU
/// (and separately those aimed at none), so [`Self::peek_time_for`] can tell how far a
/// CPU's user code may run on its own. Events of one target pop in time order, so each
/// side heap's minimum is always the popped event's time.
#[derive(Default)]
pub struct EventQueue {
    heap: BinaryHeap<Entry>,
    seq: u64,
    per_cpu: Vec<BinaryHeap<Reverse<u64>>>,
    untargeted: BinaryHeap<Reverse<u64>>,
}

impl EventQueue {
    /// An empty queue for `cpus` CPUs.
    pub fn new(cpus: usize) -> Self {
        Self {
            per_cpu: (0..cpus).map(|_| BinaryHeap::new()).collect(),
            ..Self::default()
        }
    }

    fn side(&mut self, event: &Event) -> &mut BinaryHeap<Reverse<u64>> {
        match event.cpu() {
            Some(c) => &mut self.per_cpu[c as usize],
            None => &mut self.untargeted,
        }
    }

    /// Schedule `event` at `time`; `key` orders it among events of the same time (0 in FIFO
    /// mode, a random draw in seeded mode).
    pub fn push(&mut self, time: u64, key: u64, event: Event) {
        self.seq += 1;
        self.side(&event).push(Reverse(time));
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

    /// Time of the earliest event aimed at `cpu` or at no CPU in particular.
    pub fn peek_time_for(&self, cpu: u32) -> Option<u64> {
        let mine = self.per_cpu[cpu as usize].peek().map(|r| r.0);
        let any = self.untargeted.peek().map(|r| r.0);
        match (mine, any) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Remove and return the earliest event if its time is before `limit`.
    pub fn pop_before(&mut self, limit: u64) -> Option<(u64, Event)> {
        if self.heap.peek()?.time >= limit {
            return None;
        }
        let e = self.heap.pop()?;
        let side = self.side(&e.event).pop();
        debug_assert_eq!(side, Some(Reverse(e.time)), "side heap out of step");
        Some((e.time, e.event))
    }

    /// Number of queued events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}
