//! From a calibration boot's console to a machine profile (issue 14): the statistics of
//! each benchmark's samples (`rseq_abi::programs::calibrate`) and the arithmetic that turns
//! them into the simulator's cost knobs (`SimConfig` in `sim/src/config.rs`).
//!
//! A pure function of the console text ([`profile_from_console`]): the guest prints raw
//! samples, `slicesim-vm calibrate` appends `host` lines (qemu version, clock, wall time),
//! and everything in the profile is computed here, so a committed console reproduces its
//! committed profile byte for byte.
//!
//! | knob | benchmark | arithmetic (medians, guest ns) |
//! |---|---|---|
//! | `clock_read` | 64 back-to-back vDSO `clock_gettime(CLOCK_MONOTONIC)` | batch / 64 |
//! | `syscall` | 16 `getpid()` | (batch − one clock read) / 16 |
//! | `mem_access` | 256 loads of `rseq::cpu_id_start` | (batch − one clock read) / 256 |
//! | `shared_access` | 256 uncontended `lock xadd` | (batch − one clock read) / 256 |
//! | `irq_latency` | gaps of a clock-polling loop on an idle CPU (the 1 kHz tick) | gap − clock read |
//! | `ctx_switch` | `clock_nanosleep(100 µs)` with 1 ns of slack beside a spinner on its CPU | fastest overshoot − clock read − `irq_latency` (the futex ping-pong's figure is reported beside it) |
//! | `idle_exit` | the same sleep on an idle CPU | fastest overshoot − clock read − `ctx_switch` |
//! | `ipi_latency` | futex wake of a thread asleep on an idle CPU | wake-to-run − ctx_switch − idle_exit − clock read |
//! | `timer_slack` | `clock_nanosleep(50 µs)`, default slack | its overshoot − the 1 ns-slack overshoot |
//! | `timer_jitter` | `clock_nanosleep(100 µs)`, slack 1 ns | standard deviation of the overshoot (below p99) × √12 |

use std::fmt::Write as _;

use rseq_abi::programs::calibrate::{CalFrame, CalFrameError, Series};

/// Order statistics of one benchmark's per-operation figures, guest ns.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Samples.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// 10th percentile (nearest rank).
    pub p10: f64,
    /// Median (nearest rank).
    pub median: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// Largest.
    pub max: f64,
}

impl Stats {
    /// The statistics of `values`; `None` if there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Stats> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some(Stats {
            n: v.len(),
            min: v[0],
            p10: at(0.1),
            median: at(0.5),
            p90: at(0.9),
            max: v[v.len() - 1],
        })
    }

    /// `median 312 ns (p10 300, p90 330, min 290, max 1200, n 400)`.
    pub fn describe(&self) -> String {
        format!(
            "median {} ns (p10 {}, p90 {}, min {}, max {}, n {})",
            fmt_ns(self.median),
            fmt_ns(self.p10),
            fmt_ns(self.p90),
            fmt_ns(self.min),
            fmt_ns(self.max),
            self.n
        )
    }
}

fn fmt_ns(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// Why a console does not give a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalError {
    /// The frame is missing or damaged.
    #[error(transparent)]
    Frame(#[from] CalFrameError),
    /// A benchmark reported no samples.
    #[error("the calibration frame has no samples for `{0}`")]
    NoSamples(&'static str),
}

/// One knob of the profile: its value and the comment lines above it.
#[derive(Clone, Debug, PartialEq)]
pub struct Knob {
    /// The `[machine]` key.
    pub key: &'static str,
    /// The TOML value (`"312ns"`, or a bare integer for `fast_clock_skew_ns`).
    pub value: String,
    /// Comment lines (without `# `).
    pub comment: Vec<String>,
    /// The measured median the value comes from, ns (`None`: kept at the default).
    pub measured: Option<Stats>,
}

/// The knobs no benchmark covers, at `SimConfig::default()`'s figures (the root crate's
/// `tests/profiles.rs` checks that the measured profile keeps them equal to the default).
pub const UNMEASURED: [(&str, &str, &str); 6] = [
    (
        "fair_class",
        "\"eevdf\"",
        "the fair class Linux 6.6 and later schedule with.",
    ),
    (
        "sched_base_slice",
        "\"0ns\"",
        "0: the kernel's own base slice for the scenario's CPU count, 700 us x (1 + ilog2(min(cpus, 8))).",
    ),
    (
        "wakeup_gran",
        "\"1ms\"",
        "wakeup preemption granularity of the CFS model (fair_class = \"cfs\" only).",
    ),
    (
        "sleeper_credit",
        "\"3ms\"",
        "sleeper credit of the CFS model (fair_class = \"cfs\" only).",
    ),
    (
        "fast_clock_skew_ns",
        "0",
        "ktime_get_mono_fast_ns() against CLOCK_MONOTONIC: not visible from user space.",
    ),
    (
        "syscall_work_delay",
        "\"0ns\"",
        "syscall entry to the rseq slice work: not visible from user space. Nor is the exit path from a grant to the arming of its timer: a grant needs a pending reschedule, and the same interrupt without a request switches tasks, so no two user-visible interrupt exits differ by the grant's work alone.",
    ),
];

fn series<'a>(f: &'a CalFrame, name: &'static str) -> Result<&'a Series, CalError> {
    f.series(name)
        .filter(|s| !s.values.is_empty() && s.per > 0)
        .ok_or(CalError::NoSamples(name))
}

/// Per-operation figures of a batched series: `(sample − minus) / per`.
fn per_op(s: &Series, minus: f64) -> Option<Stats> {
    let per = f64::from(s.per);
    Stats::of(s.values.iter().map(|&v| (v as f64 - minus) / per))
}

/// Population standard deviation of the values below the 99th percentile.
fn trimmed_sd(values: &[u64]) -> f64 {
    let mut v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
    v.sort_by(f64::total_cmp);
    v.truncate(((v.len() as f64 * 0.99) as usize).max(1));
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

fn ns(x: f64) -> String {
    format!("\"{}ns\"", x.max(0.0).round() as u64)
}

/// The knobs a calibration frame measures, in the order of `src/profile.rs`'s `KNOBS`,
/// followed by the ones kept at the default.
pub fn knobs(f: &CalFrame) -> Result<Vec<Knob>, CalError> {
    let stat = |name: &'static str, minus: f64| -> Result<Stats, CalError> {
        per_op(series(f, name)?, minus).ok_or(CalError::NoSamples(name))
    };
    let clock = stat("clock_read", 0.0)?;
    let c = clock.median;
    let syscall = stat("syscall", c)?;
    let s = syscall.median;
    let mem = stat("mem_access", c)?;
    let shared = stat("shared_access", c)?;
    let irq = stat("irq_gap", c)?;
    let calls = series(f, "ctx_futex_calls")?;
    let calls_per_round = calls.values[0] as f64 / f64::from(calls.per);
    let rounds = stat("ctx_pingpong", 0.0)?;
    // The futex ping-pong's switch, for the record: a round is two switches, the futex
    // calls both sides made (3 to 4; the two blocking waits are charged to their switch
    // in the simulator, the others as one getpid each) and a clock read. On Linux a futex
    // call costs more than a getpid, and the simulator has one syscall cost, so this
    // figure carries the futex bodies too: it is reported, not used.
    let pingpong = Stats::of(
        series(f, "ctx_pingpong")?
            .values
            .iter()
            .map(|&v| (v as f64 - (calls_per_round - 2.0).max(0.0) * s - c) / 2.0),
    )
    .ok_or(CalError::NoSamples("ctx_pingpong"))?;
    // ctx_switch from the path the selftest's noise thread takes: a sleep with 1 ns of
    // slack on an idle CPU wakes through the timer interrupt, the switch to the sleeper
    // and its syscall return; in the simulator that overshoot is ctx_switch plus the
    // clock read that measures it (`tests/calibrate_sim.rs` checks both derivations give
    // the machine's figure back). Against the icount consoles this figure holds more
    // rates than the ping-pong's (docs/fidelity.md).
    let hr = stat("hrtimer_1ns", 0.0)?;
    // The fastest wake is the path itself: the simulator draws its jitter on top of it.
    let ctx = Stats::of(
        series(f, "hrtimer_1ns")?
            .values
            .iter()
            .map(|&v| v as f64 - c),
    )
    .ok_or(CalError::NoSamples("hrtimer_1ns"))?;
    // The same sleep beside a spinner on its CPU: the timer interrupt enters the
    // spinner's user code, wakes the sleeper, and its exit switches to it. In the
    // simulator that is irq_latency, then ctx_switch, then the clock read, so the switch
    // on a busy CPU is what the fastest busy wake has beyond the interrupt; what the idle
    // CPU's wake has beyond that switch is leaving idle (idle_exit). A console from before
    // this benchmark gives the idle path to ctx_switch and no idle_exit.
    let busy = series(f, "hrtimer_busy")
        .ok()
        .and_then(|s| Stats::of(s.values.iter().map(|&v| v as f64 - c - irq.median)));
    let (ctx_switch, idle_exit) = match &busy {
        Some(b) => {
            let sw = b.min.max(0.0);
            (sw, (ctx.min - sw).max(0.0))
        }
        None => (ctx.min, 0.0),
    };
    // Wakeup to run across CPUs: the IPI from the waker's futex_wake to the idle CPU, that
    // CPU's way out of idle and switch to the sleeper (ctx_switch, which in the simulator
    // also carries the sleeper's futex_wait exit) and one clock read. The simulator wakes
    // at the waker's syscall entry (it charges `syscall` at the exit), so nothing else is
    // subtracted: what remains is the simulator's ipi_latency.
    let wake = stat("wake_remote", 0.0)?;
    let ipi = Stats::of(
        series(f, "wake_remote")?
            .values
            .iter()
            .map(|&v| v as f64 - ctx_switch - idle_exit - c),
    )
    .ok_or(CalError::NoSamples("wake_remote"))?;
    let slack = stat("slack_default", 0.0)?;
    // The simulator fires a sleep's timer `slack + U[0, timer_jitter)` after its expiry: a
    // uniform delay of width j has the standard deviation j / sqrt(12), so the jitter is
    // the overshoot's standard deviation times sqrt(12), over the samples below the 99th
    // percentile (a rare interrupt landing on the wakeup path is not the timer's spread).
    // The 10-90 % range would be the plainer choice, but under icount the overshoot takes
    // a few discrete values and p90 falls on one or the other from boot to boot (480 and
    // 185 ns in two boots), where this moment is stable to 1 %.
    let jitter = trimmed_sd(&series(f, "hrtimer_1ns")?.values) * 12f64.sqrt();
    let not_asleep = series(f, "wake_not_asleep")
        .map(|s| s.values[0])
        .unwrap_or(0);

    let k = |key, value: f64, comment: Vec<String>, measured| Knob {
        key,
        value: ns(value),
        comment,
        measured: Some(measured),
    };
    let mut out = vec![
        k(
            "irq_latency",
            irq.median,
            vec![
                "interrupt entry, handler and return to user: the tick's gaps in a clock-polling loop on an idle CPU, minus one clock read:".into(),
                irq.describe(),
            ],
            irq,
        ),
        k(
            "syscall",
            s,
            vec![
                "getpid() round trip, batches of 16 minus one clock read:".into(),
                syscall.describe(),
            ],
            syscall,
        ),
        match &busy {
            Some(b) => k(
                "ctx_switch",
                ctx_switch,
                vec![
                    "a sleep's wake path on a busy CPU: the shortest clock_nanosleep(100 us) overshoot with PR_SET_TIMERSLACK 1 beside a spinner on its CPU, minus one clock read and irq_latency (the jitter comes on top):".into(),
                    b.describe(),
                    format!(
                        "(not used: the futex ping-pong's switch, (round − ({calls_per_round:.2} futex calls − 2 blocking waits) × syscall − clock read) / 2, {}; the round {})",
                        pingpong.describe(),
                        rounds.describe()
                    ),
                ],
                *b,
            ),
            None => k(
                "ctx_switch",
                ctx_switch,
                vec![
                    "a sleep's wake path on an idle CPU: the shortest clock_nanosleep(100 us) overshoot with PR_SET_TIMERSLACK 1, minus one clock read (the jitter comes on top):".into(),
                    ctx.describe(),
                    format!(
                        "(not used: the futex ping-pong's switch, (round − ({calls_per_round:.2} futex calls − 2 blocking waits) × syscall − clock read) / 2, {}; the round {})",
                        pingpong.describe(),
                        rounds.describe()
                    ),
                ],
                ctx,
            ),
        },
        k(
            "idle_exit",
            idle_exit,
            vec![
                "leaving idle: the idle CPU's fastest wake (the same sleep without the spinner, minus one clock read):".into(),
                ctx.describe(),
                "minus ctx_switch (0 without the busy benchmark: the idle path is all ctx_switch).".into(),
            ],
            ctx,
        ),
        k(
            "ipi_latency",
            ipi.median,
            vec![
                format!(
                    "futex wake of a thread asleep on an idle CPU, wake-to-run {} ({not_asleep} rounds without a sleep left out),",
                    wake.describe()
                ),
                "minus ctx_switch, idle_exit and one clock read:".into(),
                ipi.describe(),
            ],
            ipi,
        ),
        k(
            "clock_read",
            c,
            vec![
                "vDSO clock_gettime(CLOCK_MONOTONIC), batches of 64:".into(),
                clock.describe(),
            ],
            clock,
        ),
        k(
            "mem_access",
            mem.median,
            vec![
                "a load of the thread's struct rseq with its loop, batches of 256 minus one clock read:".into(),
                mem.describe(),
            ],
            mem,
        ),
        k(
            "shared_access",
            shared.median,
            vec![
                "an uncontended atomic add to a shared word with its loop, batches of 256 minus one clock read:".into(),
                shared.describe(),
            ],
            shared,
        ),
        k(
            "timer_slack",
            slack.median - hr.median,
            vec![
                format!(
                    "clock_nanosleep(50 us) overshoot with the default slack, {},",
                    slack.describe()
                ),
                "minus the 1 ns-slack overshoot's median (timer_jitter's benchmark): the slack the kernel applies.".into(),
            ],
            slack,
        ),
        k(
            "timer_jitter",
            jitter,
            vec![
                format!(
                    "clock_nanosleep(100 us) overshoot with PR_SET_TIMERSLACK 1: {},",
                    hr.describe()
                ),
                format!(
                    "its standard deviation below p99 ({:.0} ns) x sqrt(12): the width of the uniform delay the simulator draws.",
                    jitter / 12f64.sqrt()
                ),
                "The median itself (expiry, idle exit, wakeup, switch, syscall exit) is ctx_switch's figure.".into(),
                "Only a profile without timer_jitters draws it.".into(),
            ],
            hr,
        ),
    ];
    // The same samples as a distribution: under icount most sleeps wake exactly at the
    // fastest overshoot and the rest are late by a few discrete amounts, a shape the
    // uniform width above flattens (its mean is twice the measured one's and it puts the
    // phase of a periodic sleeper in places the kernel's never is). The simulator draws
    // one of these per sleep; sorted, so the profile reads as a histogram.
    let hr_values = &series(f, "hrtimer_1ns")?.values;
    let fastest = hr_values.iter().copied().min().unwrap_or(0);
    let mut late: Vec<u64> = hr_values.iter().map(|&v| v - fastest).collect();
    late.sort_unstable();
    let late_stats = Stats::of(late.iter().map(|&v| v as f64));
    out.push(Knob {
        key: "timer_jitters",
        value: format!(
            "[\n{}\n]",
            late.chunks(12)
                .map(|c| {
                    let row: Vec<String> = c.iter().map(|&v| ns(v as f64)).collect();
                    format!("  {},", row.join(", "))
                })
                .collect::<Vec<_>>()
                .join("\n")
        ),
        comment: vec![format!(
            "each of timer_jitter's {} samples less the fastest ({fastest} ns): the delay a sleep timer's wakeup has beyond the fastest path{}",
            late.len(),
            late_stats.map_or(String::new(), |s| format!(" ({})", s.describe()))
        )],
        measured: late_stats,
    });
    // The tick's gaps beyond half again its median are not its own spread (p10..p90 is
    // within 3 % of the median under icount) but another vCPU's turn: qemu's icount runs
    // the vCPUs in turn and the polling one stands still meanwhile (docs/fidelity.md, the
    // traced kernel). Each is kept as the stall it adds to the tick.
    let irq_gaps = &series(f, "irq_gap")?.values;
    let stalls: Vec<f64> = irq_gaps
        .iter()
        .map(|&g| g as f64 - c)
        .filter(|&g| g > 1.5 * irq.median)
        .map(|g| g - irq.median)
        .collect();
    let n_stalls = stalls.len();
    let stall_stats = Stats::of(stalls.iter().copied());
    out.push(Knob {
        key: "tick_stall_ticks",
        value: irq_gaps.len().to_string(),
        comment: vec!["the ticks irq_latency's benchmark measured:".into()],
        measured: Some(irq),
    });
    out.push(Knob {
        key: "tick_stalls",
        value: format!(
            "[{}]",
            stalls.iter().map(|&s| ns(s)).collect::<Vec<_>>().join(", ")
        ),
        comment: vec![
            format!(
                "{n_stalls} of them had a gap over 1.5 x the median: another vCPU's turn, kept as the excess over the tick's median{}",
                stall_stats.map_or(String::new(), |s| format!(" ({})", s.describe()))
            ),
        ],
        measured: stall_stats,
    });
    for (key, value, why) in UNMEASURED {
        out.push(Knob {
            key,
            value: value.to_string(),
            comment: vec![format!("kept at the default: {why}")],
            measured: None,
        });
    }
    Ok(out)
}

/// The profile TOML for a calibration frame: a header naming the boot, `[profile]` with
/// `name`, and `[machine]` with every knob, each with its measurement as a comment.
pub fn profile(f: &CalFrame, name: &str) -> Result<String, CalError> {
    let knobs = knobs(f)?;
    let meta = |k| f.meta(k).unwrap_or("?");
    let host = |k| f.host(k).unwrap_or("?");
    let kernel = meta("kernel");
    let clock = host("clock");
    let mut s = String::new();
    let _ =
        writeln!(
        s,
        "# Measured by `slicesim-vm calibrate` (issue 14); generated from the boot's console by\n\
         # slicesim_vm::calibrate::profile_from_console, do not edit by hand.\n\
         # kernel:  Linux {kernel}\n\
         # cmdline: {}\n\
         # machine: {}, accel {}, clock {clock}, {} vCPUs\n\
         # benchmarks from guest uptime {} s, after {} sleeps waiting for high-resolution timers\n\
         # wall time of the calibration boot: {} s\n\
         # Every figure is a median in guest ns, with its spread (10th/90th percentile, min,\n\
         # max, samples) in the comment above it.",
        meta("cmdline"),
        host("qemu"),
        host("accel"),
        meta("cpus"),
        meta("uptime_settled").split_whitespace().next().unwrap_or("?"),
        meta("settle_sleeps"),
        host("wall_s"),
    );
    let _ = writeln!(
        s,
        "\n[profile]\nname = \"{name}\"\nabout = \"Linux {kernel} under qemu ({clock}), measured by slicesim-vm calibrate\"\n\n[machine]"
    );
    for k in knobs {
        for c in &k.comment {
            let _ = writeln!(s, "# {c}");
        }
        let _ = writeln!(s, "{} = {}", k.key, k.value);
    }
    Ok(s)
}

/// [`profile`] of the calibration frame in console text.
pub fn profile_from_console(console: &str, name: &str) -> Result<String, CalError> {
    profile(&CalFrame::parse(console)?, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Stats::of((1..=11).map(f64::from)).unwrap();
        assert_eq!(
            (s.n, s.min, s.p10, s.median, s.p90, s.max),
            (11, 1.0, 2.0, 6.0, 10.0, 11.0)
        );
        assert_eq!(Stats::of([]), None);
        assert_eq!(
            Stats::of([3.0]).unwrap().describe(),
            "median 3.0 ns (p10 3.0, p90 3.0, min 3.0, max 3.0, n 1)"
        );
    }

    const FIXTURE: &str = include_str!("../tests/fixtures/calibrate-small.console");

    #[test]
    fn a_tick_gap_over_half_again_the_median_is_a_vcpu_stall() {
        let text = FIXTURE
            .replace(
                "data irq_gap 1010 1060 1110 1160 1210",
                "data irq_gap 1010 1060 1110 1160 1210 3310",
            )
            .replace("SLICESIM-CAL END 52", "SLICESIM-CAL END 53");
        let k = knobs(&CalFrame::parse(&text).unwrap()).unwrap();
        let get = |key: &str| k.iter().find(|x| x.key == key).unwrap().value.clone();
        // Gaps minus the 10 ns clock read: 1000 .. 1200 and 3300, nearest-rank median
        // 1150; 3300 > 1.5 x 1150 is a stall of 3300 - 1150, the others are the tick's.
        assert_eq!(get("irq_latency"), "\"1150ns\"");
        assert_eq!(get("tick_stall_ticks"), "6");
        assert_eq!(get("tick_stalls"), "[\"2150ns\"]");
    }

    #[test]
    fn the_busy_cpu_wake_splits_the_idle_path_into_switch_and_idle_exit() {
        let text = FIXTURE
            .replace(
                "SLICESIM-CAL series hrtimer_1ns per 1",
                "SLICESIM-CAL series hrtimer_busy per 1\nSLICESIM-CAL data hrtimer_busy 3500 3000 3100\nSLICESIM-CAL series hrtimer_1ns per 1",
            )
            .replace("SLICESIM-CAL END 52", "SLICESIM-CAL END 55");
        let k = knobs(&CalFrame::parse(&text).unwrap()).unwrap();
        let get = |key: &str| k.iter().find(|x| x.key == key).unwrap().value.clone();
        // The fastest busy wake 3000 minus the clock read (10) and irq_latency (1100);
        // the idle CPU's fastest 4000 - 10 has 2100 more: leaving idle.
        assert_eq!(get("ctx_switch"), "\"1890ns\"");
        assert_eq!(get("idle_exit"), "\"2100ns\"");
        // Wake-to-run 3135 - 1890 - 2100 - 10 < 0: nothing is left for the IPI.
        assert_eq!(get("ipi_latency"), "\"0ns\"");
    }

    #[test]
    fn a_small_console_gives_every_knob_by_the_stated_arithmetic() {
        let f = CalFrame::parse(FIXTURE).unwrap();
        let k = knobs(&f).unwrap();
        let get = |key: &str| k.iter().find(|x| x.key == key).unwrap().value.clone();
        // clock: 640 / 64 = 10 ns; syscall: (1610 - 10) / 16 = 100 ns.
        assert_eq!(get("clock_read"), "\"10ns\"");
        assert_eq!(get("syscall"), "\"100ns\"");
        // (2570 - 10) / 256 = 10 ns; (1290 - 10) / 256 = 5 ns.
        assert_eq!(get("shared_access"), "\"10ns\"");
        assert_eq!(get("mem_access"), "\"5ns\"");
        // Tick gaps 1010 .. 1210 minus the clock read: median 1100 - 10.
        assert_eq!(get("irq_latency"), "\"1100ns\"");
        // The shortest 1 ns-slack overshoot, 4000, minus the clock read; the ping-pong's
        // (2410 - 1.5 * 100 - 10) / 2 = 1125 is only reported.
        assert_eq!(get("ctx_switch"), "\"3990ns\"");
        assert!(
            k.iter()
                .any(|x| x.key == "ctx_switch"
                    && x.comment.iter().any(|c| c.contains("median 1125 ns"))),
            "{k:?}"
        );
        // Wake-to-run 3135 is shorter than that switch: nothing is left for the IPI.
        assert_eq!(get("ipi_latency"), "\"0ns\"");
        // Overshoots: 1 ns slack 4000..6000 by 200, median 5000; below p99 4000..5800,
        // standard deviation 200 * sqrt(99 / 12) = 574.5, times sqrt(12) = 1990.
        // Default slack 54000: slack 54000 - 5000.
        assert_eq!(get("timer_jitter"), "\"1990ns\"");
        // The same overshoots as a distribution: each less the fastest (4000), sorted.
        let jitters = get("timer_jitters");
        assert!(
            jitters.starts_with("[\n  \"0ns\", \"200ns\", \"400ns\",")
                && jitters.ends_with("\"2000ns\",\n]"),
            "{jitters}"
        );
        assert_eq!(get("timer_slack"), "\"49000ns\"");
        assert_eq!(get("syscall_work_delay"), "\"0ns\"");
        // Five tick gaps, none over 1.5 x the median: no vCPU stall.
        assert_eq!(get("tick_stall_ticks"), "5");
        assert_eq!(get("tick_stalls"), "[]");
        // No busy-CPU benchmark in this console: the idle path is all ctx_switch.
        assert_eq!(get("idle_exit"), "\"0ns\"");
        assert_eq!(k.len(), 19, "every knob of a profile");
        let text = profile(&f, "test").unwrap();
        assert!(text.contains("# kernel:  Linux 7.2.13\n"), "{text}");
        assert!(text.contains("clock icount0, 4 vCPUs"), "{text}");
        assert!(
            text.contains("wall time of the calibration boot: 61.5 s"),
            "{text}"
        );
        assert!(text.contains("[profile]\nname = \"test\"\n"), "{text}");
        assert!(
            text.contains("# kept at the default: the fair class Linux 6.6"),
            "{text}"
        );
    }

    #[test]
    fn a_console_without_a_benchmark_says_which() {
        let cut = FIXTURE
            .lines()
            .filter(|l| !l.contains("wake_remote"))
            .collect::<Vec<_>>()
            .join("\n");
        let fixed = cut.replace("SLICESIM-CAL END 52", "SLICESIM-CAL END 47");
        assert_eq!(
            profile_from_console(&fixed, "x"),
            Err(CalError::NoSamples("wake_remote"))
        );
        assert!(matches!(
            profile_from_console("no frame", "x"),
            Err(CalError::Frame(CalFrameError::NoBegin))
        ));
    }
}
