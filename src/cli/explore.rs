//! `slicesim explore`: the command line of the explorer (`crate::explore`).
//!
//! Everything on stdout is a function of the scenario, the options and the seed (never of
//! `--jobs` or the machine); timings go to stderr.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::explore::{self, Report, Setup, Stamped, Violation};
use crate::scenario::{self, Loaded, VerdictName};
use anyhow::{Context, Result};

use super::common::load_error_code;
use super::EXIT_EXPECTATION;

/// `slicesim explore`.
#[derive(clap::Args)]
#[command(
    group(clap::ArgGroup::new("mode").required(true).args(["exhaustive", "random", "catalog"])),
    after_help = "Examples:\n  slicesim explore scenarios/races/yield-after-revoke.toml --exhaustive\n  slicesim explore scenarios/races/never-yields.toml --exhaustive --max-interrupts 1\n  slicesim explore scenarios/workloads/spinlock-ext.toml --random --runs 2000 --seed 7\n  slicesim explore S.toml --random --runs 500 --pct 3 --jobs 2\n\nA counterexample is shrunk and saved as a schedule file that `slicesim run S.toml --schedule FILE` replays.\nOutput does not depend on --jobs. Exit codes: 0 no violation and every expected verdict met, 1 otherwise, 3 invalid scenario, 4 I/O error."
)]
pub struct ExploreArgs {
    /// The scenario file (with --catalog: files or folders of race scenarios).
    #[arg(required = true)]
    pub scenario: Vec<PathBuf>,
    /// Budgets of every explored run (each overrides the scenario's `[budget]` key).
    #[command(flatten)]
    pub budget: crate::budget::BudgetArgs,
    /// Every placement of at most --max-interrupts injected events.
    #[arg(long)]
    pub exhaustive: bool,
    /// Print the race catalogue (docs/races.md's table) of the given scenarios: each
    /// explored exhaustively, its conditions' verdicts and shrunk counterexamples.
    #[arg(long)]
    pub catalog: bool,
    /// Randomized runs (swarm-style, or PCT with --pct).
    #[arg(long)]
    pub random: bool,
    /// Most injected events per run [scenario's explore.max_interrupts, else 2].
    #[arg(long, value_name = "K")]
    pub max_interrupts: Option<u32>,
    /// Watch only this task's operations (repeatable) [scenario's explore.tasks, else all].
    #[arg(long = "task", value_name = "NAME")]
    pub tasks: Vec<String>,
    /// Random runs.
    #[arg(long, default_value_t = 1000, requires = "random")]
    pub runs: u64,
    /// PCT depth: inject at D random points of each run.
    #[arg(long, value_name = "D", requires = "random")]
    pub pct: Option<u32>,
    /// Seed [scenario's seed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads [number of CPUs].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Override any scenario key (repeatable), as for `run`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run on a machine profile: a bundled name (`default`, `qemu-icount0`, `qemu-icount0-2cpus`) or a profile
    /// file; the scenario's own `[machine]` keys and `--set` still win (docs/scenarios.md).
    #[arg(long, value_name = "NAME|FILE")]
    pub profile: Option<String>,
    /// Where to save the shrunk counterexample [NAME.schedule, NAME the scenario's name].
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
    /// Exhaustive: stop after this many schedules (the verdicts then are not proofs).
    #[arg(long, value_name = "N", default_value_t = explore::DEFAULT_MAX_SCHEDULES)]
    pub max_schedules: u64,
    /// Report the first counterexample and the verdicts' witnesses as found, without
    /// shrinking or saving them.
    #[arg(long)]
    pub no_shrink: bool,
    /// Where to save each condition's witness, a shrunk run showing its verdict
    /// (NAME.CONDITION.schedule) [the current directory].
    #[arg(long, value_name = "DIR")]
    pub witness_dir: Option<PathBuf>,
}

/// A progress bar on stderr, only on a terminal: runs of a known total, or a counter of
/// schedules for an exhaustive search (whose size shows only as it goes).
/// Most injected events per run, on the command line as in the scenario key.
const MAX_K: u32 = 8;

/// Before an exhaustive search: the size of its space, from the unperturbed run's points
/// (every kind at every set of at most K points, before the reduction prunes equivalent
/// kinds), and whether `--max-schedules` will cut it.
fn print_estimate(l: &scenario::Loaded, setup: &Setup, seed: u64, max: u64) -> Result<()> {
    let plain = explore::Schedule::plain(seed);
    let (o, _) = explore::run_schedule(l, setup, &plain)?;
    let (p, m) = (u128::from(o.point_count), setup.kinds.len() as u128);
    // sum over k <= K of C(p, k) * m^k, saturating.
    let (mut total, mut term) = (1u128, 1u128);
    for k in 1..=u128::from(setup.max_k) {
        if k > p {
            break;
        }
        term = term.saturating_mul(p + 1 - k).saturating_mul(m) / k;
        total = total.saturating_add(term);
    }
    let size = if total > u128::from(u64::MAX) {
        "more than 10^19".to_string()
    } else {
        group(total as u64)
    };
    println!(
        "  estimate: about {size} schedules before reduction ({p} points in the unperturbed run, {m} kinds, K = {})",
        setup.max_k
    );
    if total > u128::from(max) {
        println!(
            "  the space is larger than --max-schedules {}: the search stops there (narrow it with --task, fewer kinds, a shorter run or a lower K)",
            group(max)
        );
    }
    Ok(())
}

fn progress_bar(total: Option<u64>) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = match total {
        Some(n) => (
            indicatif::ProgressBar::new(n),
            "{bar:40} {pos}/{len} runs, ETA {eta}",
        ),
        None => (
            indicatif::ProgressBar::no_length(),
            "{spinner} {pos} schedules, {per_sec}",
        ),
    };
    bar.set_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    bar
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `slicesim explore`; returns the exit code.
pub fn explore(a: ExploreArgs, programs: &crate::programs::Programs) -> Result<i32> {
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if a.catalog {
        let files = super::common::collect(&a.scenario)?;
        return match explore::catalog(programs, &files, jobs) {
            Ok(md) => {
                print!("{md}");
                Ok(0)
            }
            Err(e) => {
                eprintln!("error: {e}");
                Ok(load_error_code(&e))
            }
        };
    }
    let [scenario_path] = &a.scenario[..] else {
        eprintln!("error: explore takes one scenario (several only with --catalog)");
        return Ok(2);
    };
    let sets = super::common::with_profile(&a.sets, a.profile.as_deref());
    let mut l = match scenario::load_with(
        scenario_path,
        &sets,
        a.budget
            .max_file_mib
            .unwrap_or(crate::budget::defaults::MAX_FILE_MIB)
            << 20,
        programs,
    ) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(load_error_code(&e));
        }
    };
    l.set_budget(&a.budget);
    let names: Vec<&str> = l
        .scenario
        .tasks
        .iter()
        .map(|t| t.get_ref().name.as_str())
        .collect();
    if let Some(t) = a.tasks.iter().find(|t| !names.contains(&t.as_str())) {
        let hint = scenario::closest(t, &names)
            .map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
        eprintln!(
            "error: --task {t}: {} has no task `{t}`{hint}; its tasks: {}",
            scenario_path.display(),
            names.join(", ")
        );
        return Ok(2);
    }
    if let Some(k) = a.max_interrupts.filter(|&k| k > MAX_K) {
        eprintln!(
            "error: --max-interrupts {k}: at most {MAX_K}, as the scenario key explore.max_interrupts"
        );
        return Ok(2);
    }
    let setup = match Setup::new(&l, &a.tasks, a.max_interrupts) {
        Ok(s) => Setup {
            max_schedules: a.max_schedules,
            ..s
        },
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(load_error_code(&e));
        }
    };
    let seed = a.seed.unwrap_or(l.scenario.scenario.seed);
    // The counterexample and witness files are named before the search: an unwritable
    // place fails now, not after it; each is created only if the search finds it.
    let mut planned = Vec::new();
    if !a.no_shrink {
        planned.push(save_path(&l, &a));
        planned.extend(
            setup
                .conditions
                .iter()
                .map(|c| witness_path(&l, &a, &c.name)),
        );
    }
    let mut files =
        super::outputs::Outputs::prepare([])?.maybe(planned.iter().map(PathBuf::as_path))?;
    let started = std::time::Instant::now();
    let kinds: Vec<&str> = setup.kinds.iter().map(|k| k.name()).collect();
    let mode = if a.exhaustive {
        format!("exhaustive, at most {} injected events", setup.max_k)
    } else if let Some(d) = a.pct {
        format!("random (PCT depth {d}), {} runs, seed {seed}", a.runs)
    } else {
        format!(
            "random (swarm), {} runs, at most {} injected events each, seed {seed}",
            a.runs, setup.max_k
        )
    };
    println!(
        "explore {} ({})",
        l.scenario.scenario.name,
        scenario_path.display()
    );
    println!(
        "  {mode}; kinds {}; watching {}",
        kinds.join(","),
        setup.watched.join(",")
    );
    if a.exhaustive {
        if let Err(e) = print_estimate(&l, &setup, seed, a.max_schedules) {
            if let Some(b @ scenario::ScenarioError::Budget(_)) = e.downcast_ref() {
                eprintln!("error: the unperturbed run was {b}");
                return Ok(super::EXIT_BUDGET);
            }
            return Err(e);
        }
    }
    // Ctrl-C stops handing out runs; what finished is reported, marked as interrupted.
    static STOP: AtomicBool = AtomicBool::new(false);
    let _ = ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed));
    let bar = progress_bar(if a.exhaustive { None } else { Some(a.runs) });
    // Off a terminal, a line every 10 s (wall time touches the display only).
    let done = std::sync::atomic::AtomicU64::new(0);
    let last_line = std::sync::atomic::AtomicU64::new(0);
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let tick = || {
        bar.inc(1);
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        let secs = started.elapsed().as_secs();
        let last = last_line.load(Ordering::Relaxed);
        if !tty
            && secs >= last + 10
            && last_line
                .compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            eprintln!("progress: {n} runs after {secs} s");
        }
    };
    let ctl = explore::Control {
        stop: &STOP,
        progress: &tick,
    };
    let report = match if a.exhaustive {
        explore::exhaustive_with(&l, &setup, seed, jobs, ctl)
    } else {
        explore::random_with(&l, &setup, seed, a.runs, a.pct, jobs, ctl)
    } {
        Ok(r) => r,
        Err(e @ scenario::ScenarioError::Budget(_)) => {
            bar.finish_and_clear();
            eprintln!("error: a run of the search was {e}");
            return Ok(super::EXIT_BUDGET);
        }
        Err(e) => return Err(anyhow::anyhow!("{e}")),
    };
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "explored {} schedules in {secs:.2} s ({:.0} schedules/s, {jobs} workers)",
        report.runs,
        report.runs as f64 / secs.max(1e-9)
    );
    print_space(&report, a.exhaustive);
    if report.interrupted {
        println!(
            "  INTERRUPTED after {} runs: the verdicts are not proofs",
            group(report.runs)
        );
    }
    if report.truncated {
        println!(
            "  TRUNCATED at --max-schedules {}: the space is larger; narrow it (--task, fewer kinds, a shorter run, a lower K) for verdicts that are proofs",
            group(a.max_schedules)
        );
    }
    let reached: Vec<String> = explore::OUTCOMES
        .iter()
        .map(|o| format!("{o} {}", group(report.reached.get(o).copied().unwrap_or(0))))
        .collect();
    println!("outcomes reached (runs): {}", reached.join(", "));
    let mut code = 0;
    code |= print_invariants(&report);
    code |= print_conditions(&report, &setup, a.exhaustive);
    print_witnesses(&l, &setup, &a, scenario_path, &report, &mut files)?;
    if let Some((s, v)) = &report.first_failure {
        print_counterexample(&l, &setup, &a, scenario_path, s, &v[0], &mut files)?;
    }
    files.commit()?;
    Ok(if code != 0 { EXIT_EXPECTATION } else { 0 })
}

fn print_space(r: &Report, exhaustive: bool) {
    if exhaustive {
        let depths: Vec<String> = r.by_depth.iter().map(|&n| group(n)).collect();
        let all = r.runs + r.pruned;
        println!(
            "space: {} schedules run (by number of injections: {}); the unperturbed run offers {} points",
            group(r.runs),
            depths.join(" + "),
            r.baseline_points
        );
        println!(
            "  reduction: {} more schedules skipped because an injection in them acts exactly like another kind at the same point ({:.1} % of {}, not counting what they would have expanded into)",
            group(r.pruned),
            100.0 * r.pruned as f64 / all.max(1) as f64,
            group(all)
        );
    } else {
        let used: Vec<String> = r
            .kinds_used
            .iter()
            .map(|(k, n)| format!("{} in {}", k.name(), group(*n)))
            .collect();
        println!(
            "space: {} runs; the unperturbed run offers {} points; kinds injected: {}",
            group(r.runs),
            r.baseline_points,
            if used.is_empty() {
                "none".to_string()
            } else {
                used.join(", ")
            }
        );
    }
}

fn print_invariants(r: &Report) -> i32 {
    if r.failing_runs == 0 {
        println!(
            "invariants: all held in {} runs ({})",
            group(r.runs),
            explore::props::INVARIANTS.join(", ")
        );
        return 0;
    }
    println!(
        "invariants: broken in {} of {} runs",
        group(r.failing_runs),
        group(r.runs)
    );
    for (name, n) in &r.broken {
        println!("  {name:<26} {} runs", group(*n));
    }
    1
}

fn print_conditions(r: &Report, setup: &Setup, exhaustive: bool) -> i32 {
    if setup.conditions.is_empty() {
        return 0;
    }
    let mut code = 0;
    let proof = exhaustive && !r.truncated && !r.interrupted;
    println!(
        "conditions{}:",
        if proof {
            ""
        } else {
            " (not an exhaustive search: Always/Never are not proofs)"
        }
    );
    for (i, c) in setup.conditions.iter().enumerate() {
        let v = r.verdict(i);
        let held = r.held.get(i).copied().unwrap_or(0);
        let note = match c.expect {
            None => String::new(),
            Some(e) if e == v => format!("  expected {}: ok", e.title()),
            // A goal reached by a partial search is met even if all its runs reached it.
            Some(VerdictName::Sometimes) if held > 0 && !proof => {
                "  expected Sometimes: reached".to_string()
            }
            Some(e) => {
                code = 1;
                format!("  expected {}: MISMATCH", e.title())
            }
        };
        println!(
            "  {:<32} {:<9} ({} of {} runs){note}",
            c.name,
            v.title(),
            group(held),
            group(r.runs)
        );
    }
    code
}

/// A condition's name as a file-name part: `yield returns 0` → `yield-returns-0`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// Where the shrunk counterexample is saved: `--save`, else NAME.schedule.
fn save_path(l: &Loaded, a: &ExploreArgs) -> PathBuf {
    a.save
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.schedule", l.scenario.scenario.name)))
}

/// Where condition `name`'s witness is saved: `--witness-dir`/NAME.CONDITION.schedule.
fn witness_path(l: &Loaded, a: &ExploreArgs, name: &str) -> PathBuf {
    let dir = a.witness_dir.clone().unwrap_or_default();
    dir.join(format!(
        "{}.{}.schedule",
        l.scenario.scenario.name,
        slug(name)
    ))
}

/// For every condition, one run that shows its verdict (where one exists): a run where it
/// held for `Sometimes` and `Always`, one where it did not for `Never`; shrunk so it still
/// shows the same (a failure fails the same way), saved as a replayable schedule, and for
/// `Sometimes` and mismatched verdicts told as an annotated timeline.
fn print_witnesses(
    l: &Loaded,
    setup: &Setup,
    a: &ExploreArgs,
    scenario_path: &std::path::Path,
    report: &Report,
    files: &mut super::outputs::Outputs,
) -> Result<()> {
    let stamp = explore::stamp(l);
    for (i, c) in setup.conditions.iter().enumerate() {
        let v = report.verdict(i);
        let Some(w) = report.witnesses.get(i) else {
            continue;
        };
        // An `always` expectation that failed is witnessed by a failing run; otherwise a
        // verdict that the condition can hold, by a run where it holds.
        let want_failure = v == VerdictName::Never
            || (c.expect == Some(VerdictName::Always) && v != c.expect.unwrap());
        let (goal, s, shows) = match want_failure {
            false => match &w.held {
                Some((_, s)) => (
                    explore::Goal::Holds(i),
                    s,
                    "a run where it holds".to_string(),
                ),
                None => continue,
            },
            true => match &w.failed {
                Some((_, s, kind)) => (
                    explore::Goal::Fails(i, kind.clone()),
                    s,
                    format!("a run where it does not hold ({kind} fails)"),
                ),
                None => continue,
            },
        };
        let mismatch = c.expect.is_some_and(|e| e != v);
        let note = Violation {
            property: "condition",
            at: 0,
            detail: format!("`{}`: {shows}", c.name),
        };
        let schedule = if a.no_shrink {
            s.clone()
        } else {
            explore::shrink_to(l, setup, s, goal, &note)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .schedule
        };
        let st = Stamped {
            stamp: stamp.clone(),
            schedule,
        };
        println!(
            "witness of `{}` ({}): {shows}, {} injected event(s), {} ns:",
            c.name,
            v.title(),
            st.schedule.inject.len(),
            st.schedule.until.unwrap_or(l.scenario.scenario.duration.0)
        );
        println!("  {st}");
        if !a.no_shrink {
            let path = witness_path(l, a, &c.name);
            let text = format!(
                "# slicesim witness for {}: `{}` is {}: {shows}\n# replay: slicesim run {} --schedule {}\n{st}\n",
                l.scenario.scenario.name,
                c.name,
                v.title(),
                scenario_path.display(),
                path.display()
            );
            files.write(&path, text.as_bytes())?;
            println!(
                "  saved: {} (replay: slicesim run {} --schedule {})",
                path.display(),
                scenario_path.display(),
                path.display()
            );
        }
        if v == VerdictName::Sometimes || mismatch {
            let (_, r) = explore::run_schedule(l, setup, &st.schedule)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("  annotated timeline:");
            let brief = crate::explain::Options { brief: true };
            for line in crate::explain::explain_with(&r.sim, brief).lines() {
                println!("    {line}");
            }
        }
    }
    Ok(())
}

fn print_counterexample(
    l: &Loaded,
    setup: &Setup,
    a: &ExploreArgs,
    scenario_path: &std::path::Path,
    s: &explore::Schedule,
    first: &explore::Violation,
    files: &mut super::outputs::Outputs,
) -> Result<()> {
    let stamp = explore::stamp(l);
    println!("counterexample (first in run order): {first}");
    println!(
        "  {}",
        Stamped {
            stamp: stamp.clone(),
            schedule: s.clone()
        }
    );
    if a.no_shrink {
        return Ok(());
    }
    let shrunk = explore::shrink(l, setup, s, first).map_err(|e| anyhow::anyhow!("{e}"))?;
    let st = Stamped {
        stamp,
        schedule: shrunk.schedule.clone(),
    };
    println!(
        "shrunk in {} runs to {} injected event(s), {} ns:",
        shrunk.tries,
        st.schedule.inject.len(),
        st.schedule.until.unwrap_or(l.scenario.scenario.duration.0)
    );
    println!("  {st}");
    for v in &shrunk.violations {
        println!("  violation: {v}");
    }
    let path = save_path(l, a);
    let text =
        format!(
        "# slicesim counterexample for {}\n# replay: slicesim run {} --schedule {}\n# {}\n{st}\n",
        l.scenario.scenario.name,
        scenario_path.display(),
        path.display(),
        shrunk.violations.first().map_or(String::new(), |v| v.to_string())
    );
    files.write(&path, text.as_bytes())?;
    println!(
        "saved: {} (replay: slicesim run {} --schedule {})",
        path.display(),
        scenario_path.display(),
        path.display()
    );
    let (_, r) =
        explore::run_schedule(l, setup, &st.schedule).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("annotated timeline of the shrunk run:");
    for line in crate::explain::explain(&r.sim).lines() {
        println!("  {line}");
    }
    Ok(())
}

/// `run --schedule FILE`: read and check a schedule against `l`.
pub fn read_schedule(
    l: &Loaded,
    path: &std::path::Path,
) -> Result<std::result::Result<Stamped, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let st = match Stamped::parse(&text) {
        Ok(st) => st,
        Err(e) => return Ok(Err(format!("{}: {e}", path.display()))),
    };
    if let Err(e) = explore::check_stamp(l, &st.stamp) {
        return Ok(Err(format!("{}: {e}", path.display())));
    }
    if st.stamp.version != env!("CARGO_PKG_VERSION") {
        eprintln!(
            "warning: {} was written by slicesim {}, this is {}",
            path.display(),
            st.stamp.version,
            env!("CARGO_PKG_VERSION")
        );
    }
    Ok(Ok(st))
}
