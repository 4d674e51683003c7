//! The choice interface: injections land just before the chosen user operation, menus are
//! reduced to kinds with distinct effects, and a chooser that injects nothing reproduces
//! the seeded engine exactly.

mod common;

use common::*;
use rseq_abi::layout::offset;
use rseq_abi::Platform;
use rseq_sim::*;

/// Records every point offered and injects `plan`.
fn sim_with(cfg: SimConfig, plan: Vec<(u32, Injection)>) -> (Simulation, u32) {
    let seed = cfg.seed;
    let mut sim = Simulation::new(cfg).unwrap();
    sim.set_chooser(Box::new(Replay::new(seed, plan, true)));
    let t = sim.spawn(
        TaskSpec::new("holder"),
        prog(|p| {
            enable(p); // points 0 (rseq) and 1 (prctl)
            p.burn(US);
            p.store_u8(offset::REQUEST, 1); // point 2
            p.burn(2 * US);
            let was = p.load_u8(offset::REQUEST); // point 3
            p.store_u8(offset::REQUEST, 0); // point 4
            let granted = p.load_u8(offset::GRANTED); // point 5
            vec![("was", i64::from(was)), ("granted", i64::from(granted))]
        }),
    );
    sim.watch(t);
    (sim, t)
}

#[test]
fn an_injection_lands_just_before_the_operation_it_names() {
    // An interrupt with a reschedule before point 3 (the load of `request`): the kernel
    // grants on its way back, so the load sees request=0 and the check sees granted=1.
    let (mut sim, t) = sim_with(cfg1(), vec![(3, Injection::IrqResched)]);
    sim.run_until(20 * US);
    assert_eq!(counter(&sim, t, "was"), 0);
    assert_eq!(counter(&sim, t, "granted"), 1);
    let k = kinds(&sim);
    let at = k
        .iter()
        .position(|s| s.starts_with("inject irq+resched at point 3"))
        .unwrap();
    assert!(
        k[at + 1].starts_with("irq_enter device+resched from=user"),
        "{k:?}"
    );
    assert!(k[at..].iter().any(|s| s.starts_with("grant")), "{k:?}");
    // One point later (after the load, before the store of 0) it is the late grant of
    // spec 8.3: the load saw 1, and the check after the store still sees the grant.
    let (mut sim, t) = sim_with(cfg1(), vec![(4, Injection::IrqResched)]);
    sim.run_until(20 * US);
    assert_eq!(counter(&sim, t, "was"), 1);
    assert_eq!(counter(&sim, t, "granted"), 1);
    // One more (after the store of 0): nothing is requested any more, no grant.
    let (mut sim, t) = sim_with(cfg1(), vec![(5, Injection::IrqResched)]);
    sim.run_until(20 * US);
    assert_eq!(counter(&sim, t, "granted"), 0);
    assert_eq!(sim.stats().granted, 0);
}

#[test]
fn menus_leave_out_kinds_that_would_act_like_another() {
    let cfg = SimConfig { cpus: 2, ..cfg1() };
    // A remote reschedule at point 3 sets NEED_RESCHED at once; its IPI comes 500 ns
    // later, after points 4 and 5 (1 ns apart): there, another reschedule request of any
    // kind would find the bit set and do nothing more.
    let (mut sim, _) = sim_with(cfg.clone(), vec![(3, Injection::RemoteResched)]);
    sim.run_until(20 * US);
    let points = sim.chooser_mut::<Replay>().unwrap().points.clone();
    let p2 = &points[2];
    assert!(p2.menu.contains(Injection::IrqResched));
    assert!(p2.menu.contains(Injection::RemoteResched));
    assert!(!p2.menu.contains(Injection::SliceTimer), "no timer armed");
    let p4 = &points[4];
    assert!(!p4.menu.contains(Injection::IrqResched));
    assert!(!p4.menu.contains(Injection::RemoteResched));
    assert!(p4.pruned.contains(Injection::IrqResched));
    assert!(p4.pruned.contains(Injection::RemoteResched));
    assert!(p4.menu.contains(Injection::Irq));
    // The timer is on the menu only while a granted task is its cookie: grant at point 3,
    // then point 5 offers it.
    let (mut sim, _) = sim_with(cfg, vec![(3, Injection::IrqResched)]);
    sim.run_until(20 * US);
    let points = sim.chooser_mut::<Replay>().unwrap().points.clone();
    assert!(
        points[5].menu.contains(Injection::SliceTimer),
        "{:?}",
        points[5]
    );
}

#[test]
fn an_injected_timer_expiry_ends_the_grant_early() {
    let (mut sim, t) = sim_with(
        cfg1(),
        vec![(3, Injection::IrqResched), (5, Injection::SliceTimer)],
    );
    sim.run_until(20 * US);
    let s = sim.stats();
    assert_eq!((s.granted, s.expired, s.revoked), (1, 1, 1));
    assert_eq!(
        counter(&sim, t, "granted"),
        0,
        "the expiry revoked before the check"
    );
}

#[test]
fn a_chooser_that_injects_nothing_is_the_seeded_engine() {
    // Seeded ties, Poisson interrupts and sleep jitter all draw: the replay chooser draws
    // the same stream as the built-in one.
    let cfg = SimConfig {
        cpus: 2,
        tie_break: TieBreak::Seeded,
        seed: 11,
        ..SimConfig::default()
    };
    let run = |replay: bool| {
        let mut sim = Simulation::new(cfg.clone()).unwrap();
        if replay {
            sim.set_chooser(Box::new(Replay::new(11, Vec::new(), false)));
        }
        for i in 0..4 {
            let t = sim.spawn(
                TaskSpec::new(format!("s{i}")),
                prog(|p| {
                    for _ in 0..20 {
                        let _ = p.syscall(rseq_abi::Syscall::Nanosleep { ns: 30 * US });
                        p.burn(5 * US);
                    }
                    vec![]
                }),
            );
            sim.watch(t);
        }
        poisson_resched(&mut sim, 0, 50_000.0);
        sim.run_until(2_000 * US);
        (sim.log_hash(), sim.points_offered())
    };
    let (a, _) = run(false);
    let (b, points) = run(true);
    assert_eq!(a, b);
    assert!(points > 0);
}

#[test]
fn an_injected_migration_waits_for_the_grant_then_moves_the_task() {
    // The stopper's reschedule reaches the holder inside its section: it is granted
    // instead (the move waits), and at the switch after the yield the task is queued on
    // CPU 1, where its rseq update finds new IDs (R4).
    let cfg = SimConfig { cpus: 2, ..cfg1() };
    let mut sim = Simulation::new(cfg).unwrap();
    sim.set_chooser(Box::new(Replay::new(
        0,
        vec![(2, Injection::Migrate)],
        true,
    )));
    let t = sim.spawn(
        TaskSpec::new("holder"),
        prog(|p| {
            enable(p); // points 0, 1
            p.store_u8(offset::REQUEST, 1); // point 2: the migration lands before it
            p.burn(2 * US); // the IPI arrives in here
            p.store_u8(offset::REQUEST, 0);
            let granted = p.load_u8(offset::GRANTED);
            let y = p.syscall(rseq_abi::Syscall::RseqSliceYield);
            p.burn(US);
            vec![("granted", i64::from(granted)), ("yield", y.unwrap_or(-1))]
        }),
    );
    sim.watch(t);
    sim.run_until(30 * US);
    assert_eq!(counter(&sim, t, "granted"), 1);
    assert_eq!(counter(&sim, t, "yield"), 1);
    let k = kinds(&sim);
    let grant = k.iter().position(|s| s.starts_with("grant")).unwrap();
    let moved = k
        .iter()
        .position(|s| s.starts_with("migrate T0 0 -> 1"))
        .unwrap();
    assert!(grant < moved, "{k:?}");
    assert!(
        k[moved..].iter().any(|s| s.starts_with("revoke R4")),
        "{k:?}"
    );
    assert_eq!(sim.tasks()[t as usize].cpu, 1);
    // A task pinned to its CPU has nowhere to go: no migration on the menu.
    let mut sim = Simulation::new(SimConfig { cpus: 2, ..cfg1() }).unwrap();
    sim.set_chooser(Box::new(Replay::new(0, vec![], true)));
    let mut spec = TaskSpec::new("pinned");
    spec.affinity = Some(rseq_abi::CpuSet::single(0));
    let t = sim.spawn(
        spec,
        prog(|p| {
            enable(p);
            vec![]
        }),
    );
    sim.watch(t);
    sim.run_until(10 * US);
    let points = sim.chooser_mut::<Replay>().unwrap().points.clone();
    assert!(!points.is_empty());
    assert!(points
        .iter()
        .all(|p| !p.menu.contains(Injection::Migrate) && !p.pruned.contains(Injection::Migrate)));
}
