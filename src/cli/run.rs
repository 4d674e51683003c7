//! `slicesim run`: one scenario, its statistics, task outcomes and expectations, and the
//! files it draws (trace, metrics plot, HTML and SVG timelines).

use anyhow::{Context, Result};

use crate::metrics::{self, MetricsFormat};
use crate::scenario::{self, CheckOutcome};

use super::common::{load_or_report, selftest_counters, simulate, RunArgs, TimelineArgs};
use super::EXIT_EXPECTATION;

/// Draw the run into the files `t` names (staged in `out`).
fn write_timelines(
    sim: &rseq_sim::Simulation,
    name: &str,
    t: &TimelineArgs,
    out: &mut super::outputs::Outputs,
) -> Result<()> {
    use crate::export::{html, svg, TraceInput};
    let input = TraceInput::from_simulation(sim);
    let title = match t.window {
        Some(w) => format!(
            "scenario {name}, {} .. {} us",
            crate::export::us(w.start_ns),
            crate::export::us(w.end_ns)
        ),
        None => format!("scenario {name}"),
    };
    if let Some(path) = &t.html {
        let page = html::render(&input, &format!("scenario {name}"), t.window)
            .context("drawing the HTML timeline")?;
        out.write(path, page.as_bytes())?;
    }
    if let Some(path) = &t.timeline_svg {
        let figure = svg::render(&input, &title, t.window).context("drawing the SVG timeline")?;
        out.write(path, figure.as_bytes())?;
    }
    Ok(())
}

/// Does `run` with these options need the whole log kept in memory? (Without it the log
/// streams through the expectations and memory does not grow with simulated time.)
fn needs_whole_log(a: &RunArgs) -> bool {
    a.timeline.any() || (a.trace.trace.is_some() && !streams_trace(a))
}

/// Is `--trace` written as the run goes (jsonl, text, ftrace or perfetto, and not a replayed
/// schedule)?
fn streams_trace(a: &RunArgs) -> bool {
    use crate::export::Format;
    a.trace.trace.is_some()
        && matches!(
            a.trace.format,
            Format::Jsonl | Format::Text | Format::Ftrace | Format::Perfetto
        )
        && a.schedule.is_none()
}

/// Run one scenario and print its summary; returns the exit code.
pub fn run(a: RunArgs, programs: &crate::programs::Programs) -> Result<i32> {
    if a.timeline.window.is_some() && a.timeline.html.is_none() && a.timeline.timeline_svg.is_none()
    {
        anyhow::bail!("--window needs --html or --timeline-svg");
    }
    let loaded = match load_or_report(&a, programs) {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let metrics_format = a
        .metrics
        .as_deref()
        .map(str::parse::<MetricsFormat>)
        .transpose()?;
    // Every file is named before the run: an unwritable one fails now, not after it.
    let paths = [
        &a.plot,
        &a.timeline.html,
        &a.timeline.timeline_svg,
        &a.trace.trace,
    ];
    let mut out = super::outputs::Outputs::prepare(paths.iter().filter_map(|p| p.as_deref()))?;
    // A jsonl, text or ftrace trace streams: its lines go to a scratch file as the run
    // produces them; the header, which holds the totals, goes in front at the end.
    let mut body = match &a.trace.trace {
        Some(p) if streams_trace(&a) => Some((None, std::io::BufWriter::new(out.scratch(p)?))),
        _ => None,
    };
    let format = a.trace.format;
    // The writer is made from the first chunk's simulation, which knows the CPU count.
    let writer_for = move |sim: &rseq_sim::Simulation| {
        crate::export::StreamWriter::new(format, sim.config().cpus as u32)
            .expect("streams_trace allows only formats that stream")
    };
    // Metrics (and their plot) are computed as the log streams by.
    let mut metrics_stream: Option<crate::metrics::MetricsStream> = None;
    let wants_metrics = metrics_format.is_some() || a.plot.is_some();
    let mut sink =
        |sim: &rseq_sim::Simulation, rs: &[rseq_sim::LogRecord]| -> std::io::Result<()> {
            let input = crate::export::TraceInput::from_simulation(sim);
            if wants_metrics {
                metrics_stream
                    .get_or_insert_with(|| crate::metrics::MetricsStream::new(input.cpus))
                    .records(&input, rs);
            }
            if let Some((writer, b)) = &mut body {
                let w = writer.get_or_insert_with(|| writer_for(sim));
                w.records(&input, rs, b)?;
            }
            Ok(())
        };
    let (r, violations) = match simulate(&a, &loaded, needs_whole_log(&a), &mut sink)? {
        Ok(rv) => rv,
        Err(code) => return Ok(code),
    };
    let s = &loaded.scenario.scenario;
    let cpus = r.sim.config().cpus as u32;
    let streamed = wants_metrics.then(|| {
        metrics_stream
            .take()
            .unwrap_or_else(|| crate::metrics::MetricsStream::new(cpus))
            .finish(&r.sim)
    });
    let metrics = metrics_format.zip(streamed.clone());
    if let Some(path) = &a.plot {
        let m = streamed.clone().expect("computed for --plot");
        let svg = crate::plot::metrics_svg(&m, &format!("scenario {}", s.name))
            .map_err(|e| anyhow::anyhow!("drawing {}: {e}", path.display()))?;
        out.write(path, svg.as_bytes())?;
    }
    write_timelines(&r.sim, &s.name, &a.timeline, &mut out)?;
    let workload = format!("scenario {}", s.name);
    let trace_note = match (body, &a.trace.trace) {
        (Some((writer, body)), Some(path)) => {
            use std::io::{Seek, Write};
            let input = crate::export::TraceInput::from_simulation(&r.sim).with_workload(workload);
            let mut writer = writer.unwrap_or_else(|| writer_for(&r.sim));
            let header = writer.header(&input, r.logged as usize)?;
            out.write(path, &header)?;
            let mut body = body.into_inner().map_err(|e| e.into_error())?;
            body.rewind()?;
            std::io::copy(&mut body, out.file(path))
                .with_context(|| format!("writing trace {}", path.display()))?;
            out.file(path)
                .write_all(&writer.footer(&input))
                .with_context(|| format!("writing trace {}", path.display()))?;
            out.file(path).flush()?;
            Some(format!(
                "trace: {} events in {} ({})",
                r.logged,
                path.display(),
                a.trace.format
            ))
        }
        _ => super::common::write_trace_quietly(&r.sim, workload, &a.trace, &mut out)?,
    };
    out.commit()?;
    if let Some((f @ (MetricsFormat::Json | MetricsFormat::Csv), m)) = &metrics {
        print!("{}", metrics::render(*f, m));
        // stdout is the metrics alone: the trace's note goes to stderr.
        if let Some(note) = trace_note {
            eprintln!("{note}");
        }
        return Ok(if r.passed() { 0 } else { EXIT_EXPECTATION });
    }
    println!("scenario {} ({})", s.name, a.scenario.display());
    if !s.description.trim().is_empty() {
        println!("  {}", loaded.short_description());
    }
    let cfg = r.sim.config();
    println!(
        "  {} CPUs, revision {}, preempt {}, seed {}, {} events until {} ns",
        cfg.cpus,
        cfg.revision.name(),
        cfg.preempt.name(),
        cfg.seed,
        r.logged,
        r.sim.now()
    );
    println!("rseq/stats:");
    // The critical-section lines, as the kernel prints them before the slice lines, when
    // a restartable sequence (or a descriptor a script built) gave them something to count.
    let cs = r.sim.rseq_stats();
    if cs != rseq_sim::RseqStats::default() {
        for (name, v) in [("cs", cs.cs), ("clear", cs.clear), ("fixup", cs.fixup)] {
            println!("  {:<8}{v:>16}", format!("{name}:"));
        }
    }
    for line in r.sim.stats_debugfs().lines() {
        println!("  {line}");
    }
    println!("tasks (each program's own counters: what it saw and did; the kernel's counts are rseq/stats):");
    for t in r.sim.tasks() {
        let mut exit = t
            .exit
            .as_ref()
            .map_or("running".to_string(), |e| e.to_string());
        if t.exit
            .as_ref()
            .is_some_and(|e| *e != rseq_sim::TaskExit::Exited)
        {
            if let Some(note) = loaded.step_note(t) {
                exit = format!("{exit} {note}");
            }
        }
        let counters: Vec<String> = t.counters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "  T{:<4} {:<20} {:<30} {}",
            t.id,
            t.name,
            exit,
            counters.join(" ")
        );
    }
    for t in r.sim.tasks() {
        if let Some(c) = selftest_counters(&t.counters) {
            println!("T{} {} (selftest format):", t.id, t.name);
            print!("{c}");
        }
    }
    let mut failed = print_checks(&r.checks);
    if let Some((st, v)) = &violations {
        println!(
            "schedule: seed {}, ties {}, injected {}",
            st.schedule.seed,
            if st.schedule.seeded_ties {
                "seeded"
            } else {
                "fifo"
            },
            st.schedule.inject_text()
        );
        for v in v {
            println!("  VIOLATION {v}");
        }
        failed += v.len();
    }
    if let Some((f, m)) = &metrics {
        print!("{}", metrics::render(*f, m));
    }
    if let Some(note) = trace_note {
        println!("{note}");
    }
    Ok(if failed > 0 { EXIT_EXPECTATION } else { 0 })
}

fn print_checks(checks: &[scenario::Check]) -> usize {
    if checks.is_empty() {
        return 0;
    }
    println!("expectations:");
    let mut failed = 0;
    for c in checks {
        match &c.outcome {
            CheckOutcome::Pass => println!("  ok    {}", c.what),
            CheckOutcome::Fail(got) => {
                failed += 1;
                println!("  FAIL  {} ({got})", c.what);
            }
        }
    }
    println!(
        "{} of {} expectations held",
        checks.len() - failed,
        checks.len()
    );
    failed
}
