//! Fidelity against a real kernel: the probes of [`rseq_abi::programs::probes`] run in the
//! simulator, side by side with what a kernel in a VM answered (`slicesim kernel-diff`,
//! `docs/fidelity.md`).
//!
//! The VM's answers arrive as a [`Frame`] (serial console text). Its `meta cmdline` tells
//! the boot options; [`KernelSetup::from_frame`] turns them into the matching
//! [`SimConfig`]. [`run_in_sim`] runs each probe the way the VM's runner does (a fresh
//! process per probe; a noise thread pinned beside it where the probe asks for one) and
//! produces the same keys. [`compare`] holds the two to each other: discrete results must be
//! equal, rates must have the same shape within a tolerance.

use rseq_abi::programs::probes::{
    self, stats_results, Class, Frame, Probe, ProbeRecord, Threads, EXIT_KEY, RUN_WORD,
};
use rseq_abi::programs::selftest::selftest_noise;
use rseq_abi::Revision;
use rseq_sim::{Preempt, SimConfig, Simulation, TaskExit, TaskSpec};

/// Simulated time after which a probe that has not finished is cut off (its longest loop
/// runs 300 ms).
const PROBE_DEADLINE_NS: u64 = 5_000_000_000;
/// Start of the noise thread after the probe's thread, as `spawn_selftest` does: after the
/// probe pinned itself, like `pthread_create` after the fixture's setup.
const NOISE_START_NS: u64 = 10_000;
/// What the VM's runner reports for a child that panicked: Rust's exit code 101.
pub const EXIT_PANIC: i64 = 101;

/// The boot options of the kernel the probes ran on, as far as the simulator models them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSetup {
    /// `preempt=` (default `full`, the kernel's with `CONFIG_PREEMPT`).
    pub preempt: Preempt,
    /// `rseq_slice_ext=` (default on).
    pub slice_ext_boot: bool,
    /// `rseq_debug=` (default off).
    pub rseq_debug: bool,
    /// vCPUs.
    pub cpus: usize,
    /// Protocol revision the kernel speaks (7.1+: post-merge).
    pub revision: Revision,
    /// debugfs `rseq/slice_ext_nsec` while the probes ran (`None`: the default).
    pub slice_ext_nsec: Option<u32>,
    /// The guest clock `slicesim-vm` recorded on the command line (`slicesim.clock=`);
    /// `None` for consoles taken before it did, or a value it does not write.
    pub clock: Option<GuestClock>,
}

/// The clock a VM run's guest ran on (`slicesim.clock=` on its command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestClock {
    /// qemu's instruction counting, 2^shift ns per instruction: deterministic timings.
    Icount(u32),
    /// Plain TCG: the host's clock while the guest's code runs tens of times slower.
    Host,
    /// KVM: hardware speed, the host's clock.
    Kvm,
}

impl GuestClock {
    fn parse(v: &str) -> Option<GuestClock> {
        match v {
            "host" => Some(GuestClock::Host),
            "kvm" => Some(GuestClock::Kvm),
            _ => v
                .strip_prefix("icount")?
                .parse()
                .ok()
                .map(GuestClock::Icount),
        }
    }
}

impl std::fmt::Display for GuestClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GuestClock::Icount(n) => write!(f, "icount{n}"),
            GuestClock::Host => f.write_str("host"),
            GuestClock::Kvm => f.write_str("kvm"),
        }
    }
}

impl KernelSetup {
    /// Were the kernel's timings deterministic (qemu's instruction counting), so that its
    /// rates are a claim the simulator is held to?
    pub fn deterministic_clock(&self) -> bool {
        matches!(self.clock, Some(GuestClock::Icount(_)))
    }
}

impl Default for KernelSetup {
    fn default() -> Self {
        Self {
            preempt: Preempt::Full,
            slice_ext_boot: true,
            rseq_debug: false,
            cpus: 4,
            revision: Revision::PostMerge,
            slice_ext_nsec: None,
            clock: None,
        }
    }
}

/// A boot option the simulator cannot mirror.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SetupError {
    /// `preempt=` with a model the simulator does not know.
    #[error("preempt={0}: the simulator knows none, voluntary, full, lazy")]
    Preempt(String),
    /// A `meta` value that does not parse.
    #[error("meta {key} = {value}: not understood")]
    Meta {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
    },
}

/// `kstrtobool()`'s reading of a boot option's value (first character decides; `on`/`off`).
fn kstrtobool(v: &str) -> Option<bool> {
    match v.as_bytes() {
        [b'1' | b'y' | b'Y', ..] => Some(true),
        [b'0' | b'n' | b'N', ..] => Some(false),
        [b'o' | b'O', b'n' | b'N', ..] => Some(true),
        [b'o' | b'O', b'f' | b'F', ..] => Some(false),
        _ => None,
    }
}

impl KernelSetup {
    /// Read the setup from a kernel command line. Options the simulator does not model are
    /// ignored; an unparsable boolean is ignored as the kernel does (its handler returns 0).
    pub fn from_cmdline(cmdline: &str) -> Result<Self, SetupError> {
        let mut s = Self::default();
        for opt in cmdline.split_whitespace() {
            let Some((k, v)) = opt.split_once('=') else {
                continue;
            };
            match k {
                "preempt" => {
                    // sched_dynamic_mode() on an architecture with lazy preemption accepts
                    // only `full` and `lazy`; `none` and `voluntary` are "unsupported" and
                    // ignored (the build's default stays); `rt` is a build option.
                    match v {
                        "full" => s.preempt = Preempt::Full,
                        "lazy" => s.preempt = Preempt::Lazy,
                        "none" | "voluntary" => {}
                        _ => return Err(SetupError::Preempt(v.to_string())),
                    }
                }
                "rseq_slice_ext" => s.slice_ext_boot = kstrtobool(v).unwrap_or(s.slice_ext_boot),
                "rseq_debug" => s.rseq_debug = kstrtobool(v).unwrap_or(s.rseq_debug),
                "slicesim.clock" => s.clock = GuestClock::parse(v),
                _ => {}
            }
        }
        Ok(s)
    }

    /// The setup a frame's `meta` describes: `cmdline`, `cpus`, `revision`,
    /// `slice_ext_nsec`.
    pub fn from_frame(frame: &Frame) -> Result<Self, SetupError> {
        let mut s = Self::from_cmdline(frame.meta("cmdline").unwrap_or(""))?;
        if let Some(c) = frame.meta("cpus") {
            s.cpus = c.parse().map_err(|_| SetupError::Meta {
                key: "cpus",
                value: c.to_string(),
            })?;
        }
        if let Some(ns) = frame.meta("slice_ext_nsec") {
            s.slice_ext_nsec = Some(ns.parse().map_err(|_| SetupError::Meta {
                key: "slice_ext_nsec",
                value: ns.to_string(),
            })?);
        }
        if let Some(r) = frame.meta("revision") {
            s.revision = Revision::from_name(r).ok_or_else(|| SetupError::Meta {
                key: "revision",
                value: r.to_string(),
            })?;
        }
        Ok(s)
    }

    /// The simulator's configuration for this kernel: HZ=1000 and the default costs, no
    /// event log (nothing reads it).
    pub fn sim_config(&self, seed: u64) -> SimConfig {
        SimConfig {
            cpus: self.cpus,
            hz: 1000,
            preempt: self.preempt,
            revision: self.revision,
            slice_ext_boot: self.slice_ext_boot,
            rseq_debug: self.rseq_debug,
            slice_ext_nsec: self.slice_ext_nsec,
            seed,
            log: false,
            log_user_accesses: false,
            ..SimConfig::default()
        }
    }
}

/// What the VM's runner reports as [`EXIT_KEY`] for a task that ended this way.
fn exit_code(exit: Option<&TaskExit>) -> i64 {
    match exit {
        Some(TaskExit::Exited) => 0,
        Some(TaskExit::Signaled { signo, .. }) => i64::from(*signo),
        Some(TaskExit::Panicked(_)) => EXIT_PANIC,
        Some(TaskExit::StepBudget(_) | TaskExit::SpawnFailed(_) | TaskExit::Livelock { .. })
        | None => -1,
    }
}

/// A fresh simulation with `probe`'s threads spawned, as the VM's runner starts them;
/// returns it with the main thread's id.
fn start_probe(
    probe: &'static Probe,
    cfg: &SimConfig,
) -> Result<(Simulation, u32), rseq_sim::SimError> {
    let mut sim = Simulation::new(cfg.clone())?;
    let mut spec = TaskSpec::new(probe.name);
    spec.affinity = probes::affinity(probe);
    let main = sim.spawn(
        spec,
        Box::new(move |p| {
            probe.quiet_start(p);
            (probe.main)(p)
        }),
    );
    if let Threads::WithNoise(params) = probe.threads {
        sim.set_shared_word(RUN_WORD, 1);
        let mut noise = TaskSpec::new("noise");
        noise.affinity = probes::affinity(probe);
        noise.thread_of = Some(main);
        noise.start_ns = NOISE_START_NS;
        sim.spawn(
            noise,
            Box::new(move |p| vec![("bursts", selftest_noise(p, &params, RUN_WORD) as i64)]),
        );
    }
    Ok((sim, main))
}

/// Run one probe in a fresh simulation, with the keys the VM's runner reports.
pub fn run_probe(
    probe: &'static Probe,
    cfg: &SimConfig,
) -> Result<ProbeRecord, rseq_sim::SimError> {
    let (mut sim, main) = start_probe(probe, cfg)?;
    sim.run_until_cond(PROBE_DEADLINE_NS, |s| {
        s.tasks()[main as usize].exit.is_some()
    });
    // A killed probe takes its whole process down on a real kernel: stop the noise thread.
    sim.set_shared_word(RUN_WORD, 0);
    sim.run_until_cond(PROBE_DEADLINE_NS * 2, Simulation::all_exited);
    let task = &sim.tasks()[main as usize];
    let mut results: Vec<(String, i64)> = match task.exit {
        Some(TaskExit::Exited) => task
            .counters
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        _ => Vec::new(),
    };
    results.push((EXIT_KEY.to_string(), exit_code(task.exit.as_ref())));
    let st = sim.stats();
    let after = [st.granted, st.expired, st.revoked, st.yielded, st.aborted];
    results.extend(
        stats_results([0; 5], after)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    Ok(ProbeRecord {
        probe: probe.name.to_string(),
        results,
    })
}

/// Run the probes `names` (every probe when empty) in the simulator.
pub fn run_in_sim(names: &[&str], cfg: &SimConfig) -> Result<Frame, rseq_sim::SimError> {
    let mut frame = Frame::default();
    for probe in probes::PROBES {
        if names.is_empty() || names.contains(&probe.name) {
            frame.probes.push(run_probe(probe, cfg)?);
        }
    }
    Ok(frame)
}

/// How one result compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// Discrete and equal, or a rate that is zero on both sides.
    Equal,
    /// A rate whose share differs by at most the tolerance.
    Within {
        /// Kernel share minus simulator share.
        delta: f64,
    },
    /// A rate with a different shape: zero on one side only, or shares further apart than
    /// the tolerance.
    RateDiffers {
        /// Kernel share minus simulator share (0 when only the zero-ness differs).
        delta: f64,
    },
    /// A discrete result that differs, or a result only one side has.
    Differs,
}

impl Verdict {
    /// Does this fail `kernel-diff` (a discrete disagreement)?
    pub fn fails(self) -> bool {
        self == Verdict::Differs
    }

    fn label(self) -> String {
        match self {
            Verdict::Equal => "equal".into(),
            Verdict::Within { delta } => format!("within ({delta:+.2})"),
            Verdict::RateDiffers { delta } => format!("RATE DIFFERS ({delta:+.2})"),
            Verdict::Differs => "DIFFERS".into(),
        }
    }
}

/// One row of the side-by-side table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Probe name.
    pub probe: String,
    /// Result key.
    pub key: String,
    /// How it is compared.
    pub class: Class,
    /// The kernel's value (`None`: the kernel did not report it).
    pub kernel: Option<i64>,
    /// The simulator's value.
    pub sim: Option<i64>,
    /// The comparison.
    pub verdict: Verdict,
}

/// The key a rate is a share of: a probe's loop count (`total`, or `commits` for the
/// sequence probes) for its own counters and for `stats.sgrant`, and `stats.sgrant` for the
/// other `stats.*` deltas. `None` for the loop count itself, which is compared by
/// zero-ness only here: how many loop iterations fit in 300 ms depends on the CPU, and
/// under TCG on the emulator.
fn base_of(rec: &[(String, i64)], key: &str) -> Option<&'static str> {
    let has = |k: &str| rec.iter().any(|(r, _)| r == k);
    let loop_count = if !has("total") && has("commits") {
        "commits"
    } else {
        "total"
    };
    match key {
        k if k == loop_count => None,
        k if k.starts_with(probes::STATS_PREFIX) && k != "stats.sgrant" => Some("stats.sgrant"),
        _ => Some(loop_count),
    }
}

fn share(rec: &[(String, i64)], key: &str, value: i64) -> Option<f64> {
    let base = base_of(rec, key)?;
    let b = rec.iter().find(|(k, _)| k == base)?.1;
    (b > 0).then(|| value as f64 / b as f64)
}

/// Compare a rate: same zero-ness, then shares of its base within `tolerance`.
fn compare_rate(
    key: &str,
    k: (&[(String, i64)], i64),
    s: (&[(String, i64)], i64),
    tolerance: f64,
) -> Verdict {
    match (k.1 == 0, s.1 == 0) {
        (true, true) => return Verdict::Equal,
        (true, false) | (false, true) => return Verdict::RateDiffers { delta: 0.0 },
        _ => {}
    }
    match (share(k.0, key, k.1), share(s.0, key, s.1)) {
        (Some(a), Some(b)) if (a - b).abs() <= tolerance => Verdict::Within { delta: a - b },
        (Some(a), Some(b)) => Verdict::RateDiffers { delta: a - b },
        // No base to divide by (the base key itself): both non-zero is the shape.
        _ => Verdict::Within { delta: 0.0 },
    }
}

/// Compare every probe's results, in the kernel frame's order, then results only the
/// simulator has. `tolerance` is the largest accepted difference between two shares.
pub fn compare(kernel: &Frame, sim: &Frame, tolerance: f64) -> Vec<Row> {
    let empty = ProbeRecord::default();
    let mut rows = Vec::new();
    let mut names: Vec<&str> = kernel.probes.iter().map(|p| p.probe.as_str()).collect();
    for p in &sim.probes {
        if !names.contains(&p.probe.as_str()) {
            names.push(&p.probe);
        }
    }
    for name in names {
        let k = kernel.probe(name).unwrap_or(&empty);
        let s = sim.probe(name).unwrap_or(&empty);
        let mut keys: Vec<&str> = k.results.iter().map(|(k, _)| k.as_str()).collect();
        for (key, _) in &s.results {
            if !keys.contains(&key.as_str()) {
                keys.push(key);
            }
        }
        let class_of = |key: &str| probes::find(name).map_or(Class::Discrete, |p| p.class(key));
        // When whether the probe dies is itself timing, so is which results it lived to report.
        let death_is_timing = class_of(EXIT_KEY) == Class::Rate;
        for key in keys {
            let kv = k.results.iter().find(|(x, _)| x == key).map(|(_, v)| *v);
            let sv = s.results.iter().find(|(x, _)| x == key).map(|(_, v)| *v);
            let class = class_of(key);
            let verdict = match (kv, sv, class) {
                (Some(a), Some(b), Class::Discrete) if a == b => Verdict::Equal,
                (Some(a), Some(b), Class::Rate) => {
                    compare_rate(key, (&k.results, a), (&s.results, b), tolerance)
                }
                (None, Some(_), _) | (Some(_), None, _) if death_is_timing => {
                    Verdict::RateDiffers { delta: 0.0 }
                }
                _ => Verdict::Differs,
            };
            rows.push(Row {
                probe: name.to_string(),
                key: key.to_string(),
                class,
                kernel: kv,
                sim: sv,
                verdict,
            });
        }
    }
    rows
}

/// A rate held to the kernel's with the uncertainty of its own counts (issue 14): the
/// kernel's share `count / base` against the simulator's, by a two-proportion z-test, with
/// the Wilson 95 % interval of the kernel's share. Only rates whose base both sides
/// report (and that do not exceed it) are tested.
#[derive(Clone, Debug, PartialEq)]
pub struct RateTest {
    /// Probe name.
    pub probe: String,
    /// Result key.
    pub key: String,
    /// The base key the share is of.
    pub base: &'static str,
    /// The kernel's count and base.
    pub kernel: (i64, i64),
    /// The simulator's count and base.
    pub sim: (i64, i64),
    /// Wilson 95 % interval of the kernel's share.
    pub interval: (f64, f64),
    /// The two-proportion z statistic (kernel minus simulator).
    pub z: f64,
    /// For rare events (fewer than [`EXACT_BELOW`] on both sides together), the exact
    /// two-sided p-value of the split between the sides, which then decides instead of `z`.
    pub p_exact: Option<f64>,
}

/// Below this many events on both sides together a share is tested exactly: given the `k`
/// events, the kernel's count is Binomial(`k`, its share of the trials) if both sides
/// have one rate, and the normal approximation behind `z` is poor (0 against 4 in 2,600
/// trials each is |z| = 1.97, where the exact test gives p = 0.13).
pub const EXACT_BELOW: i64 = 30;

/// Two-sided p-value of `x1` events of `x1 + x2` falling on side 1, whose share of the
/// trials is `n1 / (n1 + n2)`: the probability of every split at most as likely.
fn exact_split_p(x1: i64, n1: i64, x2: i64, n2: i64) -> f64 {
    let k = (x1 + x2) as usize;
    let pi = n1 as f64 / (n1 + n2) as f64;
    // Binomial(k, pi) probabilities by the recurrence P(i+1) = P(i) (k-i)/(i+1) pi/(1-pi),
    // from P(0) = (1-pi)^k; k < EXACT_BELOW keeps it exact enough in f64.
    let mut probs = Vec::with_capacity(k + 1);
    let mut pr = (1.0 - pi).powi(k as i32);
    for i in 0..=k {
        probs.push(pr);
        pr *= (k - i) as f64 / (i + 1) as f64 * pi / (1.0 - pi);
    }
    let observed = probs[x1 as usize];
    probs
        .iter()
        .filter(|&&q| q <= observed * (1.0 + 1e-9))
        .sum::<f64>()
        .min(1.0)
}

/// The relative difference a rate may have from the kernel's whatever its counts
/// (issue 14's target: 10 %).
pub const RELATIVE_TOLERANCE: f64 = 0.10;

/// |z| beyond which two shares differ at the 5 % level.
pub const Z_95: f64 = 1.959_964;

impl RateTest {
    /// Are the two shares consistent at the 5 % level (exactly, for rare events)?
    pub fn consistent(&self) -> bool {
        match self.p_exact {
            Some(p) => p >= 0.05,
            None => self.z.abs() <= Z_95,
        }
    }

    /// The simulator's share relative to the kernel's, minus one (infinite when the
    /// kernel's is zero and the simulator's is not; for a `total`, the counts').
    pub fn relative(&self) -> f64 {
        let k = self.kernel.0 as f64 / self.kernel.1.max(1) as f64;
        let m = self.sim.0 as f64 / self.sim.1.max(1) as f64;
        if k == 0.0 {
            return if m == 0.0 { 0.0 } else { f64::INFINITY };
        }
        m / k - 1.0
    }

    /// Does the rate hold to the kernel's: within [`RELATIVE_TOLERANCE`], or, where the
    /// counts are too small for that, statistically consistent at the 5 % level?
    pub fn holds(&self) -> bool {
        self.relative().abs() <= RELATIVE_TOLERANCE || self.consistent()
    }
}

/// Wilson score interval at 95 % for `x` successes in `n` trials.
fn wilson(x: i64, n: i64) -> (f64, f64) {
    let (x, n) = (x as f64, n as f64);
    let p = x / n;
    let z2 = Z_95 * Z_95;
    let d = 1.0 + z2 / n;
    let c = (p + z2 / (2.0 * n)) / d;
    let h = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / d;
    ((c - h).max(0.0), (c + h).min(1.0))
}

/// The statistical test of every rate row that has a base on both sides.
pub fn rate_tests(kernel: &Frame, sim: &Frame, rows: &[Row]) -> Vec<RateTest> {
    let value = |f: &Frame, probe: &str, key: &str| {
        f.probe(probe)?
            .results
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| *v)
    };
    rows.iter()
        .filter(|r| r.class == Class::Rate)
        .filter_map(|r| {
            let Some(base) = base_of(&kernel.probe(&r.probe)?.results, &r.key) else {
                return total_test(r);
            };
            let (x1, x2) = (r.kernel?, r.sim?);
            let n1 = value(kernel, &r.probe, base)?;
            let n2 = value(sim, &r.probe, base)?;
            if n1 <= 0 || n2 <= 0 || x1 < 0 || x2 < 0 || x1 > n1 || x2 > n2 {
                return None;
            }
            let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
            let p = (x1 + x2) as f64 / (n1 + n2) as f64;
            let se = (p * (1.0 - p) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
            let z = if se > 0.0 {
                (p1 - p2) / se
            } else if p1 == p2 {
                0.0
            } else {
                f64::INFINITY
            };
            // Both bases are positive here, so the split's odds are defined.
            let p_exact = (x1 + x2 < EXACT_BELOW).then(|| exact_split_p(x1, n1, x2, n2));
            Some(RateTest {
                probe: r.probe.clone(),
                key: r.key.clone(),
                base,
                kernel: (x1, n1),
                sim: (x2, n2),
                interval: wilson(x1, n1),
                z,
                p_exact,
            })
        })
        .collect()
}

/// A loop's `total` (iterations in the probe's time): the counts themselves, with the
/// Poisson 95 % interval of their difference (`1.96 * sqrt(k + s)`) as the statistical
/// allowance; shown with base 1.
fn total_test(r: &Row) -> Option<RateTest> {
    let (k, m) = (r.kernel?, r.sim?);
    if k <= 0 || m < 0 {
        return None;
    }
    let sd = ((k + m) as f64).sqrt();
    let z = if sd > 0.0 { (k - m) as f64 / sd } else { 0.0 };
    let h = Z_95 * (k as f64).sqrt();
    Some(RateTest {
        probe: r.probe.clone(),
        key: r.key.clone(),
        base: "1",
        kernel: (k, 1),
        sim: (m, 1),
        interval: ((k as f64 - h).max(0.0), k as f64 + h),
        z,
        p_exact: None,
    })
}

/// The tests as a table (also valid Markdown), then how many are consistent.
pub fn render_rate_tests(tests: &[RateTest]) -> String {
    let mut s = String::from(
        "| probe | rate | kernel | kernel 95 % | simulator | relative | z | verdict |\n|---|---|---:|---|---:|---:|---:|---|\n",
    );
    for t in tests {
        let share = |(x, n): (i64, i64)| {
            if n == 1 {
                x.to_string()
            } else {
                format!("{x}/{n} = {:.4}", x as f64 / n as f64)
            }
        };
        let interval = if t.base == "1" {
            format!("{:.0}..{:.0}", t.interval.0, t.interval.1)
        } else {
            format!("{:.4}..{:.4}", t.interval.0, t.interval.1)
        };
        let what = if t.base == "1" {
            t.key.clone()
        } else {
            format!("{} per {}", t.key, t.base)
        };
        let z = match t.p_exact {
            Some(p) => format!("{:+.2} (exact p {p:.3})", t.z),
            None => format!("{:+.2}", t.z),
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {:+.1} % | {} | {} |\n",
            t.probe,
            what,
            share(t.kernel),
            interval,
            share(t.sim),
            t.relative() * 100.0,
            z,
            if t.holds() { "holds" } else { "OUTSIDE" }
        );
    }
    let ok = tests.iter().filter(|t| t.holds()).count();
    s += &format!(
        "\n{ok} of {} rates hold: within {:.0} % of the kernel's, or consistent with it at the 5 % level \
         (two-proportion z-test on the counts, the exact binomial split below {EXACT_BELOW} events; \
         for a total, the Poisson interval of the difference)\n",
        tests.len(),
        RELATIVE_TOLERANCE * 100.0
    );
    s
}

/// The rows as a fixed-width table (also valid Markdown), then a one-line summary.
pub fn render(rows: &[Row]) -> String {
    let cell = |v: Option<i64>| v.map_or("—".to_string(), |v| v.to_string());
    let mut s = String::from(
        "| probe | result | class | kernel | simulator | verdict |\n|---|---|---|---:|---:|---|\n",
    );
    for r in rows {
        let class = match r.class {
            Class::Discrete => "discrete",
            Class::Rate => "rate",
        };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.probe,
            r.key,
            class,
            cell(r.kernel),
            cell(r.sim),
            r.verdict.label()
        );
    }
    let fails = rows.iter().filter(|r| r.verdict.fails()).count();
    let rate = rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::RateDiffers { .. }))
        .count();
    s += &format!(
        "\n{} results: {} discrete disagreements, {} rates outside the tolerance\n",
        rows.len(),
        fails,
        rate
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noisy_probe_asks_for_nothing_until_its_quiet_start_is_over() {
        let probe = probes::find("writes_granted").unwrap();
        let cfg = KernelSetup::default().sim_config(1);
        let (mut sim, main) = start_probe(probe, &cfg).unwrap();
        sim.run_until(probes::QUIET_START_NS);
        assert_eq!(sim.stats().granted, 0, "a grant inside the quiet start");
        assert!(sim.tasks()[main as usize].exit.is_none());
        sim.run_until(probes::QUIET_START_NS + 50_000_000);
        assert!(sim.stats().granted > 100, "the timed part follows at once");
        // A probe without noise starts at once: it is over long before.
        let (mut sim, main) = start_probe(probes::find("registration").unwrap(), &cfg).unwrap();
        sim.run_until(1_000_000);
        assert!(sim.tasks()[main as usize].exit.is_some());
    }

    #[test]
    fn rare_events_are_tested_exactly() {
        // 0 against 4 in equal trials: |z| = 2, but 4 events split 4-0 by chance one time
        // in eight.
        let p = exact_split_p(0, 2_600, 4, 2_600);
        assert!((p - 0.125).abs() < 1e-9, "{p}");
        // 0 against 12 is not chance (2 / 4096).
        assert!(exact_split_p(0, 2_600, 12, 2_600) < 0.001);
        // The same share is p = 1; unequal trials shift the expected split.
        assert!((exact_split_p(3, 1_000, 3, 1_000) - 1.0).abs() < 1e-9);
        assert!(exact_split_p(1, 100, 9, 900) > 0.9);
    }

    #[test]
    fn wilson_intervals_hold_the_share_and_shrink_with_the_count() {
        let (lo, hi) = wilson(50, 100);
        assert!(
            lo < 0.5 && hi > 0.5 && (0.39..0.41).contains(&lo),
            "{lo} {hi}"
        );
        let (lo2, hi2) = wilson(5000, 10000);
        assert!(hi2 - lo2 < (hi - lo) / 5.0);
        assert_eq!(wilson(0, 10).0, 0.0);
        assert!(
            wilson(0, 10).1 > 0.2,
            "no events in 10 is still compatible with 20 %"
        );
    }
}
