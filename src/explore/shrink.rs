//! Shrinking a run: fewer injections, simpler kinds, earlier points, FIFO ties and a
//! shorter run, for as long as it still shows the same thing ([`Goal`]): the same invariant
//! breaks, or a condition fails *the same way* (the same checks fail, for the same reason:
//! a run cut before a counter exists fails for another one), or a condition still holds
//! (a witness of a `Sometimes` verdict).
//!
//! Every candidate is checked by running it, so the result always replays to the failure;
//! it is minimal in the sense that no single step below makes it smaller (a local minimum,
//! as in every delta-debugging shrinker).

use rseq_sim::{Injection, StackPool};

use super::{run_fixed, Schedule, Setup, Violation};
use crate::scenario::{Loaded, ScenarioError};

/// Most candidate runs one shrink may make.
const MAX_TRIES: u32 = 4000;

/// What a shrunk run must still show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Goal {
    /// This built-in invariant breaks.
    Broken(&'static str),
    /// Condition `i` does not hold, and fails this way ([`super::failure_kind`]).
    Fails(usize, String),
    /// Condition `i` holds.
    Holds(usize),
    /// This property breaks with exactly this detail: a predicate given in code (the
    /// harness's checks) reads the final state, so a run cut before the state it judged
    /// would break it for another reason.
    Said(&'static str, String),
}

/// What a shrink produced.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest failing schedule found.
    pub schedule: Schedule,
    /// Its violations.
    pub violations: Vec<Violation>,
    /// Candidate runs made.
    pub tries: u32,
}

struct Shrinker<'a> {
    l: &'a Loaded,
    setup: &'a Setup,
    goal: Goal,
    tries: u32,
    pool: StackPool,
}

impl Shrinker<'_> {
    /// Does `s` still show the goal? Returns its violations if so.
    fn fails(&mut self, s: &Schedule) -> Result<Option<Vec<Violation>>, ScenarioError> {
        if self.tries >= MAX_TRIES {
            return Ok(None);
        }
        self.tries += 1;
        let o = run_fixed(self.l, self.setup, s, false, &mut self.pool)?;
        let shows = match &self.goal {
            Goal::Broken(p) => o.violations.iter().any(|v| v.property == *p),
            Goal::Fails(i, kind) => o.failures.get(*i).is_some_and(|f| f.as_ref() == Some(kind)),
            Goal::Holds(i) => o.held.get(*i).copied().unwrap_or(false),
            Goal::Said(p, detail) => o
                .violations
                .iter()
                .any(|v| v.property == *p && v.detail == *detail),
        };
        Ok(shows.then_some(o.violations))
    }
}

/// Shrink failing schedule `s` (whose first violation is `first`) of scenario `l`: the
/// shrunk run breaks the same invariant, or, for an `always` condition, fails it the same
/// way.
pub fn shrink(
    l: &Loaded,
    setup: &Setup,
    s: &Schedule,
    first: &Violation,
) -> Result<Shrunk, ScenarioError> {
    let mut goal = Goal::Broken(first.property);
    if setup.predicates.iter().any(|p| p.name == first.property) {
        goal = Goal::Said(first.property, first.detail.clone());
    }
    if first.property == "condition" {
        let o = run_fixed(l, setup, s, false, &mut StackPool::default())?;
        let failed = setup.conditions.iter().enumerate().find_map(|(i, c)| {
            let kind = o.failures.get(i)?.as_ref()?;
            first
                .detail
                .starts_with(&format!("`{}` does not hold", c.name))
                .then(|| Goal::Fails(i, kind.clone()))
        });
        if let Some(g) = failed {
            goal = g;
        }
    }
    shrink_to(l, setup, s, goal, first)
}

/// Shrink schedule `s` of scenario `l` for as long as it shows `goal`; `first` is what to
/// report should `s` itself not show it (it always does: runs are deterministic).
pub fn shrink_to(
    l: &Loaded,
    setup: &Setup,
    s: &Schedule,
    goal: Goal,
    first: &Violation,
) -> Result<Shrunk, ScenarioError> {
    let mut sh = Shrinker {
        l,
        setup,
        goal,
        tries: 0,
        pool: StackPool::default(),
    };
    let mut best = s.clone();
    let Some(mut viol) = sh.fails(&best)? else {
        // Not reproducible (should not happen: runs are deterministic); keep it as is.
        return Ok(Shrunk {
            schedule: best,
            violations: vec![first.clone()],
            tries: sh.tries,
        });
    };
    loop {
        let mut improved = false;
        // Drop injections, last first.
        let mut i = best.inject.len();
        while i > 0 {
            i -= 1;
            let mut c = best.clone();
            c.inject.remove(i);
            if let Some(v) = sh.fails(&c)? {
                (best, viol, improved) = (c, v, true);
            }
        }
        // Simpler kinds (earlier in the menu order).
        for i in 0..best.inject.len() {
            for &k in Injection::ALL.iter().take_while(|&&k| k < best.inject[i].1) {
                let mut c = best.clone();
                c.inject[i].1 = k;
                if let Some(v) = sh.fails(&c)? {
                    (best, viol, improved) = (c, v, true);
                    break;
                }
            }
        }
        // Earlier points.
        for i in 0..best.inject.len() {
            let lo = if i == 0 { 0 } else { best.inject[i - 1].0 + 1 };
            for p in lo..best.inject[i].0 {
                let mut c = best.clone();
                c.inject[i].0 = p;
                if let Some(v) = sh.fails(&c)? {
                    (best, viol, improved) = (c, v, true);
                    break;
                }
            }
        }
        // FIFO ties are the simpler order.
        if best.seeded_ties {
            let mut c = best.clone();
            c.seeded_ties = false;
            if let Some(v) = sh.fails(&c)? {
                (best, viol, improved) = (c, v, true);
            }
        }
        // A shorter run: bisect the end between 1 ns and the current end. Not for a
        // condition that must hold: cut short enough, a run holds anything vacuously.
        let end = best.until.unwrap_or(l.scenario.scenario.duration.0);
        let (mut lo, mut hi) = (1u64, end);
        if matches!(sh.goal, Goal::Holds(_)) {
            lo = hi;
        }
        while lo < hi && sh.tries < MAX_TRIES {
            let mid = lo + (hi - lo) / 2;
            let mut c = best.clone();
            c.until = Some(mid);
            if let Some(v) = sh.fails(&c)? {
                hi = mid;
                (best, viol) = (c, v);
            } else {
                lo = mid + 1;
            }
        }
        if best.until.is_some_and(|u| u < end) {
            improved = true;
        }
        if !improved || sh.tries >= MAX_TRIES {
            break;
        }
    }
    Ok(Shrunk {
        schedule: best,
        violations: viol,
        tries: sh.tries,
    })
}
