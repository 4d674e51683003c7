//! `slicesim` as a library: what the command line does with a finished simulation.
//!
//! [`export`] turns a simulation's event log into traces that existing tools read.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod export;
