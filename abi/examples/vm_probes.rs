//! Run the fidelity probes on the real kernel and print their frame (`docs/fidelity.md`).
//!
//! ```text
//! vm_probes [--only NAME] [--revision v1|7.0|7.2]   every probe, one child each
//! vm_probes --probe NAME [--revision ...]                  one probe in this process
//! vm_probes --list                                         the probes and what they check
//! vm_probes --calibrate                                    the calibration benchmarks
//! ```
//!
//! `--calibrate` runs the micro-benchmarks of `rseq_abi::programs::calibrate` instead of
//! the probes and prints their `SLICESIM-CAL` frame, which `slicesim-vm calibrate` turns
//! into a machine profile (issue 14).
//!
//! The VM's init runs it; `slicesim kernel-diff` reads the frame it prints. The default
//! revision is `7.2` (7.1 and later kernels: 64-byte registrations). Exit code 0,
//! or 2 for a bad command line. Build it static:
//! `cargo build --release -p rseq-abi --example vm_probes --target x86_64-unknown-linux-musl`

#[cfg(target_os = "linux")]
fn main() {
    use rseq_abi::linux::fidelity;
    use rseq_abi::programs::probes;
    use rseq_abi::Revision;

    let usage =
        "usage: vm_probes [--only NAME[,NAME...] | --probe NAME | --list | --calibrate] [--revision v1|7.0|7.2]";
    let bad = |why: String| -> ! {
        eprintln!("vm_probes: {why}\n{usage}");
        std::process::exit(2)
    };
    let mut args = std::env::args().skip(1);
    let (mut only, mut child, mut revision) = (None, None, Revision::PostMerge);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| bad(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--only" => only = Some(value()),
            "--probe" => child = Some(value()),
            "--revision" => {
                let v = value();
                revision = Revision::from_name(&v)
                    .unwrap_or_else(|| bad(format!("unknown revision `{v}`")));
            }
            "--calibrate" => {
                let frame =
                    rseq_abi::linux::calibrate::run(rseq_abi::linux::calibrate::Sizes::DEFAULT);
                print!("{}", frame.render());
                return;
            }
            "--list" => {
                for p in probes::PROBES {
                    println!("{:<24} {}", p.name, p.about);
                }
                return;
            }
            "-h" | "--help" => {
                println!("{usage}");
                return;
            }
            _ => bad(format!("unknown argument `{a}`")),
        }
    }
    let listed = only.iter().flat_map(|o| o.split(','));
    for name in listed.chain(child.iter().map(String::as_str)) {
        if probes::find(name).is_none() {
            bad(format!("unknown probe `{name}` (see --list)"));
        }
    }
    if let Some(name) = child {
        let probe = probes::find(&name).expect("checked above");
        std::process::exit(fidelity::run_child(probe, revision));
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let frame = fidelity::run_all(&exe, revision, only.as_deref());
    print!("{}", frame.render());
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("vm_probes: needs a Linux kernel");
    std::process::exit(1);
}
