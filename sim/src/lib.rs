//! `rseq-sim`: a deterministic discrete-event simulator of the Linux rseq time slice
//! extension, driving real user code from `rseq-abi`.
//!
//! Build a [`Simulation`] from a [`SimConfig`], add tasks running programs
//! ([`SimProgram`]: any `rseq-abi` program instantiated for [`SimPlatform`]), add interrupt
//! sources, run it until a time or a condition, then read statistics, per-task outcomes and
//! the event log. Same configuration + same seed = the same log, byte for byte.
//!
//! Modules are named after the kernel code they model; see ARCHITECTURE.md.

//!
//! The public surface is what this page lists: the configuration ([`config`]), the event
//! log ([`trace`]), the explorers' interface to every nondeterministic decision
//! ([`choice`]) and the types re-exported below. The kernel model's modules are private.

#![deny(missing_docs)]

pub mod choice;
pub mod config;
mod coro;
mod cpu;
mod entry;
mod event;
mod fair;
mod hrtick;
mod irq;
mod marks;
pub mod observe;
mod queue;
mod rseq;
mod sched;
mod signal;
mod sim;
mod syscall;
mod task;
pub mod trace;
mod workload;

pub use choice::{Chooser, Draw, InjectMenu, InjectPoint, Injection, PointOp, Replay, Seeded};
pub use config::{ConfigError, FairClass, Preempt, SimConfig, TickStalls, TieBreak};
pub use coro::{SimPlatform, SimProgram, RSEQ_AREA_SIZE, SEQ_DESC_OFF, SEQ_SIG_OFF, SEQ_TEXT};
pub use cpu::{CpuMode, RseqStats, SliceStats};
pub use event::{IrqKind, ReschedReq};
pub use irq::{IrqPattern, IrqSource};
pub use rseq::{TASK_SIZE, USER_IP};
pub use sim::{SimError, Simulation, StackPool, TaskSpec};
pub use task::{
    Policy, Task, TaskExit, TaskState, TIF_NEED_RESCHED, TIF_NEED_RESCHED_LAZY, TIF_NOTIFY_RESUME,
    TIF_OTHER_WORK, TIF_RSEQ, TIF_SIGPENDING,
};
pub use trace::{FaultCause, LogKind, LogRecord, RevokePath};
pub use workload::{spawn_selftest, SelftestTasks};
