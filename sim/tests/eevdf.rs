//! The fair class as EEVDF (`kernel/sched/fair.c`, Linux 7.2; `sim/src/fair.rs`): each test
//! names the kernel rule it holds the model to, observed the way a user of the simulator
//! would see it, in the switches and reschedule requests of the log.

mod common;

use rseq_abi::{Platform, Syscall};
use rseq_sim::*;

use common::*;

const MS: u64 = 1_000_000;

/// One CPU with a 1000 Hz tick, EEVDF, exact sleeps.
fn cfg() -> SimConfig {
    SimConfig {
        hz: 1000,
        fair_class: FairClass::Eevdf,
        ..cfg1()
    }
}

/// [`cfg`] without the hrtick: a request's end is noticed by the next tick.
fn cfg_tick() -> SimConfig {
    SimConfig {
        hrtick: false,
        ..cfg()
    }
}

fn spinner(ns: u64) -> SimProgram {
    prog(move |p| {
        p.burn(ns);
        vec![]
    })
}

/// A task that runs `run` ns, then sleeps `sleep` ns, `rounds` times.
fn sleeper(run: u64, sleep: u64, rounds: u32) -> SimProgram {
    prog(move |p| {
        for _ in 0..rounds {
            p.burn(run);
            let _ = p.syscall(Syscall::Nanosleep { ns: sleep });
        }
        vec![]
    })
}

/// Spinner "a" from the start and spinner "b" from 100 µs, both for 10 ms, run to `until`.
fn spinner_joined_at_100us(cfg: SimConfig, until: u64) -> Simulation {
    let mut sim = Simulation::new(cfg).unwrap();
    sim.spawn(TaskSpec::new("a"), spinner(10 * MS));
    let mut b = TaskSpec::new("b");
    b.start_ns = 100 * US;
    sim.spawn(b, spinner(10 * MS));
    sim.run_until(until);
    sim
}

/// The times task `to` was switched in.
fn switches_to(sim: &Simulation, to: u32) -> Vec<u64> {
    sim.log()
        .iter()
        .filter_map(|r| match r.kind {
            LogKind::Switch { next: Some(n), .. } if n == to => Some(r.time),
            _ => None,
        })
        .collect()
}

fn wakeups_of(sim: &Simulation, of: u32) -> Vec<u64> {
    sim.log()
        .iter()
        .filter_map(|r| match r.kind {
            LogKind::Wakeup { task, .. } if task == of => Some(r.time),
            _ => None,
        })
        .collect()
}

#[test]
fn the_base_slice_scales_with_the_cpu_count_as_update_sysctl_does() {
    let slice = |cpus| {
        SimConfig {
            cpus,
            fair_class: FairClass::Eevdf,
            ..SimConfig::default()
        }
        .base_slice_ns()
    };
    assert_eq!(slice(1), 700_000);
    assert_eq!(slice(2), 1_400_000);
    assert_eq!(slice(4), 2_100_000);
    assert_eq!(slice(8), 2_800_000);
    assert_eq!(slice(64), 2_800_000, "the factor stops at 8 CPUs");
    let set = SimConfig {
        sched_base_slice_ns: 3 * MS,
        ..SimConfig::default()
    };
    assert_eq!(set.base_slice_ns(), 3 * MS, "a set slice wins");
}

/// `wakeup_preempt_fair()` ignores `WF_FORK`, and `RUN_TO_PARITY` lets the running task
/// finish its request: a new task waits until the running one's deadline has passed, which
/// (without the hrtick) the tick notices (`update_curr()` -> `update_deadline()`).
#[test]
fn a_new_task_waits_for_the_running_tasks_protected_slice() {
    let sim = spinner_joined_at_100us(cfg_tick(), 5 * MS);
    let first = switches_to(&sim, 1)[0];
    // a's request is 700 µs (one CPU); the first tick after it is at 1 ms.
    assert!(
        (1000 * US..1010 * US).contains(&first),
        "b first ran at {first} ns: {:?}",
        &kinds(&sim)[..20]
    );
    assert!(has(&sim, "need_resched by tick_slice"));
}

/// `place_entity()` with `PLACE_LAG`: a task that sleeps keeps the lag it left with, and
/// while it is owed service (`entity_eligible()`, with the running task ahead of the
/// average) its wakeup preempts (`pick_eevdf()` chooses it). Each short burst spends a
/// little of that lag; once it is spent the sleeper waits for the running task's
/// deadline instead, and the cycle starts again.
#[test]
fn a_sleeper_preempts_while_it_has_lag_and_waits_once_it_has_spent_it() {
    let mut sim = Simulation::new(cfg()).unwrap();
    sim.spawn(TaskSpec::new("spin"), spinner(200 * MS));
    sim.spawn(TaskSpec::new("sleeper"), sleeper(2 * US, 50 * US, 3_000));
    sim.run_until(150 * MS);
    let wakes = wakeups_of(&sim, 1);
    let runs = switches_to(&sim, 1);
    let mut prompt = 0;
    let mut waited = 0;
    for w in &wakes {
        let Some(r) = runs.iter().find(|&&r| r >= *w) else {
            continue;
        };
        if r - w <= 10 * US {
            prompt += 1;
        } else if r - w >= 100 * US {
            waited += 1;
        }
    }
    assert!(wakes.len() > 1_000, "{} wakeups", wakes.len());
    assert!(
        prompt > wakes.len() * 9 / 10,
        "most wakeups preempt at once: {prompt} of {}",
        wakes.len()
    );
    assert!(
        waited >= 1,
        "some wakeups find the lag spent and wait for the spinner's deadline"
    );
}

/// `DELAY_DEQUEUE`: a task that goes to sleep while not eligible (it ran ahead of the
/// average) stays queued. The running task's tick then still sees two queued entities and
/// reschedules at its deadline; the pick lands on the sleeper, which only then leaves.
/// Under the CFS model the queue is empty and no tick reschedules. (The tick's path: with
/// the hrtick the deadline's reschedule comes from the hrtick instead.)
#[test]
fn an_ineligible_sleeper_stays_queued_until_it_is_picked() {
    let run = |fair_class| {
        let mut sim = Simulation::new(SimConfig {
            fair_class,
            ..cfg_tick()
        })
        .unwrap();
        // "ahead" starts first and runs a whole request before "spin" gets the CPU, so it
        // is ahead of the average when it goes to sleep for 20 ms.
        sim.spawn(TaskSpec::new("ahead"), sleeper(3 * MS, 20 * MS, 1));
        let mut s = TaskSpec::new("spin");
        s.start_ns = 10 * US;
        sim.spawn(s, spinner(30 * MS));
        sim.run_until(20 * MS);
        let slept_at = sim
            .log()
            .iter()
            .find(|r| r.task == Some(0) && matches!(r.kind, LogKind::Switch { .. }))
            .map(|r| r.time)
            .unwrap();
        sim.log()
            .iter()
            .filter(|r| r.time > slept_at + 500 * US && r.task == Some(1))
            .filter(|r| r.kind.to_string().contains("need_resched by tick_slice"))
            .map(|r| r.time)
            .collect::<Vec<_>>()
    };
    let eevdf = run(FairClass::Eevdf);
    assert!(
        !eevdf.is_empty(),
        "the delayed sleeper keeps the spinner's tick rescheduling"
    );
    assert!(
        eevdf.last().unwrap() < &(10 * MS),
        "until a pick lands on it and it leaves the queue: {eevdf:?}"
    );
    assert_eq!(run(FairClass::Cfs), Vec::<u64>::new());
}

/// `yield_task_fair()`: an eligible task that yields forfeits the rest of its request,
/// so the other task runs at once instead of after the protected slice.
#[test]
fn sched_yield_hands_the_cpu_over_at_once() {
    let mut sim = Simulation::new(cfg()).unwrap();
    sim.spawn(
        TaskSpec::new("yielder"),
        prog(|p| {
            p.burn(100 * US);
            let _ = p.syscall(Syscall::SchedYield);
            p.burn(5 * MS);
            vec![]
        }),
    );
    let mut b = TaskSpec::new("b");
    b.start_ns = 10 * US;
    sim.spawn(b, spinner(5 * MS));
    sim.run_until(3 * MS);
    let first = switches_to(&sim, 1)[0];
    assert!(
        first < 110 * US,
        "b ran at {first} ns, right after the yield at 100 µs"
    );
}

/// `sched_feat(HRTICK)` (`hrtick_update()` on enqueue, `hrtick()`): with company queued,
/// the running task's request ends at its virtual deadline exactly, by the hrtick's
/// `resched_curr()`, not at the next tick. The first task was placed with half a request
/// (`PLACE_DEADLINE_INITIAL`: 350 µs of the one-CPU 700 µs slice), so the new task runs
/// right after 350 µs where the tick would have let it wait to 1 ms.
#[test]
fn the_hrtick_ends_a_request_at_its_deadline_not_at_the_tick() {
    let sim = spinner_joined_at_100us(cfg(), 5 * MS);
    let first = switches_to(&sim, 1)[0];
    assert!(
        (350 * US..360 * US).contains(&first),
        "b first ran at {first} ns: {:?}",
        &kinds(&sim)[..12]
    );
    assert!(has(&sim, "need_resched by hrtick"));
    assert!(
        !has(&sim, "need_resched by tick_slice"),
        "the tick finds nothing to end"
    );
    // From then on each request ends at its own deadline: switches come 700 µs apart,
    // never aligned to the 1 ms tick.
    let all: Vec<u64> = sim
        .log()
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                LogKind::Switch {
                    prev: Some(_),
                    next: Some(_)
                }
            )
        })
        .map(|r| r.time)
        .collect();
    assert!(all.len() >= 6, "{all:?}");
    for w in all.windows(2).skip(1) {
        let gap = w[1] - w[0];
        assert!((690 * US..720 * US).contains(&gap), "switches {all:?}");
    }
}

/// `hrtick_start_fair()` runs only with company (`h_nr_queued > 1`), and nothing cancels the
/// timer when that company leaves: an idle pick does (`hrtick_schedule_exit()`). A task
/// alone on its CPU is never interrupted by an hrtick.
#[test]
fn a_task_alone_gets_no_hrtick() {
    let mut sim = Simulation::new(cfg()).unwrap();
    sim.spawn(TaskSpec::new("alone"), spinner(5 * MS));
    sim.run_until(6 * MS);
    assert!(!has(&sim, "irq_enter hrtick"), "{:?}", &kinds(&sim)[..10]);
}

/// The hrtick's reschedule is `resched_curr()`, the full bit: under `preempt=lazy` a task
/// whose request ends is preempted by the hrtick's own interrupt, not at the next tick's
/// upgrade of a lazy request.
#[test]
fn the_hrtick_reschedules_with_the_full_bit_under_lazy() {
    let lazy = SimConfig {
        preempt: Preempt::Lazy,
        ..cfg()
    };
    let sim = spinner_joined_at_100us(lazy, 2 * MS);
    let first = switches_to(&sim, 1)[0];
    assert!(
        (350 * US..360 * US).contains(&first),
        "b first ran at {first} ns"
    );
    assert!(has(&sim, "need_resched by hrtick"));
}

/// `wakeup_preempt()` → `rq_clock_skip_update()`: a wakeup that leaves the running task with
/// `TIF_NEED_RESCHED` asks the next `__schedule()` not to read the clock again, so the
/// time from the wakeup to the switch (the rest of the interrupt, a granted extension) is
/// charged to the task switched in, not to the one that ran it. Under `preempt=lazy` a
/// fair wakeup sets only the lazy bit and nothing is skipped.
#[test]
fn a_preempting_wakeup_charges_the_time_to_the_switch_to_the_woken_task() {
    let run = |preempt| {
        let mut sim = Simulation::new(SimConfig { preempt, ..cfg() }).unwrap();
        sim.spawn(TaskSpec::new("spin"), spinner(10 * MS));
        sim.spawn(
            TaskSpec::new("sleeper"),
            prog(|p| {
                for _ in 0..3 {
                    let _ = p.syscall(Syscall::Nanosleep { ns: 200 * US });
                    p.burn(US);
                }
                vec![]
            }),
        );
        sim.run_until(3 * MS);
        // The sleeper's intervals on the CPU, from the wakeup that preempted for it (or
        // its switch-in) to its switch-out.
        let mut from_wake = 0;
        let mut from_switch = 0;
        let (mut woke, mut inn) = (None, None);
        for r in sim.log() {
            match r.kind {
                LogKind::Wakeup { task: 1, .. } => woke = Some(r.time),
                LogKind::Switch { next: Some(1), .. } => inn = Some(r.time),
                LogKind::Switch { prev: Some(1), .. } => {
                    let i = inn.take().unwrap();
                    from_switch += r.time - i;
                    from_wake += r.time - woke.take().unwrap_or(i);
                }
                _ => {}
            }
        }
        (sim.tasks()[1].sum_exec, from_wake, from_switch)
    };
    let (charged, from_wake, from_switch) = run(Preempt::Full);
    assert!(from_wake > from_switch, "{from_wake} {from_switch}");
    assert_eq!(charged, from_wake, "full: charged from the wakeup");
    let (charged, from_wake, from_switch) = run(Preempt::Lazy);
    assert!(from_wake > from_switch, "{from_wake} {from_switch}");
    assert_eq!(charged, from_switch, "lazy: charged from the switch");
}
