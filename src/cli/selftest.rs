//! `slicesim selftest`: the kernel selftest (`slice_test.c`) workload on the simulated
//! machine, its counters printed in the selftest's own format, plus `rseq/stats`.

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use rseq_abi::programs::selftest::SelftestParams;
use rseq_abi::{Revision, SharedWord};
use rseq_sim::{Preempt, SimConfig, Simulation};

use super::common::{selftest_counters, write_trace_quietly, TraceArgs};
use super::outputs;

#[derive(clap::Args)]
pub(super) struct SelftestArgs {
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
    /// Run on a machine profile: a bundled name (`default`, `qemu-icount0`, `qemu-icount0-2cpus`) or a profile
    /// file; its cost knobs replace the built-in defaults (docs/scenarios.md).
    #[arg(long, value_name = "NAME|FILE")]
    profile: Option<String>,
    #[command(flatten)]
    trace: TraceArgs,
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

pub(super) fn selftest(a: SelftestArgs) -> Result<i32> {
    if !(a.seconds > 0.0 && a.seconds <= 3600.0) {
        bail!("--seconds {} must be in (0, 3600]", a.seconds);
    }
    let mut params = SelftestParams::variant(&a.variant).expect("clap checked the variant");
    params.total_ns = (a.seconds * 1e9) as u64;
    let profile = match a
        .profile
        .as_deref()
        .map(|p| crate::profile::Profile::load(p, None))
        .transpose()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: --profile: {e}");
            return Ok(super::EXIT_INVALID);
        }
    };
    let mut cfg = SimConfig {
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
    if let Some(p) = &profile {
        p.apply(&mut cfg);
    }
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
        "# slice_ext.{} (simulated, revision {}, seed {}, machine profile {})",
        a.variant,
        sim.config().revision.name(),
        a.seed,
        profile.as_ref().map_or("default", |p| p.name.as_str())
    );
    for t in sim.tasks() {
        if let Some(e) = &t.exit {
            if *e != rseq_sim::TaskExit::Exited {
                println!("# task {} ({}): {e}", t.id, t.name);
            }
        }
    }
    let c = &sim.tasks()[main as usize].counters;
    if let Some(counters) = selftest_counters(c) {
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
    Ok(0)
}
