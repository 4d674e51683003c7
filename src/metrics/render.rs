//! [`Metrics`] as a table for people, JSON, or CSV (`metric,stat,value`, one value a row).

use std::fmt::Write;
use std::str::FromStr;

use super::{Metrics, Summary};

/// An output format of `slicesim run --metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricsFormat {
    /// Human-readable table.
    Table,
    /// One JSON object (serde_json, pretty-printed).
    Json,
    /// `metric,stat,value` rows with a header line.
    Csv,
}

impl MetricsFormat {
    /// Every format, in `--help` order.
    pub const ALL: [MetricsFormat; 3] = [
        MetricsFormat::Table,
        MetricsFormat::Json,
        MetricsFormat::Csv,
    ];

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MetricsFormat::Table => "table",
            MetricsFormat::Json => "json",
            MetricsFormat::Csv => "csv",
        }
    }
}

/// A name that is none of [`MetricsFormat::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown metrics format {0:?}: expected table, json or csv")]
pub struct UnknownMetricsFormat(pub String);

impl FromStr for MetricsFormat {
    type Err = UnknownMetricsFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MetricsFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownMetricsFormat(s.to_string()))
    }
}

/// The five distributions with their names.
fn summaries(m: &Metrics) -> [(&'static str, &Summary); 5] {
    [
        ("grant_length_ns", &m.grant_length),
        ("request_to_grant_ns", &m.request_to_grant),
        ("wakeup_to_run_ns", &m.wakeup_to_run),
        ("lock_wait_ns", &m.lock_wait),
        ("lock_hold_ns", &m.lock_hold),
    ]
}

/// Every value as `(metric, stat, value)` rows, in a fixed order (what CSV prints).
pub fn rows(m: &Metrics) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut push = |a: &str, b: &str, c: String| out.push((a.to_string(), b.to_string(), c));
    push("run_ns", "value", m.run_ns.to_string());
    for (name, s) in summaries(m) {
        for (stat, v) in s.named() {
            push(name, stat, v.to_string());
        }
        push(name, "mean", format!("{:.1}", s.mean));
    }
    for (end, n) in &m.grant_ends {
        push("grant_end", end, n.to_string());
    }
    push("grants_wasted", "value", m.grants_wasted.to_string());
    let cs = &m.critical_sections;
    push("critical_sections", "total", cs.total.to_string());
    for (name, n, pct) in cs.named() {
        push("critical_sections", name, n.to_string());
        push(
            "critical_sections",
            &format!("{name}_pct"),
            format!("{pct:.2}"),
        );
    }
    push("critical_sections", "open", cs.open.to_string());
    for c in &m.cpus {
        let metric = format!("cpu{}", c.cpu);
        push(&metric, "busy_ns", c.busy_ns.to_string());
        push(&metric, "running_ns", c.running_ns.to_string());
        push(&metric, "utilisation", format!("{:.6}", c.utilisation));
    }
    for (task, h) in &m.slice_hist {
        let metric = format!("slice_hist.{task}");
        for (us, n) in &h.us {
            push(&metric, &format!("{us}us"), n.to_string());
        }
        push(&metric, "EXPIRED", h.expired.to_string());
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn table(m: &Metrics) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "metrics (run of {} ns):", m.run_ns);
    let _ = writeln!(
        o,
        "  {:<22} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "ns", "count", "min", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, s) in summaries(m) {
        let _ = writeln!(
            o,
            "  {:<22} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            name.trim_end_matches("_ns"),
            s.count,
            s.min,
            s.p50,
            s.p90,
            s.p99,
            s.p99_9,
            s.max
        );
    }
    if !m.user_accesses_logged {
        let _ = writeln!(o, "  (user stores not logged: no request_to_grant samples)");
    }
    let ends: Vec<String> = m
        .grant_ends
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(
        o,
        "  grant ends: {}",
        if ends.is_empty() {
            "none".to_string()
        } else {
            ends.join(" ")
        }
    );
    let _ = writeln!(
        o,
        "  grants wasted (ran out while still granted, s_expired): {}",
        m.grants_wasted
    );
    let cs = &m.critical_sections;
    if cs.total + cs.open == 0 {
        let _ = writeln!(o, "  critical sections: none marked");
    } else {
        let kinds: Vec<String> = cs
            .named()
            .iter()
            .map(|(name, n, pct)| format!("{name} {n} ({pct:.1}%)"))
            .collect();
        let _ = writeln!(
            o,
            "  critical sections: {} closed: {}; {} open",
            cs.total,
            kinds.join(", "),
            cs.open
        );
    }
    for c in &m.cpus {
        let _ = writeln!(
            o,
            "  cpu{:<3} utilisation {:>6.2}%  busy {} ns  running {} ns",
            c.cpu,
            c.utilisation * 100.0,
            c.busy_ns,
            c.running_ns
        );
    }
    for (task, h) in &m.slice_hist {
        let _ = writeln!(
            o,
            "  slice durations of {task} (rseq-slice-hist; EXPIRED counts every firing of the timer, also a stale one after the grant was revoked):"
        );
        for (us, n) in &h.us {
            let _ = writeln!(o, "    {:>6} us {n:>10}", us);
        }
        let _ = writeln!(o, "    {:>9} {:>10}", "EXPIRED", h.expired);
    }
    o
}

/// Render the metrics in `format`: the complete output.
pub fn render(format: MetricsFormat, m: &Metrics) -> String {
    match format {
        MetricsFormat::Table => table(m),
        MetricsFormat::Json => {
            let mut s = serde_json::to_string_pretty(m).expect("metrics serialise");
            s.push('\n');
            s
        }
        MetricsFormat::Csv => {
            let mut s = String::from("metric,stat,value\n");
            for (a, b, c) in rows(m) {
                let _ = writeln!(s, "{},{},{}", csv_field(&a), csv_field(&b), csv_field(&c));
            }
            s
        }
    }
}
