//! Per-CPU state: current task and mode, run queue, the slice enforcement hrtimer
//! (`struct slice_timer`, spec §2.1/§4) and the `CONFIG_RSEQ_STATS` counters (spec §3.4).

use crate::event::IrqKind;
use std::collections::BTreeSet;

/// What the CPU is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    /// Nothing to run.
    Idle,
    /// Running its current task's user code.
    User,
    /// Running kernel code for its current task (interrupt, syscall, switch).
    Kernel,
}

/// The per-CPU `slice_timer`: an hrtimer with a cookie naming the task it was armed for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceTimer {
    /// Queued?
    pub armed: bool,
    /// Absolute expiry, ns.
    pub expiry: u64,
    /// `cookie`: the task that armed it.
    pub cookie: Option<u32>,
    /// Generation; a queued expiry with another generation is stale.
    pub gen: u32,
}

/// The run queue's `hrtick_timer` (`kernel/sched/core.c`): the fair class's preemption
/// point at the running task's virtual deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hrtick {
    /// Queued?
    pub armed: bool,
    /// Absolute expiry, ns.
    pub expiry: u64,
    /// Generation; a queued expiry with another generation is stale.
    pub gen: u32,
}

/// The slice-extension counters of `rseq/stats` (spec §3.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceStats {
    /// `s_granted`.
    pub granted: u64,
    /// `s_expired`.
    pub expired: u64,
    /// `s_revoked`.
    pub revoked: u64,
    /// `s_yielded`.
    pub yielded: u64,
    /// `s_aborted`.
    pub aborted: u64,
}

impl SliceStats {
    /// Sum two sets of counters (debugfs sums over all possible CPUs).
    pub fn add(&mut self, o: &SliceStats) {
        self.granted += o.granted;
        self.expired += o.expired;
        self.revoked += o.revoked;
        self.yielded += o.yielded;
        self.aborted += o.aborted;
    }

    /// The counters by their debugfs names, in print order.
    pub fn named(&self) -> [(&'static str, u64); 5] {
        [
            ("sgrant", self.granted),
            ("sexpir", self.expired),
            ("srevok", self.revoked),
            ("syield", self.yielded),
            ("sabort", self.aborted),
        ]
    }

    /// The slice lines of debugfs `rseq/stats`: `name:` padded, value `%16lu`.
    pub fn debugfs(&self) -> String {
        self.named()
            .iter()
            .map(|(n, v)| format!("{:<8}{v:>16}\n", format!("{n}:")))
            .collect()
    }
}

/// The rseq counters of `rseq/stats` before the slice lines, counted where 7.2 counts
/// them: `exit` at every return to user mode (`rseq_syscall_exit_to_user_mode()`,
/// `rseq_irqentry_exit_to_user_mode()`), `signal` in `__rseq_signal_deliver()`, `slowpath`
/// in `__rseq_handle_slowpath()`, `fastpath` when `__rseq_exit_to_user_mode_restart()`
/// finds a switch, `ids` when `rseq_set_ids_get_csaddr()` writes the IDs (all 7.2 paths:
/// the 7.0 and V1 models count only the critical-section ones), and `cs` at every
/// evaluation of a set `rseq_cs` by `rseq_update_user_cs()`, `clear` when the instruction
/// pointer was outside the section, `fixup` when it was moved to `abort_ip`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RseqStats {
    /// `exit`.
    pub exit: u64,
    /// `signal`.
    pub signal: u64,
    /// `slowp`.
    pub slowpath: u64,
    /// `fastp`.
    pub fastpath: u64,
    /// `ids`.
    pub ids: u64,
    /// `cs`.
    pub cs: u64,
    /// `clear`.
    pub clear: u64,
    /// `fixup`.
    pub fixup: u64,
}

impl RseqStats {
    /// Sum two sets of counters.
    pub fn add(&mut self, o: &RseqStats) {
        self.exit += o.exit;
        self.signal += o.signal;
        self.slowpath += o.slowpath;
        self.fastpath += o.fastpath;
        self.ids += o.ids;
        self.cs += o.cs;
        self.clear += o.clear;
        self.fixup += o.fixup;
    }
}

/// A per-CPU run queue: RT tasks by priority, fair tasks by virtual runtime.
#[derive(Clone, Debug, Default)]
pub struct RunQueue {
    /// Fair tasks keyed by (vruntime, task id) under CFS, by (virtual deadline, task id)
    /// under EEVDF (whose tree also holds delayed-dequeue sleepers).
    pub fair: BTreeSet<(u64, u32)>,
    /// RT tasks keyed by (100 - priority, enqueue sequence, task id).
    pub rt: BTreeSet<(u8, u64, u32)>,
    /// `cfs_rq->min_vruntime`.
    pub min_vruntime: u64,
    pub(crate) rt_seq: u64,
    /// EEVDF: `cfs_rq->zero_vruntime`, the origin of the entity keys.
    pub(crate) zero_vruntime: u64,
    /// EEVDF: `cfs_rq->sum_w_vruntime`, the weighted keys of the tree's entities.
    pub(crate) sum_w_vruntime: i128,
    /// EEVDF: `cfs_rq->sum_weight`.
    pub(crate) sum_weight: u64,
    /// EEVDF: delayed-dequeue sleepers in `fair` (not runnable).
    pub(crate) delayed: u32,
}

impl RunQueue {
    /// Number of queued (not running) runnable tasks.
    pub fn len(&self) -> usize {
        self.fair.len() - self.delayed as usize + self.rt.len()
    }

    /// Nothing runnable queued?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One simulated CPU.
#[derive(Clone, Debug)]
pub struct Cpu {
    /// CPU number.
    pub id: u32,
    /// Current task.
    pub curr: Option<u32>,
    /// Mode.
    pub mode: CpuMode,
    /// Run queue.
    pub rq: RunQueue,
    /// The enforcement hrtimer.
    pub slice_timer: SliceTimer,
    /// The scheduler's `hrtick_timer`.
    pub hrtick: Hrtick,
    /// `rq->clock`: when the run queue's clock was last read (`update_rq_clock()`).
    pub(crate) rq_clock: u64,
    /// `RQCF_REQ_SKIP`: the next `__schedule()` keeps `rq_clock` as it is.
    pub(crate) clock_skip: bool,
    /// Sleep hrtimers queued on this CPU's base: (soft expiry, task, its sleep
    /// generation). Any hrtimer interrupt here expires those whose soft expiry has passed.
    pub(crate) sleep_timers: Vec<(u64, u32, u32)>,
    /// Counters.
    pub stats: SliceStats,
    /// Its rseq counters (`exit` .. `fixup`).
    pub rseq_stats: RseqStats,
    /// Generation of the pending user/kernel step; bumped to make it stale.
    pub(crate) gen: u32,
    /// Generation of the tick chain; `tick_on` says whether one is queued.
    pub(crate) tick_gen: u32,
    pub(crate) tick_on: bool,
    /// When the queued tick is due: the chain advances from it, not from when a
    /// deferred tick was handled (`hrtimer_forward()`).
    pub(crate) tick_next: u64,
    /// Interrupts are disabled until then: from the entry of an interrupt from user mode
    /// until its exit work (hard irq, then `irqentry_exit()` up to the exit loop).
    pub(crate) irqs_off_until: u64,
    /// Interrupts raised while they were off, in arrival order: (kind, generation,
    /// task). Taken where the exit enables interrupts (`Simulation::take_pending_irqs`).
    pub(crate) pending_irqs: Vec<(IrqKind, u32, u32)>,
    /// `TIF_HRTIMER_REARM`: the hrtimer interrupt that opened the current hard-irq window
    /// left the clock event device unprogrammed (`CONFIG_HRTIMER_REARM_DEFERRED`), so
    /// hrtimers due meanwhile raise no interrupt until the exit rearms it.
    pub(crate) rearm_deferred: bool,
    /// A vCPU stall that came while the CPU was in the kernel: it freezes the next return
    /// to user mode instead (`Simulation::vcpu_stall`).
    pub(crate) deferred_stall_ns: u64,
    /// The pending tick has had its vCPU stall before its handler: do not draw again when
    /// it is delivered (`Simulation::irq`).
    pub(crate) tick_stalled: bool,
    /// Time spent not idle, ns (utilisation).
    pub busy_ns: u64,
    pub(crate) busy_since: Option<u64>,
}

impl Cpu {
    pub(crate) fn new(id: u32) -> Self {
        Self {
            id,
            curr: None,
            mode: CpuMode::Idle,
            rq: RunQueue {
                zero_vruntime: crate::fair::ORIGIN,
                ..RunQueue::default()
            },
            slice_timer: SliceTimer::default(),
            hrtick: Hrtick::default(),
            rq_clock: 0,
            clock_skip: false,
            sleep_timers: Vec::new(),
            stats: SliceStats::default(),
            rseq_stats: RseqStats::default(),
            gen: 0,
            tick_gen: 0,
            tick_on: false,
            tick_next: 0,
            irqs_off_until: 0,
            pending_irqs: Vec::new(),
            rearm_deferred: false,
            deferred_stall_ns: 0,
            tick_stalled: false,
            busy_ns: 0,
            busy_since: None,
        }
    }
}
