//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use rseq_abi::programs::selftest::{
    selftest_main, selftest_noise, SelftestCounters, SelftestParams,
};
use rseq_abi::{CpuSet, SharedWord};
use rseq_sim::{SimConfig, Simulation, TaskSpec};

pub const RUN: SharedWord = SharedWord(0);

/// The kernel selftest on a 2-CPU machine: main pins itself to CPU 1, the noise thread is
/// a thread of the same process with the same single-CPU affinity (as pthread_create gives).
pub fn selftest_sim(cfg: SimConfig, params: SelftestParams) -> Simulation {
    let mut sim = Simulation::new(cfg).expect("valid config");
    sim.set_shared_word(RUN, 1);
    let main = sim.spawn(
        TaskSpec::new("slice_test"),
        Box::new(move |p| match selftest_main(p, &params, RUN) {
            Ok(c) => c.counters(),
            Err(e) => panic!("setup failed: {e}"),
        }),
    );
    let mut noise = TaskSpec::new("noise");
    noise.affinity = Some(CpuSet::single(1));
    noise.thread_of = Some(main);
    noise.start_ns = 10_000;
    sim.spawn(
        noise,
        Box::new(move |p| vec![("bursts", selftest_noise(p, &params, RUN) as i64)]),
    );
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
