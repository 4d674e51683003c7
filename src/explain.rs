//! `slicesim explain`: a finished run told in plain language, event by event, naming the
//! rule of `docs/protocol.md` (its section, "§3.2", and revocation path, "R2") that decided
//! each step.
//!
//! The full story tells every user-visible step (the program's stores *and loads* of the
//! control word, with what they read) and every decision the kernel did not take, with
//! its true reason: a reschedule that brought no grant always gets a line saying why.
//! [`Options::brief`] leaves out the loads and the refusals the kernel made without
//! looking at the word, for a denser story. Syscall returns are told when the task
//! really gets back to user mode, after any interrupt that arrived during the syscall.
//!
//! The narration reads only the event log; it never influences the simulation.

use std::collections::BTreeMap;
use std::fmt::Write;

use rseq_abi::layout::offset;
use rseq_abi::{CtrlWord, Endian, Revision};
use rseq_sim::{IrqKind, LogKind, LogRecord, ReschedReq, RevokePath, Simulation};

fn us(ns: u64) -> String {
    format!("{}.{:03} us", ns / 1000, ns % 1000)
}

/// How much to tell.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Leave out user loads and the refusals made before the word is read (feature not
    /// enabled, no `user_irq`): the density of the first `explain`.
    pub brief: bool,
}

/// A control word as the run's revision lays it out: V1's two bits of one `u32`
/// (`REQUEST=1 GRANTED=0`), or the later bytes (`request=1 granted=0`). `explain` and
/// `step` print words this way, so they never disagree.
pub fn word_text(rev: Revision, endian: Endian, w: &CtrlWord) -> String {
    if rev.is_v1() {
        let bit = |b: bool| u8::from(b);
        return format!(
            "REQUEST={} GRANTED={}",
            bit(w.is_requested(rev, endian)),
            bit(w.is_granted(rev, endian))
        );
    }
    let [r0, r1] = w.reserved();
    if [r0, r1] != [0, 0] {
        return format!(
            "request={} granted={} reserved={r0:#04x},{r1:#04x}",
            w.request(),
            w.granted()
        );
    }
    format!("request={} granted={}", w.request(), w.granted())
}

/// For a V1 run, the words of a log record as V1's bits: the log prints a word by byte
/// (`[req=2 gr=0 rsv=0000]` is V1's GRANTED bit), so the text trace, `step` and the
/// timelines' hover texts add ` (V1: GRANTED=1 REQUEST=0)`. `None` for later revisions or
/// a record without a word.
pub fn v1_gloss(rev: Revision, endian: Endian, kind: &LogKind) -> Option<String> {
    if !rev.is_v1() {
        return None;
    }
    let w = |w: &CtrlWord| word_text(rev, endian, w);
    Some(match kind {
        LogKind::Grant { before, after, .. } | LogKind::Revoke { before, after, .. } => {
            format!(" (V1: {} -> {})", w(before), w(after))
        }
        LogKind::UserStore { after, .. } => format!(" (V1: {})", w(after)),
        LogKind::UserLoad { off, val } if usize::from(*off) == offset::SLICE_CTRL => {
            format!(" (V1: {})", w(&CtrlWord::from_all(*val, endian)))
        }
        _ => return None,
    })
}

/// How the run's revision lays out the control word (V1: bits of one u32; later: bytes).
struct Ctx {
    slice_ext_nsec: u32,
    rev: Revision,
    endian: Endian,
}

impl Ctx {
    fn word(&self, w: &CtrlWord) -> String {
        word_text(self.rev, self.endian, w)
    }

    fn requested(&self, w: &CtrlWord) -> bool {
        w.is_requested(self.rev, self.endian)
    }

    fn granted(&self, w: &CtrlWord) -> bool {
        w.is_granted(self.rev, self.endian)
    }
}

/// What the narration remembers about a task between records.
#[derive(Default)]
struct View {
    /// The kernel's grant.
    granted: bool,
    /// The user word as last written by anyone.
    word: CtrlWord,
    /// The last NEED_RESCHED set for the task was the lazy one.
    lazy: bool,
    /// The last step-4 refusal's reason, for the R2 record that follows it.
    refused: Option<&'static str>,
    /// A syscall return waiting for the task's real return to user mode.
    pending_ret: Option<String>,
    /// When the program last read `granted = 1`.
    read_granted_at: Option<u64>,
    /// The last revocation that ended a grant: when and by which path.
    last_end: Option<(u64, &'static str)>,
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
        IrqKind::Hrtick => "the scheduler's hrtick (the running task reached its virtual deadline)",
    }
}

/// After a decision to schedule at record `i`: does another task get the CPU, or does
/// `schedule()` find nothing else and the task go back to user mode?
fn scheduled_next(log: &[LogRecord], i: usize, cpu: u32, tid: u32) -> Option<Option<u32>> {
    for r in log.iter().skip(i + 1).filter(|r| r.cpu == cpu).take(64) {
        match r.kind {
            LogKind::Switch {
                prev: Some(p),
                next,
            } if p == tid => return Some(next),
            LogKind::ExitToUser if r.task == Some(tid) => return None,
            _ => {}
        }
    }
    None
}

fn schedules(next: Option<Option<u32>>, name: &dyn Fn(Option<u32>) -> String) -> String {
    match next {
        Some(Some(n)) => format!("and schedules: {} runs next", name(Some(n))),
        Some(None) => "and schedules: the CPU goes idle".to_string(),
        None => "and calls schedule(), but nothing else is runnable, so the task keeps the CPU"
            .to_string(),
    }
}

fn refusal(why: &str, lazy: bool) -> String {
    let nr = if lazy {
        "NEED_RESCHED_LAZY"
    } else {
        "NEED_RESCHED"
    };
    match why {
        "boot_switch_off" => format!("{nr} is pending; no grant: the extension is switched off at boot (rseq_slice_ext=0, §2.2, §3.2 step 1), so the kernel schedules normally"),
        "not_registered" => format!("{nr} is pending; no grant: the task has no rseq registration (§2.3, §3.2 step 2), so the kernel schedules normally"),
        "not_enabled" => format!("{nr} is pending; no grant: the task never enabled the extension (no prctl(PR_RSEQ_SLICE_EXTENSION_SET), no RSEQ_FLAG_SLICE_EXT_DEFAULT_ON registration; §2.4, §3.2 step 2), so the kernel schedules normally"),
        "no_user_irq" => format!("{nr} is pending; no grant: the kernel was entered by a syscall, not by an interrupt from user mode, so user_irq is clear (§3.3, §3.2 step 2) and grants are impossible here; the kernel schedules normally"),
        "rt_lazy_only" => "NEED_RESCHED (the full one, not NEED_RESCHED_LAZY) is pending; no grant: on PREEMPT_RT only lazy reschedules may be extended, so a full reschedule counts as other exit work (§3.1, §3.2 step 4)".to_string(),
        "exit_work" => format!("{nr} is pending, but so is other exit work (a signal, a pending rseq update, notify-resume work); no grant: pending work makes the kernel drop the request (§3.2 step 4)"),
        "request=0" => format!("{nr} is pending but request=0: nothing to extend, the kernel schedules normally (§3.2 step 5)"),
        other => format!("no grant ({other}, §3.2)"),
    }
}

fn revoke(
    cx: &Ctx,
    path: RevokePath,
    was_granted: bool,
    before: &CtrlWord,
    then: &str,
) -> Option<String> {
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
            "on the way back to user mode the kernel finds NEED_RESCHED while the task already holds a grant: an extension is never given twice, so it revokes the grant ({cleared}; R2, §3.2 step 4, s_revoked) {then}"
        ),
        RevokePath::R2GrantPath => format!(
            "so the kernel clears the word instead of granting ({cleared}; R2, §3.2 step 4) {then}"
        ),
        RevokePath::R3SchedSwitch if was_granted => format!(
            "the task was switched out (or hit by a membarrier IPI) after an interrupt from user mode, so its rseq update on the way back clears the word and revokes the grant ({cleared}; R3, §5, s_revoked)"
        ),
        RevokePath::R3SchedSwitch => format!(
            "the task was switched out after an interrupt from user mode, so its rseq update on the way back clears the word, whether or not it ever enabled the extension ({cleared}; R3, §5)"
        ),
        RevokePath::R4IdsChanged => format!(
            "the task's IDs changed (a migration, or the first update after registration), so its rseq update writes them and clears the word ({cleared}; R4, §5)"
        ),
        RevokePath::R5SlowPath => format!("the rseq slow path retries the update ({cleared}; R5, §5)"),
        RevokePath::R6Syscall => format!(
            "after the reschedule point the syscall-entry work finishes the grant: kernel granted=0, {cleared} (R6, §6.1 step 7; no s_revoked)"
        ),
        RevokePath::R7Unregister => format!("unregistration clears the grant ({cleared}; R7, §2.3)"),
        RevokePath::R8Exec => "execve wipes the kernel rseq state (R8, §2.6)".to_string(),
        RevokePath::R9CloneVm => "the new thread starts with no rseq registration (R9, §2.6)".to_string(),
        RevokePath::R10Fork => "the forked child copies the rseq state and area (R10, §2.6)".to_string(),
    })
}

/// The sentence for a user load of the control word.
fn load(cx: &Ctx, v: &View, off: u8, val: u32) -> String {
    let off = usize::from(off);
    if cx.rev.is_v1() || off == offset::SLICE_CTRL && val > 0xff {
        let w = CtrlWord::from_all(val, cx.endian);
        return format!("loads the word: it reads {} (§1.2)", cx.word(&w));
    }
    if off == offset::REQUEST {
        return if val != 0 {
            format!("loads request: the thread reads request = {val}: no grant and no preemption so far, clearing it is all that is needed; helpers read it first only to classify the outcome (§8.1, §9)")
        } else {
            "loads request: the thread reads request = 0: the kernel consumed it (a grant, or a revocation or switch wiped it; §8.1)".to_string()
        };
    }
    if off == offset::GRANTED {
        return match (val != 0, v.granted) {
            (true, true) => "loads granted: the thread reads granted = 1: the kernel extended its slice and it must give the CPU back now with rseq_slice_yield() (§8.1)".to_string(),
            (true, false) => "loads granted: the thread reads granted = 1, but the kernel holds no grant: the two views disagree (§8.2)".to_string(),
            (false, true) => "loads granted: the thread reads granted = 0 although the kernel holds a grant: the two views disagree (§8.2)".to_string(),
            (false, false) => "loads granted: the thread reads granted = 0: no grant is visible, nothing to yield (§8.1)".to_string(),
        };
    }
    format!("loads byte {off} of struct rseq: it reads {val:#x} (§1.2)")
}

/// Tell the story of a finished run, in full.
pub fn explain(sim: &Simulation) -> String {
    explain_with(sim, Options::default())
}

/// Tell the story of a finished run with `opts`.
pub fn explain_with(sim: &Simulation, opts: Options) -> String {
    let mut out = String::new();
    let cfg = sim.config();
    let _ = writeln!(
        out,
        "A {}-CPU machine, protocol revision {}, preemption {}, slice_ext_nsec {} ns. Sections (§) and paths (R1..R10) are those of docs/protocol.md.",
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
    let line = |out: &mut String, time: u64, cpu: u32, task: Option<u32>, s: &str| {
        let _ = writeln!(
            out,
            "{:>12}  cpu{:<2} {:<16} {s}",
            us(time),
            cpu,
            name(task)
        );
    };
    let mut views: BTreeMap<u32, View> = BTreeMap::new();
    let log = sim.log();
    for (i, r) in log.iter().enumerate() {
        let t = r.task.unwrap_or(u32::MAX);
        let v = views.entry(t).or_default();
        let s: Option<String> = match &r.kind {
            LogKind::TaskStart => Some("starts".to_string()),
            LogKind::TaskExit { status } => {
                if let Some(p) = v.pending_ret.take() {
                    line(&mut out, r.time, r.cpu, r.task, &p);
                }
                Some(format!("ends: {status}"))
            }
            LogKind::IrqEnter { kind, from_user: true } => Some(if v.granted {
                format!(
                    "{} arrives while the task runs in user mode inside its grant: user_irq is set (§3.3); a reschedule on the way back would end the grant (§3.2 step 4)",
                    irq(*kind)
                )
            } else if cx.requested(&v.word) {
                format!(
                    "{} arrives while the task runs in user mode with request=1: user_irq is set, so if a reschedule is pending the way back may grant an extension (§3.3)",
                    irq(*kind)
                )
            } else {
                format!(
                    "{} arrives while the task runs in user mode: user_irq is set (§3.3)",
                    irq(*kind)
                )
            }),
            LogKind::IrqEnter { kind, from_user: false } => Some(format!(
                "{} arrives while the CPU is in the kernel or idle: only its handler runs",
                irq(*kind)
            )),
            LogKind::NeedResched { lazy, why } => {
                v.lazy = *lazy;
                let whose = match *why {
                    "wakeup_preempt" => "a woken task should run first (wakeup preemption)",
                    "wakeup_rt" => "a real-time task woke",
                    "tick_slice" => "the tick found the time slice used up",
                    "hrtick" => "the scheduler's hrtick: the running task reached its virtual deadline (EEVDF, sched_feat(HRTICK))",
                    "hrtick_start_fair" => "a task was queued beside one whose virtual deadline had already passed",
                    "tick_lazy_upgrade" => "the tick upgrades a pending lazy request",
                    "device_irq" => "the interrupt handler asks for it",
                    "slice_timer" => "the extension ran out: the enforcement timer forces the reschedule (§4.3, s_expired)",
                    "slice_syscall" => "a syscall inside a grant gives the CPU back at once (§6.1 step 4)",
                    "slice_expired_at_exit" => "the grant had already expired when the timer was to be armed (§4.2)",
                    _ => "requested",
                };
                Some(format!(
                    "NEED_RESCHED{} is set: {whose}",
                    if *lazy { "_LAZY" } else { "" }
                ))
            }
            LogKind::Grant { before, after, expires } => {
                v.granted = true;
                v.word = *after;
                Some(format!(
                    "on the way back to user mode the kernel finds NEED_RESCHED{}, request={} and no other work, so it grants an extension instead of scheduling: {} -> {}, the reschedule request is discarded and the extension lasts until {} (slice_ext_nsec = {} ns; §3.2, s_granted)",
                    if v.lazy { "_LAZY" } else { "" },
                    u8::from(cx.requested(before)),
                    cx.word(before),
                    cx.word(after),
                    us(*expires),
                    cx.slice_ext_nsec
                ))
            }
            LogKind::NoGrant { why } => {
                let why = *why;
                if matches!(why, "rt_lazy_only" | "exit_work") {
                    v.refused = Some(why);
                }
                let quiet = opts.brief
                    && matches!(why, "not_registered" | "not_enabled" | "no_user_irq" | "boot_switch_off");
                let mut s = refusal(why, v.lazy);
                if matches!(why, "request=0" | "not_registered" | "not_enabled" | "no_user_irq" | "boot_switch_off") {
                    if let Some(Some(n)) = scheduled_next(log, i, r.cpu, t) {
                        let _ = write!(s, ": {} runs next", name(Some(n)));
                    } else if scheduled_next(log, i, r.cpu, t).is_none() {
                        s.push_str(", but nothing else is runnable, so the task keeps the CPU");
                    }
                }
                (!quiet).then_some(s)
            }
            LogKind::Revoke { path, before, after, was_granted } => {
                let then = if *path == RevokePath::R2GrantPath {
                    schedules(scheduled_next(log, i, r.cpu, t), &name)
                } else {
                    String::new()
                };
                let s = revoke(&cx, *path, *was_granted, before, &then);
                if *was_granted && *path != RevokePath::R6Syscall {
                    v.last_end = Some((r.time, path.tag()));
                }
                v.granted = false;
                v.word = *after;
                v.refused = None;
                s
            }
            LogKind::TimerArm { expires } => Some(format!(
                "the enforcement hrtimer is armed for {} with this task as its cookie (§4.2)",
                us(*expires)
            )),
            LogKind::TimerExpire { hit: true } => {
                v.last_end = Some((r.time, "the timer's expiry"));
                Some("the enforcement timer fires while its task is still granted (§4.3)".to_string())
            }
            LogKind::TimerExpire { hit: false } => Some(
                "a stale enforcement timer fires: its task is no longer granted (or not current), so nothing happens; revocation never cancels the timer (§4.4)".to_string(),
            ),
            LogKind::TimerCancel => {
                Some("the syscall-entry work cancels the enforcement timer (§4.4)".to_string())
            }
            LogKind::SliceSyscall { yielded: Some(true) } => Some(
                "it entered rseq_slice_yield() inside its grant: s_yielded, and the syscall will return 1 (§6.1)".to_string(),
            ),
            LogKind::SliceSyscall { yielded: Some(false) } => Some(
                "it made another syscall inside its grant: legal since V5, counted s_aborted (§6.1)".to_string(),
            ),
            LogKind::SliceSyscall { yielded: None } => Some(
                "the grant ends at syscall entry, but the task was already rescheduled (§6.1, §13.4)".to_string(),
            ),
            LogKind::SyscallEnter { name, nr } => Some(format!("calls {name}() (nr {nr})")),
            LogKind::SyscallExit { name: sys, ret } => {
                let s = match (*sys, ret) {
                    ("rseq_slice_yield", Ok(1)) => {
                        "rseq_slice_yield() returns 1: the CPU was given back within the extension (§6.2)".to_string()
                    }
                    ("rseq_slice_yield", Ok(0)) => match (v.read_granted_at, v.last_end) {
                        (Some(seen), Some((at, how))) if at >= seen => format!(
                            "rseq_slice_yield() returns 0: the thread read granted = 1 at {}, but {how} ended the grant at {} before the yield entered: the grant/revoke race (§8.3, §6.2)",
                            us(seen),
                            us(at)
                        ),
                        _ => "rseq_slice_yield() returns 0: no grant was active when it entered (§6.2)".to_string(),
                    },
                    (_, Ok(v)) => format!("{sys}() returns {v}"),
                    (_, Err(e)) => format!("{sys}() fails with {} ({})", e.name(), e.0),
                };
                v.read_granted_at = None;
                // Told when the task really returns to user mode.
                if let Some(p) = v.pending_ret.replace(s) {
                    line(&mut out, r.time, r.cpu, r.task, &p);
                }
                None
            }
            LogKind::ExitToUser => v.pending_ret.take(),
            LogKind::Switch { prev: _, next } => Some(match next {
                Some(n) => format!("the CPU switches to T{n}"),
                None => "the CPU goes idle".to_string(),
            }),
            LogKind::Wakeup { task, cpu } => Some(format!("wakes T{task} on cpu{cpu}")),
            LogKind::Migrate { task, from, to } => {
                Some(format!("T{task} moves from cpu{from} to cpu{to}"))
            }
            LogKind::Signal { signo, cause: Some(c) } => {
                Some(format!("signal {signo} is queued: {c} (§7)"))
            }
            LogKind::Signal { signo, cause: None } => Some(format!("signal {signo} is queued")),
            LogKind::UserStore { off, after } if !cx.rev.is_v1() && usize::from(*off) != offset::SLICE_CTRL => {
                // A byte store (§1.2): tell what was written where, not what it looks like.
                let was_granted = v.granted;
                v.word = *after;
                let byte = after.bytes[usize::from(*off) - offset::SLICE_CTRL];
                Some(match usize::from(*off) {
                    offset::REQUEST if byte != 0 => "stores request = 1: asks for an extension of its time slice around its critical section (§8.1)".to_string(),
                    offset::REQUEST => format!(
                        "stores request = 0 on leaving its critical section: now {} (§8.1)",
                        cx.word(after)
                    ),
                    offset::GRANTED if byte == 0 && was_granted => format!(
                        "stores granted = 0: now {}: only the kernel may write granted; the store hides the grant the kernel still holds (§8.2, §7.3)",
                        cx.word(after)
                    ),
                    offset::GRANTED => format!(
                        "stores granted = {byte}: only the kernel may write granted, so this is a protocol violation (rseq_debug checks the word when a task the kernel thinks granted enters a syscall: SIGSEGV, §7.3): now {}",
                        cx.word(after)
                    ),
                    _ => format!(
                        "stores {byte:#04x} into a reserved byte of the word (offset {off}): __reserved must stay 0 (§1.2; rseq_debug checks it when a granted task enters a syscall: SIGSEGV, §7.3): now {}",
                        cx.word(after)
                    ),
                })
            }
            LogKind::UserStore { after, .. } => {
                v.word = *after;
                Some(if cx.requested(after) && !cx.granted(after) {
                    "stores request = 1: asks for an extension of its time slice around its critical section (§8.1)".to_string()
                } else if v.granted && !cx.granted(after) {
                    format!(
                        "stores the word: now {}: the store overwrites the grant the kernel made, so the word no longer shows a grant the kernel still holds (§8.2)",
                        cx.word(after)
                    )
                } else if !cx.requested(after) {
                    format!(
                        "stores request = 0 on leaving its critical section: now {} (§8.1)",
                        cx.word(after)
                    )
                } else {
                    format!("writes the word: now {}", cx.word(after))
                })
            }
            LogKind::UserLoad { off, val } => {
                let s = load(&cx, v, *off, *val);
                let reads_granted = if cx.rev.is_v1() {
                    usize::from(*off) == offset::SLICE_CTRL
                        && CtrlWord::from_all(*val, cx.endian).is_granted(cx.rev, cx.endian)
                } else {
                    usize::from(*off) == offset::GRANTED && *val != 0
                };
                if reads_granted {
                    v.read_granted_at = Some(r.time);
                }
                (!opts.brief).then_some(s)
            }
            LogKind::Injected { what, point } => Some(format!(
                "the explorer injects `{}` here, just before the task's next user operation (point {point} of the schedule)",
                what.name()
            )),
            LogKind::RseqCs { fixup: None } => Some(
                "finds rseq_cs set but the task outside the section: clears rseq_cs".to_string(),
            ),
            LogKind::RseqCs { fixup: Some(ip) } => Some(format!(
                "finds the task inside its rseq critical section: clears rseq_cs and moves it to abort_ip {ip:#x}"
            )),
            LogKind::IdsUpdate { .. } => None,
            LogKind::Mark(m) => Some(format!(
                "marks {m} (a measurement point of the program; no time passes)"
            )),
        };
        if let Some(s) = s {
            line(&mut out, r.time, r.cpu, r.task, &s);
        }
    }
    // Syscalls still inside the kernel when the run ended.
    for (t, v) in &views {
        if let Some(p) = &v.pending_ret {
            let _ = writeln!(
                out,
                "{:>12}  {:<5} {:<16} {p} (the run ends before it is back in user mode)",
                "(end)",
                "",
                name(Some(*t))
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
