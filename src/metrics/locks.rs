//! Lock hold and wait times, and what happened to critical sections, from the markers
//! programs report (`Platform::mark`, logged as `LogKind::Mark`).
//!
//! The markers are the program's word for where it waits, holds and must not be
//! preempted; the scheduler's records (`Switch`) and the grant windows say what the kernel
//! did meanwhile. `docs/metrics.md` defines every count.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use rseq_abi::Marker;
use rseq_sim::{LogKind, LogRecord};
use serde::Serialize;

use crate::export::timeline::{self, GrantWindow, PrevState};
use crate::export::TraceInput;

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

/// One task's critical section as the log shows it.
struct Section {
    task: u32,
    enter_index: usize,
    /// Log indices of the switches away from the task inside the section.
    switches_out: Vec<usize>,
}

/// Follows the markers through one pass over the log (see [`LockTracker::observe`]).
pub(crate) struct LockTracker {
    lock_wait: Histogram<u64>,
    lock_hold: Histogram<u64>,
    /// (task, lock word) → time of its first attempt not yet followed by an acquisition.
    attempts: BTreeMap<(u32, u32), u64>,
    /// (task, lock word) → time it was acquired.
    held: BTreeMap<(u32, u32), u64>,
    /// Task → (nesting depth, its outermost open section).
    open: BTreeMap<u32, (u32, Section)>,
    /// Closed sections with the index of their `cs_exit`.
    closed: Vec<(Section, usize)>,
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
            closed: Vec::new(),
            exited_open: 0,
        }
    }

    /// Take log record `i` into account.
    pub(crate) fn observe(&mut self, i: usize, r: &LogRecord) {
        match r.kind {
            LogKind::Mark(m) => {
                let Some(task) = r.task else { return };
                self.mark(i, r.time, task, m);
            }
            LogKind::Switch { prev: Some(p), .. } => {
                if let Some((_, s)) = self.open.get_mut(&p) {
                    s.switches_out.push(i);
                }
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

    fn mark(&mut self, i: usize, time: u64, task: u32, m: Marker) {
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
                            task,
                            enter_index: i,
                            switches_out: Vec::new(),
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
                        self.closed.push((s, i));
                    }
                }
            }
        }
    }

    /// The lock wait and hold distributions and the critical-section counts, given the
    /// run's grant windows.
    pub(crate) fn finish(
        self,
        input: &TraceInput<'_>,
        windows: &[GrantWindow],
    ) -> (Summary, Summary, CriticalSections) {
        // Per task, its grant windows by start: they never overlap (a new grant ends the
        // previous one), so their ends are in order too.
        let mut grants: BTreeMap<u32, Vec<(usize, Option<usize>)>> = BTreeMap::new();
        for w in windows {
            grants
                .entry(w.task)
                .or_default()
                .push((w.start_index, w.end_index));
        }
        grants.values_mut().for_each(|v| v.sort_unstable());
        // `prev_states` is a pass over the whole log: only when a section was left.
        let states = if self.closed.iter().any(|(s, _)| !s.switches_out.is_empty()) {
            timeline::prev_states(input)
        } else {
            Vec::new()
        };
        let mut cs = CriticalSections {
            open: self.exited_open + self.open.len() as u64,
            ..Default::default()
        };
        for (s, exit_index) in &self.closed {
            cs.total += 1;
            let left = |want: PrevState| s.switches_out.iter().any(|&i| states[i] == Some(want));
            if left(PrevState::Runnable) {
                cs.preempted += 1;
            } else if !s.switches_out.is_empty() {
                cs.blocked += 1;
            } else if overlaps(grants.get(&s.task), s.enter_index, *exit_index) {
                cs.grant_covered += 1;
            } else {
                cs.no_grant_needed += 1;
            }
        }
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

/// Does a grant window (by log index, `None` = still open) overlap `enter..exit`?
fn overlaps(windows: Option<&Vec<(usize, Option<usize>)>>, enter: usize, exit: usize) -> bool {
    let Some(ws) = windows else { return false };
    // The last window that started before the exit is the only candidate: every earlier
    // one ended before it started.
    let n = ws.partition_point(|&(start, _)| start < exit);
    n > 0 && ws[n - 1].1.is_none_or(|end| end > enter)
}
