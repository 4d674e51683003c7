//! The ticket lock under slicesim's harness: two threads on one CPU, every placement of
//! injected interrupts around thread `a`'s operations, the protocol's invariants plus the
//! lock's own rules.

use rseq_abi::Marker;
use slicesim::harness::{Explore, LogKind, Model, Run};
use ticket_lock::{ticket_lock, Mistake, TicketParams};

/// Two threads taking the lock twice each, `a` watched, with the lock's two rules.
fn two_threads(mistake: Mistake) -> Model {
    let params = TicketParams {
        iterations: 2,
        ..TicketParams::default()
    };
    let b = params.clone();
    Model::new()
        .duration_ns(40_000)
        .spawn("a", move |p| ticket_lock(p, &params, mistake))
        .spawn("b", move |p| ticket_lock(p, &b, mistake))
        .watch(&["a"])
        .check("mutual exclusion", holds_never_overlap)
        .check("no yield under the lock", no_yield_while_holding)
}

#[test]
fn the_ticket_lock_holds_under_every_placement_of_two_interrupts() {
    let summary = two_threads(Mistake::None).explore(Explore::exhaustive(2));
    assert!(summary.runs > 1_000, "{summary:?}");
}

#[test]
fn exploration_catches_a_yield_before_the_unlocking_store() {
    // A plain run cannot tell: no interrupt, no grant, no yield.
    two_threads(Mistake::YieldBeforeUnlock).run_once(|run| {
        assert_eq!(run.counter("a", "acquired"), Some(2));
        assert_eq!(run.counter("b", "acquired"), Some(2));
    });
    // One injected interrupt during the hold is enough: a grant, then the early yield.
    let failure = two_threads(Mistake::YieldBeforeUnlock)
        .try_explore(Explore::exhaustive(1))
        .expect_err("exploration finds the early yield");
    assert_eq!(failure.violation.property, "no yield under the lock");
    assert!(failure.report.contains("shrunk schedule:"), "{failure}");
    assert!(failure.report.contains(".replay("), "{failure}");
    // The shrunk schedule replays the failure.
    let replayed = std::panic::catch_unwind(|| {
        two_threads(Mistake::YieldBeforeUnlock).replay(&failure.schedule, |_| ())
    });
    assert!(replayed.is_err(), "the replay fails the same way");
}

#[test]
fn every_search_gives_the_same_result_whatever_the_number_of_threads() {
    let one = two_threads(Mistake::None).explore(Explore::exhaustive(2).jobs(1));
    let two = two_threads(Mistake::None).explore(Explore::exhaustive(2).jobs(2));
    assert_eq!(one, two);
    for how in [Explore::random(300, 2), Explore::pct(300, 2)] {
        let one = two_threads(Mistake::None).explore(how.seed(7).jobs(1));
        let two = two_threads(Mistake::None).explore(how.seed(7).jobs(2));
        assert_eq!(one, two);
        assert_eq!(one.runs, 300);
    }
}

/// The spans between each task's `LockAcquired` and `LockReleased` markers.
fn holds(run: &Run<'_>, task: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = None;
    for (t, m) in run.markers(task) {
        match m {
            Marker::LockAcquired(_) => start = Some(t),
            Marker::LockReleased(_) => out.extend(start.take().map(|s| (s, t))),
            _ => {}
        }
    }
    out
}

fn holds_never_overlap(run: &Run<'_>) -> Result<(), String> {
    for (s1, e1) in holds(run, "a") {
        if let Some((s2, e2)) = holds(run, "b")
            .into_iter()
            .find(|&(s2, e2)| s2 < e1 && s1 < e2)
        {
            return Err(format!("a held {s1}..{e1} ns and b held {s2}..{e2} ns"));
        }
    }
    Ok(())
}

fn no_yield_while_holding(run: &Run<'_>) -> Result<(), String> {
    for name in ["a", "b"] {
        let id = run.task(name).id;
        let holds = holds(run, name);
        for r in run.log().iter().filter(|r| r.task == Some(id)) {
            let yields = matches!(
                &r.kind,
                LogKind::SyscallEnter {
                    name: "rseq_slice_yield",
                    ..
                }
            );
            if yields && holds.iter().any(|&(s, e)| s <= r.time && r.time < e) {
                return Err(format!(
                    "{name} called rseq_slice_yield() at {} ns holding the lock",
                    r.time
                ));
            }
        }
    }
    Ok(())
}
