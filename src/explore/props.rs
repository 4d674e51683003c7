//! Properties checked on every explored run: the built-in safety invariants of the
//! protocol, read from the finished run's event log and task states.
//!
//! Each invariant has a stable name, used in reports and in `docs/races.md`:
//!
//! - `correct-code-no-sigsegv`: a task whose code follows the protocol never gets SIGSEGV.
//! - `correct-code-no-fault`: nor does it panic or run away (the engine's step budget).
//! - `grant-bounded`: no grant lasts longer than `slice_ext_nsec` plus the interrupt and
//!   syscall latencies without ending (revocation, syscall, switch or exit); a grant still
//!   open at the end of the run counts from its start to the end.
//! - `views-agree`: whenever a correct task reads its control word, the `granted` it sees
//!   equals the kernel's `granted` (the kernel clears the user byte whenever it clears its
//!   own state, spec §5 and §6.1).
//! - `yield-agrees`: every `rseq_slice_yield()` that returned 1 was counted `s_yielded` at
//!   its entry and vice versa, and the program's own count of yields that returned 1 is no
//!   more than the kernel's.

use std::collections::BTreeMap;

use rseq_abi::layout::offset;
use rseq_abi::{CtrlWord, Revision};
use rseq_sim::{LogKind, Simulation, TaskExit};

/// A broken invariant in one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant's name.
    pub property: &'static str,
    /// Simulated time it was seen, ns.
    pub at: u64,
    /// What was seen.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {} ns: {}", self.property, self.at, self.detail)
    }
}

/// Every built-in invariant's name.
pub const INVARIANTS: [&str; 5] = [
    "correct-code-no-sigsegv",
    "correct-code-no-fault",
    "grant-bounded",
    "views-agree",
    "yield-agrees",
];

#[derive(Default, Clone, Copy)]
struct TaskView {
    grant_start: Option<u64>,
    kernel_granted: bool,
    yields_counted: i64,
    yields_returned_1: i64,
}

/// Check the built-in invariants on a finished run that ended at `end`; `correct[t]` says
/// whether task `t`'s code claims to follow the protocol.
pub fn check(sim: &Simulation, correct: &[bool], end: u64) -> Vec<Violation> {
    let cfg = sim.config();
    let bound = u64::from(sim.slice_ext_nsec()) + cfg.irq_latency_ns + cfg.syscall_ns;
    let (rev, endian) = (cfg.revision, cfg.endian);
    let name = |t: u32| sim.tasks()[t as usize].name.clone();
    let is_correct = |t: u32| correct.get(t as usize).copied().unwrap_or(false);
    let mut out = Vec::new();
    let mut views: BTreeMap<u32, TaskView> = BTreeMap::new();
    let close = |v: &mut TaskView, t: u32, at: u64, out: &mut Vec<Violation>| {
        if let Some(start) = v.grant_start.take() {
            if at - start > bound {
                out.push(Violation {
                    property: "grant-bounded",
                    at,
                    detail: format!(
                        "{}'s grant from {start} ns lasted {} ns (> {bound} ns)",
                        name(t),
                        at - start
                    ),
                });
            }
        }
    };
    for r in sim.log() {
        let Some(t) = r.task else { continue };
        match &r.kind {
            LogKind::Grant { .. } => {
                let v = views.entry(t).or_default();
                v.grant_start = Some(r.time);
                v.kernel_granted = true;
            }
            LogKind::Revoke { was_granted, .. } => {
                let v = views.entry(t).or_default();
                if *was_granted {
                    close(v, t, r.time, &mut out);
                }
                v.kernel_granted = false;
            }
            LogKind::SliceSyscall { yielded } => {
                let v = views.entry(t).or_default();
                close(v, t, r.time, &mut out);
                v.kernel_granted = false;
                v.yields_counted += i64::from(*yielded == Some(true));
            }
            LogKind::SyscallExit { name, ret } if *name == "rseq_slice_yield" => {
                let v = views.entry(t).or_default();
                v.yields_returned_1 += i64::from(*ret == Ok(1));
            }
            LogKind::Switch { prev: Some(p), .. } => {
                // A grant does not survive its task being switched out; the kernel state
                // is cleared on the way back (R3), the clock stops here.
                if let Some(v) = views.get_mut(p) {
                    close(v, *p, r.time, &mut out);
                }
            }
            LogKind::TaskExit { .. } => {
                let v = views.entry(t).or_default();
                close(v, t, r.time, &mut out);
                v.kernel_granted = false;
            }
            LogKind::UserLoad { off, val } if is_correct(t) => {
                let v = views.entry(t).or_default();
                if let Some(seen) = user_granted(rev, endian, *off, *val) {
                    if seen != v.kernel_granted {
                        out.push(Violation {
                            property: "views-agree",
                            at: r.time,
                            detail: format!(
                                "{} read granted={} while the kernel's granted={}",
                                name(t),
                                u8::from(seen),
                                u8::from(v.kernel_granted)
                            ),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    for (&t, v) in views.iter_mut() {
        close(v, t, end, &mut out);
        if v.yields_counted != v.yields_returned_1 {
            out.push(Violation {
                property: "yield-agrees",
                at: end,
                detail: format!(
                    "{}: {} yields counted s_yielded, {} returned 1",
                    name(t),
                    v.yields_counted,
                    v.yields_returned_1
                ),
            });
        }
    }
    for task in sim.tasks() {
        let c = &task.counters;
        let get = |k: &str| c.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let user_1 = get("yield_1").or_else(|| Some(get("yielded")? - get("raced")?));
        let kernel_1 = views.get(&task.id).map_or(0, |v| v.yields_counted);
        if let Some(u) = user_1.filter(|&u| u > kernel_1) {
            out.push(Violation {
                property: "yield-agrees",
                at: end,
                detail: format!(
                    "{} counted {u} yields that returned 1, the kernel {kernel_1}",
                    task.name
                ),
            });
        }
        if let Some(
            e @ (TaskExit::Panicked(_) | TaskExit::StepBudget(_) | TaskExit::Livelock { .. }),
        ) = &task.exit
        {
            if is_correct(task.id) {
                out.push(Violation {
                    property: "correct-code-no-fault",
                    at: exit_time(sim, task.id).unwrap_or(end),
                    detail: format!("{}: {e}", task.name),
                });
            }
        }
        if let Some(TaskExit::Signaled { signo: 11, cause }) = &task.exit {
            if is_correct(task.id) {
                let why = cause
                    .as_ref()
                    .map_or("no cause".to_string(), |c| c.to_string());
                let at = exit_time(sim, task.id).unwrap_or(end);
                out.push(Violation {
                    property: "correct-code-no-sigsegv",
                    at,
                    detail: format!("{} got SIGSEGV: {why}", task.name),
                });
            }
        }
    }
    out.sort_by(|a, b| (a.at, a.property).cmp(&(b.at, b.property)));
    out
}

fn exit_time(sim: &Simulation, task: u32) -> Option<u64> {
    sim.log()
        .iter()
        .rev()
        .find(|r| r.task == Some(task) && matches!(r.kind, LogKind::TaskExit { .. }))
        .map(|r| r.time)
}

/// The `granted` state a user load of `val` at `off` observed, if it observed it.
fn user_granted(rev: Revision, endian: rseq_abi::Endian, off: u8, val: u32) -> Option<bool> {
    let off = usize::from(off);
    if rev.is_v1() {
        // V1: one u32 word, read whole.
        return (off == offset::SLICE_CTRL)
            .then(|| CtrlWord::from_all(val, endian).is_granted(rev, endian));
    }
    (off == offset::GRANTED).then_some(val != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_loads_are_read_per_revision() {
        use rseq_abi::Endian::Little;
        assert_eq!(
            user_granted(Revision::Merged, Little, offset::GRANTED as u8, 1),
            Some(true)
        );
        assert_eq!(
            user_granted(Revision::Merged, Little, offset::REQUEST as u8, 1),
            None
        );
        let granted_v1 = CtrlWord::from_all(0, Little).after_grant(Revision::V1, Little);
        let all = granted_v1.all(Little);
        assert_eq!(
            user_granted(Revision::V1, Little, offset::SLICE_CTRL as u8, all),
            Some(true)
        );
        assert_eq!(
            user_granted(Revision::V1, Little, offset::SLICE_CTRL as u8, 1),
            Some(false)
        );
    }
}
