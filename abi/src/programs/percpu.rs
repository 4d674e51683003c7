//! The classic restartable-sequence workload: a per-CPU counter, `counter[cpu] += 1`, as a
//! restartable sequence ([`crate::seq`]) with some work between its load and its commit,
//! retried until it commits; optionally under a time slice extension, so that a
//! reschedule that would abort the sequence is deferred until it commits.
//!
//! It answers the question a runtime author asks: how often does a per-CPU update of this
//! length abort, and does asking for an extension around it help?

use crate::platform::{Platform, SharedWord};
use crate::protocol::{EnableMode, SetupError, SliceExt};
use crate::seq::{SeqOutcome, SeqStep, Sequence};

use super::{Counters, OutcomeCounts};

/// Parameters of one per-CPU counter thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PercpuParams {
    /// The counter array: CPU `c`'s counter is word `counters + c`.
    pub counters: SharedWord,
    /// Work inside the sequence, between its load and its commit, ns.
    pub hold_ns: u64,
    /// Work between two updates, ns.
    pub think_ns: u64,
    /// Up to this much more work between two updates, ns, a different amount each time
    /// (the same pseudo-random sequence on every platform). Beside a periodic disturber a
    /// fixed period phase-locks with it: every wakeup then lands at the same point of an
    /// update, and how often that is inside a sequence depends on a few ns of the period.
    pub think_spread_ns: u64,
    /// Time the work between updates on the clock ([`crate::protocol::spin_until`], a
    /// clock-polling spin as `LinuxPlatform`'s `burn` is) instead of burning it as CPU
    /// time: an interrupt then eats into it, and each poll costs a clock read, on both
    /// sides alike. The fidelity probes set it.
    pub clock_think: bool,
    /// Committed updates to make (`u64::MAX`: until the run ends).
    pub iterations: u64,
    /// Ask for a time slice extension around each update (prctl-enabled).
    pub use_ext: bool,
}

impl PercpuParams {
    /// Counters from word 100, 2 µs inside, 5 µs between, unlimited, no extension.
    pub const DEFAULT: PercpuParams = PercpuParams {
        counters: SharedWord(100),
        hold_ns: 2_000,
        think_ns: 5_000,
        think_spread_ns: 0,
        clock_think: false,
        iterations: u64::MAX,
        use_ext: false,
    };
}

impl Default for PercpuParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What one per-CPU counter thread did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PercpuCounters {
    /// Setup failure, if any (the thread then ran without the extension).
    pub setup_error: Option<SetupError>,
    /// The platform cannot run restartable sequences: nothing was updated.
    pub unsupported: bool,
    /// Updates committed.
    pub commits: u64,
    /// Attempts the kernel aborted (each retried).
    pub aborts: u64,
    /// How each extension request ended (one per committed update with `use_ext`).
    pub outcomes: OutcomeCounts,
}

impl PercpuCounters {
    /// The counters by name.
    pub fn counters(&self) -> Counters {
        let mut out = vec![
            ("unsupported", i64::from(self.unsupported)),
            ("commits", self.commits as i64),
            ("aborts", self.aborts as i64),
        ];
        self.outcomes.push_counters(&mut out);
        out
    }
}

/// The sequence: load this CPU's number and its counter, work `hold_ns`, commit + 1.
pub fn increment_steps(counters: SharedWord, hold_ns: u64) -> [SeqStep; 4] {
    [
        SeqStep::LoadCpuId { dst: 0 },
        SeqStep::Load {
            dst: 1,
            base: counters,
            index: Some(0),
        },
        SeqStep::Burn(hold_ns),
        SeqStep::Commit {
            base: counters,
            index: Some(0),
            src: 1,
            add: 1,
        },
    ]
}

/// The whole thread: register (and enable the extension if `use_ext`), then update the
/// counter `iterations` times, retrying aborted attempts, with `think_ns` between updates.
pub fn percpu_counter<P: Platform + ?Sized>(p: &mut P, params: &PercpuParams) -> PercpuCounters {
    let mode = if params.use_ext {
        EnableMode::Prctl
    } else {
        EnableMode::Off
    };
    let (ext, err) = SliceExt::setup(p, mode);
    let mut c = PercpuCounters {
        setup_error: err,
        ..PercpuCounters::default()
    };
    let steps = increment_steps(params.counters, params.hold_ns);
    let seq = Sequence { steps: &steps };
    // Knuth's MMIX LCG: a fixed sequence, identical on every platform and run.
    let mut lcg: u64 = 1;
    let mut think = || {
        lcg = lcg
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        params.think_ns + (lcg >> 33) % params.think_spread_ns.saturating_add(1)
    };
    while c.commits < params.iterations {
        ext.request(p);
        loop {
            match p.rseq_sequence(&seq) {
                SeqOutcome::Committed(_) => break,
                SeqOutcome::Aborted => c.aborts += 1,
                SeqOutcome::Failed(_) => unreachable!("the increment compares nothing"),
                SeqOutcome::Unsupported => {
                    c.unsupported = true;
                    c.outcomes.record(ext.release(p));
                    return c;
                }
            }
        }
        c.commits += 1;
        c.outcomes.record(ext.release(p));
        super::busy(p, think(), params.clock_think);
    }
    c
}
