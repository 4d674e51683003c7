//! Expectations: ranges on statistics and counters, task exits, log lines.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rseq_sim::{Simulation, TaskExit};
use serde::{Deserialize, Deserializer};

use super::{Expect, LogExpect};

/// An inclusive range of integers: `5`, `"1..10"`, `">=1"`, `"<=3"` or `{ min = 1, max = 10 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Lowest accepted value.
    pub min: Option<i64>,
    /// Highest accepted value.
    pub max: Option<i64>,
}

impl Range {
    /// Does `v` lie in the range?
    pub fn contains(&self, v: i64) -> bool {
        self.min.is_none_or(|m| v >= m) && self.max.is_none_or(|m| v <= m)
    }

    fn parse(s: &str) -> Result<Range, String> {
        let s = s.trim();
        let num = |t: &str| {
            t.trim()
                .parse::<i64>()
                .map_err(|_| format!("`{s}` is not a range like \"1..10\", \">=1\" or \"<=3\""))
        };
        if let Some(r) = s.strip_prefix(">=") {
            return Ok(Range {
                min: Some(num(r)?),
                max: None,
            });
        }
        if let Some(r) = s.strip_prefix("<=") {
            return Ok(Range {
                min: None,
                max: Some(num(r)?),
            });
        }
        if let Some((a, b)) = s.split_once("..") {
            return Ok(Range {
                min: Some(num(a)?),
                max: Some(num(b)?),
            });
        }
        let v = num(s)?;
        Ok(Range {
            min: Some(v),
            max: Some(v),
        })
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "{a}"),
            (Some(a), Some(b)) => write!(f, "{a}..{b}"),
            (Some(a), None) => write!(f, ">={a}"),
            (None, Some(b)) => write!(f, "<={b}"),
            (None, None) => write!(f, "any"),
        }
    }
}

impl<'de> Deserialize<'de> for Range {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Exact(i64),
            Text(String),
            Table { min: Option<i64>, max: Option<i64> },
        }
        let err = || {
            serde::de::Error::custom(
                "expected a range: 5, \"1..10\", \">=1\", \"<=3\" or { min = 1, max = 10 }",
            )
        };
        match Raw::deserialize(d).map_err(|_| err())? {
            Raw::Exact(v) => Ok(Range {
                min: Some(v),
                max: Some(v),
            }),
            Raw::Text(t) => Range::parse(&t).map_err(serde::de::Error::custom),
            Raw::Table { min, max } => Ok(Range { min, max }),
        }
    }
}

impl schemars::JsonSchema for Range {
    fn schema_name() -> Cow<'static, str> {
        "Range".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An inclusive integer range: 5, \"1..10\", \">=1\", \"<=3\" or {min, max}.",
            "oneOf": [
                {"type": "integer"},
                {"type": "string", "pattern": "^(>=|<=)?-?[0-9]+(\\.\\.-?[0-9]+)?$"},
                {"type": "object", "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}}, "additionalProperties": false}
            ]
        })
    }
}

/// How a task is expected to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExitExpect {
    Exited,
    Killed,
    Signal(i32),
    Panicked,
    SpawnFailed,
    Running,
}

pub(super) fn parse_exit(s: &str) -> Result<ExitExpect, String> {
    Ok(match s.trim() {
        "exited" => ExitExpect::Exited,
        "killed" => ExitExpect::Killed,
        "sigsegv" => ExitExpect::Signal(11),
        "panicked" => ExitExpect::Panicked,
        "spawn_failed" => ExitExpect::SpawnFailed,
        "running" => ExitExpect::Running,
        other => match other.strip_prefix("signal ").map(|n| n.trim().parse()) {
            Some(Ok(n)) => ExitExpect::Signal(n),
            _ => {
                return Err(format!(
                "`{s}`: use exited, killed, sigsegv, signal N, panicked, spawn_failed or running"
            ))
            }
        },
    })
}

fn exit_matches(e: ExitExpect, got: Option<&TaskExit>) -> bool {
    match (e, got) {
        (ExitExpect::Running, None) => true,
        (ExitExpect::Exited, Some(TaskExit::Exited)) => true,
        (ExitExpect::Killed, Some(TaskExit::Signaled { .. })) => true,
        (ExitExpect::Signal(n), Some(TaskExit::Signaled { signo, .. })) => n == *signo,
        (ExitExpect::Panicked, Some(TaskExit::Panicked(_))) => true,
        (ExitExpect::SpawnFailed, Some(TaskExit::SpawnFailed(_))) => true,
        _ => false,
    }
}

/// The verdict of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// It held.
    Pass,
    /// It did not; the string says what was found.
    Fail(String),
}

/// One expectation and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was expected, e.g. `granted = 1` or `task holder exit = sigsegv`.
    pub what: String,
    /// Verdict.
    pub outcome: CheckOutcome,
}

fn range_check(what: String, r: &Range, v: i64) -> Check {
    let outcome = if r.contains(v) {
        CheckOutcome::Pass
    } else {
        CheckOutcome::Fail(format!("got {v}"))
    };
    Check {
        what: format!("{what} = {r}"),
        outcome,
    }
}

/// Check expectations `e` against a finished simulation that kept its whole log.
pub fn evaluate(e: &Expect, sim: &Simulation, names: &BTreeMap<String, u32>) -> Vec<Check> {
    let mut watch = LogWatch::new(&e.log);
    watch.feed(sim.log());
    evaluate_streamed(e, sim, names, &watch)
}

/// The `[[expect.log]]` conditions, fed the log chunk by chunk as a run produces it: the
/// state is a counter or a position per condition, whatever the length of the run.
#[derive(Debug, Clone)]
pub struct LogWatch {
    conds: Vec<(LogExpect, u64)>,
    line: String,
}

impl LogWatch {
    /// Start watching for `log` conditions.
    pub fn new(log: &[LogExpect]) -> Self {
        Self {
            conds: log.iter().map(|l| (l.clone(), 0)).collect(),
            line: String::new(),
        }
    }

    /// Consume the next records of the log.
    pub fn feed(&mut self, records: &[rseq_sim::LogRecord]) {
        if self.conds.is_empty() {
            return;
        }
        use std::fmt::Write;
        for r in records {
            self.line.clear();
            let _ = write!(self.line, "{}", r.kind);
            for (le, n) in &mut self.conds {
                match &le.sequence {
                    // `n`: how many of the sequence's texts were seen, in order.
                    Some(seq) => {
                        if let Some(w) = seq.get(*n as usize) {
                            if self.line.contains(w.as_str()) {
                                *n += 1;
                            }
                        }
                    }
                    // `n`: matching lines.
                    None => {
                        let text = le
                            .contains
                            .as_deref()
                            .or(le.absent.as_deref())
                            .unwrap_or("");
                        if self.line.contains(text) {
                            *n += 1;
                        }
                    }
                }
            }
        }
    }
}

/// [`evaluate`] for a run whose log was streamed into `watch` rather than kept.
pub fn evaluate_streamed(
    e: &Expect,
    sim: &Simulation,
    names: &BTreeMap<String, u32>,
    watch: &LogWatch,
) -> Vec<Check> {
    let s = sim.stats();
    let mut out = Vec::new();
    for (n, r, v) in [
        ("granted", &e.granted, s.granted),
        ("expired", &e.expired, s.expired),
        ("revoked", &e.revoked, s.revoked),
        ("yielded", &e.yielded, s.yielded),
        ("aborted", &e.aborted, s.aborted),
    ] {
        if let Some(r) = r {
            out.push(range_check(n.to_string(), r, v as i64));
        }
    }
    for (name, te) in &e.task {
        // The task of that name, else its copies (`w.0`, `w.1`, … of `count = N`); tasks
        // made at run time (`parent.child` of a fork) count too.
        let tasks = sim.tasks();
        let mut ids: Vec<usize> = (0..tasks.len())
            .filter(|&i| tasks[i].name == *name)
            .collect();
        if ids.is_empty() {
            let prefix = format!("{name}.");
            ids = (0..tasks.len())
                .filter(|&i| {
                    tasks[i].name.starts_with(&prefix) && names.contains_key(&tasks[i].name)
                })
                .collect();
        }
        if ids.is_empty() {
            out.push(Check {
                what: format!("task {name}"),
                outcome: CheckOutcome::Fail("no task of that name ran".to_string()),
            });
        }
        for id in ids {
            let t = &tasks[id];
            if let Some(x) = &te.exit {
                let ok = exit_matches(parse_exit(x).expect("validated"), t.exit.as_ref());
                let got = t
                    .exit
                    .as_ref()
                    .map_or("still running".to_string(), |e| e.to_string());
                out.push(Check {
                    what: format!("task {} exit = {x}", t.name),
                    outcome: if ok {
                        CheckOutcome::Pass
                    } else {
                        CheckOutcome::Fail(got)
                    },
                });
            }
            if let Some(c) = &te.cause {
                let got = t.exit.as_ref().map_or(String::new(), |e| e.to_string());
                out.push(Check {
                    what: format!("task {} cause contains {c:?}", t.name),
                    outcome: if got.contains(c.as_str()) {
                        CheckOutcome::Pass
                    } else {
                        CheckOutcome::Fail(got)
                    },
                });
            }
            for (k, r) in &te.counters {
                match t.counters.iter().find(|(n, _)| n == k) {
                    Some(&(_, v)) => out.push(range_check(format!("task {} {k}", t.name), r, v)),
                    None => out.push(Check {
                        what: format!("task {} {k} = {r}", t.name),
                        outcome: CheckOutcome::Fail(format!(
                            "no counter `{k}` (has: {}){}",
                            t.counters
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", "),
                            super::script::renamed_counter(k).map_or(String::new(), |n| format!(
                                "; the last value a script's `load {k}` read is the counter `{n}` now"
                            ))
                        )),
                    }),
                }
            }
        }
    }
    for (le, n) in &watch.conds {
        out.push(log_check(le, *n));
    }
    out
}

fn log_check(le: &LogExpect, n: u64) -> Check {
    if let Some(seq) = &le.sequence {
        let outcome = match seq.get(n as usize) {
            None => CheckOutcome::Pass,
            Some(w) => CheckOutcome::Fail(format!("no {w:?} after the earlier ones")),
        };
        return Check {
            what: format!("log has in order {seq:?}"),
            outcome,
        };
    }
    let text = le
        .contains
        .as_deref()
        .or(le.absent.as_deref())
        .unwrap_or("");
    let n = n as i64;
    if le.absent.is_some() {
        let outcome = if n == 0 {
            CheckOutcome::Pass
        } else {
            CheckOutcome::Fail(format!("{n} lines"))
        };
        return Check {
            what: format!("log has no {text:?}"),
            outcome,
        };
    }
    let r = le.count.unwrap_or(Range {
        min: Some(1),
        max: None,
    });
    let outcome = if r.contains(n) {
        CheckOutcome::Pass
    } else {
        CheckOutcome::Fail(format!("{n} lines"))
    };
    Check {
        what: format!("log has {text:?} ({r} times)"),
        outcome,
    }
}
