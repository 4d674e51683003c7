//! `slicesim explore`: search the timings of a scenario for broken invariants, decide
//! litmus-style verdicts of its conditions, and shrink counterexamples to replayable
//! schedules.
//!
//! Every run is a [`Schedule`]: the engine's seed, the equal-time order, an optional early
//! end, and the events injected at numbered *points* (just before a watched task's user
//! operations, see `rseq_sim::choice`). Strategies differ only in which schedules they run:
//!
//! - exhaustive: every set of at most K injections at distinct points, each kind on the
//!   point's menu, breadth first ([`exhaustive`]);
//! - random, swarm-style: each run draws its own seed, kind subset and 1 to K points spread
//!   over twice the unperturbed run's points ([`random`]);
//! - random, PCT: each run injects a random kind at `depth` such points.
//!
//! Runs are independent, so they are spread over worker threads; every result is stored
//! under its run's index, so reports and the first counterexample (the smallest index that
//! fails) never depend on the number of workers. [`shrink`] makes a failing schedule
//! small; [`props`] holds the built-in invariants; [`catalog`] writes `docs/races.md`'s
//! table.

pub mod props;
pub mod schedule;
mod shrink;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam::sync::WaitGroup;

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use rseq_sim::{Chooser, Draw, InjectMenu, InjectPoint, Injection, Replay, StackPool};

use crate::scenario::{self, ConditionDef, Loaded, ProgramName, ScenarioError, VerdictName};
pub use props::Violation;
pub use schedule::{Schedule, Stamp, Stamped};
pub use shrink::{shrink, shrink_to, Goal};

/// What to explore: resolved from a scenario's `[explore]` and the command line.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Watched task names (a `count`-expanded task `t` watches `t.0`, `t.1`, ...).
    pub watched: Vec<String>,
    /// Most injections per run.
    pub max_k: u32,
    /// Kinds that may be injected.
    pub kinds: InjectMenu,
    /// Tasks whose code claims to follow the protocol.
    pub correct: Vec<String>,
    /// Conditions.
    pub conditions: Vec<ConditionDef>,
    /// Exhaustive search: most schedules to run before giving up on completeness
    /// ([`DEFAULT_MAX_SCHEDULES`] unless changed).
    pub max_schedules: u64,
    /// Properties of the finished run given in code (the test harness's checks), judged
    /// after the built-in invariants; each broken one is a violation named after it.
    pub predicates: Vec<Predicate>,
}

/// A named property of a finished run, given in code: `Err(why)` is a violation named
/// `name`. A predicate that panics is broken too (its message is the reason).
#[derive(Clone)]
pub struct Predicate {
    /// The property's name in reports (the violation's `property`).
    pub name: &'static str,
    /// The check.
    pub check: Arc<PredicateFn>,
}

/// The check of a [`Predicate`]: `Err(why)` when the run breaks it.
pub type PredicateFn = dyn Fn(&scenario::RunResult) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for Predicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predicate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Predicate {
    /// Judge `r`: `Some(why)` when the property is broken.
    fn judge(&self, r: &scenario::RunResult) -> Option<String> {
        let check = std::panic::AssertUnwindSafe(|| (self.check)(r));
        match std::panic::catch_unwind(check) {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(why),
            Err(payload) => Some(format!(
                "the check panicked: {}",
                payload
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| payload.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)")
            )),
        }
    }
}

/// How a caller follows and stops a campaign: `progress` is called after every run (from
/// any worker); once `stop` is set (say by Ctrl-C) no new run starts, and the report says
/// it was interrupted. Neither can change what a finished run computes.
#[derive(Clone, Copy)]
pub struct Control<'a> {
    /// Set to stop handing out runs.
    pub stop: &'a AtomicBool,
    /// Called after every run.
    pub progress: &'a (dyn Fn() + Sync),
}

/// Never set: the stop flag of [`Control::NONE`].
static NEVER: AtomicBool = AtomicBool::new(false);

impl Control<'static> {
    /// No progress, no stop.
    pub const NONE: Control<'static> = Control {
        stop: &NEVER,
        progress: &|| {},
    };
}

impl Control<'_> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Default bound on an exhaustive search's schedules.
pub const DEFAULT_MAX_SCHEDULES: u64 = 1_000_000;

impl Setup {
    /// From the scenario's `[explore]`, with command-line overrides of the watched tasks
    /// and K.
    pub fn new(l: &Loaded, tasks: &[String], max_k: Option<u32>) -> Result<Setup, ScenarioError> {
        let e = &l.scenario.explore;
        let names: Vec<String> = l
            .scenario
            .tasks
            .iter()
            .map(|t| t.get_ref().name.clone())
            .collect();
        for t in tasks {
            if !names.contains(t) {
                return Err(ScenarioError::at(
                    &l.path,
                    &l.source,
                    0,
                    format!("--task {t}: no such task (tasks: {})", names.join(", ")),
                ));
            }
        }
        let watched = match (tasks.is_empty(), e.tasks.is_empty()) {
            (false, _) => tasks.to_vec(),
            (true, false) => e.tasks.clone(),
            (true, true) => names.clone(),
        };
        let kinds = if e.kinds.is_empty() {
            InjectMenu::ALL
        } else {
            e.kinds
                .iter()
                .filter_map(|k| Injection::parse(k))
                .fold(InjectMenu::default(), InjectMenu::with)
        };
        let correct = e.correct.clone().unwrap_or_else(|| {
            l.scenario
                .tasks
                .iter()
                .map(|t| t.get_ref())
                .filter(|d| d.builtin() != Some(ProgramName::Misbehave))
                .map(|d| d.name.clone())
                .collect()
        });
        Ok(Setup {
            watched,
            max_k: max_k.or(e.max_interrupts).unwrap_or(2),
            kinds,
            correct,
            conditions: e.conditions.clone(),
            max_schedules: DEFAULT_MAX_SCHEDULES,
            predicates: Vec::new(),
        })
    }
}

/// The stamp for schedules of scenario `l`.
pub fn stamp(l: &Loaded) -> Stamp {
    let rev = l
        .scenario
        .machine
        .revision
        .map_or(rseq_abi::Revision::default(), |r| r.revision())
        .name();
    Stamp {
        scenario: l.scenario.scenario.name.clone(),
        hash: rseq_sim::trace::fnv1a(l.source.as_bytes()),
        revision: rev.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// One explored run's result.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Broken invariants (built-in and `always` conditions).
    pub violations: Vec<Violation>,
    /// Did each condition hold?
    pub held: Vec<bool>,
    /// For each condition that did not hold: how it failed (see [`failure_kind`]), so a
    /// shrunk run can be required to fail the same way.
    pub failures: Vec<Option<String>>,
    /// Injections actually applied (for random strategies: the schedule to replay).
    pub applied: Vec<(u32, Injection)>,
    /// Points offered, when recorded.
    pub points: Vec<InjectPoint>,
    /// Points offered in all.
    pub point_count: u32,
    /// Which of [`OUTCOMES`] the run reached.
    pub reached: Vec<&'static str>,
}

/// Interesting outcomes a campaign reports as reached at least once (its "sometimes"
/// goals, whatever the scenario's conditions).
pub const OUTCOMES: [&str; 8] = [
    "granted",
    "expired",
    "revoked",
    "yield returned 1",
    "yield returned 0",
    "aborted by a syscall",
    "request wiped unseen",
    "SIGSEGV",
];

/// The [`OUTCOMES`] a finished run reached.
fn outcomes(sim: &rseq_sim::Simulation) -> Vec<&'static str> {
    let st = sim.stats();
    let mut yield_ret = [false; 2];
    let mut wiped = false;
    for r in sim.log() {
        match &r.kind {
            rseq_sim::LogKind::SyscallExit {
                name: "rseq_slice_yield",
                ret: Ok(v),
            } if *v <= 1 => {
                yield_ret[*v as usize] = true;
            }
            rseq_sim::LogKind::Revoke {
                before,
                was_granted: false,
                ..
            } => {
                wiped |= before.request() != 0;
            }
            _ => {}
        }
    }
    let segv = sim
        .tasks()
        .iter()
        .any(|t| matches!(t.exit, Some(rseq_sim::TaskExit::Signaled { signo: 11, .. })));
    let hit = [
        st.granted > 0,
        st.expired > 0,
        st.revoked > 0,
        yield_ret[1],
        yield_ret[0],
        st.aborted > 0,
        wiped,
        segv,
    ];
    OUTCOMES
        .iter()
        .zip(hit)
        .filter(|(_, h)| *h)
        .map(|(o, _)| *o)
        .collect()
}

/// The chooser of random strategies: engine draws from the run's seed; at each point of
/// `at` (sorted) a kind drawn from those of `kinds` on the point's menu, from a separate
/// generator; a record of what it injected.
struct Random {
    engine: Pcg64Mcg,
    decide: Pcg64Mcg,
    at: Vec<u32>,
    kinds: InjectMenu,
    applied: Vec<(u32, Injection)>,
}

impl Chooser for Random {
    fn draw(&mut self, _what: Draw) -> u64 {
        self.engine.next_u64()
    }

    fn inject(&mut self, p: &InjectPoint) -> Option<Injection> {
        self.at.binary_search(&p.index).ok()?;
        let m = p.menu.and(self.kinds);
        let n = m.len() as u64;
        let k = m.iter().nth((self.decide.next_u64() % n.max(1)) as usize)?;
        self.applied.push((p.index, k));
        Some(k)
    }
}

/// Run one schedule of `l` under `setup` with its fixed list of injections, and keep the
/// finished simulation (for replays and reports).
pub fn run_schedule(
    l: &Loaded,
    setup: &Setup,
    s: &Schedule,
) -> Result<(Outcome, scenario::RunResult), ScenarioError> {
    let chooser = Box::new(Replay::new(s.seed, s.inject.clone(), false));
    let (r, until) = run_with(l, setup, s, chooser, &mut StackPool::default())?;
    Ok((judge(setup, &r, until, s.inject.clone(), Vec::new()), r))
}

/// Run one schedule and return only its outcome, reusing `pool`'s stacks; `record` keeps
/// the points offered (to expand the search from this run).
fn run_fixed(
    l: &Loaded,
    setup: &Setup,
    s: &Schedule,
    record: bool,
    pool: &mut StackPool,
) -> Result<Outcome, ScenarioError> {
    let chooser = Box::new(Replay::new(s.seed, s.inject.clone(), record));
    let (mut r, until) = run_with(l, setup, s, chooser, pool)?;
    let rep = r.sim.chooser_mut::<Replay>().expect("replay chooser");
    let points = std::mem::take(&mut rep.points);
    let out = judge(setup, &r, until, s.inject.clone(), points);
    *pool = r.sim.into_stacks();
    Ok(out)
}

fn run_random(
    l: &Loaded,
    setup: &Setup,
    s: &Schedule,
    plan: Random,
    pool: &mut StackPool,
) -> Result<Outcome, ScenarioError> {
    let (mut r, until) = run_with(l, setup, s, Box::new(plan), pool)?;
    let random = r.sim.chooser_mut::<Random>().expect("random chooser");
    let applied = std::mem::take(&mut random.applied);
    let out = judge(setup, &r, until, applied, Vec::new());
    *pool = r.sim.into_stacks();
    Ok(out)
}

fn run_with(
    l: &Loaded,
    setup: &Setup,
    s: &Schedule,
    chooser: Box<dyn Chooser>,
    pool: &mut StackPool,
) -> Result<(scenario::RunResult, u64), ScenarioError> {
    let scenario::Built {
        mut sim,
        names,
        duration,
    } = build_with(l, setup, s, chooser)?;
    sim.give_stacks(std::mem::take(pool));
    // The scenario's budgets hold for every explored run as for `run`: a search never
    // runs away on a long scenario (simulated events, the kept log, memory, opt-in wall
    // time), checked every `CHUNK_EVENTS` events.
    let started = std::time::Instant::now();
    while !sim.run_chunk(duration, crate::budget::CHUNK_EVENTS) {
        l.budget.check(
            sim.events_processed(),
            sim.log().len() as u64,
            started.elapsed().as_secs_f64(),
        )?;
    }
    l.budget.check(
        sim.events_processed(),
        sim.log().len() as u64,
        started.elapsed().as_secs_f64(),
    )?;
    let checks = scenario::evaluate(&l.scenario.expect, &sim, &names);
    let logged = sim.log().len() as u64;
    let r = scenario::RunResult {
        sim,
        names,
        checks,
        logged,
        peak_kept: logged,
    };
    Ok((r, duration))
}

/// Build `l`'s simulation for schedule `s` with `chooser`, watching `setup`'s tasks.
fn build_with(
    l: &Loaded,
    setup: &Setup,
    s: &Schedule,
    chooser: Box<dyn Chooser>,
) -> Result<scenario::Built, ScenarioError> {
    let seeded = s.seeded_ties;
    let tune = move |c: &mut rseq_sim::SimConfig| {
        if seeded {
            c.tie_break = rseq_sim::TieBreak::Seeded;
        }
    };
    let mut b = scenario::build_tuned(l, Some(s.seed), s.until, true, &tune, Some(chooser))?;
    for (name, &id) in &b.names {
        if setup.watched.iter().any(|w| is_instance(name, w)) {
            b.sim.watch(id);
        }
    }
    Ok(b)
}

/// `l`'s simulation for replaying schedule `s`, built but not run (to step through it).
pub fn build_replay(
    l: &Loaded,
    setup: &Setup,
    s: &Schedule,
) -> Result<scenario::Built, ScenarioError> {
    build_with(
        l,
        setup,
        s,
        Box::new(Replay::new(s.seed, s.inject.clone(), false)),
    )
}

/// Is task `name` the scenario task `def` (or one of its `count` copies)?
fn is_instance(name: &str, def: &str) -> bool {
    name == def || name.strip_prefix(def).is_some_and(|r| r.starts_with('.'))
}

fn judge(
    setup: &Setup,
    r: &scenario::RunResult,
    end: u64,
    applied: Vec<(u32, Injection)>,
    points: Vec<InjectPoint>,
) -> Outcome {
    let sim = &r.sim;
    let correct: Vec<bool> = sim
        .tasks()
        .iter()
        .map(|t| setup.correct.iter().any(|c| is_instance(&t.name, c)))
        .collect();
    let mut violations = props::check(sim, &correct, end);
    let mut held = Vec::with_capacity(setup.conditions.len());
    let mut failures = Vec::with_capacity(setup.conditions.len());
    for c in &setup.conditions {
        let checks = scenario::evaluate(&c.holds, sim, &r.names);
        let ok = checks
            .iter()
            .all(|c| c.outcome == scenario::CheckOutcome::Pass);
        failures.push((!ok).then(|| failure_kind(&checks)));
        if !ok && c.expect == Some(VerdictName::Always) {
            let failed: Vec<String> = checks
                .iter()
                .filter_map(|c| match &c.outcome {
                    scenario::CheckOutcome::Fail(why) => Some(format!("{}: {why}", c.what)),
                    scenario::CheckOutcome::Pass => None,
                })
                .collect();
            violations.push(Violation {
                property: "condition",
                at: end,
                detail: format!("`{}` does not hold ({})", c.name, failed.join("; ")),
            });
        }
        held.push(ok);
    }
    for p in &setup.predicates {
        if let Some(why) = p.judge(r) {
            violations.push(Violation {
                property: p.name,
                at: end,
                detail: why,
            });
        }
    }
    Outcome {
        violations,
        held,
        failures,
        applied,
        point_count: sim.points_offered(),
        points,
        reached: outcomes(sim),
    }
}

/// How a condition failed, as a key two runs share when they fail the same way: which of
/// its checks failed, and for each whether the value was wrong or missing altogether (a
/// run cut so short that a counter does not exist yet fails for another reason).
pub fn failure_kind(checks: &[scenario::Check]) -> String {
    checks
        .iter()
        .filter_map(|c| match &c.outcome {
            scenario::CheckOutcome::Fail(why) if why.starts_with("no counter") => {
                Some(format!("{} (missing)", c.what))
            }
            scenario::CheckOutcome::Fail(_) => Some(c.what.clone()),
            scenario::CheckOutcome::Pass => None,
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Map `f` over `items` on one thread per pool in `pools` (inline when there is one pool
/// or few items: a thread costs more than a few tiny runs); results in item order. The
/// pools keep their stacks from call to call.
fn par_map<T: Sync, R: Send>(
    items: &[T],
    pools: &mut [StackPool],
    f: &(dyn Fn(&T, &mut StackPool) -> R + Sync),
) -> Vec<R> {
    if pools.len() <= 1 || items.len() < 4 * pools.len() {
        let pool = &mut pools[0];
        return items.iter().map(|t| f(t, pool)).collect();
    }
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for pool in pools.iter_mut() {
            let (next, out) = (&next, &out);
            s.spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    mine.push((i, f(item, pool)));
                }
                out.lock().expect("lock").extend(mine);
            });
        }
    });
    let mut v = out.into_inner().expect("lock");
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

fn pools(jobs: usize) -> Vec<StackPool> {
    (0..jobs.max(1)).map(|_| StackPool::default()).collect()
}

/// What a campaign found (any strategy).
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Runs made.
    pub runs: u64,
    /// Exhaustive: runs per number of injections (0, 1, ..., K).
    pub by_depth: Vec<u64>,
    /// Exhaustive: schedules not run because an injection in them would act exactly like
    /// another kind at the same point (each stands for a whole explored subtree).
    pub pruned: u64,
    /// Points offered in the run without injections.
    pub baseline_points: u32,
    /// Per condition: runs in which it held.
    pub held: Vec<u64>,
    /// Runs with at least one violation.
    pub failing_runs: u64,
    /// Per condition: the first run (in run order) where it held and the first where it did
    /// not, the witnesses of its verdict.
    pub witnesses: Vec<Witnesses>,
    /// Per invariant name: runs that broke it.
    pub broken: BTreeMap<&'static str, u64>,
    /// The first failing run (smallest index), with its violations.
    pub first_failure: Option<(Schedule, Vec<Violation>)>,
    /// Kinds injected at least once in some run, with the count of runs.
    pub kinds_used: BTreeMap<Injection, u64>,
    /// Per outcome of [`OUTCOMES`]: runs that reached it.
    pub reached: BTreeMap<&'static str, u64>,
    /// Exhaustive: the space was larger than `Setup::max_schedules` and was cut.
    pub truncated: bool,
    /// The campaign was stopped ([`Control::stop`]) before all its runs.
    pub interrupted: bool,
}

/// The first runs that show a condition's verdict: one where it held, one where it did
/// not (with how it failed, [`failure_kind`]). Keys order runs: an exhaustive search's
/// level and index in it, a random search's run number.
#[derive(Clone, Debug, Default)]
pub struct Witnesses {
    /// The first run where the condition held.
    pub held: Option<((u64, u64), Schedule)>,
    /// The first run where it did not hold, and how it failed.
    pub failed: Option<((u64, u64), Schedule, String)>,
}

impl Witnesses {
    /// Keep the earlier of each kind of witness.
    fn merge(&mut self, o: Witnesses) {
        if let Some(h) = o.held {
            if self.held.as_ref().is_none_or(|m| h.0 < m.0) {
                self.held = Some(h);
            }
        }
        if let Some(f) = o.failed {
            if self.failed.as_ref().is_none_or(|m| f.0 < m.0) {
                self.failed = Some(f);
            }
        }
    }
}

impl Report {
    fn add(&mut self, s: &Schedule, o: &Outcome, key: (u64, u64)) {
        self.runs += 1;
        if self.held.len() < o.held.len() {
            self.held.resize(o.held.len(), 0);
        }
        for (i, &h) in o.held.iter().enumerate() {
            self.held[i] += u64::from(h);
        }
        if self.witnesses.len() < o.held.len() {
            self.witnesses.resize(o.held.len(), Witnesses::default());
        }
        for (i, &h) in o.held.iter().enumerate() {
            let w = &mut self.witnesses[i];
            let run = || {
                let mut s = s.clone();
                s.inject = o.applied.clone();
                s
            };
            if h && w.held.is_none() {
                w.held = Some((key, run()));
            }
            if let (false, None, Some(Some(kind))) = (h, &w.failed, o.failures.get(i)) {
                w.failed = Some((key, run(), kind.clone()));
            }
        }
        let mut kinds: Vec<Injection> = o.applied.iter().map(|&(_, k)| k).collect();
        kinds.sort();
        kinds.dedup();
        for k in kinds {
            *self.kinds_used.entry(k).or_default() += 1;
        }
        for &o in &o.reached {
            *self.reached.entry(o).or_default() += 1;
        }
        if !o.violations.is_empty() {
            self.failing_runs += 1;
            let mut names: Vec<&'static str> = o.violations.iter().map(|v| v.property).collect();
            names.sort();
            names.dedup();
            for n in names {
                *self.broken.entry(n).or_default() += 1;
            }
            if self.first_failure.is_none() {
                let mut s = s.clone();
                s.inject = o.applied.clone();
                self.first_failure = Some((s, o.violations.clone()));
            }
        }
    }

    /// Add up another report's counts (not its depths, first failure or baseline).
    fn absorb(&mut self, o: Report) {
        self.runs += o.runs;
        self.pruned += o.pruned;
        self.failing_runs += o.failing_runs;
        if self.held.len() < o.held.len() {
            self.held.resize(o.held.len(), 0);
        }
        for (i, h) in o.held.into_iter().enumerate() {
            self.held[i] += h;
        }
        if self.witnesses.len() < o.witnesses.len() {
            self.witnesses
                .resize(o.witnesses.len(), Witnesses::default());
        }
        for (i, w) in o.witnesses.into_iter().enumerate() {
            self.witnesses[i].merge(w);
        }
        for (k, n) in o.broken {
            *self.broken.entry(k).or_default() += n;
        }
        for (k, n) in o.kinds_used {
            *self.kinds_used.entry(k).or_default() += n;
        }
        for (k, n) in o.reached {
            *self.reached.entry(k).or_default() += n;
        }
    }

    /// The verdict of condition `i` (litmus style).
    pub fn verdict(&self, i: usize) -> VerdictName {
        match self.held.get(i).copied().unwrap_or(0) {
            0 => VerdictName::Never,
            n if n == self.runs => VerdictName::Always,
            _ => VerdictName::Sometimes,
        }
    }
}

/// Exhaustive search: every schedule of at most `setup.max_k` injections at distinct
/// points with kinds from each point's (reduced) menu, breadth first, on `jobs` threads.
pub fn exhaustive(
    l: &Loaded,
    setup: &Setup,
    seed: u64,
    jobs: usize,
) -> Result<Report, ScenarioError> {
    exhaustive_with(l, setup, seed, jobs, Control::NONE)
}

/// [`exhaustive`], followed and stoppable through `ctl`.
pub fn exhaustive_with(
    l: &Loaded,
    setup: &Setup,
    seed: u64,
    jobs: usize,
    ctl: Control<'_>,
) -> Result<Report, ScenarioError> {
    // Workers also build each run's children and drop its recorded points, so the
    // coordinator's serial part between levels is only adding up.
    let run = |s: &Schedule, expand: bool, pool: &mut StackPool| {
        let mut o = run_fixed(l, setup, s, expand, pool)?;
        let (children, pruned) = if expand {
            children(setup, s, &o)
        } else {
            (Vec::new(), 0)
        };
        o.points = Vec::new();
        Ok(Done {
            outcome: o,
            children,
            pruned,
        })
    };
    let mut pools = pools(jobs);
    let mut mine = pools.pop().expect("at least one pool");
    // One team of workers for the whole search: a level is handed to every worker at once
    // and the next level is built when all are done, so no thread is started per level.
    std::thread::scope(|scope| {
        let (tx, rx) = crossbeam::channel::unbounded::<(Arc<Level<'_>>, WaitGroup)>();
        for mut pool in pools {
            let rx = rx.clone();
            scope.spawn(move || {
                for (level, done) in rx.iter() {
                    level.work(&mut pool);
                    // The level first: the coordinator takes it back once all are done.
                    drop(level);
                    drop(done);
                }
            });
        }
        let helpers = jobs.max(1) - 1;
        levels(setup, seed, ctl, |items, expand| {
            let level = Arc::new(Level {
                items,
                expand,
                next: AtomicUsize::new(0),
                out: Mutex::new(Vec::new()),
                run: &run,
                ctl,
            });
            // Waking a parked worker costs tens of microseconds, ten tiny runs' worth: a
            // small level is run here alone.
            let share = if level.items.len() >= SMALL_LEVEL * (helpers + 1) {
                helpers
            } else {
                0
            };
            let done = WaitGroup::new();
            for _ in 0..share {
                tx.send((Arc::clone(&level), done.clone()))
                    .expect("workers live as long as the search");
            }
            level.work(&mut mine);
            done.wait();
            let parts = std::mem::take(&mut *level.out.lock().expect("lock"));
            parts
        })
        // Dropping `tx` here ends the workers.
    })
}

/// Levels with fewer schedules than this per worker run on the calling thread alone.
const SMALL_LEVEL: usize = 16;

/// One level of an exhaustive search, shared by its workers: items are claimed by index,
/// and each worker folds its own results ([`Part`]), on the thread that made them.
struct Level<'e> {
    items: Vec<Schedule>,
    expand: bool,
    next: AtomicUsize,
    out: Mutex<Vec<Part>>,
    run: &'e (dyn Fn(&Schedule, bool, &mut StackPool) -> Result<Done, ScenarioError> + Sync),
    ctl: Control<'e>,
}

/// What one worker made of its share of a level.
#[derive(Default)]
struct Part {
    /// Its runs added up (first failure: its lowest index, since indices rise).
    report: Report,
    /// Index of `report.first_failure`.
    first_failure_at: Option<usize>,
    /// Points of item 0 (the unperturbed run, at depth 0).
    points_of_first: Option<u32>,
    /// Each expanded item's children, by item index.
    children: Vec<(usize, Vec<Schedule>)>,
    /// The first error, by item index.
    error: Option<(usize, ScenarioError)>,
}

impl Level<'_> {
    fn work(&self, pool: &mut StackPool) {
        let mut part = Part::default();
        while !self.ctl.stopped() {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(s) = self.items.get(i) else { break };
            let result = (self.run)(s, self.expand, pool);
            (self.ctl.progress)();
            match result {
                Ok(done) => {
                    if i == 0 {
                        part.points_of_first = Some(done.outcome.point_count);
                    }
                    let had = part.report.first_failure.is_some();
                    part.report.add(s, &done.outcome, (0, i as u64));
                    if !had && part.report.first_failure.is_some() {
                        part.first_failure_at = Some(i);
                    }
                    part.report.pruned += done.pruned;
                    if self.expand {
                        part.children.push((i, done.children));
                    }
                }
                Err(e) => {
                    if part.error.is_none() {
                        part.error = Some((i, e));
                    }
                }
            }
        }
        self.out.lock().expect("lock").push(part);
    }
}

/// One run of an exhaustive search: its outcome (points dropped) and its children.
struct Done {
    outcome: Outcome,
    children: Vec<Schedule>,
    pruned: u64,
}

/// The schedules one more injection after `s`'s last one gives, at each point its run
/// offered after that one and with each kind on the point's menu; and how many choices the
/// menus left off as equivalent.
fn children(setup: &Setup, s: &Schedule, o: &Outcome) -> (Vec<Schedule>, u64) {
    let (mut out, mut pruned) = (Vec::new(), 0);
    let last = s.inject.last().map(|&(p, _)| p);
    for p in o.points.iter().filter(|p| last.is_none_or(|q| p.index > q)) {
        pruned += p.pruned.and(setup.kinds).len() as u64;
        for k in p.menu.and(setup.kinds).iter() {
            let mut child = s.clone();
            child.inject.push((p.index, k));
            out.push(child);
        }
    }
    (out, pruned)
}

/// The breadth-first exhaustive search over levels, given a way to run a level's
/// schedules (`run_level(items, expand)` returns the workers' [`Part`]s).
fn levels(
    setup: &Setup,
    seed: u64,
    ctl: Control<'_>,
    mut run_level: impl FnMut(Vec<Schedule>, bool) -> Vec<Part>,
) -> Result<Report, ScenarioError> {
    let mut report = Report::default();
    let mut level: Vec<Schedule> = vec![Schedule::plain(seed)];
    for depth in 0..=setup.max_k {
        let left = setup.max_schedules.saturating_sub(report.runs);
        if level.len() as u64 > left {
            // Keep the first schedules in run order: the truncation is deterministic.
            level.truncate(left as usize);
            report.truncated = true;
        }
        let expand = depth < setup.max_k && !report.truncated;
        let mut parts = run_level(level, expand);
        report
            .by_depth
            .push(parts.iter().map(|p| p.report.runs).sum());
        report.interrupted = ctl.stopped();
        if let Some((_, e)) = parts
            .iter_mut()
            .filter_map(|p| p.error.take())
            .min_by_key(|(i, _)| *i)
        {
            return Err(e);
        }
        // The level's first failure is the lowest index of any worker's first failure;
        // an earlier level's comes first.
        let first = parts
            .iter_mut()
            .filter_map(|p| Some((p.first_failure_at?, p.report.first_failure.take()?)))
            .min_by_key(|(i, _)| *i);
        if report.first_failure.is_none() {
            report.first_failure = first.map(|(_, f)| f);
        }
        // Witnesses were keyed by index within this level: an earlier level comes first.
        for w in parts.iter_mut().flat_map(|p| p.report.witnesses.iter_mut()) {
            if let Some(h) = &mut w.held {
                h.0 .0 = u64::from(depth);
            }
            if let Some(f) = &mut w.failed {
                f.0 .0 = u64::from(depth);
            }
        }
        let mut children = Vec::new();
        for p in parts {
            if let (0, Some(n)) = (depth, p.points_of_first) {
                report.baseline_points = n;
            }
            report.absorb(p.report);
            children.extend(p.children);
        }
        children.sort_unstable_by_key(|(i, _)| *i);
        let next: Vec<Schedule> = children.into_iter().flat_map(|(_, c)| c).collect();
        if next.is_empty() || report.truncated || report.interrupted {
            break;
        }
        level = next;
    }
    Ok(report)
}

/// Randomized search: `runs` runs, each with its own seed derived from `seed`. Each run
/// injects at random points, drawn uniformly from twice the unperturbed run's points
/// (injections add steps: a grant adds a yield): with `pct = Some(d)` at `d` points with
/// any allowed kind (PCT), otherwise swarm-style at 1 to K points with a random subset of
/// the allowed kinds drawn per run. Equal-time order is seeded too.
pub fn random(
    l: &Loaded,
    setup: &Setup,
    seed: u64,
    runs: u64,
    pct: Option<u32>,
    jobs: usize,
) -> Result<Report, ScenarioError> {
    random_with(l, setup, seed, runs, pct, jobs, Control::NONE)
}

/// [`random`], followed and stoppable through `ctl`.
pub fn random_with(
    l: &Loaded,
    setup: &Setup,
    seed: u64,
    runs: u64,
    pct: Option<u32>,
    jobs: usize,
    ctl: Control<'_>,
) -> Result<Report, ScenarioError> {
    let (base, _) = run_schedule(l, setup, &Schedule::plain(seed))?;
    let n = (2 * u64::from(base.point_count)).max(1);
    let idx: Vec<u64> = (0..runs).collect();
    let results = par_map(&idx, &mut pools(jobs), &|&i: &u64, pool: &mut StackPool| {
        if ctl.stopped() {
            return None;
        }
        let mut meta = Pcg64Mcg::seed_from_u64(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let s = Schedule {
            seed: meta.next_u64(),
            seeded_ties: true,
            until: None,
            inject: Vec::new(),
        };
        let (count, kinds) = match pct {
            Some(d) => (u64::from(d), setup.kinds),
            None => {
                // Swarm testing: some runs hammer one kind, others mix them all.
                let sub = InjectMenu((meta.next_u64() as u8) & setup.kinds.0);
                let kinds = if sub.is_empty() { setup.kinds } else { sub };
                (1 + meta.next_u64() % u64::from(setup.max_k.max(1)), kinds)
            }
        };
        let mut at: Vec<u32> = (0..count).map(|_| (meta.next_u64() % n) as u32).collect();
        at.sort_unstable();
        at.dedup();
        let plan = Random {
            engine: Pcg64Mcg::seed_from_u64(s.seed),
            decide: Pcg64Mcg::seed_from_u64(meta.next_u64()),
            at,
            kinds,
            applied: Vec::new(),
        };
        let r = run_random(l, setup, &s, plan, pool).map(|o| (s, o));
        (ctl.progress)();
        Some(r)
    });
    let mut report = Report {
        baseline_points: base.point_count,
        ..Report::default()
    };
    for r in results {
        let Some(r) = r else {
            report.interrupted = true;
            continue;
        };
        let (s, o) = r?;
        report.add(&s, &o, (0, report.runs));
    }
    Ok(report)
}

/// Replay a stamped schedule against `l`: fails if it was made for another scenario text.
pub fn check_stamp(l: &Loaded, st: &Stamp) -> Result<(), String> {
    let mine = stamp(l);
    // Schedules written before the revisions were named by kernel carry the old names.
    let theirs = rseq_abi::Revision::from_name(&st.revision).map_or("?", |r| r.name());
    if st.hash == mine.hash && theirs != mine.revision {
        return Err(format!(
            "the schedule was made for revision {} but `{}` now runs revision {} (the default \
             revision changed to 7.2; add `revision = \"{}\"` under [machine] to replay it)",
            st.revision, mine.scenario, mine.revision, theirs
        ));
    }
    if st.hash != mine.hash {
        return Err(format!(
            "the schedule was made for scenario `{}` with hash {:016x}, but {} (`{}`) hashes to {:016x}; it would not replay the same run",
            st.scenario,
            st.hash,
            l.path.display(),
            mine.scenario,
            mine.hash
        ));
    }
    Ok(())
}

/// The race catalogue (`docs/races.md`'s generated part): every scenario in `paths`
/// explored exhaustively, one Markdown table row per condition with its verdict, and the
/// invariants with the shrunk counterexample where one breaks.
pub fn catalog(
    programs: &crate::programs::Programs,
    paths: &[std::path::PathBuf],
    jobs: usize,
) -> Result<String, ScenarioError> {
    use std::fmt::Write;
    let mut out = String::new();
    out.push_str("| race | § of protocol.md | condition | verdict | schedules where it held | invariants |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    let mut counterexamples = String::new();
    for path in paths {
        let l = scenario::load_with(
            path,
            &[],
            crate::budget::defaults::MAX_FILE_MIB << 20,
            programs,
        )?;
        let setup = Setup::new(&l, &[], None)?;
        let r = exhaustive(&l, &setup, l.scenario.scenario.seed, jobs)?;
        let m = &l.scenario.scenario;
        let inv = if r.failing_runs == 0 {
            format!("all held ({} schedules)", r.runs)
        } else {
            let names: Vec<String> = r
                .broken
                .iter()
                .map(|(n, k)| format!("{n} in {k}"))
                .collect();
            format!("**broken**: {} of {} schedules", names.join(", "), r.runs)
        };
        for (i, c) in setup.conditions.iter().enumerate() {
            // The race, its spec sections and the invariants once, on its first row.
            let (race, spec, inv) = if i == 0 {
                let race = format!("[`{}`](../{})", m.name, path.display());
                (race, m.spec.join(", "), inv.clone())
            } else {
                Default::default()
            };
            let _ = writeln!(
                out,
                "| {race} | {spec} | {} | **{}** | {} of {} | {inv} |",
                c.name,
                r.verdict(i).title(),
                r.held[i],
                r.runs,
            );
        }
        if let Some((s, v)) = &r.first_failure {
            let shrunk = shrink(&l, &setup, s, &v[0])?;
            let st = Stamped {
                stamp: stamp(&l),
                schedule: shrunk.schedule,
            };
            let _ = writeln!(
                counterexamples,
                "- `{}`: {}\n  ```text\n  {st}\n  ```",
                path.display(),
                shrunk.violations[0]
            );
        }
    }
    if !counterexamples.is_empty() {
        out.push_str(
            "\nShrunk counterexamples (replay with `slicesim run SCENARIO --schedule FILE`):\n\n",
        );
        out.push_str(&counterexamples);
    }
    Ok(out)
}
