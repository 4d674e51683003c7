//! `text`: a readable timeline, one line per event.
//!
//! Time in µs with ns decimals, then the event in its CPU's lane: with up to
//! [`MAX_LANES`] CPUs each CPU has a lane of fixed width and an event is indented to its
//! CPU's lane, the lanes to its left showing `|` where that CPU runs a task and `.` where
//! it is idle. With more CPUs the lane becomes a `cpuN` prefix. The event text is the
//! log's own (`LogKind`'s `Display`), after the task as `T<id> <name>:`.

use std::fmt::Write;

use rseq_sim::LogRecord;

use super::timeline::Current;
use super::{endian_name, us, TraceInput};

/// Most CPUs drawn as lanes; more get a `cpuN` prefix.
pub(crate) const MAX_LANES: u32 = 8;

pub(crate) fn render(input: &TraceInput<'_>) -> String {
    let mut out = header(input, input.log.len());
    let mut current = Current::new(input.cpus);
    lines(&mut out, input, &mut current, input.log);
    footer(input, &mut out);
    out
}

/// The event lines of `records`, appended to `out`; `current` carries each CPU's current
/// task from one chunk of a streamed log to the next.
pub(crate) fn lines(
    out: &mut String,
    input: &TraceInput<'_>,
    current: &mut Current,
    records: &[LogRecord],
) {
    let lanes = input.cpus <= MAX_LANES;
    let width = lane_width(input.cpus);
    for r in records {
        let _ = write!(out, "{:>12}  ", us(r.time));
        if lanes {
            for c in 0..r.cpu {
                let mark = if current.get(c).is_some() { "|" } else { "." };
                let _ = write!(out, "{mark:<width$}");
            }
        } else {
            let _ = write!(out, "cpu{:<4} ", r.cpu);
        }
        match r.task {
            Some(t) => {
                let _ = write!(out, "T{t} {}: ", input.task_name(t));
            }
            None => out.push_str("idle: "),
        }
        let gloss = crate::explain::v1_gloss(input.meta.revision, input.meta.endian, &r.kind);
        let _ = writeln!(out, "{}{}", r.kind, gloss.unwrap_or_default());
        current.observe(r);
    }
}

/// The lines after the events: the final `rseq/stats`.
pub(crate) fn footer(input: &TraceInput<'_>, out: &mut String) {
    out.push_str("#\n# rseq/stats at the end of the run:\n");
    for line in input.stats.debugfs().lines() {
        let _ = writeln!(out, "# {line}");
    }
}

/// Lane width: the widest that keeps eight lanes within about 120 columns.
fn lane_width(cpus: u32) -> usize {
    (120 / cpus.max(1) as usize).clamp(16, 40)
}

/// The lines before the events, for a log of `events` records: they hold the run's totals,
/// so a streamed trace writes them last, in front of the events.
pub(crate) fn header(input: &TraceInput<'_>, events: usize) -> String {
    let mut text = String::new();
    let out = &mut text;
    let m = &input.meta;
    let _ = writeln!(out, "# slicesim trace, text timeline");
    let _ = writeln!(
        out,
        "# revision {}, preempt {}, {} endian, seed {}, hz {}, slice_ext_nsec {}, rseq_debug {}",
        m.revision.name(),
        m.preempt.name(),
        endian_name(m.endian),
        m.seed,
        m.hz,
        m.slice_ext_nsec,
        u8::from(m.rseq_debug)
    );
    if let Some(w) = &m.workload {
        let _ = writeln!(out, "# workload: {w}");
    }
    let _ = writeln!(
        out,
        "# {} CPUs, {} events, run ended at {} us",
        input.cpus,
        events,
        us(m.end_ns)
    );
    let tasks: Vec<String> = (0..input.tasks.len() as u32)
        .map(|t| format!("T{t} {}", input.task_name(t)))
        .collect();
    let _ = writeln!(out, "# tasks: {}", tasks.join(", "));
    if input.cpus <= MAX_LANES {
        let _ = writeln!(
            out,
            "# an event sits in its CPU's lane; lanes left of it show | (a task is current) or . (idle)"
        );
    }
    out.push_str("#\n");
    if input.cpus <= MAX_LANES {
        let width = lane_width(input.cpus);
        let mut h = format!("#{:>11}  ", "time/us");
        for c in 0..input.cpus {
            let _ = write!(h, "{:<width$}", format!("cpu{c}"));
        }
        out.push_str(h.trim_end());
        out.push('\n');
    }
    text
}
