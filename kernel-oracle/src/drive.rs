//! Running the simulator with the oracle attached: one scenario, the explorer's
//! exhaustive search, a random campaign. Used by the tests and by the `kernel-oracle`
//! binary (`src/main.rs`).

use rseq_sim::{Chooser, Draw, InjectPoint, Injection, Replay};
use slicesim::explore::{Schedule, Setup};
use slicesim::scenario::Loaded;

use crate::diff::{Differ, Report};

/// Run `l` (with `seed`, or its own) with the oracle attached.
pub fn run_scenario(
    l: &Loaded,
    seed: Option<u64>,
) -> Result<Report, slicesim::scenario::ScenarioError> {
    let mut built = slicesim::scenario::build_with(l, seed, None, false)?;
    let (differ, report) = Differ::new();
    report.lock().unwrap_or_else(|p| p.into_inner()).context =
        format!("{} seed {}", l.path.display(), built.sim.config().seed);
    built.sim.set_observer(Some(Box::new(differ)));
    built.sim.run_until(built.duration);
    built.sim.set_observer(None);
    let r = report.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(r)
}

/// Is task `name` the scenario task `def` (or one of its `count` copies)?
fn is_instance(name: &str, def: &str) -> bool {
    name == def || name.strip_prefix(def).is_some_and(|r| r.starts_with('.'))
}

/// Run one schedule with the oracle attached; returns the points the run offered.
fn run_schedule(
    l: &Loaded,
    setup: &Setup,
    seed: u64,
    inject: &[(u32, Injection)],
    total: &mut Report,
) -> Result<Vec<InjectPoint>, slicesim::scenario::ScenarioError> {
    let chooser = Box::new(Replay::new(seed, inject.to_vec(), true));
    let mut b =
        slicesim::scenario::build_tuned(l, Some(seed), None, false, &|_| {}, Some(chooser))?;
    for (name, &id) in &b.names {
        if setup.watched.iter().any(|w| is_instance(name, w)) {
            b.sim.watch(id);
        }
    }
    let schedule = Schedule {
        seed,
        seeded_ties: false,
        until: None,
        inject: inject.to_vec(),
    };
    let (differ, report) = Differ::new();
    report.lock().unwrap_or_else(|p| p.into_inner()).context = format!(
        "{} with seed={seed} tie=fifo inject={} (slicesim run --schedule)",
        l.path.display(),
        schedule.inject_text()
    );
    b.sim.set_observer(Some(Box::new(differ)));
    b.sim.run_until(b.duration);
    b.sim.set_observer(None);
    total.merge(&report.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(b.sim
        .chooser_mut::<Replay>()
        .map(|rep| std::mem::take(&mut rep.points))
        .unwrap_or_default())
}

fn search(
    l: &Loaded,
    setup: &Setup,
    seed: u64,
    inject: &mut Vec<(u32, Injection)>,
    total: &mut Report,
) -> Result<u64, slicesim::scenario::ScenarioError> {
    let points = run_schedule(l, setup, seed, inject, total)?;
    let mut runs = 1;
    if inject.len() as u32 >= setup.max_k {
        return Ok(runs);
    }
    let last = inject.last().map(|&(p, _)| p);
    for p in points.iter().filter(|p| last.is_none_or(|q| p.index > q)) {
        for k in p.menu.and(setup.kinds).iter() {
            inject.push((p.index, k));
            runs += search(l, setup, seed, inject, total)?;
            inject.pop();
        }
    }
    Ok(runs)
}

/// The explorer's exhaustive search (every schedule of at most `setup.max_k` injections
/// at distinct points, kinds from each point's reduced menu; the children of a schedule
/// at the points after its last injection), depth first, every run checked. Returns the
/// number of schedules run.
pub fn exhaustive(
    l: &Loaded,
    setup: &Setup,
    seed: u64,
    total: &mut Report,
) -> Result<u64, slicesim::scenario::ScenarioError> {
    search(l, setup, seed, &mut Vec::new(), total)
}

/// splitmix64: a tiny seeded generator, so the campaign needs no other crate.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The campaign's chooser: draws from one generator and injects a random kind at about
/// one watched point in 16, at most `left` times per run.
pub struct Swarm {
    rng: Mix,
    left: u32,
}

impl Swarm {
    /// Seeded by `seed`, at most `injections` per run.
    pub fn new(seed: u64, injections: u32) -> Self {
        Swarm {
            rng: Mix(seed),
            left: injections,
        }
    }
}

impl Chooser for Swarm {
    fn draw(&mut self, _what: Draw) -> u64 {
        self.rng.next()
    }

    fn inject(&mut self, point: &InjectPoint) -> Option<Injection> {
        if self.left == 0 || self.rng.next() % 16 != 0 {
            return None;
        }
        let n = point.menu.len() as u64;
        if n == 0 {
            return None;
        }
        let k = point.menu.iter().nth((self.rng.next() % n) as usize)?;
        self.left -= 1;
        Some(k)
    }
}

/// A random campaign over `scenarios` (round robin) with seeded tie-breaking, the run's
/// index as its seed and up to 3 random injections per run, every task watched, until
/// `target` decisions were checked or a difference is found. Run `i` is a function of
/// `i` alone. Returns the number of runs.
pub fn campaign(
    scenarios: &[Loaded],
    target: u64,
    total: &mut Report,
) -> Result<u64, slicesim::scenario::ScenarioError> {
    let mut runs = 0u64;
    while total.total_checked() < target && !scenarios.is_empty() {
        let l = &scenarios[(runs % scenarios.len() as u64) as usize];
        let seed = runs;
        let swarm = Box::new(Swarm::new(seed ^ 0x5eed, 3));
        let tune = |c: &mut rseq_sim::SimConfig| c.tie_break = rseq_sim::TieBreak::Seeded;
        let mut b =
            slicesim::scenario::build_tuned(l, Some(seed), None, false, &tune, Some(swarm))?;
        let ids: Vec<u32> = b.names.values().copied().collect();
        for id in ids {
            b.sim.watch(id);
        }
        let (differ, report) = Differ::new();
        report.lock().unwrap_or_else(|p| p.into_inner()).context = format!(
            "campaign run {runs}: {} with seed {seed}, tie=seeded, Swarm::new(seed ^ 0x5eed, 3)",
            l.path.display()
        );
        b.sim.set_observer(Some(Box::new(differ)));
        b.sim.run_until(b.duration);
        b.sim.set_observer(None);
        total.merge(&report.lock().unwrap_or_else(|p| p.into_inner()));
        runs += 1;
        if total.difference_count > 0 {
            break;
        }
    }
    Ok(runs)
}
