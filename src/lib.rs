//! `slicesim` as a library: a test harness for your own rseq programs, the command line
//! with your programs registered, the scenario format and what the command line does with a
//! finished simulation. `docs/library.md` walks from an empty crate to an explored test.
//!
//! * [`harness`]: describe a machine, spawn your code, explore its interrupt timings from
//!   a `#[test]` ([`prelude`] has what a test needs).
//! * [`programs`]: the registry of programs scenario files may name, yours included.
//! * [`cli`]: every subcommand, with a registry: `cli::main_with(Programs::builtin())` is
//!   the `slicesim` binary.
//! * [`explore`]: exhaustive, random and PCT search, invariants, shrinking, schedules.
//! * [`scenario`]: scenario files (TOML), their validation, building and running them,
//!   and their expectations.
//! * [`budget`]: the budgets that bound every run in time and memory.
//! * [`explain`]: a run told in plain language, naming the rule behind each step.
//! * [`sweep`]: parameter sweeps across seeds, shards and their merge.
//! * [`plot`]: SVG figures of a run's metrics and of a sweep.
//! * [`soak`]: random scenarios and mutations, checked to end within budget.
//! * [`step`]: walk through a run one event at a time.
//! * [`export`]: turns a simulation's event log into traces that existing tools read.
//! * [`metrics`]: latency and grant metrics of a finished run, from its event log.
//! * [`fidelity`]: the fidelity probes in the simulator, compared with a real kernel's.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod budget;
pub mod cli;
pub mod explain;
pub mod explore;
pub mod export;
pub mod fidelity;
pub mod harness;
pub mod metrics;
pub mod plot;
pub mod profile;
pub mod programs;
pub mod scenario;
pub mod soak;
pub mod step;
pub mod sweep;

/// What a test of your own program needs: `use slicesim::prelude::*;`.
///
/// ```
/// use slicesim::prelude::*;
///
/// let summary = Model::new()
///     .spawn("t", |p| p.shared_store(SharedWord(0), 1))
///     .check("stored", |run| match run.shared(SharedWord(0)) {
///         1 => Ok(()),
///         v => Err(format!("the word is {v}")),
///     })
///     .explore(Explore::exhaustive(1));
/// assert!(summary.runs >= 1);
/// ```
pub mod prelude {
    pub use crate::harness::{Explore, Model, Run, SimPlatform, Spawn};
    pub use crate::programs::Programs;
    pub use rseq_abi::{Marker, Platform, SharedWord, Syscall};
}
