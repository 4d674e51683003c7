//! A neutral observer of the kernel model's decisions.
//!
//! At each decision site that follows a kernel function (the grant, the exit-to-user
//! rseq update with the timer arming, the timer expiry, the syscall-entry work and its
//! final clear, `rseq_slice_yield`, `sys_rseq`, prctl, the notify-resume slow path, the
//! sched-switch event, signal delivery and the debug syscall-return check) the engine
//! hands an attached [`Observer`] the state of the task and of its CPU before and after
//! the decision, with the decision's arguments and result. Nothing here knows what the
//! observer does with it (the kernel oracle, `kernel-oracle/`, replays the decision in
//! Linux's own C code and compares).
//!
//! Cost when nothing is attached: one `Option::take()` of `Simulation::observer` at
//! each decision site (never on the per-user-operation path), and nothing else. While
//! a decision is observed the observer is out of the simulation, so decisions nested in
//! it (a `force_sig()` inside the grant) run unobserved and the outer decision is seen
//! as a whole.

use rseq_abi::SysResult;

use crate::config::SimConfig;
use crate::coro::RSEQ_AREA_SIZE;
use crate::cpu::{SliceStats, SliceTimer};
use crate::sim::Simulation;
use crate::task::RseqTask;
use crate::trace::FaultCause;

/// A decision site, with its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Site {
    /// `rseq_grant_slice_extension()`, with the deny work the exit loop found.
    Grant {
        /// `ti_work & TIF_SLICE_EXT_DENY` as the model computed it.
        work_pending: u32,
    },
    /// `rseq_exit_to_user_mode_restart(ti_work)`: the rseq update and the timer arming.
    ExitRestart {
        /// The thread flags the exit loop read.
        ti_work: u32,
    },
    /// `rseq_slice_expired()`: the CPU's slice timer fired.
    SliceExpired,
    /// `rseq_syscall_enter_work(nr)` up to its reschedule point.
    SyscallEnterWork {
        /// The syscall number.
        nr: i64,
    },
    /// The end of `rseq_syscall_enter_work()` after its reschedule point.
    SyscallEnterFinish,
    /// `sys_rseq_slice_yield()`.
    SliceYield,
    /// `sys_rseq()`.
    SysRseq {
        /// `rseq`.
        addr: u64,
        /// `rseq_len`.
        len: u32,
        /// `flags`.
        flags: u32,
        /// `sig`.
        sig: u32,
    },
    /// `prctl(option, args...)`.
    Prctl {
        /// `option`.
        option: i32,
        /// `arg2..arg5`.
        args: [u64; 4],
    },
    /// The notify-resume slow path (`rseq_handle_slowpath()`).
    NotifyResume,
    /// `rseq_sched_switch_event()`.
    SchedSwitchEvent,
    /// `rseq_signal_deliver()`.
    SignalDeliver,
    /// `rseq_debug_syscall_return()`.
    DebugSyscallReturn,
}

/// What the decision returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing.
    Unit,
    /// A yes/no (granted, loop again, go on to the reschedule point).
    Bool(bool),
    /// A syscall result.
    Sys(SysResult),
}

/// The part of a task a decision reads or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskView {
    /// Task id.
    pub tid: u32,
    /// The CPU it runs on (`task_cpu()`; the model's `mm_cid` is the same).
    pub cpu: u32,
    /// Alive?
    pub alive: bool,
    /// `task_struct::rseq`.
    pub rseq: RseqTask,
    /// Thread flags (the model's `TIF_*`).
    pub tif: u32,
    /// `SYSCALL_WORK_SYSCALL_RSEQ_SLICE`.
    pub syscall_work_slice: bool,
    /// User address of the memory the kernel can touch (the rseq area image).
    pub area: u64,
    /// Its bytes.
    pub mem: [u8; RSEQ_AREA_SIZE],
    /// The user instruction pointer `rseq_cs` is evaluated against (inside a restartable
    /// sequence, the instruction it is at; after a fixup, `abort_ip`).
    pub ip: u64,
    /// Mapped?
    pub mapped: bool,
    /// Signals queued.
    pub sig_pending: Vec<(i32, Option<FaultCause>)>,
}

/// The part of a CPU a decision reads or writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuView {
    /// CPU number.
    pub id: u32,
    /// Its current task.
    pub curr: Option<u32>,
    /// The slice timer.
    pub slice_timer: SliceTimer,
    /// The slice counters.
    pub stats: SliceStats,
    /// The `cs`, `clear` and `fixup` counters.
    pub rseq_stats: crate::cpu::RseqStats,
}

/// The state around one decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// Simulated time (the hrtimer clock), ns.
    pub now: u64,
    /// `ktime_get_mono_fast_ns()` at that time.
    pub fast_clock: u64,
    /// The task the decision is about, if any.
    pub task: Option<TaskView>,
    /// The CPU it is made on.
    pub cpu: CpuView,
}

/// One observed decision.
#[derive(Debug)]
pub struct Decision<'a> {
    /// Where, with its arguments.
    pub site: Site,
    /// What it returned.
    pub outcome: Outcome,
    /// Before.
    pub before: &'a State,
    /// After.
    pub after: &'a State,
    /// The simulation's configuration.
    pub config: &'a SimConfig,
    /// The effective `slice_ext_nsec`.
    pub slice_ext_nsec: u32,
}

/// Something that watches the model's decisions.
pub trait Observer: Send {
    /// One decision was made.
    fn decision(&mut self, d: &Decision<'_>);
}

impl From<bool> for Outcome {
    fn from(b: bool) -> Self {
        Outcome::Bool(b)
    }
}

impl From<()> for Outcome {
    fn from((): ()) -> Self {
        Outcome::Unit
    }
}

impl From<SysResult> for Outcome {
    fn from(r: SysResult) -> Self {
        Outcome::Sys(r)
    }
}

impl Simulation {
    /// Attach an observer of the model's decisions (or detach with `None`); returns the
    /// one attached before.
    pub fn set_observer(&mut self, o: Option<Box<dyn Observer>>) -> Option<Box<dyn Observer>> {
        std::mem::replace(&mut self.observer, o)
    }

    /// Take the observer back out of the simulation.
    pub fn take_observer(&mut self) -> Option<Box<dyn Observer>> {
        self.observer.take()
    }

    fn observe_state(&self, cpu: u32, tid: Option<u32>) -> State {
        let c = &self.cpus[cpu as usize];
        State {
            now: self.now,
            fast_clock: self.now.saturating_add_signed(self.cfg.fast_clock_skew_ns),
            task: tid.map(|tid| {
                let t = &self.tasks[tid as usize];
                TaskView {
                    tid,
                    cpu: t.cpu,
                    alive: t.alive(),
                    rseq: t.rseq.clone(),
                    tif: t.tif,
                    syscall_work_slice: t.syscall_work_slice,
                    area: t.mem.area,
                    mem: t.mem.bytes,
                    ip: t.ip,
                    mapped: t.mem.mapped,
                    sig_pending: t.sig_pending.clone(),
                }
            }),
            cpu: CpuView {
                id: cpu,
                curr: c.curr,
                slice_timer: c.slice_timer,
                stats: c.stats,
                rseq_stats: c.rseq_stats,
            },
        }
    }

    /// Run the decision `f` with `obs` (already taken out of the simulation) watching:
    /// the state before and after go to it, and it is put back.
    pub(crate) fn observed<R: Clone + Into<Outcome>>(
        &mut self,
        mut obs: Box<dyn Observer>,
        site: Site,
        cpu: u32,
        tid: Option<u32>,
        f: impl FnOnce(&mut Self) -> R,
    ) -> R {
        let before = self.observe_state(cpu, tid);
        let r = f(self);
        let after = self.observe_state(cpu, tid);
        obs.decision(&Decision {
            site,
            outcome: r.clone().into(),
            before: &before,
            after: &after,
            config: &self.cfg,
            slice_ext_nsec: self.slice_ext_nsec,
        });
        self.observer = Some(obs);
        r
    }
}
