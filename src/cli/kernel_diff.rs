//! `slicesim kernel-diff`: the fidelity probes in the simulator, compared with a VM run's
//! console output.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `slicesim kernel-diff`.
#[derive(clap::Args)]
pub struct KernelDiffArgs {
    /// Console output of a VM run (`slicesim-vm run` writes it): the frame of `SLICESIM` lines the
    /// probes printed. Its `meta cmdline` decides the simulator's configuration.
    pub console: PathBuf,
    /// Largest accepted difference between the kernel's and the simulator's share of a
    /// rate (e.g. yields per section), 0..1.
    #[arg(long, default_value_t = 0.25)]
    pub tolerance: f64,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the table (Markdown) to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Simulate on this machine profile (a bundled name or a file) [for a console taken
    /// under `-icount`, the profile measured on its machine (`qemu-icount0` on 4 vCPUs,
    /// `qemu-icount0-2cpus` on 2); otherwise `default`].
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Fail (exit 6) when a rate does not hold to the kernel's: more than 10 % from it
    /// and outside what its counts allow (a two-proportion z-test at the 5 % level).
    /// The default for a console taken under the instruction-counting clock
    /// (`slicesim.clock=icount*` on its command line); other consoles' rates are
    /// reported only, their timings being the emulator's.
    #[arg(long, conflicts_with = "report_rates")]
    pub fail_on_rates: bool,
    /// Report rates without failing, whatever the console's clock.
    #[arg(long)]
    pub report_rates: bool,
}

/// Exit code of a rate that does not hold (a discrete disagreement, 1, wins).
pub const EXIT_RATES: i32 = 6;

/// Compare a VM's probe results with the simulator's; exit code 1 on a discrete
/// disagreement, 6 on a rate that does not hold (see `fail_on_rates`), 4 when the
/// console file cannot be read or holds no complete frame.
pub fn kernel_diff(a: KernelDiffArgs) -> Result<i32> {
    use crate::fidelity::{self, KernelSetup};
    use rseq_abi::programs::probes::Frame;
    let text = match std::fs::read_to_string(&a.console) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", a.console.display());
            return Ok(4);
        }
    };
    let kernel = match Frame::parse(&text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}: {e}", a.console.display());
            return Ok(4);
        }
    };
    let mut out = super::outputs::Outputs::prepare(a.out.as_deref())?;
    let setup = KernelSetup::from_frame(&kernel)
        .with_context(|| format!("reading {}", a.console.display()))?;
    let names: Vec<&str> = kernel.probes.iter().map(|p| p.probe.as_str()).collect();
    let mut cfg = setup.sim_config(a.seed);
    // An icount console is held to the profile measured on its own machine unless the
    // user names one: the `default` figures are not that machine's.
    let measured = match setup.clock {
        Some(fidelity::GuestClock::Icount(shift)) if a.profile.is_none() => {
            crate::profile::measured_for(shift, setup.cpus)
        }
        _ => None,
    };
    let profile = match a
        .profile
        .as_deref()
        .or(measured)
        .map(|p| crate::profile::Profile::load(p, None))
    {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(2);
        }
    };
    if let Some(p) = &profile {
        p.apply(&mut cfg);
    }
    let sim = fidelity::run_in_sim(&names, &cfg).context("building the simulation")?;
    println!(
        "kernel {} ({}), simulator: {} CPUs, preempt={}, rseq_slice_ext={}, rseq_debug={}, slice_ext_nsec={}, revision {}",
        kernel.meta("kernel").unwrap_or("?"),
        kernel.meta("cmdline").unwrap_or("no cmdline"),
        setup.cpus,
        setup.preempt.name(),
        u8::from(setup.slice_ext_boot),
        u8::from(setup.rseq_debug),
        setup.sim_config(a.seed).effective_slice_ext_nsec(),
        setup.revision.name(),
    );
    println!(
        "machine profile: {}{}",
        profile.as_ref().map_or("default".to_string(), |p| format!(
            "{} ({})",
            p.name, p.about
        )),
        if measured.is_some() {
            ", measured on this console's machine (--profile chooses another)"
        } else {
            ""
        }
    );
    let rows = fidelity::compare(&kernel, &sim, a.tolerance);
    let tests = fidelity::rate_tests(&kernel, &sim, &rows);
    let mut table = fidelity::render(&rows);
    table += "\nRates against the uncertainty of their counts:\n\n";
    table += &fidelity::render_rate_tests(&tests);
    print!("{table}");
    if let Some(path) = &a.out {
        out.write(path, table.as_bytes())?;
    }
    out.commit()?;
    let enforce = a.fail_on_rates || (setup.deterministic_clock() && !a.report_rates);
    let outside = tests.iter().filter(|t| !t.holds()).count();
    println!(
        "rates: {} ({})",
        if enforce {
            "held to the kernel's"
        } else {
            "reported only"
        },
        match (&setup.clock, enforce) {
            (Some(c), true) => format!("guest clock {c}"),
            (Some(c), false) => format!("guest clock {c}: timings are the emulator's"),
            (None, _) => "the console does not say which guest clock it ran on".into(),
        }
    );
    Ok(if rows.iter().any(|r| r.verdict.fails()) {
        1
    } else if enforce && outside > 0 {
        EXIT_RATES
    } else {
        0
    })
}
