//! A test-and-test-and-set spin lock whose holder asks for time slice extensions.
//!
//! This is the workload the feature was designed for (spec §8.1): a thread preempted while
//! holding a user-space lock makes every waiter spin (or sleep) until it runs again. With
//! the extension the holder asks the kernel to defer a reschedule that arrives while it
//! holds the lock, drops the lock, and gives the CPU back with `rseq_slice_yield()`.
//! [`SpinlockParams::use_ext`] runs the identical workload without the extension (the
//! thread still registers rseq, so the only difference is the protocol).
//!
//! # Where the request goes
//!
//! The request covers exactly the acquisition attempt and the hold, not the waiting:
//!
//! 1. *test*: spin on plain loads of the lock word while it is held, **without** a request.
//!    Asking for an extension while merely waiting would be counterproductive: when the
//!    holder was preempted on the same CPU, extending the spinner delays the holder further.
//! 2. *test-and-set*: once the word reads free, store `request = 1` and **then** try the
//!    compare-and-exchange. Requesting before the atomic closes the window in which the lock
//!    is already held but no request is set yet (requesting after a successful CAS leaves a
//!    few instructions during which a preemption strands the lock). If the CAS loses, the
//!    thread leaves through [`SliceExt::release`] (yielding if a grant landed meanwhile) and
//!    goes back to step 1.
//! 3. *hold*, then *unlock*, then [`SliceExt::release`]: the release, and so the yield, comes
//!    **after** the unlocking store, so the CPU is never given away while the lock is held.
//! 4. futex variant: the `FUTEX_WAKE` of a contended unlock comes after the release, because
//!    a syscall made inside a grant ends it as an abort (`s_aborted`, spec §6.1) in the
//!    merged protocol and is fatal in V1 (spec §11); waiting (`FUTEX_WAIT`) only ever
//!    happens in step 1, where no request is outstanding.
//!
//! # Markers
//!
//! Each acquisition reports [`Marker`]s for the lock metrics: `LockAttempt` before the
//! first load, `LockAcquired` and `CsEnter` right after the winning compare-and-exchange
//! returns, `CsExit` and `LockReleased` right before the unlocking store, i.e. at the time
//! it takes effect (a marker after it would carry the store's completion time, which an
//! interrupt can push past the next holder's acquisition). The critical section is
//! exactly the hold: the time during which a preemption strands the lock.
//!
//! The spec sections shown: §8.1 (flow), §8.3 (the race counted as `raced`), §3.2 and §4
//! (what the kernel grants and how long), §6.1 (yield at syscall entry).

use crate::platform::{Marker, Platform, SharedWord, Syscall};
use crate::protocol::{EnableMode, SetupError, SliceExt};

use super::{Counters, OutcomeCounts};

/// How a thread waits for a held lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitMode {
    /// Spin on plain loads of the lock word (lock values 0 = free, 1 = held).
    Spin,
    /// Spin up to `spins_before_sleep` loads, then sleep on the lock word with
    /// `FUTEX_WAIT` (lock values 0 = free, 1 = held, 2 = held with possible sleepers; a
    /// contended unlock calls `FUTEX_WAKE`).
    Futex {
        /// Loads of a held lock before the thread goes to sleep (0: sleep at once).
        spins_before_sleep: u32,
    },
}

/// Parameters of one spin-lock thread. Every thread of a scenario shares `lock` and
/// `protected`; the rest may differ per thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpinlockParams {
    /// The lock word.
    pub lock: SharedWord,
    /// A word incremented non-atomically (load, hold, store) under the lock: its final
    /// value equals the sum of all threads' acquisitions iff mutual exclusion held.
    /// `None`: the hold is a plain burn.
    pub protected: Option<SharedWord>,
    /// Stop starting new acquisitions once this long has elapsed (monotonic clock).
    pub run_ns: u64,
    /// CPU time spent holding the lock (burn).
    pub hold_ns: u64,
    /// CPU time spent between an unlock and the next acquisition (burn).
    pub think_ns: u64,
    /// Stop after this many acquisitions.
    pub max_iterations: u64,
    /// Ask for extensions while holding (`false`: the comparison run without them).
    pub use_ext: bool,
    /// How to wait for a held lock.
    pub wait: WaitMode,
}

impl SpinlockParams {
    /// 10 ms run, 2 µs hold, 1 µs think, unlimited iterations, extension on, spinning, lock
    /// in shared word 0 and the protected counter in shared word 1.
    pub const DEFAULT: SpinlockParams = SpinlockParams {
        lock: SharedWord(0),
        protected: Some(SharedWord(1)),
        run_ns: 10_000_000,
        hold_ns: 2_000,
        think_ns: 1_000,
        max_iterations: u64::MAX,
        use_ext: true,
        wait: WaitMode::Spin,
    };
}

impl Default for SpinlockParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one spin-lock thread did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpinlockCounters {
    /// Setup failure, if any (the thread then ran without the extension).
    pub setup_error: Option<SetupError>,
    /// Whether the protocol was spoken (`use_ext` and setup succeeded).
    pub ext_active: bool,
    /// Locks taken.
    pub acquisitions: u64,
    /// Acquisitions that found the lock held (or lost a CAS) at least once.
    pub contended: u64,
    /// Loads that found the lock held.
    pub spin_iterations: u64,
    /// Compare-and-exchanges that lost after the lock had read free.
    pub cas_failures: u64,
    /// `FUTEX_WAIT` calls (futex mode).
    pub futex_waits: u64,
    /// `FUTEX_WAKE` calls (futex mode).
    pub futex_wakes: u64,
    /// How each request ended: one per acquisition and one per lost CAS when the protocol
    /// is spoken, all zero otherwise.
    pub outcomes: OutcomeCounts,
}

impl SpinlockCounters {
    /// The counters by name: acquisitions, contention, then the outcome breakdown.
    pub fn counters(&self) -> Counters {
        let mut out = vec![
            ("ext_active", i64::from(self.ext_active)),
            ("acquisitions", self.acquisitions as i64),
            ("contended", self.contended as i64),
            ("spin_iterations", self.spin_iterations as i64),
            ("cas_failures", self.cas_failures as i64),
            ("futex_waits", self.futex_waits as i64),
            ("futex_wakes", self.futex_wakes as i64),
        ];
        self.outcomes.push_counters(&mut out);
        out
    }

    /// Invariants of one thread's result: every request is accounted for exactly once, and
    /// no outcome is recorded when the protocol is not spoken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let expected = if self.ext_active {
            self.acquisitions + self.cas_failures
        } else {
            0
        };
        if self.outcomes.total() != expected {
            return Err(format!(
                "outcomes {} != {} (acquisitions {} + cas_failures {}, ext_active {})",
                self.outcomes.total(),
                expected,
                self.acquisitions,
                self.cas_failures,
                self.ext_active
            ));
        }
        if self.contended > self.acquisitions {
            return Err(format!(
                "contended {} > acquisitions {}",
                self.contended, self.acquisitions
            ));
        }
        let y = &self.outcomes;
        if y.yield_returned_1 + y.raced + y.yield_failed != y.yielded {
            return Err(format!(
                "yield results do not add up to yielded {}",
                y.yielded
            ));
        }
        Ok(())
    }
}

/// The whole thread: register rseq and enable the extension if `use_ext`
/// ([`EnableMode::Prctl`]; else [`EnableMode::Off`], registration only), then
/// [`spinlock_loop`]. A setup failure is reported in the result and the loop runs without
/// the extension.
pub fn spinlock_main<P: Platform + ?Sized>(p: &mut P, params: &SpinlockParams) -> SpinlockCounters {
    let mode = if params.use_ext {
        EnableMode::Prctl
    } else {
        EnableMode::Off
    };
    let (ext, err) = SliceExt::setup(p, mode);
    let mut c = spinlock_loop(p, &ext, params);
    c.setup_error = err;
    c
}

/// The acquisition loop, with the extension handle already set up.
///
/// Runs until `max_iterations` acquisitions were made or `run_ns` elapsed (checked before
/// each acquisition, `max_iterations` first so a finished run reads no clock). Each
/// iteration: acquire, hold, unlock, release, wake (futex), think. Zero-length holds and
/// thinks make no `burn` call.
pub fn spinlock_loop<P: Platform + ?Sized>(
    p: &mut P,
    ext: &SliceExt,
    params: &SpinlockParams,
) -> SpinlockCounters {
    let mut c = SpinlockCounters {
        ext_active: ext.is_active(),
        ..Default::default()
    };
    let start = p.clock_ns();
    while c.acquisitions < params.max_iterations
        && p.clock_ns().saturating_sub(start) < params.run_ns
    {
        acquire(p, ext, params, &mut c);
        hold(p, params);
        let wake = unlock(p, params);
        let outcome = ext.release(p);
        c.outcomes.record(outcome);
        if wake {
            c.futex_wakes += 1;
            let _ = p.syscall(Syscall::FutexWake {
                word: params.lock,
                count: 1,
            });
        }
        if params.think_ns > 0 {
            p.burn(params.think_ns);
        }
    }
    c
}

/// Take the lock; on return it is held and (if the protocol is spoken) requested.
fn acquire<P: Platform + ?Sized>(
    p: &mut P,
    ext: &SliceExt,
    params: &SpinlockParams,
    c: &mut SpinlockCounters,
) {
    let lock = params.lock;
    let mut contended = false;
    // Value to lock with: 2 once this thread has slept, as other sleepers may remain.
    let mut locked_value = 1;
    let mut spins = 0u32;
    p.mark(Marker::LockAttempt(lock));
    loop {
        let v = p.shared_load(lock);
        if v == 0 {
            ext.request(p);
            match p.shared_cas(lock, 0, locked_value) {
                Ok(_) => {
                    p.mark(Marker::LockAcquired(lock));
                    p.mark(Marker::CsEnter);
                    c.acquisitions += 1;
                    if contended {
                        c.contended += 1;
                    }
                    return;
                }
                Err(_) => {
                    contended = true;
                    c.cas_failures += 1;
                    let outcome = ext.release(p);
                    c.outcomes.record(outcome);
                }
            }
            continue;
        }
        contended = true;
        c.spin_iterations += 1;
        spins = spins.saturating_add(1);
        if let WaitMode::Futex { spins_before_sleep } = params.wait {
            if spins > spins_before_sleep {
                // Announce a sleeper (1 -> 2), then sleep while the word is 2.
                if v == 2 || p.shared_cas(lock, 1, 2).is_ok() {
                    c.futex_waits += 1;
                    let _ = p.syscall(Syscall::FutexWait {
                        word: lock,
                        expected: 2,
                    });
                    locked_value = 2;
                }
                spins = 0;
            }
        }
    }
}

/// The critical section.
fn hold<P: Platform + ?Sized>(p: &mut P, params: &SpinlockParams) {
    match params.protected {
        Some(w) => {
            let v = p.shared_load(w);
            if params.hold_ns > 0 {
                p.burn(params.hold_ns);
            }
            p.shared_store(w, v.wrapping_add(1));
        }
        None => {
            if params.hold_ns > 0 {
                p.burn(params.hold_ns);
            }
        }
    }
}

/// Drop the lock; returns whether sleepers may need a `FUTEX_WAKE`.
fn unlock<P: Platform + ?Sized>(p: &mut P, params: &SpinlockParams) -> bool {
    p.mark(Marker::CsExit);
    p.mark(Marker::LockReleased(params.lock));
    match params.wait {
        WaitMode::Spin => {
            p.shared_store(params.lock, 0);
            false
        }
        WaitMode::Futex { .. } => {
            if p.shared_cas(params.lock, 1, 0).is_ok() {
                false
            } else {
                p.shared_store(params.lock, 0);
                true
            }
        }
    }
}
