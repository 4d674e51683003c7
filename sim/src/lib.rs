//! `rseq-sim`: a deterministic discrete-event simulator of the Linux rseq time slice
//! extension, driving real user code from `rseq-abi`.
//!
//! Build a [`Simulation`] from a [`SimConfig`], add tasks running programs
//! ([`SimProgram`]: any `rseq-abi` program instantiated for [`SimPlatform`]), add interrupt
//! sources, run it until a time or a condition, then read statistics, per-task outcomes and
//! the event log. Same configuration + same seed = the same log, byte for byte.
//!
//! Modules are named after the kernel code they model; see ARCHITECTURE.md.

#![warn(missing_docs)]

pub mod choice;
pub mod config;
pub mod coro;
pub mod cpu;
mod entry;
pub mod event;
pub mod irq;
mod marks;
pub mod observe;
mod queue;
mod rseq;
mod sched;
mod signal;
pub mod sim;
mod syscall;
pub mod task;
pub mod trace;
pub mod workload;

pub use choice::{Chooser, Draw, InjectMenu, InjectPoint, Injection, PointOp, Replay, Seeded};
pub use config::{ConfigError, Preempt, SimConfig, TieBreak};
pub use coro::{SimPlatform, SimProgram};
pub use cpu::SliceStats;
pub use event::{IrqKind, ReschedReq};
pub use irq::{IrqPattern, IrqSource};
pub use rseq::{TASK_SIZE, USER_IP};
pub use sim::{SimError, Simulation, StackPool, TaskSpec};
pub use task::{Policy, Task, TaskExit, TaskState};
pub use trace::{FaultCause, LogKind, LogRecord, RevokePath};
pub use workload::{spawn_selftest, SelftestTasks};
