//! The choice interface: every nondeterministic decision of the engine goes through one
//! [`Chooser`].
//!
//! On a real machine these decisions are made by the hardware and by everything else that
//! runs: which of two simultaneous events is handled first, how long a sleep overshoots,
//! when the next device interrupt arrives, and when an interrupt lands relative to the
//! user's instructions. The engine asks a `Chooser` instead, so a run is fully described by
//! its configuration, its seed and the chooser's answers:
//!
//! - [`Chooser::draw`]: the random numbers of the seeded engine (tie-break keys in seeded
//!   mode, sleep-timer jitter, Poisson inter-arrival times). [`Seeded`], the default, is the
//!   simulation's `Pcg64Mcg`, so installing nothing changes nothing.
//! - [`Chooser::inject`]: before every user operation of a *watched* task (an access to its
//!   `struct rseq`, a shared word, a syscall) the engine offers an [`InjectPoint`] with the
//!   menu of events that could land right there (a device interrupt with or without a
//!   reschedule, a reschedule from another CPU, the enforcement timer firing, a membarrier
//!   IPI, a pending signal, a migration). Search strategies (replay, random, PCT, exhaustive) are
//!   implementations of this trait; see `slicesim explore`.
//!
//! The menu is already reduced: a kind whose effect in the current state is identical to
//! another kind on the menu (a reschedule request when `TIF_NEED_RESCHED` is already set, a
//! timer expiry whose cookie is not a granted current task) is not offered; it is counted
//! in [`InjectPoint::pruned`] so explorers can report the reduction.

use rand_core::Rng;
use rand_pcg::Pcg64Mcg;

/// Which random number the engine wants from [`Chooser::draw`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Draw {
    /// The order key of a queued event in seeded tie-break mode.
    TieKey,
    /// The jitter of a sleep timer (modulo `timer_jitter`, or which of `timer_jitters`).
    SleepJitter,
    /// A uniform draw for a Poisson source's next inter-arrival time.
    IrqArrival,
    /// Which measured tick's vCPU stall this tick gets (modulo `tick_stalls_ns.len()`).
    TickStall,
}

/// An event the explorer may inject at an [`InjectPoint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Injection {
    /// A device interrupt whose handler does not ask for a reschedule.
    Irq,
    /// A device interrupt whose handler calls `resched_curr()`.
    IrqResched,
    /// A device interrupt whose handler calls `resched_curr_lazy()` (lazy model only).
    IrqReschedLazy,
    /// Another CPU calls `resched_curr()` on this one: `TIF_NEED_RESCHED` is set at once,
    /// the reschedule IPI arrives after the IPI latency.
    RemoteResched,
    /// The enforcement hrtimer fires now (any `slice_ext_nsec` shorter than what is left).
    SliceTimer,
    /// The IPI of `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)`.
    MembarrierIpi,
    /// A non-fatal signal (`SIGUSR1`) is sent to the task: `TIF_SIGPENDING` and a kick.
    Signal,
    /// Another CPU moves the task away (`set_cpus_allowed_ptr()` → the stopper): a remote
    /// reschedule, and at its next switch the task is queued on another allowed CPU.
    Migrate,
}

impl Injection {
    /// Every kind, in menu order.
    pub const ALL: [Injection; 8] = [
        Injection::Irq,
        Injection::IrqResched,
        Injection::IrqReschedLazy,
        Injection::RemoteResched,
        Injection::SliceTimer,
        Injection::MembarrierIpi,
        Injection::Signal,
        Injection::Migrate,
    ];

    /// Short name used in schedule strings and reports.
    pub fn name(self) -> &'static str {
        match self {
            Injection::Irq => "irq",
            Injection::IrqResched => "irq+resched",
            Injection::IrqReschedLazy => "irq+lazy",
            Injection::RemoteResched => "remote-resched",
            Injection::SliceTimer => "timer",
            Injection::MembarrierIpi => "membarrier",
            Injection::Signal => "signal",
            Injection::Migrate => "migrate",
        }
    }

    /// The kind named `s` (as printed by [`Self::name`]).
    pub fn parse(s: &str) -> Option<Injection> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Bit of this kind in an [`InjectMenu`].
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`Injection`] kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InjectMenu(pub u8);

impl InjectMenu {
    /// Every kind.
    pub const ALL: InjectMenu = InjectMenu(0xff);

    /// Is `k` in the set?
    pub fn contains(self, k: Injection) -> bool {
        self.0 & k.bit() != 0
    }

    /// The set with `k` added.
    pub fn with(self, k: Injection) -> Self {
        InjectMenu(self.0 | k.bit())
    }

    /// Kinds in both sets.
    pub fn and(self, other: InjectMenu) -> Self {
        InjectMenu(self.0 & other.0)
    }

    /// Number of kinds.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Is the set empty?
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds, in menu order.
    pub fn iter(self) -> impl Iterator<Item = Injection> {
        Injection::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

/// What the user operation at an [`InjectPoint`] is, for reports and annotated timelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointOp {
    /// A load from the task's `struct rseq` (byte offset).
    Load(u8),
    /// A store to it (byte offset).
    Store(u8),
    /// A CPU-local test-and-clear on it (byte offset).
    TestAndClear(u8),
    /// A shared-word access.
    Shared,
    /// A syscall or another kernel entry on the task's own behalf.
    Syscall,
}

/// A place between two user operations of a watched task where an event may be injected.
#[derive(Clone, Copy, Debug)]
pub struct InjectPoint {
    /// Index among all points of this run (0, 1, ...): the same prefix of choices gives the
    /// same indices, so a schedule names points by index.
    pub index: u32,
    /// The task about to perform the operation.
    pub task: u32,
    /// Its CPU.
    pub cpu: u32,
    /// Simulated time of the operation (the injected event lands just before it).
    pub time: u64,
    /// The operation.
    pub op: PointOp,
    /// Kinds that can happen here with distinct effects.
    pub menu: InjectMenu,
    /// Kinds left off the menu because here they would act exactly like another kind on it
    /// (or like nothing).
    pub pruned: InjectMenu,
}

/// The source of every nondeterministic decision of a simulation.
pub trait Chooser: std::any::Any {
    /// A random number for `what`.
    fn draw(&mut self, what: Draw) -> u64;

    /// Before a watched task's user operation: inject an event (from `point.menu`) now?
    fn inject(&mut self, point: &InjectPoint) -> Option<Injection> {
        let _ = point;
        None
    }
}

/// The default chooser: the simulation's seeded generator, no injections.
pub struct Seeded(pub Pcg64Mcg);

impl Chooser for Seeded {
    fn draw(&mut self, _what: Draw) -> u64 {
        self.0.next_u64()
    }
}

/// Replays a fixed list of injections, `(point index, kind)` sorted by index, drawing every
/// random number from a seeded generator: with the same configuration and seed, the same
/// run as the one the list was recorded from.
pub struct Replay {
    rng: Pcg64Mcg,
    plan: Vec<(u32, Injection)>,
    next: usize,
    applied: usize,
    /// Every point offered, in order (kept when `record` was asked for).
    pub points: Vec<InjectPoint>,
    record: bool,
}

impl Replay {
    /// A chooser injecting `plan` (sorted by point index) with the generator seeded by
    /// `seed`; `record` keeps every offered point in [`Self::points`].
    pub fn new(seed: u64, plan: Vec<(u32, Injection)>, record: bool) -> Self {
        use rand_core::SeedableRng;
        Self {
            rng: Pcg64Mcg::seed_from_u64(seed),
            plan,
            next: 0,
            applied: 0,
            points: Vec::new(),
            record,
        }
    }

    /// How many planned injections were applied (a plan naming a point the run never
    /// reached, or a kind not on that point's menu, applies fewer).
    pub fn applied(&self) -> usize {
        self.applied
    }
}

impl Chooser for Replay {
    fn draw(&mut self, _what: Draw) -> u64 {
        self.rng.next_u64()
    }

    fn inject(&mut self, point: &InjectPoint) -> Option<Injection> {
        if self.record {
            self.points.push(*point);
        }
        // Skip plan entries for points already passed (a kind that was not on the menu).
        while let Some(&(at, _)) = self.plan.get(self.next) {
            if at >= point.index {
                break;
            }
            self.next += 1;
        }
        match self.plan.get(self.next) {
            Some(&(at, kind)) if at == point.index => {
                self.next += 1;
                let on_menu = point.menu.contains(kind);
                self.applied += usize::from(on_menu);
                on_menu.then_some(kind)
            }
            _ => None,
        }
    }
}
