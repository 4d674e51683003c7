//! Explorer throughput: `cargo bench --bench explore`.
//!
//! Schedules explored per second by the exhaustive search on the canonical critical-section
//! flow (`scenarios/races/yield-after-revoke.toml`: register, enable, request, 2 us section,
//! release, all seven injection kinds) with K = 2 and K = 3, on one worker and on two.
//! A plain binary like the engine bench; each line reads
//! `bench explore-kK-jJ: S schedules in W s, R schedules/s`.

use std::path::Path;
use std::time::Instant;

use slicesim::explore::{self, Setup};
use slicesim::scenario;

fn main() {
    let l = scenario::load(Path::new("scenarios/races/yield-after-revoke.toml"), &[])
        .expect("bundled scenario");
    for k in [2, 3] {
        let setup = Setup::new(&l, &[], Some(k)).expect("setup");
        let mut rates = Vec::new();
        for jobs in [1, 2] {
            // Warm up (stacks, allocator), then repeat the whole search for >= 2 s.
            explore::exhaustive(&l, &setup, 0, jobs).expect("explore");
            let t0 = Instant::now();
            let mut schedules = 0;
            while t0.elapsed().as_secs_f64() < 2.0 {
                schedules += explore::exhaustive(&l, &setup, 0, jobs)
                    .expect("explore")
                    .runs;
            }
            let wall = t0.elapsed().as_secs_f64();
            let rate = schedules as f64 / wall;
            rates.push(rate);
            println!(
                "bench explore-k{k}-j{jobs}: {schedules} schedules in {wall:.2} s, {rate:.0} schedules/s"
            );
        }
        println!(
            "bench explore-k{k}: two workers / one = {:.2}x",
            rates[1] / rates[0]
        );
    }
}
