//! `slicesim sweep`: a scenario over the cross product of `--vary` values and seeds.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::common::load_error_code;

/// `slicesim sweep`.
#[derive(clap::Args)]
pub struct SweepArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// A key and its values, e.g. `machine.slice_ext_nsec=5000,10000` (repeatable: the
    /// cross product is run).
    #[arg(long = "vary", value_name = "KEY=V1,V2,...", required = true, value_parser = crate::sweep::Vary::parse)]
    pub vary: Vec<crate::sweep::Vary>,
    /// Seeds per combination (0..N).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Other overrides applied to every run (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run on a machine profile: a bundled name (`default`, `qemu-icount0`, `qemu-icount0-2cpus`) or a profile
    /// file; the scenario's own `[machine]` keys and `--set` still win (docs/scenarios.md).
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Run only shard K of N (`K/N`): every run whose index is K modulo N.
    #[arg(long, value_parser = crate::sweep::parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Worker threads [number of CPUs].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Write OUT.runs.csv, OUT.summary.csv and OUT.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also draw the sweep's curves (mean ± 95% CI against the first --vary key) as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

/// The three files of `--out OUT`: OUT.runs.csv, OUT.summary.csv, OUT.json.
pub(super) fn sweep_paths(out: &Path) -> [PathBuf; 3] {
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", out.display()));
    [with("runs.csv"), with("summary.csv"), with("json")]
}

/// Write a sweep's three files into their staged outputs (see [`sweep_paths`]).
pub(super) fn write_sweep(
    s: &crate::sweep::Sweep,
    out: &Path,
    files: &mut super::outputs::Outputs,
) -> Result<()> {
    let [runs, summary, json] = sweep_paths(out);
    files.write(&runs, crate::sweep::rows_csv(s).as_bytes())?;
    files.write(&summary, crate::sweep::summary_csv(s).as_bytes())?;
    let text = serde_json::to_string_pretty(s)?;
    files.write(&json, text.as_bytes())?;
    Ok(())
}

/// Run a sweep; returns the exit code.
pub fn sweep(a: SweepArgs, programs: &crate::programs::Programs) -> Result<i32> {
    use std::io::IsTerminal;
    use std::sync::atomic::AtomicBool;
    static STOP: AtomicBool = AtomicBool::new(false);
    // Ctrl-C stops handing out runs; finished rows are still written.
    let _ = ctrlc::set_handler(|| STOP.store(true, std::sync::atomic::Ordering::Relaxed));
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // Every file is named before the sweep: an unwritable one fails now, not after it.
    let out_paths: Vec<PathBuf> = a.out.iter().flat_map(|o| sweep_paths(o)).collect();
    let mut files = super::outputs::Outputs::prepare(
        out_paths
            .iter()
            .map(PathBuf::as_path)
            .chain(a.plot.as_deref()),
    )?;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, ETA {eta}")
            .expect("valid template"),
    );
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let sets = super::common::with_profile(&a.sets, a.profile.as_deref());
    let s = match crate::sweep::run(
        programs,
        &a.scenario,
        &sets,
        &a.vary,
        a.seeds,
        a.shard,
        jobs,
        &STOP,
        &progress,
    ) {
        Ok(s) => s,
        Err(e) => {
            bar.finish_and_clear();
            eprintln!("error: {e}");
            return Ok(load_error_code(&e));
        }
    };
    bar.finish_and_clear();
    if STOP.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("interrupted: {} runs finished", s.rows.len());
    }
    if let Some(path) = &a.plot {
        let svg = crate::plot::sweep_svg(&s)
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        files.write(path, svg.as_bytes())?;
    }
    match &a.out {
        Some(out) => {
            write_sweep(&s, out, &mut files)?;
            files.commit()?;
            println!(
                "{} runs -> {}.runs.csv, {}.summary.csv, {}.json",
                s.rows.len(),
                out.display(),
                out.display(),
                out.display()
            );
        }
        None => {
            files.commit()?;
            print!("{}", crate::sweep::summary_csv(&s))
        }
    }
    Ok(0)
}
