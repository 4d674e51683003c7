//! The race catalogue's exhaustive searches at K = 2 with every decision of every
//! schedule checked against the kernel code.
//!
//! The search is the explorer's (`slicesim::explore`: every schedule of at most K
//! injections at distinct points, kinds from each point's reduced menu, children of a
//! schedule at the points after its last injection), walked here depth first with the
//! oracle attached to each run; the number of schedules is checked against
//! `slicesim::explore::exhaustive`'s own count, so the two searches are the same.

use std::path::Path;
use std::time::Instant;

use kernel_oracle::diff::Report;
use slicesim::explore::Setup;

fn skip() -> bool {
    kernel_oracle::skip_without_source()
}

#[test]
fn the_race_catalogue_explored_at_k2_decides_as_the_kernel_code() {
    if skip() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/races");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenarios/races")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut all = Report::default();
    let (mut schedules, mut secs) = (0u64, 0f64);
    for f in &files {
        let l = slicesim::scenario::load(f, &[]).expect("catalogue scenario");
        let setup = Setup::new(&l, &[], Some(2)).expect("explore setup");
        let seed = l.scenario.scenario.seed;
        let mut total = Report::default();
        let started = Instant::now();
        let runs =
            kernel_oracle::drive::exhaustive(&l, &setup, seed, &mut total).expect("explores");
        secs += started.elapsed().as_secs_f64();
        let theirs = slicesim::explore::exhaustive(&l, &setup, seed, 1).expect("explores");
        assert_eq!(
            runs,
            theirs.runs,
            "{}: not the explorer's search",
            f.display()
        );
        eprintln!(
            "{}: {runs} schedules, {} decisions checked, {} skipped, {} differences",
            f.file_name().unwrap_or_default().to_string_lossy(),
            total.total_checked(),
            total.total_skipped(),
            total.difference_count
        );
        schedules += runs;
        all.merge(&total);
    }
    eprintln!(
        "race catalogue at K=2: {schedules} schedules, {} decisions checked {:?}, skipped {:?}, {} differences; {:.0} schedules/s with the oracle on one core",
        all.total_checked(),
        all.checked,
        all.skipped,
        all.difference_count,
        schedules as f64 / secs.max(1e-9)
    );
    for d in &all.differences {
        eprintln!("{d}\n");
    }
    assert_eq!(
        all.difference_count, 0,
        "the model and the kernel code differ"
    );
}
