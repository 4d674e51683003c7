//! `ticket-lock-sim`: every `slicesim` subcommand, with `ticket_lock` registered beside
//! the built-in programs, so scenario files can say `program = "ticket_lock"`:
//!
//! ```text
//! cargo run -p ticket-lock --bin ticket-lock-sim -- run scenarios/two-threads.toml
//! cargo run -p ticket-lock --bin ticket-lock-sim -- explore scenarios/two-threads.toml --exhaustive
//! ```

use slicesim::programs::Programs;
use ticket_lock::{ticket_lock, Mistake, TicketParams};

fn main() {
    slicesim::cli::main_with(
        Programs::builtin().with("ticket_lock", |p, params: &TicketParams| {
            ticket_lock(p, params, Mistake::None)
        }),
    )
}
