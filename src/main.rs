//! `slicesim`: the command line of the rseq time slice extension simulator, with the
//! built-in programs (`slicesim::cli::main_with`).

fn main() {
    slicesim::cli::main_with(slicesim::programs::Programs::builtin())
}
