//! `slicesim run`, `check`, `list` and `schema`: scenario files on the command line.
//!
//! Exit codes (stable, for CI): 0 everything held; 1 an expectation failed; 2 bad command
//! line (clap); 3 a scenario file is invalid; 4 an I/O or engine error.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use slicesim::explore::{Setup, Stamped, Violation};
use slicesim::export::xml_text;
use slicesim::metrics::{self, MetricsFormat};
use slicesim::scenario::{self, CheckOutcome, Loaded, Nanos, ScenarioError};

/// Exit code: an expectation failed.
pub const EXIT_EXPECTATION: i32 = 1;
/// Exit code: a scenario file is invalid.
pub const EXIT_INVALID: i32 = 3;
/// Exit code: an I/O or engine error.
pub const EXIT_ERROR: i32 = 4;
/// Exit code: a run was stopped by a budget (`slicesim::budget`).
pub const EXIT_BUDGET: i32 = 5;

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
    pub trace: crate::TraceArgs,
    #[command(flatten)]
    pub budget: slicesim::budget::BudgetArgs,
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
    pub window: Option<slicesim::export::lanes::Window>,
}

impl TimelineArgs {
    /// Is any of the options given? (They belong to `slicesim run` only.)
    fn any(&self) -> bool {
        self.html.is_some() || self.timeline_svg.is_some() || self.window.is_some()
    }
}

/// Draw the run into the files `t` names (staged in `out`).
fn write_timelines(
    sim: &rseq_sim::Simulation,
    name: &str,
    t: &TimelineArgs,
    out: &mut crate::outputs::Outputs,
) -> Result<()> {
    use slicesim::export::{html, svg, TraceInput};
    let input = TraceInput::from_simulation(sim);
    let title = match t.window {
        Some(w) => format!(
            "scenario {name}, {} .. {} us",
            slicesim::export::us(w.start_ns),
            slicesim::export::us(w.end_ns)
        ),
        None => format!("scenario {name}"),
    };
    if let Some(path) = &t.html {
        let page = html::render(&input, &format!("scenario {name}"), t.window)
            .context("drawing the HTML timeline")?;
        out.write(path, page.as_bytes())?;
    }
    if let Some(path) = &t.timeline_svg {
        let figure = svg::render(&input, &title, t.window).context("drawing the SVG timeline")?;
        out.write(path, figure.as_bytes())?;
    }
    Ok(())
}

/// `slicesim check`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  slicesim check scenarios/\n  slicesim check scenarios/ --jobs 1 --junit results.xml\n\nResults and their order do not depend on --jobs.\nExit codes: 0 all held, 1 an expectation failed, 3 a scenario is invalid, 4 I/O error."
)]
pub struct CheckArgs {
    /// Scenario files or folders (searched recursively for *.toml).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Worker threads [number of CPUs].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Also write a JUnit XML report here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// Load `a.scenario` with its overrides, or print why not and give the exit code.
fn load_or_report(a: &RunArgs) -> std::result::Result<Loaded, i32> {
    let max_bytes = a
        .budget
        .max_file_mib
        .unwrap_or(slicesim::budget::defaults::MAX_FILE_MIB)
        .saturating_mul(1 << 20);
    let mut l = scenario::load_limited(&a.scenario, &a.sets, max_bytes).map_err(|e| {
        eprintln!("error: {e}");
        load_error_code(&e)
    })?;
    l.set_budget(&a.budget);
    Ok(l)
}

/// An unreadable file is an I/O error (4), a readable but wrong one invalid (3).
pub(crate) fn load_error_code(e: &ScenarioError) -> i32 {
    match e {
        ScenarioError::Io { .. } => EXIT_ERROR,
        ScenarioError::Invalid { .. } => EXIT_INVALID,
        ScenarioError::Budget(_) => EXIT_BUDGET,
    }
}

/// `--until`: a time, at most the one-hour limit of `duration`.
fn parse_nanos(s: &str) -> Result<Nanos, String> {
    let n = Nanos::parse(s)?;
    let max = scenario::limits::DURATION_NS;
    if n.0 > max {
        return Err(format!(
            "{s} is over the limit of 1h ({max} ns), the same as a scenario's `duration`"
        ));
    }
    Ok(n)
}

/// Does `run` with these options need the whole log kept in memory? (Without it the log
/// streams through the expectations and memory does not grow with simulated time.)
fn needs_whole_log(a: &RunArgs) -> bool {
    a.timeline.any() || (a.trace.trace.is_some() && !streams_trace(a))
}

/// Is `--trace` written as the run goes (jsonl, text, ftrace or perfetto, and not a replayed
/// schedule)?
fn streams_trace(a: &RunArgs) -> bool {
    use slicesim::export::Format;
    a.trace.trace.is_some()
        && matches!(
            a.trace.format,
            Format::Jsonl | Format::Text | Format::Ftrace | Format::Perfetto
        )
        && a.schedule.is_none()
}

/// Run one scenario and print its summary; returns the exit code.
pub fn run(a: RunArgs) -> Result<i32> {
    if a.timeline.window.is_some() && a.timeline.html.is_none() && a.timeline.timeline_svg.is_none()
    {
        anyhow::bail!("--window needs --html or --timeline-svg");
    }
    let loaded = match load_or_report(&a) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let metrics_format = a
        .metrics
        .as_deref()
        .map(str::parse::<MetricsFormat>)
        .transpose()?;
    // Every file is named before the run: an unwritable one fails now, not after it.
    let paths = [
        &a.plot,
        &a.timeline.html,
        &a.timeline.timeline_svg,
        &a.trace.trace,
    ];
    let mut out = crate::outputs::Outputs::prepare(paths.iter().filter_map(|p| p.as_deref()))?;
    // A jsonl, text or ftrace trace streams: its lines go to a scratch file as the run
    // produces them; the header, which holds the totals, goes in front at the end.
    let mut body = match &a.trace.trace {
        Some(p) if streams_trace(&a) => Some((None, std::io::BufWriter::new(out.scratch(p)?))),
        _ => None,
    };
    let format = a.trace.format;
    // The writer is made from the first chunk's simulation, which knows the CPU count.
    let writer_for = move |sim: &rseq_sim::Simulation| {
        slicesim::export::StreamWriter::new(format, sim.config().cpus as u32)
            .expect("streams_trace allows only formats that stream")
    };
    // Metrics (and their plot) are computed as the log streams by.
    let mut metrics_stream: Option<slicesim::metrics::MetricsStream> = None;
    let wants_metrics = metrics_format.is_some() || a.plot.is_some();
    let mut sink =
        |sim: &rseq_sim::Simulation, rs: &[rseq_sim::LogRecord]| -> std::io::Result<()> {
            let input = slicesim::export::TraceInput::from_simulation(sim);
            if wants_metrics {
                metrics_stream
                    .get_or_insert_with(|| slicesim::metrics::MetricsStream::new(input.cpus))
                    .records(&input, rs);
            }
            if let Some((writer, b)) = &mut body {
                let w = writer.get_or_insert_with(|| writer_for(sim));
                w.records(&input, rs, b)?;
            }
            Ok(())
        };
    let (r, violations) = match simulate(&a, &loaded, needs_whole_log(&a), &mut sink)? {
        Ok(rv) => rv,
        Err(code) => return Ok(code),
    };
    let s = &loaded.scenario.scenario;
    let cpus = r.sim.config().cpus as u32;
    let streamed = wants_metrics.then(|| {
        metrics_stream
            .take()
            .unwrap_or_else(|| slicesim::metrics::MetricsStream::new(cpus))
            .finish(&r.sim)
    });
    let metrics = metrics_format.zip(streamed.clone());
    if let Some(path) = &a.plot {
        let m = streamed.clone().expect("computed for --plot");
        let svg = slicesim::plot::metrics_svg(&m, &format!("scenario {}", s.name))
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        out.write(path, svg.as_bytes())?;
    }
    write_timelines(&r.sim, &s.name, &a.timeline, &mut out)?;
    let workload = format!("scenario {}", s.name);
    let trace_note = match (body, &a.trace.trace) {
        (Some((writer, body)), Some(path)) => {
            use std::io::{Seek, Write};
            let input =
                slicesim::export::TraceInput::from_simulation(&r.sim).with_workload(workload);
            let mut writer = writer.unwrap_or_else(|| writer_for(&r.sim));
            let header = writer.header(&input, r.logged as usize)?;
            out.write(path, &header)?;
            let mut body = body.into_inner().map_err(|e| e.into_error())?;
            body.rewind()?;
            std::io::copy(&mut body, out.file(path))
                .with_context(|| format!("writing trace {}", path.display()))?;
            out.file(path)
                .write_all(&writer.footer(&input))
                .with_context(|| format!("writing trace {}", path.display()))?;
            out.file(path).flush()?;
            Some(format!(
                "trace: {} events in {} ({})",
                r.logged,
                path.display(),
                a.trace.format
            ))
        }
        _ => crate::write_trace_quietly(&r.sim, workload, &a.trace, &mut out)?,
    };
    out.commit()?;
    if let Some((f @ (MetricsFormat::Json | MetricsFormat::Csv), m)) = &metrics {
        print!("{}", metrics::render(*f, m));
        // stdout is the metrics alone: the trace's note goes to stderr.
        if let Some(note) = trace_note {
            eprintln!("{note}");
        }
        return Ok(if r.passed() { 0 } else { EXIT_EXPECTATION });
    }
    println!("scenario {} ({})", s.name, a.scenario.display());
    if !s.description.trim().is_empty() {
        println!("  {}", loaded.short_description());
    }
    let cfg = r.sim.config();
    println!(
        "  {} CPUs, revision {}, preempt {}, seed {}, {} events until {} ns",
        cfg.cpus,
        cfg.revision.name(),
        cfg.preempt.name(),
        cfg.seed,
        r.logged,
        r.sim.now()
    );
    println!("rseq/stats:");
    for line in r.sim.stats_debugfs().lines() {
        println!("  {line}");
    }
    println!("tasks (each program's own counters: what it saw and did; the kernel's counts are rseq/stats):");
    for t in r.sim.tasks() {
        let mut exit = t
            .exit
            .as_ref()
            .map_or("running".to_string(), |e| e.to_string());
        if t.exit
            .as_ref()
            .is_some_and(|e| *e != rseq_sim::TaskExit::Exited)
        {
            if let Some(note) = loaded.step_note(t) {
                exit = format!("{exit} {note}");
            }
        }
        let counters: Vec<String> = t.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "  T{:<4} {:<20} {:<30} {}",
            t.id,
            t.name,
            exit,
            counters.join(" ")
        );
    }
    for t in r.sim.tasks() {
        if let Some(c) = selftest_counters(&t.counters) {
            println!("T{} {} (selftest format):", t.id, t.name);
            print!("{c}");
        }
    }
    let mut failed = print_checks(&r.checks);
    if let Some((st, v)) = &violations {
        println!(
            "schedule: seed {}, ties {}, injected {}",
            st.schedule.seed,
            if st.schedule.seeded_ties {
                "seeded"
            } else {
                "fifo"
            },
            st.schedule.inject_text()
        );
        for v in v {
            println!("  VIOLATION {v}");
        }
        failed += v.len();
    }
    if let Some((f, m)) = &metrics {
        print!("{}", metrics::render(*f, m));
    }
    if let Some(note) = trace_note {
        println!("{note}");
    }
    Ok(if failed > 0 { EXIT_EXPECTATION } else { 0 })
}

/// The schedule `--schedule` names, read and checked against `loaded` (`Err`: the exit
/// code, after saying why).
fn read_schedule_arg(
    a: &RunArgs,
    loaded: &Loaded,
) -> Result<Option<std::result::Result<(Stamped, Setup), i32>>> {
    let Some(path) = &a.schedule else {
        return Ok(None);
    };
    let st = match crate::explore_cli::read_schedule(loaded, path)? {
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
fn simulate(
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
            let (o, r) = slicesim::explore::run_schedule(loaded, &setup, &st.schedule)
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
fn run_with_bar(
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
fn reject_run_only(a: &RunArgs) -> Option<i32> {
    if a.metrics.is_some() || a.plot.is_some() || a.timeline.any() {
        eprintln!(
            "error: --metrics, --plot, --html, --timeline-svg and --window belong to `slicesim run`"
        );
        return Some(2);
    }
    None
}

/// `slicesim explain`'s arguments: `run`'s, plus `--brief`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The scenario and the run options `run` takes.
    #[command(flatten)]
    pub run: RunArgs,
    /// Leave out the program's loads of the word and the refusals made before the kernel
    /// reads it (feature not enabled, no user_irq): a denser story.
    #[arg(long)]
    pub brief: bool,
}

/// `slicesim explain`: run a scenario and print its story.
pub fn explain(e: ExplainArgs) -> Result<i32> {
    let a = e.run;
    if let Some(code) = reject_run_only(&a) {
        return Ok(code);
    }
    let loaded = match load_or_report(&a) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let (r, _) = match simulate(&a, &loaded, true, &mut |_, _| Ok(()))? {
        Ok(rv) => rv,
        Err(code) => return Ok(code),
    };
    println!(
        "{}: {}",
        loaded.scenario.scenario.name,
        loaded.short_description()
    );
    let opts = slicesim::explain::Options { brief: e.brief };
    print!("{}", slicesim::explain::explain_with(&r.sim, opts));
    Ok(0)
}

/// `slicesim step`: build a scenario and walk through it from stdin's commands.
pub fn step(a: RunArgs) -> Result<i32> {
    if let Some(code) = reject_run_only(&a) {
        return Ok(code);
    }
    let loaded = match load_or_report(&a) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let b = match read_schedule_arg(&a, &loaded)? {
        None => scenario::build(&loaded, a.seed, a.until.map(|n| n.0)),
        Some(Err(code)) => return Ok(code),
        Some(Ok((st, setup))) => slicesim::explore::build_replay(&loaded, &setup, &st.schedule),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sim = b.sim;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match slicesim::step::run(&mut sim, b.duration, &mut input, &mut out) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        r => r.map(|_| 0).map_err(Into::into),
    }
}

/// `slicesim stats`: run a scenario and print only `rseq/stats` in the kernel's format.
pub fn stats(a: RunArgs) -> Result<i32> {
    if let Some(code) = reject_run_only(&a) {
        return Ok(code);
    }
    let loaded = match load_or_report(&a) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let (r, _) = match simulate(&a, &loaded, false, &mut |_, _| Ok(()))? {
        Ok(rv) => rv,
        Err(code) => return Ok(code),
    };
    print!("{}", r.sim.stats_debugfs());
    Ok(0)
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

fn print_checks(checks: &[scenario::Check]) -> usize {
    if checks.is_empty() {
        return 0;
    }
    println!("expectations:");
    let mut failed = 0;
    for c in checks {
        match &c.outcome {
            CheckOutcome::Pass => println!("  ok    {}", c.what),
            CheckOutcome::Fail(got) => {
                failed += 1;
                println!("  FAIL  {} ({got})", c.what);
            }
        }
    }
    println!(
        "{} of {} expectations held",
        checks.len() - failed,
        checks.len()
    );
    failed
}

/// Every `*.toml` under `paths`, sorted, deduplicated.
pub(crate) fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
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

/// What checking one file gave.
enum Verdict {
    Pass { checks: usize, events: usize },
    Fail { failed: Vec<String>, checks: usize },
    Invalid(ScenarioError),
}

fn check_one(path: &Path) -> (String, Verdict) {
    let loaded: Loaded = match scenario::load(path, &[]) {
        Ok(l) => l,
        Err(e) => return (path.display().to_string(), Verdict::Invalid(e)),
    };
    let name = loaded.scenario.scenario.name.clone();
    // Only the expectations read the log: it streams through them and is not kept.
    let o = scenario::RunOptions::default();
    match scenario::run_streamed(&loaded, &o, &mut |_, _| Ok(()), &mut |_, _| {}) {
        Err(e) => (name, Verdict::Invalid(e)),
        Ok(r) => {
            let failed: Vec<String> = r
                .checks
                .iter()
                .filter_map(|c| match &c.outcome {
                    CheckOutcome::Fail(got) => Some(format!("{} ({got})", c.what)),
                    CheckOutcome::Pass => None,
                })
                .collect();
            let checks = r.checks.len();
            if failed.is_empty() {
                (
                    name,
                    Verdict::Pass {
                        checks,
                        events: r.logged as usize,
                    },
                )
            } else {
                (name, Verdict::Fail { failed, checks })
            }
        }
    }
}

/// Check every scenario under the paths, in parallel; returns the exit code.
pub fn check(a: CheckArgs) -> Result<i32> {
    let files = collect(&a.paths)?;
    if files.is_empty() {
        anyhow::bail!("no *.toml scenarios under {:?}", a.paths);
    }
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    // Work is handed out by index and results stored by index: the report is the same for
    // any number of workers.
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<(String, Verdict)>> = (0..files.len()).map(|_| None).collect();
    let slots: Vec<std::sync::Mutex<&mut Option<(String, Verdict)>>> =
        results.iter_mut().map(std::sync::Mutex::new).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.min(files.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                let v = check_one(f);
                **slots[i]
                    .lock()
                    .expect("no poisoning: check_one does not panic") = Some(v);
            });
        }
    });
    drop(slots);
    let results: Vec<(String, Verdict)> = results
        .into_iter()
        .map(|r| r.expect("every file checked"))
        .collect();
    let (mut pass, mut fail, mut invalid) = (0, 0, 0);
    for ((name, v), f) in results.iter().zip(&files) {
        match v {
            Verdict::Pass { checks, events } => {
                pass += 1;
                println!(
                    "ok       {name:<40} {checks:>3} checks  {events:>8} events  {}",
                    f.display()
                );
            }
            Verdict::Fail { failed, checks } => {
                fail += 1;
                println!(
                    "FAIL     {name:<40} {}/{checks} failed  {}",
                    failed.len(),
                    f.display()
                );
                for m in failed {
                    println!("           {m}");
                }
            }
            Verdict::Invalid(e) => {
                invalid += 1;
                println!("INVALID  {e}");
            }
        }
    }
    println!("{pass} passed, {} failed", fail + invalid);
    if let Some(path) = &a.junit {
        crate::write_whole(path, junit(&results, &files).as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let io = results
        .iter()
        .any(|(_, v)| matches!(v, Verdict::Invalid(ScenarioError::Io { .. })));
    Ok(if io {
        EXIT_ERROR
    } else if invalid > 0 {
        EXIT_INVALID
    } else if fail > 0 {
        EXIT_EXPECTATION
    } else {
        0
    })
}

fn junit(results: &[(String, Verdict)], files: &[PathBuf]) -> String {
    let failures = results
        .iter()
        .filter(|(_, v)| !matches!(v, Verdict::Pass { .. }))
        .count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"slicesim\" tests=\"{}\" failures=\"{failures}\">\n",
        results.len()
    );
    for ((name, v), f) in results.iter().zip(files) {
        out.push_str(&format!(
            "  <testcase classname=\"{}\" name=\"{}\">",
            xml_text(&f.display().to_string()),
            xml_text(name)
        ));
        match v {
            Verdict::Pass { .. } => {}
            Verdict::Fail { failed, .. } => out.push_str(&format!(
                "<failure message=\"expectation failed\">{}</failure>",
                xml_text(&failed.join("\n"))
            )),
            Verdict::Invalid(e) => out.push_str(&format!(
                "<failure message=\"invalid scenario\">{}</failure>",
                xml_text(&e.to_string())
            )),
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}

/// `slicesim list`: the programs with their parameters and the bundled scenarios. A closed
/// pipe (`slicesim list | head`) ends the listing quietly.
pub fn list(dir: &Path) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut body = || -> std::io::Result<()> {
        writeln!(out, "programs:")?;
        for (name, params, what) in [
            (
                "selftest",
                "variant, total, run_word",
                "the kernel selftest's main loop (spec §9)",
            ),
            (
                "selftest_noise",
                "variant, run_word",
                "the selftest's noise thread",
            ),
            (
                "spinlock",
                "lock_word, hold, think, run, use_ext, iterations",
                "a spin lock whose holder asks for extensions",
            ),
            (
                "misbehave",
                "misbehavior, hold, iterations, enable",
                "a client breaking a rule of spec §7/§11",
            ),
            ("script", "steps", "a thread spelled out step by step"),
            (
                "sleeper",
                "think (sleep), hold (burn), iterations",
                "sleeps and wakes (wakeup preemption)",
            ),
            ("spinner", "hold, iterations", "a CPU hog"),
        ] {
            writeln!(
                out,
                "  {name:<15} {what}\n  {:<15} parameters: {params}",
                ""
            )?;
        }
        writeln!(out, "bundled scenarios ({}):", dir.display())?;
        for f in collect(&[dir.to_path_buf()]).unwrap_or_default() {
            match scenario::load(&f, &[]) {
                Ok(l) => writeln!(out, "  {:<45} {}", f.display(), l.short_description())?,
                Err(e) => writeln!(out, "  {:<45} INVALID: {e}", f.display())?,
            }
        }
        Ok(())
    };
    match body() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(Into::into),
    }
}

/// Silence "unused" for the exit code only the dispatcher uses.
pub fn io_error_code() -> i32 {
    EXIT_ERROR
}

/// `slicesim sweep`.
#[derive(clap::Args)]
pub struct SweepArgs {
    /// The scenario file.
    pub scenario: PathBuf,
    /// A key and its values, e.g. `machine.slice_ext_nsec=5000,10000` (repeatable: the
    /// cross product is run).
    #[arg(long = "vary", value_name = "KEY=V1,V2,...", required = true, value_parser = slicesim::sweep::Vary::parse)]
    pub vary: Vec<slicesim::sweep::Vary>,
    /// Seeds per combination (0..N).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Other overrides applied to every run (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run only shard K of N (`K/N`): every run whose index is K modulo N.
    #[arg(long, value_parser = slicesim::sweep::parse_shard)]
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

/// `slicesim merge`.
#[derive(clap::Args)]
pub struct MergeArgs {
    /// Shard results (`OUT.json` of each `sweep --shard`).
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// Write OUT.runs.csv, OUT.summary.csv and OUT.json.
    #[arg(long, required = true)]
    pub out: PathBuf,
}

fn write_sweep(s: &slicesim::sweep::Sweep, out: &Path) -> Result<()> {
    let with = |ext: &str| PathBuf::from(format!("{}.{ext}", out.display()));
    crate::write_whole(&with("runs.csv"), slicesim::sweep::rows_csv(s).as_bytes())?;
    crate::write_whole(
        &with("summary.csv"),
        slicesim::sweep::summary_csv(s).as_bytes(),
    )?;
    let json = serde_json::to_string_pretty(s)?;
    crate::write_whole(&with("json"), json.as_bytes())?;
    Ok(())
}

/// Run a sweep; returns the exit code.
pub fn sweep(a: SweepArgs) -> Result<i32> {
    use std::io::IsTerminal;
    use std::sync::atomic::AtomicBool;
    static STOP: AtomicBool = AtomicBool::new(false);
    // Ctrl-C stops handing out runs; finished rows are still written.
    let _ = ctrlc::set_handler(|| STOP.store(true, std::sync::atomic::Ordering::Relaxed));
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
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
    let s = match slicesim::sweep::run(
        &a.scenario,
        &a.sets,
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
        let svg = slicesim::plot::sweep_svg(&s)
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        crate::write_whole(path, svg.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    match &a.out {
        Some(out) => {
            write_sweep(&s, out)?;
            println!(
                "{} runs -> {}.runs.csv, {}.summary.csv, {}.json",
                s.rows.len(),
                out.display(),
                out.display(),
                out.display()
            );
        }
        None => print!("{}", slicesim::sweep::summary_csv(&s)),
    }
    Ok(0)
}

/// Merge shards; returns the exit code.
pub fn merge(a: MergeArgs) -> Result<i32> {
    let mut parts = Vec::new();
    for p in &a.parts {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        parts.push(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a sweep result", p.display()))?,
        );
    }
    let s = slicesim::sweep::merge(parts).map_err(|e| anyhow::anyhow!(e))?;
    write_sweep(&s, &a.out)?;
    println!(
        "{} of {} runs -> {}.*",
        s.rows.len(),
        s.total_runs,
        a.out.display()
    );
    Ok(0)
}

/// `slicesim compare`.
#[derive(clap::Args)]
pub struct CompareArgs {
    /// Scenario A.
    pub a_file: PathBuf,
    /// Scenario B [the same file as A].
    pub b_file: Option<PathBuf>,
    /// Overrides for A (repeatable).
    #[arg(long = "a", value_name = "KEY=VALUE")]
    pub a_sets: Vec<String>,
    /// Overrides for B (repeatable).
    #[arg(long = "b", value_name = "KEY=VALUE")]
    pub b_sets: Vec<String>,
    /// Seeds per side (0..N).
    #[arg(long, default_value_t = 8)]
    pub seeds: u64,
    /// Worker threads [number of CPUs].
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// Compare two configurations; returns the exit code.
pub fn compare(a: CompareArgs) -> Result<i32> {
    use std::sync::atomic::AtomicBool;
    let stop = AtomicBool::new(false);
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let b_file = a.b_file.clone().unwrap_or_else(|| a.a_file.clone());
    let side = |file: &Path, sets: &[String]| {
        slicesim::sweep::run(file, sets, &[], a.seeds, None, jobs, &stop, &|_, _| {})
    };
    let (ra, rb) = match (side(&a.a_file, &a.a_sets), side(&b_file, &a.b_sets)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Ok(load_error_code(&e));
        }
    };
    let label = |f: &Path, s: &[String]| {
        if s.is_empty() {
            f.display().to_string()
        } else {
            format!("{} with {}", f.display(), s.join(" "))
        }
    };
    let rows = slicesim::sweep::compare(&ra.rows, &rb.rows);
    print!(
        "{}",
        slicesim::sweep::compare_table(
            &label(&a.a_file, &a.a_sets),
            &label(&b_file, &a.b_sets),
            &rows
        )
    );
    println!("({} seeds per side)", a.seeds);
    Ok(0)
}

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
}

/// Compare a VM's probe results with the simulator's; exit code 1 on a discrete
/// disagreement, 4 when the console file cannot be read or holds no complete frame.
pub fn kernel_diff(a: KernelDiffArgs) -> Result<i32> {
    use rseq_abi::programs::probes::Frame;
    use slicesim::fidelity::{self, KernelSetup};
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
    let setup = KernelSetup::from_frame(&kernel)
        .with_context(|| format!("reading {}", a.console.display()))?;
    let names: Vec<&str> = kernel.probes.iter().map(|p| p.probe.as_str()).collect();
    let sim = fidelity::run_in_sim(&names, &setup.sim_config(a.seed))
        .context("building the simulation")?;
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
    let rows = fidelity::compare(&kernel, &sim, a.tolerance);
    let table = fidelity::render(&rows);
    print!("{table}");
    if let Some(out) = &a.out {
        crate::write_whole(out, table.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(i32::from(rows.iter().any(|r| r.verdict.fails())))
}
