//! Schedules: everything that makes one explored run what it is, as a compact string.
//!
//! ```text
//! slicesim-schedule/1 scenario=grant-revoke-race@5f1c0a3e9b2d7c41 rev=7.2 version=0.1.0 seed=7 tie=fifo until=35000 inject=3:irq+resched,9:timer
//! ```
//!
//! `seed` seeds every random draw of the engine, `tie` is the equal-time order, `until`
//! (optional) ends the run early, and `inject` lists `point:kind` pairs in point order. The
//! scenario is named with a hash of its text, so a schedule is never replayed against a
//! changed file by accident.

use std::fmt;

use rseq_sim::Injection;

/// The prefix (and format version) of every schedule string.
pub const MAGIC: &str = "slicesim-schedule/1";

/// One run of an exploration, fully described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Seed of the engine's draws.
    pub seed: u64,
    /// Equal-time order varied by the seed (`tie=seeded`) or FIFO.
    pub seeded_ties: bool,
    /// End of the run, ns (`None`: the scenario's duration).
    pub until: Option<u64>,
    /// `(point index, kind)`, sorted by point, at most one per point.
    pub inject: Vec<(u32, Injection)>,
}

impl Schedule {
    /// No injections, FIFO ties: the scenario as written, with `seed`.
    pub fn plain(seed: u64) -> Self {
        Self {
            seed,
            seeded_ties: false,
            until: None,
            inject: Vec::new(),
        }
    }

    /// The injections as `3:irq+resched,9:timer` (`-` when there are none).
    pub fn inject_text(&self) -> String {
        if self.inject.is_empty() {
            return "-".to_string();
        }
        let parts: Vec<String> = self
            .inject
            .iter()
            .map(|(p, k)| format!("{p}:{}", k.name()))
            .collect();
        parts.join(",")
    }
}

/// Where a schedule string comes from and what it was made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Scenario name.
    pub scenario: String,
    /// FNV-1a 64 of the scenario text.
    pub hash: u64,
    /// Protocol revision (`v1`, `7.0`, `7.2`; older schedules say `merged`, `post-merge`).
    pub revision: String,
    /// slicesim version that wrote it.
    pub version: String,
}

/// A stamped schedule: what `--schedule FILE` reads and explorers write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamped {
    /// Provenance.
    pub stamp: Stamp,
    /// The run.
    pub schedule: Schedule,
}

impl fmt::Display for Stamped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (st, s) = (&self.stamp, &self.schedule);
        write!(
            f,
            "{MAGIC} scenario={}@{:016x} rev={} version={} seed={} tie={}",
            st.scenario,
            st.hash,
            st.revision,
            st.version,
            s.seed,
            if s.seeded_ties { "seeded" } else { "fifo" }
        )?;
        if let Some(u) = s.until {
            write!(f, " until={u}")?;
        }
        write!(f, " inject={}", s.inject_text())
    }
}

/// Why a schedule string could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    /// No line starts with the magic prefix.
    #[error("no `{MAGIC} ...` line found (is this a schedule file?)")]
    NoSchedule,
    /// A field is malformed.
    #[error("schedule field `{field}`: {why}")]
    Field {
        /// The field.
        field: String,
        /// What is wrong.
        why: String,
    },
}

fn field_err(field: &str, why: impl Into<String>) -> ScheduleError {
    ScheduleError::Field {
        field: field.to_string(),
        why: why.into(),
    }
}

impl Stamped {
    /// Parse the first schedule line of `text` (other lines, e.g. comments, are ignored).
    pub fn parse(text: &str) -> Result<Stamped, ScheduleError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(MAGIC))
            .ok_or(ScheduleError::NoSchedule)?;
        let mut stamp = Stamp {
            scenario: String::new(),
            hash: 0,
            revision: String::new(),
            version: String::new(),
        };
        let mut s = Schedule::plain(0);
        let mut seen_scenario = false;
        for tok in line[MAGIC.len()..].split_whitespace() {
            let (k, v) = tok
                .split_once('=')
                .ok_or_else(|| field_err(tok, "expected key=value"))?;
            let num = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| field_err(k, format!("`{v}` is not a number")))
            };
            match k {
                "scenario" => {
                    let (name, hash) = v
                        .rsplit_once('@')
                        .ok_or_else(|| field_err(k, "expected NAME@HASH"))?;
                    stamp.scenario = name.to_string();
                    stamp.hash = u64::from_str_radix(hash, 16)
                        .map_err(|_| field_err(k, format!("`{hash}` is not a hex hash")))?;
                    seen_scenario = true;
                }
                "rev" => stamp.revision = v.to_string(),
                "version" => stamp.version = v.to_string(),
                "seed" => s.seed = num(v)?,
                "tie" => {
                    s.seeded_ties = match v {
                        "fifo" => false,
                        "seeded" => true,
                        _ => return Err(field_err(k, format!("`{v}`: use fifo or seeded"))),
                    }
                }
                "until" => s.until = Some(num(v)?),
                "inject" => s.inject = parse_inject(v)?,
                _ => return Err(field_err(k, "unknown field")),
            }
        }
        if !seen_scenario {
            return Err(field_err("scenario", "missing"));
        }
        Ok(Stamped { stamp, schedule: s })
    }
}

fn parse_inject(v: &str) -> Result<Vec<(u32, Injection)>, ScheduleError> {
    if v == "-" {
        return Ok(Vec::new());
    }
    let mut out: Vec<(u32, Injection)> = Vec::new();
    for part in v.split(',') {
        let (p, k) = part
            .split_once(':')
            .ok_or_else(|| field_err("inject", format!("`{part}`: expected POINT:KIND")))?;
        let p: u32 = p
            .parse()
            .map_err(|_| field_err("inject", format!("`{p}` is not a point index")))?;
        let kind = Injection::parse(k).ok_or_else(|| {
            let kinds: Vec<&str> = Injection::ALL.iter().map(|k| k.name()).collect();
            field_err(
                "inject",
                format!("unknown kind `{k}` (kinds: {})", kinds.join(", ")),
            )
        })?;
        if out.last().is_some_and(|&(q, _)| q >= p) {
            return Err(field_err("inject", "points must be strictly increasing"));
        }
        out.push((p, kind));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stamped {
        Stamped {
            stamp: Stamp {
                scenario: "race".into(),
                hash: 0xdead_beef,
                revision: "7.2".into(),
                version: "0.1.0".into(),
            },
            schedule: Schedule {
                seed: 7,
                seeded_ties: true,
                until: Some(35_000),
                inject: vec![(3, Injection::IrqResched), (9, Injection::SliceTimer)],
            },
        }
    }

    #[test]
    fn schedule_strings_round_trip() {
        let s = sample();
        let text = s.to_string();
        assert_eq!(
            text,
            "slicesim-schedule/1 scenario=race@00000000deadbeef rev=7.2 version=0.1.0 seed=7 tie=seeded until=35000 inject=3:irq+resched,9:timer"
        );
        assert_eq!(Stamped::parse(&format!("# comment\n{text}\n")).unwrap(), s);
        let mut plain = s.clone();
        plain.schedule.inject.clear();
        plain.schedule.until = None;
        assert_eq!(Stamped::parse(&plain.to_string()).unwrap(), plain);
    }

    #[test]
    fn bad_schedules_say_which_field() {
        let good = sample().to_string();
        let bad = good.replace("9:timer", "9:tmer");
        let e = Stamped::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("unknown kind `tmer`"), "{e}");
        let e = Stamped::parse(&good.replace("3:irq", "12:irq")).unwrap_err();
        assert!(e.to_string().contains("strictly increasing"), "{e}");
        assert_eq!(
            Stamped::parse("nothing here"),
            Err(ScheduleError::NoSchedule)
        );
        let e = Stamped::parse(&good.replace("seed=7", "seed=x")).unwrap_err();
        assert!(e.to_string().contains("`seed`"), "{e}");
    }
}
