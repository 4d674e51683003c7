//! `rseq-abi`: the Linux rseq time slice extension as user space sees it.
//!
//! * [`layout`]: byte-exact `struct rseq`, `struct rseq_cs`, `struct rseq_slice_ctrl`.
//! * [`consts`]: every constant, syscall number and errno of the ABI.
//! * [`ctrl`]: the control word as bytes, for the merged and V1 revisions, either endian.
//! * [`platform`]: the [`Platform`] trait user code is written against.
//! * [`protocol`]: registration, prctl and the critical-section flow, written once.
//! * [`programs`]: user programs (selftest, spin lock, misbehaving clients) that run
//!   unchanged on the real kernel and in the simulator.
//! * `linux` (Linux only): the real-kernel [`Platform`], raw syscalls.
//!
//! Nothing in this crate knows about the simulator.

#![deny(missing_docs)]
// `unsafe` is confined to the real-kernel backend (`linux`), which opts back in.
#![deny(unsafe_code)]

pub mod consts;
pub mod ctrl;
pub mod layout;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod platform;
pub mod programs;
pub mod protocol;
pub mod seq;

pub use ctrl::{CtrlWord, Endian, Revision};
pub use platform::{CpuSet, Errno, Marker, Platform, SharedWord, SysResult, Syscall};
pub use protocol::{EnableMode, SliceExt, SliceOutcome};
pub use seq::{SeqOutcome, SeqStep, Sequence};
