//! Ready-made workloads built from the `rseq-abi` program library.

use rseq_abi::programs::selftest::{selftest_main, selftest_noise, SelftestParams};
use rseq_abi::{CpuSet, SharedWord};

use crate::sim::{Simulation, TaskSpec};

/// The two tasks of the kernel selftest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelftestTasks {
    /// The main thread (`slice_test`): its counters are the selftest's six.
    pub main: u32,
    /// The noise thread: its counter `bursts`.
    pub noise: u32,
}

/// Spawn `slice_test.c`'s two threads (spec §9) sharing the `run` word (set to 1 here).
///
/// The main thread runs `FIXTURE_SETUP` itself: it pins itself to the first allowed CPU
/// other than 0, registers and enables, then loops; a setup failure panics, which the
/// simulator reports as that task's fault. The noise thread is a thread of the same
/// process, started 10 µs later (after the setup, like `pthread_create` there) on the
/// main thread's CPU: CPU 1, or `cpu` when both are pinned there, or CPU 0 on a one-CPU
/// machine.
pub fn spawn_selftest(
    sim: &mut Simulation,
    names: (&str, &str),
    params: SelftestParams,
    run: SharedWord,
    cpu: Option<usize>,
) -> SelftestTasks {
    sim.set_shared_word(run, 1);
    let mut spec = TaskSpec::new(names.0);
    spec.affinity = cpu.map(CpuSet::single);
    let main = sim.spawn(
        spec,
        Box::new(move |p| match selftest_main(p, &params, run) {
            Ok(c) => c.counters(),
            Err(e) => panic!("selftest setup failed: {e}"),
        }),
    );
    let noise_cpu = cpu.unwrap_or(if sim.config().cpus > 1 { 1 } else { 0 });
    let mut spec = TaskSpec::new(names.1);
    spec.affinity = Some(CpuSet::single(noise_cpu));
    spec.thread_of = Some(main);
    spec.start_ns = 10_000;
    let noise = sim.spawn(
        spec,
        Box::new(move |p| vec![("bursts", selftest_noise(p, &params, run) as i64)]),
    );
    SelftestTasks { main, noise }
}
