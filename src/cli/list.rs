//! `slicesim list`: the programs with their parameters and the bundled scenarios.

use std::path::Path;

use anyhow::Result;

use crate::scenario;

use super::common::collect;

/// `slicesim list`: the programs with their parameters and the bundled scenarios. A closed
/// pipe (`slicesim list | head`) ends the listing quietly.
pub fn list(dir: &Path, programs: &crate::programs::Programs) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut body = || -> std::io::Result<()> {
        writeln!(out, "programs:")?;
        for (name, params, what) in [
            (
                "selftest",
                "variant, total, run_word",
                "the kernel selftest's main loop (spec §9)",
            ),
            (
                "selftest_noise",
                "variant, run_word",
                "the selftest's noise thread",
            ),
            (
                "spinlock",
                "lock_word, hold, think, run, use_ext, iterations",
                "a spin lock whose holder asks for extensions",
            ),
            (
                "misbehave",
                "misbehavior, hold, iterations, enable",
                "a client breaking a rule of spec §7/§11",
            ),
            ("script", "steps", "a thread spelled out step by step"),
            (
                "sleeper",
                "think (sleep), hold (burn), iterations",
                "sleeps and wakes (wakeup preemption)",
            ),
            ("spinner", "hold, iterations", "a CPU hog"),
            (
                "percpu_counter",
                "hold, think, iterations, use_ext",
                "a per-CPU counter updated with a restartable sequence (hold inside it), retried when aborted",
            ),
        ] {
            writeln!(
                out,
                "  {name:<15} {what}\n  {:<15} parameters: {params}",
                ""
            )?;
        }
        for name in programs.registered() {
            let keys = programs.param_keys(name);
            writeln!(
                out,
                "  {name:<15} registered by this tool\n  {:<15} params: {}",
                "",
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    format!("{{ {} }}", keys.join(", "))
                }
            )?;
        }
        writeln!(out, "bundled scenarios ({}):", dir.display())?;
        for f in collect(&[dir.to_path_buf()]).unwrap_or_default() {
            match scenario::load_with(
                &f,
                &[],
                crate::budget::defaults::MAX_FILE_MIB << 20,
                programs,
            ) {
                Ok(l) => writeln!(out, "  {:<45} {}", f.display(), l.short_description())?,
                Err(e) => writeln!(out, "  {:<45} INVALID: {e}", f.display())?,
            }
        }
        Ok(())
    };
    match body() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(Into::into),
    }
}
