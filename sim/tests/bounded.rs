//! Time must pass, and a run cut into chunks is the run in one go (issue 15).

mod common;

use rseq_abi::programs::{Counters, SelftestParams};
use rseq_abi::{Marker, Platform, SharedWord};
use rseq_sim::*;

use common::*;

#[test]
fn a_zero_cost_spin_is_stopped_as_a_livelock_and_the_others_go_on() {
    let cfg = SimConfig {
        shared_access_ns: 0,
        cpus: 2,
        ..cfg1()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    sim.spawn(
        TaskSpec::new("spin"),
        prog(|p| loop {
            let _ = p.shared_load(SharedWord(0));
        }),
    );
    sim.spawn(
        TaskSpec::new("worker"),
        prog(|p| {
            p.burn(50_000);
            vec![]
        }),
    );
    sim.run_until(1_000_000);
    match &sim.tasks()[0].exit {
        Some(TaskExit::Livelock { ops, op, .. }) => {
            assert_eq!(*ops, sim.config().max_ops_per_instant + 1);
            assert_eq!(op, "shared load of word 0");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(sim.tasks()[1].exit, Some(TaskExit::Exited));
    assert_eq!(sim.now(), 1_000_000);
}

/// Each way an operation can take no time is counted: rseq-area accesses when
/// `mem_access_ns = 0` (counted by the engine only then, so the hot path pays nothing), and
/// kernel entries when `syscall_ns = 0`.
#[test]
fn zero_cost_memory_and_syscall_loops_are_stopped_as_livelocks() {
    type Body = fn(&mut SimPlatform<'_>) -> Counters;
    let cases: [(&str, SimConfig, Body, &str); 2] = [
        (
            "load",
            SimConfig {
                mem_access_ns: 0,
                ..cfg1()
            },
            |p| loop {
                let _ = p.load_u8(0);
            },
            "load of 1 bytes at rseq+0",
        ),
        (
            "getpid",
            SimConfig {
                syscall_ns: 0,
                ..cfg1()
            },
            |p| loop {
                let _ = p.syscall(rseq_abi::Syscall::Getpid);
            },
            "syscall Getpid",
        ),
    ];
    for (name, cfg, body, what) in cases {
        let mut sim = Simulation::new(cfg).unwrap();
        sim.spawn(TaskSpec::new(name), Box::new(body));
        sim.run_until(1_000_000);
        match &sim.tasks()[0].exit {
            Some(TaskExit::Livelock { ops, op, .. }) => {
                assert_eq!(*ops, sim.config().max_ops_per_instant + 1, "{name}");
                assert_eq!(op, what, "{name}");
            }
            e => panic!("{name}: {e:?}"),
        }
    }
}

#[test]
fn a_marker_loop_comes_back_to_the_engine_and_is_stopped() {
    for log in [true, false] {
        let cfg = SimConfig { log, ..cfg1() };
        let mut sim = Simulation::new(cfg).unwrap();
        sim.spawn(
            TaskSpec::new("marks"),
            prog(|p| loop {
                p.mark(Marker::CsEnter);
                p.burn(0);
            }),
        );
        sim.run_until(100_000);
        assert!(
            matches!(sim.tasks()[0].exit, Some(TaskExit::Livelock { .. })),
            "log {log}: {:?}",
            sim.tasks()[0].exit
        );
    }
}

#[test]
fn a_run_in_chunks_with_the_log_drained_is_the_run_in_one_go() {
    let params = SelftestParams {
        total_ns: 20_000_000,
        ..SelftestParams::N2_2_50
    };
    // With the tick on (a tickless CPU running alone can make all its operations inside
    // one event: chunks count events, so they cannot cut it).
    let mut whole = selftest_sim(SimConfig::default(), params);
    whole.run_until(25_000_000);
    let mut cut = selftest_sim(SimConfig::default(), params);
    let mut log = Vec::new();
    let mut most = 0;
    while !cut.run_chunk(25_000_000, 1000) {
        most = most.max(cut.log().len());
        log.extend(cut.drain_log());
    }
    log.extend(cut.drain_log());
    assert_eq!(rseq_sim::trace::log_hash(&log), whole.log_hash());
    assert_eq!(cut.stats(), whole.stats());
    assert_eq!(cut.events_processed(), whole.events_processed());
    assert!(
        most < log.len() / 10,
        "held {most} of {}, {} events",
        log.len(),
        whole.events_processed()
    );
}
