//! Engine throughput benchmarks: `cargo bench -p rseq-sim --bench engine`.
//!
//! A plain binary (no criterion, to keep CI compile time low). Each benchmark prints one
//! line in a stable format:
//! `bench NAME: wall W s, E M events, R M events/s, S sim-s/wall-s[, ...]`.
//! Wall-clock time is measured here only; the simulator itself never reads it.
//!
//! Options: `--revision=7.0` (or `v1`, `7.2`) simulates that revision instead of the default
//! (7.2; the figures before issue 12 were taken on 7.0, the default then), and `--log` keeps
//! the event log (off by default, as in a run with no trace output).

use std::time::Instant;

use rseq_abi::programs::{Counters, SelftestParams};
use rseq_abi::{Platform, Revision, SharedWord, Syscall};
use rseq_sim::{
    spawn_selftest, IrqKind, IrqPattern, IrqSource, ReschedReq, SimConfig, SimProgram, Simulation,
    TaskExit, TaskSpec,
};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;

/// The options every benchmark's machine takes.
#[derive(Clone, Copy)]
struct Opts {
    revision: Revision,
    log: bool,
}

static OPTS: std::sync::OnceLock<Opts> = std::sync::OnceLock::new();

fn quiet(cpus: usize) -> SimConfig {
    let d = SimConfig::default();
    let o = OPTS.get().copied().unwrap_or(Opts {
        revision: d.revision,
        log: false,
    });
    SimConfig {
        cpus,
        log: o.log,
        revision: o.revision,
        ..d
    }
}

/// Run `sim` to `end_ns`, returning (wall seconds, events processed).
fn timed_run(sim: &mut Simulation, end_ns: u64) -> (f64, u64) {
    let before = sim.events_processed();
    let t0 = Instant::now();
    sim.run_until(end_ns);
    let wall = t0.elapsed().as_secs_f64();
    (wall, sim.events_processed() - before)
}

fn metrics(name: &str, wall: f64, events: u64, sim_ns: u64) -> String {
    format!(
        "bench {name}: wall {wall:.2} s, {:.2} M events, {:.2} M events/s, {} sim-s/wall-s",
        events as f64 / 1e6,
        events as f64 / wall / 1e6,
        sig3(sim_ns as f64 / 1e9 / wall),
    )
}

/// Three significant digits (a many-CPU run can simulate milliseconds per wall second).
fn sig3(x: f64) -> String {
    let decimals = if x > 0.0 {
        (2 - x.log10().floor() as i32).clamp(0, 9) as usize
    } else {
        2
    };
    format!("{x:.decimals$}")
}

/// A task that forever sleeps `sleep_ns`, then burns `burn_ns`.
fn sleeper(sleep_ns: u64, burn_ns: u64) -> SimProgram {
    Box::new(move |p| -> Counters {
        loop {
            let _ = p.syscall(Syscall::Nanosleep { ns: sleep_ns });
            p.burn(burn_ns);
        }
    })
}

fn bench_n2_2_50() {
    let end = 5 * SEC;
    let params = SelftestParams {
        total_ns: end,
        ..SelftestParams::N2_2_50
    };
    let mut sim = Simulation::new(quiet(2)).expect("valid config");
    spawn_selftest(
        &mut sim,
        ("slice_test-main", "slice_test-noise"),
        params,
        SharedWord(0),
        None,
    );
    let (wall, events) = timed_run(&mut sim, end);
    println!("{}", metrics("n2_2_50", wall, events, end));
}

fn bench_mixed() {
    const CPUS: usize = 64;
    let end = 200 * MS;
    let params = SelftestParams {
        total_ns: 10 * SEC, // outlives the run: the pairs are busy throughout
        ..SelftestParams::N2_2_50
    };
    let mut sim = Simulation::new(quiet(CPUS)).expect("valid config");
    // 128 main+noise pairs, two pairs on each CPU (256 of the 512 tasks).
    for i in 0..128u32 {
        let cpu = i as usize % CPUS;
        let (main, noise) = (format!("pair{i}-main"), format!("pair{i}-noise"));
        spawn_selftest(&mut sim, (&main, &noise), params, SharedWord(i), Some(cpu));
    }
    for i in 0..256u64 {
        let mut spec = TaskSpec::new(format!("sleeper{i}"));
        spec.start_ns = i * 3_901; // spread the phases over the first millisecond
        sim.spawn(spec, sleeper(MS, 5_000));
    }
    for cpu in 0..CPUS as u32 {
        sim.add_irq_source(IrqSource::new(
            cpu,
            IrqKind::Device(ReschedReq::Lazy),
            IrqPattern::Poisson {
                rate_hz: 2000.0,
                start_ns: 0,
                end_ns: u64::MAX,
            },
        ));
    }
    assert_eq!(sim.tasks().len(), 512);
    let (wall, events) = timed_run(&mut sim, end);
    println!("{}", metrics("mixed-64x512", wall, events, end));
}

/// A field of `/proc/self/status` in bytes (`VmHWM`, `VmRSS`), if readable.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reset the peak RSS (`VmHWM`) to the current RSS, so the attempt measures its own peak.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// 1024 CPUs and `n` mostly sleeping tasks for 20 simulated ms. Returns false (after
/// printing why) if tasks could not be created.
fn bench_scale(n: u64) -> bool {
    let end = 20 * MS;
    let name = format!("scale-1024x{}k", n / 1000);
    let reset = reset_peak_rss();
    let rss0 = proc_status_bytes("VmRSS").unwrap_or(0);
    let cfg = SimConfig {
        stack_size: 16 * 1024,
        max_threads: n as usize,
        ..quiet(1024)
    };
    let mut sim = Simulation::new(cfg).expect("valid config");
    for i in 0..n {
        let mut spec = TaskSpec::new(format!("t{i}"));
        spec.start_ns = i * 10 * MS / n; // phases spread over one sleep period
        sim.spawn(spec, sleeper(10 * MS, 1_000));
    }
    let (wall, events) = timed_run(&mut sim, end);
    let failed: Vec<(usize, &String)> = sim
        .tasks()
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match &t.exit {
            Some(TaskExit::SpawnFailed(e)) => Some((i, e)),
            _ => None,
        })
        .collect();
    if let Some(&(first, err)) = failed.first() {
        println!(
            "bench {name}: FAILED: {} of {n} tasks could not get a coroutine stack, \
             first at task {first}: {err} (vm.max_map_count = {}); the run took {wall:.2} s, \
             {events} events",
            failed.len(),
            std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into()),
        );
        return false;
    }
    let peak = proc_status_bytes("VmHWM").unwrap_or(0);
    println!(
        "{}, peak RSS {:.1} MiB{}, {} bytes/task",
        metrics(&name, wall, events, end),
        peak as f64 / (1024.0 * 1024.0),
        if reset { "" } else { " (peak not reset)" },
        peak.saturating_sub(rss0) / n,
    );
    true
}

/// Run one scale attempt in a child process (this binary, `__scale N`): running out of
/// memory maps can abort the process in the allocator, which no in-process check survives,
/// and a fresh process measures its own peak RSS. Returns true if the attempt succeeded.
fn scale_in_child(n: u64) -> bool {
    let exe = std::env::current_exe().expect("current exe");
    let out = std::process::Command::new(exe)
        .args(["__scale", &n.to_string()])
        .args(std::env::args().filter(|a| a == "--log" || a.starts_with("--revision=")))
        .env("RUST_BACKTRACE", "0")
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run child");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if out.status.success() {
        return true;
    }
    if out.status.code() != Some(2) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!(
            "bench scale-1024x{}k: FAILED: process died ({}): {}",
            n / 1000,
            out.status,
            stderr.lines().next().unwrap_or("").trim(),
        );
    }
    false
}

/// Each coroutine stack takes two memory mappings (stack + guard page); Linux allows 65 530
/// per process by default. Raise `vm.max_map_count` for `tasks` stacks if we may (root),
/// else say how: the bench then scales down.
fn ensure_map_count(tasks: u64) {
    let path = "/proc/sys/vm/max_map_count";
    let current: u64 = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let needed = 2 * tasks + 16_384;
    if current >= needed {
        return;
    }
    if std::fs::write(path, needed.to_string()).is_ok() {
        println!(
            "note: raised vm.max_map_count from {current} to {needed} for {tasks} coroutine stacks"
        );
    } else {
        println!("note: {tasks} tasks need vm.max_map_count >= {needed} (now {current}): sysctl -w vm.max_map_count={needed}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = Opts {
        revision: SimConfig::default().revision,
        log: args.iter().any(|a| a == "--log"),
    };
    for a in &args {
        if let Some(name) = a.strip_prefix("--revision=") {
            opts.revision = Revision::from_name(name).unwrap_or_else(|| {
                eprintln!("unknown revision {name:?} (v1, 7.0, 7.2)");
                std::process::exit(2)
            });
        }
    }
    let _ = OPTS.set(opts);
    if args.first().map(String::as_str) == Some("__scale") {
        let n = args[1].parse().expect("task count");
        std::process::exit(if bench_scale(n) { 0 } else { 2 });
    }
    // `cargo bench` passes `--bench`; a name filter runs only the matching benchmarks.
    let filter: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let want = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    if want("n2_2_50") {
        bench_n2_2_50();
    }
    if want("mixed-64x512") {
        bench_mixed();
    }
    if want("scale-1024x100k") {
        ensure_map_count(100_000);
        for n in [100_000, 30_000, 10_000] {
            if scale_in_child(n) {
                break;
            }
        }
    }
}
