//! The `slicesim` command line as a library: [`main_with`] runs every subcommand with a
//! registry of programs, so a crate that registers its own programs gets a command-line
//! tool whose scenario files name them. The `slicesim` binary is
//! `main_with(Programs::builtin())`.
//!
//! One module per subcommand; [`common`](self) holds what they share (the run options,
//! loading a scenario with its exit code, running it or replaying a schedule), and
//! `outputs` the all-or-nothing writer every output file goes through.
//!
//! Exit codes (stable, for CI): 0 everything held; 1 an expectation failed; 2 bad command
//! line (clap); 3 a scenario file is invalid; 4 an I/O or engine error; 5 a budget stopped
//! the run.

mod abi;
mod check;
mod common;
mod compare;
mod explain;
mod explore;
mod kernel_diff;
mod list;
mod merge;
mod outputs;
mod run;
mod selftest;
mod stats;
mod step;
mod sweep;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Exit code: an expectation failed.
pub const EXIT_EXPECTATION: i32 = 1;
/// Exit code: a scenario file is invalid.
pub const EXIT_INVALID: i32 = 3;
/// Exit code: an I/O or engine error.
pub const EXIT_ERROR: i32 = 4;
/// Exit code: a run was stopped by a budget (`crate::budget`).
pub const EXIT_BUDGET: i32 = 5;

#[derive(Parser)]
#[command(
    name = "slicesim",
    version,
    about = "Deterministic simulator of the Linux rseq time slice extension"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the kernel selftest workload (main thread + noise thread on one CPU).
    #[command(
        after_help = "Examples:\n  slicesim selftest\n  slicesim selftest --variant n50_2_50 --seconds 1\n  slicesim selftest --revision v1 --preempt lazy --trace run.log\n  slicesim selftest --seconds 0.01 --trace run.pftrace --format perfetto"
    )]
    Selftest(selftest::SelftestArgs),
    /// Print the ABI mirrored by this build: layout, constants, syscall numbers.
    #[command(after_help = "Example:\n  slicesim abi")]
    Abi,
    /// Run one scenario file and print its statistics, task outcomes and expectations.
    Run(common::RunArgs),
    /// Run every scenario under the given paths against its expectations, in parallel.
    Check(check::CheckArgs),
    /// List the built-in programs and the bundled scenarios.
    #[command(after_help = "Example:\n  slicesim list")]
    List,
    /// Run a scenario and tell what happened, event by event, naming the kernel rule that
    /// decided each step.
    #[command(
        after_help = "Examples:\n  slicesim explain scenarios/grant-revoke-race.toml\n  slicesim explain scenarios/edge/grant-then-expiry.toml --seed 2\n  slicesim explain scenarios/grant-revoke-race.toml --brief"
    )]
    Explain(explain::ExplainArgs),
    /// Walk through a scenario one event at a time (Enter: next event, g: next
    /// grant/revoke, n N, c: to the end, q: quit).
    #[command(
        after_help = "Examples:\n  slicesim step scenarios/grant-revoke-race.toml\n  printf 'g\\ng\\nq\\n' | slicesim step scenarios/grant-revoke-race.toml"
    )]
    Step(common::RunArgs),
    /// Run a scenario over the cross product of --vary values × seeds, in parallel.
    #[command(
        after_help = "Examples:\n  slicesim sweep scenarios/selftest/n2_2_50.toml --vary machine.slice_ext_nsec=5000,10000,20000,50000 --seeds 8 --out sweep\n  slicesim sweep S.toml --vary machine.preempt=full,lazy --seeds 4 --shard 0/3 --out part0\n\nWrites OUT.runs.csv (one row per run), OUT.summary.csv (mean, stddev and 95% CI across seeds) and OUT.json (for merge); without --out prints the summary. Rows do not depend on --jobs; Ctrl-C keeps the finished rows."
    )]
    Sweep(sweep::SweepArgs),
    /// Run the same workload under two configurations across seeds and compare every
    /// metric (means, difference, Welch's t-test).
    #[command(
        after_help = "Examples:\n  slicesim compare scenarios/workloads/spinlock-ext.toml --b machine.slice_ext_boot=false --seeds 8\n  slicesim compare A.toml B.toml --seeds 8\n  slicesim compare S.toml --a machine.revision=v1 --b machine.revision=merged --seeds 8"
    )]
    Compare(compare::CompareArgs),
    /// Combine sweep shards (their .json files) into the table one run gives.
    #[command(
        after_help = "Example:\n  slicesim merge part0.json part1.json part2.json --out sweep"
    )]
    Merge(merge::MergeArgs),
    /// Run a scenario and print only the kernel's debugfs `rseq/stats`.
    #[command(
        after_help = "Examples:\n  slicesim stats scenarios/selftest/n2_2_50.toml\n  slicesim stats scenarios/grant-revoke-race.toml --set machine.preempt=lazy"
    )]
    Stats(common::RunArgs),
    /// Search a scenario's interrupt timings: exhaustively (every placement of up to K
    /// injected events) or at random (swarm, PCT); check invariants, decide verdicts, and
    /// shrink counterexamples to replayable schedules.
    Explore(explore::ExploreArgs),
    /// Print the JSON schema of the scenario format.
    #[command(after_help = "Example:\n  slicesim schema > scenario.schema.json")]
    Schema,
    /// Hold the simulator to a real kernel: run the fidelity probes in the simulator with
    /// the boot options a VM run used and compare them with its console output.
    #[command(
        after_help = "Examples:\n  cargo run -p slicesim-vm -- run --preempt full\n  slicesim kernel-diff target/vm/full.console\n  slicesim kernel-diff tests/fixtures/vm-7.2.13/lazy-debug.console --out table.md\n\nExit codes: 0 agree, 1 a discrete result differs, 4 no complete frame in the file. See docs/fidelity.md."
    )]
    KernelDiff(kernel_diff::KernelDiffArgs),
}

/// Run the command line (`std::env::args`) with `programs` and exit with its code: the whole
/// of the `slicesim` binary, and of a user crate's own tool.
///
/// ```no_run
/// use rseq_abi::Platform;
/// use slicesim::programs::Programs;
///
/// fn main() {
///     // `program = "spin_once"` in this tool's scenario files.
///     slicesim::cli::main_with(Programs::builtin().with_fn("spin_once", |p| p.burn(1_000)))
/// }
/// ```
pub fn main_with(programs: crate::programs::Programs) -> ! {
    // A program that panics inside a simulation is reported as that task's fault; one line
    // on stderr is enough (SLICESIM_BACKTRACE=1 restores Rust's default hook).
    if std::env::var_os("SLICESIM_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|info| {
            // `slicesim run ... | head`: the reader left; like a tool killed by SIGPIPE,
            // stop quietly (every command prints with println!, which panics on EPIPE).
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map_or("", String::as_str);
            if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
                std::process::exit(0);
            }
            eprintln!("panic: {info}");
        }));
    }
    // Engine debugging through `tracing`, off unless RUST_LOG asks (e.g. RUST_LOG=rseq_sim=trace).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let code = match dispatch(Cli::parse().command, &programs) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_ERROR
        }
    };
    std::process::exit(code);
}

fn dispatch(c: Command, programs: &crate::programs::Programs) -> Result<i32> {
    match c {
        Command::Selftest(a) => selftest::selftest(a),
        Command::Abi => {
            abi::print_abi();
            Ok(0)
        }
        Command::Run(a) => run::run(a, programs),
        Command::Check(a) => check::check(a, programs),
        Command::Stats(a) => stats::stats(a, programs),
        Command::Sweep(a) => sweep::sweep(a, programs),
        Command::Merge(a) => merge::merge(a),
        Command::Compare(a) => compare::compare(a, programs),
        Command::KernelDiff(a) => kernel_diff::kernel_diff(a),
        Command::Step(a) => step::step(a, programs),
        Command::Explain(a) => explain::explain(a, programs),
        Command::Explore(a) => explore::explore(a, programs),
        Command::List => list::list(std::path::Path::new("scenarios"), programs).map(|_| 0),
        Command::Schema => {
            println!("{}", crate::scenario::json_schema_with(programs));
            Ok(0)
        }
    }
}
