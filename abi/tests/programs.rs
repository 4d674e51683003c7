//! The program library against the scripted fake platform: the selftest port (spec §9), the
//! spin lock (spec §8) and the misbehaving clients (spec §7, §11).

mod support;

use rseq_abi::consts::*;
use rseq_abi::programs::misbehave::{self, RESERVED_JUNK};
use rseq_abi::programs::selftest::{self, SelftestSetupError};
use rseq_abi::programs::spinlock::{self, SpinlockCounters};
use rseq_abi::programs::{
    MisbehaveParams, Misbehavior, OutcomeCounts, SelftestCounters, SelftestParams, SpinlockParams,
    WaitMode,
};
use rseq_abi::protocol::SetupError;
use rseq_abi::{
    CpuSet, CtrlWord, EnableMode, Endian, Errno, Revision, SharedWord, SliceExt, SliceOutcome,
};
use support::{Action, FakePlatform, Violation};

fn counter(c: &[(&'static str, i64)], name: &str) -> i64 {
    c.iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no counter {name}"))
        .1
}

// =============================================================================================
// selftest (spec §9)
// =============================================================================================

/// One iteration: 200 ns sections, loop ends after 300 ns (the fake clock moves 100 ns a read).
const ONE: SelftestParams = SelftestParams {
    total_ns: 300,
    slice_ns: 200,
    noise_ns: 200,
    sleep_ns: 50_000,
    no_yield: false,
};

// Merged call indexes of one iteration: 0 clock(start), 1 clock(ts_cs), 2 st8 request, 3-4
// clock (spin), 5 ld8 request, then 6.. depending on the path.

fn selftest_one(p: &mut FakePlatform, params: &SelftestParams) -> SelftestCounters {
    let c = selftest::selftest_loop(p, params);
    assert_eq!(
        p.pending_actions(),
        0,
        "script not applied: {:?}",
        p.trace()
    );
    c.check_invariants(params.no_yield).unwrap();
    c
}

#[test]
fn selftest_iteration_makes_the_c_tests_calls_in_order() {
    let mut p = FakePlatform::merged();
    let c = selftest_one(&mut p, &ONE);
    assert_eq!(
        p.trace(),
        [
            "clock -> 0",
            "clock -> 100",
            "st8 request <- 1",
            "clock -> 200",
            "clock -> 300",
            "ld8 request -> 1",
            "st8 request <- 0",
            "ld8 granted -> 0",
            "clock -> 400"
        ]
    );
    assert_eq!(
        c,
        SelftestCounters {
            total: 1,
            success: 1,
            ..Default::default()
        }
    );
}

#[test]
fn selftest_v1_iteration_uses_u32_store_and_test_and_clear() {
    let mut p = FakePlatform::v1();
    let c = selftest_one(&mut p, &ONE);
    assert_eq!(
        p.trace(),
        [
            "clock -> 0",
            "clock -> 100",
            "st32 ctrl <- 0x1",
            "clock -> 200",
            "clock -> 300",
            "btr ctrl bit0 -> true",
            "clock -> 400"
        ]
    );
    assert_eq!((c.total, c.success), (1, 1));
}

#[test]
fn selftest_late_grant_after_request_read_undoes_success_and_yields() {
    let mut p = FakePlatform::merged();
    p.at(6, Action::Grant);
    let c = selftest_one(&mut p, &ONE);
    assert_eq!(
        p.trace()[5..9],
        [
            "ld8 request -> 1",
            "st8 request <- 0",
            "ld8 granted -> 1",
            "rseq_slice_yield -> Ok(1)"
        ]
    );
    assert_eq!(
        c,
        SelftestCounters {
            total: 1,
            yielded: 1,
            ..Default::default()
        }
    );
}

#[test]
fn selftest_grant_in_section_is_yielded_without_storing_request() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant);
    let c = selftest_one(&mut p, &ONE);
    assert_eq!(
        p.trace()[5..8],
        [
            "ld8 request -> 0",
            "ld8 granted -> 1",
            "rseq_slice_yield -> Ok(1)"
        ]
    );
    assert_eq!(
        c,
        SelftestCounters {
            total: 1,
            yielded: 1,
            ..Default::default()
        }
    );
}

#[test]
fn selftest_yield_returning_0_counts_raced() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant).at(7, Action::Revoke);
    let c = selftest_one(&mut p, &ONE);
    assert_eq!(p.trace()[7], "rseq_slice_yield -> Ok(0)");
    assert_eq!(
        c,
        SelftestCounters {
            total: 1,
            yielded: 1,
            raced: 1,
            ..Default::default()
        }
    );
}

#[test]
fn selftest_failing_yield_is_not_a_race() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant)
        .results("rseq_slice_yield", [Err(Errno::ENOSYS)]);
    let c = selftest_one(&mut p, &ONE);
    assert_eq!((c.yielded, c.raced), (1, 0));
}

#[test]
fn selftest_no_yield_leaves_grant_with_getpid_and_counts_aborted() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant);
    let params = SelftestParams {
        no_yield: true,
        ..ONE
    };
    let c = selftest_one(&mut p, &params);
    assert_eq!(p.trace()[7], "getpid -> Ok(0)");
    assert_eq!(p.grant_ending_syscalls, ["getpid"]);
    assert_eq!(
        c,
        SelftestCounters {
            total: 1,
            aborted: 1,
            ..Default::default()
        }
    );
}

#[test]
fn selftest_consumed_request_without_grant_counts_scheduled() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Revoke);
    let c = selftest_one(&mut p, &ONE);
    assert_eq!(p.trace()[5..7], ["ld8 request -> 0", "ld8 granted -> 0"]);
    assert!(p.syscalls().is_empty());
    assert_eq!(
        c,
        SelftestCounters {
            total: 1,
            scheduled: 1,
            ..Default::default()
        }
    );
}

#[test]
fn selftest_v1_grant_yields_and_consumed_is_scheduled() {
    // V1 indexes: 5 btr, 6 ld32, 7 syscall.
    let mut p = FakePlatform::v1();
    p.at(3, Action::Grant).at(7, Action::Revoke);
    let c = selftest_one(&mut p, &ONE);
    assert_eq!(
        p.trace()[5..8],
        [
            "btr ctrl bit0 -> false",
            "ld32 ctrl -> 0x2",
            "rseq_slice_yield -> Ok(0)"
        ]
    );
    assert_eq!(
        c,
        SelftestCounters {
            total: 1,
            yielded: 1,
            raced: 1,
            ..Default::default()
        }
    );

    let mut p = FakePlatform::v1();
    p.at(3, Action::Revoke);
    let c = selftest_one(&mut p, &ONE);
    assert_eq!(
        c,
        SelftestCounters {
            total: 1,
            scheduled: 1,
            ..Default::default()
        }
    );
}

#[test]
fn selftest_loop_checks_total_time_at_the_bottom_of_each_iteration() {
    // Each iteration reads the clock 4 times (400 ns); the end check of iteration k reads
    // 400k, so 10 µs take exactly 25 iterations.
    let mut p = FakePlatform::merged();
    let params = SelftestParams {
        total_ns: 10_000,
        ..ONE
    };
    let c = selftest::selftest_loop(&mut p, &params);
    assert_eq!(c.total, 25);
    assert_eq!(c.success, 25);
    // Even a zero-length run makes one iteration (do ... while).
    let mut p = FakePlatform::merged();
    let c = selftest::selftest_loop(&mut p, &SelftestParams { total_ns: 0, ..ONE });
    assert_eq!(c.total, 1);
}

#[test]
fn selftest_display_is_byte_exact_tap_comments_with_12_wide_values() {
    let c = SelftestCounters {
        total: 1_491_847,
        success: 1_491_820,
        yielded: 123_792,
        aborted: 0,
        scheduled: 27,
        raced: 5,
    };
    let expected = "# Total          1491847\n\
                    # Success        1491820\n\
                    # Yielded         123792\n\
                    # Aborted              0\n\
                    # Scheduled           27\n\
                    # Raced                5\n";
    assert_eq!(c.to_string(), expected);
    for line in c.to_string().lines() {
        assert_eq!(line.len(), 2 + 10 + 12, "{line:?}");
    }
}

#[test]
fn selftest_counters_are_named_in_print_order() {
    let c = SelftestCounters {
        total: 6,
        success: 1,
        yielded: 2,
        aborted: 0,
        scheduled: 3,
        raced: 1,
    };
    assert_eq!(
        c.counters(),
        [
            ("total", 6),
            ("success", 1),
            ("yielded", 2),
            ("aborted", 0),
            ("scheduled", 3),
            ("raced", 1)
        ]
    );
}

#[test]
fn selftest_invariant_sum_equals_total_is_checked() {
    let c = SelftestCounters {
        total: 3,
        success: 1,
        scheduled: 1,
        ..Default::default()
    };
    let e = c.check_invariants(false).unwrap_err();
    assert!(e.contains("!= total 3"), "{e}");
}

#[test]
fn selftest_invariant_raced_at_most_yielded_is_checked() {
    let c = SelftestCounters {
        total: 1,
        yielded: 1,
        raced: 2,
        ..Default::default()
    };
    assert!(c
        .check_invariants(false)
        .unwrap_err()
        .contains("raced 2 > yielded 1"));
}

#[test]
fn selftest_invariant_no_aborts_without_no_yield_is_checked() {
    let c = SelftestCounters {
        total: 1,
        aborted: 1,
        ..Default::default()
    };
    assert!(c.check_invariants(false).unwrap_err().contains("aborted"));
    assert_eq!(c.check_invariants(true), Ok(()));
}

#[test]
fn selftest_invariant_no_yields_with_no_yield_is_checked() {
    let c = SelftestCounters {
        total: 1,
        yielded: 1,
        ..Default::default()
    };
    assert!(c.check_invariants(true).unwrap_err().contains("yielded"));
    assert_eq!(c.check_invariants(false), Ok(()));
}

#[test]
fn selftest_variants_match_spec_table() {
    let v = SelftestParams::variant("n2_2_50").unwrap();
    assert_eq!(
        (v.total_ns, v.slice_ns, v.noise_ns, v.sleep_ns, v.no_yield),
        (5_000_000_000, 2_000, 2_000, 50_000, false)
    );
    assert_eq!(
        SelftestParams::variant("n50_2_50").unwrap().slice_ns,
        50_000
    );
    assert!(
        SelftestParams::variant("n2_2_50_no_yield")
            .unwrap()
            .no_yield
    );
    assert_eq!(SelftestParams::variant("n2_2_51"), None);
}

#[test]
fn selftest_setup_pins_to_first_cpu_at_least_1_then_registers_and_enables() {
    let mut p = FakePlatform::merged();
    let mut mask = CpuSet::empty();
    for cpu in [0, 3, 5] {
        mask.insert(cpu);
    }
    p.affinity = Ok(mask);
    assert_eq!(selftest::selftest_setup(&mut p), Ok(Some(3)));
    assert_eq!(
        p.trace(),
        [
            "sched_getaffinity -> {0, 3, 5}",
            "sched_setaffinity({3}) -> Ok(0)",
            "rseq(flags=0x0) -> Ok(0)",
            "prctl(79, 2, 1, 0, 0) -> Ok(0)"
        ]
    );
}

#[test]
fn selftest_setup_does_not_pin_when_only_cpu_0_is_allowed() {
    let mut p = FakePlatform::merged();
    p.affinity = Ok(CpuSet::single(0));
    assert_eq!(selftest::selftest_setup(&mut p), Ok(None));
    assert_eq!(
        p.trace()[..2],
        ["sched_getaffinity -> {0}", "rseq(flags=0x0) -> Ok(0)"]
    );
}

#[test]
fn selftest_setup_reports_each_failing_step() {
    let mut p = FakePlatform::merged();
    p.affinity = Err(Errno::EINVAL);
    assert_eq!(
        selftest::selftest_setup(&mut p),
        Err(SelftestSetupError::GetAffinity(Errno::EINVAL))
    );

    let mut p = FakePlatform::merged();
    p.results("sched_setaffinity", [Err(Errno::EINVAL)]);
    assert_eq!(
        selftest::selftest_setup(&mut p),
        Err(SelftestSetupError::SetAffinity(Errno::EINVAL))
    );

    let mut p = FakePlatform::merged();
    p.results("rseq", [Err(Errno::EPERM)]);
    assert_eq!(
        selftest::selftest_setup(&mut p),
        Err(SelftestSetupError::Setup(SetupError::Register(
            Errno::EPERM
        )))
    );

    let mut p = FakePlatform::merged();
    p.results("prctl", [Err(Errno::ENOTSUPP)]);
    assert_eq!(
        selftest::selftest_setup(&mut p),
        Err(SelftestSetupError::Setup(SetupError::Enable(
            Errno::ENOTSUPP
        )))
    );
}

#[test]
fn selftest_main_clears_run_after_the_loop_and_after_a_failed_setup() {
    let run = SharedWord(7);
    let mut p = FakePlatform::merged();
    p.shared.insert(run, 1);
    let c = selftest::selftest_main(&mut p, &ONE, run).unwrap();
    assert_eq!(c.total, 1);
    assert_eq!(p.trace().last().unwrap(), "store w7 <- 0");

    let mut p = FakePlatform::merged();
    p.shared.insert(run, 1);
    p.results("prctl", [Err(Errno::ENOTSUPP)]);
    assert!(selftest::selftest_main(&mut p, &ONE, run).is_err());
    assert_eq!(p.word(run), 0);
}

#[test]
fn selftest_noise_bursts_then_sleeps_while_run_is_set() {
    let run = SharedWord(7);
    let mut p = FakePlatform::merged();
    p.shared.insert(run, 1);
    p.at(5, Action::SetShared(run, 0));
    let bursts = selftest::selftest_noise(&mut p, &ONE, run);
    assert_eq!(bursts, 1);
    assert_eq!(
        p.trace(),
        [
            "load w7 -> 1",
            "clock -> 0",
            "clock -> 100",
            "clock -> 200",
            "clock_nanosleep(50000) -> Ok(0)",
            "load w7 -> 0"
        ]
    );
}

// =============================================================================================
// spin lock (spec §8)
// =============================================================================================

const LOCK: SharedWord = SharedWord(0);
const DATA: SharedWord = SharedWord(1);

fn one_acquisition() -> SpinlockParams {
    SpinlockParams {
        run_ns: u64::MAX,
        max_iterations: 1,
        ..SpinlockParams::DEFAULT
    }
}

fn run_lock(p: &mut FakePlatform, params: &SpinlockParams) -> SpinlockCounters {
    let ext = if params.use_ext {
        SliceExt::assume_enabled(p.revision)
    } else {
        SliceExt::unused(p.revision)
    };
    let c = spinlock::spinlock_loop(p, &ext, params);
    assert_eq!(
        p.pending_actions(),
        0,
        "script not applied: {:?}",
        p.trace()
    );
    c.check_invariants().unwrap();
    c
}

// Uncontended merged indexes: 0 clock, 1 clock, 2 load lock, 3 st8 request, 4 cas, 5 load
// data, 6 burn hold, 7 store data, 8 store lock, 9 ld8 request, 10 st8 request, 11 ld8
// granted, 12 (syscall or think burn).

#[test]
fn spinlock_uncontended_requests_before_cas_and_releases_after_unlock() {
    let mut p = FakePlatform::merged();
    let c = run_lock(&mut p, &one_acquisition());
    assert_eq!(
        p.trace(),
        [
            "clock -> 0",
            "clock -> 100",
            "load w0 -> 0",
            "st8 request <- 1",
            "cas w0 0->1 -> Ok(0)",
            "load w1 -> 0",
            "burn 2000",
            "store w1 <- 1",
            "store w0 <- 0",
            "ld8 request -> 1",
            "st8 request <- 0",
            "ld8 granted -> 0",
            "burn 1000"
        ]
    );
    assert_eq!((c.acquisitions, c.contended, c.spin_iterations), (1, 0, 0));
    assert_eq!(
        c.outcomes,
        OutcomeCounts {
            not_interrupted: 1,
            ..Default::default()
        }
    );
    assert_eq!(p.word(DATA), 1);
}

#[test]
fn spinlock_grant_while_holding_is_yielded_only_after_the_unlock() {
    let mut p = FakePlatform::merged();
    p.at(6, Action::Grant);
    let c = run_lock(&mut p, &one_acquisition());
    let unlock = p.index_of("store w0 <- 0").unwrap();
    let yield_at = p.index_of("rseq_slice_yield").unwrap();
    assert!(unlock < yield_at, "{:?}", p.trace());
    assert_eq!(p.trace()[12], "rseq_slice_yield -> Ok(1)");
    assert_eq!(
        c.outcomes,
        OutcomeCounts {
            yielded: 1,
            yield_returned_1: 1,
            ..Default::default()
        }
    );
}

#[test]
fn spinlock_revoke_before_yield_counts_raced() {
    let mut p = FakePlatform::merged();
    p.at(6, Action::Grant).at(12, Action::Revoke);
    let c = run_lock(&mut p, &one_acquisition());
    assert_eq!(
        c.outcomes,
        OutcomeCounts {
            yielded: 1,
            raced: 1,
            ..Default::default()
        }
    );
}

#[test]
fn spinlock_grant_revoked_while_holding_counts_consumed() {
    let mut p = FakePlatform::merged();
    p.at(6, Action::Grant).at(8, Action::Revoke);
    let c = run_lock(&mut p, &one_acquisition());
    assert_eq!(
        c.outcomes,
        OutcomeCounts {
            consumed: 1,
            ..Default::default()
        }
    );
    assert!(p.syscalls().is_empty());
}

#[test]
fn spinlock_spins_on_a_held_lock_without_requesting() {
    let mut p = FakePlatform::merged();
    p.shared.insert(LOCK, 1);
    p.at(4, Action::SetShared(LOCK, 0));
    let c = run_lock(&mut p, &one_acquisition());
    assert_eq!(
        p.trace()[2..7],
        [
            "load w0 -> 1",
            "load w0 -> 1",
            "load w0 -> 0",
            "st8 request <- 1",
            "cas w0 0->1 -> Ok(0)"
        ]
    );
    assert_eq!(
        (
            c.acquisitions,
            c.contended,
            c.spin_iterations,
            c.cas_failures
        ),
        (1, 1, 2, 0)
    );
}

#[test]
fn spinlock_lost_cas_releases_the_request_and_spins_again() {
    let mut p = FakePlatform::merged();
    // Another CPU takes the lock between our load and our CAS, and drops it later.
    p.at(4, Action::SetShared(LOCK, 1))
        .at(8, Action::SetShared(LOCK, 0));
    let c = run_lock(&mut p, &one_acquisition());
    assert_eq!(
        p.trace()[2..11],
        [
            "load w0 -> 0",
            "st8 request <- 1",
            "cas w0 0->1 -> Err(1)",
            "ld8 request -> 1",
            "st8 request <- 0",
            "ld8 granted -> 0",
            "load w0 -> 0",
            "st8 request <- 1",
            "cas w0 0->1 -> Ok(0)"
        ]
    );
    assert_eq!((c.acquisitions, c.contended, c.cas_failures), (1, 1, 1));
    assert_eq!(c.outcomes.not_interrupted, 2);
}

#[test]
fn spinlock_without_extension_never_touches_the_control_word() {
    let mut p = FakePlatform::merged();
    let params = SpinlockParams {
        use_ext: false,
        ..one_acquisition()
    };
    let c = spinlock::spinlock_main(&mut p, &params);
    assert_eq!(p.trace()[0], "rseq(flags=0x0) -> Ok(0)");
    assert_eq!(p.syscalls().len(), 1, "registration only, no prctl");
    assert!(
        p.trace()
            .iter()
            .all(|l| !l.contains("request") && !l.contains("granted")),
        "{:?}",
        p.trace()
    );
    assert!(!c.ext_active);
    assert_eq!(c.outcomes, OutcomeCounts::default());
    assert_eq!(c.acquisitions, 1);
    c.check_invariants().unwrap();
}

#[test]
fn spinlock_main_with_extension_enables_via_prctl() {
    let mut p = FakePlatform::merged();
    let c = spinlock::spinlock_main(&mut p, &one_acquisition());
    assert_eq!(
        p.trace()[..2],
        ["rseq(flags=0x0) -> Ok(0)", "prctl(79, 2, 1, 0, 0) -> Ok(0)"]
    );
    assert!(c.ext_active);
    assert_eq!(c.setup_error, None);
}

#[test]
fn spinlock_main_reports_setup_failure_and_runs_without_extension() {
    let mut p = FakePlatform::merged();
    p.results("prctl", [Err(Errno::ENOTSUPP)]);
    let c = spinlock::spinlock_main(&mut p, &one_acquisition());
    assert_eq!(c.setup_error, Some(SetupError::Enable(Errno::ENOTSUPP)));
    assert!(!c.ext_active);
    assert_eq!(c.acquisitions, 1);
}

#[test]
fn spinlock_v1_requests_with_u32_store_and_releases_with_test_and_clear() {
    let mut p = FakePlatform::v1();
    run_lock(&mut p, &one_acquisition());
    assert_eq!(p.trace()[3], "st32 ctrl <- 0x1");
    assert_eq!(p.trace()[9], "btr ctrl bit0 -> true");
}

#[test]
fn spinlock_futex_sleeps_marks_contended_and_wakes_after_release() {
    let mut p = FakePlatform::merged();
    p.shared.insert(LOCK, 1);
    p.at(5, Action::SetShared(LOCK, 0));
    let params = SpinlockParams {
        wait: WaitMode::Futex {
            spins_before_sleep: 0,
        },
        ..one_acquisition()
    };
    let c = run_lock(&mut p, &params);
    assert_eq!(
        p.trace()[2..],
        [
            "load w0 -> 1",
            "cas w0 1->2 -> Ok(1)",
            "futex_wait(w0, 2) -> Ok(0)",
            "load w0 -> 0",
            "st8 request <- 1",
            "cas w0 0->2 -> Ok(0)",
            "load w1 -> 0",
            "burn 2000",
            "store w1 <- 1",
            "cas w0 1->0 -> Err(2)",
            "store w0 <- 0",
            "ld8 request -> 1",
            "st8 request <- 0",
            "ld8 granted -> 0",
            "futex_wake(w0, 1) -> Ok(0)",
            "burn 1000"
        ]
    );
    assert_eq!(
        (c.futex_waits, c.futex_wakes, c.spin_iterations, c.contended),
        (1, 1, 1, 1)
    );
}

#[test]
fn spinlock_futex_wake_comes_after_yield_so_no_syscall_ends_a_grant_early() {
    let mut p = FakePlatform::merged();
    p.shared.insert(LOCK, 1);
    p.at(5, Action::SetShared(LOCK, 0)).at(9, Action::Grant);
    let params = SpinlockParams {
        wait: WaitMode::Futex {
            spins_before_sleep: 0,
        },
        ..one_acquisition()
    };
    let c = run_lock(&mut p, &params);
    assert_eq!(p.grant_ending_syscalls, ["rseq_slice_yield"]);
    assert!(p.index_of("rseq_slice_yield").unwrap() < p.index_of("futex_wake").unwrap());
    assert_eq!(c.outcomes.yield_returned_1, 1);
}

#[test]
fn spinlock_futex_spins_before_sleeping_and_uncontended_unlock_does_not_wake() {
    let mut p = FakePlatform::merged();
    p.shared.insert(LOCK, 1);
    p.at(5, Action::SetShared(LOCK, 0));
    let params = SpinlockParams {
        wait: WaitMode::Futex {
            spins_before_sleep: 5,
        },
        ..one_acquisition()
    };
    let c = run_lock(&mut p, &params);
    assert_eq!((c.spin_iterations, c.futex_waits, c.futex_wakes), (3, 0, 0));
    assert!(p.index_of("cas w0 1->0 -> Ok(1)").is_some());
}

#[test]
fn spinlock_stops_when_run_time_has_elapsed() {
    // Each iteration: loop-check clock read (100) + hold 2000 + think 1000.
    let mut p = FakePlatform::merged();
    let params = SpinlockParams {
        run_ns: 10_000,
        max_iterations: u64::MAX,
        ..SpinlockParams::DEFAULT
    };
    let c = run_lock(&mut p, &params);
    assert_eq!(c.acquisitions, 4);
    assert_eq!(p.word(DATA), 4);
    assert_eq!(
        p.log.last().map(ToString::to_string).unwrap(),
        "clock -> 12500"
    );
}

#[test]
fn spinlock_max_iterations_stops_without_reading_the_clock_again() {
    let mut p = FakePlatform::merged();
    let params = SpinlockParams {
        max_iterations: 2,
        protected: None,
        think_ns: 0,
        ..one_acquisition()
    };
    let c = run_lock(&mut p, &params);
    assert_eq!(c.acquisitions, 2);
    assert_eq!(p.trace().last().unwrap(), "ld8 granted -> 0");
    assert_eq!(p.indexes_of("clock").len(), 3);
}

#[test]
fn spinlock_counters_list_acquisitions_contention_and_outcomes() {
    let c = SpinlockCounters {
        acquisitions: 3,
        ext_active: true,
        ..Default::default()
    };
    let names: Vec<_> = c.counters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "ext_active",
            "acquisitions",
            "contended",
            "spin_iterations",
            "cas_failures",
            "futex_waits",
            "futex_wakes",
            "not_interrupted",
            "yielded",
            "yield_returned_1",
            "raced",
            "yield_failed",
            "consumed"
        ]
    );
    assert_eq!(counter(&c.counters(), "acquisitions"), 3);
}

#[test]
fn spinlock_invariants_require_one_outcome_per_request() {
    let c = SpinlockCounters {
        ext_active: true,
        acquisitions: 2,
        ..Default::default()
    };
    assert!(c
        .check_invariants()
        .unwrap_err()
        .contains("outcomes 0 != 2"));
    let mut c = SpinlockCounters {
        ext_active: false,
        acquisitions: 1,
        ..Default::default()
    };
    c.outcomes.record(SliceOutcome::NotInterrupted);
    assert!(c.check_invariants().is_err());
}

#[test]
fn outcome_counts_classify_every_outcome() {
    let mut o = OutcomeCounts::default();
    for out in [
        SliceOutcome::Unused,
        SliceOutcome::NotInterrupted,
        SliceOutcome::Yielded(Ok(1)),
        SliceOutcome::Yielded(Ok(0)),
        SliceOutcome::Yielded(Err(Errno::ENOSYS)),
        SliceOutcome::Consumed,
    ] {
        o.record(out);
    }
    assert_eq!(
        o,
        OutcomeCounts {
            not_interrupted: 1,
            yielded: 3,
            yield_returned_1: 1,
            raced: 1,
            yield_failed: 1,
            consumed: 1
        }
    );
    assert_eq!(o.total(), 5);
}

// =============================================================================================
// misbehaving clients (spec §7, §11)
// =============================================================================================

/// One 1 µs section; setup is calls 0 (rseq) and 1 (prctl).
const ONE_SECTION: MisbehaveParams = MisbehaveParams {
    sections: 1,
    section_ns: 1_000,
    poll_ns: 500,
    overstay_limit_ns: 10_000,
    mode: EnableMode::Prctl,
    clock_section: false,
};

// Merged indexes after setup: 2 st8 request, 3 burn, 4 ld8 request, 5 st8 request, 6 ld8
// granted, 7.. the misdeed.

fn misbehave_run(
    p: &mut FakePlatform,
    kind: Misbehavior,
    params: &MisbehaveParams,
) -> rseq_abi::programs::MisbehaveCounters {
    let c = misbehave::run(p, kind, params);
    assert_eq!(c.kind, kind);
    assert_eq!(
        p.pending_actions(),
        0,
        "script not applied: {:?}",
        p.trace()
    );
    c.check_invariants().unwrap();
    c
}

#[test]
fn misbehavior_names_round_trip() {
    for m in Misbehavior::ALL {
        assert_eq!(Misbehavior::from_name(m.name()), Some(m));
    }
    assert_eq!(
        Misbehavior::ALL.map(Misbehavior::name),
        [
            "never_yields",
            "writes_granted",
            "tampers_flags",
            "request_while_granted",
            "syscall_in_grant",
            "reserved_bytes"
        ]
    );
    assert_eq!(Misbehavior::from_name("polite"), None);
}

#[test]
fn every_misbehaving_client_sets_up_through_slice_ext_setup() {
    for m in Misbehavior::ALL {
        let mut p = FakePlatform::merged();
        p.set_flags(RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE | RSEQ_CS_FLAG_SLICE_EXT_ENABLED);
        let c = misbehave_run(&mut p, m, &ONE_SECTION);
        assert_eq!(
            p.trace()[..2],
            ["rseq(flags=0x0) -> Ok(0)", "prctl(79, 2, 1, 0, 0) -> Ok(0)"],
            "{m:?}"
        );
        assert!(c.ext_active);
        assert_eq!(c.sections, 1);
    }
}

#[test]
fn never_yields_ignores_grant_and_keeps_running_until_the_kernel_revokes() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant).at(12, Action::Revoke);
    let c = misbehave_run(&mut p, Misbehavior::NeverYields, &ONE_SECTION);
    assert_eq!(
        p.trace()[4..],
        [
            "ld8 request -> 0",
            "st8 request <- 0",
            "ld8 granted -> 1",
            "clock -> 1000",
            "burn 500",
            "ld8 granted -> 1",
            "clock -> 1600",
            "burn 500",
            "ld8 granted -> 0",
            "clock -> 2200"
        ]
    );
    assert_eq!(p.syscalls().len(), 2, "no syscall besides setup");
    assert_eq!(
        (
            c.granted_seen,
            c.misdeeds,
            c.overstay_revoked,
            c.overstay_at_limit
        ),
        (1, 1, 1, 0)
    );
    assert_eq!((c.overstay_ns_total, c.overstay_ns_max), (1200, 1200));
}

#[test]
fn a_clock_timed_section_polls_the_clock_instead_of_burning() {
    // What the fidelity probes run: the section is a clock-polling spin, as `burn` is on a
    // real kernel, so the simulator's section ends on the same clock as the kernel's.
    let mut p = FakePlatform::merged();
    let params = MisbehaveParams {
        clock_section: true,
        ..ONE_SECTION
    };
    misbehave_run(&mut p, Misbehavior::WritesGranted, &params);
    let trace = &p.trace()[2..];
    assert_eq!(trace[0], "st8 request <- 1");
    assert!(trace.iter().all(|l| !l.starts_with("burn")), "{trace:?}");
    let reads = trace
        .iter()
        .take_while(|l| l.starts_with("clock") || l.starts_with("st8"))
        .count();
    assert!(reads >= 3, "the start and at least one poll: {trace:?}");
    // Without it the section is one burn of CPU time.
    let mut q = FakePlatform::merged();
    misbehave_run(&mut q, Misbehavior::WritesGranted, &ONE_SECTION);
    assert_eq!(q.trace()[3], "burn 1000");
}

#[test]
fn never_yields_gives_up_watching_at_the_overstay_limit() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant);
    let params = MisbehaveParams {
        overstay_limit_ns: 2_000,
        ..ONE_SECTION
    };
    let c = misbehave_run(&mut p, Misbehavior::NeverYields, &params);
    assert_eq!((c.overstay_revoked, c.overstay_at_limit), (0, 1));
    assert_eq!(c.overstay_ns_max, 2_400);
    assert!(p.kernel_granted, "the grant is left outstanding");
}

#[test]
fn never_yields_without_grant_just_classifies() {
    let mut p = FakePlatform::merged();
    let c = misbehave_run(&mut p, Misbehavior::NeverYields, &ONE_SECTION);
    assert_eq!((c.not_interrupted, c.misdeeds), (1, 0));
    assert!(p.index_of("clock").is_none());
}

#[test]
fn never_yields_v1_polls_the_granted_bit() {
    let mut p = FakePlatform::v1();
    p.at(3, Action::Grant).at(9, Action::Revoke);
    let c = misbehave_run(&mut p, Misbehavior::NeverYields, &ONE_SECTION);
    assert_eq!(
        p.trace()[4..10],
        [
            "btr ctrl bit0 -> false",
            "ld32 ctrl -> 0x2",
            "clock -> 1000",
            "burn 500",
            "ld32 ctrl -> 0x2",
            "clock -> 1600"
        ]
    );
    assert_eq!(c.overstay_revoked, 1);
}

#[test]
fn writes_granted_forges_granted_then_yields_then_clears_it() {
    let mut p = FakePlatform::merged();
    let c = misbehave_run(&mut p, Misbehavior::WritesGranted, &ONE_SECTION);
    assert_eq!(
        p.trace()[6..],
        [
            "ld8 granted -> 0",
            "st8 granted <- 1",
            "rseq_slice_yield -> Ok(0)",
            "st8 granted <- 0"
        ]
    );
    assert_eq!(
        (c.misdeeds, c.syscalls, c.syscall_returned_1, c.yields),
        (1, 1, 0, 0)
    );
    assert!(p.violations.is_empty(), "no grant armed: no check at entry");
}

#[test]
fn writes_granted_is_caught_by_the_debug_check_after_a_revoked_grant() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant).at(4, Action::Revoke);
    let c = misbehave_run(&mut p, Misbehavior::WritesGranted, &ONE_SECTION);
    assert_eq!(c.consumed, 1);
    assert_eq!(
        p.violations,
        [Violation::DebugCheck {
            call: 8,
            syscall: "rseq_slice_yield",
            expected: CtrlWord::ZERO,
            actual: CtrlWord::from_bytes([0, 1, 0, 0])
        }]
    );
}

#[test]
fn writes_granted_leaves_a_real_grant_correctly() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant);
    let c = misbehave_run(&mut p, Misbehavior::WritesGranted, &ONE_SECTION);
    assert_eq!(
        (c.granted_seen, c.yields, c.misdeeds, c.raced),
        (1, 1, 0, 0)
    );
    assert_eq!(p.trace()[7], "rseq_slice_yield -> Ok(1)");
    assert!(p.violations.is_empty());
}

#[test]
fn writes_granted_v1_sets_the_granted_bit_in_the_word() {
    let mut p = FakePlatform::v1();
    misbehave_run(&mut p, Misbehavior::WritesGranted, &ONE_SECTION);
    assert_eq!(
        p.trace()[5..],
        [
            "st32 ctrl <- 0x2",
            "rseq_slice_yield -> Ok(0)",
            "st32 ctrl <- 0x0"
        ]
    );
}

#[test]
fn tampers_flags_clears_available_then_changes_state_and_gets_efault() {
    let mut p = FakePlatform::merged();
    p.set_flags(RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE | RSEQ_CS_FLAG_SLICE_EXT_ENABLED);
    p.results("prctl", [Ok(0), Err(Errno::EFAULT)]);
    let c = misbehave_run(&mut p, Misbehavior::TampersFlags, &ONE_SECTION);
    assert_eq!(
        p.trace()[7..],
        [
            "ld32 flags -> 0x30",
            "st32 flags <- 0x20",
            "prctl(79, 2, 0, 0, 0) -> Err(EFAULT)",
            "st32 flags <- 0x30",
            "prctl(79, 2, 1, 0, 0) -> Ok(0)"
        ]
    );
    assert_eq!(
        (c.misdeeds, c.syscalls, c.syscall_errors, c.last_errno),
        (1, 1, 1, 14)
    );
    assert_eq!(
        c.not_interrupted, 1,
        "the section itself follows the protocol"
    );
}

#[test]
fn tampers_flags_asks_to_enable_when_the_extension_is_off() {
    // A SET that matches the current state never reads the flags (spec §2.4 step 4), so the
    // client always asks for the other state.
    let mut p = FakePlatform::merged();
    p.set_flags(RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE);
    let params = MisbehaveParams {
        mode: EnableMode::Off,
        ..ONE_SECTION
    };
    let c = misbehave_run(&mut p, Misbehavior::TampersFlags, &params);
    assert!(!c.ext_active);
    assert_eq!(
        p.trace()[1..],
        [
            "burn 1000",
            "ld32 flags -> 0x10",
            "st32 flags <- 0x0",
            "prctl(79, 2, 1, 0, 0) -> Ok(0)",
            "st32 flags <- 0x10",
            "prctl(79, 2, 0, 0, 0) -> Ok(0)"
        ]
    );
}

#[test]
fn tampers_flags_big_endian_clears_the_right_bit() {
    let mut p = FakePlatform::merged().with_endian(Endian::Big);
    p.set_flags(RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE | RSEQ_CS_FLAG_SLICE_EXT_ENABLED);
    misbehave_run(&mut p, Misbehavior::TampersFlags, &ONE_SECTION);
    assert_eq!(p.trace()[8], "st32 flags <- 0x20");
    assert_eq!(p.bytes[16..20], [0, 0, 0, 0x30], "restored, big-endian");
}

#[test]
fn request_while_granted_sets_request_beside_granted_and_is_caught_at_yield() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant);
    let c = misbehave_run(&mut p, Misbehavior::RequestWhileGranted, &ONE_SECTION);
    assert_eq!(
        p.trace()[6..],
        [
            "ld8 granted -> 1",
            "st8 request <- 1",
            "rseq_slice_yield -> Ok(1)",
            "st8 request <- 0"
        ]
    );
    assert_eq!(
        p.violations,
        [Violation::DebugCheck {
            call: 8,
            syscall: "rseq_slice_yield",
            expected: CtrlWord::expected(true),
            actual: CtrlWord::from_bytes([1, 1, 0, 0])
        }]
    );
    assert_eq!(
        (c.granted_seen, c.misdeeds, c.syscalls, c.syscall_returned_1),
        (1, 1, 1, 1)
    );
}

#[test]
fn request_while_granted_does_nothing_wrong_without_a_grant() {
    let mut p = FakePlatform::merged();
    let c = misbehave_run(&mut p, Misbehavior::RequestWhileGranted, &ONE_SECTION);
    assert_eq!((c.misdeeds, c.syscalls), (0, 0));
    assert_eq!(p.log.len(), 7);
}

#[test]
fn request_while_granted_v1_ors_request_into_the_granted_word() {
    let mut p = FakePlatform::v1();
    p.at(3, Action::Grant);
    misbehave_run(&mut p, Misbehavior::RequestWhileGranted, &ONE_SECTION);
    assert_eq!(
        p.trace()[4..],
        [
            "btr ctrl bit0 -> false",
            "ld32 ctrl -> 0x2",
            "ld32 ctrl -> 0x2",
            "st32 ctrl <- 0x3",
            "rseq_slice_yield -> Ok(1)",
            "btr ctrl bit0 -> false"
        ]
    );
    assert!(matches!(
        p.violations[..],
        [Violation::DebugCheck { call: 8, .. }]
    ));
}

#[test]
fn syscall_in_grant_leaves_with_getpid_which_ends_the_grant_in_merged() {
    let mut p = FakePlatform::merged();
    p.at(3, Action::Grant);
    let c = misbehave_run(&mut p, Misbehavior::SyscallInGrant, &ONE_SECTION);
    assert_eq!(p.trace()[7], "getpid -> Ok(0)");
    assert_eq!(p.grant_ending_syscalls, ["getpid"]);
    assert!(
        p.violations.is_empty(),
        "legal (s_aborted) in the merged protocol"
    );
    assert_eq!((c.granted_seen, c.misdeeds, c.syscalls), (1, 1, 1));
}

#[test]
fn syscall_in_grant_is_fatal_under_v1() {
    let mut p = FakePlatform::v1();
    p.at(3, Action::Grant);
    misbehave_run(&mut p, Misbehavior::SyscallInGrant, &ONE_SECTION);
    assert_eq!(p.trace()[6], "getpid -> Ok(0)");
    assert_eq!(
        p.violations,
        [Violation::V1SyscallInGrant {
            call: 6,
            syscall: "getpid"
        }]
    );
}

#[test]
fn syscall_in_grant_without_grant_makes_no_syscall() {
    let mut p = FakePlatform::merged();
    let c = misbehave_run(
        &mut p,
        Misbehavior::SyscallInGrant,
        &MisbehaveParams {
            sections: 3,
            ..ONE_SECTION
        },
    );
    assert_eq!((c.sections, c.not_interrupted, c.syscalls), (3, 3, 0));
    assert_eq!(p.syscalls().len(), 2);
}

#[test]
fn reserved_bytes_writes_junk_then_requests_and_sees_it_intact() {
    let mut p = FakePlatform::merged();
    let c = misbehave_run(&mut p, Misbehavior::ReservedBytes, &ONE_SECTION);
    assert_eq!(
        p.trace()[2..],
        [
            "st8 rsv0 <- 165",
            "st8 rsv1 <- 90",
            "st8 request <- 1",
            "burn 1000",
            "ld8 rsv0 -> 165",
            "ld8 rsv1 -> 90",
            "ld8 request -> 1",
            "st8 request <- 0",
            "ld8 granted -> 0"
        ]
    );
    assert_eq!(
        (c.reserved_intact, c.reserved_wiped, c.not_interrupted),
        (1, 0, 1)
    );
    assert_eq!(p.ctrl().reserved(), RESERVED_JUNK);
}

#[test]
fn reserved_bytes_survive_the_grant_and_are_caught_at_the_yield() {
    let mut p = FakePlatform::merged();
    p.at(5, Action::Grant);
    let c = misbehave_run(&mut p, Misbehavior::ReservedBytes, &ONE_SECTION);
    assert_eq!((c.reserved_intact, c.granted_seen, c.yields), (1, 1, 1));
    match &p.violations[..] {
        [Violation::DebugCheck { actual, .. }] => assert_eq!(actual.bytes, [0, 1, 0xa5, 0x5a]),
        v => panic!("{v:?}"),
    }
}

#[test]
fn reserved_bytes_are_wiped_by_a_kernel_clear() {
    let mut p = FakePlatform::merged();
    p.at(5, Action::Revoke);
    let c = misbehave_run(&mut p, Misbehavior::ReservedBytes, &ONE_SECTION);
    assert_eq!((c.reserved_intact, c.reserved_wiped, c.consumed), (0, 1, 1));
}

#[test]
fn reserved_bytes_v1_carries_junk_in_the_request_store() {
    let mut p = FakePlatform::v1();
    let c = misbehave_run(&mut p, Misbehavior::ReservedBytes, &ONE_SECTION);
    assert_eq!(
        p.trace()[2..],
        [
            "st32 ctrl <- 0xa55a0001",
            "burn 1000",
            "ld32 ctrl -> 0xa55a0001",
            "btr ctrl bit0 -> true"
        ]
    );
    assert_eq!(c.reserved_intact, 1);
}

#[test]
fn misbehaving_client_with_unusable_extension_touches_no_control_word() {
    let mut p = FakePlatform::merged();
    p.results("prctl", [Err(Errno::ENOTSUPP)]);
    let c = misbehave_run(&mut p, Misbehavior::SyscallInGrant, &ONE_SECTION);
    assert_eq!(c.setup_error, Some(SetupError::Enable(Errno::ENOTSUPP)));
    assert!(!c.ext_active);
    assert_eq!(p.trace()[2..], ["burn 1000"]);
}

#[test]
fn misbehave_counters_have_common_and_kind_specific_names() {
    let mut p = FakePlatform::merged();
    let c = misbehave_run(&mut p, Misbehavior::NeverYields, &ONE_SECTION);
    let names: Vec<_> = c.counters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names[..4],
        ["ext_active", "sections", "not_interrupted", "granted_seen"]
    );
    assert!(names.contains(&"overstay_ns_max"));
    assert!(!names.contains(&"reserved_wiped"));
    assert_eq!(counter(&c.counters(), "sections"), 1);
}

#[test]
fn misbehave_invariants_catch_unclassified_sections() {
    let c = rseq_abi::programs::MisbehaveCounters {
        sections: 2,
        consumed: 1,
        ..Default::default()
    };
    assert!(c.check_invariants().unwrap_err().contains("!= sections 2"));
    let c = rseq_abi::programs::MisbehaveCounters {
        yields: 1,
        raced: 2,
        ..Default::default()
    };
    assert!(c.check_invariants().unwrap_err().contains("raced"));
}

#[test]
fn selftest_runs_with_revision_of_platform_for_all_revisions() {
    for rev in Revision::ALL {
        let mut p = FakePlatform::new(rev);
        let c = selftest_one(&mut p, &ONE);
        assert_eq!(c.success, 1, "{rev:?}");
    }
}
