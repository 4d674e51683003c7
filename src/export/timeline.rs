//! Views of the log that several exporters share: who runs on each CPU, grant windows,
//! the slice timer's queued spans, why a task left the CPU, and the counters over time.
//!
//! Each is one pass over the log (two for [`prev_states`]); none looks at the simulation.

use std::collections::BTreeMap;

use rseq_abi::layout::offset;
use rseq_sim::{LogKind, LogRecord, RevokePath, SliceStats};

use super::TraceInput;

/// Every task id a record names: its own task and the ones inside its kind.
pub(crate) fn tasks_named(r: &LogRecord) -> impl Iterator<Item = u32> {
    let inner = match r.kind {
        LogKind::Switch { prev, next } => [prev, next],
        LogKind::Wakeup { task, .. } | LogKind::Migrate { task, .. } => [Some(task), None],
        _ => [None, None],
    };
    [r.task, inner[0], inner[1]].into_iter().flatten()
}

/// Is this a user store that sets the slice request (merged: `request` byte non-zero; V1:
/// the REQUEST bit)?
pub(crate) fn is_request(input: &TraceInput<'_>, r: &LogRecord) -> bool {
    match r.kind {
        LogKind::UserStore { off, after } => {
            usize::from(off) == offset::REQUEST
                && after.is_requested(input.meta.revision, input.meta.endian)
        }
        _ => false,
    }
}

/// The current task of each CPU, followed through `Switch` records.
pub(crate) struct Current(Vec<Option<u32>>);

impl Current {
    /// All CPUs idle.
    pub(crate) fn new(cpus: u32) -> Self {
        Current(vec![None; cpus as usize])
    }

    /// Current task of `cpu` (before `observe` of the record being handled).
    pub(crate) fn get(&self, cpu: u32) -> Option<u32> {
        self.0[cpu as usize]
    }

    /// Take a record into account.
    pub(crate) fn observe(&mut self, r: &LogRecord) {
        if let LogKind::Switch { next, .. } = r.kind {
            self.0[r.cpu as usize] = next;
        }
    }
}

/// A task on a CPU, from the switch to it until the switch away (or the end of the trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RunSpan {
    pub cpu: u32,
    pub task: u32,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Who ran where, in order of the switch that ended each span (open spans last).
pub(crate) fn running_spans(input: &TraceInput<'_>) -> Vec<RunSpan> {
    let mut open: Vec<Option<(u32, u64)>> = vec![None; input.cpus as usize];
    let mut out = Vec::new();
    for r in input.log {
        if let LogKind::Switch { next, .. } = r.kind {
            let slot = &mut open[r.cpu as usize];
            if let Some((task, start_ns)) = slot.take() {
                out.push(RunSpan {
                    cpu: r.cpu,
                    task,
                    start_ns,
                    end_ns: r.time,
                });
            }
            *slot = next.map(|t| (t, r.time));
        }
    }
    let end_ns = input.end_ns();
    for (cpu, slot) in open.into_iter().enumerate() {
        if let Some((task, start_ns)) = slot {
            out.push(RunSpan {
                cpu: cpu as u32,
                task,
                start_ns,
                end_ns,
            });
        }
    }
    out
}

/// How a grant window ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrantEnd {
    /// `rseq_slice_yield()` at syscall entry (`s_yielded`).
    Yielded,
    /// Another syscall at syscall entry (`s_aborted`).
    Aborted,
    /// A syscall while the task had already been rescheduled (no counter).
    AlreadyRescheduled,
    /// The enforcement timer fired on it (`s_expired`); the revoke follows.
    Expired,
    /// A revocation path cleared it.
    Revoked(RevokePath),
    /// A new grant replaced it without a logged end (defensive: a clear the log missed).
    Regranted,
    /// The task ended.
    Exited,
    /// Still granted when the trace ends.
    EndOfTrace,
}

impl GrantEnd {
    /// Short text for trace arguments: `yield`, `revoked R2`, ...
    pub(crate) fn describe(self) -> String {
        match self {
            GrantEnd::Yielded => "yield".into(),
            GrantEnd::Aborted => "abort".into(),
            GrantEnd::AlreadyRescheduled => "syscall (already rescheduled)".into(),
            GrantEnd::Expired => "timer expired".into(),
            GrantEnd::Revoked(p) => format!("revoked {}", p.tag()),
            GrantEnd::Regranted => "regranted".into(),
            GrantEnd::Exited => "task exit".into(),
            GrantEnd::EndOfTrace => "end of trace".into(),
        }
    }
}

/// From a `Grant` record to the first of: revoke, slice syscall, timer expiry on the task,
/// task exit (or the end of the trace).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GrantWindow {
    pub task: u32,
    /// CPU of the grant.
    pub cpu: u32,
    /// CPU of the record that ended it.
    pub end_cpu: u32,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Index in the log of the `Grant` record.
    pub start_index: usize,
    /// Index in the log of the record that ended it (`None`: open at the end).
    pub end_index: Option<usize>,
    /// Absolute expiry the grant got.
    pub expires_ns: u64,
    pub end: GrantEnd,
}

/// How a record of the grant's task ends its open grant window, if it can: a new grant
/// (`Regranted`, and it opens the next), a revoke of an active grant, the syscall-entry
/// work, a hit expiry, the task's exit. Shared by every reader of the log that follows
/// grant windows (the exporters, the metrics), so they agree by construction.
pub(crate) fn grant_end(kind: &LogKind) -> Option<GrantEnd> {
    Some(match *kind {
        LogKind::Grant { .. } => GrantEnd::Regranted,
        LogKind::Revoke {
            path,
            was_granted: true,
            ..
        } => GrantEnd::Revoked(path),
        LogKind::SliceSyscall {
            yielded: Some(true),
        } => GrantEnd::Yielded,
        LogKind::SliceSyscall {
            yielded: Some(false),
        } => GrantEnd::Aborted,
        LogKind::SliceSyscall { yielded: None } => GrantEnd::AlreadyRescheduled,
        LogKind::TimerExpire { hit: true } => GrantEnd::Expired,
        LogKind::TaskExit { .. } => GrantEnd::Exited,
        _ => return None,
    })
}

/// Every grant window, in order of their end.
pub(crate) fn grant_windows(input: &TraceInput<'_>) -> Vec<GrantWindow> {
    let mut open: BTreeMap<u32, GrantWindow> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, r) in input.log.iter().enumerate() {
        let Some(task) = r.task else { continue };
        let Some(end) = grant_end(&r.kind) else {
            continue;
        };
        if let Some(mut w) = open.remove(&task) {
            w.end_ns = r.time;
            w.end_cpu = r.cpu;
            w.end_index = Some(i);
            w.end = end;
            out.push(w);
        }
        if let LogKind::Grant { expires, .. } = r.kind {
            open.insert(
                task,
                GrantWindow {
                    task,
                    cpu: r.cpu,
                    end_cpu: r.cpu,
                    start_ns: r.time,
                    end_ns: r.time,
                    start_index: i,
                    end_index: None,
                    expires_ns: expires,
                    end: GrantEnd::EndOfTrace,
                },
            );
        }
    }
    let end_ns = input.end_ns();
    out.extend(open.into_values().map(|mut w| {
        w.end_ns = end_ns;
        w
    }));
    out
}

/// How a queued span of a CPU's enforcement timer ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerEnd {
    /// It fired; `hit` = its cookie task was current and granted.
    Expired { hit: bool },
    /// `hrtimer_try_to_cancel()` at syscall entry.
    Cancelled,
    /// Started again while queued: `hrtimer_start()` dequeues it first (the kernel traces
    /// an `hrtimer_cancel` there).
    Restarted,
    /// Still queued when the trace ends.
    EndOfTrace,
}

/// One stretch during which a CPU's enforcement hrtimer was queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerSpan {
    pub cpu: u32,
    /// Task that armed it (the cookie).
    pub task: Option<u32>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub expires_ns: u64,
    pub end: TimerEnd,
}

/// The queued spans of every CPU's enforcement timer, in order of their end.
pub(crate) fn timer_spans(input: &TraceInput<'_>) -> Vec<TimerSpan> {
    let mut open: Vec<Option<TimerSpan>> = vec![None; input.cpus as usize];
    let mut out = Vec::new();
    for r in input.log {
        let slot = &mut open[r.cpu as usize];
        let end = match r.kind {
            LogKind::TimerArm { .. } => TimerEnd::Restarted,
            LogKind::TimerExpire { hit } => TimerEnd::Expired { hit },
            LogKind::TimerCancel => TimerEnd::Cancelled,
            _ => continue,
        };
        if let Some(mut s) = slot.take() {
            s.end_ns = r.time;
            s.end = end;
            out.push(s);
        }
        if let LogKind::TimerArm { expires } = r.kind {
            *slot = Some(TimerSpan {
                cpu: r.cpu,
                task: r.task,
                start_ns: r.time,
                end_ns: r.time,
                expires_ns: expires,
                end: TimerEnd::EndOfTrace,
            });
        }
    }
    let end_ns = input.end_ns();
    out.extend(open.into_iter().flatten().map(|mut s| {
        s.end_ns = end_ns;
        s
    }));
    out
}

/// Why the previous task left the CPU at a switch (`prev_state` of `sched_switch`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrevState {
    /// Still runnable (preempted or yielded): `R`.
    Runnable,
    /// Blocked until a wakeup: `S`.
    Sleeping,
    /// Exited: `X` (a thread) or `Z` (a process's first task, a zombie until reaped).
    Dead { leader: bool },
}

impl PrevState {
    /// The letter `sched_switch` prints.
    pub(crate) fn letter(self) -> &'static str {
        match self {
            PrevState::Runnable => "R",
            PrevState::Sleeping => "S",
            PrevState::Dead { leader: false } => "X",
            PrevState::Dead { leader: true } => "Z",
        }
    }

    /// The kernel's report bits (`TASK_REPORT` index as a bit: S = 1, X = 0x10, Z = 0x20).
    pub(crate) fn bits(self) -> i64 {
        match self {
            PrevState::Runnable => 0,
            PrevState::Sleeping => 1,
            PrevState::Dead { leader: false } => 0x10,
            PrevState::Dead { leader: true } => 0x20,
        }
    }
}

/// For every `Switch` record with a previous task, its `PrevState` (indexed like the log).
///
/// The log records no task state, so it is inferred: a task that exited before the switch
/// is dead; one whose next appearance is a wakeup was sleeping; anything else (switched
/// back in later, or never seen again) was runnable.
pub(crate) fn prev_states(input: &TraceInput<'_>) -> Vec<Option<PrevState>> {
    let mut exited_at: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, r) in input.log.iter().enumerate() {
        if let (LogKind::TaskExit { .. }, Some(t)) = (&r.kind, r.task) {
            exited_at.entry(t).or_insert(i);
        }
    }
    // Walking backwards: the next thing that happens to each task after this point.
    #[derive(Clone, Copy, PartialEq)]
    enum Next {
        Wakeup,
        SwitchIn,
    }
    let mut next: BTreeMap<u32, Next> = BTreeMap::new();
    let mut out = vec![None; input.log.len()];
    for (i, r) in input.log.iter().enumerate().rev() {
        match r.kind {
            LogKind::Wakeup { task, .. } => {
                next.insert(task, Next::Wakeup);
            }
            LogKind::Switch { prev, next: n } => {
                if let Some(p) = prev {
                    let leader = input.tasks.get(p as usize).is_some_and(|t| t.process == p);
                    out[i] = Some(if exited_at.get(&p).is_some_and(|&e| e < i) {
                        PrevState::Dead { leader }
                    } else if next.get(&p) == Some(&Next::Wakeup) {
                        PrevState::Sleeping
                    } else {
                        PrevState::Runnable
                    });
                }
                if let Some(n) = n {
                    next.insert(n, Next::SwitchIn);
                }
            }
            _ => {}
        }
    }
    out
}

/// The `rseq/stats` counters as the log shows them changing.
///
/// Derived from the records the engine logs with each increment: `Grant` (`s_granted`),
/// `TimerExpire` with a hit (`s_expired`), a `Revoke` of an active grant on R2/R3/R4/R5/R7
/// (`s_revoked`; R6 is the syscall path, which does not count), `SliceSyscall` (`s_yielded`,
/// `s_aborted`). A grant cleared without a logged revoke (a faulting clear) is missed, so
/// exporters state the engine's final counters separately.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StatsTracker(pub SliceStats);

impl StatsTracker {
    /// Apply a record; true if a counter changed.
    pub(crate) fn apply(&mut self, r: &LogRecord) -> bool {
        let s = &mut self.0;
        match r.kind {
            LogKind::Grant { .. } => s.granted += 1,
            LogKind::TimerExpire { hit: true } => s.expired += 1,
            LogKind::Revoke {
                path:
                    RevokePath::R2GrantPath
                    | RevokePath::R3SchedSwitch
                    | RevokePath::R4IdsChanged
                    | RevokePath::R5SlowPath
                    | RevokePath::R7Unregister,
                was_granted: true,
                ..
            } => s.revoked += 1,
            LogKind::SliceSyscall {
                yielded: Some(true),
            } => s.yielded += 1,
            LogKind::SliceSyscall {
                yielded: Some(false),
            } => s.aborted += 1,
            _ => return false,
        }
        true
    }
}
