//! `slicesim`: the command line of the rseq time slice extension simulator.
//!
//! `slicesim selftest` runs the kernel selftest (`slice_test.c`) workload on the simulated
//! machine and prints its counters in the selftest's own format, plus the kernel's
//! `rseq/stats` counters. `slicesim abi` prints the ABI this build mirrors.

use std::io::Write;
use std::path::PathBuf;

mod commands;
mod explore_cli;
mod outputs;

use anyhow::{bail, Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand, ValueEnum};
use rseq_abi::programs::selftest::SelftestParams;
use rseq_abi::{Revision, SharedWord};
use rseq_sim::{Preempt, SimConfig, Simulation};
use slicesim::export::{self, Format, TraceInput};

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
    Selftest(SelftestArgs),
    /// Print the ABI mirrored by this build: layout, constants, syscall numbers.
    #[command(after_help = "Example:\n  slicesim abi")]
    Abi,
    /// Run one scenario file and print its statistics, task outcomes and expectations.
    Run(commands::RunArgs),
    /// Run every scenario under the given paths against its expectations, in parallel.
    Check(commands::CheckArgs),
    /// List the built-in programs and the bundled scenarios.
    #[command(after_help = "Example:\n  slicesim list")]
    List,
    /// Run a scenario and tell what happened, event by event, naming the kernel rule that
    /// decided each step.
    #[command(
        after_help = "Examples:\n  slicesim explain scenarios/grant-revoke-race.toml\n  slicesim explain scenarios/edge/grant-then-expiry.toml --seed 2\n  slicesim explain scenarios/grant-revoke-race.toml --brief"
    )]
    Explain(commands::ExplainArgs),
    /// Walk through a scenario one event at a time (Enter: next event, g: next
    /// grant/revoke, n N, c: to the end, q: quit).
    #[command(
        after_help = "Examples:\n  slicesim step scenarios/grant-revoke-race.toml\n  printf 'g\\ng\\nq\\n' | slicesim step scenarios/grant-revoke-race.toml"
    )]
    Step(commands::RunArgs),
    /// Run a scenario over the cross product of --vary values × seeds, in parallel.
    #[command(
        after_help = "Examples:\n  slicesim sweep scenarios/selftest/n2_2_50.toml --vary machine.slice_ext_nsec=5000,10000,20000,50000 --seeds 8 --out sweep\n  slicesim sweep S.toml --vary machine.preempt=full,lazy --seeds 4 --shard 0/3 --out part0\n\nWrites OUT.runs.csv (one row per run), OUT.summary.csv (mean, stddev and 95% CI across seeds) and OUT.json (for merge); without --out prints the summary. Rows do not depend on --jobs; Ctrl-C keeps the finished rows."
    )]
    Sweep(commands::SweepArgs),
    /// Run the same workload under two configurations across seeds and compare every
    /// metric (means, difference, Welch's t-test).
    #[command(
        after_help = "Examples:\n  slicesim compare scenarios/workloads/spinlock-ext.toml --b machine.slice_ext_boot=false --seeds 8\n  slicesim compare A.toml B.toml --seeds 8\n  slicesim compare S.toml --a machine.revision=v1 --b machine.revision=merged --seeds 8"
    )]
    Compare(commands::CompareArgs),
    /// Combine sweep shards (their .json files) into the table one run gives.
    #[command(
        after_help = "Example:\n  slicesim merge part0.json part1.json part2.json --out sweep"
    )]
    Merge(commands::MergeArgs),
    /// Run a scenario and print only the kernel's debugfs `rseq/stats`.
    #[command(
        after_help = "Examples:\n  slicesim stats scenarios/selftest/n2_2_50.toml\n  slicesim stats scenarios/grant-revoke-race.toml --set machine.preempt=lazy"
    )]
    Stats(commands::RunArgs),
    /// Search a scenario's interrupt timings: exhaustively (every placement of up to K
    /// injected events) or at random (swarm, PCT); check invariants, decide verdicts, and
    /// shrink counterexamples to replayable schedules.
    Explore(explore_cli::ExploreArgs),
    /// Print the JSON schema of the scenario format.
    #[command(after_help = "Example:\n  slicesim schema > scenario.schema.json")]
    Schema,
    /// Hold the simulator to a real kernel: run the fidelity probes in the simulator with
    /// the boot options a VM run used and compare them with its console output.
    #[command(
        after_help = "Examples:\n  cargo run -p slicesim-vm -- run --preempt full\n  slicesim kernel-diff target/vm/full.console\n  slicesim kernel-diff tests/fixtures/vm-7.2.13/lazy-debug.console --out table.md\n\nExit codes: 0 agree, 1 a discrete result differs, 4 no complete frame in the file. See docs/fidelity.md."
    )]
    KernelDiff(commands::KernelDiffArgs),
}

#[derive(clap::Args)]
struct SelftestArgs {
    /// Selftest variant.
    #[arg(long, default_value = "n2_2_50", value_parser = ["n2_2_50", "n50_2_50", "n2_2_50_no_yield"])]
    variant: String,
    /// Simulated run time of the main loop, seconds (the selftest uses 5).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seed of the simulation's random generator.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Protocol revision the simulated kernel implements.
    #[arg(long, value_enum, default_value_t = RevArg::Linux72)]
    revision: RevArg,
    /// Preemption model.
    #[arg(long, value_enum, default_value_t = PreemptArg::Full)]
    preempt: PreemptArg,
    /// debugfs rseq/slice_ext_nsec (V1: the sysctl), ns.
    #[arg(long)]
    slice_ext_nsec: Option<u32>,
    /// Turn on rseq_debug (syscall-entry consistency checks).
    #[arg(long)]
    debug: bool,
    #[command(flatten)]
    trace: TraceArgs,
}

/// `--trace FILE [--format F]`, shared by every command that runs a simulation.
#[derive(clap::Args)]
pub struct TraceArgs {
    /// Write the event log (one line per kernel decision) to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// Format of the --trace file: text (a timeline with a lane per CPU), jsonl (one JSON
    /// object per event), chrome (chrome://tracing JSON), perfetto (protobuf for the
    /// Perfetto UI), ftrace (trace-cmd report text). See docs/trace-formats.md.
    #[arg(
        long,
        default_value = "text",
        requires = "trace",
        value_parser = PossibleValuesParser::new(Format::ALL.map(Format::name))
            .map(|s| s.parse::<Format>().expect("a listed format")),
    )]
    pub format: Format,
}

/// Render a finished simulation's trace per `t` into its staged file in `out` (prepared
/// before the run); returns the note that says where it went.
pub fn write_trace_quietly(
    sim: &Simulation,
    workload: String,
    t: &TraceArgs,
    out: &mut outputs::Outputs,
) -> Result<Option<String>> {
    let Some(path) = &t.trace else {
        return Ok(None);
    };
    let input = TraceInput::from_simulation(sim).with_workload(workload);
    let bytes = export::render(t.format, &input)
        .with_context(|| format!("rendering the {} trace", t.format))?;
    out.write(path, &bytes)?;
    Ok(Some(format!(
        "trace: {} events in {} ({})",
        sim.log().len(),
        path.display(),
        t.format
    )))
}

#[derive(Clone, Copy, ValueEnum)]
enum RevArg {
    /// The first posting.
    V1,
    /// Linux 7.0 (alias `merged`).
    #[value(name = "7.0", alias = "merged")]
    Linux70,
    /// Linux 7.2 (alias `post-merge`).
    #[value(name = "7.2", alias = "post-merge")]
    Linux72,
}

#[derive(Clone, Copy, ValueEnum)]
enum PreemptArg {
    None,
    Voluntary,
    Full,
    Lazy,
    Rt,
}

fn main() {
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
    let code = match dispatch(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            commands::io_error_code()
        }
    };
    std::process::exit(code);
}

fn dispatch(c: Command) -> Result<i32> {
    match c {
        Command::Selftest(a) => selftest(a).map(|_| 0),
        Command::Abi => {
            print_abi();
            Ok(0)
        }
        Command::Run(a) => commands::run(a),
        Command::Check(a) => commands::check(a),
        Command::Stats(a) => commands::stats(a),
        Command::Sweep(a) => commands::sweep(a),
        Command::Merge(a) => commands::merge(a),
        Command::Compare(a) => commands::compare(a),
        Command::KernelDiff(a) => commands::kernel_diff(a),
        Command::Step(a) => commands::step(a),
        Command::Explain(a) => commands::explain(a),
        Command::Explore(a) => explore_cli::explore(a),
        Command::List => commands::list(std::path::Path::new("scenarios")).map(|_| 0),
        Command::Schema => {
            println!("{}", slicesim::scenario::json_schema());
            Ok(0)
        }
    }
}

fn selftest(a: SelftestArgs) -> Result<()> {
    if !(a.seconds > 0.0 && a.seconds <= 3600.0) {
        bail!("--seconds {} must be in (0, 3600]", a.seconds);
    }
    let mut params = SelftestParams::variant(&a.variant).expect("clap checked the variant");
    params.total_ns = (a.seconds * 1e9) as u64;
    let cfg = SimConfig {
        revision: match a.revision {
            RevArg::V1 => Revision::V1,
            RevArg::Linux70 => Revision::Merged,
            RevArg::Linux72 => Revision::PostMerge,
        },
        preempt: match a.preempt {
            PreemptArg::None => Preempt::None,
            PreemptArg::Voluntary => Preempt::Voluntary,
            PreemptArg::Full => Preempt::Full,
            PreemptArg::Lazy => Preempt::Lazy,
            PreemptArg::Rt => Preempt::Rt,
        },
        seed: a.seed,
        slice_ext_nsec: a.slice_ext_nsec,
        rseq_debug: a.debug,
        log: a.trace.trace.is_some(),
        log_user_accesses: a.trace.trace.is_some(),
        ..SimConfig::default()
    };
    let mut out = outputs::Outputs::prepare(a.trace.trace.as_deref())?;
    let mut sim = Simulation::new(cfg).context("building the simulation")?;
    let main = rseq_sim::spawn_selftest(
        &mut sim,
        ("slice_test", "noise"),
        params,
        SharedWord(0),
        None,
    )
    .main;
    // The loop ends after total_ns; give teardown a generous margin.
    sim.run_until(params.total_ns + 100_000_000);

    let note = write_trace_quietly(&sim, format!("selftest {}", a.variant), &a.trace, &mut out)?;
    out.commit()?;
    println!(
        "# slice_ext.{} (simulated, revision {}, seed {})",
        a.variant,
        sim.config().revision.name(),
        a.seed
    );
    for t in sim.tasks() {
        if let Some(e) = &t.exit {
            if *e != rseq_sim::TaskExit::Exited {
                println!("# task {} ({}): {e}", t.id, t.name);
            }
        }
    }
    let c = &sim.tasks()[main as usize].counters;
    if let Some(counters) = commands::selftest_counters(c) {
        print!("{counters}");
        if let Err(e) = counters.check_invariants(params.no_yield) {
            println!("# invariant violated: {e}");
        }
    }
    println!("# rseq/stats:");
    for line in sim.stats_debugfs().lines() {
        println!("# {line}");
    }
    if let Some(note) = note {
        println!("# {note}");
    }
    Ok(())
}

/// Write a file whole: a temporary file beside it, then an atomic rename.
fn write_whole(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path.file_name().context("trace path has no file name")?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn print_abi() {
    use rseq_abi::consts::*;
    use rseq_abi::layout::offset;
    println!(
        "struct rseq: size {} align {}",
        std::mem::size_of::<rseq_abi::layout::Rseq>(),
        std::mem::align_of::<rseq_abi::layout::Rseq>()
    );
    for (n, o) in [
        ("cpu_id_start", offset::CPU_ID_START),
        ("cpu_id", offset::CPU_ID),
        ("rseq_cs", offset::RSEQ_CS),
        ("flags", offset::FLAGS),
        ("node_id", offset::NODE_ID),
        ("mm_cid", offset::MM_CID),
        ("slice_ctrl.request", offset::REQUEST),
        ("slice_ctrl.granted", offset::GRANTED),
        ("slice_ctrl.__reserved", offset::RESERVED),
    ] {
        println!("  {o:>2} {n}");
    }
    println!("RSEQ_FLAG_SLICE_EXT_DEFAULT_ON = {RSEQ_FLAG_SLICE_EXT_DEFAULT_ON:#x}");
    println!("RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE = {RSEQ_CS_FLAG_SLICE_EXT_AVAILABLE:#x}, ENABLED = {RSEQ_CS_FLAG_SLICE_EXT_ENABLED:#x}");
    println!("PR_RSEQ_SLICE_EXTENSION = {PR_RSEQ_SLICE_EXTENSION} (GET {PR_RSEQ_SLICE_EXTENSION_GET}, SET {PR_RSEQ_SLICE_EXTENSION_SET}, ENABLE {PR_RSEQ_SLICE_EXT_ENABLE:#x})");
    println!(
        "__NR_rseq_slice_yield = {} (V1: {}, alpha: {})",
        nr::RSEQ_SLICE_YIELD,
        nr::V1_RSEQ_SLICE_YIELD,
        nr::ALPHA_RSEQ_SLICE_YIELD
    );
    println!("slice_ext_nsec: default {SLICE_EXT_NSEC_DEFAULT}, range [{SLICE_EXT_NSEC_MIN}, {SLICE_EXT_NSEC_MAX}] (V1 sysctl: {V1_SLICE_EXT_NSEC_DEFAULT}, [{V1_SLICE_EXT_NSEC_MIN}, {V1_SLICE_EXT_NSEC_MAX}])");
    println!(
        "ENOTSUPP = {} (not ENOTSUP = {})",
        errno::ENOTSUPP,
        errno::ENOTSUP
    );
}
