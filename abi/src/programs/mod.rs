//! User programs, generic over the [`Platform`](crate::Platform), that scenarios run in the
//! simulator and the probe runs on a real kernel, unchanged.
//!
//! Each program returns its result as named counters ([`Counters`]) so the simulator can
//! report and check them without knowing the program.

pub mod selftest;

pub use selftest::{SelftestCounters, SelftestParams};

/// A program's result: named counters in a fixed order.
pub type Counters = Vec<(&'static str, i64)>;
