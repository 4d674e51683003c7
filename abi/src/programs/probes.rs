//! Fidelity probes: small programs whose results a real kernel and the simulator must agree
//! on (`docs/fidelity.md`).
//!
//! Each [`Probe`] runs against `&mut dyn Platform`, so the very same code runs in a VM on a
//! kernel built with `CONFIG_RSEQ_SLICE_EXTENSION` and in the simulator. A probe returns
//! named integer results ([`Counters`]): a syscall's return value, or `-errno` when it
//! failed ([`sys`]), flag words, counters. Each result is either [`Class::Discrete`]
//! (return values, errnos, flags, signals, identities: must be equal) or [`Class::Rate`]
//! (counts that depend on timing: compared within a tolerance).
//!
//! Every probe starts on a fresh, unregistered thread of a fresh process. The runner
//! (the VM's probe binary, or `slicesim kernel-diff` in the simulator) adds what the
//! program cannot see itself: how the process ended ([`EXIT_KEY`]) and the debugfs
//! `rseq/stats` deltas (`stats.*`). The runner's results travel as a [`Frame`] of
//! `SLICESIM` lines on the VM's serial console.

use crate::consts::*;
use crate::layout::offset;
use crate::platform::{CpuSet, Platform, SharedWord, SysResult, Syscall};
use crate::programs::misbehave::{self, MisbehaveParams, Misbehavior};
use crate::programs::percpu::{percpu_counter, PercpuParams};
use crate::programs::selftest::{selftest_main, SelftestParams};
use crate::protocol::{self, EnableMode};

use super::Counters;

/// Key the runner adds for how the probe's process ended: 0 if the program returned,
/// else the number of the signal that killed it (11 = SIGSEGV).
pub const EXIT_KEY: &str = "exit";
/// Prefix of the keys the runner adds for the `rseq/stats` deltas (`stats.sgrant`, …).
pub const STATS_PREFIX: &str = "stats.";
/// The slice counters of debugfs `rseq/stats`, by their debugfs names, in print order.
pub const STATS_NAMES: [&str; 5] = ["sgrant", "sexpir", "srevok", "syield", "sabort"];
/// The result keys of their deltas, in the same order.
pub const STATS_KEYS: [&str; 5] = [
    "stats.sgrant",
    "stats.sexpir",
    "stats.srevok",
    "stats.syield",
    "stats.sabort",
];
/// CPU a probe with a noise thread pins both of its threads to (the selftest's choice:
/// the first CPU other than 0).
pub const NOISE_CPU: usize = 1;
/// The shared word that keeps the noise thread running.
pub const RUN_WORD: SharedWord = SharedWord(0);

/// How a result is compared between the kernel and the simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Must be equal: a return value, an errno, a flag word, a signal, an identity.
    Discrete,
    /// A count that depends on timing: compared as a share of its probe's total, within a
    /// tolerance.
    Rate,
}

/// Which threads a probe runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// The probe's thread alone, unpinned.
    Alone,
    /// The probe's thread and the selftest's noise thread (bursts of `noise_ns`, sleeps of
    /// `sleep_ns`, while [`RUN_WORD`] is non-zero), both pinned to [`NOISE_CPU`]: the noise
    /// thread's wakeups are what the kernel grants extensions against.
    WithNoise(SelftestParams),
}

/// One probe: a program and how to read its results.
pub struct Probe {
    /// Name used in frames, tables and on the command line.
    pub name: &'static str,
    /// One line on what it checks (spec sections).
    pub about: &'static str,
    /// Threads to run.
    pub threads: Threads,
    /// The program. With [`Threads::WithNoise`] it must clear [`RUN_WORD`] when done.
    pub main: fn(&mut dyn Platform) -> Counters,
    /// Keys of the program's results that are [`Class::Rate`]; every other key is discrete.
    pub rate_keys: &'static [&'static str],
}

impl Probe {
    /// How the result `key` of this probe is compared. The runner's `stats.*` deltas are
    /// rates when a noise thread makes them timing-dependent, discrete otherwise (a
    /// single-threaded probe never gets a grant, so its deltas are exactly 0).
    pub fn class(&self, key: &str) -> Class {
        let noisy = matches!(self.threads, Threads::WithNoise(_));
        if key.starts_with(STATS_PREFIX) {
            return if noisy && key != UNBALANCED_KEY {
                Class::Rate
            } else {
                Class::Discrete
            };
        }
        if self.rate_keys.contains(&key) {
            Class::Rate
        } else {
            Class::Discrete
        }
    }

    /// What both runners, the VM's and the simulator's, do on the main thread of a probe
    /// with a noise thread, once that thread is started and before [`Probe::main`]: sleep
    /// [`QUIET_START_NS`], so that the timed part starts once the kernel's work for the new
    /// process is done. Nothing for a probe without noise.
    pub fn quiet_start(&self, p: &mut dyn Platform) {
        if matches!(self.threads, Threads::WithNoise(_)) {
            // An interrupted sleep only shortens the quiet start; the probe still runs.
            let _ = p.syscall(Syscall::Nanosleep { ns: QUIET_START_NS });
        }
    }
}

/// How long a probe with a noise thread waits beside it before its timed part (200 ms).
///
/// Starting a process (the previous probe's exit, this one's exec, its noise thread's
/// clone) leaves RCU callbacks whose grace periods keep RCU's kthread busy for tens of
/// milliseconds. On hardware that work runs beside the probe; under qemu's instruction
/// counter the vCPUs take turns on one host thread, and a grant's timer arm hands the turn
/// to the vCPU that has that work, so the probe's CPU stands still inside its extension.
/// Without the wait, the 50 ms misbehaving probes expired about 1 % of their 2 µs
/// sections on icount boots, with it none (docs/fidelity.md, "The quiet start"). (The main
/// thread wakes from it with one of the noise thread's timer interrupts, its sleep's
/// slack, and then runs a whole slice, about 2 ms, before the noise thread gets the CPU
/// again: on Linux as in the simulator.)
pub const QUIET_START_NS: u64 = 200_000_000;

impl core::fmt::Debug for Probe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Probe").field("name", &self.name).finish()
    }
}

/// Derived key: `sgrant - syield - sabort - srevok` of the `rseq/stats` deltas. Every
/// grant ends in exactly one of those ways (spec §3.4; an expiry is followed by a revoke),
/// so it is 0 once no grant is outstanding, on the kernel as in the simulator.
pub const UNBALANCED_KEY: &str = "stats.unbalanced";

/// A syscall result as one integer: the return value, or `-errno`.
pub fn sys(r: SysResult) -> i64 {
    match r {
        Ok(v) => v,
        Err(e) => -i64::from(e.0),
    }
}

/// An address in the kernel half: `access_ok()` refuses it before any write (`EFAULT`).
const KERNEL_HALF_ADDR: u64 = 0xffff_8000_0000_0000;

fn rseq_call(p: &mut dyn Platform, addr: u64, len: u32, flags: u32, sig: u32) -> i64 {
    sys(p.syscall(Syscall::Rseq {
        addr,
        len,
        flags,
        sig,
    }))
}

/// `rseq()` registration and unregistration in every error case (spec §2.3), and the IDs
/// the kernel writes on the way out of a successful registration.
pub fn registration(p: &mut dyn Platform) -> Counters {
    let (addr, len, sig) = (p.rseq_addr(), p.rseq_len(), p.rseq_sig());
    let mut out: Counters = vec![
        ("unknown_flag", rseq_call(p, addr, len, 1 << 2, sig)),
        ("len_31", rseq_call(p, addr, 31, 0, sig)),
        ("len_32_misaligned", rseq_call(p, addr + 4, 32, 0, sig)),
        (
            "kernel_address",
            rseq_call(p, KERNEL_HALF_ADDR, len, 0, sig),
        ),
        (
            "unregister_unregistered",
            rseq_call(p, addr, len, RSEQ_FLAG_UNREGISTER, sig),
        ),
        ("register", rseq_call(p, addr, len, 0, sig)),
    ];
    let cpu_id = p.load_u32(offset::CPU_ID) as i32;
    out.extend([
        ("cpu_id_valid", i64::from(cpu_id >= 0)),
        (
            "cpu_id_start_equal",
            i64::from(p.load_u32(offset::CPU_ID_START) as i32 == cpu_id),
        ),
        ("again_same", rseq_call(p, addr, len, 0, sig)),
        ("again_other_sig", rseq_call(p, addr, len, 0, sig ^ 1)),
        ("again_other_len", rseq_call(p, addr, len + 32, 0, sig)),
        ("again_other_addr", rseq_call(p, addr + 32, len, 0, sig)),
        (
            "unregister_extra_flag",
            rseq_call(p, addr, len, RSEQ_FLAG_UNREGISTER | 2, sig),
        ),
        (
            "unregister_other_sig",
            rseq_call(p, addr, len, RSEQ_FLAG_UNREGISTER, sig ^ 1),
        ),
        (
            "unregister_other_len",
            rseq_call(p, addr, len + 32, RSEQ_FLAG_UNREGISTER, sig),
        ),
        (
            "unregister",
            rseq_call(p, addr, len, RSEQ_FLAG_UNREGISTER, sig),
        ),
        (
            "cpu_id_after_unregister",
            i64::from(p.load_u32(offset::CPU_ID) as i32),
        ),
        (
            "unregister_again",
            rseq_call(p, addr, len, RSEQ_FLAG_UNREGISTER, sig),
        ),
    ]);
    out
}

fn prctl(p: &mut dyn Platform, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i64 {
    sys(protocol::prctl_slice(p, arg2, arg3, arg4, arg5))
}

fn flags(p: &mut dyn Platform) -> i64 {
    i64::from(protocol::read_flags(p).0)
}

/// `prctl(PR_RSEQ_SLICE_EXTENSION)` in every error case, before and after registration,
/// with the `rseq::flags` bits after each state change (spec §2.4, §2.5), and
/// `rseq_slice_yield()` without a grant (§6.2).
pub fn prctl_and_flags(p: &mut dyn Platform) -> Counters {
    use PR_RSEQ_SLICE_EXTENSION_GET as GET;
    use PR_RSEQ_SLICE_EXTENSION_SET as SET;
    let mut out: Counters = vec![
        ("unreg_get", prctl(p, GET, 0, 0, 0)),
        (
            "unreg_set_enable",
            prctl(p, SET, PR_RSEQ_SLICE_EXT_ENABLE, 0, 0),
        ),
        ("unreg_set_disable", prctl(p, SET, 0, 0, 0)),
        ("unreg_set_bad_arg3", prctl(p, SET, 2, 0, 0)),
        ("unreg_get_arg3", prctl(p, GET, 1, 0, 0)),
        ("unreg_arg4", prctl(p, GET, 0, 1, 0)),
        ("unreg_arg5", prctl(p, GET, 0, 0, 1)),
        ("unreg_bad_arg2", prctl(p, 3, 0, 0, 0)),
        ("unreg_yield", sys(p.syscall(Syscall::RseqSliceYield))),
        ("register", sys(protocol::register(p, 0).map(|()| 0))),
        ("flags_registered", flags(p)),
        ("get_registered", prctl(p, GET, 0, 0, 0)),
        ("set_enable", prctl(p, SET, PR_RSEQ_SLICE_EXT_ENABLE, 0, 0)),
    ];
    out.extend([
        ("flags_enabled", flags(p)),
        ("get_enabled", prctl(p, GET, 0, 0, 0)),
        (
            "set_enable_again",
            prctl(p, SET, PR_RSEQ_SLICE_EXT_ENABLE, 0, 0),
        ),
        ("set_bad_arg3", prctl(p, SET, 3, 0, 0)),
        ("yield_no_grant", sys(p.syscall(Syscall::RseqSliceYield))),
        ("set_disable", prctl(p, SET, 0, 0, 0)),
        ("flags_disabled", flags(p)),
        ("get_disabled", prctl(p, GET, 0, 0, 0)),
        ("unregister", sys(protocol::unregister(p).map(|()| 0))),
        ("flags_unregistered", flags(p)),
        ("get_unregistered", prctl(p, GET, 0, 0, 0)),
    ]);
    out
}

/// Registration with `RSEQ_FLAG_SLICE_EXT_DEFAULT_ON` (spec §2.3 step 5), a legacy 32-byte
/// registration, which post-merge kernels do not offer the extension (§12.2), and the
/// alignment a longer registration needs (§2.3 step 3).
pub fn default_on_and_legacy(p: &mut dyn Platform) -> Counters {
    use PR_RSEQ_SLICE_EXTENSION_GET as GET;
    use PR_RSEQ_SLICE_EXTENSION_SET as SET;
    let (addr, len, sig) = (p.rseq_addr(), p.rseq_len(), p.rseq_sig());
    let mut out: Counters = vec![(
        "default_on_register",
        rseq_call(p, addr, len, RSEQ_FLAG_SLICE_EXT_DEFAULT_ON, sig),
    )];
    out.extend([
        ("default_on_flags", flags(p)),
        ("default_on_get", prctl(p, GET, 0, 0, 0)),
        (
            "default_on_unregister",
            rseq_call(p, addr, len, RSEQ_FLAG_UNREGISTER, sig),
        ),
        (
            "legacy_register",
            rseq_call(p, addr, ORIG_RSEQ_SIZE, 0, sig),
        ),
        ("legacy_flags", flags(p)),
        (
            "legacy_set_enable",
            prctl(p, SET, PR_RSEQ_SLICE_EXT_ENABLE, 0, 0),
        ),
        ("legacy_get", prctl(p, GET, 0, 0, 0)),
        (
            "legacy_unregister",
            rseq_call(p, addr, ORIG_RSEQ_SIZE, RSEQ_FLAG_UNREGISTER, sig),
        ),
    ]);
    // A length other than 32 must be aligned to rseq_alloc_align(): 32 while the struct
    // ends at 32 bytes, 64 once it grew past them (spec §1.1, §13.3).
    let r = rseq_call(p, addr + 32, 48, 0, sig);
    out.push(("len_48_aligned_32", r));
    if r == 0 {
        rseq_call(p, addr + 32, 48, RSEQ_FLAG_UNREGISTER, sig);
    }
    out
}

/// The selftest's counters (spec §9) as results: `total` and its breakdown are rates,
/// `invariants_hold` (every section classified once, races ⊆ yields, …) is discrete.
fn selftest_results(p: &mut dyn Platform, params: SelftestParams) -> Counters {
    match selftest_main(p, &params, RUN_WORD) {
        Ok(c) => {
            let mut out = c.counters();
            out.push((
                "invariants_hold",
                i64::from(c.check_invariants(params.no_yield).is_ok()),
            ));
            out
        }
        Err(_) => vec![("setup_failed", 1)],
    }
}

/// The selftest's result keys that are rates.
const SELFTEST_RATES: &[&str] = &[
    "total",
    "success",
    "yielded",
    "aborted",
    "scheduled",
    "raced",
];

/// Noise for the probes: the selftest's own (2 µs bursts, 50 µs sleeps), run for 300 ms.
const PROBE_SELFTEST: SelftestParams = SelftestParams {
    total_ns: 300_000_000,
    ..SelftestParams::N2_2_50
};

fn selftest_n2_2_50(p: &mut dyn Platform) -> Counters {
    selftest_results(p, PROBE_SELFTEST)
}

fn selftest_n50_2_50(p: &mut dyn Platform) -> Counters {
    selftest_results(
        p,
        SelftestParams {
            slice_ns: 50_000,
            ..PROBE_SELFTEST
        },
    )
}

fn selftest_no_yield(p: &mut dyn Platform) -> Counters {
    selftest_results(
        p,
        SelftestParams {
            no_yield: true,
            ..PROBE_SELFTEST
        },
    )
}

/// Sections a misbehaving probe runs: at 2 µs each with a noise wakeup every ~52 µs,
/// enough for hundreds of grants, so a fatal misdeed is committed many times over.
const MISBEHAVE_SECTIONS: u64 = 20_000;

/// What a misbehaving probe's client runs: 20,000 sections of 2 µs, enabled
/// with prctl, each timed on the clock, which is what `burn` is on the kernel side, so
/// both sides run the same section (`examples/slice-trace` traces the same client).
pub const PROBE_MISBEHAVE: MisbehaveParams = MisbehaveParams {
    sections: MISBEHAVE_SECTIONS,
    mode: EnableMode::Prctl,
    clock_section: true,
    ..MisbehaveParams::DEFAULT
};

/// A misbehaving client pinned beside the noise thread (spec §7). Whether it dies is the
/// runner's [`EXIT_KEY`]; if it lives, what it saw is timing-dependent except whether the
/// extension was in use.
fn misbehave_results(p: &mut dyn Platform, kind: Misbehavior) -> Counters {
    let c = misbehave::run(p, kind, &PROBE_MISBEHAVE);
    p.shared_store(RUN_WORD, 0);
    let mut out: Counters = vec![("ext_active", i64::from(c.ext_active))];
    out.extend([
        ("total", c.sections as i64),
        ("granted_seen", c.granted_seen as i64),
        ("misdeeds", c.misdeeds as i64),
    ]);
    out
}

const MISBEHAVE_RATES: &[&str] = &["total", "granted_seen", "misdeeds"];

/// Shared words a probe process has: the run word, and the sequence probes' per-CPU
/// counters at words 100 + CPU (up to 64 CPUs).
pub const SHARED_WORDS: usize = 164;

/// Updates a sequence probe makes.
const SEQ_UPDATES: u64 = 2_000;

/// A per-CPU counter updated with restartable sequences, pinned beside the noise thread
/// (issue 18): every update is made exactly once (`commits`, `counter` discrete); how many
/// attempts the noise thread's wakeups abort, and how many grants are yielded with the
/// extension asked for, are rates.
/// The sequence probes' updates: 2,000 per-CPU counter increments beside the
/// noise thread, 0–2 µs apart on the clock (1 µs on average). With a fixed 1 µs the noise thread's
/// wakeups phase-locked with the updates, and on Linux 7.2 every one of them landed inside
/// a sequence (73 grants in 75 wakeups) where the simulator, its period a few hundred ns
/// away, had 40.
pub const fn seq_probe_params(hold_ns: u64, use_ext: bool) -> PercpuParams {
    PercpuParams {
        counters: SharedWord(100),
        hold_ns,
        think_ns: 0,
        think_spread_ns: 2_000,
        clock_think: true,
        iterations: SEQ_UPDATES,
        use_ext,
    }
}

fn seq_results(p: &mut dyn Platform, hold_ns: u64, use_ext: bool) -> Counters {
    let params = seq_probe_params(hold_ns, use_ext);
    let c = percpu_counter(p, &params);
    p.shared_store(RUN_WORD, 0);
    let cpu = (p.load_u32(offset::CPU_ID) as usize).min(SHARED_WORDS - 101);
    vec![
        ("unsupported", i64::from(c.unsupported)),
        ("commits", c.commits as i64),
        (
            "counter",
            i64::from(p.shared_load(SharedWord(100 + cpu as u32))),
        ),
        ("aborts", c.aborts as i64),
        ("yielded", c.outcomes.yielded as i64),
    ]
}

const SEQ_RATES: &[&str] = &["aborts", "yielded"];

fn seq_preempted(p: &mut dyn Platform) -> Counters {
    seq_results(p, 30_000, false)
}

fn seq_under_ext(p: &mut dyn Platform) -> Counters {
    seq_results(p, 2_000, true)
}

fn writes_granted(p: &mut dyn Platform) -> Counters {
    misbehave_results(p, Misbehavior::WritesGranted)
}

/// Most forged yields [`forged_after_revoke`] makes.
const FORGERIES: i64 = 5;
/// How long [`forged_after_revoke`] overstays a grant waiting for the kernel to take it
/// back (the extension is at most 50 µs).
const OVERSTAY_LIMIT_NS: u64 = 1_000_000;

/// The deterministic form of [`Misbehavior::WritesGranted`]: on a grant, keep running
/// until the kernel revokes it (expiry, spec §4.3, then §3.2 step 4), then forge
/// `granted = 1` and call `rseq_slice_yield()`. The revoke left the slice work bit set, so
/// the syscall-entry check runs and, in debug mode, finds `all != 0`: SIGSEGV (§6.1 step 2,
/// §7 item 3). Without debug mode each forged yield returns 0.
fn forged_after_revoke(p: &mut dyn Platform) -> Counters {
    let (ext, _) = protocol::SliceExt::setup(p, EnableMode::Prctl);
    let mut out: Counters = vec![("ext_active", i64::from(ext.is_active()))];
    let (mut forged, mut last) = (0, 0);
    for _ in 0..MISBEHAVE_SECTIONS {
        if !ext.is_active() || ext.revision().is_v1() || forged == FORGERIES {
            break;
        }
        ext.request(p);
        // Clock time, as `burn` is on the kernel side.
        let start = p.clock_ns();
        protocol::spin_until(p, start, 2_000);
        if p.load_u8(offset::GRANTED) == 0 {
            p.store_u8(offset::REQUEST, 0);
            continue;
        }
        let start = p.clock_ns();
        while p.load_u8(offset::GRANTED) != 0 && p.clock_ns() - start < OVERSTAY_LIMIT_NS {}
        if p.load_u8(offset::GRANTED) != 0 {
            // Not revoked in time: leave correctly and try again.
            p.store_u8(offset::REQUEST, 0);
            let _ = p.syscall(Syscall::RseqSliceYield);
            continue;
        }
        p.store_u8(offset::GRANTED, 1);
        last = sys(p.syscall(Syscall::RseqSliceYield));
        p.store_u8(offset::GRANTED, 0);
        forged += 1;
    }
    p.shared_store(RUN_WORD, 0);
    out.extend([("forged", forged), ("forged_yield", last)]);
    out
}

fn request_while_granted(p: &mut dyn Platform) -> Counters {
    misbehave_results(p, Misbehavior::RequestWhileGranted)
}

fn reserved_bytes(p: &mut dyn Platform) -> Counters {
    misbehave_results(p, Misbehavior::ReservedBytes)
}

fn syscall_in_grant(p: &mut dyn Platform) -> Counters {
    misbehave_results(p, Misbehavior::SyscallInGrant)
}

/// Clears AVAILABLE in `rseq::flags`, then asks prctl to enable: SIGSEGV with `-EFAULT`
/// whatever the debug setting (spec §7 item 4). Single-threaded: no grant is needed.
pub fn tampers_flags(p: &mut dyn Platform) -> Counters {
    use PR_RSEQ_SLICE_EXTENSION_SET as SET;
    let register = sys(protocol::register(p, 0).map(|()| 0));
    let flags_before = flags(p);
    p.store_u32(offset::FLAGS, 0);
    let set = prctl(p, SET, PR_RSEQ_SLICE_EXT_ENABLE, 0, 0);
    // Only reached when the kernel did not kill the thread (feature off: ENOTSUPP).
    vec![
        ("register", register),
        ("flags_before", flags_before),
        ("set_after_tamper", set),
    ]
}

/// A value no kernel writes into an ID field: the probes scribble it to see whether the
/// kernel rewrites (or checks) the field.
const SCRIBBLE: u32 = 0x5eed;

/// Pin the thread to the CPU it runs on, so that sleeping cannot migrate it (a migration
/// changes the IDs, which is another path). Returns that CPU.
fn pin_here(p: &mut dyn Platform) -> u32 {
    let cpu = p.load_u32(offset::CPU_ID);
    let _ = p.syscall(Syscall::SchedSetaffinity(CpuSet::single(cpu as usize)));
    cpu
}

/// A voluntary context switch on the same CPU: sleep 20 ms. (`do_nanosleep()` does not
/// schedule if the timer fired before it got there: under TCG a host stall of the sleep's
/// length between arming and that check once left a 1 ms sleep without any switch.)
fn switch_out_and_back(p: &mut dyn Platform) -> i64 {
    sys(p.syscall(Syscall::Nanosleep { ns: 20_000_000 }))
}

/// Register with `len` bytes on a pinned CPU, scribble on `cpu_id_start`, switch out and
/// back, and report whether the field then holds the CPU (`rewritten`) or the scribble
/// (`kept`); the field is put back before unregistering.
fn ids_after_switch(p: &mut dyn Platform, len: u32) -> Counters {
    let (addr, sig) = (p.rseq_addr(), p.rseq_sig());
    let register = rseq_call(p, addr, len, 0, sig);
    let cpu = pin_here(p);
    p.store_u32(offset::CPU_ID_START, SCRIBBLE);
    let sleep = switch_out_and_back(p);
    let after = p.load_u32(offset::CPU_ID_START);
    p.store_u32(offset::CPU_ID_START, cpu);
    vec![
        ("register", register),
        ("sleep", sleep),
        ("rewritten", i64::from(after == cpu)),
        ("kept", i64::from(after == SCRIBBLE)),
        (
            "unregister",
            rseq_call(p, addr, len, RSEQ_FLAG_UNREGISTER, sig),
        ),
    ]
}

/// Linux 7.2 `rseq_sched_switch_event()`: a legacy (32-byte) registration gets a full ID
/// update after every context switch, a voluntary one on the same CPU included; with
/// `rseq_debug` that update first checks the fields, so the scribble is fatal (issue 12
/// items 1 and 3).
pub fn legacy_ids_after_switch(p: &mut dyn Platform) -> Counters {
    ids_after_switch(p, ORIG_RSEQ_SIZE)
}

/// The same with the platform's registration (64 bytes, ABI v2, on the 7.2 revision): a
/// switch that changes no ID leaves the fields alone, unchecked; `rseq_debug` has nothing to
/// check either, since no rseq update runs (issue 12 item 1).
pub fn v2_ids_after_switch(p: &mut dyn Platform) -> Counters {
    let len = p.rseq_len();
    ids_after_switch(p, len)
}

/// Linux 7.2 `rseq_reset_ids()`: unregistering writes `cpu_id_start = 0`,
/// `cpu_id = RSEQ_CPU_ID_UNINITIALIZED`, `node_id = mm_cid = 0`, and leaves `slice_ctrl`
/// as user space left it (issue 12 item 2).
pub fn unregister_ids(p: &mut dyn Platform) -> Counters {
    let (addr, len, sig) = (p.rseq_addr(), p.rseq_len(), p.rseq_sig());
    let register = rseq_call(p, addr, len, 0, sig);
    p.store_u8(offset::RESERVED, 0xab);
    let unregister = rseq_call(p, addr, len, RSEQ_FLAG_UNREGISTER, sig);
    vec![
        ("register", register),
        ("unregister", unregister),
        ("cpu_id_start", i64::from(p.load_u32(offset::CPU_ID_START))),
        ("cpu_id", i64::from(p.load_u32(offset::CPU_ID) as i32)),
        ("node_id", i64::from(p.load_u32(offset::NODE_ID))),
        ("mm_cid", i64::from(p.load_u32(offset::MM_CID))),
        ("reserved", i64::from(p.load_u8(offset::RESERVED))),
    ]
}

/// Linux 7.2 `rseq_register()`: with `CONFIG_RSEQ_SLICE_EXTENSION` the registration zeroes
/// `slice_ctrl`; without it the word is left as user space wrote it (issue 12 item 7).
pub fn register_clears_word(p: &mut dyn Platform) -> Counters {
    let (addr, len, sig) = (p.rseq_addr(), p.rseq_len(), p.rseq_sig());
    p.store_u8(offset::REQUEST, 1);
    p.store_u8(offset::RESERVED, 0xab);
    let register = rseq_call(p, addr, len, 0, sig);
    let request = i64::from(p.load_u8(offset::REQUEST));
    let reserved = i64::from(p.load_u8(offset::RESERVED));
    vec![
        ("register", register),
        ("request", request),
        ("reserved", reserved),
        (
            "unregister",
            rseq_call(p, addr, len, RSEQ_FLAG_UNREGISTER, sig),
        ),
    ]
}

/// Linux 7.2 `__rseq_debug_syscall_return()`: with `rseq_debug` an invalid `rseq_cs` is
/// SIGSEGV on the way out of any syscall; without it the syscall returns (issue 12
/// item 8).
pub fn debug_syscall_return(p: &mut dyn Platform) -> Counters {
    let (addr, len, sig) = (p.rseq_addr(), p.rseq_len(), p.rseq_sig());
    let register = rseq_call(p, addr, len, 0, sig);
    p.store_u64(offset::RSEQ_CS, KERNEL_HALF_ADDR);
    let getpid = i64::from(sys(p.syscall(Syscall::Getpid)) > 0);
    p.store_u64(offset::RSEQ_CS, 0);
    vec![("register", register), ("getpid_returned", getpid)]
}

/// Linux 7.2 `rseq_update_usr()`: an ID update after a syscall (here a migration by
/// `sched_setaffinity()`) does not look at `rseq_cs` without `rseq_debug`, so an invalid
/// one survives it (issue 12 item 10).
pub fn rseq_cs_syscall_migrate(p: &mut dyn Platform) -> Counters {
    let (addr, len, sig) = (p.rseq_addr(), p.rseq_len(), p.rseq_sig());
    let register = rseq_call(p, addr, len, 0, sig);
    let cpu = pin_here(p) as usize;
    let other = if cpu == NOISE_CPU { 0 } else { NOISE_CPU };
    p.store_u64(offset::RSEQ_CS, KERNEL_HALF_ADDR);
    let moved = sys(p.syscall(Syscall::SchedSetaffinity(CpuSet::single(other))));
    let now = p.load_u32(offset::CPU_ID) as usize;
    p.store_u64(offset::RSEQ_CS, 0);
    vec![
        ("register", register),
        ("setaffinity", moved),
        ("migrated", i64::from(now == other)),
    ]
}

/// Every probe, in the order they run and are reported.
pub const PROBES: &[Probe] = &[
    Probe {
        name: "registration",
        about: "rseq() register/unregister in every error case, IDs written (§2.3)",
        threads: Threads::Alone,
        main: registration,
        rate_keys: &[],
    },
    Probe {
        name: "prctl_flags",
        about: "prctl GET/SET in every error case, rseq::flags bits, yield without grant (§2.4, §2.5, §6.2)",
        threads: Threads::Alone,
        main: prctl_and_flags,
        rate_keys: &[],
    },
    Probe {
        name: "default_on_legacy",
        about: "RSEQ_FLAG_SLICE_EXT_DEFAULT_ON; a 32-byte legacy registration (§2.3, §12)",
        threads: Threads::Alone,
        main: default_on_and_legacy,
        rate_keys: &[],
    },
    Probe {
        name: "tampers_flags",
        about: "prctl SET after clearing AVAILABLE: SIGSEGV + EFAULT (§7 item 4)",
        threads: Threads::Alone,
        main: tampers_flags,
        rate_keys: &[],
    },
    Probe {
        name: "selftest_n2_2_50",
        about: "selftest loop, 2 µs sections: grant, yield (§9, §6.2)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: selftest_n2_2_50,
        rate_keys: SELFTEST_RATES,
    },
    Probe {
        name: "selftest_n50_2_50",
        about: "selftest loop, 50 µs sections: expiry (§4.3)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: selftest_n50_2_50,
        rate_keys: SELFTEST_RATES,
    },
    Probe {
        name: "selftest_no_yield",
        about: "selftest loop leaving grants with getpid(): abort (§6.1)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: selftest_no_yield,
        rate_keys: SELFTEST_RATES,
    },
    Probe {
        name: "seq_preempted",
        about: "a per-CPU counter updated with 30 µs restartable sequences beside the noise thread: preempted updates abort and retry, each made once (issue 18)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: seq_preempted,
        rate_keys: SEQ_RATES,
    },
    Probe {
        name: "seq_under_ext",
        about: "the same with 2 µs sequences under a slice extension: the grant defers the wakeup's reschedule, no abort (issue 18, §3.2)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: seq_under_ext,
        rate_keys: SEQ_RATES,
    },
    Probe {
        name: "syscall_in_grant",
        about: "getpid() inside a grant: allowed, never fatal (§6.1, §7)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: syscall_in_grant,
        rate_keys: MISBEHAVE_RATES,
    },
    Probe {
        name: "writes_granted",
        about: "granted=1 forged after sections without a grant, then yield: SIGSEGV in debug mode only if a grant was revoked without a syscall before (§7 item 3)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: writes_granted,
        // Whether it dies depends on a revoke without a syscall happening first: timing.
        rate_keys: &["total", "granted_seen", "misdeeds", EXIT_KEY],
    },
    Probe {
        name: "forged_after_revoke",
        about: "granted=1 forged after the kernel revoked a grant, then yield: SIGSEGV in debug mode (§6.1, §7 item 3)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: forged_after_revoke,
        // How many grants were revoked in time to forge on is timing; that it dies is not.
        rate_keys: &["forged"],
    },
    Probe {
        name: "request_while_granted",
        about: "request set again while granted, then yield: SIGSEGV in debug mode (§7 item 3)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: request_while_granted,
        rate_keys: MISBEHAVE_RATES,
    },
    Probe {
        name: "reserved_bytes",
        about: "non-zero __reserved bytes in a grant, then yield: SIGSEGV in debug mode (§7 item 3)",
        threads: Threads::WithNoise(PROBE_SELFTEST),
        main: reserved_bytes,
        rate_keys: MISBEHAVE_RATES,
    },
    Probe {
        name: "legacy_ids_after_switch",
        about: "32-byte registration: IDs rewritten after a voluntary switch; checked under rseq_debug (issue 12 items 1, 3)",
        threads: Threads::Alone,
        main: legacy_ids_after_switch,
        rate_keys: &[],
    },
    Probe {
        name: "v2_ids_after_switch",
        about: "ABI v2 registration: IDs neither checked nor rewritten when a switch changes none; checked under rseq_debug (issue 12 item 1)",
        threads: Threads::Alone,
        main: v2_ids_after_switch,
        rate_keys: &[],
    },
    Probe {
        name: "unregister_ids",
        about: "unregister writes the IDs (cpu_id_start 0) and leaves slice_ctrl (issue 12 item 2)",
        threads: Threads::Alone,
        main: unregister_ids,
        rate_keys: &[],
    },
    Probe {
        name: "register_clears_word",
        about: "registration zeroes slice_ctrl only with CONFIG_RSEQ_SLICE_EXTENSION (issue 12 item 7)",
        threads: Threads::Alone,
        main: register_clears_word,
        rate_keys: &[],
    },
    Probe {
        name: "debug_syscall_return",
        about: "an invalid rseq_cs at a syscall return: SIGSEGV under rseq_debug only (issue 12 item 8)",
        threads: Threads::Alone,
        main: debug_syscall_return,
        rate_keys: &[],
    },
    Probe {
        name: "rseq_cs_syscall_migrate",
        about: "an invalid rseq_cs across a migration by syscall: skipped without rseq_debug (issue 12 item 10)",
        threads: Threads::Alone,
        main: rseq_cs_syscall_migrate,
        rate_keys: &[],
    },
];

/// The probe called `name`.
pub fn find(name: &str) -> Option<&'static Probe> {
    PROBES.iter().find(|p| p.name == name)
}

/// The affinity a probe's threads run with: `None` for [`Threads::Alone`].
pub fn affinity(probe: &Probe) -> Option<CpuSet> {
    match probe.threads {
        Threads::Alone => None,
        Threads::WithNoise(_) => Some(CpuSet::single(NOISE_CPU)),
    }
}

/// The `rseq/stats` deltas as results (`stats.sgrant`, …), plus [`UNBALANCED_KEY`].
/// `before` and `after` are in [`STATS_NAMES`] order.
pub fn stats_results(before: [u64; 5], after: [u64; 5]) -> Counters {
    let d: Vec<i64> = before
        .iter()
        .zip(after)
        .map(|(b, a)| a.wrapping_sub(*b) as i64)
        .collect();
    let mut out: Counters = STATS_KEYS.iter().copied().zip(d.iter().copied()).collect();
    // sgrant - syield - sabort - srevok
    out.push((UNBALANCED_KEY, d[0] - d[3] - d[4] - d[2]));
    out
}

/// Parse the slice counters out of debugfs `rseq/stats` text (`sgrant:   %16lu` lines, spec
/// §3.4), in [`STATS_NAMES`] order. `None` if one is missing or not a number.
pub fn parse_debugfs_stats(text: &str) -> Option<[u64; 5]> {
    let mut out = [None; 5];
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let Some(i) = STATS_NAMES.iter().position(|n| *n == name.trim()) {
            out[i] = Some(value.trim().parse().ok()?);
        }
    }
    let mut v = [0; 5];
    for (slot, o) in v.iter_mut().zip(out) {
        *slot = o?;
    }
    Some(v)
}

/// Prefix of every line of a frame; anything else on the console (kernel messages, the
/// init script's own output) is ignored by [`Frame::parse`].
pub const FRAME_PREFIX: &str = "SLICESIM";
/// Version of the frame format, in its `BEGIN` line.
pub const FRAME_VERSION: u32 = 1;

/// One probe's results as a runner reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeRecord {
    /// The probe's name.
    pub probe: String,
    /// Its results in the order reported.
    pub results: Vec<(String, i64)>,
}

/// Everything one VM boot reported: facts about the kernel and its command line (`meta`),
/// then each probe's results.
///
/// On the console:
///
/// ```text
/// SLICESIM BEGIN 1
/// SLICESIM meta kernel = 7.2.13
/// SLICESIM probe registration
/// SLICESIM result registration unknown_flag = -22
/// SLICESIM END 1
/// ```
///
/// `END` carries the number of `result` lines, so a frame cut short by a crash or a full
/// console is an error, not a quietly smaller table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// `meta` lines: key and free text.
    pub meta: Vec<(String, String)>,
    /// Probes in the order reported.
    pub probes: Vec<ProbeRecord>,
}

/// Why console text is not a well-formed frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// No `SLICESIM BEGIN` line at all (the VM never ran the probes).
    #[error("no `{FRAME_PREFIX} BEGIN` line: the probes did not run")]
    NoBegin,
    /// A second `BEGIN` before `END`.
    #[error("line {line}: a second BEGIN before END")]
    NestedBegin {
        /// 1-based console line.
        line: usize,
    },
    /// A frame line that does not parse.
    #[error("line {line}: cannot read `{text}`: {why}")]
    BadLine {
        /// 1-based console line.
        line: usize,
        /// The line.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The console ended inside the frame.
    #[error("the frame has no END line: the run was cut short after {results} results")]
    Truncated {
        /// Results read before the end of the text.
        results: usize,
    },
    /// `END n` does not match the results read.
    #[error("END says {expected} results but the frame has {found}")]
    CountMismatch {
        /// From the END line.
        expected: usize,
        /// Actually read.
        found: usize,
    },
}

impl Frame {
    /// Add a probe's results.
    pub fn push(&mut self, probe: &str, results: &[(&str, i64)]) {
        self.probes.push(ProbeRecord {
            probe: probe.to_string(),
            results: results.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        });
    }

    /// The probe called `name`.
    pub fn probe(&self, name: &str) -> Option<&ProbeRecord> {
        self.probes.iter().find(|p| p.probe == name)
    }

    /// The value of meta key `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The frame as console lines (each ends with `\n`).
    pub fn render(&self) -> String {
        let mut s = format!("{FRAME_PREFIX} BEGIN {FRAME_VERSION}\n");
        for (k, v) in &self.meta {
            s += &format!("{FRAME_PREFIX} meta {k} = {v}\n");
        }
        let mut n = 0;
        for p in &self.probes {
            s += &format!("{FRAME_PREFIX} probe {}\n", p.probe);
            for (k, v) in &p.results {
                s += &format!("{FRAME_PREFIX} result {} {k} = {v}\n", p.probe);
                n += 1;
            }
        }
        s += &format!("{FRAME_PREFIX} END {n}\n");
        s
    }

    /// Read the first frame out of console text. Lines without the prefix are skipped
    /// (carriage returns from the serial line too), so kernel messages may interleave.
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        let mut frame: Option<Frame> = None;
        let mut results = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let Some(at) = raw.find(FRAME_PREFIX) else {
                continue;
            };
            let body = raw[at + FRAME_PREFIX.len()..].trim();
            let bad = |why| FrameError::BadLine {
                line,
                text: raw.trim_end().to_string(),
                why,
            };
            let (word, rest) = body.split_once(' ').unwrap_or((body, ""));
            match (word, frame.as_mut()) {
                ("BEGIN", Some(_)) => return Err(FrameError::NestedBegin { line }),
                ("BEGIN", None) => {
                    if rest.trim() != FRAME_VERSION.to_string() {
                        return Err(bad("unknown frame version"));
                    }
                    frame = Some(Frame::default());
                }
                (_, None) => continue,
                ("meta", Some(f)) => {
                    let (k, v) = rest
                        .split_once(" = ")
                        .ok_or_else(|| bad("expected `key = value`"))?;
                    f.meta.push((k.trim().to_string(), v.trim().to_string()));
                }
                ("probe", Some(f)) => {
                    let name = rest.trim();
                    if name.is_empty() || name.contains(' ') {
                        return Err(bad("expected one probe name"));
                    }
                    f.probes.push(ProbeRecord {
                        probe: name.to_string(),
                        results: Vec::new(),
                    });
                }
                ("result", Some(f)) => {
                    let (head, v) = rest
                        .split_once(" = ")
                        .ok_or_else(|| bad("expected `probe key = value`"))?;
                    let (probe, key) = head
                        .trim()
                        .split_once(' ')
                        .ok_or_else(|| bad("expected `probe key = value`"))?;
                    let value: i64 = v
                        .trim()
                        .parse()
                        .map_err(|_| bad("the value is not an integer"))?;
                    let rec = f
                        .probes
                        .last_mut()
                        .filter(|r| r.probe == probe)
                        .ok_or_else(|| bad("result outside its probe"))?;
                    rec.results.push((key.trim().to_string(), value));
                    results += 1;
                }
                ("END", Some(_)) => {
                    let expected: usize =
                        rest.trim().parse().map_err(|_| bad("END needs a count"))?;
                    if expected != results {
                        return Err(FrameError::CountMismatch {
                            expected,
                            found: results,
                        });
                    }
                    return Ok(frame.take().unwrap_or_default());
                }
                (_, Some(_)) => return Err(bad("unknown line kind")),
            }
        }
        match frame {
            None => Err(FrameError::NoBegin),
            Some(_) => Err(FrameError::Truncated { results }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Frame {
        let mut f = Frame::default();
        f.meta.push(("kernel".into(), "7.2.13".into()));
        f.meta.push((
            "cmdline".into(),
            "console=ttyS0 preempt=lazy rseq_debug=1".into(),
        ));
        f.push("registration", &[("unknown_flag", -22), ("register", 0)]);
        f.push("selftest_n2_2_50", &[("total", 1000), ("exit", 0)]);
        f
    }

    #[test]
    fn a_frame_survives_the_console_with_kernel_messages_between_its_lines() {
        let text = sample().render();
        let noisy: String = text
            .lines()
            .enumerate()
            .map(|(i, l)| format!("[    {i}.000] random: crng init done\r\n{l}\r\n"))
            .collect();
        assert_eq!(Frame::parse(&noisy), Ok(sample()));
        assert_eq!(
            sample().meta("cmdline"),
            Some("console=ttyS0 preempt=lazy rseq_debug=1")
        );
        assert_eq!(
            sample().probe("registration").unwrap().results[0],
            ("unknown_flag".into(), -22)
        );
    }

    #[test]
    fn a_frame_cut_short_is_an_error_not_a_smaller_table() {
        let text = sample().render();
        let cut: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
        assert_eq!(
            Frame::parse(&cut),
            Err(FrameError::Truncated { results: 1 })
        );
        let lost_line = text.replace("SLICESIM result registration register = 0\n", "");
        assert_eq!(
            Frame::parse(&lost_line),
            Err(FrameError::CountMismatch {
                expected: 4,
                found: 3
            })
        );
        assert_eq!(
            Frame::parse("Booting from ROM...\n"),
            Err(FrameError::NoBegin)
        );
    }

    #[test]
    fn malformed_lines_are_reported_with_their_line_number() {
        let text = "SLICESIM BEGIN 1\nSLICESIM probe p\nSLICESIM result p k = twelve\n";
        match Frame::parse(text) {
            Err(FrameError::BadLine { line: 3, why, .. }) => {
                assert_eq!(why, "the value is not an integer")
            }
            other => panic!("{other:?}"),
        }
        let text = "SLICESIM BEGIN 1\nSLICESIM probe p\nSLICESIM result q k = 1\n";
        assert!(matches!(
            Frame::parse(text),
            Err(FrameError::BadLine { line: 3, .. })
        ));
        assert!(matches!(
            Frame::parse("SLICESIM BEGIN 2\n"),
            Err(FrameError::BadLine { line: 1, .. })
        ));
    }

    #[test]
    fn debugfs_stats_text_parses_and_deltas_balance() {
        let text = "exit:   12\nsignal: 0\nsgrant:               10\nsexpir:                2\nsrevok:                3\nsyield:                4\nsabort:                3\n";
        assert_eq!(parse_debugfs_stats(text), Some([10, 2, 3, 4, 3]));
        assert_eq!(parse_debugfs_stats("sgrant: 1\n"), None, "counters missing");
        let r = stats_results([10, 2, 3, 4, 3], [20, 3, 5, 9, 6]);
        assert_eq!(
            r,
            vec![
                ("stats.sgrant", 10),
                ("stats.sexpir", 1),
                ("stats.srevok", 2),
                ("stats.syield", 5),
                ("stats.sabort", 3),
                (UNBALANCED_KEY, 0),
            ]
        );
        let r = stats_results([0; 5], [5, 0, 0, 1, 1]);
        assert_eq!(
            r.last(),
            Some(&(UNBALANCED_KEY, 3)),
            "three grants never ended"
        );
    }

    #[test]
    fn results_are_discrete_unless_timing_decides_them() {
        let alone = find("registration").unwrap();
        assert_eq!(alone.class("unknown_flag"), Class::Discrete);
        assert_eq!(
            alone.class("stats.sgrant"),
            Class::Discrete,
            "no noise, no grants"
        );
        let noisy = find("selftest_n2_2_50").unwrap();
        assert_eq!(noisy.class("yielded"), Class::Rate);
        assert_eq!(noisy.class("invariants_hold"), Class::Discrete);
        assert_eq!(noisy.class(EXIT_KEY), Class::Discrete);
        assert_eq!(noisy.class("stats.syield"), Class::Rate);
        assert_eq!(noisy.class(UNBALANCED_KEY), Class::Discrete);
        let names: Vec<&str> = PROBES.iter().map(|p| p.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "probe names are unique");
    }
}
