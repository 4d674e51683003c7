//! Machine and kernel configuration of a simulation: every knob, with its unit and default.
//!
//! The kernel-side knobs mirror real ones: Kconfig (`CONFIG_RSEQ_SLICE_EXTENSION`), boot
//! parameters (`rseq_slice_ext=`, `rseq_debug=`, `preempt=`), debugfs
//! (`rseq/slice_ext_nsec`) and the V1 sysctl. Costs and latencies are the simulator's own.

use rseq_abi::consts::*;
use rseq_abi::{Endian, Errno, Revision};

/// The kernel's preemption model (`preempt=` with `PREEMPT_DYNAMIC`, or `PREEMPT_RT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Preempt {
    /// `PREEMPT_NONE`: reschedule only at return to user and `cond_resched()`.
    None,
    /// `PREEMPT_VOLUNTARY`: like NONE plus voluntary preemption points.
    Voluntary,
    /// `PREEMPT_FULL`: wakeups and ticks set `TIF_NEED_RESCHED`.
    #[default]
    Full,
    /// `PREEMPT_LAZY`: fair-class reschedules set `TIF_NEED_RESCHED_LAZY`; the tick upgrades
    /// a pending lazy request to a full one.
    Lazy,
    /// `PREEMPT_RT`: lazy for fair tasks, full for RT tasks; only lazy reschedules can be
    /// extended (spec §3.1).
    Rt,
}

impl Preempt {
    /// Do fair-class reschedules use `TIF_NEED_RESCHED_LAZY` in this model?
    pub fn has_lazy(self) -> bool {
        matches!(self, Preempt::Lazy | Preempt::Rt)
    }

    /// `CONFIG_PREEMPTION`: kernel code is preempted on return from interrupt.
    pub fn is_preemptible(self) -> bool {
        matches!(self, Preempt::Full | Preempt::Lazy | Preempt::Rt)
    }

    /// Name as in scenario files and `preempt=`.
    pub fn name(self) -> &'static str {
        match self {
            Preempt::None => "none",
            Preempt::Voluntary => "voluntary",
            Preempt::Full => "full",
            Preempt::Lazy => "lazy",
            Preempt::Rt => "rt",
        }
    }
}

/// How events scheduled for the same nanosecond are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TieBreak {
    /// Insertion order (FIFO by sequence number): the documented default.
    #[default]
    Fifo,
    /// A seeded random order among equal timestamps (for exploration).
    Seeded,
}

/// The fair scheduling class the simulator models.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FairClass {
    /// EEVDF, as `kernel/sched/fair.c` of every modelled revision has it (Linux 6.6 and
    /// later): lag-preserving placement, eligibility against the weighted average
    /// vruntime, virtual deadlines one slice ahead, run-to-parity slice protection and
    /// delayed dequeue of ineligible sleepers (`sim/src/fair.rs`).
    #[default]
    Eevdf,
    /// The small CFS-like approximation the simulator began with: vruntime order, sleeper
    /// credit and a wakeup granularity (`sleeper_credit`, `wakeup_gran`). Kept so that
    /// results taken with it can be reproduced; no modelled kernel schedules this way.
    Cfs,
}

impl FairClass {
    /// The name scenario files use.
    pub fn name(self) -> &'static str {
        match self {
            FairClass::Eevdf => "eevdf",
            FairClass::Cfs => "cfs",
        }
    }
}

/// Who owns `AVAILABLE` when the boot switch is off (spec §13.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AvailableWhenBootDisabled {
    /// 7.0.0: `AVAILABLE` is set regardless of the boot switch.
    Advertise,
    /// 7.0.y and later: `AVAILABLE` only when the static key is on.
    Hide,
}

/// Every knob of a simulated machine and kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// Number of CPUs (1..=1024).
    pub cpus: usize,
    /// Timer tick frequency in Hz (`CONFIG_HZ`); 0 disables the tick.
    pub hz: u32,
    /// Preemption model.
    pub preempt: Preempt,
    /// Protocol revision the kernel implements.
    pub revision: Revision,
    /// `CONFIG_RSEQ_SLICE_EXTENSION`: the feature is compiled in.
    pub config_slice_ext: bool,
    /// Boot parameter `rseq_slice_ext=` (the static key `rseq_slice_extension_key`).
    pub slice_ext_boot: bool,
    /// debugfs `rseq/slice_ext_nsec` (V1: sysctl `kernel.rseq_slice_extension_nsec`), ns.
    /// `None` = the revision's default.
    pub slice_ext_nsec: Option<u32>,
    /// Boot parameter `rseq_debug=` (static key `rseq_debug_enabled`).
    pub rseq_debug: bool,
    /// Byte order of the simulated machine (how `u32 all` maps to bytes).
    pub endian: Endian,
    /// Whether `AVAILABLE` is advertised with the boot switch off; `None` = per revision
    /// (Merged: advertise, PostMerge: hide).
    pub available_when_boot_disabled: Option<AvailableWhenBootDisabled>,
    /// Seed of the one random generator.
    pub seed: u64,
    /// Order of equal-time events.
    pub tie_break: TieBreak,

    /// Kernel time of an interrupt or exception from entry to the exit-to-user work, ns.
    pub irq_latency_ns: u64,
    /// Kernel time of a syscall from entry to the exit-to-user work, ns.
    pub syscall_ns: u64,
    /// Time of a context switch until the next task runs its kernel continuation, ns.
    pub ctx_switch_ns: u64,
    /// Delay between sending an IPI and its arrival on the target CPU, ns.
    pub ipi_latency_ns: u64,
    /// Leaving idle for a task, on top of `ctx_switch_ns`: the interrupt that finds the CPU
    /// idle and the idle loop's exit (`do_idle()` → `schedule_idle()`), ns. A switch from a
    /// running task has no such part.
    pub idle_exit_ns: u64,
    /// Cost of a vDSO `clock_gettime` read in user mode, ns (must be > 0).
    pub clock_read_ns: u64,
    /// Cost of an access to the thread's `struct rseq`, ns.
    pub mem_access_ns: u64,
    /// Cost of an access to a shared word, ns.
    pub shared_access_ns: u64,

    /// The fair class's model (`FairClass`).
    pub fair_class: FairClass,
    /// `sysctl_sched_base_slice` as the kernel runs with it, ns: under EEVDF the request
    /// size behind every virtual deadline; under CFS a task that ran this long since it
    /// was picked is preempted at the next tick if others are runnable. 0 (the default)
    /// means the kernel's own figure, [`SimConfig::base_slice_ns`].
    pub sched_base_slice_ns: u64,
    /// Wakeup preemption granularity: a woken task preempts the current one if its
    /// vruntime is smaller by more than this, ns.
    pub wakeup_gran_ns: u64,
    /// Sleeper credit: a waking task's vruntime is placed no lower than
    /// `min_vruntime - sleeper_credit_ns`.
    pub sleeper_credit_ns: u64,
    /// Offset of `ktime_get_mono_fast_ns()` (read for a grant's expiry) from the hrtimer's
    /// `CLOCK_MONOTONIC`, ns (§13.13). The arming check compares `expires` with the
    /// same fast clock (Linux 7.2.13 `rseq_arm_slice_extension_timer()`), so a negative skew
    /// does not reach its `expires < now` branch: it arms the hrtimer at a time already past
    /// on `CLOCK_MONOTONIC`, which fires at once and counts `s_expired`.
    pub fast_clock_skew_ns: i64,
    /// `timer_slack_ns` of fair-class tasks: a relative sleep's hrtimer fires at its hard
    /// expiry, `ns + slack` later (Linux default 50 µs; RT tasks have none), ns.
    pub timer_slack_ns: u64,
    /// A sleep timer fires up to this much later than its expiry, uniformly at random from
    /// the seeded generator: the interrupt-latency variation of real hardware. Without it
    /// periodic sleepers phase-lock with busy tasks in ways no machine shows, ns.
    pub timer_jitter_ns: u64,
    /// Measured sleep-timer delays: when not empty, a sleep timer fires one of these,
    /// drawn uniformly from the seeded generator, after its expiry, in place of
    /// `U[0, timer_jitter_ns)`. A measured distribution keeps its shape (under qemu's
    /// icount most wakeups are exact and a few are late by discrete amounts), which a
    /// uniform width of the same spread does not, ns.
    pub timer_jitters_ns: Vec<u64>,
    /// Time from syscall entry to the rseq slice work in `syscall_trace_enter()`, ns. With
    /// a non-zero value the enforcement timer can fire in between, counting both
    /// `s_expired` and `s_yielded` (spec §13.5). Default 0: the work runs at entry.
    pub syscall_work_delay_ns: u64,
    /// An emulator's vCPU stalls after the tick ([`TickStalls`]). Empty (the default): a
    /// machine whose CPUs run independently.
    pub tick_stalls: TickStalls,
    /// Pull a runnable task from the busiest CPU when a CPU goes idle.
    pub load_balance: bool,
    /// `sched_feat(HRTICK)` with EEVDF: the fair class arms a per-CPU hrtimer at the
    /// running task's virtual deadline whenever another fair task is queued, so the
    /// request ends exactly there instead of at the next tick. Linux 7.2 turns it on
    /// wherever `CONFIG_HRTIMER_REARM_DEFERRED` is set (x86 and every generic-entry
    /// architecture); default true.
    pub hrtick: bool,

    /// Per-task budget of user-side platform calls; a task exceeding it is killed and
    /// reported as faulty (`u64::MAX` = unlimited).
    pub max_user_steps: u64,
    /// Most user operations a task may make at one simulated instant before it is stopped
    /// as a livelock (`TaskExit::Livelock`): with zero costs (`shared_access_ns = 0`,
    /// markers, `burn(0)`) a spin loop would otherwise never let time pass.
    pub max_ops_per_instant: u64,
    /// Record the event log (turn off for benchmarks; statistics are unaffected).
    pub log: bool,
    /// Also record every user access to the control word in the log.
    pub log_user_accesses: bool,
    /// Most coroutine stacks alive at once; a task started beyond it fails with
    /// `TaskExit::SpawnFailed`. Each stack takes two memory mappings, so above ~30 000 the
    /// host's `vm.max_map_count` (65 530 by default) must be raised too.
    pub max_threads: usize,
    /// Coroutine stack size per task, bytes.
    pub stack_size: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            cpus: 2,
            hz: 1000,
            preempt: Preempt::Full,
            revision: Revision::PostMerge,
            config_slice_ext: true,
            slice_ext_boot: true,
            slice_ext_nsec: None,
            rseq_debug: false,
            endian: Endian::Little,
            available_when_boot_disabled: None,
            seed: 0,
            tie_break: TieBreak::Fifo,
            irq_latency_ns: 300,
            syscall_ns: 150,
            ctx_switch_ns: 800,
            ipi_latency_ns: 500,
            idle_exit_ns: 0,
            clock_read_ns: 20,
            mem_access_ns: 1,
            shared_access_ns: 5,
            fair_class: FairClass::default(),
            sched_base_slice_ns: 0,
            wakeup_gran_ns: 1_000_000,
            sleeper_credit_ns: 3_000_000,
            fast_clock_skew_ns: 0,
            timer_slack_ns: 50_000,
            timer_jitter_ns: 750,
            timer_jitters_ns: Vec::new(),
            syscall_work_delay_ns: 0,
            tick_stalls: TickStalls::default(),
            load_balance: true,
            hrtick: true,
            max_user_steps: u64::MAX,
            max_ops_per_instant: 100_000,
            log: true,
            log_user_accesses: true,
            max_threads: 30_000,
            stack_size: 64 * 1024,
        }
    }
}

/// A configuration the simulator cannot run, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `cpus` outside 1..=1024.
    #[error("cpus = {0}: must be between 1 and 1024")]
    Cpus(usize),
    /// `slice_ext_nsec` outside the revision's range (the kernel's `-ERANGE`).
    #[error("slice_ext_nsec = {value}: outside [{min}, {max}] for revision {revision} (ERANGE)")]
    SliceExtRange {
        /// Value given.
        value: u32,
        /// Range minimum.
        min: u32,
        /// Range maximum.
        max: u32,
        /// Revision name.
        revision: &'static str,
    },
    /// `clock_read_ns` of 0 would let a busy-wait loop spin forever at one instant.
    #[error("clock_read_ns must be > 0 (a clock-polling loop would never advance time)")]
    ClockCost,
    /// `hz` above 10000.
    #[error("hz = {0}: must be at most 10000")]
    Hz(u32),
    /// `timer_jitters` with a delay over a second or more than 100,000 of them.
    #[error(
        "timer_jitters: {count} delays, longest {longest_ns} ns (at most 100000, each at most 1 s)"
    )]
    TimerJitters {
        /// Delays given.
        count: usize,
        /// The longest.
        longest_ns: u64,
    },
    /// `tick_stalls` with more stalls than ticks, or a stall over a second.
    #[error(
        "tick_stalls: {stalls} stalls of {ticks} ticks (at most one per tick, each at most 1 s)"
    )]
    TickStalls {
        /// Stalls given.
        stalls: usize,
        /// Ticks given.
        ticks: u64,
    },
    /// NONE or VOLUNTARY preemption with the feature compiled in: no such kernel exists.
    #[error(
        "preempt = {0}: no kernel with CONFIG_RSEQ_SLICE_EXTENSION has it (every architecture \
         with the feature has lazy preemption, so kernel/Kconfig.preempt offers only full, \
         lazy and rt, and `preempt={0}` on the command line is ignored); use full, lazy or rt, \
         or set config_slice_ext = false"
    )]
    PreemptModel(&'static str),
    /// Stack too small to run user code.
    #[error("stack_size = {0}: must be at least 16384 bytes")]
    StackSize(usize),
}

impl SimConfig {
    /// The `slice_ext_nsec` range of this configuration's revision.
    pub fn slice_ext_range(&self) -> (u32, u32) {
        slice_ext_range(self.revision)
    }

    /// The effective `slice_ext_nsec` (explicit value or the revision's default).
    pub fn effective_slice_ext_nsec(&self) -> u32 {
        self.slice_ext_nsec.unwrap_or(match self.revision {
            Revision::V1 => V1_SLICE_EXT_NSEC_DEFAULT,
            Revision::Merged | Revision::PostMerge => SLICE_EXT_NSEC_DEFAULT,
        })
    }

    /// The effective answer to spec §13.2.
    pub fn effective_available_when_boot_disabled(&self) -> AvailableWhenBootDisabled {
        self.available_when_boot_disabled
            .unwrap_or(match self.revision {
                Revision::PostMerge => AvailableWhenBootDisabled::Hide,
                Revision::V1 | Revision::Merged => AvailableWhenBootDisabled::Advertise,
            })
    }

    /// The static key `rseq_slice_extension_key`: compiled in and not disabled at boot.
    pub fn static_key(&self) -> bool {
        self.config_slice_ext && self.slice_ext_boot
    }

    /// The fair class's base slice in force: `sched_base_slice_ns`, or when that is 0
    /// the kernel's (`update_sysctl()`, `kernel/sched/fair.c`: the normalized 700 µs
    /// times `1 + ilog2(min(cpus, 8))`, 1.4 ms on 2 CPUs, 2.1 ms on 4) under EEVDF and
    /// the simulator's historical 3 ms under CFS.
    pub fn base_slice_ns(&self) -> u64 {
        match (self.sched_base_slice_ns, self.fair_class) {
            (0, FairClass::Eevdf) => {
                let cpus = self.cpus.clamp(1, 8) as u64;
                700_000 * (1 + u64::from(cpus.ilog2()))
            }
            (0, FairClass::Cfs) => 3_000_000,
            (n, _) => n,
        }
    }

    /// Check every knob; the simulator refuses to run an invalid configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.cpus == 0 || self.cpus > rseq_abi::CpuSet::CAPACITY {
            return Err(ConfigError::Cpus(self.cpus));
        }
        if let Some(v) = self.slice_ext_nsec {
            check_slice_ext_nsec(self.revision, v)?;
        }
        if self.clock_read_ns == 0 {
            return Err(ConfigError::ClockCost);
        }
        if self.hz > 10_000 {
            return Err(ConfigError::Hz(self.hz));
        }
        let longest_ns = self.timer_jitters_ns.iter().copied().max().unwrap_or(0);
        if self.timer_jitters_ns.len() > 100_000 || longest_ns > 1_000_000_000 {
            return Err(ConfigError::TimerJitters {
                count: self.timer_jitters_ns.len(),
                longest_ns,
            });
        }
        let s = &self.tick_stalls;
        if s.stalls_ns.len() as u64 > s.ticks || s.stalls_ns.iter().any(|&n| n > 1_000_000_000) {
            return Err(ConfigError::TickStalls {
                stalls: s.stalls_ns.len(),
                ticks: s.ticks,
            });
        }
        if self.stack_size < 16 * 1024 {
            return Err(ConfigError::StackSize(self.stack_size));
        }
        if self.config_slice_ext && !self.preempt.is_preemptible() {
            return Err(ConfigError::PreemptModel(self.preempt.name()));
        }
        Ok(())
    }
}

/// The `slice_ext_nsec` range of a revision: merged debugfs [5000, 50000], V1 sysctl
/// [10000, 50000] (spec §4.1, §11).
pub fn slice_ext_range(rev: Revision) -> (u32, u32) {
    match rev {
        Revision::V1 => (V1_SLICE_EXT_NSEC_MIN, V1_SLICE_EXT_NSEC_MAX),
        Revision::Merged | Revision::PostMerge => (SLICE_EXT_NSEC_MIN, SLICE_EXT_NSEC_MAX),
    }
}

fn check_slice_ext_nsec(rev: Revision, value: u32) -> Result<(), ConfigError> {
    let (min, max) = slice_ext_range(rev);
    if value < min || value > max {
        return Err(ConfigError::SliceExtRange {
            value,
            min,
            max,
            revision: rev.name(),
        });
    }
    Ok(())
}

/// The debugfs write handler of `rseq/slice_ext_nsec` (spec §4.1, `rseq_slice_ext_write()`):
/// `kstrtouint(buf, 10)` must accept the text, else `EINVAL`; then `ERANGE` outside the
/// range.
pub fn parse_slice_ext_nsec(rev: Revision, text: &str) -> Result<u32, Errno> {
    let value = kstrtouint(text).ok_or(Errno::EINVAL)?;
    check_slice_ext_nsec(rev, value).map_err(|_| Errno::ERANGE)?;
    Ok(value)
}

/// `kstrtouint(s, 10, &v)` (`lib/kstrtox.c`): an optional `+`, at least one decimal
/// digit, at most one trailing newline and nothing else (no spaces, no sign, no `0x`);
/// a value above `u32::MAX` is an error too. The caller maps every error to `EINVAL`.
pub fn kstrtouint(s: &str) -> Option<u32> {
    let s = s.strip_prefix('+').unwrap_or(s);
    let digits = s.strip_suffix('\n').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// How often, and for how long, a CPU stops executing right after a tick because the
/// emulator runs another vCPU (qemu `-icount` runs vCPUs in turn on one host thread and
/// advances its one clock with whichever executes). Measured by `slicesim-vm calibrate`
/// as the tick gaps a clock-polling loop sees beyond the tick's own cost: of `ticks`
/// measured ticks, these were followed by a stall of that length; every tick draws one of
/// the `ticks` uniformly (a stall, or none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TickStalls {
    /// Ticks measured (> 0 when `stalls_ns` is not empty).
    pub ticks: u64,
    /// The stalls among them, ns.
    pub stalls_ns: Vec<u64>,
}
