//! `slicesim step`: walk through a run one event at a time from stdin's commands.

use anyhow::Result;

use crate::scenario;

use super::common::{load_or_report, read_schedule_arg, reject_run_only, RunArgs};

/// `slicesim step`: build a scenario and walk through it from stdin's commands.
pub fn step(a: RunArgs, programs: &crate::programs::Programs) -> Result<i32> {
    if let Some(code) = reject_run_only(&a) {
        return Ok(code);
    }
    let loaded = match load_or_report(&a, programs) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let b = match read_schedule_arg(&a, &loaded)? {
        None => scenario::build(&loaded, a.seed, a.until.map(|n| n.0)),
        Some(Err(code)) => return Ok(code),
        Some(Ok((st, setup))) => crate::explore::build_replay(&loaded, &setup, &st.schedule),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut sim = b.sim;
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match crate::step::run(&mut sim, b.duration, &mut input, &mut out) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        r => r.map(|_| 0).map_err(Into::into),
    }
}
