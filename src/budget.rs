//! Budgets: every accepted input finishes in bounded time and memory.
//!
//! A scenario's run is checked against its [`Budget`] between chunks of
//! [`CHUNK_EVENTS`] events: simulated events, memory (the process's resident set,
//! measured), retained log records (for the outputs that need the whole log), and, opt-in,
//! wall time. Per-task budgets live in the engine (`max_user_steps`, the livelock budget
//! `max_ops_per_instant`). Each budget has a default that keeps a typo safe on a laptop,
//! can be raised with a `[budget]` key in the scenario and with a `--max-*` flag (the flag
//! wins), and its error names the budget, the figure reached and how to raise it.
//!
//! A budget only ever stops a run, never changes it: the memory and wall-time budgets read
//! the host, so whether they trip can differ between hosts, but a run that finishes is the
//! same run everywhere.

use serde::Deserialize;

/// Events the engine processes between two budget checks (and log drains).
pub const CHUNK_EVENTS: u64 = 1 << 16;

/// Defaults of every budget.
pub mod defaults {
    /// Simulated events in one run (a minute or two of wall time on a quiet machine).
    pub const MAX_EVENTS: u64 = 2_000_000_000;
    /// User operations of one task.
    pub const MAX_USER_STEPS: u64 = 1_000_000_000;
    /// User operations of one task at one simulated instant (a livelock beyond it).
    pub const MAX_OPS_PER_INSTANT: u64 = 100_000;
    /// Resident memory of the process, MiB.
    pub const MAX_MEMORY_MIB: u64 = 4096;
    /// Log records kept in memory for an output that needs the whole log (HTML, SVG, a
    /// chrome trace), about 60 bytes each.
    pub const MAX_LOG_EVENTS: u64 = 20_000_000;
    /// Size of a scenario file, MiB (checked before reading it).
    pub const MAX_FILE_MIB: u64 = 4;
}

/// `[budget]` in a scenario file: raises (or lowers) the defaults.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetDef {
    /// Most simulated events (default 2 000 000 000).
    pub max_events: Option<u64>,
    /// Most user operations per task (default 1 000 000 000; `machine.max_user_steps` is
    /// the older spelling).
    pub max_user_steps: Option<u64>,
    /// Most user operations of a task at one simulated instant before it is stopped as a
    /// livelock (default 100 000).
    pub max_ops_per_instant: Option<u64>,
    /// Most resident memory of the process, MiB (default 4096).
    pub max_memory_mib: Option<u64>,
    /// Most log records kept for outputs that need the whole log (default 20 000 000).
    pub max_log_events: Option<u64>,
    /// Most wall-clock seconds (default: unlimited).
    pub max_wall_s: Option<f64>,
}

/// `--max-*` flags: each overrides the scenario's `[budget]` key.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct BudgetArgs {
    /// Most simulated events [2000000000, or `[budget] max_events`].
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
    /// Most user operations per task [1000000000, or `[budget] max_user_steps`].
    #[arg(long, value_name = "N")]
    pub max_user_steps: Option<u64>,
    /// Most user operations of a task at one simulated instant before it is stopped as a
    /// livelock [100000, or `[budget] max_ops_per_instant`].
    #[arg(long, value_name = "N")]
    pub max_ops_per_instant: Option<u64>,
    /// Most resident memory, MiB [4096, or `[budget] max_memory_mib`].
    #[arg(long, value_name = "MIB")]
    pub max_memory_mib: Option<u64>,
    /// Most log records kept for --html, --timeline-svg and a chrome --trace (the other
    /// outputs stream) [20000000, or `[budget] max_log_events`].
    #[arg(long, value_name = "N")]
    pub max_log_events: Option<u64>,
    /// Stop after this many wall-clock seconds [unlimited, or `[budget] max_wall_s`].
    #[arg(long, value_name = "SECONDS")]
    pub max_wall_s: Option<f64>,
    /// Largest scenario file read, MiB [4 MiB] (checked before reading it).
    #[arg(long, value_name = "MIB")]
    pub max_file_mib: Option<u64>,
}

/// The budgets in force for one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Most simulated events.
    pub max_events: u64,
    /// Most user operations per task.
    pub max_user_steps: u64,
    /// Livelock budget: user operations of a task at one instant.
    pub max_ops_per_instant: u64,
    /// Most resident memory, bytes.
    pub max_memory_bytes: u64,
    /// Most log records kept in memory.
    pub max_log_events: u64,
    /// Most wall-clock seconds, if any.
    pub max_wall_s: Option<f64>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_events: defaults::MAX_EVENTS,
            max_user_steps: defaults::MAX_USER_STEPS,
            max_ops_per_instant: defaults::MAX_OPS_PER_INSTANT,
            max_memory_bytes: defaults::MAX_MEMORY_MIB << 20,
            max_log_events: defaults::MAX_LOG_EVENTS,
            max_wall_s: None,
        }
    }
}

impl Budget {
    /// The defaults, then the scenario's `[budget]` (and `machine.max_user_steps`), then
    /// the flags.
    pub fn resolve(def: &BudgetDef, machine_steps: Option<u64>, args: &BudgetArgs) -> Self {
        let d = Budget::default();
        Budget {
            max_events: args.max_events.or(def.max_events).unwrap_or(d.max_events),
            max_user_steps: args
                .max_user_steps
                .or(def.max_user_steps)
                .or(machine_steps)
                .unwrap_or(d.max_user_steps),
            max_ops_per_instant: args
                .max_ops_per_instant
                .or(def.max_ops_per_instant)
                .unwrap_or(d.max_ops_per_instant),
            max_memory_bytes: args
                .max_memory_mib
                .or(def.max_memory_mib)
                .map_or(d.max_memory_bytes, |m| m.saturating_mul(1 << 20)),
            max_log_events: args
                .max_log_events
                .or(def.max_log_events)
                .unwrap_or(d.max_log_events),
            max_wall_s: args.max_wall_s.or(def.max_wall_s),
        }
    }

    /// Check the run-wide budgets: `events` processed, `kept` log records retained,
    /// `wall_s` seconds elapsed. Memory is measured here (Linux: `/proc/self/statm`).
    pub fn check(&self, events: u64, kept: u64, wall_s: f64) -> Result<(), BudgetError> {
        if events > self.max_events {
            return Err(BudgetError::Exceeded {
                budget: "simulated events",
                reached: format!("{events} events"),
                limit: self.max_events.to_string(),
                flag: "max-events",
                key: "max_events",
            });
        }
        if kept > self.max_log_events {
            return Err(BudgetError::Exceeded {
                budget: "kept log (--html, --timeline-svg and a chrome trace keep the whole log)",
                reached: format!("{kept} records"),
                limit: self.max_log_events.to_string(),
                flag: "max-log-events",
                key: "max_log_events",
            });
        }
        if let Some(rss) = resident_bytes() {
            if rss > self.max_memory_bytes {
                return Err(BudgetError::Exceeded {
                    budget: "memory",
                    reached: format!("{} MiB resident", rss >> 20),
                    limit: format!("{} MiB", self.max_memory_bytes >> 20),
                    flag: "max-memory-mib",
                    key: "max_memory_mib",
                });
            }
        }
        if let Some(max) = self.max_wall_s {
            if wall_s > max {
                return Err(BudgetError::Exceeded {
                    budget: "wall time",
                    reached: format!("{wall_s:.1} s"),
                    limit: format!("{max} s"),
                    flag: "max-wall-s",
                    key: "max_wall_s",
                });
            }
        }
        Ok(())
    }
}

/// A run stopped by a budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// A budget was exhausted.
    #[error(
        "stopped: the {budget} budget is exhausted ({reached}, limit {limit}); raise it with \
         --{flag} N or `{key} = N` under [budget] in the scenario"
    )]
    Exceeded {
        /// Which budget.
        budget: &'static str,
        /// The figure reached.
        reached: String,
        /// The limit in force.
        limit: String,
        /// The flag that raises it.
        flag: &'static str,
        /// The `[budget]` key that raises it.
        key: &'static str,
    },
}

/// The process's resident set, bytes (`None` where it cannot be read).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_scenario_which_overrides_the_defaults() {
        let def = BudgetDef {
            max_events: Some(10),
            max_user_steps: Some(5),
            ..BudgetDef::default()
        };
        let args = BudgetArgs {
            max_events: Some(20),
            ..BudgetArgs::default()
        };
        let b = Budget::resolve(&def, Some(7), &args);
        assert_eq!(b.max_events, 20);
        assert_eq!(b.max_user_steps, 5);
        assert_eq!(b.max_ops_per_instant, defaults::MAX_OPS_PER_INSTANT);
        let e = b.check(21, 0, 0.0).unwrap_err().to_string();
        assert!(e.contains("--max-events") && e.contains("21 events"), "{e}");
        assert!(b.check(20, 0, 0.0).is_ok());
    }
}
