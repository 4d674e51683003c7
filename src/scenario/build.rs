//! From a parsed scenario to a finished simulation: validation with positions, the
//! machine configuration, the tasks and their programs, interrupt sources and signals.

use std::collections::BTreeMap;

use rseq_abi::programs::misbehave::{self, MisbehaveParams, Misbehavior};
use rseq_abi::programs::selftest::{selftest_main, selftest_noise, SelftestParams};
use rseq_abi::programs::spinlock::{spinlock_main, SpinlockParams, WaitMode};
use rseq_abi::{CpuSet, EnableMode, Platform, SharedWord, Syscall};

// `Platform` brings `syscall`/`burn` into scope for the inline programs.
use rseq_sim::config::AvailableWhenBootDisabled;
use rseq_sim::*;

use super::*;
use crate::budget::{Budget, CHUNK_EVENTS};
use rseq_sim::LogRecord;

/// A finished run: the simulation, the task names, and the expectation checks.
pub struct RunResult {
    /// The simulation after `duration`.
    pub sim: Simulation,
    /// Task name → task id (after `count` expansion).
    pub names: BTreeMap<String, u32>,
    /// Every expectation with its verdict.
    pub checks: Vec<Check>,
    /// Log records the run produced (kept or streamed).
    pub logged: u64,
    /// Most log records held in memory at once: the whole log when it was kept, at most
    /// about one chunk's when it streamed.
    pub peak_kept: u64,
}

impl RunResult {
    /// Did every expectation hold?
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.outcome == CheckOutcome::Pass)
    }
}

/// Byte offset of the first `key =` line in `source` (for errors about optional keys).
pub fn key_pos(source: &str, key: &str) -> usize {
    let mut at = 0;
    for line in source.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return at + (line.len() - t.len());
            }
        }
        at += line.len();
    }
    0
}

fn parse_policy(s: &str) -> Result<Policy, String> {
    match s {
        "normal" | "other" => Ok(Policy::Normal),
        _ => match s.strip_prefix("fifo:").map(str::parse::<u8>) {
            Some(Ok(p)) if (1..=99).contains(&p) => Ok(Policy::Fifo(p)),
            _ => Err(format!(
                "policy `{s}`: use `normal` or `fifo:N` with N in 1..=99"
            )),
        },
    }
}

/// An `[expect]` table (or a condition's `holds`): known tasks, valid exits, log checks
/// with exactly one of `contains`, `absent` or `sequence`.
fn validate_expect(
    l: &Loaded,
    e: &Expect,
    table: &str,
    names: &[String],
) -> Result<(), ScenarioError> {
    let (path, src) = (&l.path, &l.source);
    let err = |at: usize, m: String| Err(ScenarioError::at(path, src, at, m));
    for (name, te) in &e.task {
        let known = names
            .iter()
            .any(|x| x == name || name.starts_with(&format!("{x}.")));
        if !known {
            let hint = error::closest(name, &names.iter().map(String::as_str).collect::<Vec<_>>())
                .map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
            return err(
                key_pos(src, &format!("[{table}.task.{name}]")),
                format!("{table}: expectation for unknown task `{name}`{hint}"),
            );
        }
        if let Some(x) = &te.exit {
            expect::parse_exit(x).map_err(|m| {
                ScenarioError::at(path, src, 0, format!("{table}.task.{name}.exit: {m}"))
            })?;
        }
    }
    for le in &e.log {
        let given = [
            le.contains.is_some(),
            le.absent.is_some(),
            le.sequence.is_some(),
        ];
        if given.iter().filter(|&&g| g).count() != 1 {
            return err(
                0,
                format!(
                    "each [[{table}.log]] needs exactly one of `contains`, `absent` or `sequence`"
                ),
            );
        }
    }
    Ok(())
}

/// Parse every `script` task's steps (the scenario is validated).
pub(super) fn parse_scripts(s: &Scenario) -> Vec<Option<script::Body>> {
    s.tasks
        .iter()
        .map(|t| {
            let lines: Vec<&str> = t
                .get_ref()
                .steps
                .iter()
                .flatten()
                .map(|s| s.get_ref().as_str())
                .collect();
            (t.get_ref().builtin() == Some(ProgramName::Script))
                .then(|| script::parse(&lines).expect("validated"))
        })
        .collect()
}

/// `[explore]`: task names exist, kinds are known, conditions have distinct names.
fn validate_explore(l: &Loaded) -> Result<(), ScenarioError> {
    let (s, e) = (&l.scenario, &l.scenario.explore);
    let err = |key: &str, m: String| {
        Err(ScenarioError::at(
            &l.path,
            &l.source,
            key_pos(&l.source, key),
            m,
        ))
    };
    let names: Vec<&str> = s.tasks.iter().map(|t| t.get_ref().name.as_str()).collect();
    let none = Vec::new();
    let lists = [
        ("tasks", &e.tasks),
        ("correct", e.correct.as_ref().unwrap_or(&none)),
    ];
    for (key, list) in lists {
        for n in list {
            if !names.contains(&n.as_str()) {
                let hint = super::error::closest(n, &names)
                    .map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
                return err(key, format!("explore.{key}: no task named `{n}`{hint}"));
            }
        }
    }
    let kinds: Vec<&str> = Injection::ALL.iter().map(|k| k.name()).collect();
    for k in &e.kinds {
        if Injection::parse(k).is_none() {
            let hint = super::error::closest(k, &kinds)
                .map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
            return err(
                "kinds",
                format!(
                    "explore.kinds: unknown kind `{k}`{hint}; kinds: {}",
                    kinds.join(", ")
                ),
            );
        }
    }
    if e.max_interrupts.is_some_and(|k| k > 8) {
        return err("max_interrupts", "explore.max_interrupts: at most 8".into());
    }
    let mut seen: Vec<&str> = Vec::new();
    for c in &e.conditions {
        if seen.contains(&c.name.as_str()) {
            return err(
                "name",
                format!("explore.condition `{}` is defined twice", c.name),
            );
        }
        seen.push(&c.name);
    }
    Ok(())
}

/// Which program parameters each program reads.
fn params_of(p: ProgramName) -> &'static [&'static str] {
    match p {
        ProgramName::Selftest => &["variant", "total", "run_word"],
        ProgramName::SelftestNoise => &["variant", "run_word"],
        ProgramName::Spinlock => &["lock_word", "hold", "think", "run", "use_ext", "iterations"],
        ProgramName::Misbehave => &["misbehavior", "hold", "iterations", "enable"],
        ProgramName::Script => &["steps"],
        ProgramName::Sleeper => &["hold", "think", "iterations"],
        ProgramName::Spinner => &["hold", "iterations"],
        ProgramName::PercpuCounter => &["hold", "think", "iterations", "use_ext"],
    }
}

fn set_params(t: &TaskDef) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut add = |on: bool, n: &'static str| {
        if on {
            v.push(n)
        }
    };
    add(t.variant.is_some(), "variant");
    add(t.total.is_some(), "total");
    add(t.run_word.is_some(), "run_word");
    add(t.lock_word.is_some(), "lock_word");
    add(t.hold.is_some(), "hold");
    add(t.think.is_some(), "think");
    add(t.run.is_some(), "run");
    add(t.use_ext.is_some(), "use_ext");
    add(t.misbehavior.is_some(), "misbehavior");
    add(t.iterations.is_some(), "iterations");
    add(t.enable.is_some(), "enable");
    add(t.steps.is_some(), "steps");
    v
}

/// Check everything the types cannot: limits, names, references, program parameters.
pub(super) fn validate(l: &Loaded) -> Result<(), ScenarioError> {
    let (path, src, s) = (&l.path, &l.source, &l.scenario);
    let err = |at: usize, m: String| Err(ScenarioError::at(path, src, at, m));
    validate_explore(l)?;
    config(s, &l.budget).map_err(|m| ScenarioError::at(path, src, key_pos(src, m.0), m.1))?;
    if s.scenario.duration.0 == 0 || s.scenario.duration.0 > limits::DURATION_NS {
        return err(
            key_pos(src, "duration"),
            "duration must be more than 0 and at most 1 hour".into(),
        );
    }
    let cpus = s.machine.cpus.unwrap_or(SimConfig::default().cpus);
    let mut names: Vec<String> = Vec::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total: u64 = 0;
    for t in &s.tasks {
        let at = t.span().start;
        let d = t.get_ref();
        let count = d.count.unwrap_or(1);
        if count == 0 {
            return err(at, format!("task `{}`: count must be at least 1", d.name));
        }
        total = total.saturating_add(count);
        if total > limits::TASKS {
            return err(at, format!("more than {} tasks in all", limits::TASKS));
        }
        if names.contains(&d.name) {
            return err(at, format!("task name `{}` is used twice", d.name));
        }
        let program_at = at + key_pos(&src[at.min(src.len())..], "program");
        let allowed: &[&str] = match d.builtin() {
            Some(b) => params_of(b),
            None if l.programs.is_registered(&d.program) => &[],
            None => {
                let names = l.programs.names();
                let hint = error::closest(&d.program, &names)
                    .map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
                return err(
                    program_at,
                    format!(
                        "unknown variant `{}`, expected one of the programs `{}`{hint}",
                        d.program,
                        names.join("`, `")
                    ),
                );
            }
        };
        for p in set_params(d) {
            if !allowed.contains(&p) {
                let theirs = if d.builtin().is_some() {
                    format!("its parameters: {}", allowed.join(", "))
                } else {
                    "a registered program takes its parameters in `params`".to_string()
                };
                return err(
                    at,
                    format!(
                        "task `{}`: `{p}` does not apply to program `{}` ({theirs})",
                        d.name, d.program,
                    ),
                );
            }
        }
        if d.params.is_some() && d.builtin().is_some() {
            return err(
                at,
                format!(
                    "task `{}`: `params` is for registered programs; built-in `{}` takes its parameters as keys of the task ({})",
                    d.name,
                    d.program,
                    allowed.join(", ")
                ),
            );
        }
        if let Some(v) = &d.variant {
            if SelftestParams::variant(v).is_none() {
                let names = ["n2_2_50", "n50_2_50", "n2_2_50_no_yield"];
                let hint = error::closest(v, &names)
                    .map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
                return err(
                    at,
                    format!("task `{}`: unknown variant `{v}`{hint}", d.name),
                );
            }
        }
        if d.builtin() == Some(ProgramName::Misbehave) {
            let m = d.misbehavior.as_deref().unwrap_or("");
            if Misbehavior::from_name(m).is_none() {
                let names: Vec<&str> = Misbehavior::ALL.iter().map(|m| m.name()).collect();
                let hint = error::closest(m, &names)
                    .map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
                return err(
                    at,
                    format!(
                        "task `{}`: misbehavior `{m}` unknown{hint}; one of {}",
                        d.name,
                        names.join(", ")
                    ),
                );
            }
        }
        if d.builtin() == Some(ProgramName::Script) {
            let Some(steps) = &d.steps else {
                return err(
                    at,
                    format!("task `{}`: program `script` needs `steps`", d.name),
                );
            };
            if steps.len() > limits::STEPS {
                return err(
                    at,
                    format!("task `{}`: more than {} steps", d.name, limits::STEPS),
                );
            }
            let lines: Vec<&str> = steps.iter().map(|s| s.get_ref().as_str()).collect();
            if let Err((i, m)) = script::parse(&lines) {
                return err(
                    steps[i].span().start,
                    format!("task `{}`, step {}: {m}", d.name, i + 1),
                );
            }
        }
        if let Some(n) = d.nice.filter(|n| !(-20..=19).contains(n)) {
            return err(
                at,
                format!("task `{}`: nice {n} is outside -20..=19", d.name),
            );
        }
        if let Some(p) = &d.policy {
            if let Err(m) = parse_policy(p) {
                return err(at, format!("task `{}`: {m}", d.name));
            }
        }
        if let Some(c) = d.cpus.iter().flatten().find(|&&c| c >= cpus) {
            return err(
                at,
                format!(
                    "task `{}`: CPU {c} does not exist (the machine has {cpus})",
                    d.name
                ),
            );
        }
        if let Some(parent) = &d.thread_of {
            if let Some(&n) = counts.get(parent.as_str()).filter(|&&n| n > 1) {
                return err(
                    at,
                    format!("task `{}`: thread_of `{parent}` names {n} copies; pick one, e.g. `{parent}.0`", d.name),
                );
            }
            let copy = parent
                .rsplit_once('.')
                .and_then(|(base, i)| Some((counts.get(base)?, i.parse::<u64>().ok()?)))
                .is_some_and(|(&n, i)| n > 1 && i < n);
            if !names.contains(parent) && !copy {
                let hint = error::closest(
                    parent,
                    &names.iter().map(String::as_str).collect::<Vec<_>>(),
                )
                .map_or(String::new(), |c| format!(" (did you mean `{c}`?)"));
                return err(
                    at,
                    format!(
                        "task `{}`: thread_of `{parent}` is not an earlier task{hint}",
                        d.name
                    ),
                );
            }
        }
        names.push(d.name.clone());
        counts.insert(d.name.as_str(), count);
    }
    if s.irqs.len() + s.signals.len() > limits::SOURCES {
        return err(
            0,
            format!(
                "more than {} interrupt sources and signals",
                limits::SOURCES
            ),
        );
    }
    for i in &s.irqs {
        let d = i.get_ref();
        if d.cpu as usize >= cpus {
            return err(
                i.span().start,
                format!("irq on CPU {} but the machine has {cpus}", d.cpu),
            );
        }
        let n = usize::from(d.at.is_some())
            + usize::from(d.every.is_some())
            + usize::from(d.rate_hz.is_some());
        if n != 1 {
            return err(
                i.span().start,
                "an irq needs exactly one of `at`, `every`, `rate_hz`".into(),
            );
        }
        if d.every.is_some_and(|e| e.0 == 0) || d.rate_hz.is_some_and(|r| !(r > 0.0 && r <= 1e9)) {
            return err(
                i.span().start,
                "`every` must be > 0 and `rate_hz` in (0, 1e9]".into(),
            );
        }
    }
    let known = |n: &str| {
        names
            .iter()
            .any(|x| x == n || n.starts_with(&format!("{x}.")))
    };
    for sig in &s.signals {
        if !known(&sig.get_ref().task) {
            return err(
                sig.span().start,
                format!("signal to unknown task `{}`", sig.get_ref().task),
            );
        }
    }
    validate_expect(l, &s.expect, "expect", &names)?;
    for c in &s.explore.conditions {
        validate_expect(l, &c.holds, "explore.condition.holds", &names)?;
    }
    Ok(())
}

/// The machine section as a `SimConfig`; on error, (key, message).
fn config(s: &Scenario, budget: &Budget) -> Result<SimConfig, (&'static str, String)> {
    let m = &s.machine;
    let d = SimConfig::default();
    let ns = |v: Option<Nanos>, dflt: u64| v.map_or(dflt, |n| n.0);
    let cfg = SimConfig {
        cpus: m.cpus.unwrap_or(d.cpus),
        hz: m.hz.unwrap_or(d.hz),
        preempt: match m.preempt {
            None => d.preempt,
            Some(PreemptName::None) => Preempt::None,
            Some(PreemptName::Voluntary) => Preempt::Voluntary,
            Some(PreemptName::Full) => Preempt::Full,
            Some(PreemptName::Lazy) => Preempt::Lazy,
            Some(PreemptName::Rt) => Preempt::Rt,
        },
        revision: m.revision.map_or(d.revision, RevisionName::revision),
        config_slice_ext: m.config_slice_ext.unwrap_or(d.config_slice_ext),
        slice_ext_boot: m.slice_ext_boot.unwrap_or(d.slice_ext_boot),
        slice_ext_nsec: match &m.slice_ext_nsec {
            None => None,
            Some(SliceExtNsec::Ns(ns)) => Some(*ns),
            // As `rseq_slice_ext_write()` parses what is written; a range error is left to
            // `validate()` below, with the range in its message.
            Some(SliceExtNsec::Text(t)) => {
                Some(rseq_sim::config::kstrtouint(t).ok_or_else(|| {
                    (
                        "slice_ext_nsec",
                        format!(
                        "machine: slice_ext_nsec = {t:?}: writing it to debugfs fails with EINVAL \
                         (the kernel's kstrtouint takes decimal digits, an optional `+` and one \
                         trailing newline, nothing else)"
                    ),
                    )
                })?)
            }
        },
        rseq_debug: m.rseq_debug.unwrap_or(d.rseq_debug),
        endian: match m.endian {
            Some(EndianName::Big) => rseq_abi::Endian::Big,
            _ => rseq_abi::Endian::Little,
        },
        available_when_boot_disabled: m.available_when_boot_disabled.map(|a| match a {
            AvailName::Advertise => AvailableWhenBootDisabled::Advertise,
            AvailName::Hide => AvailableWhenBootDisabled::Hide,
        }),
        seed: s.scenario.seed,
        tie_break: match m.tie_break {
            Some(TieName::Seeded) => TieBreak::Seeded,
            _ => TieBreak::Fifo,
        },
        irq_latency_ns: ns(m.irq_latency, d.irq_latency_ns),
        syscall_ns: ns(m.syscall, d.syscall_ns),
        ctx_switch_ns: ns(m.ctx_switch, d.ctx_switch_ns),
        ipi_latency_ns: ns(m.ipi_latency, d.ipi_latency_ns),
        idle_exit_ns: ns(m.idle_exit, d.idle_exit_ns),
        clock_read_ns: ns(m.clock_read, d.clock_read_ns),
        mem_access_ns: ns(m.mem_access, d.mem_access_ns),
        shared_access_ns: ns(m.shared_access, d.shared_access_ns),
        fair_class: match m.fair_class {
            Some(FairName::Eevdf) => rseq_sim::FairClass::Eevdf,
            Some(FairName::Cfs) => rseq_sim::FairClass::Cfs,
            None => d.fair_class,
        },
        sched_base_slice_ns: ns(m.sched_base_slice, d.sched_base_slice_ns),
        wakeup_gran_ns: ns(m.wakeup_gran, d.wakeup_gran_ns),
        sleeper_credit_ns: ns(m.sleeper_credit, d.sleeper_credit_ns),
        fast_clock_skew_ns: m.fast_clock_skew_ns.unwrap_or(d.fast_clock_skew_ns),
        timer_slack_ns: ns(m.timer_slack, d.timer_slack_ns),
        timer_jitter_ns: ns(m.timer_jitter, d.timer_jitter_ns),
        timer_jitters_ns: m
            .timer_jitters
            .as_ref()
            .map_or(d.timer_jitters_ns.clone(), |v| {
                v.iter().map(|n| n.0).collect()
            }),
        syscall_work_delay_ns: ns(m.syscall_work_delay, d.syscall_work_delay_ns),
        tick_stalls: rseq_sim::TickStalls {
            ticks: m.tick_stall_ticks.unwrap_or(d.tick_stalls.ticks),
            stalls_ns: m
                .tick_stalls
                .as_ref()
                .map_or(d.tick_stalls.stalls_ns.clone(), |v| {
                    v.iter().map(|n| n.0).collect()
                }),
        },
        load_balance: m.load_balance.unwrap_or(d.load_balance),
        hrtick: m.hrtick.unwrap_or(d.hrtick),
        max_user_steps: budget.max_user_steps,
        max_ops_per_instant: budget.max_ops_per_instant,
        max_threads: m.max_threads.unwrap_or(d.max_threads),
        ..d
    };
    cfg.validate().map_err(|e| {
        let key = match e {
            rseq_sim::config::ConfigError::Cpus(_) => "cpus",
            rseq_sim::config::ConfigError::SliceExtRange { .. } => "slice_ext_nsec",
            rseq_sim::config::ConfigError::ClockCost => "clock_read",
            rseq_sim::config::ConfigError::Hz(_) => "hz",
            rseq_sim::config::ConfigError::StackSize(_) => "stack_size",
            rseq_sim::config::ConfigError::PreemptModel(_) => "preempt",
            rseq_sim::config::ConfigError::TickStalls { .. } => "tick_stalls",
            rseq_sim::config::ConfigError::TimerJitters { .. } => "timer_jitters",
        };
        (key, format!("machine: {e}"))
    })?;
    Ok(cfg)
}

fn enable_mode(e: Option<EnableName>) -> EnableMode {
    match e {
        Some(EnableName::DefaultOn) => EnableMode::DefaultOn,
        Some(EnableName::Off) => EnableMode::Off,
        _ => EnableMode::Prctl,
    }
}

/// Parse the `params` of every task running a registered program, from the document
/// itself so an error has its exact position (by task index; `None` for built-ins).
pub(super) fn parse_params(
    l: &Loaded,
) -> Result<Vec<Option<crate::programs::Params>>, ScenarioError> {
    let tasks = &l.scenario.tasks;
    if !tasks.iter().any(|t| t.get_ref().builtin().is_none()) {
        return Ok(vec![None; tasks.len()]);
    }
    let toml_err = |e: &toml::de::Error| ScenarioError::from_toml(&l.path, &l.source, e);
    let doc = toml::de::DeTable::parse(&l.source).map_err(|e| toml_err(&e))?;
    let array = match doc.get_ref().get("task").map(|v| v.get_ref()) {
        Some(toml::de::DeValue::Array(a)) => Some(a),
        _ => None,
    };
    let mut out = Vec::with_capacity(tasks.len());
    for (i, t) in tasks.iter().enumerate() {
        let d = t.get_ref();
        if d.builtin().is_some() {
            out.push(None);
            continue;
        }
        let table = array
            .and_then(|a| a.get(i))
            .and_then(|v| match v.get_ref() {
                toml::de::DeValue::Table(t) => t.get("params").cloned(),
                _ => None,
            });
        let parsed = match table {
            Some(v) => l
                .programs
                .parse_params(&d.program, toml::de::ValueDeserializer::from(v))
                .map_err(|e| toml_err(&e))?,
            // No table: an empty one, so defaults apply; a missing field is the task's.
            None => {
                let empty = toml::de::ValueDeserializer::parse("{}").expect("an empty table");
                l.programs.parse_params(&d.program, empty).map_err(|e| {
                    ScenarioError::at(
                        &l.path,
                        &l.source,
                        t.span().start,
                        format!(
                            "task `{}`: program `{}` needs `params`: {}",
                            d.name,
                            d.program,
                            e.message().trim()
                        ),
                    )
                })?
            }
        };
        out.push(Some(parsed));
    }
    Ok(out)
}

/// The program of a task definition: a built-in, or a registered one with its parsed
/// parameters.
fn program(
    l: &Loaded,
    ti: usize,
    d: &TaskDef,
    duration: u64,
    script: Option<script::Body>,
) -> SimProgram {
    let Some(builtin) = d.builtin() else {
        let params = l.params[ti].as_ref().expect("parsed with the scenario");
        return l.programs.make(&d.program, params);
    };
    match builtin {
        ProgramName::Selftest => {
            let mut params = SelftestParams::variant(d.variant.as_deref().unwrap_or("n2_2_50"))
                .expect("validated");
            if let Some(t) = d.total {
                params.total_ns = t.0;
            }
            let run = SharedWord(d.run_word.unwrap_or(0));
            Box::new(move |p| match selftest_main(p, &params, run) {
                Ok(c) => c.counters(),
                Err(e) => panic!("selftest setup failed: {e}"),
            })
        }
        ProgramName::SelftestNoise => {
            let params = SelftestParams::variant(d.variant.as_deref().unwrap_or("n2_2_50"))
                .expect("validated");
            let run = SharedWord(d.run_word.unwrap_or(0));
            Box::new(move |p| vec![("bursts", selftest_noise(p, &params, run) as i64)])
        }
        ProgramName::Spinlock => {
            let lock = d.lock_word.unwrap_or(0);
            let params = SpinlockParams {
                lock: SharedWord(lock),
                protected: Some(SharedWord(lock + 1)),
                run_ns: d.run.map_or(duration, |r| r.0),
                hold_ns: d.hold.map_or(2_000, |h| h.0),
                think_ns: d.think.map_or(1_000, |t| t.0),
                max_iterations: d.iterations.unwrap_or(u64::MAX),
                use_ext: d.use_ext.unwrap_or(true),
                wait: WaitMode::Spin,
            };
            Box::new(move |p| spinlock_main(p, &params).counters())
        }
        ProgramName::Misbehave => {
            let kind =
                Misbehavior::from_name(d.misbehavior.as_deref().unwrap_or("")).expect("validated");
            let params = MisbehaveParams {
                sections: d.iterations.unwrap_or(100),
                section_ns: d.hold.map_or(2_000, |h| h.0),
                mode: enable_mode(d.enable),
                ..MisbehaveParams::DEFAULT
            };
            Box::new(move |p| misbehave::run(p, kind, &params).counters())
        }
        ProgramName::Script => {
            let steps = script.expect("scripts are parsed with the scenario");
            Box::new(move |p| script::run(p, &steps))
        }
        ProgramName::Sleeper => {
            let (sleep, burn, n) = (
                d.think.map_or(1_000_000, |t| t.0),
                d.hold.map_or(1_000, |h| h.0),
                d.iterations,
            );
            Box::new(move |p| {
                let mut i = 0;
                while n.is_none_or(|n| i < n) {
                    let _ = p.syscall(Syscall::Nanosleep { ns: sleep });
                    p.burn(burn);
                    i += 1;
                }
                vec![("iterations", i as i64)]
            })
        }
        ProgramName::PercpuCounter => {
            use rseq_abi::programs::percpu::{percpu_counter, PercpuParams};
            let params = PercpuParams {
                hold_ns: d.hold.map_or(PercpuParams::DEFAULT.hold_ns, |h| h.0),
                think_ns: d.think.map_or(PercpuParams::DEFAULT.think_ns, |t| t.0),
                iterations: d.iterations.unwrap_or(u64::MAX),
                use_ext: d.use_ext.unwrap_or(false),
                ..PercpuParams::DEFAULT
            };
            Box::new(move |p| percpu_counter(p, &params).counters())
        }
        ProgramName::Spinner => {
            let (burn, n) = (d.hold.map_or(100_000, |h| h.0), d.iterations);
            Box::new(move |p| {
                let mut i = 0;
                while n.is_none_or(|n| i < n) {
                    p.burn(burn);
                    i += 1;
                }
                vec![("iterations", i as i64)]
            })
        }
    }
}

/// Build and run a validated scenario (with an optional seed and end-time override),
/// keeping its whole log.
pub fn run(l: &Loaded, seed: Option<u64>, until: Option<u64>) -> Result<RunResult, ScenarioError> {
    run_with_progress(l, seed, until, &mut |_, _| {})
}

/// Runs are always cut into this many equal slices, whether or not anyone watches, so a
/// progress bar can never change a result.
pub const SLICES: u64 = 64;

/// [`run`], calling `progress(now_ns, end_ns)` after each of the [`SLICES`] slices.
pub fn run_with_progress(
    l: &Loaded,
    seed: Option<u64>,
    until: Option<u64>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RunResult, ScenarioError> {
    run_streamed(
        l,
        &RunOptions {
            seed,
            until,
            keep_log: true,
        },
        &mut |_, _| Ok(()),
        progress,
    )
}

/// How [`run_streamed`] runs a scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Override the scenario's seed.
    pub seed: Option<u64>,
    /// Stop here instead of at the scenario's duration, ns.
    pub until: Option<u64>,
    /// Keep the whole log in the simulation (for outputs that need it); otherwise the log
    /// only streams through the expectations and the sink, and memory does not grow with
    /// simulated time.
    pub keep_log: bool,
}

/// A sink of log records as a run produces them (a streaming trace writer), given the
/// simulation they come from for the tasks, CPUs and configuration they name.
pub type LogSink<'a> = dyn FnMut(&Simulation, &[LogRecord]) -> std::io::Result<()> + 'a;

/// Build and run a validated scenario, checking its budgets ([`Loaded::budget`]) every
/// [`CHUNK_EVENTS`] events and streaming the log through the `[[expect.log]]` conditions
/// and `sink`. Cut into the same [`SLICES`] as [`run_with_progress`], and the same run.
pub fn run_streamed(
    l: &Loaded,
    o: &RunOptions,
    sink: &mut LogSink<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RunResult, ScenarioError> {
    let Built {
        mut sim,
        names,
        duration,
    } = build(l, o.seed, o.until)?;
    let mut watch = expect::LogWatch::new(&l.scenario.expect.log);
    let (mut logged, mut peak_kept) = (0u64, 0u64);
    let started = std::time::Instant::now();
    let sink_error = |e: std::io::Error| ScenarioError::Io {
        path: l.path.clone(),
        message: format!("streaming the log: {e}"),
    };
    for i in 1..=SLICES {
        let t = duration / SLICES * i + if i == SLICES { duration % SLICES } else { 0 };
        loop {
            let done = sim.run_chunk(t, CHUNK_EVENTS);
            let kept = sim.log().len() as u64;
            peak_kept = peak_kept.max(kept);
            if o.keep_log {
                let new = &sim.log()[(logged as usize)..];
                watch.feed(new);
                sink(&sim, new).map_err(sink_error)?;
                logged = kept;
            } else {
                let chunk = sim.drain_log();
                watch.feed(&chunk);
                sink(&sim, &chunk).map_err(sink_error)?;
                logged += chunk.len() as u64;
            }
            let kept = if o.keep_log { kept } else { 0 };
            l.budget.check(
                sim.events_processed(),
                kept,
                started.elapsed().as_secs_f64(),
            )?;
            if done {
                break;
            }
        }
        progress(t, duration);
    }
    let checks = expect::evaluate_streamed(&l.scenario.expect, &sim, &names, &watch);
    Ok(RunResult {
        sim,
        names,
        checks,
        logged,
        peak_kept,
    })
}

/// A scenario's simulation, built but not yet run.
pub struct Built {
    /// The simulation at time 0.
    pub sim: Simulation,
    /// Task name → task id.
    pub names: BTreeMap<String, u32>,
    /// Where the run ends, ns.
    pub duration: u64,
}

/// Build a validated scenario's simulation without running it (for stepping through it).
pub fn build(l: &Loaded, seed: Option<u64>, until: Option<u64>) -> Result<Built, ScenarioError> {
    build_with(l, seed, until, true)
}

/// [`build`], choosing whether the event log is kept.
pub fn build_with(
    l: &Loaded,
    seed: Option<u64>,
    until: Option<u64>,
    log: bool,
) -> Result<Built, ScenarioError> {
    build_tuned(l, seed, until, log, &|_| {}, None)
}

/// [`build_with`], adjusting the configuration with `tune` and installing `chooser` before
/// anything draws from it (explorers and `run --schedule`).
pub fn build_tuned(
    l: &Loaded,
    seed: Option<u64>,
    until: Option<u64>,
    log: bool,
    tune: &dyn Fn(&mut SimConfig),
    chooser: Option<Box<dyn Chooser>>,
) -> Result<Built, ScenarioError> {
    let s = &l.scenario;
    if let Some(u) = until {
        if u > limits::DURATION_NS {
            return Err(ScenarioError::at(
                &l.path,
                &l.source,
                key_pos(&l.source, "duration"),
                format!(
                    "--until {u} ns is over the limit of {} ns, one hour (the longest `duration` too)",
                    limits::DURATION_NS
                ),
            ));
        }
    }
    let mut cfg = config(s, &l.budget)
        .map_err(|m| ScenarioError::at(&l.path, &l.source, key_pos(&l.source, m.0), m.1))?;
    if let Some(seed) = seed {
        cfg.seed = seed;
    }
    cfg.log = log;
    cfg.log_user_accesses = log;
    tune(&mut cfg);
    let duration = until.unwrap_or(s.scenario.duration.0);
    let mut sim = Simulation::new(cfg).expect("validated config");
    if let Some(c) = chooser {
        sim.set_chooser(c);
    }
    let mut names: BTreeMap<String, u32> = BTreeMap::new();
    for (ti, t) in s.tasks.iter().enumerate() {
        let d = t.get_ref();
        if matches!(
            d.builtin(),
            Some(ProgramName::Selftest | ProgramName::SelftestNoise)
        ) {
            sim.set_shared_word(SharedWord(d.run_word.unwrap_or(0)), 1);
        }
        let count = d.count.unwrap_or(1);
        for i in 0..count {
            let name = if count == 1 {
                d.name.clone()
            } else {
                format!("{}.{i}", d.name)
            };
            let mut spec = TaskSpec::new(name.clone());
            spec.affinity = d.cpus.as_ref().map(|cs| {
                let mut set = CpuSet::empty();
                cs.iter().for_each(|&c| set.insert(c));
                set
            });
            spec.policy = d
                .policy
                .as_deref()
                .map_or(Policy::Normal, |p| parse_policy(p).expect("validated"));
            spec.nice = d.nice.unwrap_or(0);
            spec.start_ns = d.start.map_or(0, |n| n.0);
            spec.rseq_len = d.rseq_len;
            spec.thread_of = d.thread_of.as_ref().and_then(|p| names.get(p).copied());
            let id = sim.spawn(
                spec,
                program(l, ti, d, duration, l.scripts.get(ti).cloned().flatten()),
            );
            names.insert(name, id);
        }
    }
    for i in &s.irqs {
        let d = i.get_ref();
        let kind = match d.kind {
            IrqKindName::Device => IrqKind::Device(ReschedReq::None),
            IrqKindName::DeviceResched => IrqKind::Device(ReschedReq::Full),
            IrqKindName::DeviceReschedLazy => IrqKind::Device(ReschedReq::Lazy),
            IrqKindName::Exception => IrqKind::Exception,
            IrqKindName::ReschedIpi => IrqKind::ReschedIpi,
            IrqKindName::MembarrierIpi => IrqKind::MembarrierIpi,
        };
        let (start_ns, end_ns) = (d.start.map_or(0, |n| n.0), d.end.map_or(u64::MAX, |n| n.0));
        let pattern = match (d.at, d.every, d.rate_hz) {
            (Some(at), _, _) => IrqPattern::OneShot { at: at.0 },
            (_, Some(every), _) => IrqPattern::Periodic {
                start_ns,
                period_ns: every.0,
                end_ns,
            },
            (_, _, Some(rate_hz)) => IrqPattern::Poisson {
                rate_hz,
                start_ns,
                end_ns,
            },
            _ => unreachable!("validated"),
        };
        sim.add_irq_source(IrqSource::new(d.cpu, kind, pattern));
    }
    for sig in &s.signals {
        let d = sig.get_ref();
        for (name, &id) in &names {
            if *name == d.task || name.starts_with(&format!("{}.", d.task)) {
                sim.send_signal(d.at.0, id, d.signo);
            }
        }
    }
    Ok(Built {
        sim,
        names,
        duration,
    })
}
