//! `slicesim merge`: sweep shards combined into the table one run gives.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::sweep::write_sweep;

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

/// Merge shards; returns the exit code.
pub fn merge(a: MergeArgs) -> Result<i32> {
    let paths = super::sweep::sweep_paths(&a.out);
    let mut files = super::outputs::Outputs::prepare(paths.iter().map(PathBuf::as_path))?;
    let mut parts = Vec::new();
    for p in &a.parts {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        parts.push(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a sweep result", p.display()))?,
        );
    }
    let s = crate::sweep::merge(parts).map_err(|e| anyhow::anyhow!(e))?;
    write_sweep(&s, &a.out, &mut files)?;
    files.commit()?;
    println!(
        "{} of {} runs -> {}.*",
        s.rows.len(),
        s.total_runs,
        a.out.display()
    );
    Ok(0)
}
