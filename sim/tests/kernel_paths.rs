//! Scheduler, syscall and timing paths around the protocol: membarrier, futex, sched_yield,
//! signals, preemption models, load balancing, and the §13 q5 window.

mod common;

use common::*;
use rseq_abi::layout::offset;
use rseq_abi::platform::{
    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
};
use rseq_abi::{CpuSet, Errno, Platform, SharedWord, Syscall};
use rseq_sim::*;

fn membarrier(p: &mut SimPlatform<'_>, cmd: i32) -> i64 {
    match p.syscall(Syscall::Membarrier {
        cmd,
        flags: 0,
        cpu_id: 0,
    }) {
        Ok(v) => v,
        Err(e) => -i64::from(e.0),
    }
}

#[test]
fn s13_q5_expiry_between_syscall_entry_and_work_counts_expired_and_yielded() {
    let cfg = SimConfig {
        syscall_work_delay_ns: 2_000,
        ..cfg1()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    sim.spawn(
        TaskSpec::new("t"),
        prog(|p| {
            enable(p);
            p.store_u8(offset::REQUEST, 1);
            let now = p.clock_ns();
            p.burn(6_500 - now); // granted at 2.3 µs, expires at 7.3 µs
            let gr = p.load_u8(offset::GRANTED);
            let y = p.syscall(Syscall::RseqSliceYield).unwrap();
            vec![("gr", gr.into()), ("yield", y)]
        }),
    );
    sim.inject_irq(2 * US, 0, IrqKind::Device(ReschedReq::Full));
    sim.run_until(50 * US);
    let s = sim.stats();
    assert_eq!(
        (s.granted, s.expired, s.yielded, s.revoked),
        (1, 1, 1, 0),
        "{s:?}"
    );
    assert_eq!((counter(&sim, 0, "gr"), counter(&sim, 0, "yield")), (1, 1));
    assert!(has(&sim, "irq_enter slice_timer from=kernel"));
}

#[test]
fn membarrier_rseq_syscall_revokes_a_grant_on_another_cpu() {
    let cfg = SimConfig {
        cpus: 2,
        hz: 0,
        load_balance: false,
        timer_slack_ns: 0,
        timer_jitter_ns: 0,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    let mut holder = TaskSpec::new("holder");
    holder.affinity = Some(CpuSet::single(0));
    let h = sim.spawn(
        holder,
        prog(|p| {
            enable(p);
            p.store_u8(offset::REQUEST, 1);
            p.burn(20 * US);
            vec![("gr", p.load_u8(offset::GRANTED).into())]
        }),
    );
    let mut caller = TaskSpec::new("caller");
    caller.affinity = Some(CpuSet::single(1));
    caller.thread_of = Some(h);
    sim.spawn(
        caller,
        prog(|p| {
            let unregistered = membarrier(p, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ);
            let reg = membarrier(p, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ);
            let now = p.clock_ns();
            p.burn(8 * US - now);
            let ipi = membarrier(p, MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ);
            vec![("unregistered", unregistered), ("reg", reg), ("ipi", ipi)]
        }),
    );
    sim.inject_irq(5 * US, 0, IrqKind::Device(ReschedReq::Full));
    sim.run_until(100 * US);
    assert_eq!(counter(&sim, 1, "unregistered"), -i64::from(Errno::EPERM.0));
    assert_eq!((counter(&sim, 1, "reg"), counter(&sim, 1, "ipi")), (0, 0));
    assert!(has(&sim, "irq_enter membarrier_ipi from=user"));
    let s = sim.stats();
    assert_eq!((s.granted, s.revoked, s.expired), (1, 1, 0), "{s:?}");
    assert_eq!(counter(&sim, h, "gr"), 0);
    // The expedited membarrier returns (the caller is back in user mode) only once its IPI
    // has landed.
    let log = sim.log();
    let ipi = log
        .iter()
        .find(|r| r.kind.to_string().starts_with("irq_enter membarrier_ipi"))
        .unwrap()
        .time;
    let call = log
        .iter()
        .rposition(|r| {
            r.task == Some(1) && r.kind.to_string().starts_with("syscall_enter membarrier")
        })
        .unwrap();
    let back = log[call..]
        .iter()
        .find(|r| r.task == Some(1) && r.kind.to_string() == "exit_to_user")
        .unwrap();
    assert!(
        back.time >= ipi,
        "back in user at {}, IPI at {ipi}",
        back.time
    );
}

#[test]
fn futex_wait_sleeps_until_wake_and_mismatch_is_eagain() {
    let w = SharedWord(5);
    let mut sim = Simulation::new(cfg1()).unwrap();
    sim.spawn(
        TaskSpec::new("waiter"),
        prog(move |p| {
            let mismatch = p.syscall(Syscall::FutexWait {
                word: w,
                expected: 9,
            });
            let t0 = p.clock_ns();
            let woke = p.syscall(Syscall::FutexWait {
                word: w,
                expected: 0,
            });
            let slept = p.clock_ns() - t0;
            vec![
                ("mismatch", mismatch.err().map_or(0, |e| e.0.into())),
                ("woke", woke.unwrap_or(-1)),
                ("slept_ns", slept as i64),
            ]
        }),
    );
    sim.spawn(
        TaskSpec::new("waker"),
        prog(move |p| {
            p.burn(10 * US);
            p.shared_store(w, 1);
            vec![(
                "woken",
                p.syscall(Syscall::FutexWake { word: w, count: 1 }).unwrap(),
            )]
        }),
    );
    sim.run_until(100 * US);
    assert_eq!(counter(&sim, 0, "mismatch"), 11, "EAGAIN");
    assert_eq!(
        (counter(&sim, 0, "woke"), counter(&sim, 1, "woken")),
        (0, 1)
    );
    assert!(counter(&sim, 0, "slept_ns") >= 10_000);
}

#[test]
fn sched_yield_lets_the_other_task_run() {
    let mut sim = Simulation::new(cfg1()).unwrap();
    sim.spawn(
        TaskSpec::new("yielder"),
        prog(|p| {
            p.burn(US);
            vec![("ret", p.syscall(Syscall::SchedYield).unwrap())]
        }),
    );
    sim.spawn(
        TaskSpec::new("other"),
        prog(|p| {
            p.burn(US);
            vec![]
        }),
    );
    sim.run_until(100 * US);
    let k = kinds(&sim);
    let y = k
        .iter()
        .position(|s| s.starts_with("syscall_enter sched_yield"))
        .unwrap();
    assert_eq!(k[y + 1], "switch T0 -> T1", "{:?}", &k[y..y + 3]);
    assert_eq!(counter(&sim, 0, "ret"), 0);
    assert_eq!(
        count(&sim, "syscall_exit sched_yield"),
        1,
        "the exit is logged once"
    );
    // Alone on the CPU, sched_yield returns at once, again logged once.
    let mut sim = Simulation::new(cfg1()).unwrap();
    sim.spawn(
        TaskSpec::new("alone"),
        prog(|p| vec![("ret", p.syscall(Syscall::SchedYield).unwrap())]),
    );
    sim.run_until(100 * US);
    assert_eq!(count(&sim, "syscall_exit sched_yield"), 1);
}

#[test]
fn signal_interrupts_a_sleep_with_eintr() {
    let mut sim = Simulation::new(cfg1()).unwrap();
    sim.spawn(
        TaskSpec::new("sleeper"),
        prog(|p| {
            let r = p.syscall(Syscall::Nanosleep { ns: 1_000_000 });
            vec![
                ("errno", r.err().map_or(0, |e| e.0.into())),
                ("at", p.clock_ns() as i64),
            ]
        }),
    );
    sim.send_signal(10 * US, 0, rseq_abi::consts::signal::SIGUSR1);
    sim.run_until(2_000_000);
    assert_eq!(counter(&sim, 0, "errno"), 4, "EINTR");
    assert!(counter(&sim, 0, "at") < 20_000);
}

/// A remote wakeup on 2 CPUs: the waker on CPU 1 wakes a sleeper whose CPU 0 runs a busy
/// task. Returns the time the sleeper was switched in.
fn remote_wakeup_switch_time(preempt: Preempt) -> u64 {
    let w = SharedWord(1);
    let cfg = SimConfig {
        cpus: 2,
        preempt,
        // The CFS model with no granularity: the remote wakeup preempts.
        fair_class: FairClass::Cfs,
        wakeup_gran_ns: 0,
        load_balance: false,
        timer_slack_ns: 0,
        timer_jitter_ns: 0,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    let mut sleeper = TaskSpec::new("sleeper");
    sleeper.affinity = Some(CpuSet::single(0));
    sim.spawn(
        sleeper,
        prog(move |p| {
            let _ = p.syscall(Syscall::FutexWait {
                word: w,
                expected: 0,
            });
            vec![]
        }),
    );
    let mut busy = TaskSpec::new("busy");
    busy.affinity = Some(CpuSet::single(0));
    sim.spawn(
        busy,
        prog(|p| {
            p.burn(5_000_000);
            vec![]
        }),
    );
    let mut waker = TaskSpec::new("waker");
    waker.affinity = Some(CpuSet::single(1));
    sim.spawn(
        waker,
        prog(move |p| {
            p.burn(100 * US);
            p.shared_store(w, 1);
            let _ = p.syscall(Syscall::FutexWake { word: w, count: 1 });
            vec![]
        }),
    );
    sim.run_until(10_000_000);
    sim.log()
        .iter()
        .find(|r| {
            matches!(
                r.kind,
                LogKind::Switch {
                    prev: Some(1),
                    next: Some(0)
                }
            )
        })
        .map(|r| r.time)
        .expect("the sleeper ran")
}

#[test]
fn lazy_reschedule_sends_no_ipi_and_waits_for_the_tick_full_preempts_at_once() {
    let full = remote_wakeup_switch_time(Preempt::Full);
    let lazy = remote_wakeup_switch_time(Preempt::Lazy);
    assert!(
        full < 110 * US,
        "FULL: the reschedule IPI preempts within microseconds: {full}"
    );
    assert_eq!(
        lazy % 1_000_000,
        300,
        "LAZY: the next tick (a 1 ms multiple) enters from user; its exit work one \
         interrupt latency later schedules: {lazy}"
    );
    assert!(lazy > full);
}

#[test]
fn issue12_item12_none_and_voluntary_are_refused_with_the_feature_configured() {
    // Every architecture with the feature has lazy preemption, which rules out NONE and
    // VOLUNTARY in kernel/Kconfig.preempt: such a machine does not exist.
    for m in [Preempt::None, Preempt::Voluntary] {
        let err = Simulation::new(SimConfig {
            preempt: m,
            ..cfg1()
        })
        .err()
        .expect("refused");
        assert!(matches!(err, SimError::Config(ConfigError::PreemptModel(n)) if n == m.name()));
        assert!(
            err.to_string().contains("CONFIG_RSEQ_SLICE_EXTENSION"),
            "{err}"
        );
        // Without the feature the model stays available (no protocol to get wrong).
        assert!(Simulation::new(SimConfig {
            preempt: m,
            config_slice_ext: false,
            ..cfg1()
        })
        .is_ok());
    }
}

#[test]
fn idle_cpu_pulls_a_waiting_task() {
    let cfg = SimConfig {
        cpus: 2,
        hz: 1000,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    // Three busy tasks on two CPUs: long-a and short get a CPU each, long-b queues behind
    // long-a; when short exits, its idle CPU pulls long-b.
    let long = || {
        prog(|p| {
            p.burn(2_000_000);
            vec![]
        })
    };
    sim.spawn(TaskSpec::new("long-a"), long());
    sim.spawn(
        TaskSpec::new("short"),
        prog(|p| {
            p.burn(100 * US);
            vec![]
        }),
    );
    sim.spawn(TaskSpec::new("long-b"), long());
    sim.run_until(10_000_000);
    assert!(sim.all_exited());
    assert!(
        has(&sim, "migrate T2 0 -> 1"),
        "long-b moved to the idle CPU: {:?}",
        kinds(&sim)
    );
    assert!(
        sim.cpus().iter().all(|c| c.busy_ns > 1_000_000),
        "both CPUs did real work"
    );
}

#[test]
fn affinity_without_an_online_cpu_fails_that_task_not_the_engine() {
    let mut sim = Simulation::new(SimConfig { cpus: 2, ..cfg1() }).unwrap();
    let mut bad = TaskSpec::new("bad");
    bad.affinity = Some(CpuSet::single(126));
    sim.spawn(bad, prog(|_| vec![]));
    sim.spawn(TaskSpec::new("good"), prog(|_| vec![("ok", 1)]));
    sim.run_until(100 * US);
    assert!(matches!(&sim.tasks()[0].exit, Some(TaskExit::SpawnFailed(m)) if m.contains("no CPU")));
    assert_eq!(counter(&sim, 1, "ok"), 1);
}

#[test]
fn max_threads_is_a_deterministic_limit() {
    let mut sim = Simulation::new(SimConfig {
        max_threads: 2,
        ..cfg1()
    })
    .unwrap();
    for i in 0..3 {
        sim.spawn(
            TaskSpec::new(format!("t{i}")),
            prog(|p| {
                let _ = p.syscall(Syscall::Nanosleep { ns: 10 * US });
                vec![("ok", 1)]
            }),
        );
    }
    sim.run_until(100 * US);
    assert_eq!((counter(&sim, 0, "ok"), counter(&sim, 1, "ok")), (1, 1));
    assert!(
        matches!(&sim.tasks()[2].exit, Some(TaskExit::SpawnFailed(m)) if m.contains("max_threads = 2"))
    );
}

#[test]
fn a_final_burn_is_charged_and_interruptible_before_the_exit() {
    let mut sim = Simulation::new(cfg1()).unwrap();
    sim.spawn(
        TaskSpec::new("t"),
        prog(|p| {
            p.burn(10 * US);
            vec![]
        }),
    );
    sim.inject_irq(5 * US, 0, IrqKind::Device(ReschedReq::None));
    sim.run_until(100 * US);
    let exit = sim
        .log()
        .iter()
        .find(|r| matches!(r.kind, LogKind::TaskExit { .. }))
        .unwrap();
    // Starts at 1.3 us (first return to user), burns 10 us, plus one 300 ns interrupt.
    assert_eq!(exit.time, 1_300 + 10_000 + 300);
    assert!(
        has(&sim, "irq_enter device from=user"),
        "the burn was user time"
    );
}

#[test]
fn nice_values_split_the_cpu_by_load_weight() {
    // Two CPU hogs on one CPU, nice 0 (weight 1024) and nice 5 (weight 335): the fair
    // class gives them CPU time in about that ratio.
    let cfg = SimConfig {
        cpus: 1,
        hz: 1000,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    for nice in [0, 5] {
        let mut spec = TaskSpec::new(format!("nice{nice}"));
        spec.nice = nice;
        sim.spawn(
            spec,
            prog(|p| loop {
                p.burn(100 * US);
            }),
        );
    }
    sim.run_until(600_000_000);
    let (a, b) = (
        sim.tasks()[0].sum_exec as f64,
        sim.tasks()[1].sum_exec as f64,
    );
    let ratio = a / b;
    assert!(
        (2.6..3.6).contains(&ratio),
        "CPU share nice0/nice5 = {ratio:.2} (weights 1024/335 = 3.06)"
    );
}

#[test]
fn s13_q12_remote_reschedule_swallowed_by_a_grant_waits_for_the_timer() {
    // The holder on CPU 0 is in the kernel (an interrupt's exit latency) when a wakeup from
    // CPU 1 sets its NEED_RESCHED. Its exit work finds NEED_RESCHED and request=1, grants,
    // and clears the flag: the remote request is gone, the IPI that follows lands in user
    // mode with nothing to do, and only the enforcement timer ends the grant.
    let w = SharedWord(3);
    let cfg = SimConfig {
        cpus: 2,
        hz: 0,
        load_balance: false,
        // The CFS model with no granularity: the remote wakeup preempts.
        fair_class: FairClass::Cfs,
        wakeup_gran_ns: 0,
        timer_slack_ns: 0,
        timer_jitter_ns: 0,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    let mut waiter = TaskSpec::new("waiter");
    waiter.affinity = Some(CpuSet::single(0));
    let waiter = sim.spawn(
        waiter,
        prog(move |p| {
            let _ = p.syscall(Syscall::FutexWait {
                word: w,
                expected: 0,
            });
            vec![]
        }),
    );
    let mut holder = TaskSpec::new("holder");
    holder.affinity = Some(CpuSet::single(0));
    sim.spawn(
        holder,
        prog(|p| {
            enable(p);
            p.store_u8(offset::REQUEST, 1);
            p.burn(20 * US);
            vec![]
        }),
    );
    let mut waker = TaskSpec::new("waker");
    waker.affinity = Some(CpuSet::single(1));
    sim.spawn(
        waker,
        prog(move |p| {
            let now = p.clock_ns();
            p.burn(5_100 - now);
            p.shared_store(w, 1);
            let _ = p.syscall(Syscall::FutexWake { word: w, count: 1 });
            vec![]
        }),
    );
    sim.inject_irq(5 * US, 0, IrqKind::Device(ReschedReq::None));
    sim.run_until(100 * US);
    let log = sim.log();
    let time = |pred: &dyn Fn(&LogKind) -> bool| log.iter().find(|r| pred(&r.kind)).map(|r| r.time);
    let grant = time(&|k| matches!(k, LogKind::Grant { .. })).expect("granted");
    let expiry = time(&|k| matches!(k, LogKind::TimerExpire { hit: true })).expect("expired");
    let wakee_runs = log
        .iter()
        .filter(|r| r.time > grant)
        .find(|r| matches!(r.kind, LogKind::Switch { next: Some(n), .. } if n == waiter))
        .map(|r| r.time)
        .expect("the waiter runs eventually");
    assert!(
        has(&sim, "need_resched by wakeup_preempt"),
        "the remote wakeup asked"
    );
    assert_eq!(
        grant, 5_300,
        "granted on the interrupt's exit, the remote request swallowed"
    );
    assert!(
        wakee_runs >= expiry,
        "the waiter ran at {wakee_runs}, before the expiry at {expiry}"
    );
    assert_eq!((sim.stats().granted, sim.stats().expired), (1, 1));
    let ipi = log
        .iter()
        .find(|r| r.cpu == 0 && r.kind.to_string() == "irq_enter resched_ipi from=user")
        .map(|r| r.time)
        .expect("the wakeup's IPI lands in user mode");
    assert!(ipi > grant && ipi < expiry, "IPI at {ipi}");
    let switched = log.iter().any(|r| {
        r.cpu == 0 && r.time > grant && r.time < expiry && matches!(r.kind, LogKind::Switch { .. })
    });
    assert!(
        !switched,
        "nothing schedules the holder out before the timer"
    );
}
