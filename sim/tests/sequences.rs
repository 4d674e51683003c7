//! Restartable sequences (issue 18): the instruction pointer a sequence gives its task, and
//! the 7.2 rules of `rseq_update_user_cs()` (`include/linux/rseq_entry.h`) applied to it:
//! abort on preemption and on a handled signal, not after the commit, `rseq_cs` cleared,
//! invalid descriptors fatal, and the `cs`, `clear` and `fixup` counters.

mod common;

use rseq_abi::layout::offset;
use rseq_abi::{protocol, Platform, SeqOutcome, SeqStep, Sequence, SharedWord};
use rseq_sim::*;

use common::*;

/// The per-CPU counter array: word `COUNTERS + cpu`.
const COUNTERS: SharedWord = SharedWord(100);

/// `counter[cpu] += 1`, with `hold` ns of work between the load and the commit.
fn increment(hold: u64) -> [SeqStep; 4] {
    [
        SeqStep::LoadCpuId { dst: 0 },
        SeqStep::Load {
            dst: 1,
            base: COUNTERS,
            index: Some(0),
        },
        SeqStep::Burn(hold),
        SeqStep::Commit {
            base: COUNTERS,
            index: Some(0),
            src: 1,
            add: 1,
        },
    ]
}

/// 7.2, one CPU, no tick, log on.
fn cfg72() -> SimConfig {
    SimConfig {
        revision: rseq_abi::Revision::PostMerge,
        ..cfg1()
    }
}

/// A task that registers and runs `rounds` increments, retrying each aborted one; counts
/// commits and aborts, and reads `rseq_cs` at the end.
fn incrementer(rounds: i64, hold: u64) -> SimProgram {
    prog(move |p| {
        protocol::register(p, 0).expect("register");
        let steps = increment(hold);
        let (mut commits, mut aborts) = (0, 0);
        while commits < rounds {
            match p.rseq_sequence(&Sequence { steps: &steps }) {
                SeqOutcome::Committed(_) => commits += 1,
                SeqOutcome::Aborted => aborts += 1,
                o => panic!("{o:?}"),
            }
        }
        p.burn(1_000);
        vec![
            ("commits", commits),
            ("aborts", aborts),
            ("rseq_cs", p.load_u64(offset::RSEQ_CS) as i64),
        ]
    })
}

/// Task 0 (an `incrementer` of one update) ended normally after one aborted attempt and
/// one commit: CPU 0's counter went up once, and the kernel counted one fixup.
fn assert_aborted_once_then_committed(sim: &Simulation) {
    assert_eq!(
        sim.tasks()[0].exit,
        Some(TaskExit::Exited),
        "{:?}",
        kinds(sim)
    );
    assert_eq!(counter(sim, 0, "aborts"), 1, "{:?}", kinds(sim));
    assert_eq!(counter(sim, 0, "commits"), 1);
    assert_eq!(sim.shared_word(COUNTERS), 1, "one increment, not two");
    let s = sim.rseq_stats();
    assert_eq!(s.fixup, 1, "{s:?}");
}

fn one_shot(sim: &mut Simulation, at: u64, kind: IrqKind) {
    sim.add_irq_source(IrqSource::new(0, kind, IrqPattern::OneShot { at }));
}

/// Another task to switch to (5 µs of work) and an interrupt asking for a reschedule at
/// 10 µs: the first task is preempted there, and runs again 5 µs later.
fn preempt_at_10us(sim: &mut Simulation) {
    sim.spawn(
        TaskSpec::new("other"),
        prog(|p| {
            p.burn(5 * US);
            vec![]
        }),
    );
    one_shot(sim, 10 * US, IrqKind::Device(ReschedReq::Full));
}

#[test]
fn a_sequence_nothing_interrupts_commits() {
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(TaskSpec::new("inc"), incrementer(3, 1_000));
    sim.run_until(100 * US);
    assert_eq!(sim.tasks()[0].exit, Some(TaskExit::Exited));
    assert_eq!(counter(&sim, 0, "commits"), 3);
    assert_eq!(counter(&sim, 0, "aborts"), 0);
    assert_eq!(sim.shared_word(COUNTERS), 3, "CPU 0's counter");
    // No exit to user mode evaluated it: it is still set, nothing was counted.
    assert_ne!(counter(&sim, 0, "rseq_cs"), 0);
    assert_eq!(sim.rseq_stats().cs, 0);
}

/// Preempted inside the section (an interrupt asks for a reschedule and another task
/// runs): back in user mode the kernel moves the IP to `abort_ip`, the commit does not
/// happen, the program retries.
#[test]
fn abort_on_preemption_inside_the_section() {
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(TaskSpec::new("inc"), incrementer(1, 20 * US));
    sim.spawn(
        TaskSpec::new("other"),
        prog(|p| {
            p.burn(5 * US);
            vec![]
        }),
    );
    // The incrementer runs first; the interrupt lands in its 20 µs hold.
    one_shot(&mut sim, 10 * US, IrqKind::Device(ReschedReq::Full));
    sim.run_until(200 * US);
    assert_aborted_once_then_committed(&sim);
    assert!(has(&sim, "rseq_cs"), "{:?}", kinds(&sim));
}

/// An interrupt after the commit, outside `[start_ip, start_ip + post_commit_offset)`:
/// nothing to abort; the kernel only clears `rseq_cs` (`clear`).
#[test]
fn the_post_commit_boundary_an_interrupt_after_the_commit_does_not_abort() {
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(
        TaskSpec::new("inc"),
        prog(|p| {
            protocol::register(p, 0).expect("register");
            let steps = increment(1_000);
            let o = p.rseq_sequence(&Sequence { steps: &steps });
            // After the commit: preempted here.
            p.burn(20 * US);
            vec![
                ("committed", matches!(o, SeqOutcome::Committed(_)) as i64),
                ("rseq_cs", p.load_u64(offset::RSEQ_CS) as i64),
            ]
        }),
    );
    preempt_at_10us(&mut sim);
    sim.run_until(200 * US);
    assert_eq!(counter(&sim, 0, "committed"), 1);
    assert_eq!(sim.shared_word(COUNTERS), 1);
    let s = sim.rseq_stats();
    assert_eq!((s.fixup, s.clear), (0, 1), "{s:?}");
    assert_eq!(counter(&sim, 0, "rseq_cs"), 0, "rseq_cs cleared after use");
}

/// A descriptor whose `abort_ip` is not preceded by the registration's signature kills
/// the task when the kernel has to act on it, in non-debug and debug mode alike.
#[test]
fn a_wrong_signature_at_abort_ip_is_fatal_in_both_modes() {
    for debug in [false, true] {
        let mut sim = Simulation::new(SimConfig {
            rseq_debug: debug,
            ..cfg72()
        })
        .unwrap();
        sim.spawn(
            TaskSpec::new("inc"),
            prog(|p| {
                protocol::register(p, 0).expect("register");
                let steps = increment(1_000);
                // The first run writes the descriptor and the signature; break the latter.
                let _ = p.rseq_sequence(&Sequence { steps: &steps });
                p.store_u32(rseq_sim::SEQ_SIG_OFF, 0xdead_beef);
                let steps = increment(20 * US);
                let _ = p.rseq_sequence(&Sequence { steps: &steps });
                vec![]
            }),
        );
        preempt_at_10us(&mut sim);
        sim.run_until(200 * US);
        assert!(
            matches!(
                sim.tasks()[0].exit,
                Some(TaskExit::Signaled { signo: 11, .. })
            ),
            "debug {debug}: {:?}",
            sim.tasks()[0].exit
        );
    }
}

/// A compare that fails leaves the section before the commit: no store, and the
/// instruction pointer is outside, so a later preemption aborts nothing.
#[test]
fn a_failed_compare_leaves_the_section_without_committing() {
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(
        TaskSpec::new("cas"),
        prog(|p| {
            protocol::register(p, 0).expect("register");
            let steps = [
                SeqStep::Load {
                    dst: 0,
                    base: COUNTERS,
                    index: None,
                },
                SeqStep::ExpectEq { reg: 0, val: 7 },
                SeqStep::Commit {
                    base: COUNTERS,
                    index: None,
                    src: 0,
                    add: 1,
                },
            ];
            let o = p.rseq_sequence(&Sequence { steps: &steps });
            vec![("failed", matches!(o, SeqOutcome::Failed([0, ..])) as i64)]
        }),
    );
    sim.run_until(100 * US);
    assert_eq!(counter(&sim, 0, "failed"), 1);
    assert_eq!(sim.shared_word(COUNTERS), 0);
}

/// A handled signal delivered while the task is inside the section: `handle_signal()`
/// calls `rseq_signal_deliver()`, which aborts the sequence as a preemption does.
#[test]
fn abort_on_signal_delivery_inside_the_section() {
    let mut sim = Simulation::new(cfg72()).unwrap();
    sim.spawn(TaskSpec::new("inc"), incrementer(1, 20 * US));
    // SIGUSR1 (10): handled as if a handler ran and returned.
    sim.send_signal(10 * US, 0, 10);
    sim.run_until(200 * US);
    assert_aborted_once_then_committed(&sim);
}

/// Every revision aborts a sequence preempted inside its section: 7.0 and V1 evaluate
/// `rseq_cs` in their notify-resume update, 7.2 in `rseq_exit_user_update()`.
#[test]
fn every_revision_aborts_a_sequence_preempted_inside_it() {
    for rev in rseq_abi::Revision::ALL {
        let mut sim = Simulation::new(SimConfig {
            revision: rev,
            ..cfg1()
        })
        .unwrap();
        sim.spawn(TaskSpec::new("inc"), incrementer(1, 20 * US));
        preempt_at_10us(&mut sim);
        sim.run_until(200 * US);
        assert_eq!(
            counter(&sim, 0, "aborts"),
            1,
            "{}: {:?}",
            rev.name(),
            kinds(&sim)
        );
        assert_eq!(sim.shared_word(COUNTERS), 1, "{}", rev.name());
    }
}

/// Migration: the stopper's reschedule inside the section moves the task to another CPU at
/// the next switch, and back in user mode the sequence is aborted; the retry reads the new
/// `cpu_id` and updates that CPU's counter. Wherever the migration lands, the update is
/// made exactly once.
#[test]
fn abort_on_migration_and_the_retry_updates_the_new_cpus_counter() {
    let mut aborted_and_moved = 0;
    for point in 0..24 {
        let mut sim = Simulation::new(SimConfig { cpus: 2, ..cfg72() }).unwrap();
        sim.set_chooser(Box::new(Replay::new(
            0,
            vec![(point, Injection::Migrate)],
            true,
        )));
        let t = sim.spawn(TaskSpec::new("inc"), incrementer(1, 20 * US));
        sim.watch(t);
        sim.run_until(200 * US);
        assert_eq!(sim.tasks()[0].exit, Some(TaskExit::Exited), "point {point}");
        let (c0, c1) = (
            sim.shared_word(COUNTERS),
            sim.shared_word(SharedWord(COUNTERS.0 + 1)),
        );
        assert_eq!(c0 + c1, 1, "point {point}: exactly one update");
        if counter(&sim, 0, "aborts") == 1 && c1 == 1 {
            aborted_and_moved += 1;
        }
    }
    assert!(
        aborted_and_moved > 0,
        "a migration inside the section aborts it"
    );
}

/// Invalid descriptors, as 7.2 treats them when it has to act on one (the task preempted
/// inside the section): the debug variant checks everything and kills on a non-zero
/// version or flags word; the non-debug variant checks only what protects the kernel, so
/// the same descriptor aborts normally there. An `abort_ip` inside the section is fatal in
/// both: the debug checks refuse it, and without them the signature is read from the
/// section's text, which this task cannot read (a fault in the slow path is SIGSEGV).
#[test]
fn invalid_descriptors_are_fatal_as_the_kernel_decides_in_each_mode() {
    use rseq_abi::layout::cs_offset;
    type Corrupt = fn(&mut SimPlatform<'_>);
    let cases: [(&str, Corrupt, [bool; 2]); 3] = [
        (
            "version 1",
            |p| p.store_u32(SEQ_DESC_OFF + cs_offset::VERSION, 1),
            [false, true],
        ),
        (
            "flags 1",
            |p| p.store_u32(SEQ_DESC_OFF + cs_offset::FLAGS, 1),
            [false, true],
        ),
        (
            "abort_ip inside the section",
            |p| p.store_u64(SEQ_DESC_OFF + cs_offset::ABORT_IP, SEQ_TEXT + 4),
            [true, true],
        ),
    ];
    for (name, corrupt, fatal) in cases {
        for (debug, fatal) in [false, true].into_iter().zip(fatal) {
            let mut sim = Simulation::new(SimConfig {
                rseq_debug: debug,
                ..cfg72()
            })
            .unwrap();
            sim.spawn(
                TaskSpec::new("inc"),
                prog(move |p| {
                    protocol::register(p, 0).expect("register");
                    let steps = increment(1_000);
                    let _ = p.rseq_sequence(&Sequence { steps: &steps });
                    corrupt(p);
                    let steps = increment(20 * US);
                    let o = p.rseq_sequence(&Sequence { steps: &steps });
                    vec![("aborted", matches!(o, SeqOutcome::Aborted) as i64)]
                }),
            );
            preempt_at_10us(&mut sim);
            sim.run_until(200 * US);
            let exit = &sim.tasks()[0].exit;
            if fatal {
                assert!(
                    matches!(exit, Some(TaskExit::Signaled { signo: 11, .. })),
                    "{name}, debug {debug}: {exit:?}"
                );
            } else {
                assert_eq!(exit, &Some(TaskExit::Exited), "{name}, debug {debug}");
                assert_eq!(counter(&sim, 0, "aborted"), 1, "{name}, debug {debug}");
            }
        }
    }
}
