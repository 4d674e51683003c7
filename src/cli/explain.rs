//! `slicesim explain`: a run told event by event, naming the rule behind each step.

use anyhow::Result;

use super::common::{load_or_report, reject_run_only, simulate, RunArgs};

/// `slicesim explain`'s arguments: `run`'s, plus `--brief`.
#[derive(clap::Args)]
pub struct ExplainArgs {
    /// The scenario and the run options `run` takes.
    #[command(flatten)]
    pub run: RunArgs,
    /// Leave out the program's loads of the word and the refusals made before the kernel
    /// reads it (feature not enabled, no user_irq): a denser story.
    #[arg(long)]
    pub brief: bool,
}

/// `slicesim explain`: run a scenario and print its story.
pub fn explain(e: ExplainArgs, programs: &crate::programs::Programs) -> Result<i32> {
    let a = e.run;
    if let Some(code) = reject_run_only(&a) {
        return Ok(code);
    }
    let loaded = match load_or_report(&a, programs) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let (r, _) = match simulate(&a, &loaded, true, &mut |_, _| Ok(()))? {
        Ok(rv) => rv,
        Err(code) => return Ok(code),
    };
    println!(
        "{}: {}",
        loaded.scenario.scenario.name,
        loaded.short_description()
    );
    let opts = crate::explain::Options { brief: e.brief };
    print!("{}", crate::explain::explain_with(&r.sim, opts));
    Ok(0)
}
