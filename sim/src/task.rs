//! Per-task kernel state (`task_struct` and its `rseq` member) and the task's user memory.
//!
//! Follows `include/linux/rseq_types.h` (spec §2.1): the slice state (`enabled`, `granted`,
//! `expires`, `yielded`), the rseq event bits and the registration live here; the user
//! word lives only in the task's byte image of its rseq area.

use rseq_abi::programs::Counters;
use rseq_abi::CpuSet;

use crate::coro::{SimProgram, Value, RSEQ_AREA_SIZE};
use crate::trace::FaultCause;

/// `TIF_NEED_RESCHED`.
pub const TIF_NEED_RESCHED: u32 = 1 << 0;
/// `TIF_NEED_RESCHED_LAZY`.
pub const TIF_NEED_RESCHED_LAZY: u32 = 1 << 1;
/// `TIF_SIGPENDING`.
pub const TIF_SIGPENDING: u32 = 1 << 2;
/// `TIF_NOTIFY_RESUME` (rseq slow path).
pub const TIF_NOTIFY_RESUME: u32 = 1 << 3;
/// `TIF_RSEQ` (rseq fast-path update pending).
pub const TIF_RSEQ: u32 = 1 << 4;
/// `TIF_NOTIFY_SIGNAL`, `TIF_UPROBE`, `TIF_PATCH_PENDING` and arch work, lumped together:
/// other exit work that only matters because it denies a grant.
pub const TIF_OTHER_WORK: u32 = 1 << 5;

/// `EXIT_TO_USER_MODE_WORK`.
pub const EXIT_TO_USER_MODE_WORK: u32 = TIF_NEED_RESCHED
    | TIF_NEED_RESCHED_LAZY
    | TIF_SIGPENDING
    | TIF_NOTIFY_RESUME
    | TIF_RSEQ
    | TIF_OTHER_WORK;

/// Scheduling class and parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Policy {
    /// `SCHED_OTHER` (the fair class).
    #[default]
    Normal,
    /// `SCHED_FIFO` with a priority 1..=99.
    Fifo(u8),
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Not started yet.
    New,
    /// On a run queue, waiting for a CPU.
    Runnable,
    /// Current on its CPU.
    Running,
    /// Sleeping (nanosleep, futex).
    Sleeping,
    /// Exited or killed.
    Dead,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskExit {
    /// The program returned.
    Exited,
    /// Killed by a signal.
    Signaled {
        /// Signal number.
        signo: i32,
        /// Why, when the kernel raised it.
        cause: Option<FaultCause>,
    },
    /// The user program panicked: the task's own fault, reported, the simulation goes on.
    Panicked(String),
    /// The task exceeded its budget of user-side steps.
    StepBudget(u64),
    /// The simulator could not create the task's coroutine.
    SpawnFailed(String),
    /// The task made `ops` user operations (markers, zero-cost accesses, `burn(0)`) at
    /// one simulated instant without time passing: a livelock. It is stopped there; the
    /// simulation goes on (`SimConfig::max_ops_per_instant`).
    Livelock {
        /// Operations at that instant.
        ops: u64,
        /// The instant, ns.
        at_ns: u64,
        /// The operation it was making when stopped, e.g. `shared load of word 0`.
        op: String,
    },
}

impl std::fmt::Display for TaskExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskExit::Exited => write!(f, "exited"),
            TaskExit::Signaled {
                signo,
                cause: Some(c),
            } => write!(f, "killed by signal {signo} ({c})"),
            TaskExit::Signaled { signo, cause: None } => write!(f, "killed by signal {signo}"),
            TaskExit::Panicked(m) => write!(f, "panicked: {m}"),
            TaskExit::StepBudget(n) => write!(f, "exceeded the step budget of {n} user steps"),
            TaskExit::SpawnFailed(m) => write!(f, "could not be created: {m}"),
            TaskExit::Livelock { ops, at_ns, op } => write!(
                f,
                "livelock: {ops} user operations at {at_ns} ns without time passing (last: {op}); \
                 give the operations a cost or raise max_ops_per_instant"
            ),
        }
    }
}

/// A registered rseq area (`current->rseq.usrptr`, `len`, `sig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// User address.
    pub addr: u64,
    /// Registered length.
    pub len: u32,
    /// Signature.
    pub sig: u32,
    /// Post-7.0: registration ABI v2 (`rseq_len > 32`); always true for other revisions.
    pub v2: bool,
}

/// `task_struct::rseq`: registration, events and the slice state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RseqTask {
    /// The registration (`has_rseq` iff `Some`).
    pub reg: Option<Registration>,
    /// `slice.state.enabled`.
    pub enabled: bool,
    /// `slice.state.granted`.
    pub granted: bool,
    /// `slice.expires`, absolute ns.
    pub expires: u64,
    /// `slice.yielded`.
    pub yielded: bool,
    /// `event.user_irq`.
    pub user_irq: bool,
    /// `event.sched_switch`.
    pub sched_switch: bool,
    /// `event.ids_changed`.
    pub ids_changed: bool,
    /// The ID fields the kernel last wrote (`cpu_id_start, cpu_id, node_id, mm_cid`):
    /// `rseq::ids`, the cache the read-only check compares with (`None` = as reset).
    pub ids_written: Option<[u32; 4]>,
    /// `event.slowpath` (7.2): the fast path failed, the slow path must redo the update.
    pub slowpath: bool,
}

impl RseqTask {
    /// `t->rseq.event.events = 0` plus the error bits: what every finished update clears.
    pub fn clear_events(&mut self) {
        self.user_irq = false;
        self.sched_switch = false;
        self.ids_changed = false;
        self.slowpath = false;
    }
}

/// The task's rseq area in simulated user memory.
#[derive(Clone, Debug)]
pub struct UserMem {
    /// User address of the area.
    pub area: u64,
    /// Its bytes.
    pub bytes: [u8; RSEQ_AREA_SIZE],
    /// Mapped? (unmapping makes every kernel access fault).
    pub mapped: bool,
}

impl UserMem {
    /// Translate `[addr, addr+len)` to an offset in the area, if mapped and inside it.
    pub fn offset(&self, addr: u64, len: usize) -> Option<usize> {
        let off = addr.checked_sub(self.area)? as usize;
        (self.mapped && off + len <= RSEQ_AREA_SIZE).then_some(off)
    }
}

/// Where the task continues when it next runs in the kernel.
pub(crate) enum KCont {
    /// Nothing pending (running in user mode, or dead).
    None,
    /// Return to user via the exit work loop, then deliver `ret` (or continue the
    /// interrupted user operation when `None`).
    ExitToUser { ret: Ret },
    /// In the syscall entry code before the rseq slice work runs (`syscall_work_delay_ns`).
    SyscallWork { sys: crate::syscall::KSys },
    /// Preempted at the reschedule point of the syscall-entry work (spec §6.1 step 5–6):
    /// finish the work (step 7), then run the syscall.
    SyscallEntryResched { sys: crate::syscall::KSys },
    /// Frozen by the emulator (`Event::VcpuStall`): resume the cut user operation.
    StallEnd,
}

/// What a task gets when it returns to user mode.
pub(crate) enum Ret {
    /// Start the program (first return to user, or after exec).
    Start,
    /// Resume the suspended operation with this result (a syscall's return value).
    Value(Value),
    /// Continue the operation an interrupt cut into.
    Continue,
}

/// A simulated thread.
pub struct Task {
    /// Task id (index in the simulation).
    pub id: u32,
    /// Name for reports.
    pub name: String,
    /// Process (mm) id; threads share it.
    pub mm: u32,
    /// Where the task is.
    pub state: TaskState,
    /// CPU it runs or last ran on.
    pub cpu: u32,
    /// Allowed CPUs.
    pub affinity: CpuSet,
    /// Scheduling class.
    pub policy: Policy,
    /// Nice value of a fair-class task (-20..=19): its load weight.
    pub nice: i8,
    /// Fair-class virtual runtime, ns.
    pub vruntime: u64,
    /// Total CPU time consumed, ns.
    pub sum_exec: u64,
    pub(crate) exec_start: u64,
    pub(crate) slice_start: u64,
    /// EEVDF's per-entity state (`struct sched_entity`), unused under CFS.
    pub(crate) se: crate::fair::Entity,
    /// Thread flags (`TIF_*`).
    pub tif: u32,
    /// `SYSCALL_WORK_SYSCALL_RSEQ_SLICE`.
    pub syscall_work_slice: bool,
    /// Inside a syscall (entry until its exit to user): interrupts that return here may
    /// preempt it (`irqentry_exit_cond_resched()`), and its return runs the debug check.
    pub in_syscall: bool,
    /// The kernel's rseq state.
    pub rseq: RseqTask,
    /// The rseq area in user memory.
    pub mem: UserMem,
    /// Length the program registers with.
    pub rseq_len: u32,
    /// Pending signals with their causes.
    pub sig_pending: Vec<(i32, Option<FaultCause>)>,
    /// How it ended.
    pub exit: Option<TaskExit>,
    /// The step its program last announced with [`crate::SimPlatform::at_step`] before it
    /// ended (a script's line index), if it announced any: where a livelock, a budget or a
    /// panic stopped it.
    pub step: Option<u32>,
    /// The program's counters (when it returned).
    pub counters: Counters,
    /// User-side steps taken.
    pub user_steps: u64,
    /// The instant of the task's latest user operation, and how many it made there (the
    /// livelock budget, `SimConfig::max_ops_per_instant`).
    pub(crate) instant_at: u64,
    pub(crate) instant_ops: u64,
    pub(crate) kcont: KCont,
    pub(crate) pending_op: Option<crate::coro::Op>,
    pub(crate) pending_at: u64,
    pub(crate) pending_remaining: u64,
    /// The user instruction pointer the kernel evaluates `rseq_cs` against:
    /// `rseq::USER_IP`, or inside a restartable sequence the instruction it is at.
    pub(crate) ip: u64,
    /// The kernel fixed the instruction pointer up to `abort_ip`: the program is told when
    /// it next returns to user mode.
    pub(crate) seq_abort: bool,
    pub(crate) sleep_gen: u32,
    pub(crate) program: Option<SimProgram>,
    pub(crate) start_ns: u64,
    /// Offered to the simulation's chooser at every user operation (exploration).
    pub watched: bool,
    /// A migration asked by another CPU: at its next switch the task is queued here.
    pub migrate_to: Option<u32>,
}

impl Task {
    /// The four bytes of the control word.
    pub fn ctrl(&self) -> rseq_abi::CtrlWord {
        let o = rseq_abi::layout::offset::SLICE_CTRL;
        rseq_abi::CtrlWord::from_bytes([
            self.mem.bytes[o],
            self.mem.bytes[o + 1],
            self.mem.bytes[o + 2],
            self.mem.bytes[o + 3],
        ])
    }

    /// Is the task alive?
    pub fn alive(&self) -> bool {
        self.state != TaskState::Dead
    }
}
