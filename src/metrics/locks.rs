//! Lock hold and wait times, and what happened to critical sections, from the markers
//! programs report (`Platform::mark`, logged as `LogKind::Mark`).
//!
//! The markers are the program's word for where it waits, holds and must not be
//! preempted; the scheduler's records (`Switch`) and the grant windows say what the kernel
//! did meanwhile. `docs/metrics.md` defines every count.

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;
use rseq_abi::Marker;
use rseq_sim::{LogKind, LogRecord};
use serde::Serialize;

use super::{hist, record, Summary};

/// Critical sections (a task's `cs_enter` → `cs_exit`) by what happened inside them.
/// Every closed section is in exactly one of `preempted`, `blocked`, `grant_covered`,
/// `no_grant_needed`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CriticalSections {
    /// Sections that closed (`cs_exit`) before the run ended: the base of the percentages.
    pub total: u64,
    /// Scheduled out while runnable (involuntarily) at least once inside the section.
    pub preempted: u64,
    /// Not preempted, but slept (scheduled out waiting for a wakeup) inside the section.
    pub blocked: u64,
    /// Not scheduled out, and a grant of the task overlapped the section: the extension
    /// kept it on the CPU.
    pub grant_covered: u64,
    /// Not scheduled out and no grant overlapped: it ran through on its own.
    pub no_grant_needed: u64,
    /// Sections still open when the run ended or the task exited (not in `total`).
    pub open: u64,
    /// `preempted` in % of `total` (0 without sections).
    pub preempted_pct: f64,
    /// `blocked` in % of `total`.
    pub blocked_pct: f64,
    /// `grant_covered` in % of `total`.
    pub grant_covered_pct: f64,
    /// `no_grant_needed` in % of `total`.
    pub no_grant_needed_pct: f64,
}

impl CriticalSections {
    /// The counts by name, in print order (percentages separately).
    pub fn named(&self) -> [(&'static str, u64, f64); 4] {
        [
            ("preempted", self.preempted, self.preempted_pct),
            ("blocked", self.blocked, self.blocked_pct),
            ("grant_covered", self.grant_covered, self.grant_covered_pct),
            (
                "no_grant_needed",
                self.no_grant_needed,
                self.no_grant_needed_pct,
            ),
        ]
    }
}

/// One task's critical section as the log shows it, so far.
#[derive(Clone, Copy, Default)]
struct Section {
    /// Scheduled out inside it at least once.
    switched: bool,
    /// Scheduled out while runnable at least once.
    preempted: bool,
    /// A grant of the task was open at some point inside it.
    granted: bool,
}

/// Follows the markers through the log, record by record (see [`LockTracker::observe`]),
/// holding per task at most one open section and one waiting for its last switch's state:
/// memory does not grow with the length of the run.
pub(crate) struct LockTracker {
    lock_wait: Histogram<u64>,
    lock_hold: Histogram<u64>,
    /// (task, lock word) → time of its first attempt not yet followed by an acquisition.
    attempts: BTreeMap<(u32, u32), u64>,
    /// (task, lock word) → time it was acquired.
    held: BTreeMap<(u32, u32), u64>,
    /// Task → (nesting depth, its outermost open section).
    open: BTreeMap<u32, (u32, Section)>,
    /// Task → its closed section whose last switch away is not known to be a preemption
    /// or a sleep yet (the task's next wakeup or switch-in tells, as for `prev_state`).
    awaiting: BTreeMap<u32, Section>,
    /// Tasks switched away inside a section, until their next wakeup or switch-in.
    pending: BTreeSet<u32>,
    /// Closed sections, counted.
    cs: CriticalSections,
    /// Sections that ended with their task.
    exited_open: u64,
}

impl LockTracker {
    pub(crate) fn new() -> Self {
        LockTracker {
            lock_wait: hist(),
            lock_hold: hist(),
            attempts: BTreeMap::new(),
            held: BTreeMap::new(),
            open: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            pending: BTreeSet::new(),
            cs: CriticalSections::default(),
            exited_open: 0,
        }
    }

    /// Take the next log record into account; `granted` says whether `task` has a grant
    /// open before this record.
    pub(crate) fn observe(&mut self, r: &LogRecord, granted: impl Fn(u32) -> bool) {
        match r.kind {
            LogKind::Mark(m) => {
                let Some(task) = r.task else { return };
                self.mark(r.time, task, m, granted(task));
            }
            LogKind::Grant { .. } => {
                if let Some((_, s)) = r.task.and_then(|t| self.open.get_mut(&t)) {
                    s.granted = true;
                }
            }
            LogKind::Switch { prev, next } => {
                if let Some(n) = next {
                    // Switched back in: its last switch away left it runnable.
                    if self.pending.remove(&n) {
                        self.resolve(n, true);
                    }
                }
                if let Some(p) = prev {
                    if let Some((_, s)) = self.open.get_mut(&p) {
                        s.switched = true;
                        self.pending.insert(p);
                    }
                }
            }
            // Woken: it had slept.
            LogKind::Wakeup { task, .. } if self.pending.remove(&task) => {
                self.resolve(task, false);
            }
            LogKind::TaskExit { .. } => {
                if let Some(t) = r.task {
                    // A task that exits while waiting or holding gives no sample.
                    self.attempts.retain(|&(owner, _), _| owner != t);
                    self.held.retain(|&(owner, _), _| owner != t);
                    if self.open.remove(&t).is_some() {
                        self.exited_open += 1;
                    }
                }
            }
            _ => {}
        }
    }

    /// `task`'s last switch away inside a section was a preemption (`runnable`) or a sleep.
    fn resolve(&mut self, task: u32, runnable: bool) {
        if let Some(mut s) = self.awaiting.remove(&task) {
            s.preempted |= runnable;
            self.count(s);
        } else if let Some((_, s)) = self.open.get_mut(&task) {
            s.preempted |= runnable;
        }
    }

    fn count(&mut self, s: Section) {
        let cs = &mut self.cs;
        cs.total += 1;
        if s.preempted {
            cs.preempted += 1;
        } else if s.switched {
            cs.blocked += 1;
        } else if s.granted {
            cs.grant_covered += 1;
        } else {
            cs.no_grant_needed += 1;
        }
    }

    fn mark(&mut self, time: u64, task: u32, m: Marker, granted: bool) {
        match m {
            Marker::LockAttempt(w) => {
                // A second attempt while waiting keeps the first one's time.
                self.attempts.entry((task, w.0)).or_insert(time);
            }
            Marker::LockAcquired(w) => {
                if let Some(since) = self.attempts.remove(&(task, w.0)) {
                    record(&mut self.lock_wait, time - since);
                }
                self.held.insert((task, w.0), time);
            }
            Marker::LockReleased(w) => {
                if let Some(since) = self.held.remove(&(task, w.0)) {
                    record(&mut self.lock_hold, time - since);
                }
            }
            Marker::CsEnter => {
                let (depth, _) = self.open.entry(task).or_insert_with(|| {
                    (
                        0,
                        Section {
                            granted,
                            ..Section::default()
                        },
                    )
                });
                *depth += 1;
            }
            Marker::CsExit => {
                // Nested sections count once (the outermost); an exit without an enter
                // is ignored.
                if let Some((depth, _)) = self.open.get_mut(&task) {
                    *depth -= 1;
                    if *depth == 0 {
                        let (_, s) = self.open.remove(&task).expect("present");
                        if self.pending.contains(&task) {
                            self.awaiting.insert(task, s);
                        } else {
                            self.count(s);
                        }
                    }
                }
            }
        }
    }

    /// The lock wait and hold distributions and the critical-section counts. A closed
    /// section still waiting for its last switch's state was preempted: a task never seen
    /// again after a switch away was runnable (as `prev_state` says).
    pub(crate) fn finish(mut self) -> (Summary, Summary, CriticalSections) {
        for mut s in std::mem::take(&mut self.awaiting).into_values() {
            s.preempted = true;
            self.count(s);
        }
        let mut cs = self.cs;
        cs.open = self.exited_open + self.open.len() as u64;
        let pct = |n: u64| {
            if cs.total == 0 {
                0.0
            } else {
                100.0 * n as f64 / cs.total as f64
            }
        };
        cs.preempted_pct = pct(cs.preempted);
        cs.blocked_pct = pct(cs.blocked);
        cs.grant_covered_pct = pct(cs.grant_covered);
        cs.no_grant_needed_pct = pct(cs.no_grant_needed);
        (
            Summary::of(&self.lock_wait),
            Summary::of(&self.lock_hold),
            cs,
        )
    }
}
