//! The `rseq-abi` program library run on the engine: misbehaving clients get the kernel's
//! reaction of spec §7/§11 with its recorded cause; the spin lock keeps mutual exclusion
//! with and without the extension.

mod common;

use rseq_abi::programs::misbehave::{self, MisbehaveParams, Misbehavior};
use rseq_abi::programs::spinlock::{spinlock_main, SpinlockParams};
use rseq_abi::{Revision, SharedWord};
use rseq_sim::*;

/// One CPU with reschedule-carrying device interrupts at 50 kHz: many grant opportunities.
fn run_misbehave(m: Misbehavior, revision: Revision, rseq_debug: bool) -> Simulation {
    let cfg = SimConfig {
        revision,
        rseq_debug,
        cpus: 1,
        seed: 1,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    sim.spawn(
        TaskSpec::new(m.name()),
        Box::new(move |p| misbehave::run(p, m, &MisbehaveParams::DEFAULT).counters()),
    );
    common::poisson_resched(&mut sim, 0, 50_000.0);
    sim.run_until(50_000_000);
    sim
}

fn exit(sim: &Simulation) -> TaskExit {
    sim.tasks()[0].exit.clone().expect("the program ended")
}

fn c(sim: &Simulation, name: &str) -> i64 {
    common::counter(sim, 0, name)
}

#[test]
fn never_yields_is_cut_off_by_the_enforcement_timer() {
    for rev in [Revision::Merged, Revision::V1] {
        let sim = run_misbehave(Misbehavior::NeverYields, rev, false);
        assert_eq!(exit(&sim), TaskExit::Exited, "overstaying is not fatal");
        let s = sim.stats();
        assert!(
            s.granted > 0 && s.expired > 0 && s.revoked == s.granted,
            "{rev:?} {s:?}"
        );
        assert_eq!(
            c(&sim, "overstay_revoked"),
            c(&sim, "granted_seen"),
            "every grant was taken back"
        );
        let max = c(&sim, "overstay_ns_max") as u64;
        let limit = sim.slice_ext_nsec() as u64 + 2 * sim.config().irq_latency_ns + 1_000;
        assert!(
            max <= limit,
            "{rev:?}: overstayed {max} ns > extension + latency {limit}"
        );
    }
}

#[test]
fn syscall_in_grant_aborts_merged_and_is_fatal_in_v1() {
    let sim = run_misbehave(Misbehavior::SyscallInGrant, Revision::Merged, false);
    assert_eq!(exit(&sim), TaskExit::Exited);
    assert!(sim.stats().aborted > 0);
    assert_eq!(sim.stats().aborted as i64, c(&sim, "granted_seen"));
    let sim = run_misbehave(Misbehavior::SyscallInGrant, Revision::V1, false);
    assert_eq!(
        exit(&sim),
        TaskExit::Signaled {
            signo: 11,
            cause: Some(FaultCause::V1SyscallInGrant { nr: 39 })
        }
    );
}

#[test]
fn request_while_granted_is_caught_only_in_debug_mode() {
    let sim = run_misbehave(Misbehavior::RequestWhileGranted, Revision::Merged, false);
    assert_eq!(
        exit(&sim),
        TaskExit::Exited,
        "request=1 is not checked without rseq_debug"
    );
    let sim = run_misbehave(Misbehavior::RequestWhileGranted, Revision::Merged, true);
    match exit(&sim) {
        TaskExit::Signaled {
            signo: 11,
            cause: Some(FaultCause::DebugWordMismatch { found, expected }),
        } => {
            assert_eq!((found.request(), found.granted()), (1, 1));
            assert_eq!(expected, rseq_abi::CtrlWord::expected(true));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn reserved_bytes_survive_grants_and_fail_the_debug_check() {
    let sim = run_misbehave(Misbehavior::ReservedBytes, Revision::Merged, false);
    assert_eq!(exit(&sim), TaskExit::Exited);
    assert!(sim.stats().granted > 0);
    assert_eq!(
        c(&sim, "reserved_wiped"),
        0,
        "the grant write preserves __reserved"
    );
    let sim = run_misbehave(Misbehavior::ReservedBytes, Revision::Merged, true);
    assert!(matches!(
        exit(&sim),
        TaskExit::Signaled {
            signo: 11,
            cause: Some(FaultCause::DebugWordMismatch { .. })
        }
    ));
}

#[test]
fn tampered_flags_make_prctl_fatal() {
    for rev in [Revision::Merged, Revision::V1] {
        let sim = run_misbehave(Misbehavior::TampersFlags, rev, false);
        assert!(
            matches!(
                exit(&sim),
                TaskExit::Signaled {
                    signo: 11,
                    cause: Some(FaultCause::PrctlFlags { .. })
                }
            ),
            "{rev:?}: {:?}",
            exit(&sim)
        );
    }
}

#[test]
fn writes_granted_is_only_checked_while_the_syscall_work_bit_is_set() {
    // Every grant here ends with a yield, which clears the work bit; a user-written
    // granted byte afterwards meets no check (spec §7 item 3: "with the slice work bit set").
    let sim = run_misbehave(Misbehavior::WritesGranted, Revision::Merged, true);
    assert_eq!(exit(&sim), TaskExit::Exited);
    assert!(c(&sim, "misdeeds") > 0);
}

fn spinlock_run(use_ext: bool) -> Simulation {
    let cfg = SimConfig {
        cpus: 2,
        seed: 3,
        log: false,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    let params = SpinlockParams {
        use_ext,
        run_ns: 20_000_000,
        ..SpinlockParams::DEFAULT
    };
    for i in 0..4 {
        let mut spec = TaskSpec::new(format!("locker{i}"));
        spec.affinity = Some(rseq_abi::CpuSet::single(i % 2));
        sim.spawn(
            spec,
            Box::new(move |p| spinlock_main(p, &params).counters()),
        );
    }
    for cpu in 0..2 {
        sim.add_irq_source(IrqSource::new(
            cpu,
            IrqKind::Device(ReschedReq::Full),
            IrqPattern::Poisson {
                rate_hz: 20_000.0,
                start_ns: 0,
                end_ns: u64::MAX,
            },
        ));
    }
    sim.run_until(40_000_000);
    sim
}

#[test]
fn spinlock_keeps_mutual_exclusion_with_and_without_the_extension() {
    for use_ext in [false, true] {
        let sim = spinlock_run(use_ext);
        assert!(sim.all_exited());
        let total: i64 = (0..4)
            .map(|t| common::counter(&sim, t, "acquisitions"))
            .sum();
        assert!(total > 1000, "{total}");
        assert_eq!(
            i64::from(sim.shared_word(SharedWord(1))),
            total,
            "use_ext={use_ext}"
        );
        if use_ext {
            assert!(sim.stats().granted > 0);
        } else {
            assert_eq!(sim.stats().granted, 0);
        }
    }
}
