//! Every bundled scenario (`scenarios/**`) run with the kernel oracle attached: each
//! decision of the model replayed in Linux 7.2's own code and compared (`src/diff.rs`).
//! A scenario written for another revision (7.0, V1) or a big-endian word is run a second
//! time as 7.2, little-endian (`--set`), so its situations (registration errors, the V1
//! races…) reach the kernel code too; only decisions are compared there, not the
//! scenario's own expectations.

use std::path::{Path, PathBuf};

use kernel_oracle::diff::{Differ, Report};

fn skip() -> bool {
    kernel_oracle::skip_without_source()
}

fn scenarios(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            scenarios(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

/// Run one scenario file with the oracle attached; `None` if it does not load (the
/// scenario tests cover that).
pub fn run_one(path: &Path, sets: &[String]) -> Option<Report> {
    let l = slicesim::scenario::load(path, sets).ok()?;
    let mut built = slicesim::scenario::build_with(&l, None, None, false).ok()?;
    let (differ, report) = Differ::new();
    report.lock().unwrap().context = format!("slicesim run {} {sets:?}", path.display());
    built.sim.set_observer(Some(Box::new(differ)));
    built.sim.run_until(built.duration);
    built.sim.set_observer(None);
    let r = report.lock().unwrap().clone();
    Some(r)
}

#[test]
fn every_bundled_scenario_decides_as_the_kernel_code() {
    if skip() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files = Vec::new();
    scenarios(&root, &mut files);
    let mut total = Report::default();
    let mut ran = 0;
    let as_72 = [
        "machine.revision=\"7.2\"".to_string(),
        "machine.endian=\"little\"".to_string(),
    ];
    for f in &files {
        let Some(r) = run_one(f, &[]) else { continue };
        ran += 1;
        eprintln!(
            "{}: {} decisions checked, {} skipped, {} differences",
            f.strip_prefix(&root).unwrap_or(f).display(),
            r.total_checked(),
            r.total_skipped(),
            r.difference_count
        );
        let other = r.total_skipped() > 0;
        total.merge(&r);
        if other {
            if let Some(r) = run_one(f, &as_72) {
                eprintln!(
                    "{} as 7.2, little-endian: {} decisions checked, {} skipped, {} differences",
                    f.strip_prefix(&root).unwrap_or(f).display(),
                    r.total_checked(),
                    r.total_skipped(),
                    r.difference_count
                );
                total.merge(&r);
            }
        }
    }
    eprintln!(
        "{ran} scenarios: {} decisions checked {:?}; skipped {:?}; {} differences",
        total.total_checked(),
        total.checked,
        total.skipped,
        total.difference_count
    );
    for d in &total.differences {
        eprintln!("{d}\n");
    }
    assert!(ran > 30, "only {ran} scenarios ran");
    assert!(total.total_checked() > 0);
    assert_eq!(
        total.difference_count, 0,
        "the model and the kernel code differ"
    );
}

/// An observer that hands the differ a model whose grants leave the word untouched: the
/// oracle must see it.
struct Corrupt(Differ);

impl rseq_sim::observe::Observer for Corrupt {
    fn decision(&mut self, d: &rseq_sim::observe::Decision<'_>) {
        let mut after = d.after.clone();
        if let (rseq_sim::observe::Site::Grant { .. }, Some(t)) = (&d.site, after.task.as_mut()) {
            t.rseq.granted = !t.rseq.granted;
        }
        self.0.decision(&rseq_sim::observe::Decision {
            site: d.site.clone(),
            outcome: d.outcome.clone(),
            before: d.before,
            after: &after,
            config: d.config,
            slice_ext_nsec: d.slice_ext_nsec,
        });
    }
}

#[test]
fn a_model_that_decides_otherwise_is_caught() {
    if skip() {
        return;
    }
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/edge/grant-then-yield.toml");
    let l = slicesim::scenario::load(&path, &[]).expect("bundled scenario");
    let mut built = slicesim::scenario::build_with(&l, None, None, false).expect("builds");
    let (differ, report) = Differ::new();
    built.sim.set_observer(Some(Box::new(Corrupt(differ))));
    built.sim.run_until(built.duration);
    let r = report.lock().unwrap();
    assert!(r.difference_count > 0, "a flipped grant went unnoticed");
    let d = &r.differences[0];
    assert!(d.fields.iter().any(|f| f.contains("granted")), "{d}");
}
