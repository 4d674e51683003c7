//! The differential check: every decision the model makes, replayed in the kernel's
//! code and compared.
//!
//! [`Differ`] is an [`Observer`]: for each [`Decision`] it loads the model's state
//! *before* the decision into the kernel's structures (the projection below), calls the
//! kernel function the model's function follows, and compares the kernel's state after
//! with the model's after: the task's rseq state, its thread flags and syscall work,
//! the user memory, the CPU's slice timer, the slice counters, the signals forced, the
//! return value. Any other difference is recorded with both states side by side.
//!
//! The projection policy (also in `docs/kernel-map.md`):
//! - model `TIF_*` bits ↔ the kernel's `_TIF_*` bits; the model's lumped
//!   `TIF_OTHER_WORK` ↔ `_TIF_UPROBE`; kernel bits the model has no name for are not
//!   compared;
//! - `rseq.reg` ↔ `usrptr/len/sig` and `has_rseq` (2 for a v2 registration, 1 for a
//!   legacy one); `ids_written` ↔ `rseq.ids` (`None` = as reset: CPU id
//!   `RSEQ_CPU_ID_UNINITIALIZED`); `mm_cid` is the CPU number, `node_id` 0;
//! - the model has no `event.fatal`: it carries the cause to the slow path in the
//!   return value instead, so `fatal` is not compared;
//! - the model's syscall-entry work stops at its reschedule point (`schedule()` is a
//!   continuation in the model) and finishes in `rseq_syscall_enter_finish()`: the
//!   kernel's whole `rseq_syscall_enter_work()` is compared with the model's first half
//!   followed by the second (grant cleared, user word zeroed or SIGSEGV), and whether the
//!   kernel reschedules at its `preempt_enable()`/`cond_resched()` with whether the
//!   model goes to its reschedule point with `TIF_NEED_RESCHED` set; the second half is
//!   then held to that same rule on its own;
//! - `schedule()` from the kernel's code only records itself;
//! - one CPU at a time: the decision's CPU's slice timer and counters are loaded, the
//!   cookie as "is the task the decision is about" or not;
//! - what the oracle's code does not contain is skipped and counted, not compared:
//!   revisions other than 7.2, big-endian words, `CONFIG_RSEQ_SLICE_EXTENSION=n`, the
//!   `available_when_boot_disabled = advertise` knob, prctl options and `arg4/arg5`
//!   checks (`kernel/sys.c`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rseq_abi::layout::offset;
use rseq_abi::{Endian, Revision};
use rseq_sim::config::{AvailableWhenBootDisabled, Preempt};
use rseq_sim::observe::{Decision, Observer, Outcome, Site, State, TaskView};
use rseq_sim::USER_IP;
use rseq_sim::{
    TIF_NEED_RESCHED, TIF_NEED_RESCHED_LAZY, TIF_NOTIFY_RESUME, TIF_OTHER_WORK, TIF_RSEQ,
    TIF_SIGPENDING,
};

use crate::{KTask, Kernel, PreemptModel, PtRegs, SliceTimer, Stats, TifBits, NR_STATS};

/// One difference between the model and the kernel.
#[derive(Clone, Debug)]
pub struct Difference {
    /// Where (what was being run, set by the caller with [`Report::context`]).
    pub context: String,
    /// The decision site and arguments.
    pub site: String,
    /// `field: model …, kernel …` for each field that differs.
    pub fields: Vec<String>,
    /// The model's state before, and after, printed.
    pub model_before: String,
    /// The model's state after, printed.
    pub model_after: String,
    /// The kernel's state after, printed.
    pub kernel_after: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "model and kernel differ at {} ({})",
            self.site, self.context
        )?;
        for x in &self.fields {
            writeln!(f, "  {x}")?;
        }
        writeln!(f, "  model before: {}", self.model_before)?;
        writeln!(f, "  model after:  {}", self.model_after)?;
        write!(f, "  kernel after: {}", self.kernel_after)
    }
}

/// What a [`Differ`] found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Decisions compared with the kernel, by site.
    pub checked: BTreeMap<&'static str, u64>,
    /// Decisions not compared, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
    /// The differences (the first [`Report::MAX_KEPT`]).
    pub differences: Vec<Difference>,
    /// All differences, kept or not.
    pub difference_count: u64,
    /// Set by the caller: the scenario, seed or schedule being run.
    pub context: String,
}

impl Report {
    /// Differences kept in full.
    pub const MAX_KEPT: usize = 20;

    /// Decisions compared.
    pub fn total_checked(&self) -> u64 {
        self.checked.values().sum()
    }
    /// Decisions skipped.
    pub fn total_skipped(&self) -> u64 {
        self.skipped.values().sum()
    }
    /// Add another report's counts and differences.
    pub fn merge(&mut self, o: &Report) {
        for (k, v) in &o.checked {
            *self.checked.entry(k).or_default() += v;
        }
        for (k, v) in &o.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
        self.difference_count += o.difference_count;
        for d in &o.differences {
            if self.differences.len() < Self::MAX_KEPT {
                self.differences.push(d.clone());
            }
        }
    }
}

/// The observer: attach with `Simulation::set_observer(Some(Box::new(differ)))`, read
/// the shared [`Report`] afterwards.
pub struct Differ {
    report: Arc<Mutex<Report>>,
}

impl Differ {
    /// A differ and the report it fills.
    pub fn new() -> (Differ, Arc<Mutex<Report>>) {
        let report = Arc::new(Mutex::new(Report::default()));
        (
            Differ {
                report: report.clone(),
            },
            report,
        )
    }
}

impl Observer for Differ {
    fn decision(&mut self, d: &Decision<'_>) {
        let result = Kernel::lock().map(|mut k| check(&mut k, d));
        let mut r = self.report.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Err(_) => *r.skipped.entry("no kernel code (stub)").or_default() += 1,
            Ok(Checked::Skipped(why)) => *r.skipped.entry(why).or_default() += 1,
            Ok(Checked::Same(site)) => *r.checked.entry(site).or_default() += 1,
            Ok(Checked::Differs(site, mut diff)) => {
                *r.checked.entry(site).or_default() += 1;
                r.difference_count += 1;
                if r.differences.len() < Report::MAX_KEPT {
                    diff.context = r.context.clone();
                    r.differences.push(*diff);
                }
            }
        }
    }
}

enum Checked {
    Skipped(&'static str),
    Same(&'static str),
    Differs(&'static str, Box<Difference>),
}

fn site_name(s: &Site) -> &'static str {
    match s {
        Site::Grant { .. } => "grant",
        Site::ExitRestart { .. } => "exit_restart",
        Site::SliceExpired => "slice_expired",
        Site::SyscallEnterWork { .. } => "syscall_enter_work",
        Site::SyscallEnterFinish => "syscall_enter_finish",
        Site::SliceYield => "rseq_slice_yield",
        Site::SysRseq { .. } => "sys_rseq",
        Site::Prctl { .. } => "prctl",
        Site::NotifyResume => "notify_resume",
        Site::SchedSwitchEvent => "sched_switch_event",
        Site::SignalDeliver => "signal_deliver",
        Site::DebugSyscallReturn => "debug_syscall_return",
    }
}

/// The model's thread flags beside the kernel's bits for them.
fn tif_map(b: &TifBits) -> [(u32, u64); 6] {
    [
        (TIF_NEED_RESCHED, b.need_resched),
        (TIF_NEED_RESCHED_LAZY, b.need_resched_lazy),
        (TIF_SIGPENDING, b.sigpending),
        (TIF_NOTIFY_RESUME, b.notify_resume),
        (TIF_RSEQ, b.rseq),
        (TIF_OTHER_WORK, b.other_work),
    ]
}

/// Model thread flags → the kernel's.
pub fn k_tif(m: u32, b: &TifBits) -> u64 {
    tif_map(b)
        .iter()
        .filter(|(mb, _)| m & mb != 0)
        .fold(0, |a, (_, kb)| a | kb)
}

/// Kernel thread flags → the model's (bits the model has no name for are dropped).
pub fn m_tif(k: u64, b: &TifBits) -> u32 {
    tif_map(b)
        .iter()
        .filter(|(_, kb)| k & kb != 0)
        .fold(0, |a, (mb, _)| a | mb)
}

/// The model's task as the kernel's `task_struct` view.
fn k_task(t: &TaskView, b: &TifBits) -> KTask {
    let r = &t.rseq;
    let ids = r.ids_written.unwrap_or([u32::MAX, u32::MAX, 0, 0]);
    KTask {
        usrptr: r.reg.map_or(0, |g| g.addr),
        len: r.reg.map_or(0, |g| g.len),
        sig: r.reg.map_or(0, |g| g.sig),
        has_rseq: r.reg.map_or(0, |g| if g.v2 { 2 } else { 1 }),
        sched_switch: u8::from(r.sched_switch),
        ids_changed: u8::from(r.ids_changed),
        user_irq: u8::from(r.user_irq),
        slowpath: u8::from(r.slowpath),
        fatal: 0,
        ids_cpu_id: ids[0],
        ids_node_id: ids[2],
        ids_mm_cid: ids[3],
        enabled: u8::from(r.enabled),
        granted: u8::from(r.granted),
        expires: r.expires,
        yielded: u8::from(r.yielded),
        tif: k_tif(t.tif, b),
        syscall_work: if t.syscall_work_slice {
            b.syscall_rseq_slice
        } else {
            0
        },
        cpu: t.cpu as i32,
        mm_cid: t.cpu as i32,
        flags: 0,
        pad: [0; 7],
    }
}

/// The model's counters in `struct rseq_stats` order ([`Stats::NAMES`]).
fn k_stats(s: &rseq_sim::SliceStats, r: &rseq_sim::RseqStats) -> Stats {
    Stats {
        all: [
            r.exit, r.signal, r.slowpath, r.fastpath, r.ids, r.cs, r.clear, r.fixup, s.granted,
            s.expired, s.revoked, s.yielded, s.aborted,
        ],
    }
}

fn k_timer(st: &State, tid: Option<u32>) -> SliceTimer {
    let t = &st.cpu.slice_timer;
    SliceTimer {
        armed: t.armed,
        expires: t.expiry,
        cookie_is_current: t.cookie.is_some() && t.cookie == tid,
    }
}

fn sys_value(r: &rseq_abi::SysResult) -> i64 {
    match r {
        Ok(v) => *v,
        Err(e) => -i64::from(e.0),
    }
}

/// Everything compared, as the kernel holds it.
#[derive(Debug, PartialEq, Eq)]
struct Compared {
    task: Option<KTask>,
    mem: Option<Vec<u8>>,
    timer: SliceTimer,
    /// Every counter, in `struct rseq_stats` order.
    stats: [u64; NR_STATS],
    /// The user instruction pointer after (a fixup moves it to `abort_ip`).
    ip: Option<u64>,
    signals: usize,
    last_signal: i32,
    ret: Option<i64>,
    reschedules: Option<bool>,
}

fn check(k: &mut Kernel, d: &Decision<'_>) -> Checked {
    let cfg = d.config;
    let name = site_name(&d.site);
    if cfg.revision != Revision::PostMerge {
        return Checked::Skipped("revision other than 7.2");
    }
    if cfg.endian != Endian::Little {
        return Checked::Skipped("big-endian control word");
    }
    if !cfg.config_slice_ext {
        return Checked::Skipped("CONFIG_RSEQ_SLICE_EXTENSION=n");
    }
    let b = k.tif();
    let tid = d.before.task.as_ref().map(|t| t.tid);
    if let Some(t) = &d.before.task {
        if !t.alive {
            return Checked::Skipped("task already dead");
        }
    } else if !matches!(d.site, Site::SliceExpired) {
        return Checked::Skipped("no task");
    }
    match &d.site {
        Site::SysRseq { .. }
            if !cfg.static_key()
                && cfg.effective_available_when_boot_disabled()
                    != AvailableWhenBootDisabled::Hide =>
        {
            return Checked::Skipped("available_when_boot_disabled = advertise");
        }
        Site::Prctl { option, args }
            if *option != rseq_abi::consts::PR_RSEQ_SLICE_EXTENSION
                || args[2] != 0
                || args[3] != 0 =>
        {
            return Checked::Skipped("prctl dispatch (kernel/sys.c)");
        }
        _ => {}
    }

    // Load the model's state before the decision.
    k.reset();
    k.set_keys(cfg.static_key(), cfg.rseq_debug);
    k.set_slice_ext_nsecs(d.slice_ext_nsec);
    k.set_preempt(match cfg.preempt {
        Preempt::None => PreemptModel::None,
        Preempt::Voluntary => PreemptModel::Voluntary,
        Preempt::Full => PreemptModel::Full,
        Preempt::Lazy => PreemptModel::Lazy,
        Preempt::Rt => PreemptModel::Rt,
    });
    k.set_clock(d.before.fast_clock);
    k.set_stats(&k_stats(&d.before.cpu.stats, &d.before.cpu.rseq_stats));
    if let Some(t) = &d.before.task {
        k.load_task(&k_task(t, &b));
        k.set_user(t.area, &t.mem, t.mapped);
    } else {
        k.set_current_is_task(false);
    }
    k.set_timer(k_timer(d.before, tid));
    k.reset_effects();

    // The kernel function.
    let mut regs = PtRegs {
        ip: d.before.task.as_ref().map_or(USER_IP, |t| t.ip),
        user: 1,
    };
    let before_tif = d.before.task.as_ref().map_or(0, |t| t.tif);
    let mut ret = None;
    let mut extra = Vec::new();
    match &d.site {
        Site::Grant { work_pending } => {
            let ti_work = k_tif(before_tif, &b);
            let deny = ti_work & k.slice_ext_deny() != 0;
            if deny != (*work_pending != 0) {
                extra.push(format!(
                    "work_pending: model {work_pending:#x}, kernel ti_work & TIF_SLICE_EXT_DENY = {:#x}",
                    ti_work & k.slice_ext_deny()
                ));
            }
            ret = Some(i64::from(k.grant(ti_work)));
        }
        Site::ExitRestart { ti_work } => {
            ret = Some(i64::from(k.exit_restart(k_tif(*ti_work, &b), &mut regs)));
        }
        Site::SliceExpired => {
            k.fire_slice_timer();
        }
        Site::SyscallEnterWork { nr } => {
            let nr = if *nr == cfg.revision.slice_yield_nr() {
                k.nr_rseq_slice_yield()
            } else {
                *nr
            };
            k.syscall_enter_work(nr);
        }
        Site::SyscallEnterFinish => {}
        Site::SliceYield => ret = Some(k.sys_rseq_slice_yield()),
        Site::SysRseq {
            addr,
            len,
            flags,
            sig,
        } => ret = Some(k.sys_rseq(*addr, *len, *flags as i32, *sig)),
        Site::Prctl { args, .. } => ret = Some(i64::from(k.prctl(args[0], args[1]))),
        Site::NotifyResume => k.handle_slowpath(&mut regs),
        Site::SchedSwitchEvent => k.sched_switch_event(),
        Site::SignalDeliver => k.signal_deliver(rseq_abi::consts::signal::SIGSEGV, &mut regs),
        Site::DebugSyscallReturn => k.debug_syscall_return(&mut regs),
    }

    // The kernel's state after.
    let e = k.effects();
    if e.depths != [0, 0, 0] {
        extra.push(format!(
            "kernel left irq/preempt/pagefault depths {:?}",
            e.depths
        ));
    }
    let ks = k.stats();
    let mut kmem = vec![0u8; 256];
    k.user(&mut kmem);
    let kernel = Compared {
        task: d.before.task.as_ref().map(|_| project_back(k.task(), &b)),
        mem: d.before.task.as_ref().map(|t| kmem[..t.mem.len()].to_vec()),
        timer: normalise_timer(k.timer()),
        stats: ks.all,
        ip: d.before.task.as_ref().map(|_| regs.ip),
        signals: e.signals as usize,
        last_signal: if e.signals > 0 { e.last_signal } else { 0 },
        ret: match &d.site {
            Site::SyscallEnterFinish => None,
            _ => ret,
        },
        reschedules: match &d.site {
            Site::SyscallEnterWork { .. } => Some(e.preempt_schedules + e.cond_rescheds > 0),
            _ => None,
        },
    };

    // The model's state after, projected.
    let mut after = d.after.clone();
    let mut model_ret = match &d.outcome {
        Outcome::Bool(v) => Some(i64::from(*v)),
        Outcome::Sys(r) => Some(sys_value(r)),
        Outcome::Unit => None,
    };
    let mut reschedules = None;
    let mut extra_signals = 0;
    match &d.site {
        Site::SyscallEnterWork { .. } => {
            let go_on = d.outcome == Outcome::Bool(true);
            reschedules = Some(
                go_on
                    && after
                        .task
                        .as_ref()
                        .is_some_and(|t| t.tif & TIF_NEED_RESCHED != 0),
            );
            if go_on {
                extra_signals = finish(&mut after);
            }
            model_ret = None;
        }
        Site::SyscallEnterFinish => {
            // The second half on its own: the model's after must be its before with the
            // finish rule applied; the kernel side is that same rule.
            let mut expect = d.before.clone();
            let sigs = finish(&mut expect);
            let model = project_model(&after, d.before, tid, &b, None, None, 0);
            let rule = project_model(&expect, d.before, tid, &b, None, None, sigs);
            return verdict(name, d, model, rule, extra);
        }
        _ => {}
    }
    let model = project_model(
        &after,
        d.before,
        tid,
        &b,
        model_ret,
        reschedules,
        extra_signals,
    );
    verdict(name, d, model, kernel, extra)
}

/// The end of the syscall-entry work after its reschedule point: grant cleared, user
/// word zeroed (a fault is SIGSEGV). Returns the signals it adds.
fn finish(st: &mut State) -> usize {
    let Some(t) = st.task.as_mut() else { return 0 };
    t.rseq.granted = false;
    let at = t
        .rseq
        .reg
        .and_then(|r| (r.addr + offset::SLICE_CTRL as u64).checked_sub(t.area))
        .map(|o| o as usize)
        .filter(|o| t.mapped && o + 4 <= t.mem.len());
    match at {
        Some(o) => {
            t.mem[o..o + 4].fill(0);
            0
        }
        None => 1,
    }
}

fn normalise_timer(t: SliceTimer) -> SliceTimer {
    // An idle timer's expiry and cookie are leftovers: compare them only when armed.
    if t.armed {
        t
    } else {
        SliceTimer::default()
    }
}

/// The kernel's task with the bits the model has no name for dropped and `fatal` (which
/// the model does not keep) cleared.
fn project_back(mut t: KTask, b: &TifBits) -> KTask {
    t.tif = u64::from(m_tif(t.tif, b));
    t.syscall_work &= b.syscall_rseq_slice;
    t.fatal = 0;
    t
}

fn project_model(
    after: &State,
    before: &State,
    tid: Option<u32>,
    b: &TifBits,
    ret: Option<i64>,
    reschedules: Option<bool>,
    extra_signals: usize,
) -> Compared {
    let nb = before.task.as_ref().map_or(0, |t| t.sig_pending.len());
    let na = after.task.as_ref().map_or(0, |t| t.sig_pending.len());
    let signals = na.saturating_sub(nb) + extra_signals;
    let last_signal = if extra_signals > 0 {
        rseq_abi::consts::signal::SIGSEGV
    } else if signals > 0 {
        after
            .task
            .as_ref()
            .and_then(|t| t.sig_pending.last())
            .map_or(0, |(s, _)| *s)
    } else {
        0
    };
    Compared {
        task: after.task.as_ref().map(|t| project_back(k_task(t, b), b)),
        mem: after.task.as_ref().map(|t| t.mem.to_vec()),
        timer: normalise_timer(k_timer(after, tid)),
        stats: k_stats(&after.cpu.stats, &after.cpu.rseq_stats).all,
        ip: after.task.as_ref().map(|t| t.ip),
        signals,
        last_signal,
        ret,
        reschedules,
    }
}

fn verdict(
    name: &'static str,
    d: &Decision<'_>,
    model: Compared,
    kernel: Compared,
    mut fields: Vec<String>,
) -> Checked {
    if model == kernel && fields.is_empty() {
        return Checked::Same(name);
    }
    macro_rules! cmp {
        ($($f:tt)*) => {
            if model.$($f)* != kernel.$($f)* {
                fields.push(format!(
                    "{}: model {:?}, kernel {:?}",
                    stringify!($($f)*),
                    model.$($f)*,
                    kernel.$($f)*
                ));
            }
        };
    }
    if let (Some(m), Some(kt)) = (&model.task, &kernel.task) {
        let fm = format!("{m:?}");
        let fk = format!("{kt:?}");
        // Field by field: split the Debug output, which lists fields in order.
        for (a, c) in fm.split(", ").zip(fk.split(", ")) {
            if a != c {
                fields.push(format!("task.{a} (model) vs {c} (kernel)"));
            }
        }
    }
    if let (Some(m), Some(kt)) = (&model.mem, &kernel.mem) {
        for (i, (x, y)) in m.iter().zip(kt.iter()).enumerate() {
            if x != y {
                fields.push(format!("user byte {i}: model {x:#04x}, kernel {y:#04x}"));
            }
        }
    }
    cmp!(timer);
    cmp!(stats);
    cmp!(ip);
    cmp!(signals);
    cmp!(last_signal);
    cmp!(ret);
    cmp!(reschedules);
    Checked::Differs(
        name,
        Box::new(Difference {
            context: String::new(),
            site: format!("{:?} -> {:?}", d.site, d.outcome),
            fields,
            model_before: show(d.before),
            model_after: show(d.after),
            kernel_after: show_kernel(&kernel),
        }),
    )
}

/// The first bytes of user memory that hold the rseq area, in hex.
fn hex(mem: &[u8]) -> String {
    mem.iter().take(40).map(|b| format!("{b:02x}")).collect()
}

/// A model state, compact: the user memory as the hex of the area's first 40 bytes.
fn show(st: &State) -> String {
    let task = st.task.as_ref().map_or("no task".to_string(), |t| {
        format!(
            "task {} on cpu {} alive {} rseq {:?} tif {:#x} syscall_work_slice {} area {:#x} mapped {} mem {} signals {:?}",
            t.tid,
            t.cpu,
            t.alive,
            t.rseq,
            t.tif,
            t.syscall_work_slice,
            t.area,
            t.mapped,
            hex(&t.mem),
            t.sig_pending
        )
    });
    format!(
        "now {} fast clock {}; {task}; cpu {} curr {:?} timer {:?} stats {:?}",
        st.now, st.fast_clock, st.cpu.id, st.cpu.curr, st.cpu.slice_timer, st.cpu.stats
    )
}

fn show_kernel(c: &Compared) -> String {
    format!(
        "task {:?} mem {} timer {:?} stats {:?} signals {} (last {}) ret {:?} reschedules {:?}",
        c.task,
        c.mem.as_deref().map_or(String::new(), hex),
        c.timer,
        c.stats,
        c.signals,
        c.last_signal,
        c.ret,
        c.reschedules
    )
}
