//! The event log: every kernel decision, as plain data, in the order the engine made it.
//!
//! Records carry the simulated time, CPU, task and, for decisions about the control word,
//! the word before and after. [`LogRecord`]'s `Display` is the stable one-line text form;
//! [`log_hash`] hashes that text (FNV-1a, stable across Rust versions and hosts), which is
//! what determinism tests compare.

use std::fmt;

use rseq_abi::{CtrlWord, Marker, SysResult};

use crate::event::IrqKind;

/// The revocation/clearing paths of spec §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RevokePath {
    /// R1: registration clears the word.
    R1Register,
    /// R2: grant path with pending work or an existing grant.
    R2GrantPath,
    /// R3: exit to user after a switch, IDs unchanged.
    R3SchedSwitch,
    /// R4: exit to user after a switch with changed IDs (migration).
    R4IdsChanged,
    /// R5: rseq slow path (`TIF_NOTIFY_RESUME`) after a fast-path fault.
    R5SlowPath,
    /// R6: syscall entry work with a grant active.
    R6Syscall,
    /// R7: unregistration.
    R7Unregister,
    /// R8: execve wipes the kernel state.
    R8Exec,
    /// R9: a `clone(CLONE_VM)` child starts with a wiped state.
    R9CloneVm,
    /// R10: a fork child copies the parent's state.
    R10Fork,
}

impl RevokePath {
    /// "R1".."R10".
    pub fn tag(self) -> &'static str {
        match self {
            RevokePath::R1Register => "R1",
            RevokePath::R2GrantPath => "R2",
            RevokePath::R3SchedSwitch => "R3",
            RevokePath::R4IdsChanged => "R4",
            RevokePath::R5SlowPath => "R5",
            RevokePath::R6Syscall => "R6",
            RevokePath::R7Unregister => "R7",
            RevokePath::R8Exec => "R8",
            RevokePath::R9CloneVm => "R9",
            RevokePath::R10Fork => "R10",
        }
    }
}

/// Why a task got SIGSEGV (spec §7), or another fatal fault.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FaultCause {
    /// Fault on the user word in the grant decision (§7.1).
    GrantFault,
    /// Fault on the final clear in the syscall-entry work (§7.2).
    SyscallClearFault,
    /// Debug mode: the word at syscall entry was not `{granted = kernel granted}` (§7.3).
    DebugWordMismatch {
        /// What the kernel found.
        found: CtrlWord,
        /// What it expected.
        expected: CtrlWord,
    },
    /// prctl SET found `rseq::flags` tampered with or faulted (§7.4).
    PrctlFlags {
        /// The flags word read.
        flags: u32,
    },
    /// Fault zeroing the word in the exit-to-user rseq update, slow path too (§7.5).
    RseqUpdateFault,
    /// Unregister reset fault (§7.6).
    UnregisterFault,
    /// V1: a syscall other than `rseq_slice_yield` inside a grant.
    V1SyscallInGrant {
        /// The syscall number.
        nr: i64,
    },
    /// Post-7.0 read-only ABI enforcement: user space changed a kernel-written ID field.
    IdFieldTampered,
    /// `rseq_cs` pointer beyond `TASK_SIZE` (§7.7).
    RseqCsInvalid,
    /// 7.2: the `struct rseq_cs` descriptor failed a check of `rseq_update_user_cs()` or
    /// its debug variant.
    RseqCsDescriptor {
        /// Which check.
        why: &'static str,
    },
    /// A signal sent from outside with a fatal default action.
    External,
}

impl fmt::Display for FaultCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultCause::GrantFault => write!(f, "fault on slice_ctrl in grant decision"),
            FaultCause::SyscallClearFault => {
                write!(f, "fault clearing slice_ctrl at syscall entry")
            }
            FaultCause::DebugWordMismatch { found, expected } => {
                write!(f, "debug check: slice_ctrl {found} != expected {expected}")
            }
            FaultCause::PrctlFlags { flags } => {
                write!(f, "prctl SET: rseq::flags {flags:#x} lacks required bits")
            }
            FaultCause::RseqUpdateFault => write!(f, "fault in exit-to-user rseq update"),
            FaultCause::UnregisterFault => write!(f, "fault in unregister reset"),
            FaultCause::V1SyscallInGrant { nr } => write!(f, "V1: syscall {nr} inside a grant"),
            FaultCause::IdFieldTampered => write!(f, "rseq ID field modified by user space"),
            FaultCause::RseqCsInvalid => write!(f, "rseq_cs pointer invalid"),
            FaultCause::RseqCsDescriptor { why } => write!(f, "rseq_cs descriptor: {why}"),
            FaultCause::External => write!(f, "sent by scenario"),
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq)]
pub enum LogKind {
    /// A task was created.
    TaskStart,
    /// A task ended: exit code, signal or fault.
    TaskExit {
        /// Human-readable status.
        status: String,
    },
    /// Interrupt/exception entry.
    IrqEnter {
        /// What it is.
        kind: IrqKind,
        /// Entered from user mode (sets `user_irq`).
        from_user: bool,
    },
    /// Syscall entry.
    SyscallEnter {
        /// Name.
        name: &'static str,
        /// Number on the simulated machine's table.
        nr: i64,
    },
    /// Syscall return value.
    SyscallExit {
        /// Name.
        name: &'static str,
        /// Result.
        ret: SysResult,
    },
    /// Return to user mode.
    ExitToUser,
    /// A reschedule was requested.
    NeedResched {
        /// `TIF_NEED_RESCHED_LAZY` rather than `TIF_NEED_RESCHED`.
        lazy: bool,
        /// Who asked.
        why: &'static str,
    },
    /// The grant decision granted an extension (spec §3.2 step 6–8).
    Grant {
        /// Word before.
        before: CtrlWord,
        /// Word after.
        after: CtrlWord,
        /// Absolute expiry, ns.
        expires: u64,
    },
    /// A grant decision that did not grant, and why (spec §3.2): `boot_switch_off` (step
    /// 1), `not_registered`, `not_enabled` or `no_user_irq` (step 2: the kernel was not
    /// entered by an interrupt from user mode, e.g. by a syscall), `rt_lazy_only` or
    /// `exit_work` (step 4: the R2 record that clears the word follows), `request=0`
    /// (step 5). Only steps 4's reasons come with a write.
    NoGrant {
        /// Reason.
        why: &'static str,
    },
    /// A revocation/clearing path ran.
    Revoke {
        /// Which path.
        path: RevokePath,
        /// Word before.
        before: CtrlWord,
        /// Word after.
        after: CtrlWord,
        /// Kernel grant was active (counted `s_revoked` unless R6).
        was_granted: bool,
    },
    /// Enforcement timer started (absolute expiry).
    TimerArm {
        /// Expiry, ns.
        expires: u64,
    },
    /// Enforcement timer fired; `hit` = cookie matched a granted current task.
    TimerExpire {
        /// Did it set need-resched?
        hit: bool,
    },
    /// Enforcement timer cancelled at syscall entry.
    TimerCancel,
    /// Syscall-entry work ended a grant (spec §6.1): yielded or aborted.
    SliceSyscall {
        /// `s_yielded` (true) or `s_aborted` (false); `None` if already rescheduled.
        yielded: Option<bool>,
    },
    /// Context switch.
    Switch {
        /// Previous task.
        prev: Option<u32>,
        /// Next task.
        next: Option<u32>,
    },
    /// A task was woken.
    Wakeup {
        /// Woken task.
        task: u32,
        /// Its CPU.
        cpu: u32,
    },
    /// A task moved CPUs.
    Migrate {
        /// Task.
        task: u32,
        /// From CPU.
        from: u32,
        /// To CPU.
        to: u32,
    },
    /// rseq ID fields written on exit to user.
    IdsUpdate {
        /// New `cpu_id`.
        cpu_id: u32,
    },
    /// 7.2: a set `rseq_cs` was evaluated and cleared: the IP was outside the section
    /// (`fixup = None`, counted as `clear`) or inside it and moved to `abort_ip`.
    RseqCs {
        /// The `abort_ip` the instruction pointer was moved to, if it was inside.
        fixup: Option<u64>,
    },
    /// A signal was queued.
    Signal {
        /// Signal number.
        signo: i32,
        /// Why (for SIGSEGV).
        cause: Option<FaultCause>,
    },
    /// User store to the control word (only with `log_user_accesses`).
    UserStore {
        /// Offset in `struct rseq`.
        off: u8,
        /// Word after.
        after: CtrlWord,
    },
    /// User load from the control word (only with `log_user_accesses`).
    UserLoad {
        /// Offset in `struct rseq`.
        off: u8,
        /// Value read.
        val: u32,
    },
    /// An explorer injected an event here, just before the task's next user operation
    /// (`slicesim explore`, `run --schedule`).
    Injected {
        /// What was injected.
        what: crate::choice::Injection,
        /// Index of the injection point.
        point: u32,
    },
    /// The program reported a [`Marker`] (`Platform::mark`) at this time (only with the
    /// log on; it takes no simulated time).
    Mark(Marker),
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// Simulated time, ns.
    pub time: u64,
    /// CPU.
    pub cpu: u32,
    /// Task concerned, if any.
    pub task: Option<u32>,
    /// What happened.
    pub kind: LogKind,
}

fn opt_task(t: Option<u32>) -> String {
    t.map_or_else(|| "idle".to_string(), |t| format!("T{t}"))
}

fn ret(r: &SysResult) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => format!("-{}", e.name()),
    }
}

impl fmt::Display for LogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LogKind::*;
        match self {
            TaskStart => write!(f, "task_start"),
            TaskExit { status } => write!(f, "task_exit {status}"),
            IrqEnter { kind, from_user } => {
                write!(
                    f,
                    "irq_enter {} from={}",
                    kind.name(),
                    if *from_user { "user" } else { "kernel" }
                )
            }
            SyscallEnter { name, nr } => write!(f, "syscall_enter {name}({nr})"),
            SyscallExit { name, ret: r } => write!(f, "syscall_exit {name} = {}", ret(r)),
            ExitToUser => write!(f, "exit_to_user"),
            NeedResched { lazy, why } => {
                write!(
                    f,
                    "need_resched{} by {why}",
                    if *lazy { "_lazy" } else { "" }
                )
            }
            Grant {
                before,
                after,
                expires,
            } => {
                write!(f, "grant [{before}] -> [{after}] expires={expires}")
            }
            NoGrant { why } => write!(f, "no_grant {why}"),
            Revoke {
                path,
                before,
                after,
                was_granted,
            } => write!(
                f,
                "revoke {} [{before}] -> [{after}] granted={}",
                path.tag(),
                u8::from(*was_granted)
            ),
            TimerArm { expires } => write!(f, "hrtimer_start expires={expires}"),
            TimerExpire { hit } => write!(f, "hrtimer_expire hit={}", u8::from(*hit)),
            TimerCancel => write!(f, "hrtimer_cancel"),
            Injected { what, point } => write!(f, "inject {} at point {point}", what.name()),
            SliceSyscall {
                yielded: Some(true),
            } => write!(f, "slice_end yielded"),
            SliceSyscall {
                yielded: Some(false),
            } => write!(f, "slice_end aborted"),
            SliceSyscall { yielded: None } => write!(f, "slice_end already_rescheduled"),
            Switch { prev, next } => write!(f, "switch {} -> {}", opt_task(*prev), opt_task(*next)),
            Wakeup { task, cpu } => write!(f, "wakeup T{task} cpu={cpu}"),
            Migrate { task, from, to } => write!(f, "migrate T{task} {from} -> {to}"),
            IdsUpdate { cpu_id } => write!(f, "rseq_ids cpu_id={cpu_id}"),
            RseqCs { fixup: None } => write!(f, "rseq_cs clear"),
            RseqCs { fixup: Some(ip) } => write!(f, "rseq_cs fixup abort_ip={ip:#x}"),
            Signal { signo, cause } => match cause {
                Some(c) => write!(f, "signal {signo} ({c})"),
                None => write!(f, "signal {signo}"),
            },
            UserStore { off, after } => write!(f, "user_store @{off} [{after}]"),
            UserLoad { off, val } => write!(f, "user_load @{off} = {val:#x}"),
            Mark(m) => write!(f, "mark {m}"),
        }
    }
}

impl fmt::Display for LogRecord {
    /// `time cpu task event`, e.g. `     12300 cpu1 T0 grant [req=1 ...] -> [...]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>12} cpu{:<3} {:<5} {}",
            self.time,
            self.cpu,
            opt_task(self.task),
            self.kind
        )
    }
}

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64: continue hash `h` over `bytes` (start from [`fnv1a`]`(&[])`).
fn fnv1a_more(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// FNV-1a 64-bit hash of `bytes`: stable across Rust versions and hosts (scenario and
/// trace fingerprints).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_more(FNV_OFFSET, bytes)
}

/// FNV-1a 64-bit hash of the log's text form: a stable fingerprint of a run.
pub fn log_hash(log: &[LogRecord]) -> u64 {
    let mut h = FNV_OFFSET;
    let mut line = String::new();
    for r in log {
        line.clear();
        use std::fmt::Write;
        let _ = writeln!(line, "{r}");
        h = fnv1a_more(h, line.as_bytes());
    }
    h
}

#[cfg(test)]
mod fnv_tests {
    use super::fnv1a;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
