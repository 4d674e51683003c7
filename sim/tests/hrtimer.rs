//! hrtimer range expiry (`kernel/time/hrtimer.c` `__hrtimer_run_queues()`): a sleep with
//! slack has a soft expiry at the requested time and a hard one `timer_slack` later; the
//! clock event is programmed for the hard one, but any hrtimer interrupt on the CPU that
//! finds the soft one passed expires the timer then. This is what breaks the n50_2_50
//! selftest's phase lock in Linux 7.2.13 (docs/fidelity.md).

mod common;

use rseq_abi::{Platform, Syscall};
use rseq_sim::*;

use common::*;

/// When task 0 (the sleeper) is woken.
fn wakeup_time(hz: u32) -> u64 {
    let cfg = SimConfig {
        hz,
        timer_slack_ns: 500 * US,
        ..cfg1()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    // The sleeper asks at once for 600 µs with 500 µs of slack: soft expiry at 600 µs,
    // hard at 1.1 ms, the tick at 1 ms in between.
    sim.spawn(
        TaskSpec::new("sleeper"),
        prog(|p| {
            let _ = p.syscall(Syscall::Nanosleep { ns: 600 * US });
            vec![]
        }),
    );
    // The spinner keeps the CPU busy, so the tick runs (it stops on an idle CPU).
    let mut s = TaskSpec::new("spinner");
    s.start_ns = 10 * US;
    sim.spawn(
        s,
        prog(|p| {
            p.burn(3_000 * US);
            vec![]
        }),
    );
    sim.run_until(4_000 * US);
    let woke = sim
        .log()
        .iter()
        .find(|r| matches!(r.kind, LogKind::Wakeup { task: 0, .. }))
        .map(|r| r.time)
        .expect("the sleeper woke");
    woke
}

#[test]
fn a_tick_between_the_soft_and_the_hard_expiry_ends_the_sleep() {
    let with_tick = wakeup_time(1000);
    assert_eq!(with_tick, 1_000 * US, "woken by the tick at 1 ms");
    // The sleep began 1.3 µs in, after the task's start and the syscall's entry.
    let without = wakeup_time(0);
    assert_eq!(
        without, 1_101_300,
        "with no other hrtimer interrupt the sleep runs to its hard expiry"
    );
}
