//! The engine's internal timed events (what sits in the queue).
//!
//! Events that can become stale (a user step preempted by an interrupt, a cancelled timer)
//! carry a generation number checked when they pop; a mismatch means "ignore".

/// Which reschedule request an injected interrupt's handler makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReschedReq {
    /// The handler does not ask for a reschedule.
    #[default]
    None,
    /// `resched_curr_lazy()`: `TIF_NEED_RESCHED_LAZY` where the model has it.
    Lazy,
    /// `resched_curr()`: `TIF_NEED_RESCHED`.
    Full,
}

/// What an interrupt or exception is (its handler's effect is applied by `irq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IrqKind {
    /// A device interrupt injected by a scenario, optionally asking for a reschedule.
    Device(ReschedReq),
    /// An exception from user mode (e.g. a page fault); no handler effect.
    Exception,
    /// `scheduler_ipi()`: a remote CPU asked this one to reschedule.
    ReschedIpi,
    /// The IPI of `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)`.
    MembarrierIpi,
    /// A signal-wakeup kick (`signal_wake_up()` → `kick_process()`).
    SignalKick,
    /// The periodic scheduler tick.
    Tick,
    /// The per-CPU slice extension enforcement hrtimer (`rseq_slice_expired`).
    SliceTimer,
    /// A task's sleep hrtimer (`hrtimer_wakeup`).
    SleepTimer,
    /// The scheduler's `hrtick_timer` (`hrtick()`): the running fair task reached its
    /// virtual deadline.
    Hrtick,
}

impl IrqKind {
    /// Is it an expiry of the CPU's hrtimers (the local APIC timer: `hrtimer_interrupt()`)?
    pub fn is_hrtimer(self) -> bool {
        matches!(
            self,
            IrqKind::Tick | IrqKind::SliceTimer | IrqKind::SleepTimer | IrqKind::Hrtick
        )
    }

    /// Short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            IrqKind::Device(ReschedReq::None) => "device",
            IrqKind::Device(ReschedReq::Lazy) => "device+resched_lazy",
            IrqKind::Device(ReschedReq::Full) => "device+resched",
            IrqKind::Exception => "exception",
            IrqKind::ReschedIpi => "resched_ipi",
            IrqKind::MembarrierIpi => "membarrier_ipi",
            IrqKind::SignalKick => "signal_kick",
            IrqKind::Tick => "tick",
            IrqKind::SliceTimer => "slice_timer",
            IrqKind::SleepTimer => "sleep_timer",
            IrqKind::Hrtick => "hrtick",
        }
    }
}

/// A timed event in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The current user task of `cpu` finished burning and performs its next operation.
    UserStep {
        /// CPU.
        cpu: u32,
        /// Must equal the CPU's generation.
        gen: u32,
    },
    /// The current task of `cpu` finished its kernel work and continues (exit to user, or
    /// the continuation after a context switch).
    KernelStep {
        /// CPU.
        cpu: u32,
        /// Must equal the CPU's generation.
        gen: u32,
    },
    /// Under an emulator that runs vCPUs in turn (qemu `-icount`), `cpu` stops executing
    /// for `ns` while another vCPU has its turn (`SimConfig::tick_stalls`).
    VcpuStall {
        /// CPU.
        cpu: u32,
        /// How long it is frozen.
        ns: u64,
    },
    /// An interrupt arrives at `cpu`.
    Irq {
        /// CPU.
        cpu: u32,
        /// What it is.
        kind: IrqKind,
        /// For timers: the timer's generation (stale if it was cancelled or re-armed).
        gen: u32,
        /// For sleep timers and signal kicks: the task concerned.
        task: u32,
    },
    /// A task is created and becomes runnable.
    TaskStart {
        /// Task id.
        task: u32,
    },
    /// Recurring interrupt source `source` fires (and schedules its next firing).
    Source {
        /// Index of the source.
        source: u32,
    },
    /// An explorer's injection lands just before `task`'s next user operation.
    Inject {
        /// CPU the task runs on.
        cpu: u32,
        /// The task.
        task: u32,
        /// What lands.
        what: crate::choice::Injection,
        /// Injection point index (for the log).
        point: u32,
    },
    /// A signal is sent to a task from outside (scenario).
    SendSignal {
        /// Task id.
        task: u32,
        /// Signal number.
        signo: i32,
    },
}

impl Event {
    /// The CPU this event happens on, if it is bound to one.
    pub fn cpu(&self) -> Option<u32> {
        match *self {
            Event::UserStep { cpu, .. }
            | Event::KernelStep { cpu, .. }
            | Event::VcpuStall { cpu, .. }
            | Event::Irq { cpu, .. }
            | Event::Inject { cpu, .. } => Some(cpu),
            Event::TaskStart { .. } | Event::Source { .. } | Event::SendSignal { .. } => None,
        }
    }
}
