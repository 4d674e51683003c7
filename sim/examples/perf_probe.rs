use rseq_abi::programs::selftest::{selftest_main, selftest_noise, SelftestParams};
use rseq_abi::{CpuSet, SharedWord};
use rseq_sim::{SimConfig, Simulation, TaskSpec};
fn main() {
    let params = SelftestParams::N2_2_50;
    let cfg = SimConfig {
        log: false,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    let run = SharedWord(0);
    sim.set_shared_word(run, 1);
    let main = sim.spawn(
        TaskSpec::new("main"),
        Box::new(move |p| selftest_main(p, &params, run).unwrap().counters()),
    );
    let mut n = TaskSpec::new("noise");
    n.affinity = Some(CpuSet::single(1));
    n.thread_of = Some(main);
    sim.spawn(
        n,
        Box::new(move |p| vec![("b", selftest_noise(p, &params, run) as i64)]),
    );
    let t = std::time::Instant::now();
    sim.run_until(6_000_000_000);
    let el = t.elapsed().as_secs_f64();
    println!(
        "wall {el:.3}s events {} -> {:.2} M events/s",
        sim.events_processed(),
        sim.events_processed() as f64 / el / 1e6
    );
    println!("{:?}\n{}", sim.tasks()[0].counters, sim.stats_debugfs());
}
