//! Metrics of one finished run, computed from its event log: how long grants last, how they
//! end, how long a request waits for its grant, what wakeup-to-run latency every task pays,
//! how busy each CPU was, the kernel's `rseq-slice-hist.py` view of slice durations, and,
//! from the markers programs report, lock hold and wait times and how many critical
//! sections were preempted (`locks`).
//!
//! Everything here is a pure function of a finished [`Simulation`] (its log, tasks and
//! CPUs) and reuses the log views the trace exporters share (grant windows, timer spans,
//! who runs where), so the metrics and the traces agree by construction. The log is only
//! kept with `SimConfig::log` on (scenario runs always keep it); logging never changes the
//! simulation itself. `docs/metrics.md` defines every metric exactly.

mod locks;
mod render;

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use rseq_sim::{LogKind, Simulation};
use serde::Serialize;

use crate::export::timeline::{self, Current, GrantEnd, TimerEnd};
use crate::export::TraceInput;
use locks::LockTracker;

pub use locks::CriticalSections;
pub use render::{render, MetricsFormat, UnknownMetricsFormat};

/// Significant figures of every histogram: values below 2^18 ns (262 µs) are exact, larger
/// ones within one part in 10^5.
pub const SIGFIG: u8 = 5;

/// Why metrics could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The simulation ran with `SimConfig::log` off: there is no event log to read.
    #[error("the simulation kept no event log (SimConfig::log is off)")]
    NoLog,
}

/// A latency/length distribution in ns: count and percentiles from an HdrHistogram.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample (0 without samples).
    pub min: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// Largest sample (0 without samples).
    pub max: u64,
    /// Arithmetic mean (0 without samples).
    pub mean: f64,
}

impl Summary {
    /// Summarise a histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }

    /// The statistics by name, in print order (mean rounded to whole ns).
    pub fn named(&self) -> [(&'static str, u64); 7] {
        [
            ("count", self.count),
            ("min", self.min),
            ("p50", self.p50),
            ("p90", self.p90),
            ("p99", self.p99),
            ("p99.9", self.p99_9),
            ("max", self.max),
        ]
    }
}

/// One CPU's utilisation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuUtil {
    /// CPU number.
    pub cpu: u32,
    /// `Cpu::busy_ns`: time not idle, ns, as the engine counts it (a busy period still
    /// open when the run stops is not included).
    pub busy_ns: u64,
    /// Time some task was current according to the log's switches, ns (open spans end at
    /// the end of the run).
    pub running_ns: u64,
    /// `busy_ns / run_ns` (0 for a run of length 0).
    pub utilisation: f64,
}

/// The `rseq-slice-hist.py` histogram of one task: slice durations from the enforcement
/// timer's start to its cancel, in whole µs, and the slices that expired.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SliceHist {
    /// Whole µs (duration / 1000, rounded down) → number of slices.
    pub us: BTreeMap<u64, u64>,
    /// Slices whose timer fired (the `EXPIRED` bucket).
    pub expired: u64,
}

/// Every metric of one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// Simulated time the run covers, ns.
    pub run_ns: u64,
    /// Were user stores to the control word logged (`log_user_accesses`)? Without them
    /// `request_to_grant` has no samples.
    pub user_accesses_logged: bool,
    /// Grant → the record that ended it, ns (grants still open at the end are not counted).
    pub grant_length: Summary,
    /// User store setting the request → the grant of that task, ns.
    pub request_to_grant: Summary,
    /// Wakeup of a task → the switch that makes it current, ns, over all tasks.
    pub wakeup_to_run: Summary,
    /// How grants ended: `yield`, `abort`, `already_rescheduled`, `expired`, `revoke R2`,
    /// ..., `regranted`, `exit`, `open` (still granted at the end) → count.
    pub grant_ends: BTreeMap<String, u64>,
    /// Grants ended by their timer's expiry (without a yield).
    pub grants_wasted: u64,
    /// `lock_attempt` → `lock_acquired` of the same task and lock, ns.
    pub lock_wait: Summary,
    /// `lock_acquired` → `lock_released` of the same task and lock, ns.
    pub lock_hold: Summary,
    /// Critical sections (`cs_enter` → `cs_exit`) by whether the task was preempted inside.
    pub critical_sections: CriticalSections,
    /// Per CPU, in CPU order.
    pub cpus: Vec<CpuUtil>,
    /// Task name of the timer's starter → its `rseq-slice-hist.py` histogram.
    pub slice_hist: BTreeMap<String, SliceHist>,
}

fn hist() -> Histogram<u64> {
    Histogram::new(SIGFIG).expect("valid significant figures")
}

fn record(h: &mut Histogram<u64>, v: u64) {
    // Auto-resizing histograms accept any u64.
    h.record(v).expect("auto-resizing histogram");
}

/// The key of a grant end in [`Metrics::grant_ends`].
fn end_key(e: GrantEnd) -> String {
    match e {
        GrantEnd::Yielded => "yield".into(),
        GrantEnd::Aborted => "abort".into(),
        GrantEnd::AlreadyRescheduled => "already_rescheduled".into(),
        GrantEnd::Expired => "expired".into(),
        GrantEnd::Revoked(p) => format!("revoke {}", p.tag()),
        GrantEnd::Regranted => "regranted".into(),
        GrantEnd::Exited => "exit".into(),
        GrantEnd::EndOfTrace => "open".into(),
    }
}

impl Metrics {
    /// Compute the metrics of a finished simulation (it needs the event log).
    pub fn compute(sim: &Simulation) -> Result<Metrics, MetricsError> {
        if !sim.config().log {
            return Err(MetricsError::NoLog);
        }
        let input = TraceInput::from_simulation(sim);
        let run_ns = sim.now();

        // Grant windows: length and how they ended.
        let mut grant_length = hist();
        let mut grant_ends: BTreeMap<String, u64> = BTreeMap::new();
        let mut grants_wasted = 0;
        let windows = timeline::grant_windows(&input);
        for w in &windows {
            *grant_ends.entry(end_key(w.end)).or_default() += 1;
            if w.end == GrantEnd::EndOfTrace {
                continue;
            }
            if w.end == GrantEnd::Expired {
                grants_wasted += 1;
            }
            record(&mut grant_length, w.end_ns - w.start_ns);
        }

        // Request → grant, and wakeup → run, in one pass.
        let rev = input.meta.revision;
        let endian = input.meta.endian;
        let mut request_to_grant = hist();
        let mut wakeup_to_run = hist();
        let mut requested: BTreeMap<u32, u64> = BTreeMap::new();
        let mut woken: BTreeMap<u32, u64> = BTreeMap::new();
        let mut current = Current::new(input.cpus);
        let mut locks = LockTracker::new();
        for (i, r) in input.log.iter().enumerate() {
            locks.observe(i, r);
            match r.kind {
                LogKind::UserStore { after, .. } => {
                    if let Some(t) = r.task {
                        if timeline::is_request(&input, r) {
                            requested.entry(t).or_insert(r.time);
                        } else if !after.is_requested(rev, endian) {
                            requested.remove(&t);
                        }
                    }
                }
                LogKind::Revoke { after, .. } => {
                    if let Some(t) = r.task {
                        if !after.is_requested(rev, endian) {
                            requested.remove(&t);
                        }
                    }
                }
                LogKind::Grant { .. } => {
                    if let Some(since) = r.task.and_then(|t| requested.remove(&t)) {
                        record(&mut request_to_grant, r.time - since);
                    }
                }
                LogKind::Wakeup { task, .. } => {
                    let running = (0..input.cpus).any(|c| current.get(c) == Some(task));
                    if !running {
                        woken.entry(task).or_insert(r.time);
                    }
                }
                LogKind::Switch { next: Some(n), .. } => {
                    if let Some(since) = woken.remove(&n) {
                        record(&mut wakeup_to_run, r.time - since);
                    }
                }
                LogKind::TaskExit { .. } => {
                    if let Some(t) = r.task {
                        requested.remove(&t);
                        woken.remove(&t);
                    }
                }
                _ => {}
            }
            current.observe(r);
        }

        let (lock_wait, lock_hold, critical_sections) = locks.finish(&input, &windows);

        // Utilisation.
        let mut running = vec![0u64; input.cpus as usize];
        for s in timeline::running_spans(&input) {
            running[s.cpu as usize] += s.end_ns - s.start_ns;
        }
        let cpus = sim
            .cpus()
            .iter()
            .map(|c| CpuUtil {
                cpu: c.id,
                busy_ns: c.busy_ns,
                running_ns: running[c.id as usize],
                utilisation: if run_ns == 0 {
                    0.0
                } else {
                    c.busy_ns as f64 / run_ns as f64
                },
            })
            .collect();

        // rseq-slice-hist.py: start → cancel (a restart traces a cancel first) or expire.
        let mut slice_hist: BTreeMap<String, SliceHist> = BTreeMap::new();
        for s in timeline::timer_spans(&input) {
            let name = s
                .task
                .map_or_else(|| "<idle>".to_string(), |t| input.task_name(t).to_string());
            match s.end {
                TimerEnd::Cancelled | TimerEnd::Restarted => {
                    *slice_hist
                        .entry(name)
                        .or_default()
                        .us
                        .entry((s.end_ns - s.start_ns) / 1000)
                        .or_default() += 1;
                }
                TimerEnd::Expired { .. } => slice_hist.entry(name).or_default().expired += 1,
                TimerEnd::EndOfTrace => {}
            }
        }

        Ok(Metrics {
            run_ns,
            user_accesses_logged: sim.config().log_user_accesses,
            grant_length: Summary::of(&grant_length),
            request_to_grant: Summary::of(&request_to_grant),
            wakeup_to_run: Summary::of(&wakeup_to_run),
            grant_ends,
            grants_wasted,
            lock_wait,
            lock_hold,
            critical_sections,
            cpus,
            slice_hist,
        })
    }
}
