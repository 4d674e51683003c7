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
//! - `harness-vs-cli`: the one-section flow written as a Rust closure in a
//!   `slicesim::harness::Model`, explored by `Model::try_explore`, against the scenario file
//!   explored as `slicesim explore` does (`explore::exhaustive` on the loaded file), at
//!   K = 2 and K = 3 on one worker, in alternating rounds so both see the same machine load;
//!   and the harness running the file's own `script` program, to hold the user code equal.
//!
//! A plain binary like the engine bench; each line reads
//! `bench explore-NAME-kK-jJ: S schedules in W s (N per search), R schedules/s`.
//! `BENCH_ONLY=cli|cli-no-conditions|harness|harness-script BENCH_SEARCHES=N` runs only N searches of one side at K = 3
//! (for `valgrind --tool=callgrind`, whose instruction counts ignore the machine's load).

use std::path::Path;
use std::time::Instant;

use rseq_abi::protocol::{self, SliceExt};
use rseq_abi::Platform;
use slicesim::explore::{self, Setup};
use slicesim::harness::{Explore, Model, SimPlatform};
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

/// The one-section flow of `yield-after-revoke.toml`, step for step, as user code.
fn one_section(p: &mut SimPlatform<'_>) {
    protocol::register(p, 0).expect("registers");
    protocol::slice_ext_set(p, true).expect("enables");
    p.burn(1_000);
    let ext = SliceExt::assume_enabled(p.revision());
    ext.request(p);
    p.burn(2_000);
    ext.release(p);
    p.burn(1_000);
}

/// The same machine as the scenario file (the harness's defaults: one CPU, no tick, no
/// timer slack or jitter), 20 us.
fn model() -> Model {
    Model::new()
        .name("yield-after-revoke")
        .duration_ns(20_000)
        .spawn("holder", one_section)
}

/// The ways of running the same search.
#[derive(Clone, Copy)]
enum Side {
    /// The scenario file, as `slicesim explore --exhaustive` runs it (with its three
    /// `[[explore.condition]]`s judged on every run).
    Cli,
    /// The same without judging the conditions (a harness model has none): the same work
    /// as the harness's.
    CliNoConditions,
    /// A harness model whose task is the flow as a Rust closure.
    Harness,
    /// A harness model whose task is the file's own `script` program, step for step: the
    /// harness's own cost, with the user code held equal.
    HarnessScript,
}

impl Side {
    const ALL: [Side; 4] = [
        Side::Cli,
        Side::CliNoConditions,
        Side::Harness,
        Side::HarnessScript,
    ];

    fn name(self) -> &'static str {
        match self {
            Side::Cli => "cli",
            Side::CliNoConditions => "cli-no-conditions",
            Side::Harness => "harness",
            Side::HarnessScript => "harness-script",
        }
    }
}

/// One search; returns the schedules it made.
fn search(l: &Loaded, k: u32, side: Side) -> u64 {
    let model = match side {
        Side::Cli | Side::CliNoConditions => {
            // What `slicesim explore --exhaustive` does between loading the file and printing.
            let mut setup = Setup::new(l, &[], Some(k)).expect("setup");
            if matches!(side, Side::CliNoConditions) {
                setup.conditions.clear();
            }
            return explore::exhaustive(l, &setup, 0, 1).expect("explore").runs;
        }
        Side::Harness => model(),
        Side::HarnessScript => Model::new()
            .name("yield-after-revoke")
            .duration_ns(20_000)
            .builtin(
                "holder",
                "script",
                r#"steps = ["register", "enable", "burn 1us", "request", "burn 2us", "release", "burn 1us"]"#,
            ),
    };
    model
        .try_explore(Explore::exhaustive(k).jobs(1))
        .expect("no violation")
        .runs
}

/// Alternating rounds of about 0.3 s per side, 4 rounds each.
fn harness_vs_cli(l: &Loaded, k: u32) {
    let (mut t, mut n) = ([0.0f64; 4], [0u64; 4]);
    let per: Vec<u64> = Side::ALL.iter().map(|&s| search(l, k, s)).collect();
    for _round in 0..4 {
        for (i, &side) in Side::ALL.iter().enumerate() {
            let t0 = Instant::now();
            while t0.elapsed().as_secs_f64() < 0.3 {
                n[i] += search(l, k, side);
            }
            t[i] += t0.elapsed().as_secs_f64();
        }
    }
    let rate: Vec<f64> = (0..4).map(|i| n[i] as f64 / t[i]).collect();
    for (i, side) in Side::ALL.iter().enumerate() {
        println!(
            "bench harness-vs-cli-k{k}-j1 {}: {} schedules/search, {:.0} schedules/s, {:.3}x cli",
            side.name(),
            per[i],
            rate[i],
            rate[i] / rate[0]
        );
    }
}

fn main() {
    let path = Path::new("scenarios/races/yield-after-revoke.toml");
    let one = scenario::load(path, &[]).expect("bundled scenario");
    if let Ok(side) = std::env::var("BENCH_ONLY") {
        let searches: u64 = std::env::var("BENCH_SEARCHES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(20);
        let which = Side::ALL
            .into_iter()
            .find(|s| s.name() == side)
            .expect("BENCH_ONLY=cli|cli-no-conditions|harness|harness-script");
        let runs: u64 = (0..searches).map(|_| search(&one, 3, which)).sum();
        println!("bench {side}-k3: {runs} schedules in {searches} searches");
        return;
    }
    harness_vs_cli(&one, 2);
    harness_vs_cli(&one, 3);
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
