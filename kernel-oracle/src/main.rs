//! `kernel-oracle`: run scenarios, exhaustive searches and random campaigns with every
//! decision of the model checked against Linux 7.2's own code (`docs/kernel-oracle.md`).
//!
//! ```text
//! kernel-oracle run S.toml... [--seed N] [--set KEY=VALUE]...
//! kernel-oracle explore S.toml... [--max-interrupts K] [--seed N]
//! kernel-oracle campaign S.toml... [--decisions N]
//! ```
//!
//! Exit codes: 0 no difference, 1 the model and the kernel code differ (each difference
//! printed with both states and what reproduces it), 2 the oracle has no kernel code
//! (built without the source), 3 a scenario did not load.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kernel_oracle::diff::Report;
use kernel_oracle::drive;

#[derive(Parser)]
#[command(
    name = "kernel-oracle",
    about = "Run slicesim with every decision of the model checked against Linux 7.2's own rseq code"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenarios as `slicesim run` does.
    Run {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seed [the scenario's].
        #[arg(long)]
        seed: Option<u64>,
        /// Override a scenario key, as `slicesim run --set`.
        #[arg(long = "set")]
        sets: Vec<String>,
    },
    /// The explorer's exhaustive search of each scenario, every schedule checked.
    Explore {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Most injections per run [the scenario's, else 2].
        #[arg(long)]
        max_interrupts: Option<u32>,
        /// Seed [the scenario's].
        #[arg(long)]
        seed: Option<u64>,
    },
    /// A random campaign over the scenarios until this many decisions were checked.
    Campaign {
        /// Scenario files (round robin).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Decisions to check.
        #[arg(long, default_value_t = 1_000_000)]
        decisions: u64,
    },
}

fn load(path: &std::path::Path, sets: &[String]) -> Result<slicesim::scenario::Loaded> {
    slicesim::scenario::load(path, sets).with_context(|| format!("loading {}", path.display()))
}

fn summary(what: &str, r: &Report, secs: f64) {
    println!(
        "{what}: {} decisions checked, {} skipped, {} differences ({secs:.1} s)",
        r.total_checked(),
        r.total_skipped(),
        r.difference_count
    );
    for (site, n) in &r.checked {
        println!("  {site:<22} {n}");
    }
    for (why, n) in &r.skipped {
        println!("  skipped: {why}: {n}");
    }
    for d in &r.differences {
        println!("\n{d}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = kernel_oracle::available() {
        eprintln!("kernel-oracle: {e}");
        return ExitCode::from(2);
    }
    match go(cli.command) {
        Ok(r) if r.difference_count == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("kernel-oracle: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn go(cmd: Cmd) -> Result<Report> {
    let started = std::time::Instant::now();
    let mut total = Report::default();
    match cmd {
        Cmd::Run {
            scenarios,
            seed,
            sets,
        } => {
            for p in &scenarios {
                let l = load(p, &sets)?;
                let r = drive::run_scenario(&l, seed)?;
                println!(
                    "{}: {} decisions checked, {} differences",
                    p.display(),
                    r.total_checked(),
                    r.difference_count
                );
                total.merge(&r);
            }
        }
        Cmd::Explore {
            scenarios,
            max_interrupts,
            seed,
        } => {
            let mut schedules = 0;
            for p in &scenarios {
                let l = load(p, &[])?;
                let setup = slicesim::explore::Setup::new(&l, &[], max_interrupts)?;
                let seed = seed.unwrap_or(l.scenario.scenario.seed);
                let n = drive::exhaustive(&l, &setup, seed, &mut total)?;
                println!("{}: {n} schedules at K = {}", p.display(), setup.max_k);
                schedules += n;
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{schedules} schedules, {:.0} schedules/s",
                schedules as f64 / secs.max(1e-9)
            );
        }
        Cmd::Campaign {
            scenarios,
            decisions,
        } => {
            let loaded = scenarios
                .iter()
                .map(|p| load(p, &[]))
                .collect::<Result<Vec<_>>>()?;
            let runs = drive::campaign(&loaded, decisions, &mut total)?;
            println!("{runs} runs");
        }
    }
    summary("total", &total, started.elapsed().as_secs_f64());
    Ok(total)
}
