//! `slicesim` as a library: the scenario format and what the command line does with a
//! finished simulation.
//!
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

#![warn(missing_docs)]
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
pub mod programs;
pub mod scenario;
pub mod soak;
pub mod step;
pub mod sweep;
