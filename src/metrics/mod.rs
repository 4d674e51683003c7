//! Metrics of one finished run, computed from its event log: how long grants last, how they
//! end, how long a request waits for its grant, what wakeup-to-run latency every task pays,
//! how busy each CPU was, the kernel's `rseq-slice-hist.py` view of slice durations, and,
//! from the markers programs report, lock hold and wait times and how many critical
//! sections were preempted (`locks`).
//!
//! Everything here is a function of a run's log (and its tasks and CPUs), read record by
//! record in one pass ([`MetricsStream`]) with the same definitions as the log views the
//! trace exporters share (grant windows, timer spans, who runs where), so the metrics and
//! the traces agree. A run that does not keep its log computes them as it streams by;
//! [`Metrics::compute`] reads a kept log whole. Logging never changes the simulation
//! itself. `docs/metrics.md` defines every metric exactly.

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
    /// Compute the metrics of a finished simulation (it needs the event log): the
    /// [`MetricsStream`] fed the whole log.
    pub fn compute(sim: &Simulation) -> Result<Metrics, MetricsError> {
        if !sim.config().log {
            return Err(MetricsError::NoLog);
        }
        let input = TraceInput::from_simulation(sim);
        let mut m = MetricsStream::new(input.cpus);
        m.records(&input, input.log);
        Ok(m.finish(sim))
    }
}

/// The metrics of a run computed as its log streams by, chunk after chunk, for a run that
/// does not keep its log: what it holds is bounded by the machine (per task an open grant,
/// request, wakeup, lock state and critical section; per CPU a running span and a timer
/// span), never by simulated time. [`Metrics::compute`] is this over the whole log, so
/// both give the same metrics.
pub struct MetricsStream {
    grant_length: Histogram<u64>,
    grant_ends: BTreeMap<String, u64>,
    grants_wasted: u64,
    /// Task → time of its open grant.
    granted: BTreeMap<u32, u64>,
    request_to_grant: Histogram<u64>,
    wakeup_to_run: Histogram<u64>,
    requested: BTreeMap<u32, u64>,
    woken: BTreeMap<u32, u64>,
    current: Current,
    locks: LockTracker,
    /// Per CPU: the task current since when, and the time some task ran so far.
    run_open: Vec<Option<u64>>,
    running: Vec<u64>,
    /// Per CPU: the armed timer's (task, start).
    timer_open: Vec<Option<(Option<u32>, u64)>>,
    /// Timer starter (task id, `None` idle) → its histogram.
    slice_hist: BTreeMap<Option<u32>, SliceHist>,
    last_ns: u64,
}

impl MetricsStream {
    /// Nothing seen yet, on a machine of `cpus` CPUs.
    pub fn new(cpus: u32) -> Self {
        MetricsStream {
            grant_length: hist(),
            grant_ends: BTreeMap::new(),
            grants_wasted: 0,
            granted: BTreeMap::new(),
            request_to_grant: hist(),
            wakeup_to_run: hist(),
            requested: BTreeMap::new(),
            woken: BTreeMap::new(),
            current: Current::new(cpus),
            locks: LockTracker::new(),
            run_open: vec![None; cpus as usize],
            running: vec![0; cpus as usize],
            timer_open: vec![None; cpus as usize],
            slice_hist: BTreeMap::new(),
            last_ns: 0,
        }
    }

    /// Take the next records of the log into account (`input` gives the tasks and the
    /// configuration; `input.log` is not read).
    pub fn records(&mut self, input: &TraceInput<'_>, records: &[rseq_sim::LogRecord]) {
        let rev = input.meta.revision;
        let endian = input.meta.endian;
        for r in records {
            self.last_ns = self.last_ns.max(r.time);
            let granted = &self.granted;
            self.locks.observe(r, |t| granted.contains_key(&t));
            self.grant_window(r);
            match r.kind {
                LogKind::UserStore { after, .. } => {
                    if let Some(t) = r.task {
                        if timeline::is_request(input, r) {
                            self.requested.entry(t).or_insert(r.time);
                        } else if !after.is_requested(rev, endian) {
                            self.requested.remove(&t);
                        }
                    }
                }
                LogKind::Revoke { after, .. } => {
                    if let Some(t) = r.task {
                        if !after.is_requested(rev, endian) {
                            self.requested.remove(&t);
                        }
                    }
                }
                LogKind::Grant { .. } => {
                    if let Some(since) = r.task.and_then(|t| self.requested.remove(&t)) {
                        record(&mut self.request_to_grant, r.time - since);
                    }
                }
                LogKind::Wakeup { task, .. } => {
                    let running = (0..input.cpus).any(|c| self.current.get(c) == Some(task));
                    if !running {
                        self.woken.entry(task).or_insert(r.time);
                    }
                }
                LogKind::Switch { next, .. } => {
                    if let Some(since) = next.and_then(|n| self.woken.remove(&n)) {
                        record(&mut self.wakeup_to_run, r.time - since);
                    }
                    let cpu = r.cpu as usize;
                    if let Some(start) = self.run_open[cpu].take() {
                        self.running[cpu] += r.time - start;
                    }
                    self.run_open[cpu] = next.map(|_| r.time);
                }
                LogKind::TaskExit { .. } => {
                    if let Some(t) = r.task {
                        self.requested.remove(&t);
                        self.woken.remove(&t);
                    }
                }
                _ => {}
            }
            self.timer(r);
            self.current.observe(r);
        }
    }

    /// Grant windows: their length and how they ended (as `timeline::grant_windows`).
    fn grant_window(&mut self, r: &rseq_sim::LogRecord) {
        let Some(task) = r.task else { return };
        let Some(end) = timeline::grant_end(&r.kind) else {
            return;
        };
        if let Some(start) = self.granted.remove(&task) {
            *self.grant_ends.entry(end_key(end)).or_default() += 1;
            if end == GrantEnd::Expired {
                self.grants_wasted += 1;
            }
            record(&mut self.grant_length, r.time - start);
        }
        if let LogKind::Grant { .. } = r.kind {
            self.granted.insert(task, r.time);
        }
    }

    /// `rseq-slice-hist.py`: start → cancel (a restart traces a cancel first) or expire
    /// (as `timeline::timer_spans`).
    fn timer(&mut self, r: &rseq_sim::LogRecord) {
        let end = match r.kind {
            LogKind::TimerArm { .. } => TimerEnd::Restarted,
            LogKind::TimerExpire { hit } => TimerEnd::Expired { hit },
            LogKind::TimerCancel => TimerEnd::Cancelled,
            _ => return,
        };
        let slot = &mut self.timer_open[r.cpu as usize];
        if let Some((task, start)) = slot.take() {
            let h = self.slice_hist.entry(task).or_default();
            match end {
                TimerEnd::Expired { .. } => h.expired += 1,
                _ => *h.us.entry((r.time - start) / 1000).or_default() += 1,
            }
        }
        if let LogKind::TimerArm { .. } = r.kind {
            *slot = Some((r.task, r.time));
        }
    }

    /// The metrics, once the run has ended (`sim` gives the run's length and the CPUs'
    /// own busy time).
    pub fn finish(self, sim: &Simulation) -> Metrics {
        let run_ns = sim.now();
        let end_ns = self.last_ns.max(run_ns);
        let mut grant_ends = self.grant_ends;
        if !self.granted.is_empty() {
            *grant_ends.entry(end_key(GrantEnd::EndOfTrace)).or_default() +=
                self.granted.len() as u64;
        }
        let (lock_wait, lock_hold, critical_sections) = self.locks.finish();
        let mut running = self.running;
        for (cpu, open) in self.run_open.iter().enumerate() {
            if let Some(start) = open {
                running[cpu] += end_ns - start;
            }
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
        // By name, as the script keys them (tasks of one name add up).
        let mut slice_hist: BTreeMap<String, SliceHist> = BTreeMap::new();
        for (task, h) in self.slice_hist {
            let name = task.map_or_else(
                || "<idle>".to_string(),
                |t| {
                    sim.tasks()
                        .get(t as usize)
                        .map_or("?", |t| t.name.as_str())
                        .to_string()
                },
            );
            let e = slice_hist.entry(name).or_default();
            e.expired += h.expired;
            for (us, n) in h.us {
                *e.us.entry(us).or_default() += n;
            }
        }
        Metrics {
            run_ns,
            user_accesses_logged: sim.config().log_user_accesses,
            grant_length: Summary::of(&self.grant_length),
            request_to_grant: Summary::of(&self.request_to_grant),
            wakeup_to_run: Summary::of(&self.wakeup_to_run),
            grant_ends,
            grants_wasted: self.grants_wasted,
            lock_wait,
            lock_hold,
            critical_sections,
            cpus,
            slice_hist,
        }
    }
}
