//! Generative testing: random valid scenarios and random mutations of the bundled ones,
//! each run under a small budget and held to what every run must satisfy.
//!
//! [`generate`] writes a scenario from the format's own vocabulary (every program, every
//! interrupt kind, the machine's knobs, zero costs included); [`mutate`] changes a bundled
//! file's text (a number, a duplicated or dropped line, a stray byte). [`check_case`] loads
//! and runs a case twice: it must end with a result or a clear error (never a panic, never
//! past its budget), the two runs must give the same log hash, and the counter identities
//! must hold. [`shrink`] drops lines of a failing case while it still fails. The test
//! suite runs a few hundred cases (`tests/generative.rs`); `cargo run --release --example
//! soak -- --cases N` runs many and saves each failure shrunk.

use std::path::Path;

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use rseq_sim::{LogKind, LogRecord};

use crate::scenario::{self, RunOptions, ScenarioError};

/// Most simulated events of one generated run.
pub const CASE_EVENTS: u64 = 300_000;

/// A small deterministic generator of choices.
pub struct Gen(Pcg64Mcg);

impl Gen {
    /// The generator of case `seed`.
    pub fn new(seed: u64) -> Self {
        Gen(Pcg64Mcg::seed_from_u64(seed))
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}

const PROGRAMS: [&str; 8] = [
    "selftest",
    "selftest_noise",
    "spinlock",
    "misbehave",
    "script",
    "sleeper",
    "spinner",
    "script",
];
const IRQ_KINDS: [&str; 6] = [
    "device",
    "device_resched",
    "device_resched_lazy",
    "exception",
    "resched_ipi",
    "membarrier_ipi",
];
const MISBEHAVIORS: [&str; 6] = [
    "never_yields",
    "writes_granted",
    "tampers_flags",
    "request_while_granted",
    "syscall_in_grant",
    "reserved_bytes",
];
const STEPS: [&str; 23] = [
    "register",
    "enable",
    "request",
    "release",
    "burn 1us",
    "burn 0ns",
    "sleep 5us",
    "yield",
    "getpid",
    "sched_yield",
    "load request",
    "load granted",
    "store request 1",
    "unmap",
    "map",
    "membarrier register",
    "membarrier rseq",
    "mark cs_enter",
    "mark cs_exit",
    "disable",
    "unregister",
    "affinity 1",
    "panic",
];
const COSTS: [&str; 4] = ["0ns", "1ns", "20ns", "1us"];

/// A random valid-looking scenario (case `seed`); a few are invalid on purpose (the
/// generator does not know every cross-check), which must then be clear errors.
pub fn generate(seed: u64) -> String {
    let mut g = Gen::new(seed);
    let cpus = 1 + g.below(4);
    let duration = g.pick(&["20us", "200us", "1ms", "3ms"]);
    let mut s = format!(
        "[scenario]\nname = \"gen-{seed}\"\nduration = \"{duration}\"\nseed = {}\n\n[machine]\ncpus = {cpus}\n",
        g.below(100)
    );
    s += &format!("hz = {}\n", g.pick(&["100", "250", "1000", "10000"]));
    s += &format!(
        "preempt = \"{}\"\n",
        g.pick(&["full", "lazy", "rt", "full"])
    );
    s += &format!(
        "revision = \"{}\"\n",
        g.pick(&["v1", "merged", "post-merge"])
    );
    s += &format!("rseq_debug = {}\n", g.one_in(3));
    s += &format!("tie_break = \"{}\"\n", g.pick(&["fifo", "seeded"]));
    s += &format!("load_balance = {}\n", !g.one_in(3));
    s += &format!("hrtick = {}\n", !g.one_in(3));
    for key in [
        "shared_access",
        "mem_access",
        "syscall",
        "irq_latency",
        "ctx_switch",
    ] {
        if g.one_in(3) {
            s += &format!("{key} = \"{}\"\n", g.pick(&COSTS));
        }
    }
    let tasks = 1 + g.below(4);
    for t in 0..tasks {
        let program = g.pick(&PROGRAMS);
        s += &format!("\n[[task]]\nname = \"t{t}\"\nprogram = \"{program}\"\n");
        if g.one_in(4) {
            s += &format!("count = {}\n", 1 + g.below(3));
        }
        if g.one_in(4) {
            s += &format!("cpus = [{}]\n", g.below(cpus));
        }
        match program {
            "selftest" | "selftest_noise" => {
                s += &format!(
                    "variant = \"{}\"\n",
                    g.pick(&["n2_2_50", "n50_2_50", "n2_2_50_no_yield"])
                );
                if program == "selftest" {
                    s += "total = \"200us\"\n";
                }
            }
            "spinlock" => {
                s += &format!(
                    "hold = \"{}\"\nthink = \"{}\"\nuse_ext = {}\n",
                    g.pick(&["0ns", "1us", "2us"]),
                    g.pick(&["0ns", "1us"]),
                    !g.one_in(3)
                );
            }
            "misbehave" => {
                s += &format!(
                    "misbehavior = \"{}\"\niterations = {}\n",
                    g.pick(&MISBEHAVIORS),
                    1 + g.below(20)
                );
            }
            "script" => {
                let n = 1 + g.below(8);
                let mut steps: Vec<String> = vec!["register".into(), "enable".into()];
                let looped = g.one_in(2);
                if looped {
                    steps.push(format!("loop {}", 1 + g.below(1_000_000)));
                }
                for _ in 0..n {
                    steps.push(g.pick(&STEPS).to_string());
                }
                if looped {
                    steps.push("end".into());
                }
                let quoted: Vec<String> = steps.iter().map(|s| format!("{s:?}")).collect();
                s += &format!("steps = [{}]\n", quoted.join(", "));
            }
            _ => {
                s += &format!(
                    "hold = \"{}\"\niterations = {}\n",
                    g.pick(&["0ns", "1us", "50us"]),
                    1 + g.below(1000)
                );
            }
        }
    }
    for _ in 0..g.below(4) {
        s += &format!(
            "\n[[irq]]\ncpu = {}\nkind = \"{}\"\n",
            g.below(cpus),
            g.pick(&IRQ_KINDS)
        );
        s += match g.below(3) {
            0 => "at = \"10us\"\n",
            1 => "every = \"7us\"\n",
            _ => "rate_hz = 20000.0\n",
        };
    }
    if g.one_in(4) {
        s += &format!(
            "\n[[signal]]\ntask = \"t0\"\nat = \"15us\"\nsigno = {}\n",
            g.pick(&["9", "10", "11", "15"])
        );
    }
    s
}

/// A random change to `text` (a bundled scenario): a number changed, a line duplicated
/// or dropped, or a stray byte.
pub fn mutate(text: &str, seed: u64) -> Vec<u8> {
    let mut g = Gen::new(seed);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + g.below(3) {
        if lines.is_empty() {
            break;
        }
        let i = g.below(lines.len() as u64) as usize;
        match g.below(5) {
            0 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            1 => {
                lines.remove(i);
            }
            2 => {
                let n = g.pick(&["0", "1", "4294967296", "-1", "999999999999", "\"0ns\""]);
                lines[i] = replace_number(&lines[i], n);
            }
            3 => {
                let n = g.pick(&["\"0ns\"", "\"3600s\"", "\"1ns\""]);
                if let Some((k, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{k}= {n}");
                }
            }
            _ => lines[i].push_str(g.pick(&["]", "\"", "[[", "x", "\u{fffd}"])),
        }
    }
    let mut out = lines.join("\n").into_bytes();
    if g.one_in(20) {
        let at = g.below(out.len() as u64 + 1) as usize;
        out.insert(at, 0xff);
    }
    out
}

fn replace_number(line: &str, n: &str) -> String {
    let Some(start) = line.find(|c: char| c.is_ascii_digit()) else {
        return line.to_string();
    };
    let end = line[start..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(line.len(), |e| start + e);
    format!("{}{n}{}", &line[..start], &line[end..])
}

/// How a case ended when it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Refused with a clear error (invalid scenario).
    Invalid(String),
    /// Stopped by a budget.
    Budget(String),
    /// Ran to its end.
    Ran {
        /// The log's hash.
        hash: u64,
    },
}

/// Load and run `bytes` (as a scenario file at `path`) twice under a small budget: a
/// verdict, or why the case fails (a panic is caught and reported as a failure).
pub fn check_case(path: &Path, bytes: &[u8]) -> Result<Verdict, String> {
    std::panic::catch_unwind(|| check_unwinding(path, bytes))
        .unwrap_or_else(|p| Err(format!("panic: {}", panic_text(p.as_ref()))))
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

fn check_unwinding(path: &Path, bytes: &[u8]) -> Result<Verdict, String> {
    std::fs::write(path, bytes).map_err(|e| e.to_string())?;
    let mut l = match scenario::load(path, &[]) {
        Ok(l) => l,
        Err(e @ ScenarioError::Invalid { .. }) => return Ok(Verdict::Invalid(e.to_string())),
        Err(e) => return Err(format!("load: {e}")),
    };
    l.budget.max_events = l.budget.max_events.min(CASE_EVENTS);
    l.budget.max_user_steps = l.budget.max_user_steps.min(CASE_EVENTS);
    let mut hashes = Vec::new();
    for _ in 0..2 {
        let mut hash = Hasher::default();
        let mut identity = Identities::default();
        let r = scenario::run_streamed(
            &l,
            &RunOptions::default(),
            &mut |_, rs| {
                hash.feed(rs);
                identity.feed(rs);
                Ok(())
            },
            &mut |_, _| {},
        );
        match r {
            Ok(r) => {
                identity.check(&r.sim)?;
                if r.sim.events_processed() > CASE_EVENTS + 2 * crate::budget::CHUNK_EVENTS {
                    return Err(format!(
                        "{} events: past the budget",
                        r.sim.events_processed()
                    ));
                }
                hashes.push(hash.0);
            }
            Err(ScenarioError::Budget(e)) => return Ok(Verdict::Budget(e.to_string())),
            Err(e @ ScenarioError::Invalid { .. }) => return Ok(Verdict::Invalid(e.to_string())),
            Err(e) => return Err(format!("run: {e}")),
        }
    }
    if hashes[0] != hashes[1] {
        return Err(format!("two runs, two log hashes: {hashes:x?}"));
    }
    Ok(Verdict::Ran { hash: hashes[0] })
}

/// FNV-1a over the log's text, fed chunk by chunk (the same as `rseq_sim::trace::log_hash`
/// of the whole log).
struct Hasher(u64);

impl Default for Hasher {
    fn default() -> Self {
        Hasher(rseq_sim::trace::fnv1a(&[]))
    }
}

impl Hasher {
    fn feed(&mut self, rs: &[LogRecord]) {
        for r in rs {
            for b in format!("{r}\n").bytes() {
                self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
}

/// The counters' identities, from the log: every expiry that hit is followed by a revoke
/// of a grant on the same CPU, and grants end no more often than they start.
#[derive(Default)]
struct Identities {
    /// CPUs with an expiry not yet followed by a revoke.
    expired: std::collections::BTreeSet<u32>,
}

impl Identities {
    fn feed(&mut self, rs: &[LogRecord]) {
        for r in rs {
            match &r.kind {
                LogKind::TimerExpire { hit: true } => {
                    self.expired.insert(r.cpu);
                }
                LogKind::Revoke {
                    was_granted: true, ..
                }
                | LogKind::Switch { .. } => {
                    self.expired.remove(&r.cpu);
                }
                _ => {}
            }
        }
    }

    fn check(&self, sim: &rseq_sim::Simulation) -> Result<(), String> {
        let s = sim.stats();
        let ended = s.yielded + s.aborted + s.revoked;
        if ended > s.granted {
            return Err(format!("{s:?}: more grants ended than granted"));
        }
        // A grant still held, or held by a task when it died (a fatal signal inside a grant
        // ends it uncounted, as in the kernel model: see the report of issue 15).
        let outstanding = sim.tasks().iter().filter(|t| t.rseq.granted).count() as u64;
        if sim.all_exited() && !self.expired.is_empty() {
            return Err(format!(
                "an expiry on CPU {:?} was never followed by a revoke",
                self.expired
            ));
        }
        if sim.all_exited() && s.granted != ended + outstanding {
            return Err(format!(
                "{s:?}: s_granted != s_yielded + s_aborted + s_revoked with no grant outstanding"
            ));
        }
        Ok(())
    }
}

/// Drop lines of a failing case while it still fails (with a failure, not a verdict).
pub fn shrink(path: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let mut i = 0;
    while i < lines.len() {
        let mut fewer = lines.clone();
        fewer.remove(i);
        if check_case(path, &fewer.join(&b'\n')).is_err() {
            lines = fewer;
        } else {
            i += 1;
        }
    }
    lines.join(&b'\n')
}
