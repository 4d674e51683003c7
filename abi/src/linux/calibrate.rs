//! The calibration micro-benchmarks ([`crate::programs::calibrate`]) on the real kernel, as
//! `vm_probes --calibrate` runs them in the VM (issue 14).
//!
//! [`run`] pins the threads (one thread alone on a CPU for the single-thread benchmarks
//! and the tick's interrupt gaps, two threads on one CPU for the futex ping-pong, a waker
//! and a sleeper on two CPUs for the wakeup IPI), sets the timer slack with
//! `prctl(PR_SET_TIMERSLACK)` around the sleep benchmarks and collects every sample into a
//! [`CalFrame`]. Everything goes through [`LinuxPlatform`]; the only thing `Platform` has
//! no operation for is starting a thread, done here with `std::thread`.

use crate::linux::{kernel_release, LinuxPlatform, SharedMem};
use crate::platform::{CpuSet, Platform, SharedWord, Syscall};
use crate::programs::calibrate::{self as cal, CalFrame, Series, WakeWords};

/// How many samples of each benchmark, and how big a batch: enough for a stable median,
/// small enough that the whole calibration stays within a few seconds of guest time
/// (about 3 s of wall time under qemu's instruction counting on a 2-core host).
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Samples of each batched benchmark.
    pub batches: usize,
    /// Clock reads per `clock_read` sample.
    pub clock_per: u32,
    /// getpid calls per `syscall` sample.
    pub syscall_per: u32,
    /// Loads or atomic adds per `mem_access` / `shared_access` sample.
    pub access_per: u32,
    /// How long the clock is polled for the tick's gaps, ns.
    pub gaps_ns: u64,
    /// Sleeps of each sleep benchmark.
    pub sleeps: usize,
    /// Ping-pong rounds.
    pub rounds: usize,
    /// Cross-CPU wakeups.
    pub wakeups: u32,
}

impl Sizes {
    /// The sizes the VM uses.
    pub const DEFAULT: Sizes = Sizes {
        batches: 1000,
        clock_per: 64,
        syscall_per: 16,
        access_per: 256,
        gaps_ns: 1_000_000_000,
        sleeps: 1000,
        rounds: 2000,
        wakeups: 1000,
    };
}

/// The sleep of the hrtimer benchmark (`hrtimer_1ns`, slack 1 ns), ns.
pub const HRTIMER_SLEEP_NS: u64 = 100_000;
/// The sleep of the slack benchmark (`slack_default`, the default slack), ns.
pub const SLACK_SLEEP_NS: u64 = 50_000;
/// How long the waker sleeps before each cross-CPU wakeup, so the sleeper's CPU is idle, ns.
pub const WAKE_IDLE_NS: u64 = 200_000;

/// The CPU of the single-thread benchmarks and the waker (1, or 0 on a 1-CPU machine).
fn cpu_a(cpus: usize) -> usize {
    1 % cpus.max(1)
}

/// The CPU of the ping-pong and the sleeper (2, folded onto the CPUs there are).
fn cpu_b(cpus: usize) -> usize {
    2 % cpus.max(1)
}

/// A thread pinned to `cpu`, running `f` on its own platform over `shared`.
fn spawn_on<T: Send + 'static>(
    shared: &SharedMem,
    cpu: usize,
    f: impl FnOnce(&mut LinuxPlatform) -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let shared = shared.clone();
    std::thread::spawn(move || {
        let mut q = LinuxPlatform::new(shared);
        pin(&mut q, cpu);
        f(&mut q)
    })
}

fn pin(p: &mut LinuxPlatform, cpu: usize) {
    if let Err(e) = p.syscall(Syscall::SchedSetaffinity(CpuSet::single(cpu))) {
        eprintln!("calibrate: sched_setaffinity({cpu}): {e}");
    }
}

/// Run every benchmark and collect the frame. `meta` starts with the kernel release, its
/// command line and the CPU count.
pub fn run(sizes: Sizes) -> CalFrame {
    let mut f = CalFrame::default();
    f.meta.push(("kernel".into(), kernel_release()));
    let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string());
    if let Ok(c) = read("/proc/cmdline") {
        f.meta.push(("cmdline".into(), c));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    f.meta.push(("cpus".into(), cpus.to_string()));
    if let Ok(s) = read("/proc/self/timerslack_ns") {
        f.meta.push(("timerslack_ns".into(), s));
    }
    let (a, b) = (cpu_a(cpus), cpu_b(cpus));
    f.meta.push(("cpu_a".into(), a.to_string()));
    f.meta.push(("cpu_b".into(), b.to_string()));

    let shared = SharedMem::new(8);
    let mut p = LinuxPlatform::new(shared.clone());
    pin(&mut p, a);

    // Wait for high-resolution timers before measuring anything (see `settle_hres`).
    const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
    if let Ok(c) = read(CLOCKSOURCE) {
        f.meta.push(("clocksource_at_start".into(), c));
    }
    if let Ok(u) = read("/proc/uptime") {
        f.meta.push(("uptime_at_start".into(), u));
    }
    if let Err(e) = cal::set_timer_slack(&mut p, 1) {
        eprintln!("calibrate: prctl(PR_SET_TIMERSLACK, 1): {e}");
    }
    let settle = cal::settle_hres(&mut p, HRTIMER_SLEEP_NS, 50_000, 20, 20_000);
    f.meta.push(("settle_sleeps".into(), settle.to_string()));
    if let Ok(c) = read(CLOCKSOURCE) {
        f.meta.push(("clocksource".into(), c));
    }
    if let Ok(u) = read("/proc/uptime") {
        f.meta.push(("uptime_settled".into(), u));
    }
    let _ = cal::set_timer_slack(&mut p, 0);
    let mut push = |name: &str, per: u32, values: Vec<u64>| {
        f.series.push(Series {
            name: name.into(),
            per,
            values,
        })
    };

    // Warm up (page in the code, settle the CPU), then the single-thread costs.
    let _ = cal::clock_reads(&mut p, 10, sizes.clock_per);
    let _ = cal::syscalls(&mut p, 10, sizes.syscall_per);
    push(
        "clock_read",
        sizes.clock_per,
        cal::clock_reads(&mut p, sizes.batches, sizes.clock_per),
    );
    push(
        "syscall",
        sizes.syscall_per,
        cal::syscalls(&mut p, sizes.batches, sizes.syscall_per),
    );
    push(
        "mem_access",
        sizes.access_per,
        cal::rseq_loads(&mut p, sizes.batches, sizes.access_per),
    );
    push(
        "shared_access",
        sizes.access_per,
        cal::shared_adds(&mut p, SharedWord(7), sizes.batches, sizes.access_per),
    );

    // The tick's interrupts as gaps in a polling loop: anything 8x the loop's own period.
    let min_gap = cal::min_clock_gap(&mut p, 10_000).max(1);
    push("clock_min_gap", 1, vec![min_gap]);
    push(
        "irq_gap",
        1,
        cal::clock_gaps(&mut p, sizes.gaps_ns, 8 * min_gap),
    );

    // Sleeps: 1 ns of slack (the hrtimer's own expiry latency), then the default slack.
    if let Err(e) = cal::set_timer_slack(&mut p, 1) {
        eprintln!("calibrate: prctl(PR_SET_TIMERSLACK, 1): {e}");
    }
    push(
        "hrtimer_1ns",
        1,
        cal::sleep_overshoots(&mut p, HRTIMER_SLEEP_NS, sizes.sleeps),
    );
    if let Err(e) = cal::set_timer_slack(&mut p, 0) {
        eprintln!("calibrate: prctl(PR_SET_TIMERSLACK, 0): {e}");
    }
    push(
        "slack_default",
        1,
        cal::sleep_overshoots(&mut p, SLACK_SLEEP_NS, sizes.sleeps),
    );

    // The busy CPU's wake path: a sleeper (1 ns of slack) beside a spinner on CPU b.
    let stop = SharedWord(5);
    shared
        .word(stop)
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let spinner = spawn_on(&shared, b, move |q| cal::spin_until_stopped(q, stop));
    let sleeps = sizes.sleeps;
    let busy = spawn_on(&shared, b, move |q| {
        let _ = cal::set_timer_slack(q, 1);
        cal::busy_overshoots(q, HRTIMER_SLEEP_NS, sleeps, stop)
    });
    let busy = busy.join().unwrap_or_default();
    shared
        .word(stop)
        .store(1, std::sync::atomic::Ordering::SeqCst);
    let _ = spinner.join();
    push("hrtimer_busy", 1, busy);

    // Futex ping-pong, both threads on CPU b.
    let word = SharedWord(0);
    shared
        .word(word)
        .store(0, std::sync::atomic::Ordering::SeqCst);
    let follower = spawn_on(&shared, b, move |q| cal::pingpong_follower(q, word));
    let rounds = sizes.rounds;
    let leader = spawn_on(&shared, b, move |q| cal::pingpong_leader(q, word, rounds));
    let lead = leader.join().unwrap_or_default();
    let follow = follower.join().unwrap_or_default();
    push("ctx_pingpong", 1, lead.rounds);
    push(
        "ctx_futex_calls",
        rounds as u32,
        vec![lead.futex_calls + follow.futex_calls],
    );

    // Wakeup of a thread waiting on idle CPU b by this thread on CPU a.
    let w = WakeWords {
        go: SharedWord(1),
        t_lo: SharedWord(2),
        t_hi: SharedWord(3),
        ack: SharedWord(4),
    };
    let n = sizes.wakeups;
    let sleeper = spawn_on(&shared, b, move |q| cal::wake_sleeper(q, w, n));
    cal::wake_remote(&mut p, w, n, WAKE_IDLE_NS);
    let (samples, not_asleep) = sleeper.join().unwrap_or_default();
    push("wake_remote", 1, samples);
    push("wake_not_asleep", 1, vec![not_asleep]);
    f
}
