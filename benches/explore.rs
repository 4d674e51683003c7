//! Explorer throughput: `cargo bench --bench explore`.
//!
//! Schedules explored per second by the exhaustive search, on one worker and on two, on
//! the canonical critical-section flow (spec 8.1: register, enable, request, a 2 us
//! section, release; `scenarios/races/yield-after-revoke.toml`, every injection kind):
//! - `one-section`: that flow once; K = 2 is 257 schedules, a search of well under a
//!   millisecond, and K = 3;
//! - `four-sections`: the flow four times in a row, as the selftest loops it; K = 2 and
//!   K = 3 (55,788 schedules, a search of a tenth of a second).
//!
//! Every search starts its own worker threads, which costs a fraction of a millisecond:
//! that fixed cost is most of a small search's time on two workers.
//!
//! A plain binary like the engine bench; each line reads
//! `bench explore-NAME-kK-jJ: S schedules in W s (N per search), R schedules/s`.

use std::path::Path;
use std::time::Instant;

use slicesim::explore::{self, Setup};
use slicesim::scenario::{self, Loaded};

fn bench(name: &str, l: &Loaded, k: u32) {
    let setup = Setup::new(l, &[], Some(k)).expect("setup");
    let mut rates = Vec::new();
    for jobs in [1, 2] {
        // Warm up (stacks, allocator), then repeat the whole search for >= 2 s.
        let per = explore::exhaustive(l, &setup, 0, jobs)
            .expect("explore")
            .runs;
        let t0 = Instant::now();
        let mut schedules = 0;
        while t0.elapsed().as_secs_f64() < 2.0 {
            schedules += explore::exhaustive(l, &setup, 0, jobs)
                .expect("explore")
                .runs;
        }
        let wall = t0.elapsed().as_secs_f64();
        let rate = schedules as f64 / wall;
        rates.push(rate);
        println!(
            "bench explore-{name}-k{k}-j{jobs}: {schedules} schedules in {wall:.2} s ({per} per search), {rate:.0} schedules/s"
        );
    }
    println!(
        "bench explore-{name}-k{k}: two workers / one = {:.2}x",
        rates[1] / rates[0]
    );
}

fn main() {
    let path = Path::new("scenarios/races/yield-after-revoke.toml");
    let one = scenario::load(path, &[]).expect("bundled scenario");
    bench("one-section", &one, 2);
    bench("one-section", &one, 3);
    let source = std::fs::read_to_string(path).expect("bundled scenario").replace(
        r#"steps = ["register", "enable", "burn 1us", "request", "burn 2us", "release", "burn 1us"]"#,
        r#"steps = ["register", "enable", "loop 4", "burn 1us", "request", "burn 2us", "release", "end", "burn 1us"]"#,
    );
    assert!(
        source.contains("loop 4"),
        "the bundled scenario's steps changed"
    );
    let four = scenario::parse(path, &source, &[]).expect("four sections");
    bench("four-sections", &four, 2);
    bench("four-sections", &four, 3);
}
