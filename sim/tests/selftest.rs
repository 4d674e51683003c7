//! The kernel selftest's three variants (spec §9) as simulated 5 s runs, and determinism.

mod common;

use common::*;
use rseq_abi::programs::SelftestParams;
use rseq_sim::{IrqKind, IrqPattern, IrqSource, ReschedReq, SimConfig, SliceStats, TieBreak};

const RUN_NS: u64 = 5_200_000_000;

fn run(
    params: SelftestParams,
    cfg: SimConfig,
) -> (rseq_abi::programs::SelftestCounters, SliceStats) {
    let mut sim = selftest_sim(cfg, params);
    sim.run_until(RUN_NS);
    assert!(
        sim.all_exited(),
        "both threads finish: {:?}",
        sim.tasks().iter().map(|t| &t.exit).collect::<Vec<_>>()
    );
    let c = counters_of(&sim, 0);
    c.check_invariants(params.no_yield).unwrap();
    (c, sim.stats())
}

fn quiet() -> SimConfig {
    SimConfig {
        log: false,
        ..SimConfig::default()
    }
}

#[test]
fn selftest_n2_2_50_grants_and_yields() {
    let (c, s) = run(SelftestParams::N2_2_50, quiet());
    assert!(c.total > 1_000_000, "{c:?}");
    assert!(
        c.yielded > 10_000 && s.granted >= c.yielded && s.yielded == c.yielded - c.raced,
        "{c:?} {s:?}"
    );
    assert_eq!((c.aborted, s.aborted), (0, 0));
}

#[test]
fn selftest_n50_2_50_phase_locks_and_yields() {
    let (c, s) = run(SelftestParams::N50_2_50, quiet());
    // 50 µs sections outlast a 5 µs grant, but the noise thread phase-locks with them:
    // after a yield it sleeps about two sections and wakes near a section's end, so its
    // grants are yielded, until a tick ends a sleep early (hrtimer range expiry) in
    // mid-section. Linux 7.2.13 under icount yields 90.6 % of them and expires 9.4 %
    // (docs/fidelity.md); this 2-CPU machine yields 86 %. What expires is revoked.
    assert!(s.yielded > 4 * s.expired, "{s:?}");
    assert!(s.expired > 0 && s.revoked >= s.expired, "{s:?}");
    // Each expired grant is seen as scheduled, or, when the timer fired between the
    // main thread's read of `granted` and its yield, as a raced yield.
    assert!(
        c.scheduled + c.raced >= s.expired,
        "each expired grant is seen: {c:?} {s:?}"
    );
}

#[test]
fn selftest_n2_2_50_no_yield_aborts() {
    let (c, s) = run(SelftestParams::N2_2_50_NO_YIELD, quiet());
    assert!(c.aborted > 10_000 && c.yielded == 0, "{c:?}");
    assert_eq!(
        s.aborted, c.aborted,
        "every getpid in a grant is an s_aborted"
    );
}

#[test]
fn selftest_with_device_noise_races() {
    // Reschedule-carrying device interrupts at 50 kHz land between the granted check and
    // the yield often enough for rseq_slice_yield() to return 0 (spec §8.3).
    let params = SelftestParams {
        total_ns: 2_000_000_000,
        ..SelftestParams::N2_2_50
    };
    let mut sim = selftest_sim(quiet(), params);
    poisson_resched(&mut sim, 1, 50_000.0);
    sim.run_until(2_200_000_000);
    let c = counters_of(&sim, 0);
    c.check_invariants(false).unwrap();
    assert!(c.raced > 0, "{c:?}");
    assert!(sim.stats().revoked > 0);
}

fn hash_of(seed: u64, tie: TieBreak) -> u64 {
    let params = SelftestParams {
        total_ns: 20_000_000,
        ..SelftestParams::N2_2_50
    };
    let cfg = SimConfig {
        seed,
        tie_break: tie,
        ..SimConfig::default()
    };
    let mut sim = selftest_sim(cfg, params);
    sim.add_irq_source(IrqSource::new(
        1,
        IrqKind::Device(ReschedReq::Lazy),
        IrqPattern::Poisson {
            rate_hz: 20_000.0,
            start_ns: 0,
            end_ns: u64::MAX,
        },
    ));
    sim.run_until(25_000_000);
    assert!(sim.log().len() > 1000);
    sim.log_hash()
}

#[test]
fn determinism_same_seed_same_log_across_runs_and_threads() {
    let reference = hash_of(7, TieBreak::Fifo);
    assert_eq!(hash_of(7, TieBreak::Fifo), reference);
    let hashes: Vec<u64> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| hash_of(7, TieBreak::Fifo)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        hashes.iter().all(|&h| h == reference),
        "{hashes:x?} vs {reference:x}"
    );
    assert_eq!(hash_of(7, TieBreak::Seeded), hash_of(7, TieBreak::Seeded));
}

#[test]
fn determinism_different_seeds_differ() {
    assert_ne!(hash_of(1, TieBreak::Fifo), hash_of(2, TieBreak::Fifo));
}
