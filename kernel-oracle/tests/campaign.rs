//! A random campaign: the workloads, the selftests and the race catalogue, each as
//! written and under six other configurations (preemption models, `rseq_debug`, the boot
//! switch off, a skewed fast clock with a syscall-work delay), run with seeded
//! tie-breaking, fresh seeds and random injections at every watched point, every decision
//! checked against the kernel code, until a number of decisions is reached
//! (`SLICESIM_ORACLE_CAMPAIGN_DECISIONS`, default 50,000; CI runs 1,000,000).
//!
//! Every run is a function of its index: the scenario (round robin), the seed (the
//! index) and the injection generator (seeded by the index), so a difference names the
//! run that reproduces it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kernel_oracle::diff::Report;

fn skip() -> bool {
    kernel_oracle::skip_without_source()
}

fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut out = vec![root.join("grant-revoke-race.toml")];
    for dir in ["workloads", "selftest", "races"] {
        let mut fs: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .expect("scenario directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        fs.sort();
        out.extend(fs);
    }
    out
}

#[test]
fn a_random_campaign_decides_as_the_kernel_code() {
    if skip() {
        return;
    }
    let target: u64 = std::env::var("SLICESIM_ORACLE_CAMPAIGN_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    // Each scenario as written, and under the other configurations the oracle covers:
    // the preemption models the feature allows, rseq_debug, the boot switch off, a
    // skewed fast clock, a syscall-entry work delay.
    let variants: [&[&str]; 7] = [
        &[],
        &["machine.preempt=\"full\""],
        &["machine.preempt=\"lazy\""],
        &["machine.preempt=\"rt\""],
        &["machine.rseq_debug=true"],
        &["machine.slice_ext_boot=false"],
        &[
            "machine.fast_clock_skew_ns=-3000",
            "machine.syscall_work_delay=\"2us\"",
        ],
    ];
    let loaded: Vec<_> = files()
        .iter()
        .flat_map(|f| variants.iter().map(move |v| (f, v)))
        .filter_map(|(f, v)| {
            let sets: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            slicesim::scenario::load(f, &sets).ok()
        })
        // Only what the oracle checks: the 7.2 revision.
        .filter(|l| {
            slicesim::scenario::build_with(l, None, None, false)
                .is_ok_and(|b| b.sim.config().revision == rseq_abi::Revision::PostMerge)
        })
        .collect();
    assert!(loaded.len() > 5, "only {} scenarios", loaded.len());
    let mut all = Report::default();
    let started = Instant::now();
    let runs = kernel_oracle::drive::campaign(&loaded, target, &mut all).expect("campaign runs");
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "campaign: {runs} runs, {} decisions checked {:?}, skipped {:?}, {} differences, {secs:.1} s ({:.0} decisions/s)",
        all.total_checked(),
        all.checked,
        all.skipped,
        all.difference_count,
        all.total_checked() as f64 / secs.max(1e-9)
    );
    for d in &all.differences {
        eprintln!("{d}\n");
    }
    assert_eq!(
        all.difference_count, 0,
        "the model and the kernel code differ"
    );
}
