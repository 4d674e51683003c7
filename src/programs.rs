//! The registry of programs a scenario's `[[task]]` may name.

/// The programs scenario files may name: the built-in library, plus any a user registers.
#[derive(Clone, Default)]
pub struct Programs {}

impl Programs {
    /// The built-in programs (`selftest`, `spinlock`, ...).
    pub fn builtin() -> Programs {
        Programs {}
    }
}
