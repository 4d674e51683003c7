//! The kernel oracle: Linux 7.2's own `kernel/rseq.c` and `kernel/entry/common.c`
//! (with `include/linux/rseq_entry.h` and `rseq.h`), compiled unmodified from the
//! downloaded source against a small shim (`shim/`), driven from Rust.
//!
//! Test-only and GPL-2.0-only: nothing the `slicesim` binary links depends on it
//! (`tests/licence.rs`). The C code's state is global (one `current`, one CPU's slice
//! timer and counters), so every use goes through [`Kernel::lock`], one process-wide
//! mutex: `cargo test` and `--jobs` may call it from many threads.
//!
//! Two layers:
//! - [`Kernel`]: load a task, its user memory, the CPU's slice timer and counters, call
//!   a kernel function, read everything back;
//! - [`diff`]: an [`rseq_sim::observe::Observer`] that, at each decision the model makes,
//!   loads the model's state before the decision into the kernel, calls the kernel
//!   function the model follows, and compares the kernel's state after with the model's
//!   (the projection policy is `docs/kernel-map.md`'s last section).
//!
//! Without the source the crate is a stub: [`Kernel::lock`] returns
//! [`OracleError::Stub`] saying how to fetch it.

use std::sync::{Mutex, MutexGuard};

pub mod diff;
pub mod drive;
mod ffi;

use ffi::call;
pub use ffi::{OracleTask as KTask, PtRegs, NR_STATS};

/// Why the oracle cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OracleError {
    /// Built without the kernel source (or with a file that does not match the pinned
    /// hashes).
    #[error(
        "the kernel oracle was built without the kernel code: {0} (fetch it with `cargo run -p slicesim-vm -- fetch-source --series 7.2`, or point SLICESIM_KSRC at a linux-source-7.2 tree)"
    )]
    Stub(&'static str),
    /// The compiled kernel code disagrees with this crate about a layout.
    #[error("the kernel's struct rseq_stats has {found} counters, the oracle reads {expected}")]
    StatsLayout {
        /// What the C code has.
        found: usize,
        /// What the Rust side mirrors.
        expected: usize,
    },
}

/// Why the crate is a stub (empty when it is not).
pub const STUB_REASON: &str = env!("KERNEL_ORACLE_STUB");
/// The kernel tree the code was compiled from (empty for a stub).
pub const SOURCE: &str = env!("KERNEL_ORACLE_SOURCE");

/// Is the kernel code compiled in? `Err` says why not and how to fetch the source.
pub fn available() -> Result<(), OracleError> {
    if cfg!(oracle_stub) {
        Err(OracleError::Stub(STUB_REASON))
    } else {
        Ok(())
    }
}

/// `struct rseq_stats`, in its order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// All counters: exit, signal, slowpath, fastpath, ids, cs, clear, fixup, s_granted,
    /// s_expired, s_revoked, s_yielded, s_aborted.
    pub all: [u64; NR_STATS],
}

impl Stats {
    /// Counter names, in `struct rseq_stats` order.
    pub const NAMES: [&'static str; NR_STATS] = [
        "exit",
        "signal",
        "slowpath",
        "fastpath",
        "ids",
        "cs",
        "clear",
        "fixup",
        "s_granted",
        "s_expired",
        "s_revoked",
        "s_yielded",
        "s_aborted",
    ];
    /// `s_granted`.
    pub fn granted(&self) -> u64 {
        self.all[8]
    }
    /// `s_expired`.
    pub fn expired(&self) -> u64 {
        self.all[9]
    }
    /// `s_revoked`.
    pub fn revoked(&self) -> u64 {
        self.all[10]
    }
    /// `s_yielded`.
    pub fn yielded(&self) -> u64 {
        self.all[11]
    }
    /// `s_aborted`.
    pub fn aborted(&self) -> u64 {
        self.all[12]
    }
}

/// The kernel's bits for the model's thread flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TifBits {
    /// `_TIF_NEED_RESCHED`.
    pub need_resched: u64,
    /// `_TIF_NEED_RESCHED_LAZY`.
    pub need_resched_lazy: u64,
    /// `_TIF_SIGPENDING`.
    pub sigpending: u64,
    /// `_TIF_NOTIFY_RESUME`.
    pub notify_resume: u64,
    /// `_TIF_RSEQ`.
    pub rseq: u64,
    /// The model's lumped other exit work, as `_TIF_UPROBE`.
    pub other_work: u64,
    /// `SYSCALL_WORK_SYSCALL_RSEQ_SLICE` (in `syscall_work`).
    pub syscall_rseq_slice: u64,
}

/// The CPU's slice timer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SliceTimer {
    /// Queued.
    pub armed: bool,
    /// Absolute expiry, ns.
    pub expires: u64,
    /// `st->cookie == current`.
    pub cookie_is_current: bool,
}

/// What the kernel code asked of the rest of the kernel during the calls since
/// [`Kernel::reset_effects`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// `schedule()` from the exit loop.
    pub schedules: i32,
    /// `preempt_enable()` with `TIF_NEED_RESCHED` set (or `preempt_schedule_irq()`).
    pub preempt_schedules: i32,
    /// `cond_resched()` that reschedules (NONE, VOLUNTARY).
    pub cond_rescheds: i32,
    /// `force_sig()` calls.
    pub signals: i32,
    /// The last signal forced.
    pub last_signal: i32,
    /// `hrtimer_start()` calls.
    pub hrtimer_starts: i32,
    /// `hrtimer_try_to_cancel()` calls.
    pub hrtimer_cancels: i32,
    /// User accesses that faulted.
    pub user_faults: i32,
    /// Interrupts left disabled, preemption depth, page-fault-disable depth after the
    /// call: all must be back to what they were.
    pub depths: [i32; 3],
}

/// The preemption model (`preempt=`), which decides whether `cond_resched()` schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreemptModel {
    /// `preempt=none`.
    None,
    /// `preempt=voluntary`.
    Voluntary,
    /// `preempt=full`.
    Full,
    /// `preempt=lazy`.
    Lazy,
    /// `CONFIG_PREEMPT_RT` (the grant uses the RT build of `common.c`).
    Rt,
}

static LOCK: Mutex<bool> = Mutex::new(false);

/// Exclusive use of the kernel code (its state is global).
pub struct Kernel {
    _guard: MutexGuard<'static, bool>,
    tif: TifBits,
    rt: bool,
}

impl Kernel {
    /// Take the process-wide lock, initialising the kernel code once (the slice timers,
    /// through the kernel's own `rseq_slice_init()`).
    pub fn lock() -> Result<Kernel, OracleError> {
        available()?;
        // A panic while holding the lock leaves the C state to be reloaded by the next
        // user anyway: every call loads all it reads.
        let mut g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        if !*g {
            let found = call::nr_stats();
            if found != NR_STATS {
                return Err(OracleError::StatsLayout {
                    found,
                    expected: NR_STATS,
                });
            }
            call::init();
            *g = true;
        }
        let tif = TifBits {
            need_resched: call::tif_bit(0),
            need_resched_lazy: call::tif_bit(1),
            sigpending: call::tif_bit(2),
            notify_resume: call::tif_bit(3),
            rseq: call::tif_bit(4),
            other_work: call::tif_bit(5),
            syscall_rseq_slice: call::tif_bit(6),
        };
        let mut k = Kernel {
            _guard: g,
            tif,
            rt: false,
        };
        k.reset();
        Ok(k)
    }

    /// Back to a known state: the loaded task is `current`, boot switch on, debug off,
    /// 5 µs grants, FULL preemption, `schedule()` only recorded, counters and timer
    /// cleared.
    pub fn reset(&mut self) {
        call::task_load(&KTask::default());
        call::set_current(true);
        call::umem_set(0, &[], false);
        call::set_keys(true, false);
        call::set_slice_ext_nsecs(5000);
        call::stats_set(&[0; NR_STATS]);
        call::slice_timer_set(false, 0, false);
        call::set_clock(0);
        self.set_preempt(PreemptModel::Full);
        call::set_switch_on_schedule(false);
        call::reset_effects();
    }

    /// The kernel's thread-flag bits.
    pub fn tif(&self) -> TifBits {
        self.tif
    }

    /// `__NR_rseq_slice_yield` on x86_64.
    pub fn nr_rseq_slice_yield(&self) -> i64 {
        call::nr_rseq_slice_yield()
    }

    /// `TIF_SLICE_EXT_DENY` of the build in use (RT or not).
    pub fn slice_ext_deny(&self) -> u64 {
        call::slice_ext_deny(self.rt)
    }

    /// `EXIT_TO_USER_MODE_WORK`.
    pub fn exit_to_user_mode_work(&self) -> u64 {
        call::exit_to_user_mode_work()
    }

    /// Load the task (it becomes `current`).
    pub fn load_task(&mut self, t: &KTask) {
        call::task_load(t);
        call::set_current(true);
    }
    /// The task as the kernel code left it.
    pub fn task(&self) -> KTask {
        call::task_store()
    }
    /// Make another (unregistered, never granted) task `current`, or the loaded one.
    pub fn set_current_is_task(&mut self, yes: bool) {
        call::set_current(yes);
    }
    /// The task's user memory: `bytes` at `base` (at most 256), or nothing if unmapped.
    pub fn set_user(&mut self, base: u64, bytes: &[u8], mapped: bool) {
        call::umem_set(base, bytes, mapped);
    }
    /// The user memory back.
    pub fn user(&self, bytes: &mut [u8]) {
        call::umem_get(bytes);
    }
    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            all: call::stats_get(),
        }
    }
    /// Set the counters.
    pub fn set_stats(&mut self, s: &Stats) {
        call::stats_set(&s.all);
    }
    /// The CPU's slice timer.
    pub fn timer(&self) -> SliceTimer {
        let (armed, expires, cookie_is_current) = call::slice_timer_get();
        SliceTimer {
            armed,
            expires,
            cookie_is_current,
        }
    }
    /// Set the CPU's slice timer.
    pub fn set_timer(&mut self, t: SliceTimer) {
        call::slice_timer_set(t.armed, t.expires, t.cookie_is_current);
    }
    /// `ktime_get_mono_fast_ns()`.
    pub fn set_clock(&mut self, ns: u64) {
        call::set_clock(ns);
    }
    /// The boot switch (`rseq_slice_ext=`) and `rseq_debug`.
    pub fn set_keys(&mut self, slice_ext: bool, debug: bool) {
        call::set_keys(slice_ext, debug);
    }
    /// debugfs `rseq/slice_ext_nsec`.
    pub fn set_slice_ext_nsecs(&mut self, ns: u32) {
        call::set_slice_ext_nsecs(ns);
    }
    /// The preemption model.
    pub fn set_preempt(&mut self, m: PreemptModel) {
        self.rt = m == PreemptModel::Rt;
        call::set_preempt_model(match m {
            PreemptModel::None => 0,
            PreemptModel::Voluntary => 1,
            PreemptModel::Full => 2,
            PreemptModel::Lazy => 3,
            PreemptModel::Rt => 4,
        });
    }
    /// Whether the kernel code's `schedule()` and `preempt_schedule()` switch the task
    /// out and back in (clear its reschedule request, raise the rseq switch event: for
    /// running whole exit loops) or only record themselves (the default: one decision
    /// compared with the model, whose own `schedule()` is compared on its own).
    pub fn set_switch_on_schedule(&mut self, on: bool) {
        call::set_switch_on_schedule(on);
    }
    /// Forget the recorded effects.
    pub fn reset_effects(&mut self) {
        call::reset_effects();
    }
    /// The effects since the last reset.
    pub fn effects(&self) -> Effects {
        let e = call::effects();
        Effects {
            schedules: e[0],
            preempt_schedules: e[1],
            cond_rescheds: e[2],
            signals: e[3],
            last_signal: e[4],
            hrtimer_starts: e[5],
            hrtimer_cancels: e[6],
            user_faults: e[7],
            depths: [e[8], e[9], e[10]],
        }
    }

    /// The grant decision of the exit loop: `rseq_grant_slice_extension(ti_work,
    /// TIF_SLICE_EXT_DENY)` (`include/linux/rseq_entry.h`, via `common.c`).
    pub fn grant(&mut self, ti_work: u64) -> bool {
        call::grant(ti_work, self.rt)
    }
    /// `rseq_exit_to_user_mode_restart(regs, ti_work)`: the rseq update and the timer
    /// arming on the way out; true = loop again.
    pub fn exit_restart(&mut self, ti_work: u64, regs: &mut PtRegs) -> bool {
        call::exit_restart(regs, ti_work)
    }
    /// `exit_to_user_mode_loop(regs, ti_work)` (`kernel/entry/common.c`), whole;
    /// `schedule()` only records itself.
    pub fn exit_loop(&mut self, ti_work: u64, regs: &mut PtRegs) -> u64 {
        call::exit_loop(regs, ti_work)
    }
    /// `raw_irqentry_exit_cond_resched()`.
    pub fn irqentry_exit_cond_resched(&mut self) {
        call::irqentry_exit_cond_resched();
    }
    /// The slice hrtimer fires: the function `rseq_slice_init()` installed
    /// (`rseq_slice_expired()`). `false` if no function was installed.
    pub fn fire_slice_timer(&mut self) -> bool {
        call::slice_timer_fire() >= 0
    }
    /// `sys_rseq(addr, len, flags, sig)`.
    pub fn sys_rseq(&mut self, addr: u64, len: u32, flags: i32, sig: u32) -> i64 {
        call::sys_rseq(addr, len, flags, sig)
    }
    /// `sys_rseq_slice_yield()`.
    pub fn sys_rseq_slice_yield(&mut self) -> i64 {
        call::sys_rseq_slice_yield()
    }
    /// `rseq_slice_extension_prctl(arg2, arg3)`.
    pub fn prctl(&mut self, arg2: u64, arg3: u64) -> i32 {
        call::prctl(arg2, arg3)
    }
    /// `rseq_syscall_enter_work(nr)`.
    pub fn syscall_enter_work(&mut self, nr: i64) {
        call::syscall_enter_work(nr);
    }
    /// `rseq_handle_slowpath(regs)`.
    pub fn handle_slowpath(&mut self, regs: &mut PtRegs) {
        call::handle_slowpath(regs);
    }
    /// `rseq_signal_deliver(ksig, regs)`.
    pub fn signal_deliver(&mut self, sig: i32, regs: &mut PtRegs) {
        call::signal_deliver(sig, regs);
    }
    /// `rseq_debug_syscall_return(regs)`.
    pub fn debug_syscall_return(&mut self, regs: &mut PtRegs) {
        call::debug_syscall_return(regs);
    }
    /// `rseq_sched_switch_event(current)`.
    pub fn sched_switch_event(&mut self) {
        call::sched_switch_event();
    }
}

/// For tests: is the kernel code unavailable (no source was fetched)? Says why and how on
/// stderr (`SKIPPED: ...`); with `SLICESIM_ORACLE_REQUIRED` set, as CI sets it, panics
/// instead, so a missing source cannot pass as a skipped check.
pub fn skip_without_source() -> bool {
    match Kernel::lock() {
        Ok(_) => false,
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            if std::env::var_os("SLICESIM_ORACLE_REQUIRED").is_some() {
                panic!("SLICESIM_ORACLE_REQUIRED is set but {e}");
            }
            true
        }
    }
}
