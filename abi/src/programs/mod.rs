//! User programs, generic over the [`Platform`](crate::Platform), that scenarios run in the
//! simulator and the probe runs on a real kernel, unchanged.
//!
//! Each program returns its result as named counters ([`Counters`]) so the simulator can
//! report and check them without knowing the program.
//!
//! * [`selftest`]: port of the kernel's `slice_test.c` (spec §9).
//! * [`spinlock`]: a test-and-test-and-set lock whose holder asks for extensions (spec §8),
//!   with a switch to run the same workload without them.
//! * [`misbehave`]: clients that break the rules of spec §7 and §11 on purpose.
//! * [`calibrate`]: micro-benchmarks whose medians become a machine profile (issue 14).
//! * [`probes`]: fidelity probes whose results a real kernel and the simulator must agree
//!   on, and the frame they travel in from a VM.

pub mod calibrate;
pub mod misbehave;
pub mod percpu;
pub mod probes;
pub mod selftest;
pub mod spinlock;

pub use misbehave::{MisbehaveCounters, MisbehaveParams, Misbehavior};
pub use percpu::{PercpuCounters, PercpuParams};
pub use selftest::{SelftestCounters, SelftestParams};
pub use spinlock::{SpinlockCounters, SpinlockParams, WaitMode};

use crate::protocol::SliceOutcome;

/// A program's result: named counters in a fixed order.
pub type Counters = Vec<(&'static str, i64)>;

/// Busy time: `ns` of CPU time ([`Platform::burn`]), or `ns` on the clock
/// ([`crate::protocol::spin_until`]: a clock-polling spin, as `LinuxPlatform`'s `burn` is,
/// so an interrupt eats into it and each poll costs a clock read on both sides alike).
pub(crate) fn busy<P: crate::Platform + ?Sized>(p: &mut P, ns: u64, on_clock: bool) {
    if on_clock {
        let start = p.clock_ns();
        crate::protocol::spin_until(p, start, ns);
    } else {
        p.burn(ns);
    }
}

/// Tally of [`SliceOutcome`]s, the breakdown every program that leaves its critical sections
/// through [`SliceExt::release`](crate::SliceExt::release) reports (spec §8.1, §8.3).
///
/// `Unused` is not counted: it means the protocol was not spoken at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    /// [`SliceOutcome::NotInterrupted`]: `request` was still set.
    pub not_interrupted: u64,
    /// [`SliceOutcome::Yielded`]: `granted` was seen and `rseq_slice_yield()` called.
    pub yielded: u64,
    /// Yields that returned 1: the CPU was given back within the extension.
    pub yield_returned_1: u64,
    /// Yields that returned 0: the grant was revoked between the check and the syscall
    /// (the unavoidable race of spec §8.3).
    pub raced: u64,
    /// Yields that failed (e.g. `ENOSYS` from a kernel without the syscall).
    pub yield_failed: u64,
    /// [`SliceOutcome::Consumed`]: request consumed, no grant visible.
    pub consumed: u64,
}

impl OutcomeCounts {
    /// Count one outcome.
    pub fn record(&mut self, outcome: SliceOutcome) {
        match outcome {
            SliceOutcome::Unused => {}
            SliceOutcome::NotInterrupted => self.not_interrupted += 1,
            SliceOutcome::Yielded(r) => {
                self.yielded += 1;
                match r {
                    Ok(0) => self.raced += 1,
                    Ok(_) => self.yield_returned_1 += 1,
                    Err(_) => self.yield_failed += 1,
                }
            }
            SliceOutcome::Consumed => self.consumed += 1,
        }
    }

    /// Every counted outcome (`not_interrupted + yielded + consumed`).
    pub fn total(&self) -> u64 {
        self.not_interrupted + self.yielded + self.consumed
    }

    /// Append the counters by name, in declaration order.
    pub fn push_counters(&self, out: &mut Counters) {
        out.extend([
            ("not_interrupted", self.not_interrupted as i64),
            ("yielded", self.yielded as i64),
            ("yield_returned_1", self.yield_returned_1 as i64),
            ("raced", self.raced as i64),
            ("yield_failed", self.yield_failed as i64),
            ("consumed", self.consumed as i64),
        ]);
    }
}
