//! An attached observer only watches (`sim/src/observe.rs`): the same run with and without
//! one logs the same events, and it sees every decision site the run reaches, with the
//! state before and after.

mod common;
use common::*;

use std::sync::{Arc, Mutex};

use rseq_abi::programs::SelftestParams;
use rseq_sim::observe::{Decision, Observer, Site};
use rseq_sim::{IrqKind, IrqPattern, IrqSource, ReschedReq, SimConfig};

#[derive(Default)]
struct Seen {
    grants: u64,
    granted: u64,
    yields: u64,
    switches: u64,
    other: u64,
}

struct Count(Arc<Mutex<Seen>>);

impl Observer for Count {
    fn decision(&mut self, d: &Decision<'_>) {
        let mut s = self.0.lock().unwrap();
        match d.site {
            Site::Grant { .. } => {
                s.grants += 1;
                let t = d.after.task.as_ref().expect("a grant is about a task");
                if t.rseq.granted && !d.before.task.as_ref().unwrap().rseq.granted {
                    s.granted += 1;
                }
            }
            Site::SliceYield => s.yields += 1,
            Site::SchedSwitchEvent => s.switches += 1,
            _ => s.other += 1,
        }
    }
}

fn run(observe: bool) -> (u64, rseq_sim::SliceStats, Option<Arc<Mutex<Seen>>>) {
    let params = SelftestParams {
        total_ns: 20_000_000,
        ..SelftestParams::N2_2_50
    };
    let mut sim = selftest_sim(SimConfig::default(), params);
    sim.add_irq_source(IrqSource::new(
        1,
        IrqKind::Device(ReschedReq::Lazy),
        IrqPattern::Poisson {
            rate_hz: 20_000.0,
            start_ns: 0,
            end_ns: u64::MAX,
        },
    ));
    let seen = observe.then(|| Arc::new(Mutex::new(Seen::default())));
    if let Some(s) = &seen {
        sim.set_observer(Some(Box::new(Count(s.clone()))));
    }
    sim.run_until(25_000_000);
    assert!(sim.take_observer().is_some() == observe);
    (sim.log_hash(), sim.stats(), seen)
}

#[test]
fn an_observer_watches_every_decision_and_changes_nothing() {
    let (plain, plain_stats, _) = run(false);
    let (watched, stats, seen) = run(true);
    assert_eq!(plain, watched, "the observer changed the run");
    let seen = seen.unwrap();
    let s = seen.lock().unwrap();
    assert!(s.grants > 100 && s.switches > 100 && s.other > 100);
    assert_eq!(
        s.granted, stats.granted,
        "every grant seen once, as a grant"
    );
    assert_eq!(stats, plain_stats);
    assert!(s.yields > 0);
}
