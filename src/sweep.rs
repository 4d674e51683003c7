//! Parameter sweeps: the cross product of `--vary` values × seeds, run in parallel, as one
//! tidy table, split into deterministic shards that `merge` recombines byte for byte.
//!
//! Run `i` of a sweep is fixed by its index in the cross product (values in the order
//! given, seeds innermost), so the rows do not depend on the number of workers, and shard
//! `k/N` is simply every run with `i % N == k`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::scenario::{self, CheckOutcome, RunResult, ScenarioError};

/// One `--vary key=v1,v2,...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vary {
    /// A scenario key, as for `--set` (`machine.slice_ext_nsec`).
    pub key: String,
    /// Its values, as TOML literals or bare words.
    pub values: Vec<String>,
}

impl Vary {
    /// Parse `key=v1,v2,...`.
    pub fn parse(s: &str) -> Result<Vary, String> {
        let (key, vals) = s
            .split_once('=')
            .ok_or_else(|| format!("--vary {s:?}: expected key=v1,v2,..."))?;
        let values: Vec<String> = vals
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if key.trim().is_empty() || values.is_empty() {
            return Err(format!("--vary {s:?}: expected key=v1,v2,..."));
        }
        Ok(Vary {
            key: key.trim().to_string(),
            values,
        })
    }
}

/// The numbers one run reports: the `rseq/stats` counters, failed expectations, engine
/// events, then the log metrics of `docs/metrics.md` (distributions as percentiles in ns,
/// critical sections as counts), and the kernel's restartable-sequence counters
/// (`rseq_cs`, `rseq_clear`, `rseq_fixup`: `cs`, `clear`, `fixup` of `rseq/stats`).
pub const METRICS: [&str; 23] = [
    "granted",
    "expired",
    "revoked",
    "yielded",
    "aborted",
    "checks_failed",
    "events",
    "grant_length_ns_p50",
    "grant_length_ns_p99",
    "request_to_grant_ns_p99",
    "wakeup_to_run_ns_p99",
    "lock_wait_ns_p50",
    "lock_wait_ns_p99",
    "lock_hold_ns_p50",
    "lock_hold_ns_p99",
    "cs_total",
    "cs_preempted",
    "cs_grant_covered",
    "cs_no_grant_needed",
    "grants_wasted",
    "rseq_cs",
    "rseq_clear",
    "rseq_fixup",
];

/// One run's row values, in [`METRICS`] order.
fn row_metrics(r: &RunResult, m: &Metrics) -> Vec<u64> {
    let st = r.sim.stats();
    let failed = r
        .checks
        .iter()
        .filter(|c| c.outcome != CheckOutcome::Pass)
        .count() as u64;
    let cs = &m.critical_sections;
    vec![
        st.granted,
        st.expired,
        st.revoked,
        st.yielded,
        st.aborted,
        failed,
        r.sim.events_processed(),
        m.grant_length.p50,
        m.grant_length.p99,
        m.request_to_grant.p99,
        m.wakeup_to_run.p99,
        m.lock_wait.p50,
        m.lock_wait.p99,
        m.lock_hold.p50,
        m.lock_hold.p99,
        cs.total,
        cs.preempted,
        cs.grant_covered,
        cs.no_grant_needed,
        m.grants_wasted,
        r.sim.rseq_stats().cs,
        r.sim.rseq_stats().clear,
        r.sim.rseq_stats().fixup,
    ]
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Index in the cross product.
    pub run: usize,
    /// The varied keys' values for this run, in `--vary` order.
    pub values: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// The metrics, in [`METRICS`] order.
    pub metrics: Vec<u64>,
}

/// A sweep's results (or one shard's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The scenario file.
    pub scenario: String,
    /// What was varied.
    pub vary: Vec<Vary>,
    /// Seeds per combination.
    pub seeds: u64,
    /// Runs in the whole cross product.
    pub total_runs: usize,
    /// Finished runs, sorted by index.
    pub rows: Vec<Row>,
}

/// The run plan: for run `i`, the value index of each key and the seed.
fn plan(vary: &[Vary], seeds: u64) -> Vec<(Vec<usize>, u64)> {
    let mut combos: Vec<Vec<usize>> = vec![vec![]];
    for v in vary {
        combos = combos
            .into_iter()
            .flat_map(|c| (0..v.values.len()).map(move |i| [c.clone(), vec![i]].concat()))
            .collect();
    }
    combos
        .into_iter()
        .flat_map(|c| (0..seeds).map(move |s| (c.clone(), s)))
        .collect()
}

/// Parse `--shard k/N`.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard {s:?}: expected k/N with 0 <= k < N");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || k >= n {
        return Err(bad());
    }
    Ok((k, n))
}

/// Run a sweep (or shard `k/N` of it) on `jobs` workers. `stop` ends it early (Ctrl-C):
/// the rows finished so far are kept. `progress(done, total)` is called after each run.
#[allow(clippy::too_many_arguments)]
pub fn run(
    programs: &crate::programs::Programs,
    path: &Path,
    base_sets: &[String],
    vary: &[Vary],
    seeds: u64,
    shard: Option<(usize, usize)>,
    jobs: usize,
    stop: &AtomicBool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Sweep, ScenarioError> {
    let all = plan(vary, seeds);
    let mine: Vec<usize> = (0..all.len())
        .filter(|i| shard.is_none_or(|(k, n)| i % n == k))
        .collect();
    // Validate every combination up front, so a bad value fails before any run.
    let mut loaded = Vec::with_capacity(mine.len());
    for &i in &mine {
        let (vals, _) = &all[i];
        let mut sets = base_sets.to_vec();
        sets.extend(
            vary.iter()
                .zip(vals)
                .map(|(v, &j)| format!("{}={}", v.key, v.values[j])),
        );
        loaded.push(scenario::load_with(
            path,
            &sets,
            crate::budget::defaults::MAX_FILE_MIB << 20,
            programs,
        )?);
    }
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let rows: Mutex<Vec<Row>> = Mutex::new(Vec::new());
    let first_err: Mutex<Option<ScenarioError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(mine.len().max(1)) {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let w = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = mine.get(w) else { break };
                let (vals, seed) = &all[i];
                // The log metrics need the event log; the run is the same without it.
                let r = match scenario::run(&loaded[w], Some(*seed), None) {
                    Ok(r) => r,
                    Err(e) => {
                        first_err.lock().expect("lock").get_or_insert(e);
                        break;
                    }
                };
                let m = Metrics::compute(&r.sim).expect("scenario runs keep the log");
                let metrics = row_metrics(&r, &m);
                // Free the log before the next run: a 5 s run's log is hundreds of MB.
                drop(r);
                let row = Row {
                    run: i,
                    values: vary
                        .iter()
                        .zip(vals)
                        .map(|(v, &j)| v.values[j].clone())
                        .collect(),
                    seed: *seed,
                    metrics,
                };
                rows.lock().expect("lock").push(row);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, mine.len());
            });
        }
    });
    if let Some(e) = first_err.into_inner().expect("lock") {
        return Err(e);
    }
    let mut rows = rows.into_inner().expect("lock");
    rows.sort_by_key(|r| r.run);
    Ok(Sweep {
        scenario: path.display().to_string(),
        vary: vary.to_vec(),
        seeds,
        total_runs: all.len(),
        rows,
    })
}

/// Combine shards of one sweep into the table a single run gives.
pub fn merge(parts: Vec<Sweep>) -> Result<Sweep, String> {
    let mut it = parts.into_iter();
    let mut all = it.next().ok_or("nothing to merge")?;
    for p in it {
        if p.scenario != all.scenario || p.vary != all.vary || p.seeds != all.seeds {
            return Err(format!(
                "shard of another sweep: {} vs {}",
                p.scenario, all.scenario
            ));
        }
        all.rows.extend(p.rows);
    }
    if let Some(r) = all.rows.iter().find(|r| r.metrics.len() != METRICS.len()) {
        return Err(format!(
            "run {} has {} metrics, this slicesim writes {}: shards of another version",
            r.run,
            r.metrics.len(),
            METRICS.len()
        ));
    }
    all.rows.sort_by_key(|r| r.run);
    all.rows.dedup_by_key(|r| r.run);
    Ok(all)
}

/// Per-run rows as CSV: `run,<keys...>,seed,<metrics...>`.
pub fn rows_csv(s: &Sweep) -> String {
    let mut out = String::from("run");
    for v in &s.vary {
        out.push(',');
        out.push_str(&v.key);
    }
    out.push_str(",seed");
    for m in METRICS {
        out.push(',');
        out.push_str(m);
    }
    out.push('\n');
    for r in &s.rows {
        out.push_str(&r.run.to_string());
        for v in &r.values {
            out.push(',');
            out.push_str(v);
        }
        out.push_str(&format!(",{}", r.seed));
        for m in &r.metrics {
            out.push_str(&format!(",{m}"));
        }
        out.push('\n');
    }
    out
}

/// Student's t quantile (two-sided 95%) for `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    if df == 0 {
        f64::NAN
    } else {
        T.get(df - 1).copied().unwrap_or(1.960)
    }
}

/// Mean and the half-width of its 95 % confidence interval (0 with one sample).
pub fn mean_ci(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let (mean, var) = mean_var(xs);
    (mean, ci95(xs.len(), var))
}

/// Half-width of the 95 % confidence interval of a mean of `n` samples with variance `var`
/// (0 for fewer than two samples).
fn ci95(n: usize, var: f64) -> f64 {
    if n < 2 {
        return 0.0;
    }
    t95(n - 1) * var.sqrt() / (n as f64).sqrt()
}

/// Summary per combination and metric across seeds: `<keys...>,metric,n,mean,stddev,ci95`
/// (the half-width of the 95% confidence interval of the mean; empty with one seed).
pub fn summary_csv(s: &Sweep) -> String {
    let mut groups: BTreeMap<usize, (Vec<String>, Vec<&Row>)> = BTreeMap::new();
    let seeds = s.seeds.max(1) as usize;
    for r in &s.rows {
        groups
            .entry(r.run / seeds)
            .or_insert_with(|| (r.values.clone(), Vec::new()))
            .1
            .push(r);
    }
    let mut out = String::new();
    for v in &s.vary {
        out.push_str(&v.key);
        out.push(',');
    }
    out.push_str("metric,n,mean,stddev,ci95\n");
    for (vals, rows) in groups.values() {
        for (mi, m) in METRICS.iter().enumerate() {
            let xs: Vec<f64> = rows.iter().map(|r| r.metrics[mi] as f64).collect();
            let n = xs.len();
            let (mean, var) = mean_var(&xs);
            let (sd, ci) = if n > 1 {
                (format!("{:.3}", var.sqrt()), format!("{:.3}", ci95(n, var)))
            } else {
                (String::new(), String::new())
            };
            for v in vals {
                out.push_str(v);
                out.push(',');
            }
            out.push_str(&format!("{m},{n},{mean:.3},{sd},{ci}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_the_cross_product_with_seeds_innermost() {
        let v = vec![
            Vary::parse("a=1,2").unwrap(),
            Vary::parse("b=x,y,z").unwrap(),
        ];
        let p = plan(&v, 2);
        assert_eq!(p.len(), 12);
        assert_eq!(p[0], (vec![0, 0], 0));
        assert_eq!(p[1], (vec![0, 0], 1));
        assert_eq!(p[2], (vec![0, 1], 0));
        assert_eq!(p[11], (vec![1, 2], 1));
        assert!(Vary::parse("a").is_err() && Vary::parse("a=").is_err());
        assert_eq!(parse_shard("1/3"), Ok((1, 3)));
        assert!(parse_shard("3/3").is_err() && parse_shard("x").is_err());
    }

    #[test]
    fn merge_refuses_rows_of_another_version() {
        let sweep = |metrics: usize| Sweep {
            scenario: "s.toml".into(),
            vary: vec![],
            seeds: 1,
            total_runs: 1,
            rows: vec![Row {
                run: 0,
                values: vec![],
                seed: 0,
                metrics: vec![0; metrics],
            }],
        };
        assert!(merge(vec![sweep(METRICS.len())]).is_ok());
        // A shard written before the log metrics existed had 7 columns.
        let e = merge(vec![sweep(7)]).unwrap_err();
        assert!(e.contains("shards of another version"), "{e}");
    }

    #[test]
    fn welch_t_matches_a_hand_computation() {
        let row = |g: u64| Row {
            run: 0,
            values: vec![],
            seed: 0,
            metrics: [vec![g], vec![0; METRICS.len() - 1]].concat(),
        };
        let a: Vec<Row> = [10, 12, 14].into_iter().map(row).collect(); // mean 12, var 4
        let b: Vec<Row> = [20, 22, 24].into_iter().map(row).collect(); // mean 22, var 4
        let c = &compare(&a, &b)[0];
        // t = 10 / sqrt(4/3 + 4/3) = 6.124; df = 4; t95(4) = 2.776.
        assert!((c.t - 6.1237).abs() < 1e-3, "{}", c.t);
        assert!((c.df - 4.0).abs() < 1e-9);
        assert!(c.significant);
        let c = &compare(&a, &a)[0];
        assert!(!c.significant && c.t == 0.0);
        let c = &compare(&a, &a)[1];
        assert!(
            !c.significant && c.t.is_nan(),
            "constant and equal: nothing to test"
        );
    }
}

/// One metric compared between two configurations across seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Metric name.
    pub metric: &'static str,
    /// Mean of A.
    pub mean_a: f64,
    /// Mean of B.
    pub mean_b: f64,
    /// Welch's t statistic of B − A (NaN when both are constant).
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// |t| above the two-sided 95 % quantile of Student's t for `df`.
    pub significant: bool,
}

/// Mean and sample variance (0 with one sample).
fn mean_var(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = if xs.len() > 1 {
        xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, v)
}

/// Compare every metric of two sets of runs (Welch's t-test, 95 %).
pub fn compare(a: &[Row], b: &[Row]) -> Vec<Comparison> {
    METRICS
        .iter()
        .enumerate()
        .map(|(i, &metric)| {
            let xa: Vec<f64> = a.iter().map(|r| r.metrics[i] as f64).collect();
            let xb: Vec<f64> = b.iter().map(|r| r.metrics[i] as f64).collect();
            let ((ma, va), (mb, vb)) = (mean_var(&xa), mean_var(&xb));
            let (na, nb) = (xa.len() as f64, xb.len() as f64);
            let se2 = va / na + vb / nb;
            let (t, df) = if se2 > 0.0 {
                let df = se2 * se2
                    / ((va / na).powi(2) / (na - 1.0).max(1.0)
                        + (vb / nb).powi(2) / (nb - 1.0).max(1.0));
                ((mb - ma) / se2.sqrt(), df)
            } else {
                (f64::NAN, 0.0)
            };
            let significant = if se2 > 0.0 {
                t.abs() > t95(df.floor().max(1.0) as usize)
            } else {
                ma != mb
            };
            Comparison {
                metric,
                mean_a: ma,
                mean_b: mb,
                t,
                df,
                significant,
            }
        })
        .collect()
}

/// The comparison as an aligned table.
pub fn compare_table(a: &str, b: &str, rows: &[Comparison]) -> String {
    let mut out = format!(
        "A = {a}\nB = {b}\n{:<24} {:>14} {:>14} {:>10} {:>9}  significant (95%)\n",
        "metric", "mean A", "mean B", "B-A %", "t"
    );
    for c in rows {
        let pct = if c.mean_a != 0.0 {
            format!("{:+.1}", 100.0 * (c.mean_b - c.mean_a) / c.mean_a)
        } else {
            "-".into()
        };
        let t = if c.t.is_nan() {
            "-".to_string()
        } else {
            format!("{:.2}", c.t)
        };
        out.push_str(&format!(
            "{:<24} {:>14.3} {:>14.3} {:>10} {:>9}  {}\n",
            c.metric,
            c.mean_a,
            c.mean_b,
            pct,
            t,
            if c.significant { "yes" } else { "no" }
        ));
    }
    out
}
