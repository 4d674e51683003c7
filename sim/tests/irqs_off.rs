//! Interrupts are disabled from the entry of an interrupt from user mode through its hard
//! irq and `irqentry_exit()`; an interrupt raised meanwhile stays pending in the APIC. If
//! the exit has work, `exit_to_user_mode_loop()` enables interrupts at the top of its pass
//! (`kernel/entry/common.c`), so the pending one is taken there, in kernel mode, before the
//! grant decision, and its own `irqentry_exit()` preempts the task if a reschedule is
//! pending. If there is no work, interrupts stay off to the return and the pending one
//! enters from user mode right after it.

mod common;

use rseq_abi::layout::offset;
use rseq_abi::{CpuSet, Platform, Syscall};
use rseq_sim::*;

use common::*;

/// One user-mode spinner on CPU 0; a device interrupt at `at`; the 1 kHz tick; each
/// interrupt costs 3 µs. Returns every `irq_enter` as (time, kind, from user).
fn irqs(at: u64) -> Vec<(u64, IrqKind, bool)> {
    let cfg = SimConfig {
        hz: 1000,
        irq_latency_ns: 3 * US,
        ..cfg1()
    };
    let mut sim = Simulation::new(cfg).unwrap();
    sim.spawn(
        TaskSpec::new("spinner"),
        prog(|p| {
            p.burn(2_500 * US);
            vec![]
        }),
    );
    sim.add_irq_source(IrqSource::new(
        0,
        IrqKind::Device(ReschedReq::None),
        IrqPattern::OneShot { at },
    ));
    sim.run_until(2_600 * US);
    sim.log()
        .iter()
        .filter_map(|r| match r.kind {
            LogKind::IrqEnter { kind, from_user } => Some((r.time, kind, from_user)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_tick_raised_during_an_interrupts_exit_is_taken_after_the_return_from_user_mode() {
    // The device interrupt at 999 µs keeps interrupts off until 1,002 µs; the tick due at
    // 1 ms waits for that and then enters from user mode like any other.
    let seen = irqs(999 * US);
    let first = seen.iter().position(|e| e.1 == IrqKind::Tick).unwrap();
    assert_eq!(
        seen[first - 1],
        (999 * US, IrqKind::Device(ReschedReq::None), true)
    );
    assert_eq!(seen[first], (1_002 * US, IrqKind::Tick, true));
    // The late tick does not move the next one: hrtimer_forward() keeps the period.
    assert_eq!(seen[first + 1], (2_000 * US, IrqKind::Tick, true));
}

#[test]
fn an_interrupt_after_the_exit_is_not_deferred() {
    // At 996 µs the device interrupt's exit is over (999 µs) before the tick comes due.
    let seen = irqs(996 * US);
    assert!(
        seen.contains(&(1_000 * US, IrqKind::Tick, true)),
        "{seen:?}"
    );
}

/// Enable the extension, set `request` at `start`, spin `len`, and yield if granted.
fn section_at(start: u64, len: u64) -> SimProgram {
    prog(move |p| {
        enable(p);
        let now = p.clock_ns();
        p.burn(start - now.min(start));
        p.store_u8(offset::REQUEST, 1);
        p.burn(len);
        if p.load_u8(offset::GRANTED) != 0 {
            let _ = p.syscall(Syscall::RseqSliceYield);
        }
        vec![]
    })
}

/// One task that registers, requests an extension at 2 µs and keeps it 10 µs; a reschedule
/// interrupt at 5 µs (exit at 5.3 µs); `also`: another interrupt during its hard irq.
fn grant_with_pending(also: Option<(u64, IrqKind)>) -> Simulation {
    let mut sim = Simulation::new(cfg1()).unwrap();
    sim.spawn(TaskSpec::new("t"), section_at(2 * US, 10 * US));
    sim.inject_irq(5 * US, 0, IrqKind::Device(ReschedReq::Full));
    if let Some((at, kind)) = also {
        sim.inject_irq(at, 0, kind);
    }
    sim.run_until(30 * US);
    sim
}

#[test]
fn an_interrupt_pending_when_the_exit_loop_enables_interrupts_preempts_before_the_grant() {
    assert_eq!(grant_with_pending(None).stats().granted, 1);
    // Raised at 5.1 µs, inside the reschedule interrupt's hard irq: taken in kernel mode
    // when the exit loop enables interrupts (5.3 µs), where its exit finds the pending
    // reschedule and preempts; the grant decision never comes.
    let sim = grant_with_pending(Some((5 * US + 100, IrqKind::Device(ReschedReq::None))));
    assert_eq!(sim.stats().granted, 0);
    let taken = sim.log().iter().find_map(|r| match r.kind {
        LogKind::IrqEnter {
            kind: IrqKind::Device(ReschedReq::None),
            from_user,
        } => Some((r.time, from_user)),
        _ => None,
    });
    assert_eq!(taken, Some((5 * US + 300, false)));
    // After the exit it is an ordinary interrupt inside the grant.
    let sim = grant_with_pending(Some((5 * US + 400, IrqKind::Device(ReschedReq::None))));
    assert_eq!(sim.stats().granted, 1);
}

/// A task asks at 990 µs, is granted at 997.3 µs (timer at 1,002.3 µs) and looks 11 µs
/// after asking; the tick at 1 ms. With `stall` every tick is followed by a vCPU stall
/// of that length (qemu `-icount`). Returns the stats and the slice timer's arrival.
fn grant_across_a_tick(stall: Option<u64>) -> (SliceStats, Option<(u64, bool)>) {
    let mut cfg = SimConfig { hz: 1000, ..cfg1() };
    if let Some(ns) = stall {
        cfg.tick_stalls = TickStalls {
            ticks: 1,
            stalls_ns: vec![ns],
        };
    }
    let mut sim = Simulation::new(cfg).unwrap();
    sim.spawn(TaskSpec::new("t"), section_at(990 * US, 11 * US));
    sim.inject_irq(997 * US, 0, IrqKind::Device(ReschedReq::Full));
    sim.run_until(1_100 * US);
    let timer = sim.log().iter().find_map(|r| match r.kind {
        LogKind::IrqEnter {
            kind: IrqKind::SliceTimer,
            from_user,
        } => Some((r.time, from_user)),
        _ => None,
    });
    (sim.stats(), timer)
}

#[test]
fn a_vcpu_stall_after_the_tick_freezes_the_task_and_its_grant_expires() {
    let (s, timer) = grant_across_a_tick(None);
    assert_eq!((s.granted, s.yielded, s.expired), (1, 1, 0));
    assert_eq!(timer, None, "yielded at 1,001.3 µs, before the timer");
    // Frozen from the tick's return (1,000.3 µs) for 5 µs: the timer comes due meanwhile
    // and fires when the vCPU runs again, from user mode, before the task can yield.
    let (s, timer) = grant_across_a_tick(Some(5 * US));
    assert_eq!((s.granted, s.expired, s.revoked, s.yielded), (1, 1, 1, 0));
    assert_eq!(timer, Some((1_005_300, true)));
}

/// On CPU `cpu` of two: a sleeper (950 µs, 50 µs of slack) whose sleep the 1 ms tick
/// ends, and a task that asks at 998 µs and keeps asking for 5 µs of CPU time, so the
/// tick's exit grants (timer at +5 µs) with 3 µs of its section left; every tick is a 6 µs
/// vCPU stall. Returns the stats.
fn grant_at_a_stalled_tick(cpu: usize) -> SliceStats {
    // EEVDF: the sleeper is owed service, so its wakeup preempts.
    let mut cfg = SimConfig {
        cpus: 2,
        hz: 1000,
        timer_slack_ns: 50 * US,
        fair_class: FairClass::Eevdf,
        ..cfg1()
    };
    cfg.tick_stalls = TickStalls {
        ticks: 1,
        stalls_ns: vec![6 * US],
    };
    let mut sim = Simulation::new(cfg).unwrap();
    let mut sleeper = TaskSpec::new("sleeper");
    sleeper.affinity = Some(CpuSet::single(cpu));
    sim.spawn(
        sleeper,
        prog(|p| {
            let _ = p.syscall(Syscall::Nanosleep { ns: 950 * US });
            vec![]
        }),
    );
    let mut t = TaskSpec::new("t");
    t.affinity = Some(CpuSet::single(cpu));
    t.start_ns = US;
    sim.spawn(t, section_at(998 * US, 5 * US));
    sim.run_until(1_100 * US);
    sim.stats()
}

/// qemu's `-icount` runs the vCPUs round-robin in index order: the other vCPUs' turn at a
/// tick comes before the handler of a vCPU they precede, and after the exit (at its timer
/// arm's kick) of one they follow. Only the second freezes a grant made at that tick.
#[test]
fn a_tick_stall_falls_before_the_handler_of_a_vcpu_qemu_runs_later() {
    // CPU 0 of 2: CPU 1's turn comes after the grant's arm, and the extension runs out.
    let s = grant_at_a_stalled_tick(0);
    assert_eq!((s.granted, s.expired), (1, 1));
    // CPU 1 of 2: CPU 0 runs first; the grant comes after the stall and is yielded.
    let s = grant_at_a_stalled_tick(1);
    assert_eq!((s.granted, s.expired, s.yielded), (1, 0, 1));
}
