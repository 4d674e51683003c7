//! Issue 12: the kernel model held to Linux 7.2.13's source, one test per divergence found
//! by reading `sim/src` beside it (items 1, 4 and 12 live in `rules.rs` and
//! `kernel_paths.rs`). Each test names the item and the kernel function it follows.

mod common;

use rseq_abi::consts::*;
use rseq_abi::layout::offset;
use rseq_abi::protocol;
use rseq_abi::{CpuSet, CtrlWord, Errno, Platform, Revision, SharedWord, Syscall};
use rseq_sim::*;

use common::*;

/// One CPU, no tick, Linux 7.2 (`Revision::PostMerge`).
fn cfg72() -> SimConfig {
    SimConfig {
        revision: Revision::PostMerge,
        ..cfg1()
    }
}

fn v2(name: &str) -> TaskSpec {
    let mut s = TaskSpec::new(name);
    s.rseq_len = Some(64);
    s
}

fn legacy(name: &str) -> TaskSpec {
    let mut s = TaskSpec::new(name);
    s.rseq_len = Some(32);
    s
}

fn killed(sim: &Simulation, task: usize) -> Option<FaultCause> {
    match &sim.tasks()[task].exit {
        Some(TaskExit::Signaled { signo: 11, cause }) => cause.clone(),
        _ => None,
    }
}

// ---- item 2: unregister -----------------------------------------------------------------

#[test]
fn issue12_item2_unregister_resets_only_the_ids_with_cpu_id_start_zero_and_leaves_the_word() {
    // rseq_reset_ids() (kernel/rseq.c) writes cpu_id_start = 0, cpu_id = UNINITIALIZED,
    // node_id = mm_cid = 0; rseq_reset() zeroes the kernel state without counting anything.
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(
        v2("t"),
        prog(|p| {
            enable(p);
            p.store_u8(offset::RESERVED, 0xab);
            p.store_u8(offset::REQUEST, 1);
            protocol::unregister(p).unwrap();
            vec![
                ("cpu_id_start", p.load_u32(offset::CPU_ID_START).into()),
                ("cpu_id", p.load_u32(offset::CPU_ID).into()),
                ("node_id", p.load_u32(offset::NODE_ID).into()),
                ("mm_cid", p.load_u32(offset::MM_CID).into()),
                ("request", p.load_u8(offset::REQUEST).into()),
                ("reserved", p.load_u8(offset::RESERVED).into()),
            ]
        }),
    );
    sim.run_until(100 * US);
    assert_eq!(counter(&sim, 0, "cpu_id_start"), 0);
    assert_eq!(counter(&sim, 0, "cpu_id"), i64::from(u32::MAX));
    assert_eq!(counter(&sim, 0, "node_id"), 0);
    assert_eq!(counter(&sim, 0, "mm_cid"), 0);
    assert_eq!(counter(&sim, 0, "request"), 1, "slice_ctrl untouched");
    assert_eq!(counter(&sim, 0, "reserved"), 0xab, "slice_ctrl untouched");
    assert!(!revokes(&sim)
        .iter()
        .any(|r| r.0 == RevokePath::R7Unregister));
    assert_eq!(sim.stats().revoked, 0);
}

// ---- item 3: legacy registrations -------------------------------------------------------

/// A task that scribbles on `cpu_id_start`, lets `disturb` happen, and reads it back.
fn scribble_then(
    cfg: SimConfig,
    spec: TaskSpec,
    disturb: impl FnOnce(&mut Simulation) + 'static,
    sleep: bool,
) -> Simulation {
    let mut sim = Simulation::new(cfg).unwrap();
    sim.spawn(
        spec,
        prog(move |p| {
            protocol::register(p, 0).unwrap();
            p.burn(2 * US);
            p.store_u32(offset::CPU_ID_START, 99);
            if sleep {
                p.syscall(Syscall::Nanosleep { ns: 5 * US }).unwrap();
            } else {
                p.burn(20 * US);
            }
            vec![("cpu_id_start", p.load_u32(offset::CPU_ID_START).into())]
        }),
    );
    disturb(&mut sim);
    sim.run_until(200 * US);
    sim
}

#[test]
fn issue12_item3_legacy_registration_rewrites_ids_after_every_switch_voluntary_included() {
    // rseq_sched_switch_event() (include/linux/rseq.h): a legacy task gets a full ID
    // update after every context switch; a v2 task only when its IDs changed.
    let legacy_sim = scribble_then(cfg72(), legacy("t"), |_| {}, true);
    assert_eq!(counter(&legacy_sim, 0, "cpu_id_start"), 0, "rewritten");
    let v2_sim = scribble_then(cfg72(), v2("t"), |_| {}, true);
    assert_eq!(counter(&v2_sim, 0, "cpu_id_start"), 99, "left alone");
}

#[test]
fn issue12_item3_legacy_signal_delivery_forces_an_id_update() {
    // __rseq_signal_deliver() (kernel/rseq.c): legacy → rseq_force_update().
    let sig = |s: &mut Simulation| s.send_signal(10 * US, 0, signal::SIGUSR1);
    let legacy_sim = scribble_then(cfg72(), legacy("t"), sig, false);
    assert_eq!(counter(&legacy_sim, 0, "cpu_id_start"), 0, "rewritten");
    let v2_sim = scribble_then(cfg72(), v2("t"), sig, false);
    assert_eq!(counter(&v2_sim, 0, "cpu_id_start"), 99, "left alone");
}

#[test]
fn issue12_item3_legacy_membarrier_ipi_forces_an_id_update() {
    // ipi_rseq() (kernel/sched/membarrier.c) → rseq_sched_switch_event(): for a legacy
    // task a forced update; for a v2 task only the slice word and rseq_cs are looked at.
    let ipi = |s: &mut Simulation| s.inject_irq(10 * US, 0, IrqKind::MembarrierIpi);
    let legacy_sim = scribble_then(cfg72(), legacy("t"), ipi, false);
    assert_eq!(counter(&legacy_sim, 0, "cpu_id_start"), 0, "rewritten");
    let v2_sim = scribble_then(cfg72(), v2("t"), ipi, false);
    assert_eq!(counter(&v2_sim, 0, "cpu_id_start"), 99, "left alone");
}

// ---- item 5: the RT tick upgrades a lazy request --------------------------------------

/// A requester on CPU 0 and a fair waiter on CPU 0 woken from CPU 1 (a lazy reschedule
/// with no IPI); the 10 kHz tick then meets the pending lazy request.
fn lazy_then_tick(preempt: Preempt) -> Simulation {
    let mut sim = Simulation::new(SimConfig {
        cpus: 2,
        hz: 10_000,
        preempt,
        revision: Revision::PostMerge,
        ..cfg1()
    })
    .unwrap();
    let word = SharedWord(0);
    let mut holder = v2("holder");
    holder.affinity = Some(CpuSet::single(0));
    holder.start_ns = 10 * US; // after the waiter went to sleep
    sim.spawn(
        holder,
        prog(|p| {
            enable(p);
            p.burn(1950 * US);
            p.store_u8(offset::REQUEST, 1);
            p.burn(300 * US);
            vec![("granted", p.load_u8(offset::GRANTED).into())]
        }),
    );
    let mut waiter = TaskSpec::new("waiter");
    waiter.affinity = Some(CpuSet::single(0));
    sim.spawn(
        waiter,
        prog(move |p| {
            let _ = p.syscall(Syscall::FutexWait { word, expected: 0 });
            vec![]
        }),
    );
    let mut waker = TaskSpec::new("waker");
    waker.affinity = Some(CpuSet::single(1));
    sim.spawn(
        waker,
        prog(move |p| {
            p.burn(2000 * US);
            p.shared_store(word, 1);
            let _ = p.syscall(Syscall::FutexWake { word, count: 1 });
            vec![]
        }),
    );
    sim.run_until(5000 * US);
    sim
}

#[test]
fn issue12_item5_rt_tick_upgrades_a_pending_lazy_request_which_then_denies_the_grant() {
    // sched_tick() (kernel/sched/core.c) upgrades TIF_NEED_RESCHED_LAZY to a full request
    // whenever lazy preemption is active; on PREEMPT_RT a full request is not extendable.
    let rt = lazy_then_tick(Preempt::Rt);
    assert!(
        has(&rt, "need_resched_lazy by wakeup_preempt"),
        "lazy first"
    );
    assert!(
        has(&rt, "need_resched by tick_lazy_upgrade"),
        "upgraded on RT"
    );
    assert_eq!(rt.stats().granted, 0, "RT: a full request denies the grant");
    let lazy = lazy_then_tick(Preempt::Lazy);
    assert!(has(&lazy, "need_resched by tick_lazy_upgrade"));
    assert_eq!(lazy.stats().granted, 1, "LAZY extends a full request");
}

// ---- item 6: preemption when an interrupt returns into the kernel ---------------------

#[test]
fn issue12_item6_an_interrupt_that_returns_into_a_syscall_preempts_on_a_preemptible_kernel() {
    // irqentry_exit() → irqentry_exit_cond_resched() (kernel/entry/common.c): with
    // TIF_NEED_RESCHED set the interrupted syscall is preempted before it returns.
    let run = |preempt: Preempt| {
        let mut sim = Simulation::new(SimConfig {
            preempt,
            syscall_ns: 2 * US,
            ..cfg72()
        })
        .unwrap();
        sim.spawn(
            TaskSpec::new("caller"),
            prog(|p| {
                let now = p.clock_ns();
                p.burn(10 * US - now);
                let _ = p.syscall(Syscall::Getpid);
                vec![]
            }),
        );
        let mut other = TaskSpec::new("other");
        other.start_ns = 5 * US;
        sim.spawn(other, prog(|_| vec![]));
        sim.inject_irq(11 * US, 0, IrqKind::Device(ReschedReq::Full));
        sim.run_until(100 * US);
        sim
    };
    // The syscall runs from 10 µs to 12 µs; the interrupt at 11 µs returns into it with
    // TIF_NEED_RESCHED set and switches to `other` right there, not at the syscall's end.
    let sim = run(Preempt::Full);
    let at = |needle: &str| {
        sim.log()
            .iter()
            .find(|r| r.kind.to_string().contains(needle))
            .map(|r| r.time)
            .unwrap_or_else(|| panic!("no {needle}"))
    };
    assert!(has(&sim, "irq_enter device+resched from=kernel"));
    let switch = at("switch T0 -> T1");
    assert!(
        (11 * US..12 * US).contains(&switch),
        "preempted inside the syscall, at {switch}"
    );
}

// ---- item 7: the feature compiled out ---------------------------------------------------

#[test]
fn issue12_item7_without_config_rseq_slice_extension_registration_leaves_the_word_alone() {
    // rseq_register() writes slice_ctrl only with CONFIG_RSEQ_SLICE_EXTENSION, and the
    // exit path's clear is an empty stub without it.
    let mut sim = Simulation::new(SimConfig {
        config_slice_ext: false,
        ..cfg72()
    })
    .unwrap();
    sim.spawn(
        v2("t"),
        prog(|p| {
            p.store_u32(offset::SLICE_CTRL, 0x0000_ab01);
            protocol::register(p, 0).unwrap();
            let after_reg = p.load_u32(offset::SLICE_CTRL);
            p.burn(20 * US);
            vec![
                ("after_reg", after_reg.into()),
                ("after_irq", p.load_u32(offset::SLICE_CTRL).into()),
            ]
        }),
    );
    sim.inject_irq(10 * US, 0, IrqKind::MembarrierIpi);
    sim.run_until(100 * US);
    assert_eq!(counter(&sim, 0, "after_reg"), 0xab01);
    assert_eq!(counter(&sim, 0, "after_irq"), 0xab01);
    // With the feature configured both clear it.
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(
        v2("t"),
        prog(|p| {
            p.store_u32(offset::SLICE_CTRL, 0x0000_ab01);
            protocol::register(p, 0).unwrap();
            vec![("after_reg", p.load_u32(offset::SLICE_CTRL).into())]
        }),
    );
    sim.run_until(100 * US);
    assert_eq!(counter(&sim, 0, "after_reg"), 0);
}

// ---- item 8: the debug check at syscall return -----------------------------------------

#[test]
fn issue12_item8_rseq_debug_checks_rseq_cs_on_every_syscall_return() {
    // __rseq_debug_syscall_return() (kernel/rseq.c): a bad rseq_cs is SIGSEGV on the way
    // out of any syscall, no interrupt needed.
    let run = |rseq_debug: bool| {
        let mut sim = Simulation::new(SimConfig {
            rseq_debug,
            ..cfg72()
        })
        .unwrap();
        sim.spawn(
            v2("t"),
            prog(|p| {
                protocol::register(p, 0).unwrap();
                p.store_u64(offset::RSEQ_CS, TASK_SIZE + 0x1000);
                let _ = p.syscall(Syscall::Getpid);
                vec![("survived", 1)]
            }),
        );
        sim.run_until(100 * US);
        sim
    };
    let debug = run(true);
    assert!(killed(&debug, 0).is_some(), "{:?}", debug.tasks()[0].exit);
    let plain = run(false);
    assert_eq!(counter(&plain, 0, "survived"), 1);
}

// ---- item 9: slice_ext_nsec parsing ----------------------------------------------------

#[test]
fn issue12_item9_slice_ext_nsec_is_parsed_like_kstrtouint() {
    // rseq_slice_ext_nsec_write() → kstrtouint(): one trailing newline is allowed, any
    // other white space is -EINVAL.
    let mut sim = Simulation::new(cfg72()).unwrap();
    assert_eq!(sim.write_slice_ext_nsec("7000\n"), Ok(()));
    assert_eq!(sim.slice_ext_nsec(), 7000);
    for bad in [" 7000", "7000 ", "7000\n\n", "\t7000", "7000\t"] {
        assert_eq!(
            sim.write_slice_ext_nsec(bad),
            Err(Errno(errno::EINVAL)),
            "{bad:?}"
        );
    }
    // kstrtouint_from_user(ubuf, count, 10, ...): base 10, no "0x".
    assert_eq!(
        sim.write_slice_ext_nsec("0x1388"),
        Err(Errno(errno::EINVAL))
    );
    assert_eq!(sim.write_slice_ext_nsec("+6000"), Ok(()));
    assert_eq!(sim.slice_ext_nsec(), 6000);
}

// ---- item 10: rseq_cs without an interrupt ----------------------------------------------

#[test]
fn issue12_item10_an_id_update_without_an_interrupt_skips_rseq_cs_unless_debug() {
    // rseq_update_usr() (include/linux/rseq_entry.h): an ID-changed update that did not
    // come from an interrupt does not look at rseq_cs in non-debug mode.
    let run = |rseq_debug: bool| {
        let mut sim = Simulation::new(SimConfig {
            cpus: 2,
            rseq_debug,
            ..cfg72()
        })
        .unwrap();
        let mut spec = v2("t");
        spec.affinity = Some(CpuSet::single(0));
        sim.spawn(
            spec,
            prog(|p| {
                protocol::register(p, 0).unwrap();
                p.store_u64(offset::RSEQ_CS, TASK_SIZE + 0x1000);
                p.syscall(Syscall::SchedSetaffinity(CpuSet::single(1)))
                    .unwrap();
                vec![("survived", 1)]
            }),
        );
        sim.run_until(100 * US);
        sim
    };
    assert_eq!(counter(&run(false), 0, "survived"), 1);
    assert!(killed(&run(true), 0).is_some());
}

#[test]
fn issue12_item10_an_invalid_rseq_cs_is_found_after_the_word_is_cleared_and_the_grant_revoked() {
    // rseq_exit_user_update(): clear the slice word and the grant (s_revoked) first, then
    // evaluate rseq_cs; an invalid one is SIGSEGV.
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(
        v2("t"),
        prog(|p| {
            enable(p);
            p.burn(2 * US);
            p.store_u64(offset::RSEQ_CS, TASK_SIZE + 0x1000);
            p.store_u8(offset::REQUEST, 1);
            p.burn(20 * US);
            vec![]
        }),
    );
    sim.inject_irq(4 * US, 0, IrqKind::Device(ReschedReq::Full));
    sim.inject_irq(8 * US, 0, IrqKind::MembarrierIpi);
    sim.run_until(100 * US);
    assert_eq!(sim.stats().granted, 1);
    assert_eq!(
        sim.stats().revoked,
        1,
        "revoked before the descriptor is read"
    );
    assert_eq!(sim.tasks()[0].ctrl(), CtrlWord::from_bytes([0, 0, 0, 0]));
    assert_eq!(killed(&sim, 0), Some(FaultCause::RseqCsInvalid));
}

#[test]
fn issue12_item10_an_unmapped_rseq_cs_descriptor_is_sigsegv() {
    // rseq_update_user_cs() reads the descriptor: a fault there is fatal.
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(
        v2("t"),
        prog(|p| {
            protocol::register(p, 0).unwrap();
            p.store_u64(offset::RSEQ_CS, 0x7000_0000); // below TASK_SIZE, nothing mapped
            p.burn(20 * US);
            vec![]
        }),
    );
    sim.inject_irq(10 * US, 0, IrqKind::MembarrierIpi);
    sim.run_until(100 * US);
    assert!(killed(&sim, 0).is_some(), "{:?}", sim.tasks()[0].exit);
}

// ---- item 11: fork ----------------------------------------------------------------------

/// A v2 parent with a pending `request` (and, if `scribble`, a tampered `cpu_id_start`)
/// forks; the child reports what its first return to user space left.
fn forked(scribble: bool) -> Simulation {
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(
        v2("parent"),
        prog(move |p| {
            enable(p);
            if scribble {
                p.store_u32(offset::CPU_ID_START, 99);
            }
            p.store_u8(offset::REQUEST, 1);
            let child = p
                .fork(Box::new(|c| {
                    vec![("request", c.load_u8(offset::REQUEST).into())]
                }))
                .unwrap();
            p.burn(50 * US);
            vec![
                ("child", child),
                ("request", p.load_u8(offset::REQUEST).into()),
            ]
        }),
    );
    sim.run_until(200 * US);
    sim
}

#[test]
fn issue12_item11_a_forked_child_gets_a_full_id_update_on_its_first_return() {
    // sched_fork() → __set_task_cpu() sets ids_changed after rseq_fork() copied the
    // parent's state: the child's first exit to user runs the full update, which clears
    // its slice word (the parent's stays) ...
    let sim = forked(false);
    let child = counter(&sim, 0, "child") as u32;
    assert_eq!(counter(&sim, child, "request"), 0, "child's word cleared");
    assert_eq!(counter(&sim, 0, "request"), 1, "parent's word untouched");
    // ... and, for a v2 registration, first checks the ID fields it is about to rewrite
    // against the copied ones: a parent that scribbled on them has a child that dies.
    let sim = forked(true);
    let child = counter(&sim, 0, "child") as usize;
    assert_eq!(killed(&sim, child), Some(FaultCause::IdFieldTampered));
}

// ---- item 13: V1 counters ---------------------------------------------------------------

#[test]
fn issue12_item13_v1_counts_every_in_grant_syscall_as_yielded_before_the_sigsegv() {
    // Spec §11: V1 has no s_aborted; its syscall-entry work counts s_yielded for any
    // syscall inside a grant, then kills a non-yield one.
    let mut sim = Simulation::new(SimConfig {
        revision: Revision::V1,
        ..cfg1()
    })
    .unwrap();
    sim.spawn(
        TaskSpec::new("t"),
        prog(|p| {
            enable(p);
            p.burn(2 * US);
            p.store_u32(offset::SLICE_CTRL, V1_RSEQ_SLICE_EXT_REQUEST);
            p.burn(5 * US);
            let _ = p.syscall(Syscall::Getpid);
            vec![]
        }),
    );
    sim.inject_irq(4 * US, 0, IrqKind::Device(ReschedReq::Full));
    sim.run_until(100 * US);
    assert_eq!(sim.stats().granted, 1);
    assert_eq!(sim.stats().yielded, 1);
    assert_eq!(sim.stats().aborted, 0);
    assert_eq!(
        killed(&sim, 0),
        Some(FaultCause::V1SyscallInGrant { nr: 39 })
    );
}
