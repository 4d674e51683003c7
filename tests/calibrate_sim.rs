//! The calibration's arithmetic against the simulator (issue 14): the same benchmark
//! programs `slicesim-vm calibrate` runs on Linux (`rseq_abi::programs::calibrate`, written
//! against `Platform`) run on a simulated machine with known cost knobs, their samples go
//! through the same host conversion (`slicesim_vm::calibrate::knobs`), and the knobs that
//! come out are compared with the knobs that went in. Where the arithmetic inverts the
//! model the figures must come back; where it cannot, the test states by how much they
//! differ, so a change to either side shows.

use std::sync::{Arc, Mutex};

use rseq_abi::programs::calibrate::{self as cal, CalFrame, Series, WakeWords};
use rseq_abi::{Platform, SharedWord};
use slicesim::harness::{Model, Spawn};
use slicesim_vm::calibrate::knobs;

/// The knobs the simulated machine runs on: distinct figures, so a mix-up shows.
const MACHINE: [(&str, &str); 8] = [
    ("syscall", "\"300ns\""),
    ("ctx_switch", "\"1100ns\""),
    ("idle_exit", "\"900ns\""),
    ("ipi_latency", "\"700ns\""),
    ("irq_latency", "\"2000ns\""),
    ("clock_read", "\"50ns\""),
    ("mem_access", "\"2ns\""),
    ("shared_access", "\"7ns\""),
];

type Samples = Arc<Mutex<Vec<Series>>>;

fn model(name: &str) -> Model {
    let mut m = Model::new()
        .name(name)
        .cpus(4)
        .hz(1000)
        .duration_ns(200_000_000);
    for (k, v) in MACHINE {
        m = m.machine(k, v);
    }
    m
}

fn on(cpu: usize) -> Spawn {
    Spawn {
        cpus: Some(vec![cpu]),
        ..Spawn::default()
    }
}

fn push(out: &Samples, name: &str, per: u32, values: Vec<u64>) {
    out.lock().unwrap().push(Series {
        name: name.into(),
        per,
        values,
    });
}

/// The overshoots of `n` sleeps of `sleep_ns` on a machine with this slack and jitter.
fn sleeps(timer_slack: &str, timer_jitter: &str, sleep_ns: u64, n: usize) -> Vec<u64> {
    let out: Samples = Arc::default();
    let o = out.clone();
    model("sleeps")
        .machine("timer_slack", timer_slack)
        .machine("timer_jitter", timer_jitter)
        .spawn_with("sleeper", on(1), move |p| {
            push(&o, "", 1, cal::sleep_overshoots(p, sleep_ns, n))
        })
        .run_once(|_| ());
    let v = std::mem::take(&mut out.lock().unwrap()[0].values);
    v
}

/// Every benchmark on the simulator, as `abi/src/linux/calibrate.rs` runs them on Linux
/// (fewer samples: most figures are exact here). The simulator has no per-task timer
/// slack (`PR_SET_TIMERSLACK` does not reach its sleeps), so the 1 ns-slack sleeps run on
/// a machine whose slack is 0, the default-slack ones on a machine with 50 µs of slack,
/// both with `timer_jitter`.
fn simulated_frame(timer_jitter: &str) -> CalFrame {
    let out: Samples = Arc::default();
    let o = out.clone();
    model("single")
        .spawn_with("bench", on(1), move |p| {
            push(&o, "clock_read", 64, cal::clock_reads(p, 50, 64));
            push(&o, "syscall", 16, cal::syscalls(p, 50, 16));
            push(&o, "mem_access", 256, cal::rseq_loads(p, 50, 256));
            push(
                &o,
                "shared_access",
                256,
                cal::shared_adds(p, SharedWord(7), 50, 256),
            );
            let min = cal::min_clock_gap(p, 1000).max(1);
            push(&o, "clock_min_gap", 1, vec![min]);
            push(&o, "irq_gap", 1, cal::clock_gaps(p, 20_000_000, 8 * min));
        })
        .run_once(|_| ());
    push(
        &out,
        "hrtimer_1ns",
        1,
        sleeps("\"0ns\"", timer_jitter, 100_000, 1000),
    );
    push(
        &out,
        "slack_default",
        1,
        sleeps("\"50us\"", timer_jitter, 50_000, 1000),
    );
    // The busy CPU's wake: the 1 ns-slack sleeps beside a spinner on their CPU.
    let o = out.clone();
    let stop = SharedWord(5);
    model("busy")
        .machine("timer_slack", "\"0ns\"")
        .machine("timer_jitter", timer_jitter)
        .spawn_with("spinner", on(3), move |p| cal::spin_until_stopped(p, stop))
        .spawn_with("sleeper", on(3), move |p| {
            push(
                &o,
                "hrtimer_busy",
                1,
                cal::busy_overshoots(p, 100_000, 1000, stop),
            )
        })
        .run_once(|_| ());

    let calls = Arc::new(Mutex::new(0u64));
    let (o, c1, c2) = (out.clone(), calls.clone(), calls.clone());
    model("pingpong")
        .spawn_with("follower", on(2), move |p| {
            *c1.lock().unwrap() += cal::pingpong_follower(p, SharedWord(0)).futex_calls;
        })
        .spawn_with("leader", on(2), move |p| {
            p.burn(10_000);
            let r = cal::pingpong_leader(p, SharedWord(0), 200);
            *c2.lock().unwrap() += r.futex_calls;
            push(&o, "ctx_pingpong", 1, r.rounds);
        })
        .run_once(|_| ());
    push(&out, "ctx_futex_calls", 200, vec![*calls.lock().unwrap()]);

    let w = WakeWords {
        go: SharedWord(1),
        t_lo: SharedWord(2),
        t_hi: SharedWord(3),
        ack: SharedWord(4),
    };
    let o = out.clone();
    model("wake")
        .spawn_with("sleeper", on(2), move |p| {
            let (samples, not_asleep) = cal::wake_sleeper(p, w, 50);
            push(&o, "wake_remote", 1, samples);
            push(&o, "wake_not_asleep", 1, vec![not_asleep]);
        })
        .spawn_with("waker", on(1), move |p| cal::wake_remote(p, w, 50, 200_000))
        .run_once(|_| ());

    let series = std::mem::take(&mut *out.lock().unwrap());
    CalFrame {
        series,
        ..CalFrame::default()
    }
}

fn ns(v: &str) -> i64 {
    v.trim_matches('"')
        .strip_suffix("ns")
        .unwrap()
        .parse()
        .unwrap()
}

fn within(got: i64, want: i64, share: f64) -> bool {
    (got - want).abs() as f64 <= want as f64 * share
}

#[test]
fn the_calibration_arithmetic_recovers_the_simulators_knobs() {
    let f = simulated_frame("\"2us\"");
    let k = knobs(&f).unwrap();
    let got = |key: &str| ns(&k.iter().find(|x| x.key == key).unwrap().value);
    let mut table = String::new();
    for kn in &k {
        table += &format!("{} = {} # {}\n", kn.key, kn.value, kn.comment.join(" | "));
    }
    // Exactly: the single-thread costs and the tick's round trip.
    for (key, want) in [
        ("clock_read", 50),
        ("syscall", 300),
        ("irq_latency", 2000),
        ("mem_access", 2),
        ("shared_access", 7),
    ] {
        assert_eq!(got(key), want, "{key}\n{table}");
    }
    // Within the shared-word accesses the ping-pong and the wakeup make beside the
    // switch (a few times 7 ns), and, for the timers, the sampling of the uniform draws
    // (1,000 sleeps each).
    for (key, want, share) in [
        ("ctx_switch", 1100, 0.03),
        // The idle CPU's fastest wake less the busy CPU's switch.
        ("idle_exit", 900, 0.05),
        // The waker's and the sleeper's four shared-word accesses (4 x 7 ns) stay in it.
        ("ipi_latency", 700, 0.05),
        ("timer_jitter", 2000, 0.05),
        ("timer_slack", 50_000, 0.01),
    ] {
        assert!(
            within(got(key), want, share),
            "{key}: {} against {want}\n{table}",
            got(key)
        );
    }
}

/// A machine drawing measured sleep delays (`timer_jitters`) gives them back through the
/// benchmark the calibration takes them from: every 1 ns-slack sleep overshoots by the
/// fastest path plus one of the listed delays, and over 400 sleeps each delay is drawn,
/// in about its share (the list has 0 twice).
#[test]
fn measured_timer_jitters_come_back_from_the_sleep_benchmark() {
    let out: Samples = Arc::default();
    let o = out.clone();
    model("jitters")
        .machine("timer_slack", "\"0ns\"")
        .machine("timer_jitter", "\"5us\"")
        .machine(
            "timer_jitters",
            "[\"0ns\", \"0ns\", \"140ns\", \"740ns\", \"3us\"]",
        )
        .spawn_with("sleeper", on(1), move |p| {
            push(&o, "", 1, cal::sleep_overshoots(p, 100_000, 400))
        })
        .run_once(|_| ());
    let v = std::mem::take(&mut out.lock().unwrap()[0].values);
    let fastest = *v.iter().min().unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for x in &v {
        *seen.entry(x - fastest).or_insert(0u32) += 1;
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        [0, 140, 740, 3000],
        "the uniform timer_jitter is not drawn beside the list: {seen:?}"
    );
    assert!(seen[&0] > seen[&3000] + 40, "0 is listed twice: {seen:?}");
}
