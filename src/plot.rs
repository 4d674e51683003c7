//! SVG figures, readable without any other tool: a run's metrics (the kernel's slice
//! histogram view and the latency percentiles) and a sweep's curves (mean ± 95 % CI of
//! the slice counters against the first varied key).

use plotters::prelude::*;

use crate::metrics::{Metrics, Summary};
use crate::sweep::{Sweep, METRICS};

type DrawResult<T> = Result<T, Box<dyn std::error::Error>>;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A run's metrics as one SVG: slice durations (whole µs, plus the EXPIRED bucket, summed
/// over tasks) above the percentiles of grant length, request-to-grant, wakeup-to-run and
/// (where the program marks its lock) lock wait and hold.
pub fn metrics_svg(m: &Metrics, title: &str) -> DrawResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 760)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 22))?;
        let (top, bottom) = root.split_vertically(360);

        // Slice histogram: buckets 0..=max µs, then EXPIRED.
        let mut buckets: std::collections::BTreeMap<u64, u64> = Default::default();
        let mut expired = 0;
        for h in m.slice_hist.values() {
            for (&us, &n) in &h.us {
                *buckets.entry(us).or_default() += n;
            }
            expired += h.expired;
        }
        let max_us = buckets.keys().max().copied().unwrap_or(0);
        let expired_x = max_us + 1;
        let y_max = buckets
            .values()
            .copied()
            .chain([expired])
            .max()
            .unwrap_or(0)
            .max(1);
        let mut chart = ChartBuilder::on(&top)
            .caption(
                "enforcement-timer slices (rseq-slice-hist view)",
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0u64..expired_x + 1, 0u64..y_max + y_max / 10 + 1)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("slice duration, whole µs (last bar: EXPIRED)")
            .y_desc("slices")
            .x_label_formatter(&|x| {
                if *x == expired_x {
                    "EXP".into()
                } else if *x > expired_x {
                    String::new()
                } else {
                    x.to_string()
                }
            })
            .draw()?;
        chart.draw_series(
            buckets
                .iter()
                .map(|(&us, &n)| Rectangle::new([(us, 0), (us + 1, n)], COLORS[0].filled())),
        )?;
        chart.draw_series(std::iter::once(Rectangle::new(
            [(expired_x, 0), (expired_x + 1, expired)],
            COLORS[1].filled(),
        )))?;

        // Percentiles.
        let series: [(&str, &Summary); 5] = [
            ("grant length", &m.grant_length),
            ("request to grant", &m.request_to_grant),
            ("wakeup to run", &m.wakeup_to_run),
            ("lock wait", &m.lock_wait),
            ("lock hold", &m.lock_hold),
        ];
        let labels = ["p50", "p90", "p99", "p99.9", "max"];
        let at = |s: &Summary| [s.p50, s.p90, s.p99, s.p99_9, s.max];
        // Logarithmic: a single long wait would flatten every other line on a linear axis.
        let y_max = series
            .iter()
            .flat_map(|(_, s)| at(s))
            .max()
            .unwrap_or(0)
            .max(10);
        let mut chart = ChartBuilder::on(&bottom)
            .caption("latency percentiles (log scale)", ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0usize..labels.len() - 1, (1u64..y_max * 2).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(labels.len())
            .x_label_formatter(&|i| labels.get(*i).copied().unwrap_or("").to_string())
            .y_desc("ns")
            .draw()?;
        for (i, (name, s)) in series.iter().enumerate() {
            if s.count == 0 {
                continue;
            }
            let color = COLORS[(i + 2) % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    at(s).into_iter().map(|v| v.max(1)).enumerate(),
                    color.stroke_width(2),
                ))?
                .label(format!("{name} (n = {})", s.count))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// A sweep as one SVG: for `granted`, `expired`, `revoked` and `yielded`, the mean and its
/// 95 % confidence interval against the first varied key, one line per combination of the
/// other keys.
pub fn sweep_svg(s: &Sweep) -> DrawResult<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 760)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(&format!("sweep of {}", s.scenario), ("sans-serif", 20))?;
        let panels = root.split_evenly((2, 2));
        let Some(first) = s.vary.first() else {
            return Err("a sweep without --vary".into());
        };
        let n_x = first.values.len();
        for (panel, metric) in panels
            .iter()
            .zip(["granted", "expired", "revoked", "yielded"])
        {
            let mi = METRICS
                .iter()
                .position(|m| *m == metric)
                .expect("known metric");
            // (other keys' values) -> per x: the samples.
            let mut lines: std::collections::BTreeMap<Vec<String>, Vec<Vec<f64>>> =
                Default::default();
            for r in &s.rows {
                let x = first
                    .values
                    .iter()
                    .position(|v| *v == r.values[0])
                    .expect("a varied value");
                let ys = lines
                    .entry(r.values[1..].to_vec())
                    .or_insert_with(|| vec![Vec::new(); n_x]);
                ys[x].push(r.metrics[mi] as f64);
            }
            let stats = |xs: &[f64]| crate::sweep::mean_ci(xs);
            let y_max = lines
                .values()
                .flat_map(|ys| ys.iter().map(|xs| stats(xs)).map(|(m, c)| m + c))
                .fold(1.0f64, f64::max);
            let mut chart = ChartBuilder::on(panel)
                .caption(metric, ("sans-serif", 16))
                .margin(10)
                .x_label_area_size(34)
                .y_label_area_size(60)
                .build_cartesian_2d(-0.5f64..(n_x as f64 - 0.5), 0f64..y_max * 1.1)?;
            chart
                .configure_mesh()
                .x_labels(n_x)
                .x_label_formatter(&|x| {
                    let i = x.round();
                    if (x - i).abs() < 1e-9 && i >= 0.0 {
                        first.values.get(i as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .x_desc(first.key.as_str())
                .draw()?;
            for (li, (others, ys)) in lines.iter().enumerate() {
                let color = COLORS[li % COLORS.len()];
                let pts: Vec<(f64, f64, f64)> = ys
                    .iter()
                    .enumerate()
                    .filter(|(_, xs)| !xs.is_empty())
                    .map(|(x, xs)| {
                        let (m, c) = stats(xs);
                        (x as f64, m, c)
                    })
                    .collect();
                let label = if others.is_empty() {
                    "mean ± 95% CI".to_string()
                } else {
                    others.join(", ")
                };
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().map(|&(x, m, _)| (x, m)),
                        color.stroke_width(2),
                    ))?
                    .label(label)
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                chart.draw_series(pts.iter().map(|&(x, m, c)| {
                    ErrorBar::new_vertical(x, (m - c).max(0.0), m, m + c, color.filled(), 8)
                }))?;
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE)
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}
