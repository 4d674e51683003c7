//! `slicesim stats`: run a scenario and print only the kernel's debugfs `rseq/stats`.

use anyhow::Result;

use super::common::{load_or_report, reject_run_only, simulate, RunArgs};

/// `slicesim stats`: run a scenario and print only `rseq/stats` in the kernel's format.
pub fn stats(a: RunArgs, programs: &crate::programs::Programs) -> Result<i32> {
    if let Some(code) = reject_run_only(&a) {
        return Ok(code);
    }
    let loaded = match load_or_report(&a, programs) {
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
