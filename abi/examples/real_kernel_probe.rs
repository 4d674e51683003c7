//! Run the kernel selftest's loop (`slice_test.c`, spec §9) on the real kernel.
//!
//! ```text
//! real_kernel_probe [--duration-ms N] [--variant n2_2_50|n50_2_50|n2_2_50_no_yield]
//!                   [--rseq-len N] [--revision merged|v1|post-merge] [--force]
//! ```
//!
//! Prints the registration and prctl results (SET, GET, `rseq::flags` AVAILABLE/ENABLED),
//! then the six counters in the selftest's format. The logic lives in
//! `rseq_abi::linux::probe`; see docs/real-kernel.md.
//!
//! Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | setup succeeded, the loop ran, the counters satisfy the selftest's invariants |
//! | 2 | bad command line (usage printed on stderr) |
//! | 3 | `sched_getaffinity` / `sched_setaffinity` failed |
//! | 4 | `rseq()` registration failed because glibc owns rseq: run with `GLIBC_TUNABLES=glibc.pthread.rseq=0` or use the static musl build |
//! | 5 | `rseq()` registration failed for another reason (errno printed) |
//! | 6 | `prctl(PR_RSEQ_SLICE_EXTENSION, SET, ENABLE)` failed: the kernel lacks the feature (`EINVAL` before 7.0, `ENOTSUPP` 524 when compiled out or boot-disabled) |
//! | 7 | the loop ran but its counters violate the selftest's invariants |
//! | 101 | panic |
//!
//! Build it static (no glibc, hence no glibc-owned registration):
//! `cargo build --release -p rseq-abi --example real_kernel_probe --target x86_64-unknown-linux-musl`

#[cfg(target_os = "linux")]
fn main() {
    use rseq_abi::linux::probe::{self, ArgError, ProbeOptions};

    let options = match ProbeOptions::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(ArgError::Help) => {
            println!("{}", probe::USAGE);
            return;
        }
        Err(ArgError::Bad(why)) => {
            eprintln!("real_kernel_probe: {why}\n{}", probe::USAGE);
            std::process::exit(probe::EXIT_USAGE);
        }
    };
    let report = probe::run(&options);
    print!("{report}");
    std::process::exit(report.exit_code());
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("real_kernel_probe: needs a Linux kernel");
    std::process::exit(1);
}
