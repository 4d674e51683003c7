//! User markers (`Platform::mark`) on their way into the event log.
//!
//! A user thread runs ahead of the engine's clock between round trips (burns and clock
//! reads up to its CPU's horizon, see `coro.rs`), so the markers it hands over carry times
//! the engine has not reached yet. They wait here until the engine's clock passes them,
//! so the log stays in time order. An interrupt that cuts the thread's burn before a
//! marker's time means the thread had not got there yet: the marker moves with the rest
//! of the burn to when the thread runs again, exactly as the burn itself does
//! (`Task::pending_remaining`). Markers never influence the simulation.

use std::collections::{BTreeMap, VecDeque};

use rseq_abi::Marker;

use crate::coro::Marks;
use crate::trace::{LogKind, LogRecord};

/// Markers the engine's clock has not reached yet, and those of threads an interrupt cut.
#[derive(Default)]
pub(crate) struct PendingMarks {
    /// Ordered by time, then by arrival (a thread's own markers keep their order). A few
    /// at a time: they are taken from the front as soon as the clock reaches them.
    ahead: VecDeque<LogRecord>,
    /// Task → its cut markers as (ns after the point it resumes, marker).
    cut: BTreeMap<u32, Vec<(u64, Marker)>>,
}

impl PendingMarks {
    /// `task`, running on `cpu`, reported `marks` (each at or after the engine's clock).
    pub(crate) fn add(&mut self, cpu: u32, task: u32, marks: Marks) {
        for (time, m) in marks {
            let at = self.ahead.partition_point(|r| r.time <= time);
            self.ahead.insert(
                at,
                LogRecord {
                    time,
                    cpu,
                    task: Some(task),
                    kind: LogKind::Mark(m),
                },
            );
        }
    }

    /// Remove and return the earliest marker if it is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<LogRecord> {
        if self.ahead.front()?.time <= now {
            self.ahead.pop_front()
        } else {
            None
        }
    }

    /// An interrupt at `now` cut `task`'s user code: its markers after `now` wait for it to
    /// run again.
    pub(crate) fn cut(&mut self, task: u32, now: u64) {
        let mut moved = Vec::new();
        self.ahead.retain(|r| match r.kind {
            LogKind::Mark(m) if r.task == Some(task) && r.time > now => {
                moved.push((r.time - now, m));
                false
            }
            _ => true,
        });
        if !moved.is_empty() {
            self.cut.entry(task).or_default().extend(moved);
        }
    }

    /// `task` continues its cut user code on `cpu` at `now`.
    pub(crate) fn resume(&mut self, cpu: u32, task: u32, now: u64) {
        if let Some(marks) = self.cut.remove(&task) {
            let marks = marks.into_iter().map(|(dt, m)| (now + dt, m)).collect();
            self.add(cpu, task, marks);
        }
    }

    /// `task`'s cut user code will not continue (a restartable sequence was aborted): its
    /// markers after the cut never happen.
    pub(crate) fn drop_cut(&mut self, task: u32) {
        self.cut.remove(&task);
    }

    /// `task` is gone: markers it has not reached never happened.
    pub(crate) fn forget(&mut self, task: u32) {
        self.ahead.retain(|r| r.task != Some(task));
        self.cut.remove(&task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(p: &mut PendingMarks, now: u64) -> Vec<(u64, Option<u32>)> {
        std::iter::from_fn(|| p.pop_due(now))
            .map(|r| (r.time, r.task))
            .collect()
    }

    #[test]
    fn markers_wait_for_the_clock_and_move_with_a_cut_burn() {
        let mut p = PendingMarks::default();
        p.add(0, 1, vec![(100, Marker::CsEnter), (300, Marker::CsExit)]);
        p.add(1, 2, vec![(200, Marker::CsEnter)]);
        assert_eq!(times(&mut p, 99), vec![]);
        assert_eq!(times(&mut p, 100), vec![(100, Some(1))]);
        // Task 1 is interrupted at 250: its marker at 300 lies 50 ns into the rest of
        // its burn, which it resumes at 1000.
        p.cut(1, 250);
        assert_eq!(times(&mut p, 999), vec![(200, Some(2))]);
        p.resume(0, 1, 1000);
        assert_eq!(times(&mut p, 1049), vec![]);
        assert_eq!(times(&mut p, 1050), vec![(1050, Some(1))]);
        p.add(0, 3, vec![(2000, Marker::CsEnter)]);
        p.forget(3);
        assert_eq!(times(&mut p, u64::MAX), vec![]);
    }
}
