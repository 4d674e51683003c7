//! Scenario files: the machine, the tasks, the interrupt sources, the duration, the seed and
//! the expectations of one simulated situation, in TOML.
//!
//! Parsing is strict: unknown keys are errors, every error names the file, line and column,
//! and a misspelt key, program or value comes with the closest valid one. Sizes are bounded
//! so a typo cannot ask for an out-of-memory run.

mod build;
mod error;
mod expect;
pub mod script;
mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::programs::Programs;

pub use build::{
    build, build_tuned, build_with, key_pos, run, run_streamed, run_with_progress, Built, LogSink,
    RunOptions, RunResult, SLICES,
};
pub use error::{closest, ScenarioError};
pub use expect::{evaluate, evaluate_streamed, Check, CheckOutcome, LogWatch, Range};
pub use units::Nanos;

/// Most CPUs, tasks (after `count`), interrupt sources and simulated time a scenario may ask for.
pub mod limits {
    /// CPUs.
    pub const CPUS: usize = 1024;
    /// Tasks after expanding `count`.
    pub const TASKS: u64 = 100_000;
    /// Interrupt sources and signals.
    pub const SOURCES: usize = 10_000;
    /// Simulated duration, ns (one hour).
    pub const DURATION_NS: u64 = 3_600_000_000_000;
    /// Script steps per task.
    pub const STEPS: usize = 10_000;
}

/// A parsed scenario file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario is.
    pub scenario: Meta,
    /// The simulated machine and kernel (every key optional).
    #[serde(default)]
    pub machine: Machine,
    /// Tasks, `[[task]]`.
    #[serde(default, rename = "task")]
    #[schemars(with = "Vec<TaskDef>")]
    pub tasks: Vec<Spanned<TaskDef>>,
    /// Interrupt sources, `[[irq]]`.
    #[serde(default, rename = "irq")]
    #[schemars(with = "Vec<IrqDef>")]
    pub irqs: Vec<Spanned<IrqDef>>,
    /// Signals sent from outside, `[[signal]]`.
    #[serde(default, rename = "signal")]
    #[schemars(with = "Vec<SignalDef>")]
    pub signals: Vec<Spanned<SignalDef>>,
    /// Assertions checked after the run.
    #[serde(default)]
    pub expect: Expect,
    /// What `slicesim explore` searches and checks, `[explore]`.
    #[serde(default)]
    pub explore: ExploreDef,
    /// Budgets of a run, `[budget]` (docs/scenarios.md).
    #[serde(default)]
    pub budget: crate::budget::BudgetDef,
}

/// `[explore]`: the search space and the properties of `slicesim explore`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExploreDef {
    /// Tasks whose user operations are injection points (default: every task).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Most injected events in one run (default: 2).
    pub max_interrupts: Option<u32>,
    /// Kinds that may be injected: `irq`, `irq+resched`, `irq+lazy`, `remote-resched`,
    /// `timer`, `membarrier`, `signal`, `migrate` (default: all).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Tasks whose code claims to follow the protocol, so a SIGSEGV is a violation
    /// (default: every task not running `misbehave`).
    pub correct: Option<Vec<String>>,
    /// Final-state conditions, `[[explore.condition]]`.
    #[serde(default, rename = "condition")]
    pub conditions: Vec<ConditionDef>,
}

/// `[[explore.condition]]`: a named final-state condition with an optional expected verdict.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionDef {
    /// Name used in reports.
    pub name: String,
    /// `always` (an invariant: a run where it fails is a counterexample), `sometimes` (a
    /// goal: some run must reach it), `never`; absent: only reported.
    pub expect: Option<VerdictName>,
    /// The condition, with the keys of `[expect]`: `[explore.condition.holds]`.
    pub holds: Expect,
}

/// The verdict of a condition over an exhaustive exploration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerdictName {
    /// Held in every run.
    Always,
    /// Held in some runs, not all.
    Sometimes,
    /// Held in no run.
    Never,
}

impl VerdictName {
    /// `Always`, `Sometimes`, `Never`.
    pub fn title(self) -> &'static str {
        match self {
            VerdictName::Always => "Always",
            VerdictName::Sometimes => "Sometimes",
            VerdictName::Never => "Never",
        }
    }
}

/// `[scenario]`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Short name.
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Spec sections exercised, e.g. `["3.2", "5 R2"]`.
    #[serde(default)]
    pub spec: Vec<String>,
    /// Simulated run time (e.g. `"100us"`, `"5s"`, or an integer in ns).
    pub duration: Nanos,
    /// Seed of the random generator.
    #[serde(default)]
    pub seed: u64,
}

/// `[machine]`: every knob of `rseq_sim::SimConfig`; absent keys keep the defaults.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// A machine profile (`crate::profile`): a bundled name (`default`, `qemu-icount0`, `qemu-icount0-2cpus`)
    /// or a profile file, relative to the scenario's folder; its cost knobs apply where
    /// this table does not set them (default: none, the built-in figures).
    pub profile: Option<String>,
    /// CPUs (1..=1024) (default: 2).
    pub cpus: Option<usize>,
    /// Tick rate, Hz; 0 = no tick (default: 1000).
    pub hz: Option<u32>,
    /// `none`, `voluntary`, `full`, `lazy`, `rt` (default: full).
    pub preempt: Option<PreemptName>,
    /// `v1`, `7.0`, `7.2` (default: 7.2; `merged` and `post-merge` are the older names of
    /// 7.0 and 7.2).
    pub revision: Option<RevisionName>,
    /// `CONFIG_RSEQ_SLICE_EXTENSION` (default: true).
    pub config_slice_ext: Option<bool>,
    /// Boot parameter `rseq_slice_ext=` (default: true).
    pub slice_ext_boot: Option<bool>,
    /// debugfs `rseq/slice_ext_nsec`, ns (default: revision default: 5000; V1 30000): a
    /// number, or the text written to the file (`"7000\n"`), parsed as the kernel does.
    pub slice_ext_nsec: Option<SliceExtNsec>,
    /// Boot parameter `rseq_debug=` (default: false).
    pub rseq_debug: Option<bool>,
    /// `little` or `big` (default: little).
    pub endian: Option<EndianName>,
    /// `AVAILABLE` with the boot switch off: `advertise` (7.0.0) or `hide` (7.0.y)
    /// (default: per revision).
    pub available_when_boot_disabled: Option<AvailName>,
    /// Equal-time order: `fifo` or `seeded` (default: fifo).
    pub tie_break: Option<TieName>,
    /// Interrupt entry to exit work (default: 300ns).
    pub irq_latency: Option<Nanos>,
    /// Syscall entry to exit work (default: 150ns).
    pub syscall: Option<Nanos>,
    /// Context switch (default: 800ns).
    pub ctx_switch: Option<Nanos>,
    /// IPI latency (default: 500ns).
    pub ipi_latency: Option<Nanos>,
    /// vDSO clock read (default: 20ns).
    pub clock_read: Option<Nanos>,
    /// Access to the rseq area (default: 1ns).
    pub mem_access: Option<Nanos>,
    /// Access to a shared word (default: 5ns).
    pub shared_access: Option<Nanos>,
    /// The fair class: `eevdf` (Linux 6.6 and later, every modelled revision) or `cfs`
    /// (the simulator's first, CFS-like approximation) (default: cfs).
    pub fair_class: Option<FairName>,
    /// Fair-class base slice, as the kernel runs with it (default: 0, the kernel's own).
    pub sched_base_slice: Option<Nanos>,
    /// Wakeup preemption granularity (default: 1ms).
    pub wakeup_gran: Option<Nanos>,
    /// Sleeper credit (default: 3ms).
    pub sleeper_credit: Option<Nanos>,
    /// Offset of the grant clock from the hrtimer clock, ns, may be negative (default: 0).
    pub fast_clock_skew_ns: Option<i64>,
    /// Timer slack of fair-class sleeps (default: 50us).
    pub timer_slack: Option<Nanos>,
    /// Seeded extra delay of sleep timers (default: 750ns).
    pub timer_jitter: Option<Nanos>,
    /// Measured sleep-timer delays, one drawn per sleep in place of `timer_jitter`
    /// (default: none).
    pub timer_jitters: Option<Vec<Nanos>>,
    /// Syscall entry to the rseq slice work (spec §13.5) (default: 0).
    pub syscall_work_delay: Option<Nanos>,
    /// Ticks measured for `tick_stalls` (default: 0).
    pub tick_stall_ticks: Option<u64>,
    /// An emulator's vCPU stalls after a tick: of `tick_stall_ticks` ticks, these were
    /// followed by a stall of that length (default: none).
    pub tick_stalls: Option<Vec<Nanos>>,
    /// Newidle pull balancing (default: true).
    pub load_balance: Option<bool>,
    /// Leaving idle for a task, before the switch (default: 0).
    pub idle_exit: Option<Nanos>,
    /// The scheduler's hrtick: EEVDF reschedules a task at its virtual deadline, not at
    /// the next tick (`sched_feat(HRTICK)`, on in Linux 7.2; default: true).
    pub hrtick: Option<bool>,
    /// Per-task budget of user steps (default: unlimited).
    pub max_user_steps: Option<u64>,
    /// Most live coroutine stacks (default: 30000).
    pub max_threads: Option<usize>,
}

/// `slice_ext_nsec`: nanoseconds, or the text `echo` would write to debugfs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum SliceExtNsec {
    /// A number of nanoseconds.
    Ns(u32),
    /// The bytes written to `rseq/slice_ext_nsec`: `kstrtouint(…, 10, …)` must accept them
    /// (digits, an optional `+`, one trailing newline), else the write fails with `EINVAL`.
    Text(String),
}

macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
        pub enum $name {
            $(
                #[doc = $text]
                #[serde(rename = $text)]
                $variant,
            )*
        }
        impl $name {
            /// Every accepted spelling.
            pub const NAMES: &'static [&'static str] = &[$($text),*];

            /// The spelling used in scenario files.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}

names!(
    /// A preemption model.
    PreemptName { None = "none", Voluntary = "voluntary", Full = "full", Lazy = "lazy", Rt = "rt" }
);
names!(
    /// A protocol revision.
    RevisionName {
        V1 = "v1",
        Linux70 = "7.0",
        Linux72 = "7.2",
        Merged = "merged",
        PostMerge = "post-merge",
    }
);

impl RevisionName {
    /// The revision this spelling names (`merged` is `7.0`, `post-merge` is `7.2`).
    pub fn revision(self) -> rseq_abi::Revision {
        match self {
            RevisionName::V1 => rseq_abi::Revision::V1,
            RevisionName::Linux70 | RevisionName::Merged => rseq_abi::Revision::Merged,
            RevisionName::Linux72 | RevisionName::PostMerge => rseq_abi::Revision::PostMerge,
        }
    }
}
names!(
    /// A byte order.
    EndianName { Little = "little", Big = "big" }
);
names!(
    /// An answer to spec §13.2.
    AvailName { Advertise = "advertise", Hide = "hide" }
);
names!(
    /// A fair-class model.
    FairName { Eevdf = "eevdf", Cfs = "cfs" }
);
names!(
    /// An equal-time ordering.
    TieName { Fifo = "fifo", Seeded = "seeded" }
);
names!(
    /// A program of the built-in library.
    ProgramName {
        Selftest = "selftest",
        SelftestNoise = "selftest_noise",
        Spinlock = "spinlock",
        Misbehave = "misbehave",
        Script = "script",
        Sleeper = "sleeper",
        Spinner = "spinner",
        PercpuCounter = "percpu_counter",
    }
);
names!(
    /// How a task enables the extension.
    EnableName { Prctl = "prctl", DefaultOn = "default_on", Off = "off" }
);
names!(
    /// What an injected interrupt is.
    IrqKindName {
        Device = "device",
        DeviceResched = "device_resched",
        DeviceReschedLazy = "device_resched_lazy",
        Exception = "exception",
        ReschedIpi = "resched_ipi",
        MembarrierIpi = "membarrier_ipi",
    }
);

/// `[[task]]`: one task (or `count` identical ones) running a built-in program.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskDef {
    /// Name (unique; with `count` > 1 the copies are `name.0`, `name.1`, …).
    pub name: String,
    /// The program: `selftest`, `selftest_noise`, `spinlock`, `misbehave`, `script`,
    /// `sleeper`, `spinner`, or one registered with
    /// [`Programs::with`](crate::programs::Programs::with).
    pub program: String,
    /// A registered program's parameters, deserialized into its own type (built-in
    /// programs take theirs as keys of the task instead).
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub params: Option<toml::Value>,
    /// How many copies (default: 1).
    #[serde(default)]
    pub count: Option<u64>,
    /// Allowed CPUs (default: all).
    #[serde(default)]
    pub cpus: Option<Vec<usize>>,
    /// `normal` or `fifo:N` (SCHED_FIFO priority N) (default: normal).
    #[serde(default)]
    pub policy: Option<String>,
    /// Nice value of a `normal` task, -20..=19 (default: 0).
    #[serde(default)]
    pub nice: Option<i8>,
    /// Start time (default: 0).
    #[serde(default)]
    pub start: Option<Nanos>,
    /// A thread of the process of this (earlier) task instead of a new process; a task
    /// with `count` > 1 is named by copy (`name.0`, `name.1`, …).
    #[serde(default)]
    pub thread_of: Option<String>,
    /// Registration length (default: 32; post-merge 64).
    #[serde(default)]
    pub rseq_len: Option<u32>,

    // ---- program parameters (each program says which apply) ----
    /// selftest, selftest_noise: `n2_2_50`, `n50_2_50`, `n2_2_50_no_yield` (default: n2_2_50).
    #[serde(default)]
    pub variant: Option<String>,
    /// selftest: main-loop duration (overrides the variant's 5 s).
    #[serde(default)]
    pub total: Option<Nanos>,
    /// selftest, selftest_noise: the shared `run` word (default: 0).
    #[serde(default)]
    pub run_word: Option<u32>,
    /// spinlock: lock word (default: 0); protected counter is `lock_word + 1`.
    #[serde(default)]
    pub lock_word: Option<u32>,
    /// spinlock, misbehave, sleeper, spinner: busy time per section / hold / burst.
    #[serde(default)]
    pub hold: Option<Nanos>,
    /// spinlock: think time between acquisitions; sleeper: sleep time.
    #[serde(default)]
    pub think: Option<Nanos>,
    /// spinlock: stop after this long (default: the scenario duration).
    #[serde(default)]
    pub run: Option<Nanos>,
    /// spinlock: use the extension (default: true).
    #[serde(default)]
    pub use_ext: Option<bool>,
    /// misbehave: which rule to break (`never_yields`, `writes_granted`, `tampers_flags`,
    /// `request_while_granted`, `syscall_in_grant`, `reserved_bytes`).
    #[serde(default)]
    pub misbehavior: Option<String>,
    /// misbehave, sleeper, spinner: iterations (default: misbehave 100; sleeper/spinner unlimited).
    #[serde(default)]
    pub iterations: Option<u64>,
    /// misbehave: `prctl`, `default_on`, `off` (default: prctl) (spinlock uses `use_ext`).
    #[serde(default)]
    pub enable: Option<EnableName>,
    /// script: the steps (see `docs/scenarios.md`).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub steps: Option<Vec<Spanned<String>>>,
}

impl TaskDef {
    /// The built-in program this task runs, if it runs one (not a registered program).
    pub fn builtin(&self) -> Option<ProgramName> {
        ProgramName::NAMES
            .iter()
            .position(|n| *n == self.program)
            .map(|i| BUILTIN_PROGRAMS[i])
    }
}

/// The built-in programs, in the order of [`ProgramName::NAMES`].
const BUILTIN_PROGRAMS: [ProgramName; 8] = [
    ProgramName::Selftest,
    ProgramName::SelftestNoise,
    ProgramName::Spinlock,
    ProgramName::Misbehave,
    ProgramName::Script,
    ProgramName::Sleeper,
    ProgramName::Spinner,
    ProgramName::PercpuCounter,
];

/// `[[irq]]`: an interrupt source.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IrqDef {
    /// Target CPU.
    pub cpu: u32,
    /// What arrives.
    pub kind: IrqKindName,
    /// One-shot time.
    #[serde(default)]
    pub at: Option<Nanos>,
    /// Periodic: the period.
    #[serde(default)]
    pub every: Option<Nanos>,
    /// Poisson: events per simulated second.
    #[serde(default)]
    pub rate_hz: Option<f64>,
    /// First possible firing (periodic/Poisson) (default: 0).
    #[serde(default)]
    pub start: Option<Nanos>,
    /// No firing from this time on (periodic/Poisson) (default: never).
    #[serde(default)]
    pub end: Option<Nanos>,
}

/// `[[signal]]`: a signal sent from outside at a time.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalDef {
    /// Target task name.
    pub task: String,
    /// When.
    pub at: Nanos,
    /// Signal number (e.g. 10 = SIGUSR1, 11 = SIGSEGV).
    pub signo: i32,
}

/// `[expect]`: assertions on the finished run.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `s_granted` summed over CPUs.
    pub granted: Option<Range>,
    /// `s_expired`.
    pub expired: Option<Range>,
    /// `s_revoked`.
    pub revoked: Option<Range>,
    /// `s_yielded`.
    pub yielded: Option<Range>,
    /// `s_aborted`.
    pub aborted: Option<Range>,
    /// Per task, by name: `[expect.task.NAME]`.
    #[serde(default)]
    pub task: BTreeMap<String, TaskExpect>,
    /// Log lines that must (or must not) appear: `[[expect.log]]`.
    #[serde(default)]
    pub log: Vec<LogExpect>,
}

/// `[expect.task.NAME]`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskExpect {
    /// `exited`, `killed` (any signal), `sigsegv`, `signal N`, `panicked`, `spawn_failed`,
    /// `running` (still alive at the end).
    pub exit: Option<String>,
    /// Substring of the recorded fault cause (e.g. `"debug check"`).
    pub cause: Option<String>,
    /// The program's counters.
    #[serde(default)]
    pub counters: BTreeMap<String, Range>,
}

/// `[[expect.log]]`: a substring of the text log's event part.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogExpect {
    /// Text that must appear in event lines (`count` times, default at least once).
    pub contains: Option<String>,
    /// Text that must not appear.
    pub absent: Option<String>,
    /// How many matching lines (default: at least 1).
    pub count: Option<Range>,
    /// Texts that must appear in this order (in lines not necessarily adjacent).
    pub sequence: Option<Vec<String>>,
}

/// A scenario read from a file, with its source kept for error positions.
#[derive(Clone)]
pub struct Loaded {
    /// Where it came from.
    pub path: PathBuf,
    /// The text (after `--set` overrides).
    pub source: String,
    /// The parsed scenario.
    pub scenario: Scenario,
    /// Each task's parsed `script` steps (by task index), parsed once: explorers build the
    /// same scenario thousands of times. Each build gets its own copy: a shared `Arc`'s
    /// count bounced between the explorer's threads on every run.
    pub(crate) scripts: Vec<Option<script::Body>>,
    /// Each task's parsed `params` (by task index) when it runs a registered program.
    pub(crate) params: Vec<Option<crate::programs::Params>>,
    /// The programs its tasks may name.
    pub programs: crate::programs::Programs,
    /// The budgets in force: the defaults and the scenario's `[budget]`; a command line
    /// applies its `--max-*` flags with [`Loaded::set_budget`].
    pub budget: crate::budget::Budget,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("path", &self.path)
            .field("scenario", &self.scenario)
            .field("programs", &self.programs)
            .finish_non_exhaustive()
    }
}

impl Loaded {
    /// Apply `--max-*` flags over the scenario's `[budget]`.
    pub fn set_budget(&mut self, args: &crate::budget::BudgetArgs) {
        self.budget = crate::budget::Budget::resolve(
            &self.scenario.budget,
            self.scenario.machine.max_user_steps,
            args,
        );
    }

    /// Where a stopped task was, for its outcome line: the `script` step its program
    /// announced last (`SimPlatform::at_step`), with its line in the file, e.g.
    /// ``[at script step 3 `load granted`, line 12]``. A forked child or thread (`NAME.child`,
    /// `NAME.thread`) runs steps of its parent's script. `None` for other programs.
    pub fn step_note(&self, task: &rseq_sim::Task) -> Option<String> {
        let step = task.step? as usize;
        let mut name = task.name.as_str();
        let def = loop {
            if let Some(t) = self
                .scenario
                .tasks
                .iter()
                .find(|t| t.get_ref().name == name)
            {
                break t.get_ref();
            }
            name = name
                .strip_suffix(".child")
                .or_else(|| name.strip_suffix(".thread"))?;
        };
        let line = def.steps.as_ref()?.get(step)?;
        let at = line.span().start.min(self.source.len());
        let line_no = self.source[..at].matches('\n').count() + 1;
        Some(format!(
            "[at script step {} `{}`, line {line_no}]",
            step + 1,
            line.get_ref().trim()
        ))
    }

    /// The description as printed: its first line, at most [`DESCRIPTION_CHARS`]
    /// characters (a long one is cut with `…`).
    pub fn short_description(&self) -> String {
        let d = self.scenario.scenario.description.trim();
        let first = d.lines().next().unwrap_or("");
        let mut out: String = first.chars().take(DESCRIPTION_CHARS).collect();
        if out.len() < d.len() {
            out.push('…');
        }
        out
    }
}

/// Longest description printed by a run.
pub const DESCRIPTION_CHARS: usize = 200;

/// Read, override and parse a scenario file (at most
/// [`MAX_FILE_MIB`](crate::budget::defaults::MAX_FILE_MIB) MiB).
pub fn load(path: &Path, sets: &[String]) -> Result<Loaded, ScenarioError> {
    load_limited(path, sets, crate::budget::defaults::MAX_FILE_MIB << 20)
}

/// [`load`] with a size limit, bytes: a larger file is refused before it is read.
pub fn load_limited(path: &Path, sets: &[String], max_bytes: u64) -> Result<Loaded, ScenarioError> {
    load_with(path, sets, max_bytes, &Programs::builtin())
}

/// [`load_limited`] with the programs its tasks may name.
pub fn load_with(
    path: &Path,
    sets: &[String],
    max_bytes: u64,
    programs: &Programs,
) -> Result<Loaded, ScenarioError> {
    let io = |e: std::io::Error| ScenarioError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > max_bytes {
        return Err(ScenarioError::Invalid {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!(
                "the file is {size} bytes, over the limit of {max_bytes} bytes \
                 ({} MiB); raise it with --max-file-mib",
                max_bytes >> 20
            ),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let source = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let good = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let prefix = std::str::from_utf8(&bytes[..good]).expect("valid up to here");
            return Err(ScenarioError::at(
                path,
                prefix,
                good,
                format!(
                    "invalid UTF-8 (byte {:#04x}): a scenario file is UTF-8 text",
                    bytes[good]
                ),
            ));
        }
    };
    parse_with(path, &source, sets, programs)
}

/// Count the `[[table]]` headers before parsing: a file of a million `[[irq]]` tables is
/// refused at the cost of one scan, not after building all of them.
fn count_tables(path: &Path, source: &str) -> Result<(), ScenarioError> {
    let (mut tasks, mut sources, mut others) = (0u64, 0usize, 0usize);
    let mut at = 0;
    for line in source.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("[[") {
            let name = rest.split("]]").next().unwrap_or("").trim();
            let (n, limit, what) = match name {
                "task" => {
                    tasks += 1;
                    (tasks as usize, limits::TASKS as usize, "[[task]] tables")
                }
                "irq" | "signal" => {
                    sources += 1;
                    (sources, limits::SOURCES, "[[irq]] and [[signal]] tables")
                }
                _ => {
                    others += 1;
                    (others, limits::SOURCES, "other [[...]] tables")
                }
            };
            if n > limit {
                return Err(ScenarioError::at(
                    path,
                    source,
                    at + (line.len() - t.len()),
                    format!("more than {limit} {what}"),
                ));
            }
        }
        at += line.len();
    }
    Ok(())
}

/// Parse scenario text (with `key=value` overrides applied to the document first).
pub fn parse(path: &Path, source: &str, sets: &[String]) -> Result<Loaded, ScenarioError> {
    parse_with(path, source, sets, &Programs::builtin())
}

/// [`parse`] with the programs its tasks may name.
pub fn parse_with(
    path: &Path,
    source: &str,
    sets: &[String],
    programs: &Programs,
) -> Result<Loaded, ScenarioError> {
    count_tables(path, source)?;
    let original = source;
    let with_profile = profile_sets(path, source, sets)?;
    let sets: &[String] = &with_profile;
    let source = if sets.is_empty() {
        source.to_string()
    } else {
        error::apply_sets(path, source, sets)?
    };
    let scenario: Scenario =
        toml::from_str(&source).map_err(|e| ScenarioError::from_toml(path, &source, &e))?;
    let mut loaded = Loaded {
        path: path.to_path_buf(),
        source,
        budget: crate::budget::Budget::resolve(
            &scenario.budget,
            scenario.machine.max_user_steps,
            &Default::default(),
        ),
        scenario,
        scripts: Vec::new(),
        params: Vec::new(),
        programs: programs.clone(),
    };
    build::validate(&loaded).map_err(|e| relocate(e, original, &loaded.source, sets))?;
    loaded.params =
        build::parse_params(&loaded).map_err(|e| relocate(e, original, &loaded.source, sets))?;
    loaded.scripts = build::parse_scripts(&loaded.scenario);
    Ok(loaded)
}

/// The `--set` overrides that apply the scenario's machine profile (`[machine] profile`,
/// or a `machine.profile` override, the last one winning) for the knobs its `[machine]`
/// does not set, followed by `sets`: a `--set` still overrides a profile's knob.
fn profile_sets(path: &Path, source: &str, sets: &[String]) -> Result<Vec<String>, ScenarioError> {
    let from_sets = sets.iter().rev().find_map(|s| {
        let (k, v) = s.split_once('=')?;
        (k.trim() == "machine.profile").then(|| v.trim().trim_matches('"').to_string())
    });
    let doc: toml::Table = match toml::from_str(source) {
        Ok(d) => d,
        // The parse proper reports it with its position.
        Err(_) => return Ok(sets.to_vec()),
    };
    let machine = doc
        .get("machine")
        .and_then(|m| m.as_table())
        .cloned()
        .unwrap_or_default();
    let Some(spec) = from_sets.or_else(|| {
        machine
            .get("profile")
            .and_then(|p| p.as_str())
            .map(String::from)
    }) else {
        return Ok(sets.to_vec());
    };
    let at = source.find("profile").unwrap_or(0);
    let profile = crate::profile::Profile::load(&spec, path.parent())
        .map_err(|e| ScenarioError::at(path, source, at, format!("machine.profile: {e}")))?;
    let overridden: Vec<&str> = sets
        .iter()
        .filter_map(|s| s.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    let mut out: Vec<String> = profile
        .sets_for(&machine)
        .into_iter()
        .filter(|s| {
            let k = s.split_once('=').map_or("", |(k, _)| k);
            !overridden.contains(&k)
        })
        .collect();
    out.extend(sets.iter().cloned());
    Ok(out)
}

/// With `--set` overrides the document was rewritten, so a position in it is not one in
/// the file: name the override when the offending key is one, else find the line in the
/// file, else give no position.
fn relocate(e: ScenarioError, original: &str, rewritten: &str, sets: &[String]) -> ScenarioError {
    let ScenarioError::Invalid {
        path,
        line,
        column,
        message,
    } = e
    else {
        return e;
    };
    if sets.is_empty() {
        return ScenarioError::Invalid {
            path,
            line,
            column,
            message,
        };
    }
    let text = rewritten
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim();
    let key = text.split('=').next().unwrap_or("").trim();
    let set = sets.iter().find(|s| {
        let k = s.split('=').next().unwrap_or("").trim();
        !key.is_empty() && (k == key || k.ends_with(&format!(".{key}")))
    });
    if let Some(set) = set {
        return ScenarioError::Invalid {
            path,
            line: 0,
            column: 0,
            message: format!("--set {set}: {message}"),
        };
    }
    match original
        .lines()
        .position(|l| !text.is_empty() && l.trim() == text)
    {
        Some(i) => ScenarioError::Invalid {
            path,
            line: i + 1,
            column,
            message,
        },
        None => ScenarioError::Invalid {
            path,
            line: 0,
            column: 0,
            message,
        },
    }
}

/// The JSON schema of the scenario format, generated from the same types.
pub fn json_schema() -> String {
    json_schema_with(&Programs::builtin())
}

/// The JSON schema of the scenario format with `programs`: `program` is one of their
/// names, and a task running a registered program has that program's `params` schema.
pub fn json_schema_with(programs: &Programs) -> String {
    let mut root =
        serde_json::to_value(schemars::schema_for!(Scenario)).expect("schema serializes");
    let defs = root
        .get_mut("$defs")
        .and_then(|d| d.as_object_mut())
        .expect("the schema has definitions");
    let mut rules = Vec::new();
    for (name, mut schema) in programs.schemas() {
        // The parameter type's own definitions join the document's, under its name.
        let prefix = format!("{name}.");
        if let Some(own) = schema.as_object_mut().and_then(|o| o.remove("$defs")) {
            for (k, v) in own.as_object().into_iter().flatten() {
                defs.insert(format!("{prefix}{k}"), v.clone());
            }
        }
        if let Some(o) = schema.as_object_mut() {
            o.remove("$schema");
        }
        let text = serde_json::to_string(&schema).expect("serializes");
        let text = text.replace("\"#/$defs/", &format!("\"#/$defs/{prefix}"));
        let schema: serde_json::Value = serde_json::from_str(&text).expect("round trip");
        rules.push(serde_json::json!({
            "if": { "properties": { "program": { "const": name } }, "required": ["program"] },
            "then": { "properties": { "params": schema } }
        }));
    }
    let task = defs
        .get_mut("TaskDef")
        .and_then(|t| t.as_object_mut())
        .expect("the schema defines TaskDef");
    let names = programs.names();
    task["properties"]["program"] = serde_json::json!({
        "description": "The program: a built-in one or one the tool registered.",
        "type": "string",
        "enum": names,
    });
    if !rules.is_empty() {
        task.insert("allOf".into(), serde_json::Value::Array(rules));
    }
    serde_json::to_string_pretty(&root).expect("schema serializes")
}
