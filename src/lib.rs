//! `slicesim`: the scenario format and the pieces of the command line that are worth
//! testing as a library.

#![warn(missing_docs)]

pub mod scenario;
