//! What the subcommands share: the run options (`RunArgs`, `--trace`, the timeline
//! options), loading a scenario with its exit code, running it with a progress bar or
//! replaying a schedule, and collecting scenario files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::explore::{Setup, Stamped, Violation};
use crate::export::{self, Format, TraceInput};
use crate::scenario::{self, Loaded, Nanos, ScenarioError};
use rseq_sim::Simulation;

use super::outputs;
use super::{EXIT_BUDGET, EXIT_ERROR, EXIT_INVALID};

/// `slicesim run`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  slicesim run scenarios/edge/grant-then-yield.toml\n  slicesim run scenarios/selftest/n2_2_50.toml --set machine.preempt=lazy --seed 3\n  slicesim run my.toml --until 50us --trace run.json --format chrome\n  slicesim run scenarios/grant-revoke-race.toml --html race.html\n  slicesim run scenarios/grant-revoke-race.toml --timeline-svg race.svg --window 29us..36us\n  slicesim run scenarios/races/v1-nonatomic-clear.toml --schedule v1-nonatomic-clear.schedule\n\nExit codes: 0 ok, 1 expectation failed, 3 invalid scenario, 4 I/O error."
)]
pub struct RunArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop at this simulated time instead of the scenario's duration (e.g. `50us`).
    #[arg(long, value_parser = parse_nanos)]
    pub until: Option<Nanos>,
    /// Override any scenario key, e.g. `machine.cpus=4`, `task.0.count=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run on a machine profile: a bundled name (`default`, `qemu-icount0`, `qemu-icount0-2cpus`) or a profile
    /// file; the scenario's own `[machine]` keys and `--set` still win (docs/scenarios.md).
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Also print metrics from the event log: `table` after the summary; `json` or `csv`
    /// instead of it, alone on stdout (`slicesim run` always keeps the log). See
    /// docs/metrics.md.
    #[arg(long, value_name = "FORMAT", value_parser = ["table", "json", "csv"])]
    pub metrics: Option<String>,
    /// Also draw the metrics (slice histogram, latency percentiles) into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Replay a schedule written by `slicesim explore` (its seed, equal-time order, end and
    /// injected events) and check the explorer's invariants (`run`; `explain`, `step` and
    /// `stats` replay it too).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["seed", "until"])]
    pub schedule: Option<PathBuf>,
    #[command(flatten)]
    pub timeline: TimelineArgs,
    #[command(flatten)]
    pub trace: super::common::TraceArgs,
    #[command(flatten)]
    pub budget: crate::budget::BudgetArgs,
}

/// `--html FILE`, `--timeline-svg FILE`, `--window START..END`: the run as pictures.
#[derive(clap::Args)]
pub struct TimelineArgs {
    /// Write the run as one self-contained HTML page: a lane per CPU and per task, zoom,
    /// pan, hover details (docs/trace-formats.md).
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<PathBuf>,
    /// Write the run's timeline as a static SVG figure (same lanes and markers).
    #[arg(long, value_name = "FILE.svg")]
    pub timeline_svg: Option<PathBuf>,
    /// Stretch of simulated time the SVG shows and the HTML page opens on, e.g.
    /// `14us..22us` [the whole run].
    #[arg(long, value_name = "START..END")]
    pub window: Option<crate::export::lanes::Window>,
}

impl TimelineArgs {
    /// Is any of the options given? (They belong to `slicesim run` only.)
    pub(super) fn any(&self) -> bool {
        self.html.is_some() || self.timeline_svg.is_some() || self.window.is_some()
    }
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

/// Load `a.scenario` with its overrides, or print why not and give the exit code.
pub(super) fn load_or_report(
    a: &RunArgs,
    programs: &crate::programs::Programs,
) -> std::result::Result<Loaded, i32> {
    let max_bytes = a
        .budget
        .max_file_mib
        .unwrap_or(crate::budget::defaults::MAX_FILE_MIB)
        .saturating_mul(1 << 20);
    let sets = with_profile(&a.sets, a.profile.as_deref());
    let mut l = scenario::load_with(&a.scenario, &sets, max_bytes, programs).map_err(|e| {
        eprintln!("error: {e}");
        load_error_code(&e)
    })?;
    l.set_budget(&a.budget);
    Ok(l)
}

/// `sets` with `--profile P` as the override `machine.profile=P` (after them: it names the
/// profile whatever the scenario says). A relative `P` that names a file from the current
/// directory is made absolute: a path on the command line is the caller's, while the
/// scenario's own `[machine] profile` is taken from the scenario's folder.
pub(super) fn with_profile(sets: &[String], profile: Option<&str>) -> Vec<String> {
    let mut out = sets.to_vec();
    if let Some(p) = profile {
        let bundled = crate::profile::BUNDLED.iter().any(|(n, _)| *n == p);
        let path = std::path::Path::new(p);
        let p = match std::path::absolute(path) {
            Ok(abs) if !bundled && path.is_relative() && path.is_file() => {
                abs.display().to_string()
            }
            _ => p.to_string(),
        };
        out.push(format!("machine.profile={}", toml::Value::String(p)));
    }
    out
}

/// An unreadable file is an I/O error (4), a readable but wrong one invalid (3).
pub(super) fn load_error_code(e: &ScenarioError) -> i32 {
    match e {
        ScenarioError::Io { .. } => EXIT_ERROR,
        ScenarioError::Invalid { .. } => EXIT_INVALID,
        ScenarioError::Budget(_) => EXIT_BUDGET,
    }
}

/// `--until`: a time, at most the one-hour limit of `duration`.
pub(super) fn parse_nanos(s: &str) -> Result<Nanos, String> {
    let n = Nanos::parse(s)?;
    let max = scenario::limits::DURATION_NS;
    if n.0 > max {
        return Err(format!(
            "{s} is over the limit of 1h ({max} ns), the same as a scenario's `duration`"
        ));
    }
    Ok(n)
}

/// The schedule `--schedule` names, read and checked against `loaded` (`Err`: the exit
/// code, after saying why).
pub(super) fn read_schedule_arg(
    a: &RunArgs,
    loaded: &Loaded,
) -> Result<Option<std::result::Result<(Stamped, Setup), i32>>> {
    let Some(path) = &a.schedule else {
        return Ok(None);
    };
    let st = match super::explore::read_schedule(loaded, path)? {
        Ok(st) => st,
        Err(why) => {
            eprintln!("error: {why}");
            return Ok(Some(Err(EXIT_INVALID)));
        }
    };
    let setup = Setup::new(loaded, &[], None).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Some(Ok((st, setup))))
}

/// Run `loaded` as `run`, `explain` and `stats` do: as written (with `--seed`/`--until`),
/// or replaying `--schedule`, then also with the explorer's invariant violations.
#[allow(clippy::type_complexity)]
pub(super) fn simulate(
    a: &RunArgs,
    loaded: &Loaded,
    keep_log: bool,
    sink: &mut scenario::LogSink<'_>,
) -> Result<std::result::Result<(scenario::RunResult, Option<(Stamped, Vec<Violation>)>), i32>> {
    match read_schedule_arg(a, loaded)? {
        None => Ok(
            run_with_bar(loaded, a.seed, a.until.map(|n| n.0), keep_log, sink)?.map(|r| (r, None)),
        ),
        Some(Err(code)) => Ok(Err(code)),
        Some(Ok((st, setup))) => {
            let (o, r) = crate::explore::run_schedule(loaded, &setup, &st.schedule)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            // A replay keeps its log: the sink (the metrics) reads it whole.
            sink(&r.sim, r.sim.log())?;
            Ok(Ok((r, Some((st, o.violations)))))
        }
    }
}

/// Run with a progress bar on stderr, shown only on a terminal and only once the run has
/// taken more than a second (wall time touches the display, never the simulation); off a
/// terminal, a line every 10 s of a long run. Keeps the whole log only if `keep_log`. A
/// budget that stops the run is reported here (`Err`: the exit code, 5).
pub(super) fn run_with_bar(
    l: &Loaded,
    seed: Option<u64>,
    until: Option<u64>,
    keep_log: bool,
    sink: &mut scenario::LogSink<'_>,
) -> Result<std::result::Result<scenario::RunResult, i32>> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let bar = indicatif::ProgressBar::hidden();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% simulated, ETA {eta}")
            .expect("valid template"),
    );
    bar.set_length(scenario::SLICES);
    let mut last_line = 0;
    let o = scenario::RunOptions {
        seed,
        until,
        keep_log,
    };
    let r = scenario::run_streamed(l, &o, sink, &mut |now, end| {
        let secs = started.elapsed().as_secs();
        if tty && bar.is_hidden() && secs >= 1 {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        if !tty && secs >= last_line + 10 {
            last_line = secs;
            eprintln!(
                "progress: {now} of {end} ns simulated ({}%) after {secs} s",
                now * 100 / end.max(1)
            );
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    match r {
        Ok(r) => Ok(Ok(r)),
        Err(e @ ScenarioError::Budget(_)) => {
            eprintln!("error: {e}");
            Ok(Err(EXIT_BUDGET))
        }
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

/// `explain`, `step` and `stats` share `run`'s arguments but draw nothing: say so rather
/// than ignore the options that only `run` acts on (exit code 2, as clap's).
pub(super) fn reject_run_only(a: &RunArgs) -> Option<i32> {
    if a.metrics.is_some() || a.plot.is_some() || a.timeline.any() {
        eprintln!(
            "error: --metrics, --plot, --html, --timeline-svg and --window belong to `slicesim run`"
        );
        return Some(2);
    }
    None
}

/// The six selftest counters, if a program reported exactly those (spec §9).
pub fn selftest_counters(
    c: &[(&'static str, i64)],
) -> Option<rseq_abi::programs::SelftestCounters> {
    let get = |n: &str| c.iter().find(|(k, _)| *k == n).map(|(_, v)| *v as u64);
    Some(rseq_abi::programs::SelftestCounters {
        total: get("total")?,
        success: get("success")?,
        yielded: get("yielded")?,
        aborted: get("aborted")?,
        scheduled: get("scheduled")?,
        raced: get("raced")?,
    })
}

/// Every `*.toml` under `paths`, sorted, deduplicated.
pub(super) fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        if p.is_dir() {
            for e in std::fs::read_dir(p).with_context(|| format!("reading {}", p.display()))? {
                walk(&e?.path(), out)?;
            }
        } else if p.extension().is_some_and(|e| e == "toml") {
            out.push(p.to_path_buf());
        } else if !p.exists() {
            anyhow::bail!("{}: no such file or folder", p.display());
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}
