//! `slicesim compare`: the same workload under two configurations across seeds, every
//! metric compared (means, difference, Welch's t-test).

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::common::load_error_code;

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
pub fn compare(a: CompareArgs, programs: &crate::programs::Programs) -> Result<i32> {
    use std::sync::atomic::AtomicBool;
    let stop = AtomicBool::new(false);
    let jobs = a
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let b_file = a.b_file.clone().unwrap_or_else(|| a.a_file.clone());
    let side = |file: &Path, sets: &[String]| {
        crate::sweep::run(
            programs,
            file,
            sets,
            &[],
            a.seeds,
            None,
            jobs,
            &stop,
            &|_, _| {},
        )
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
    let rows = crate::sweep::compare(&ra.rows, &rb.rows);
    print!(
        "{}",
        crate::sweep::compare_table(
            &label(&a.a_file, &a.a_sets),
            &label(&b_file, &a.b_sets),
            &rows
        )
    );
    println!("({} seeds per side)", a.seeds);
    Ok(0)
}
