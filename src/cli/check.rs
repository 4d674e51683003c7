//! `slicesim check`: every scenario under the given paths against its expectations, in
//! parallel, with an optional JUnit report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

use crate::export::xml_text;
use crate::scenario::{self, CheckOutcome, Loaded, ScenarioError};

use super::common::collect;
use super::{EXIT_ERROR, EXIT_EXPECTATION, EXIT_INVALID};

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

/// What checking one file gave.
enum Verdict {
    Pass { checks: usize, events: usize },
    Fail { failed: Vec<String>, checks: usize },
    Invalid(ScenarioError),
}

fn check_one(path: &Path, programs: &crate::programs::Programs) -> (String, Verdict) {
    let loaded: Loaded = match scenario::load_with(
        path,
        &[],
        crate::budget::defaults::MAX_FILE_MIB << 20,
        programs,
    ) {
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
pub fn check(a: CheckArgs, programs: &crate::programs::Programs) -> Result<i32> {
    let files = collect(&a.paths)?;
    if files.is_empty() {
        anyhow::bail!("no *.toml scenarios under {:?}", a.paths);
    }
    // The report's file is named before the runs: an unwritable one fails now.
    let mut out = super::outputs::Outputs::prepare(a.junit.as_deref())?;
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
                let v = check_one(f, programs);
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
        out.write(path, junit(&results, &files).as_bytes())?;
    }
    out.commit()?;
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
