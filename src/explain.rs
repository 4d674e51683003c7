//! `slicesim explain`: a finished run told in plain language, event by event, naming the
//! kernel rule that decided each step (spec section and revocation path).
//!
//! The narration reads only the event log; it never influences the simulation. Routine
//! bookkeeping (returns to user mode, ID updates, user loads) is left out so the story stays
//! readable; `--trace` has everything.

use std::fmt::Write;

use rseq_abi::{CtrlWord, Endian, Revision};
use rseq_sim::{IrqKind, LogKind, LogRecord, ReschedReq, RevokePath, Simulation};

fn us(ns: u64) -> String {
    format!("{}.{:03} us", ns / 1000, ns % 1000)
}

/// How the run's revision lays out the control word (V1: bits of one u32; later: bytes).
struct Ctx {
    slice_ext_nsec: u32,
    rev: Revision,
    endian: Endian,
}

impl Ctx {
    fn word(&self, w: &CtrlWord) -> String {
        if self.rev.is_v1() {
            let bit = |b: bool| u8::from(b);
            return format!(
                "REQUEST={} GRANTED={}",
                bit(self.requested(w)),
                bit(self.granted(w))
            );
        }
        format!("request={} granted={}", w.request(), w.granted())
    }

    fn requested(&self, w: &CtrlWord) -> bool {
        w.is_requested(self.rev, self.endian)
    }

    fn granted(&self, w: &CtrlWord) -> bool {
        w.is_granted(self.rev, self.endian)
    }
}

fn irq(kind: IrqKind) -> &'static str {
    match kind {
        IrqKind::Device(ReschedReq::None) => "a device interrupt",
        IrqKind::Device(ReschedReq::Lazy) => "a device interrupt asking for a lazy reschedule",
        IrqKind::Device(ReschedReq::Full) => "a device interrupt asking for a reschedule",
        IrqKind::Exception => "an exception (e.g. a page fault)",
        IrqKind::ReschedIpi => "a reschedule IPI from another CPU",
        IrqKind::MembarrierIpi => "a membarrier(RSEQ) IPI",
        IrqKind::SignalKick => "a signal-wakeup IPI",
        IrqKind::Tick => "the scheduler tick",
        IrqKind::SliceTimer => "the slice-extension enforcement timer",
        IrqKind::SleepTimer => "a sleep timer",
    }
}

fn revoke(cx: &Ctx, path: RevokePath, was_granted: bool, before: &CtrlWord) -> Option<String> {
    let cleared = if *before == CtrlWord::ZERO {
        "the word was already 0".to_string()
    } else {
        format!(
            "the word goes from {} to {}",
            cx.word(before),
            cx.word(&CtrlWord::ZERO)
        )
    };
    Some(match path {
        RevokePath::R1Register => return None,
        RevokePath::R2GrantPath if was_granted => format!(
            "on the way back to user mode the kernel finds NEED_RESCHED while the task is already granted: an extension is never given twice, so it revokes the grant and schedules ({cleared}; R2, spec 3.2 step 4, s_revoked)"
        ),
        RevokePath::R2GrantPath => format!(
            "NEED_RESCHED is pending but so is other exit work (a signal, a pending rseq update), so the kernel does not grant: it drops the request and schedules ({cleared}; R2, spec 3.2 step 4)"
        ),
        RevokePath::R3SchedSwitch if was_granted => format!(
            "the task was switched out (or hit by a membarrier IPI) after an interrupt from user mode, so its rseq update on the way back clears the word and revokes the grant ({cleared}; R3, spec 5, s_revoked)"
        ),
        RevokePath::R3SchedSwitch => format!(
            "the task was switched out after an interrupt from user mode, so its rseq update on the way back clears the word, whether or not it ever enabled the extension ({cleared}; R3, spec 5)"
        ),
        RevokePath::R4IdsChanged => format!(
            "the task's IDs changed (a migration, or the first update after registration), so its rseq update writes them and clears the word ({cleared}; R4, spec 5)"
        ),
        RevokePath::R5SlowPath => format!("the rseq slow path retries the update ({cleared}; R5, spec 5)"),
        RevokePath::R6Syscall => format!(
            "after the reschedule point the syscall-entry work finishes the grant: kernel granted=0, {cleared} (R6, spec 6.1 step 7; no s_revoked)"
        ),
        RevokePath::R7Unregister => format!("unregistration clears the grant ({cleared}; R7, spec 2.3)"),
        RevokePath::R8Exec => "execve wipes the kernel rseq state (R8, spec 2.6)".to_string(),
        RevokePath::R9CloneVm => "the new thread starts with no rseq registration (R9, spec 2.6)".to_string(),
        RevokePath::R10Fork => "the forked child copies the rseq state and area (R10, spec 2.6)".to_string(),
    })
}

/// The sentence for one record, or `None` for routine bookkeeping.
fn sentence(r: &LogRecord, cx: &Ctx) -> Option<String> {
    let slice_ext_nsec = cx.slice_ext_nsec;
    Some(match &r.kind {
        LogKind::TaskStart => "starts".to_string(),
        LogKind::TaskExit { status } => format!("ends: {status}"),
        LogKind::IrqEnter { kind, from_user: true } => format!(
            "{} arrives while the task runs in user mode, so user_irq is set: the way back may grant an extension (spec 3.3)",
            irq(*kind)
        ),
        LogKind::IrqEnter { kind, from_user: false } => {
            format!("{} arrives while the CPU is in the kernel or idle: only its handler runs", irq(*kind))
        }
        LogKind::NeedResched { lazy, why } => {
            let whose = match *why {
                "wakeup_preempt" => "a woken task should run first (wakeup preemption)",
                "wakeup_rt" => "a real-time task woke",
                "tick_slice" => "the tick found the time slice used up",
                "tick_lazy_upgrade" => "the tick upgrades a pending lazy request",
                "device_irq" => "the interrupt handler asks for it",
                "slice_timer" => "the extension ran out: the enforcement timer forces the reschedule (spec 4.3, s_expired)",
                "slice_syscall" => "a syscall inside a grant gives the CPU back at once (spec 6.1 step 4)",
                "slice_expired_at_exit" => "the grant had already expired when the timer was to be armed (spec 4.2)",
                _ => "requested",
            };
            format!("NEED_RESCHED{} is set: {whose}", if *lazy { "_LAZY" } else { "" })
        }
        LogKind::Grant { before, after, expires } => format!(
            "on the way back to user mode the kernel finds NEED_RESCHED, request={} and no other work, so it grants an extension instead of scheduling: {} -> {}, the reschedule request is discarded and the extension lasts until {} (slice_ext_nsec = {slice_ext_nsec} ns; spec 3.2, s_granted)",
            u8::from(cx.requested(before)),
            cx.word(before),
            cx.word(after),
            us(*expires)
        ),
        LogKind::NoGrant { .. } => {
            "NEED_RESCHED is pending but request=0: nothing to extend, the kernel schedules normally (spec 3.2 step 5)".to_string()
        }
        LogKind::Revoke { path, before, was_granted, .. } => revoke(cx, *path, *was_granted, before)?,
        LogKind::TimerArm { expires } => {
            format!("the enforcement hrtimer is armed for {} with this task as its cookie (spec 4.2)", us(*expires))
        }
        LogKind::TimerExpire { hit: true } => {
            "the enforcement timer fires while its task is still granted (spec 4.3)".to_string()
        }
        LogKind::TimerExpire { hit: false } => {
            "a stale enforcement timer fires: its task is no longer granted (or not current), so nothing happens; revocation never cancels the timer (spec 4.4)".to_string()
        }
        LogKind::TimerCancel => "the syscall-entry work cancels the enforcement timer (spec 4.4)".to_string(),
        LogKind::SliceSyscall { yielded: Some(true) } => {
            "it entered rseq_slice_yield() inside its grant: s_yielded, and the syscall will return 1 (spec 6.1)".to_string()
        }
        LogKind::SliceSyscall { yielded: Some(false) } => {
            "it made another syscall inside its grant: legal since V5, counted s_aborted (spec 6.1)".to_string()
        }
        LogKind::SliceSyscall { yielded: None } => {
            "the grant ends at syscall entry, but the task was already rescheduled (spec 6.1, 13 q4)".to_string()
        }
        LogKind::SyscallEnter { name, nr } => format!("calls {name}() (nr {nr})"),
        LogKind::SyscallExit { name: "rseq_slice_yield", ret: Ok(1) } => {
            "rseq_slice_yield() returns 1: the CPU was given back within the extension (spec 6.2)".to_string()
        }
        LogKind::SyscallExit { name: "rseq_slice_yield", ret: Ok(0) } => {
            "rseq_slice_yield() returns 0: no grant was active any more when it entered. If the task saw granted=1 just before, the grant was revoked in between: the unavoidable race of spec 8.3".to_string()
        }
        LogKind::SyscallExit { name, ret } => match ret {
            Ok(v) => format!("{name}() returns {v}"),
            Err(e) => format!("{name}() fails with {} ({})", e.name(), e.0),
        },
        LogKind::Switch { prev, next } => match (prev, next) {
            (_, Some(n)) => format!("the CPU switches to T{n}"),
            (_, None) => "the CPU goes idle".to_string(),
        },
        LogKind::Wakeup { task, cpu } => format!("wakes T{task} on cpu{cpu}"),
        LogKind::Migrate { task, from, to } => format!("T{task} moves from cpu{from} to cpu{to}"),
        LogKind::Signal { signo, cause: Some(c) } => format!("signal {signo} is queued: {c} (spec 7)"),
        LogKind::Signal { signo, cause: None } => format!("signal {signo} is queued"),
        LogKind::UserStore { after, .. } if cx.requested(after) && !cx.granted(after) => {
            "sets request=1: asks for an extension of its time slice around its critical section (spec 8.1)".to_string()
        }
        LogKind::UserStore { after, .. } if !cx.requested(after) => {
            format!("clears request on leaving its critical section: now {} (spec 8.1)", cx.word(after))
        }
        LogKind::UserStore { after, .. } => format!("writes the word: now {}", cx.word(after)),
        LogKind::Injected { what, point } => format!(
            "the explorer injects `{}` here, just before the task's next user operation (point {point} of the schedule)",
            what.name()
        ),
        LogKind::RseqCs { fixup: None } => {
            "finds rseq_cs set but the task outside the section: clears rseq_cs".to_string()
        }
        LogKind::RseqCs { fixup: Some(ip) } => format!(
            "finds the task inside its rseq critical section: clears rseq_cs and moves it to abort_ip {ip:#x}"
        ),
        LogKind::ExitToUser | LogKind::IdsUpdate { .. } | LogKind::UserLoad { .. } => return None,
        LogKind::Mark(m) => format!("marks {m} (a measurement point of the program; no time passes)"),
    })
}

/// Tell the story of a finished run.
pub fn explain(sim: &Simulation) -> String {
    let mut out = String::new();
    let cfg = sim.config();
    let _ = writeln!(
        out,
        "A {}-CPU machine, protocol revision {}, preemption {}, slice_ext_nsec {} ns.",
        cfg.cpus,
        cfg.revision.name(),
        cfg.preempt.name(),
        sim.slice_ext_nsec()
    );
    for t in sim.tasks() {
        let _ = writeln!(out, "T{} is {}.", t.id, t.name);
    }
    out.push('\n');
    let name = |t: Option<u32>| match t {
        Some(t) => sim
            .tasks()
            .get(t as usize)
            .map_or(format!("T{t}"), |x| format!("T{t} {}", x.name)),
        None => "idle".to_string(),
    };
    let cx = Ctx {
        slice_ext_nsec: sim.slice_ext_nsec(),
        rev: cfg.revision,
        endian: cfg.endian,
    };
    for r in sim.log() {
        if let Some(s) = sentence(r, &cx) {
            let _ = writeln!(
                out,
                "{:>12}  cpu{:<2} {:<16} {s}",
                us(r.time),
                r.cpu,
                name(r.task)
            );
        }
    }
    let s = sim.stats();
    let _ = writeln!(
        out,
        "\nIn all: {} granted, {} expired, {} revoked, {} yielded, {} aborted (the kernel's rseq/stats).",
        s.granted, s.expired, s.revoked, s.yielded, s.aborted
    );
    out
}
