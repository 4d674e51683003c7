//! Machine profiles: the cost knobs of the simulated machine as one named set, with where
//! each figure comes from (issue 14). A scenario picks one with `[machine] profile =
//! "NAME|FILE"` (its own `[machine]` keys still win), a command with `--profile`, and
//! `kernel-diff` holds the simulator on a profile to a VM run.
//!
//! Bundled: `default` (the built-in figures, `SimConfig::default()`), `qemu-icount0`
//! (Linux 7.2.13 under qemu's instruction counting, 4 vCPUs, where there is evidence) and
//! `qemu-icount0-2cpus` (the same measured on 2 vCPUs, for runs with `--vcpus 2`). A profile
//! file is TOML: a `[profile]` table (`name`, `about`) and a `[machine]` table of knobs,
//! with the same names and units as a scenario's `[machine]`.

use std::path::{Path, PathBuf};

use rseq_sim::SimConfig;

use crate::scenario::Machine;

/// The bundled profiles, by name.
pub const BUNDLED: [(&str, &str); 3] = [
    ("default", include_str!("../profiles/default.toml")),
    (
        "qemu-icount0",
        include_str!("../profiles/qemu-icount0.toml"),
    ),
    (
        "qemu-icount0-2cpus",
        include_str!("../profiles/qemu-icount0-2cpus.toml"),
    ),
];

/// The bundled profile measured on each machine a VM run can have: (qemu `-icount`
/// shift, vCPUs, profile). `kernel-diff` simulates an icount console on its machine's
/// profile unless `--profile` names another.
pub const MEASURED_MACHINES: [(u32, usize, &str); 2] =
    [(0, 4, "qemu-icount0"), (0, 2, "qemu-icount0-2cpus")];

/// The bundled profile measured on a `-icount shift` machine with `cpus` vCPUs, if any.
pub fn measured_for(shift: u32, cpus: usize) -> Option<&'static str> {
    MEASURED_MACHINES
        .iter()
        .find(|&&(s, c, _)| s == shift && c == cpus)
        .map(|&(_, _, name)| name)
}

/// The `[machine]` keys a profile may set: how fast the machine and the kernel are, not
/// what the scenario is (CPUs, revision, preemption model and boot options stay the
/// scenario's).
pub const KNOBS: [&str; 19] = [
    "irq_latency",
    "syscall",
    "ctx_switch",
    "ipi_latency",
    "idle_exit",
    "clock_read",
    "mem_access",
    "shared_access",
    "fair_class",
    "sched_base_slice",
    "wakeup_gran",
    "sleeper_credit",
    "fast_clock_skew_ns",
    "timer_slack",
    "timer_jitter",
    "timer_jitters",
    "syscall_work_delay",
    "tick_stall_ticks",
    "tick_stalls",
];

/// Why a profile could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// Neither a bundled name nor a readable file.
    #[error("unknown profile {name:?}: give a file, or one of {known}")]
    Unknown {
        /// What was asked for.
        name: String,
        /// The bundled names.
        known: String,
    },
    /// The file is not a valid profile.
    #[error("profile {path}: {message}")]
    Invalid {
        /// The file (or bundled name).
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// A loaded profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Its name.
    pub name: String,
    /// One line on what machine it describes.
    pub about: String,
    /// Its knobs, as TOML values (validated).
    pub knobs: toml::Table,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    profile: Meta,
    #[serde(default)]
    machine: toml::Table,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    name: String,
    #[serde(default)]
    about: String,
}

impl Profile {
    /// A bundled profile by name, or a profile file (a relative path is taken from
    /// `base`, the directory of the scenario that names it, when given).
    pub fn load(spec: &str, base: Option<&Path>) -> Result<Profile, ProfileError> {
        if let Some((_, text)) = BUNDLED.iter().find(|(n, _)| *n == spec) {
            return Self::parse(spec, text);
        }
        let path = match base {
            Some(dir) if Path::new(spec).is_relative() => dir.join(spec),
            _ => PathBuf::from(spec),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&path.display().to_string(), &text),
            Err(_) => Err(ProfileError::Unknown {
                name: spec.to_string(),
                known: BUNDLED.map(|(n, _)| n).join(", "),
            }),
        }
    }

    /// Parse and validate a profile's text; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Profile, ProfileError> {
        let bad = |message: String| ProfileError::Invalid {
            path: path.to_string(),
            message,
        };
        let f: File = toml::from_str(text).map_err(|e| bad(e.message().to_string()))?;
        if let Some(k) = f.machine.keys().find(|k| !KNOBS.contains(&k.as_str())) {
            return Err(bad(format!(
                "`{k}` is not a cost knob (a profile may set {})",
                KNOBS.join(", ")
            )));
        }
        // The same names, types and units as a scenario's [machine].
        let _: Machine = toml::Value::Table(f.machine.clone())
            .try_into()
            .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
        Ok(Profile {
            name: f.profile.name,
            about: f.profile.about,
            knobs: f.machine,
        })
    }

    /// `--set` overrides that give a scenario this profile's knobs, for each knob its
    /// `[machine]` (`present`) does not set itself.
    pub fn sets_for(&self, present: &toml::Table) -> Vec<String> {
        self.knobs
            .iter()
            .filter(|(k, _)| !present.contains_key(*k))
            .map(|(k, v)| format!("machine.{k}={v}"))
            .collect()
    }

    /// Set `cfg`'s cost knobs to this profile's (a VM comparison, where there is no
    /// scenario); knobs the profile leaves out keep `cfg`'s value.
    pub fn apply(&self, cfg: &mut SimConfig) {
        let m: Machine = toml::Value::Table(self.knobs.clone())
            .try_into()
            .expect("validated when loaded");
        let set = |v: Option<crate::scenario::Nanos>, field: &mut u64| {
            if let Some(n) = v {
                *field = n.0;
            }
        };
        set(m.irq_latency, &mut cfg.irq_latency_ns);
        set(m.syscall, &mut cfg.syscall_ns);
        set(m.ctx_switch, &mut cfg.ctx_switch_ns);
        set(m.ipi_latency, &mut cfg.ipi_latency_ns);
        set(m.idle_exit, &mut cfg.idle_exit_ns);
        set(m.clock_read, &mut cfg.clock_read_ns);
        set(m.mem_access, &mut cfg.mem_access_ns);
        set(m.shared_access, &mut cfg.shared_access_ns);
        if let Some(f) = m.fair_class {
            cfg.fair_class = match f {
                crate::scenario::FairName::Eevdf => rseq_sim::FairClass::Eevdf,
                crate::scenario::FairName::Cfs => rseq_sim::FairClass::Cfs,
            };
        }
        set(m.sched_base_slice, &mut cfg.sched_base_slice_ns);
        set(m.wakeup_gran, &mut cfg.wakeup_gran_ns);
        set(m.sleeper_credit, &mut cfg.sleeper_credit_ns);
        set(m.timer_slack, &mut cfg.timer_slack_ns);
        set(m.timer_jitter, &mut cfg.timer_jitter_ns);
        if let Some(v) = m.timer_jitters {
            cfg.timer_jitters_ns = v.iter().map(|n| n.0).collect();
        }
        set(m.syscall_work_delay, &mut cfg.syscall_work_delay_ns);
        if let Some(t) = m.tick_stall_ticks {
            cfg.tick_stalls.ticks = t;
        }
        if let Some(v) = m.tick_stalls {
            cfg.tick_stalls.stalls_ns = v.iter().map(|n| n.0).collect();
        }
        if let Some(s) = m.fast_clock_skew_ns {
            cfg.fast_clock_skew_ns = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_is_the_built_in_machine() {
        let p = Profile::load("default", None).unwrap();
        assert_eq!(p.knobs.len(), KNOBS.len(), "it states every knob");
        let mut cfg = SimConfig {
            timer_jitter_ns: 1,
            irq_latency_ns: 1,
            ..SimConfig::default()
        };
        p.apply(&mut cfg);
        assert_eq!(format!("{cfg:?}"), format!("{:?}", SimConfig::default()));
    }

    #[test]
    fn every_bundled_profile_loads_and_a_bad_one_says_why() {
        for (name, _) in BUNDLED {
            assert_eq!(Profile::load(name, None).unwrap().name, name);
        }
        let e = Profile::parse("p.toml", "[profile]\nname = \"x\"\n[machine]\ncpus = 4\n");
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("`cpus` is not a cost knob"));
        let e = Profile::parse(
            "p.toml",
            "[profile]\nname = \"x\"\n[machine]\nsyscall = 5\n",
        );
        assert!(e.is_ok(), "a bare number is ns, as in a scenario");
        let e = Profile::parse(
            "p.toml",
            "[profile]\nname = \"x\"\n[machine]\nsyscall = \"5\"\n",
        );
        assert!(e.unwrap_err().to_string().contains("unit"));
        let e = Profile::load("nonesuch", None).unwrap_err();
        assert!(e.to_string().contains("default, qemu-icount0"), "{e}");
    }
}
