//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use rseq_abi::programs::selftest::{SelftestCounters, SelftestParams};
use rseq_abi::protocol;
use rseq_abi::SharedWord;
use rseq_sim::*;

pub const RUN: SharedWord = SharedWord(0);

/// The kernel selftest on the configured machine, via `rseq_sim::spawn_selftest`.
pub fn selftest_sim(cfg: SimConfig, params: SelftestParams) -> Simulation {
    let mut sim = Simulation::new(cfg).expect("valid config");
    spawn_selftest(&mut sim, ("slice_test", "noise"), params, RUN, None);
    sim
}

pub fn counters_of(sim: &Simulation, task: u32) -> SelftestCounters {
    let c = &sim.tasks()[task as usize].counters;
    let get = |n: &str| {
        c.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| *v as u64)
            .unwrap_or_else(|| panic!("no counter {n}: {c:?}"))
    };
    SelftestCounters {
        total: get("total"),
        success: get("success"),
        yielded: get("yielded"),
        aborted: get("aborted"),
        scheduled: get("scheduled"),
        raced: get("raced"),
    }
}

// ---- helpers for scripted rule tests ----

pub const US: u64 = 1_000;

/// One CPU, no tick, exact sleeps, log on: every interrupt is one the test injects. The
/// spec's rules are those of Linux 7.0 as merged, so the rule tests run that revision (the
/// default is 7.2; where 7.2's source differs, `linux72.rs` tests it).
///
/// The rule tests stage their situations with the CFS model, whose woken task preempts
/// as soon as it is behind by `wakeup_gran`: under EEVDF a wakeup preempts only while the
/// woken task is owed service, which `eevdf.rs` tests. The rseq rules do not depend on
/// which task the scheduler picks, only on whether a switch happened.
pub fn cfg1() -> SimConfig {
    SimConfig {
        fair_class: FairClass::Cfs,
        revision: rseq_abi::Revision::Merged,
        cpus: 1,
        hz: 0,
        load_balance: false,
        timer_slack_ns: 0,
        timer_jitter_ns: 0,
        ..SimConfig::default()
    }
}

pub fn prog(
    f: impl for<'y> FnOnce(&mut SimPlatform<'y>) -> Vec<(&'static str, i64)> + 'static,
) -> SimProgram {
    Box::new(f)
}

/// Register and enable via prctl; panics (= task fault) if that fails.
pub fn enable(p: &mut SimPlatform<'_>) {
    protocol::register(p, 0).expect("register");
    protocol::slice_ext_set(p, true).expect("enable");
}

pub fn counter(sim: &Simulation, task: u32, name: &str) -> i64 {
    let t = &sim.tasks()[task as usize];
    t.counters
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| {
            panic!(
                "task {task} has no counter {name}: {:?} exit={:?}",
                t.counters, t.exit
            )
        })
}

pub fn kinds(sim: &Simulation) -> Vec<String> {
    sim.log()
        .iter()
        .filter(|r| !matches!(r.kind, LogKind::UserLoad { .. } | LogKind::UserStore { .. }))
        .map(|r| r.kind.to_string())
        .collect()
}

pub fn has(sim: &Simulation, needle: &str) -> bool {
    kinds(sim).iter().any(|k| k.contains(needle))
}

pub fn count(sim: &Simulation, needle: &str) -> usize {
    kinds(sim).iter().filter(|k| k.contains(needle)).count()
}

pub fn revokes(sim: &Simulation) -> Vec<(RevokePath, bool)> {
    sim.log()
        .iter()
        .filter_map(|r| match r.kind {
            LogKind::Revoke {
                path, was_granted, ..
            } => Some((path, was_granted)),
            _ => None,
        })
        .collect()
}

/// Device interrupts that ask for a reschedule on `cpu`, Poisson at `rate_hz`, forever.
pub fn poisson_resched(sim: &mut Simulation, cpu: u32, rate_hz: f64) {
    sim.add_irq_source(IrqSource::new(
        cpu,
        IrqKind::Device(ReschedReq::Full),
        IrqPattern::Poisson {
            rate_hz,
            start_ns: 0,
            end_ns: u64::MAX,
        },
    ));
}
