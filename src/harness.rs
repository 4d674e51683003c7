//! A test harness for your own rseq programs, in the spirit of `loom::model` and
//! `shuttle::check_random`: describe a machine, spawn your programs (any closure over the
//! simulator's [`Platform`](rseq_abi::Platform)) beside built-in helpers, then run the model
//! once or explore its interrupt timings, checking the protocol's built-in invariants and
//! your own predicates. A failure panics with a readable report: the broken property, the
//! shrunk schedule, an `explain`-style timeline of the failing run, and the one-line call
//! that replays it.
//!
//! ```
//! use rseq_abi::protocol::{self, SliceExt};
//! use rseq_abi::Platform;
//! use slicesim::harness::{Explore, Model, TaskExit};
//!
//! // One critical section asking for an extension (spec §8.1).
//! fn section<P: Platform>(p: &mut P) {
//!     protocol::register(p, 0).expect("rseq registers");
//!     protocol::slice_ext_set(p, true).expect("the extension is enabled");
//!     let ext = SliceExt::assume_enabled(p.revision());
//!     ext.request(p);
//!     p.burn(2_000);
//!     ext.release(p);
//! }
//!
//! let summary = Model::new()
//!     .duration_ns(10_000)
//!     .spawn("holder", |p| section(p))
//!     .check("holder exits", |run| match run.exit("holder") {
//!         Some(TaskExit::Exited) => Ok(()),
//!         other => Err(format!("holder ended {other:?}")),
//!     })
//!     .explore(Explore::exhaustive(1));
//! assert!(summary.runs > 1);
//! ```
//!
//! Under the hood a model is a scenario ([`Model::scenario_text`] prints it) whose tasks run
//! registered programs, explored by [`crate::explore`] exactly as `slicesim explore` explores
//! a file: the same search, the same invariants, results that never depend on the number of
//! worker threads.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

pub use rseq_sim::{LogKind, LogRecord, SimPlatform, Simulation, SliceStats, Task, TaskExit};

use crate::explore::{self, Predicate, Report, Schedule, Setup, Stamped, Violation};
use crate::programs::{ProgramOutput, Programs};
use crate::scenario::{self, Loaded, RunResult};

/// How [`Model::explore`] searches the interrupt timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Explore {
    mode: Mode,
    seed: Option<u64>,
    jobs: Option<usize>,
    max_schedules: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Exhaustive { k: u32 },
    Random { runs: u64, k: u32 },
    Pct { runs: u64, depth: u32 },
}

impl Explore {
    /// Every placement of at most `k` injected events (interrupts, timers, signals,
    /// migrations, … at every user operation of the watched tasks), breadth first. With
    /// no violation found and no cut ([`Explore::max_schedules`]) it is a proof over those
    /// placements.
    pub fn exhaustive(k: u32) -> Explore {
        Explore::with(Mode::Exhaustive { k })
    }

    /// `runs` random runs, swarm style: each with its own seed, a random subset of the
    /// kinds and 1 to `k` injections.
    pub fn random(runs: u64, k: u32) -> Explore {
        Explore::with(Mode::Random { runs, k })
    }

    /// `runs` random runs, PCT style: each injects at `depth` random points.
    pub fn pct(runs: u64, depth: u32) -> Explore {
        Explore::with(Mode::Pct { runs, depth })
    }

    fn with(mode: Mode) -> Explore {
        Explore {
            mode,
            seed: None,
            jobs: None,
            max_schedules: explore::DEFAULT_MAX_SCHEDULES,
        }
    }

    /// The seed of the search (default: the model's seed): the same seed, the same runs.
    pub fn seed(mut self, seed: u64) -> Explore {
        self.seed = Some(seed);
        self
    }

    /// Worker threads (default: the machine's parallelism); never changes a result.
    pub fn jobs(mut self, jobs: usize) -> Explore {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Stop an exhaustive search after this many schedules (then it is no proof).
    pub fn max_schedules(mut self, n: u64) -> Explore {
        self.max_schedules = n;
        self
    }

    fn describe(&self) -> String {
        match self.mode {
            Mode::Exhaustive { k } => format!("exhaustive, at most {k} injected events"),
            Mode::Random { runs, k } => {
                format!("random, {runs} runs, at most {k} injected events each")
            }
            Mode::Pct { runs, depth } => format!("PCT depth {depth}, {runs} runs"),
        }
    }
}

/// A finished run, for predicates and for the caller of [`Model::run_once`] and
/// [`Model::replay`]: task outcomes, counters, markers, shared words, the kernel's
/// statistics and the whole event log.
pub struct Run<'a> {
    r: &'a RunResult,
}

impl<'a> Run<'a> {
    /// The simulation, for anything the accessors below do not cover.
    pub fn sim(&self) -> &'a Simulation {
        &self.r.sim
    }

    /// Task `name` (a model's task names are as spawned).
    ///
    /// # Panics
    ///
    /// If there is no such task: a predicate naming a task the model does not have is a
    /// mistake in the test.
    pub fn task(&self, name: &str) -> &'a Task {
        let id = self.r.names.get(name).unwrap_or_else(|| {
            panic!(
                "no task `{name}` (tasks: {})",
                self.r.names.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        });
        &self.r.sim.tasks()[*id as usize]
    }

    /// How task `name` ended (`None`: still running when the run ended).
    pub fn exit(&self, name: &str) -> Option<&'a TaskExit> {
        self.task(name).exit.as_ref()
    }

    /// Counter `key` that task `name`'s program returned (`None` before it returned, or if
    /// it has no such counter).
    pub fn counter(&self, name: &str, key: &str) -> Option<i64> {
        self.task(name)
            .counters
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// The value of a shared word at the end of the run.
    pub fn shared(&self, word: rseq_abi::SharedWord) -> u32 {
        self.r.sim.shared_word(word)
    }

    /// The kernel's `rseq/stats` counters, summed over CPUs.
    pub fn stats(&self) -> SliceStats {
        self.r.sim.stats()
    }

    /// The markers task `name` reported (`Platform::mark`), with their times, in order.
    pub fn markers(&self, name: &str) -> Vec<(u64, rseq_abi::Marker)> {
        let id = self.task(name).id;
        self.r
            .sim
            .log()
            .iter()
            .filter(|r| r.task == Some(id))
            .filter_map(|r| match &r.kind {
                rseq_sim::LogKind::Mark(m) => Some((r.time, *m)),
                _ => None,
            })
            .collect()
    }

    /// The whole event log.
    pub fn log(&self) -> &'a [LogRecord] {
        self.r.sim.log()
    }

    /// The run told rule by rule (`slicesim explain --brief`).
    pub fn explain(&self) -> String {
        crate::explain::explain_with(&self.r.sim, crate::explain::Options { brief: true })
    }
}

/// What an exploration that found nothing wrong covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Runs made.
    pub runs: u64,
    /// Exhaustive: the space was cut at [`Explore::max_schedules`] (no proof).
    pub truncated: bool,
    /// The outcomes reached, with the runs that reached each (see
    /// [`crate::explore::OUTCOMES`]).
    pub reached: Vec<(&'static str, u64)>,
}

/// A broken property: the report a failing [`Model::explore`] panics with.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The first violation of the shrunk run (its `property` names the invariant or
    /// predicate).
    pub violation: Violation,
    /// Every violation of the shrunk run.
    pub violations: Vec<Violation>,
    /// The shrunk schedule: `model.replay(&failure.schedule)` runs it again.
    pub schedule: String,
    /// Runs made, and how many broke a property.
    pub runs: u64,
    /// Runs that broke a property.
    pub failing_runs: u64,
    /// The readable report.
    pub report: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.report)
    }
}

/// Most injected events per run, as `slicesim explore --max-interrupts` allows.
const MAX_K: u32 = 8;

/// Most timeline lines a failure report shows (`Run::explain` on a replay shows all).
const REPORT_TIMELINE_LINES: usize = 120;

/// A task of a model: its name, where and how it runs, and its program.
struct TaskSpec {
    name: String,
    program: String,
    keys: String,
}

/// A machine, its tasks and interrupt sources, and the properties to check: built by
/// chained calls, then [`Model::run_once`], [`Model::explore`] or [`Model::replay`].
pub struct Model {
    name: String,
    duration_ns: u64,
    seed: u64,
    machine: Vec<(String, String)>,
    tasks: Vec<TaskSpec>,
    irqs: Vec<String>,
    programs: Programs,
    predicates: Vec<Predicate>,
    watch: Vec<String>,
    kinds: Vec<String>,
    correct: Option<Vec<String>>,
}

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

/// Where and how a spawned task runs ([`Model::spawn_with`]); the defaults are a normal
/// task on any CPU, started at time 0.
#[derive(Clone, Debug, Default)]
pub struct Spawn {
    /// Allowed CPUs (default: all).
    pub cpus: Option<Vec<usize>>,
    /// SCHED_FIFO priority (1..=99) (default: a normal task).
    pub fifo: Option<u8>,
    /// Nice value of a normal task (default: 0).
    pub nice: i8,
    /// Start time, ns (default: 0).
    pub start_ns: u64,
}

impl Model {
    /// A machine of one CPU, no tick (`hz = 0`: interrupts come only from the explorer
    /// and the sources you add), no timer slack or jitter, the default revision (7.2) and
    /// preemption (`full`), 100 µs of simulated time, seed 0.
    pub fn new() -> Model {
        Model {
            name: "model".into(),
            duration_ns: 100_000,
            seed: 0,
            machine: vec![
                ("cpus".into(), "1".into()),
                ("hz".into(), "0".into()),
                ("timer_slack".into(), "0".into()),
                ("timer_jitter".into(), "0".into()),
            ],
            tasks: Vec::new(),
            irqs: Vec::new(),
            programs: Programs::builtin(),
            predicates: Vec::new(),
            watch: Vec::new(),
            kinds: Vec::new(),
            correct: None,
        }
    }

    /// The model's name in reports and schedules (default: `model`).
    pub fn name(mut self, name: &str) -> Model {
        self.name = name.to_string();
        self
    }

    /// Simulated time of a run, ns.
    pub fn duration_ns(mut self, ns: u64) -> Model {
        self.duration_ns = ns;
        self
    }

    /// The engine's seed.
    pub fn seed(mut self, seed: u64) -> Model {
        self.seed = seed;
        self
    }

    /// CPUs (1..=1024).
    pub fn cpus(self, n: usize) -> Model {
        self.machine("cpus", &n.to_string())
    }

    /// Preemption model: `none`, `voluntary`, `full`, `lazy`, `rt`.
    pub fn preempt(self, model: &str) -> Model {
        self.machine("preempt", &format!("{model:?}"))
    }

    /// Protocol revision: `v1`, `7.0`, `7.2`.
    pub fn revision(self, revision: &str) -> Model {
        self.machine("revision", &format!("{revision:?}"))
    }

    /// Tick rate, Hz (0: no tick).
    pub fn hz(self, hz: u32) -> Model {
        self.machine("hz", &hz.to_string())
    }

    /// Any `[machine]` key of the scenario format, its value written as TOML
    /// (`.machine("slice_ext_nsec", "10000")`, `.machine("irq_latency", "\"500ns\"")`): the
    /// profile of the simulated kernel and hardware. A bad key or value is reported when
    /// the model runs, with the closest valid key.
    pub fn machine(mut self, key: &str, toml_value: &str) -> Model {
        self.machine.retain(|(k, _)| k != key);
        self.machine.push((key.to_string(), toml_value.to_string()));
        self
    }

    /// Spawn task `name` running `f`, your program, on the simulated machine. `f` is
    /// called once per run, on whichever worker thread makes the run.
    pub fn spawn<F, R>(self, name: &str, f: F) -> Model
    where
        F: Fn(&mut SimPlatform<'_>) -> R + Send + Sync + 'static,
        R: ProgramOutput,
    {
        self.spawn_with(name, Spawn::default(), f)
    }

    /// [`Model::spawn`] with placement and policy.
    pub fn spawn_with<F, R>(mut self, name: &str, how: Spawn, f: F) -> Model
    where
        F: Fn(&mut SimPlatform<'_>) -> R + Send + Sync + 'static,
        R: ProgramOutput,
    {
        let program = format!("{name}.program");
        self.programs = self.programs.with_fn(&program, f);
        let keys = spawn_keys(&how);
        self.tasks.push(TaskSpec {
            name: name.to_string(),
            program,
            keys,
        });
        self
    }

    /// Spawn a built-in program with its scenario keys, as a `[[task]]` table's lines
    /// (`.builtin("noise", "spinner", "hold = \"5us\"\ncpus = [0]")`); see
    /// `docs/scenarios.md` for the programs and their keys.
    pub fn builtin(mut self, name: &str, program: &str, keys: &str) -> Model {
        self.tasks.push(TaskSpec {
            name: name.to_string(),
            program: program.to_string(),
            keys: keys.to_string(),
        });
        self
    }

    /// The kernel selftest's noise thread on `cpu` (bursts of CPU time that keep asking
    /// for the CPU), beside your tasks.
    pub fn noise(self, name: &str, cpu: usize) -> Model {
        self.builtin(name, "selftest_noise", &format!("cpus = [{cpu}]"))
    }

    /// A SCHED_FIFO task at `priority` on `cpu` that wakes every `period_ns` and runs
    /// for `burst_ns`: it preempts whatever runs there, the classic disturber.
    pub fn fifo_disturber(
        self,
        name: &str,
        cpu: usize,
        priority: u8,
        period_ns: u64,
        burst_ns: u64,
    ) -> Model {
        self.builtin(
            name,
            "sleeper",
            &format!(
                "cpus = [{cpu}]\npolicy = \"fifo:{priority}\"\nthink = {period_ns}\nhold = {burst_ns}"
            ),
        )
    }

    /// A periodic interrupt source on `cpu` every `period_ns`, of `kind` (`device`,
    /// `device_resched`, `device_resched_lazy`, `exception`, `resched_ipi`,
    /// `membarrier_ipi`).
    pub fn irq_every(mut self, cpu: u32, period_ns: u64, kind: &str) -> Model {
        self.irqs
            .push(format!("cpu = {cpu}\nkind = {kind:?}\nevery = {period_ns}"));
        self
    }

    /// Check `predicate` on every finished run: `Err(why)` (or a panic) breaks the
    /// property `name`, reported like a built-in invariant.
    pub fn check<F>(mut self, name: &str, predicate: F) -> Model
    where
        F: Fn(&Run<'_>) -> Result<(), String> + Send + Sync + 'static,
    {
        // Violations name their property with a `&'static str`; a model's few names live
        // as long as the test.
        let name: &'static str = Box::leak(name.to_string().into_boxed_str());
        self.predicates.push(Predicate {
            name,
            check: Arc::new(move |r: &RunResult| predicate(&Run { r })),
        });
        self
    }

    /// Only these tasks' operations are injection points (default: every task).
    pub fn watch(mut self, tasks: &[&str]) -> Model {
        self.watch = tasks.iter().map(|t| t.to_string()).collect();
        self
    }

    /// Only these kinds are injected (default: all): `irq`, `irq+resched`, `irq+lazy`,
    /// `remote-resched`, `timer`, `membarrier`, `signal`, `migrate`.
    pub fn kinds(mut self, kinds: &[&str]) -> Model {
        self.kinds = kinds.iter().map(|k| k.to_string()).collect();
        self
    }

    /// Only these tasks claim to follow the protocol, so only their faults break the
    /// built-in invariants (default: every task).
    pub fn correct(mut self, tasks: &[&str]) -> Model {
        self.correct = Some(tasks.iter().map(|t| t.to_string()).collect());
        self
    }

    /// The model as a scenario file: what [`Model::explore`] explores, and what
    /// `slicesim explore` would explore with these programs registered.
    pub fn scenario_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "[scenario]\nname = {:?}\nduration = {}\nseed = {}\n\n[machine]",
            self.name, self.duration_ns, self.seed
        );
        for (k, v) in &self.machine {
            let _ = writeln!(s, "{k} = {v}");
        }
        for t in &self.tasks {
            let _ = writeln!(
                s,
                "\n[[task]]\nname = {:?}\nprogram = {:?}\n{}",
                t.name, t.program, t.keys
            );
        }
        for i in &self.irqs {
            let _ = writeln!(s, "\n[[irq]]\n{i}");
        }
        let list = |v: &[String]| {
            v.iter()
                .map(|x| format!("{x:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "\n[explore]");
        if !self.watch.is_empty() {
            let _ = writeln!(s, "tasks = [{}]", list(&self.watch));
        }
        if !self.kinds.is_empty() {
            let _ = writeln!(s, "kinds = [{}]", list(&self.kinds));
        }
        if let Some(c) = &self.correct {
            let _ = writeln!(s, "correct = [{}]", list(c));
        }
        s
    }

    /// The model as a loaded scenario (panics with the scenario error: a bad machine key
    /// or task option is a mistake in the test).
    fn load(&self) -> Loaded {
        let text = self.scenario_text();
        scenario::parse_with(Path::new(&self.name), &text, &[], &self.programs)
            .unwrap_or_else(|e| panic!("slicesim model `{}`: {e}\n{text}", self.name))
    }

    fn setup(&self, l: &Loaded, k: u32) -> Setup {
        let mut setup = Setup::new(l, &[], Some(k))
            .unwrap_or_else(|e| panic!("slicesim model `{}`: {e}", self.name));
        setup.predicates = self.predicates.clone();
        setup
    }

    /// Run the model once as written (no injected events) and check it; panics with the
    /// report if a property breaks. The closure gets the finished run for more checks.
    pub fn run_once<T>(self, then: impl FnOnce(&Run<'_>) -> T) -> T {
        let l = self.load();
        let setup = self.setup(&l, 0);
        self.replay_schedule(&l, &setup, &Schedule::plain(self.seed), then)
    }

    /// Run the shrunk schedule a failure printed (the whole `slicesim-schedule/1 ...`
    /// line) and check it: the failure again, now with your own debugging around it.
    pub fn replay<T>(self, schedule: &str, then: impl FnOnce(&Run<'_>) -> T) -> T {
        let l = self.load();
        let st = Stamped::parse(schedule)
            .unwrap_or_else(|e| panic!("slicesim model `{}`: replay: {e}", self.name));
        if let Err(e) = explore::check_stamp(&l, &st.stamp) {
            panic!("slicesim model `{}`: replay: {e}", self.name);
        }
        let setup = self.setup(&l, 0);
        self.replay_schedule(&l, &setup, &st.schedule, then)
    }

    fn replay_schedule<T>(
        &self,
        l: &Loaded,
        setup: &Setup,
        s: &Schedule,
        then: impl FnOnce(&Run<'_>) -> T,
    ) -> T {
        let (o, r) = explore::run_schedule(l, setup, s)
            .unwrap_or_else(|e| panic!("slicesim model `{}`: {e}", self.name));
        if !o.violations.is_empty() {
            let st = Stamped {
                stamp: explore::stamp(l),
                schedule: s.clone(),
            };
            panic!(
                "{}",
                self.report(&o.violations, &st.to_string(), &r, "a single run", 1, 1)
            );
        }
        then(&Run { r: &r })
    }

    /// Explore the model's interrupt timings; panics with the report of the first broken
    /// property (shrunk). Returns what the search covered.
    pub fn explore(self, how: Explore) -> Summary {
        match self.try_explore(how) {
            Ok(s) => s,
            Err(f) => panic!("{f}"),
        }
    }

    /// [`Model::explore`] without the panic: the failure as a value (a test that expects
    /// exploration to catch a mistake asserts on it).
    ///
    /// ```
    /// use slicesim::prelude::*;
    ///
    /// // Two tasks on one CPU each add 1 with a load and a store: not atomic.
    /// let add = |p: &mut SimPlatform<'_>| {
    ///     let v = p.shared_load(SharedWord(0));
    ///     p.burn(1_000);
    ///     p.shared_store(SharedWord(0), v + 1);
    /// };
    /// let model = || {
    ///     Model::new()
    ///         .spawn("a", add)
    ///         .spawn("b", add)
    ///         .kinds(&["irq+resched"])
    ///         .check("no lost update", |run| match run.shared(SharedWord(0)) {
    ///             2 => Ok(()),
    ///             n => Err(format!("the word is {n}")),
    ///         })
    /// };
    /// let failure = model().try_explore(Explore::exhaustive(1)).unwrap_err();
    /// assert_eq!(failure.violation.property, "no lost update");
    /// // The shrunk schedule replays it (here caught as the panic it is).
    /// let again = std::panic::catch_unwind(|| model().replay(&failure.schedule, |_| ()));
    /// assert!(again.is_err());
    /// ```
    pub fn try_explore(self, how: Explore) -> Result<Summary, Box<Failure>> {
        let l = self.load();
        let k = match how.mode {
            Mode::Exhaustive { k } | Mode::Random { k, .. } => k,
            Mode::Pct { depth, .. } => depth,
        };
        assert!(
            k <= MAX_K,
            "slicesim model `{}`: at most {MAX_K} injected events per run (asked for {k}), as the scenario key explore.max_interrupts",
            self.name
        );
        let mut setup = self.setup(&l, k);
        setup.max_schedules = how.max_schedules;
        let seed = how.seed.unwrap_or(self.seed);
        let jobs = how
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let report = match how.mode {
            Mode::Exhaustive { .. } => explore::exhaustive(&l, &setup, seed, jobs),
            Mode::Random { runs, .. } => explore::random(&l, &setup, seed, runs, None, jobs),
            Mode::Pct { runs, depth } => explore::random(&l, &setup, seed, runs, Some(depth), jobs),
        }
        .unwrap_or_else(|e| panic!("slicesim model `{}`: {e}", self.name));
        match &report.first_failure {
            None => Ok(summary(&report)),
            Some((s, v)) => Err(Box::new(self.failure(&l, &setup, &report, s, &v[0], &how))),
        }
    }

    fn failure(
        &self,
        l: &Loaded,
        setup: &Setup,
        report: &Report,
        s: &Schedule,
        first: &Violation,
        how: &Explore,
    ) -> Failure {
        let shrunk = explore::shrink(l, setup, s, first)
            .unwrap_or_else(|e| panic!("slicesim model `{}`: shrinking: {e}", self.name));
        let st = Stamped {
            stamp: explore::stamp(l),
            schedule: shrunk.schedule.clone(),
        };
        let (_, r) = explore::run_schedule(l, setup, &st.schedule)
            .unwrap_or_else(|e| panic!("slicesim model `{}`: {e}", self.name));
        let schedule = st.to_string();
        let text = self.report(
            &shrunk.violations,
            &schedule,
            &r,
            &how.describe(),
            report.runs,
            report.failing_runs,
        );
        Failure {
            violation: shrunk.violations.first().cloned().unwrap_or(first.clone()),
            violations: shrunk.violations,
            schedule,
            runs: report.runs,
            failing_runs: report.failing_runs,
            report: text,
        }
    }

    fn report(
        &self,
        violations: &[Violation],
        schedule: &str,
        r: &RunResult,
        mode: &str,
        runs: u64,
        failing: u64,
    ) -> String {
        let mut s = String::new();
        let first = violations.first().map_or("?", |v| v.property);
        let _ = writeln!(
            s,
            "slicesim model `{}`: `{first}` broken ({failing} of {runs} runs failed; {mode})",
            self.name
        );
        for v in violations {
            let _ = writeln!(s, "  violation: {v}");
        }
        let _ = writeln!(s, "shrunk schedule:\n  {schedule}");
        let _ = writeln!(s, "tasks at the end:");
        for t in r.sim.tasks() {
            let exit = t.exit.as_ref().map_or("running".into(), |e| e.to_string());
            let counters: Vec<String> =
                t.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "  {:<16} {:<28} {}", t.name, exit, counters.join(" "));
        }
        let timeline =
            crate::explain::explain_with(&r.sim, crate::explain::Options { brief: true });
        let lines: Vec<&str> = timeline.lines().collect();
        let _ = writeln!(s, "timeline of the failing run (slicesim explain --brief):");
        for l in lines.iter().take(REPORT_TIMELINE_LINES) {
            let _ = writeln!(s, "  {l}");
        }
        if lines.len() > REPORT_TIMELINE_LINES {
            let _ = writeln!(
                s,
                "  … {} more lines (replay it and print `run.explain()`)",
                lines.len() - REPORT_TIMELINE_LINES
            );
        }
        let _ = writeln!(
            s,
            "replay: the same model with `.replay({schedule:?}, |run| ...)` in place of `.explore(...)`"
        );
        s
    }
}

fn summary(r: &Report) -> Summary {
    Summary {
        runs: r.runs,
        truncated: r.truncated,
        reached: r.reached.iter().map(|(k, v)| (*k, *v)).collect(),
    }
}

/// A spawned task's placement as scenario keys.
fn spawn_keys(how: &Spawn) -> String {
    let mut keys = String::new();
    if let Some(cpus) = &how.cpus {
        let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
        let _ = writeln!(keys, "cpus = [{}]", list.join(", "));
    }
    if let Some(p) = how.fifo {
        let _ = writeln!(keys, "policy = \"fifo:{p}\"");
    }
    if how.nice != 0 {
        let _ = writeln!(keys, "nice = {}", how.nice);
    }
    if how.start_ns != 0 {
        let _ = writeln!(keys, "start = {}", how.start_ns);
    }
    keys
}
