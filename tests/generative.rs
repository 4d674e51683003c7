//! Generated and mutated scenarios (`slicesim::soak`): every case ends with a result or a
//! clear error within its budget, never a panic; two runs give the same log hash; the
//! counter identities hold. A small budget here; `cargo run --release --example soak --
//! --cases N` runs a long one.

mod support;
use std::path::{Path, PathBuf};

use slicesim::soak::{self, Verdict};
use support::{scratch, Scratch};

/// A scratch folder and the path of the case file `{name}.toml` in it (keep the folder
/// alive while the file is used: it is removed on drop).
fn case_file(name: &str) -> (Scratch, PathBuf) {
    let dir = scratch("gen");
    let path = dir.join(format!("{name}.toml"));
    (dir, path)
}

#[test]
fn generated_scenarios_end_within_their_budget_deterministically() {
    let (_dir, path) = case_file("generated");
    let mut ran = 0;
    for seed in 0..120 {
        let text = soak::generate(seed);
        match soak::check_case(&path, text.as_bytes()) {
            Ok(Verdict::Ran { .. }) => ran += 1,
            Ok(_) => {}
            Err(why) => panic!("case {seed}: {why}\n{text}"),
        }
    }
    // Most generated scenarios are valid and run.
    assert!(ran > 60, "only {ran} of 120 ran");
}

#[test]
fn mutated_bundled_scenarios_end_with_a_result_or_a_clear_error() {
    let (_dir, path) = case_file("mutated");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = Vec::new();
    for sub in ["edge", "workloads", "races", "selftest"] {
        for e in std::fs::read_dir(root.join(sub)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "toml") {
                files.push(e.path());
            }
        }
    }
    files.sort();
    for (i, f) in files.iter().enumerate().step_by(3) {
        let text = std::fs::read_to_string(f).unwrap();
        for k in 0..2 {
            let seed = (i * 2 + k) as u64;
            let bytes = soak::mutate(&text, seed);
            if let Err(why) = soak::check_case(&path, &bytes) {
                panic!("{} mutated with seed {seed}: {why}", f.display());
            }
        }
    }
}

#[test]
fn a_failing_case_shrinks_to_the_lines_that_fail() {
    // A file that cannot be written is a failure of the harness, not a verdict: shrinking
    // keeps it failing down to nothing.
    let bad = Path::new("/nonexistent-dir/case.toml");
    assert!(soak::check_case(bad, b"[scenario]\nname = \"x\"\n").is_err());
    assert!(soak::shrink(bad, b"a\nb\nc").len() <= 1);
}

#[test]
fn a_task_killed_inside_a_grant_keeps_the_counter_identity() {
    // Found by the soak run (case 101186, shrunk): SIGTERM to selftest tasks holding grants.
    let case = r#"[scenario]
name = "killed-in-grant"
duration = "20us"
[machine]
cpus = 1
ctx_switch = "1ns"
[[task]]
name = "t0"
program = "selftest"
count = 3
[[irq]]
cpu = 0
kind = "device_resched"
every = "7us"
[[irq]]
cpu = 0
kind = "device_resched_lazy"
at = "10us"
[[irq]]
cpu = 0
kind = "resched_ipi"
at = "10us"
[[signal]]
task = "t0"
at = "15us"
signo = 15
"#;
    let (_dir, path) = case_file("killed");
    let v = soak::check_case(&path, case.as_bytes());
    assert!(matches!(v, Ok(Verdict::Ran { .. })), "{v:?}");
}
