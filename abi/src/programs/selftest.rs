//! Port of `tools/testing/selftests/rseq/slice_test.c` (spec §9): the main loop with its six
//! counters and the noise thread, making the same platform calls in the same order.
//!
//! It reports no markers (`Platform::mark`): its own counters already classify every
//! critical section (success, yielded, scheduled), and two log records per 2 µs
//! iteration would make a 5 s run's log a third larger.

use crate::consts::*;
use crate::layout::offset;
use crate::platform::{CpuSet, Errno, Platform, SharedWord, Syscall};
use crate::protocol::{self, SetupError};

use super::Counters;

/// One `FIXTURE_VARIANT` of the selftest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelftestParams {
    /// How long the main loop runs (`total_nsecs`).
    pub total_ns: u64,
    /// Busy time inside each critical section (`slice_nsecs`).
    pub slice_ns: u64,
    /// Busy time of each noise burst (`noise_nsecs`).
    pub noise_ns: u64,
    /// Sleep of the noise thread between bursts (`sleep_nsecs`).
    pub sleep_ns: u64,
    /// Leave a grant with `getpid()` instead of `rseq_slice_yield()`.
    pub no_yield: bool,
}

impl SelftestParams {
    /// Variant `n2_2_50`: 5 s, 2 µs sections, 2 µs noise, 50 µs sleep.
    pub const N2_2_50: SelftestParams = SelftestParams {
        total_ns: 5_000_000_000,
        slice_ns: 2_000,
        noise_ns: 2_000,
        sleep_ns: 50_000,
        no_yield: false,
    };
    /// Variant `n50_2_50`: 50 µs sections.
    pub const N50_2_50: SelftestParams = SelftestParams {
        slice_ns: 50_000,
        ..Self::N2_2_50
    };
    /// Variant `n2_2_50_no_yield`: leave grants with `getpid()`.
    pub const N2_2_50_NO_YIELD: SelftestParams = SelftestParams {
        no_yield: true,
        ..Self::N2_2_50
    };

    /// The variant with the selftest's name, if any.
    pub fn variant(name: &str) -> Option<SelftestParams> {
        match name {
            "n2_2_50" => Some(Self::N2_2_50),
            "n50_2_50" => Some(Self::N50_2_50),
            "n2_2_50_no_yield" => Some(Self::N2_2_50_NO_YIELD),
            _ => None,
        }
    }
}

/// The six counters the selftest prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelftestCounters {
    /// Critical sections run.
    pub total: u64,
    /// `request` still set at the end: not interrupted.
    pub success: u64,
    /// `granted` seen and `rseq_slice_yield()` called.
    pub yielded: u64,
    /// `granted` seen and `getpid()` called (no_yield variant).
    pub aborted: u64,
    /// `request` consumed and no grant visible.
    pub scheduled: u64,
    /// `rseq_slice_yield()` returned 0 (grant revoked before the syscall).
    pub raced: u64,
}

impl SelftestCounters {
    /// The invariants a port can assert (spec §9): every section is classified exactly once,
    /// races are a subset of yields, aborts only in no_yield, yields never in no_yield.
    pub fn check_invariants(&self, no_yield: bool) -> Result<(), String> {
        let sum = self.success + self.yielded + self.aborted + self.scheduled;
        if sum != self.total {
            return Err(format!(
                "success+yielded+aborted+scheduled = {sum} != total {}",
                self.total
            ));
        }
        if self.raced > self.yielded {
            return Err(format!("raced {} > yielded {}", self.raced, self.yielded));
        }
        if !no_yield && self.aborted != 0 {
            return Err(format!("aborted {} != 0 without no_yield", self.aborted));
        }
        if no_yield && self.yielded != 0 {
            return Err(format!("yielded {} != 0 with no_yield", self.yielded));
        }
        Ok(())
    }

    /// The counters by name, in the selftest's print order.
    pub fn counters(&self) -> Counters {
        vec![
            ("total", self.total as i64),
            ("success", self.success as i64),
            ("yielded", self.yielded as i64),
            ("aborted", self.aborted as i64),
            ("scheduled", self.scheduled as i64),
            ("raced", self.raced as i64),
        ]
    }
}

impl core::fmt::Display for SelftestCounters {
    /// Exactly the selftest's output: six TAP comment lines, values `%12ld`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        writeln!(f, "# Total     {:12}", self.total)?;
        writeln!(f, "# Success   {:12}", self.success)?;
        writeln!(f, "# Yielded   {:12}", self.yielded)?;
        writeln!(f, "# Aborted   {:12}", self.aborted)?;
        writeln!(f, "# Scheduled {:12}", self.scheduled)?;
        writeln!(f, "# Raced     {:12}", self.raced)
    }
}

/// Why the selftest's setup failed (each is an `ASSERT` in the C test).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelftestSetupError {
    /// `sched_getaffinity` failed.
    #[error("sched_getaffinity failed: {0}")]
    GetAffinity(Errno),
    /// `sched_setaffinity` failed.
    #[error("sched_setaffinity failed: {0}")]
    SetAffinity(Errno),
    /// Registration or enabling failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

/// `FIXTURE_SETUP`: pin to the first allowed CPU other than 0, register, enable.
///
/// Returns the CPU pinned to (`None` if only CPU 0 was allowed, as in the C test).
pub fn selftest_setup<P: Platform + ?Sized>(
    p: &mut P,
) -> Result<Option<usize>, SelftestSetupError> {
    let mask = p
        .sched_getaffinity()
        .map_err(SelftestSetupError::GetAffinity)?;
    let pinned = mask.iter().find(|&c| c >= 1);
    if let Some(cpu) = pinned {
        p.syscall(Syscall::SchedSetaffinity(CpuSet::single(cpu)))
            .map_err(SelftestSetupError::SetAffinity)?;
    }
    protocol::register(p, 0).map_err(SetupError::Register)?;
    protocol::slice_ext_set(p, true).map_err(SetupError::Enable)?;
    Ok(pinned)
}

/// `TEST_F(slice_ext, slice_test)`: the main loop. Assumes setup succeeded.
///
/// Speaks the platform's revision: merged uses the byte protocol with the selftest's
/// check-then-clear; V1 uses the V1 test's CPU-local test-and-clear of the REQUEST bit.
pub fn selftest_loop<P: Platform + ?Sized>(p: &mut P, params: &SelftestParams) -> SelftestCounters {
    let v1 = p.revision().is_v1();
    let yield_call = Syscall::RseqSliceYield;
    let mut c = SelftestCounters::default();
    let start = p.clock_ns();
    loop {
        let ts_cs = p.clock_ns();
        c.total += 1;
        if v1 {
            p.store_u32(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_REQUEST);
        } else {
            p.store_u8(offset::REQUEST, 1);
        }
        protocol::spin_until(p, ts_cs, params.slice_ns);

        if v1 {
            if p.test_and_clear_bit_local(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_REQUEST_BIT) {
                c.success += 1;
            } else if p.load_u32(offset::SLICE_CTRL) & V1_RSEQ_SLICE_EXT_GRANTED != 0 {
                if params.no_yield {
                    let _ = p.syscall(Syscall::Getpid);
                    c.aborted += 1;
                } else {
                    c.yielded += 1;
                    if p.syscall(yield_call) == Ok(0) {
                        c.raced += 1;
                    }
                }
            } else {
                c.scheduled += 1;
            }
        } else {
            // The selftest reads request first only to classify; the race between this read
            // and the clear is intentional (a late grant is caught by the granted check).
            let mut req = false;
            if p.load_u8(offset::REQUEST) != 0 {
                p.store_u8(offset::REQUEST, 0);
                req = true;
                c.success += 1;
            }
            if p.load_u8(offset::GRANTED) != 0 {
                if req {
                    c.success -= 1;
                }
                if params.no_yield {
                    let _ = p.syscall(Syscall::Getpid);
                    c.aborted += 1;
                } else {
                    c.yielded += 1;
                    // `!syscall(...)`: a failing syscall returns -1, which is not a race.
                    if p.syscall(yield_call) == Ok(0) {
                        c.raced += 1;
                    }
                }
            } else if !req {
                c.scheduled += 1;
            }
        }

        let now = p.clock_ns();
        if now.saturating_sub(start) >= params.total_ns {
            break;
        }
    }
    c
}

/// The whole main thread: setup, loop, then clear `run` so the noise thread stops
/// (`FIXTURE_TEARDOWN`). `run` is cleared on setup failure too.
pub fn selftest_main<P: Platform + ?Sized>(
    p: &mut P,
    params: &SelftestParams,
    run: SharedWord,
) -> Result<SelftestCounters, SelftestSetupError> {
    let result = selftest_setup(p).map(|_| selftest_loop(p, params));
    p.shared_store(run, 0);
    result
}

/// `noise_thread()`: while `run` is set, busy-wait `noise_ns`, then sleep `sleep_ns`.
///
/// Its wakeups on the shared CPU generate the reschedule requests the main thread is
/// granted extensions against. Returns the number of bursts.
pub fn selftest_noise<P: Platform + ?Sized>(
    p: &mut P,
    params: &SelftestParams,
    run: SharedWord,
) -> u64 {
    let mut bursts = 0;
    while p.shared_load(run) != 0 {
        let start = p.clock_ns();
        protocol::spin_until(p, start, params.noise_ns);
        let _ = p.syscall(Syscall::Nanosleep {
            ns: params.sleep_ns,
        });
        bursts += 1;
    }
    bursts
}
