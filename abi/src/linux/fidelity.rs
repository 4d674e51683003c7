//! The fidelity probes ([`crate::programs::probes`]) on the real kernel, as the VM runs them.
//!
//! [`run_all`] runs each probe in a child process (this same executable, re-run with
//! `--probe NAME`, see [`run_child`]): a fresh process gives every probe a fresh,
//! unregistered thread, and a probe the kernel kills with SIGSEGV takes only its child down.
//! The parent reads how the child ended (its [`EXIT_KEY`]), reads debugfs `rseq/stats`
//! before and after it, and collects everything in a [`Frame`] for the serial console.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::ctrl::Revision;
use crate::linux::{
    default_sigsegv, kernel_release, LinuxPlatform, SharedMem, POST_MERGE_RSEQ_LEN,
};
use crate::platform::{Platform, Syscall};
use crate::programs::probes::{
    self, parse_debugfs_stats, stats_results, Frame, Probe, Threads, EXIT_KEY, RUN_WORD,
};
use crate::programs::selftest::selftest_noise;

/// debugfs `rseq/stats` (spec §3.4).
pub const DEBUGFS_STATS: &str = "/sys/kernel/debug/rseq/stats";
/// debugfs `rseq/slice_ext_nsec` (spec §4.1).
pub const DEBUGFS_SLICE_EXT_NSEC: &str = "/sys/kernel/debug/rseq/slice_ext_nsec";
/// debugfs file naming the preemption model, the current one in parentheses.
pub const DEBUGFS_PREEMPT: &str = "/sys/kernel/debug/sched/preempt";

/// Run `probe` in this process and print its results as `key = value` lines on stdout:
/// what a child started by [`run_all`] does. Returns the process exit code (0).
///
/// Its platform registers post-merge style ([`POST_MERGE_RSEQ_LEN`] bytes) when
/// `revision` is [`Revision::PostMerge`], 32 bytes otherwise.
pub fn run_child(probe: &Probe, revision: Revision) -> i32 {
    // A kernel-sent SIGSEGV must kill the child, as it kills a C program.
    if let Err(e) = default_sigsegv() {
        eprintln!("signal(SIGSEGV, SIG_DFL): {e}");
        return 3;
    }
    // The run word, and room for the sequence probes' per-CPU counters (words 100 + CPU).
    let shared = SharedMem::new(crate::programs::probes::SHARED_WORDS);
    let len = if revision == Revision::PostMerge {
        POST_MERGE_RSEQ_LEN
    } else {
        32
    };
    let mut p = LinuxPlatform::new(shared.clone())
        .with_rseq_len(len)
        .with_revision(revision);
    let results = match probe.threads {
        Threads::Alone => (probe.main)(&mut p),
        Threads::WithNoise(params) => {
            if let Some(mask) = probes::affinity(probe) {
                // Before the noise thread exists, so it inherits the pinning.
                if let Err(e) = p.syscall(Syscall::SchedSetaffinity(mask)) {
                    eprintln!("sched_setaffinity: {e}");
                    return 3;
                }
            }
            p.shared_store(RUN_WORD, 1);
            let noise_shared = shared.clone();
            let noise = std::thread::spawn(move || {
                let mut n = LinuxPlatform::new(noise_shared);
                selftest_noise(&mut n, &params, RUN_WORD)
            });
            probe.quiet_start(&mut p);
            let results = (probe.main)(&mut p);
            p.shared_store(RUN_WORD, 0);
            let _ = noise.join();
            results
        }
    };
    let mut out = std::io::stdout().lock();
    for (k, v) in results {
        let _ = writeln!(out, "{k} = {v}");
    }
    let _ = out.flush();
    0
}

/// The clocksource timekeeping runs on.
pub const CURRENT_CLOCKSOURCE: &str =
    "/sys/devices/system/clocksource/clocksource0/current_clocksource";

/// Sleeps of this length show whether hrtimers have high resolution yet.
const HRES_PROBE_SLEEP: std::time::Duration = std::time::Duration::from_micros(50);

/// Wait until hrtimers fire with high resolution, up to 30 s; returns how long it took.
///
/// A kernel boots with the hrtimer base in low-resolution mode: every hrtimer expires at
/// the next tick, so a 50 µs sleep takes a jiffy (1 ms at HZ=1000). It switches to high
/// resolution only once a clocksource fit for it is installed (`tick_check_oneshot_change()`
/// after the clocksource watchdog has verified the TSC), which under qemu can be a second
/// after `/init` starts. Probes that ran before it measured a different kernel: the first
/// icount consoles (issue 14) had the noise thread of the first selftest probe waking
/// every 1 ms instead of every ~106 µs, and a tenth of its grants. Five consecutive
/// 50 µs sleeps (plus the 50 µs default slack) shorter than 400 µs mean high resolution.
pub fn wait_for_high_res_timers() -> std::time::Duration {
    let start = std::time::Instant::now();
    let mut short = 0;
    while short < 5 && start.elapsed() < std::time::Duration::from_secs(30) {
        let t = std::time::Instant::now();
        std::thread::sleep(HRES_PROBE_SLEEP);
        if t.elapsed() < std::time::Duration::from_micros(400) {
            short += 1;
        } else {
            short = 0;
        }
    }
    start.elapsed()
}

/// Read the slice counters of debugfs `rseq/stats`, if debugfs is mounted and the kernel
/// has `CONFIG_RSEQ_STATS`.
pub fn read_stats() -> Option<[u64; 5]> {
    parse_debugfs_stats(&std::fs::read_to_string(DEBUGFS_STATS).ok()?)
}

/// Run every probe (or those named in `only`, comma-separated) in a child process of `exe`
/// (this executable) and collect the frame.
/// `meta` starts with the kernel release, its command line, the preemption model,
/// `slice_ext_nsec` and the CPU count, as far as they can be read.
pub fn run_all(exe: &Path, revision: Revision, only: Option<&str>) -> Frame {
    let mut frame = Frame::default();
    frame.meta.push(("kernel".into(), kernel_release()));
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string());
    if let Ok(c) = read("/proc/cmdline") {
        frame.meta.push(("cmdline".into(), c));
    }
    if let Ok(c) = read(DEBUGFS_PREEMPT) {
        frame.meta.push(("preempt".into(), c));
    }
    if let Ok(c) = read(DEBUGFS_SLICE_EXT_NSEC) {
        frame.meta.push(("slice_ext_nsec".into(), c));
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    frame.meta.push(("cpus".into(), cpus.to_string()));
    // Rates mean nothing while hrtimers still expire at ticks: wait for high resolution.
    let waited = wait_for_high_res_timers();
    frame
        .meta
        .push(("hres_wait_us".into(), waited.as_micros().to_string()));
    if let Ok(c) = read(CURRENT_CLOCKSOURCE) {
        frame.meta.push(("clocksource".into(), c));
    }
    frame
        .meta
        .push(("revision".into(), revision.name().to_string()));

    for probe in probes::PROBES {
        if only.is_some_and(|o| !o.split(',').any(|n| n == probe.name)) {
            continue;
        }
        let before = read_stats();
        let output = Command::new(exe)
            .args(["--probe", probe.name, "--revision", revision.name()])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output();
        let after = read_stats();
        let mut results: Vec<(String, i64)> = Vec::new();
        let exit = match output {
            Ok(out) => {
                results.extend(parse_child_output(&String::from_utf8_lossy(&out.stdout)));
                match (out.status.signal(), out.status.code()) {
                    (Some(sig), _) => i64::from(sig),
                    (None, Some(code)) => i64::from(code),
                    (None, None) => -1,
                }
            }
            Err(e) => {
                eprintln!("cannot run {}: {e}", exe.display());
                -1
            }
        };
        results.push((EXIT_KEY.to_string(), exit));
        if let (Some(b), Some(a)) = (before, after) {
            results.extend(
                stats_results(b, a)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v)),
            );
        }
        frame.probes.push(probes::ProbeRecord {
            probe: probe.name.to_string(),
            results,
        });
    }
    frame
}

/// The `key = value` lines a child printed; anything else is skipped.
pub fn parse_child_output(text: &str) -> Vec<(String, i64)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(" = ")?;
            let k = k.trim();
            (!k.is_empty() && !k.contains(' ')).then_some(())?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_childs_results_are_its_key_value_lines_and_nothing_else() {
        let out = "register = 0\nthread 'main' panicked\nflags = 48\nbad = x\n = 3\na b = 1\n";
        assert_eq!(
            parse_child_output(out),
            vec![("register".to_string(), 0), ("flags".to_string(), 48)]
        );
    }
}
