//! The kernel selftest's loop under the guest kernel's event tracing; every slice-timer
//! expiry is printed with the events around it on every CPU (README.md).

#[cfg(target_os = "linux")]
fn main() {
    std::process::exit(trace::main());
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("slice-trace runs on Linux (in the slicesim VM)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod trace {
    use rseq_abi::linux::{LinuxPlatform, SharedMem, POST_MERGE_RSEQ_LEN};
    use rseq_abi::programs::misbehave::{self, Misbehavior};
    use rseq_abi::programs::percpu::percpu_counter;
    use rseq_abi::programs::probes::{seq_probe_params, PROBE_MISBEHAVE};
    use rseq_abi::programs::selftest::{
        selftest_loop, selftest_noise, selftest_setup, SelftestParams,
    };
    use rseq_abi::{Platform, Revision, SharedWord};

    const TRACEFS: &str = "/sys/kernel/tracing";
    const EVENTS: [&str; 6] = ["sched", "timer", "irq", "irq_vectors", "ipi", "workqueue"];
    /// How far before an expiry the context goes, seconds of trace clock (a copy named
    /// `slice-trace-VARIANT-wUS` widens it to US µs).
    const WINDOW_S: f64 = 12e-6;

    fn write(path: &str, value: &str) -> Result<(), String> {
        std::fs::write(format!("{TRACEFS}/{path}"), value).map_err(|e| format!("{path}: {e}"))
    }

    /// A trace line's timestamp (`... [001] d.h.. 0.993593: event: ...`).
    fn stamp(line: &str) -> Option<f64> {
        line.split_whitespace()
            .find(|t| t.ends_with(':') && t.contains('.'))
            .and_then(|t| t.trim_end_matches(':').parse().ok())
    }

    pub fn main() -> i32 {
        let mut args = std::env::args();
        // `/init` runs extras without arguments: a copy named `slice-trace-n50_2_50`
        // picks its variant by name.
        let by_name = args
            .next()
            .and_then(|a0| a0.rsplit_once("slice-trace-").map(|(_, v)| v.to_string()));
        let variant = args.next().or(by_name).unwrap_or_else(|| "n2_2_50".into());
        let (variant, window_s) = match variant
            .rsplit_once("-w")
            .and_then(|(v, us)| Some((v.to_string(), us.parse::<f64>().ok()? * 1e-6)))
        {
            Some(widened) => widened,
            None => (variant, WINDOW_S),
        };
        let ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
        // `misbehave-KIND`: the fidelity probe's misbehaving client (20,000 clock-timed
        // 2 µs sections) beside the n2_2_50 noise thread, instead of the selftest's loop.
        let misbehavior = match variant.strip_prefix("misbehave-") {
            Some(kind) => match Misbehavior::from_name(kind) {
                Some(k) => Some(k),
                None => {
                    eprintln!("unknown misbehavior {kind}");
                    return 2;
                }
            },
            None => None,
        };
        // `seq`: the fidelity probe `seq_under_ext`'s thread (2,000 per-CPU counter updates,
        // each a 2 µs restartable sequence under an extension request) beside the same noise.
        let seq = variant == "seq";
        let selftest_variant = if misbehavior.is_some() || seq {
            "n2_2_50"
        } else {
            &variant
        };
        let Some(mut params) = SelftestParams::variant(selftest_variant) else {
            eprintln!("unknown variant {variant}");
            return 2;
        };
        params.total_ns = ms * 1_000_000;
        if !std::path::Path::new(&format!("{TRACEFS}/trace_marker")).exists() {
            eprintln!("no tracefs at {TRACEFS}: boot with `slicesim-vm run --trace-kernel`");
            return 2;
        }
        let setup = || -> Result<(), String> {
            write("tracing_on", "0")?;
            write("trace", "")?;
            write("buffer_size_kb", "16384")?;
            for e in EVENTS {
                write(&format!("events/{e}/enable"), "1")?;
            }
            Ok(())
        };
        if let Err(e) = setup() {
            eprintln!("tracefs: {e}");
            return 2;
        }

        let shared = SharedMem::new(rseq_abi::programs::probes::SHARED_WORDS);
        let run = SharedWord(0);
        let mut p = LinuxPlatform::new(shared.clone())
            .with_rseq_len(POST_MERGE_RSEQ_LEN)
            .with_revision(Revision::PostMerge);
        // The selftest's setup pins to the noise CPU; the misbehaving client and the
        // sequences register and enable by themselves, after the same pinning.
        if let Err(e) = selftest_setup(&mut p) {
            eprintln!("selftest setup: {e}");
            return 3;
        }
        if misbehavior.is_some() || seq {
            let _ = rseq_abi::protocol::unregister(&mut p);
        }
        p.shared_store(run, 1);
        let noise_mem = shared.clone();
        let noise = std::thread::spawn(move || {
            let mut n = LinuxPlatform::new(noise_mem);
            selftest_noise(&mut n, &params, run)
        });
        let _ = write("tracing_on", "1");
        let report = match misbehavior {
            Some(kind) => format!(
                "{:?}\n",
                misbehave::run(&mut p, kind, &PROBE_MISBEHAVE).counters()
            ),
            None if seq => {
                let params = seq_probe_params(2_000, true);
                format!("{:?}\n", percpu_counter(&mut p, &params).counters())
            }
            None => selftest_loop(&mut p, &params).to_string(),
        };
        let _ = write("tracing_on", "0");
        p.shared_store(run, 0);
        let _ = noise.join();
        print!("{report}");

        let cpus = (0..64)
            .filter_map(|c| {
                let text =
                    std::fs::read_to_string(format!("{TRACEFS}/per_cpu/cpu{c}/trace")).ok()?;
                let lines: Vec<(f64, String)> = text
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| Some((stamp(l)?, l.trim().to_string())))
                    .collect();
                Some((c, lines))
            })
            .collect::<Vec<_>>();
        let mut expiries = 0;
        let mut with_others = 0;
        for (cpu, lines) in &cpus {
            for (i, (t, l)) in lines.iter().enumerate() {
                if !(l.contains("hrtimer_expire_entry") && l.contains("rseq_slice_expired")) {
                    continue;
                }
                expiries += 1;
                println!("=== slice timer expired on CPU {cpu} at {t:.6}");
                let first = lines[..i].partition_point(|(s, _)| *s < t - window_s);
                for (_, m) in &lines[first..(i + 3).min(lines.len())] {
                    println!("  {m}");
                }
                let mut others = 0;
                for (c, ol) in cpus.iter().filter(|(c, _)| c != cpu) {
                    for (s, m) in ol.iter().filter(|(s, _)| *s >= t - window_s && *s <= *t) {
                        let _ = s;
                        others += 1;
                        println!("  cpu{c}> {m}");
                    }
                }
                if others > 0 {
                    with_others += 1;
                }
            }
        }
        println!(
            "# slice timer expiries: {expiries}, with another CPU active in the {:.0} us before: {with_others}",
            window_s * 1e6
        );
        0
    }
}
