//! Trace exporters: a finished simulation's event log in formats existing tools read.
//!
//! Every exporter is a pure function from a [`TraceInput`] (borrowed from a finished
//! [`Simulation`]) to bytes: it reads the log, the task names, the CPU count, the final
//! counters and the configuration, and never touches the simulation, so exporting cannot
//! change a run. Same input, same bytes.
//!
//! | format | read with |
//! |---|---|
//! | [`Format::Text`] | a pager: one line per event, one lane per CPU |
//! | [`Format::Jsonl`] | `jq`, scripts: one JSON object per event |
//! | [`Format::Chrome`] | `chrome://tracing`, Perfetto UI (JSON trace-event format) |
//! | [`Format::Perfetto`] | Perfetto UI, `trace_processor` (protobuf: the native CPU view) |
//! | [`Format::Ftrace`] | what reads `trace-cmd report` text, e.g. the logic of the kernel's `rseq-slice-hist.py` |
//!
//! Two pictures are drawn from the same log for people rather than tools: [`html`], a
//! self-contained page to zoom and hover in a browser, and [`svg`], a static figure; both
//! draw the lanes of [`lanes`].
//!
//! `docs/trace-formats.md` describes each layout and the JSONL schema with its version.
//! Task `i` appears to the Linux-shaped formats (ftrace, Perfetto, Chrome) as pid/tid
//! [`PID_BASE`]` + i`; its process id is that of the first task of its address space.

mod chrome;
mod ftrace;
pub mod html;
mod jsonl;
pub mod lanes;
pub mod perfetto;
pub mod svg;
mod text;
pub(crate) mod timeline;

use std::fmt;
use std::str::FromStr;

use rseq_abi::{Endian, Revision};
use rseq_sim::{LogRecord, Preempt, Simulation, SliceStats};

/// Task `i` is pid/tid `PID_BASE + i` in the ftrace, Perfetto and Chrome exports.
pub const PID_BASE: u32 = 1000;

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Readable timeline, one line per event, a lane per CPU.
    Text,
    /// One JSON object per line, a header first (`slicesim-jsonl` version 1).
    Jsonl,
    /// Chrome trace-event JSON (`{"traceEvents": [...]}`).
    Chrome,
    /// Perfetto protobuf trace (`perfetto.protos.Trace`).
    Perfetto,
    /// `trace-cmd report`-style text of sched and hrtimer events.
    Ftrace,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 5] = [
        Format::Text,
        Format::Jsonl,
        Format::Chrome,
        Format::Perfetto,
        Format::Ftrace,
    ];

    /// The name on the command line (`text`, `jsonl`, `chrome`, `perfetto`, `ftrace`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Jsonl => "jsonl",
            Format::Chrome => "chrome",
            Format::Perfetto => "perfetto",
            Format::Ftrace => "ftrace",
        }
    }

    /// Is the output binary (not UTF-8 text)?
    pub fn is_binary(self) -> bool {
        self == Format::Perfetto
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is none of [`Format::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown trace format {0:?}: expected text, jsonl, chrome, perfetto or ftrace")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// What an exporter knows about one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskInfo<'a> {
    /// Its name (`TaskSpec::name`).
    pub name: &'a str,
    /// Id of the first task of its process (its address space); itself for a process.
    pub process: u32,
}

/// The run's configuration and identity, written into every format's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Protocol revision of the simulated kernel.
    pub revision: Revision,
    /// Preemption model.
    pub preempt: Preempt,
    /// Byte order of the simulated machine (how the V1 control word maps to bytes).
    pub endian: Endian,
    /// Seed of the simulation's generator.
    pub seed: u64,
    /// `CONFIG_HZ` (0 = no tick).
    pub hz: u32,
    /// `slice_ext_nsec` in force at the end of the run, ns.
    pub slice_ext_nsec: u32,
    /// `rseq_debug` on?
    pub rseq_debug: bool,
    /// Simulated time at which the run stopped, ns: open spans end here.
    pub end_ns: u64,
    /// Free-form name of the workload (e.g. `selftest n2_2_50`), if the caller gave one.
    pub workload: Option<String>,
}

/// Everything an exporter reads, borrowed from a finished simulation.
///
/// The fields are public so a trace can also be assembled by hand (tests, or a log read
/// back from elsewhere); [`render`] checks that the log is consistent with them.
#[derive(Clone, Debug)]
pub struct TraceInput<'a> {
    /// The event log, in time order.
    pub log: &'a [LogRecord],
    /// Task `i` of the log is `tasks[i]`.
    pub tasks: Vec<TaskInfo<'a>>,
    /// Number of CPUs.
    pub cpus: u32,
    /// `rseq/stats` counters at the end of the run, summed over CPUs.
    pub stats: SliceStats,
    /// Configuration and identity.
    pub meta: Metadata,
}

impl<'a> TraceInput<'a> {
    /// Borrow everything from a simulation that has run (typically until its end).
    pub fn from_simulation(sim: &'a Simulation) -> Self {
        let all = sim.tasks();
        let tasks = all
            .iter()
            .map(|t| TaskInfo {
                name: &t.name,
                process: all.iter().find(|o| o.mm == t.mm).map_or(t.id, |o| o.id),
            })
            .collect();
        let cfg = sim.config();
        TraceInput {
            log: sim.log(),
            tasks,
            cpus: cfg.cpus as u32,
            stats: sim.stats(),
            meta: Metadata {
                revision: cfg.revision,
                preempt: cfg.preempt,
                endian: cfg.endian,
                seed: cfg.seed,
                hz: cfg.hz,
                slice_ext_nsec: sim.slice_ext_nsec(),
                rseq_debug: cfg.rseq_debug,
                end_ns: sim.now(),
                workload: None,
            },
        }
    }

    /// Name the workload in the headers (e.g. `selftest n2_2_50`).
    pub fn with_workload(mut self, workload: impl Into<String>) -> Self {
        self.meta.workload = Some(workload.into());
        self
    }

    /// The name of task `id` (`?` for a task the input does not have, which [`render`]
    /// rejects before any exporter runs).
    pub fn task_name(&self, id: u32) -> &str {
        self.tasks.get(id as usize).map_or("?", |t| t.name)
    }

    /// The pid (Linux: tid) of task `id`.
    pub fn pid(&self, id: u32) -> u32 {
        PID_BASE + id
    }

    /// The process id (Linux: tgid) of task `id`.
    pub fn tgid(&self, id: u32) -> u32 {
        PID_BASE + self.tasks.get(id as usize).map_or(id, |t| t.process)
    }

    /// Latest time in the trace: the end of the run, or the last event if later.
    pub fn end_ns(&self) -> u64 {
        self.log
            .last()
            .map_or(self.meta.end_ns, |r| r.time.max(self.meta.end_ns))
    }

    /// Check that every event names a known CPU and task and that time never goes back.
    pub fn validate(&self) -> Result<(), ExportError> {
        let ntasks = self.tasks.len() as u32;
        let known = |index: usize, task: u32| {
            if task < ntasks {
                Ok(())
            } else {
                Err(ExportError::UnknownTask {
                    index,
                    task,
                    tasks: ntasks,
                })
            }
        };
        let mut last = 0;
        for (index, r) in self.log.iter().enumerate() {
            if r.cpu >= self.cpus {
                return Err(ExportError::CpuOutOfRange {
                    index,
                    cpu: r.cpu,
                    cpus: self.cpus,
                });
            }
            if r.time < last {
                return Err(ExportError::TimeWentBack {
                    index,
                    time_ns: r.time,
                    previous_ns: last,
                });
            }
            last = r.time;
            for t in timeline::tasks_named(r) {
                known(index, t)?;
            }
        }
        Ok(())
    }
}

/// Why a trace could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// An event names a CPU the machine does not have.
    #[error("event {index} is on CPU {cpu}, but the trace has {cpus} CPUs")]
    CpuOutOfRange {
        /// Index of the event in the log.
        index: usize,
        /// The CPU it names.
        cpu: u32,
        /// Number of CPUs.
        cpus: u32,
    },
    /// An event names a task the input has no name for.
    #[error("event {index} names task {task}, but the trace has {tasks} tasks")]
    UnknownTask {
        /// Index of the event in the log.
        index: usize,
        /// The task it names.
        task: u32,
        /// Number of tasks.
        tasks: u32,
    },
    /// The log is not in time order.
    #[error("event {index} at {time_ns} ns comes after an event at {previous_ns} ns")]
    TimeWentBack {
        /// Index of the event in the log.
        index: usize,
        /// Its time.
        time_ns: u64,
        /// Time of the event before it.
        previous_ns: u64,
    },
    /// JSON serialisation failed.
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Too many CPUs and tasks for a picture with a lane each.
    #[error(
        "{lanes} lanes (CPUs + tasks) are too many to draw (at most {max}): use a trace format (--trace FILE --format perfetto) for this run"
    )]
    TooManyLanes {
        /// CPUs + tasks.
        lanes: usize,
        /// [`lanes::MAX_LANES`].
        max: usize,
    },
}

/// Render `input` in `format`: the complete file contents.
pub fn render(format: Format, input: &TraceInput<'_>) -> Result<Vec<u8>, ExportError> {
    input.validate()?;
    Ok(match format {
        Format::Text => text::render(input).into_bytes(),
        Format::Jsonl => jsonl::render(input)?,
        Format::Chrome => chrome::render(input)?,
        Format::Perfetto => perfetto::render(input),
        Format::Ftrace => ftrace::render(input).into_bytes(),
    })
}

/// `prio` of every task in the Linux-shaped formats (a nice-0 fair task).
pub(crate) const PRIO: i32 = 120;

/// The kernel's `comm` of a task named `name`: at most 15 bytes (`TASK_COMM_LEN` 16 with
/// the NUL), cut at a character boundary.
pub(crate) fn comm(name: &str) -> String {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// The idle task's comm on `cpu` (`swapper/N`).
pub(crate) fn swapper(cpu: u32) -> String {
    format!("swapper/{cpu}")
}

/// The streaming `jsonl` writer, for a run that does not keep its log: [`jsonl_lines`]
/// renders each chunk of records as the run produces them; [`jsonl_header`], the first
/// line, holds the run's totals and is written before them when the run has ended. Header
/// and lines together are byte for byte what [`render`] gives for the whole log.
pub fn jsonl_lines(out: &mut Vec<u8>, records: &[LogRecord]) -> Result<(), ExportError> {
    jsonl::lines(out, records)
}

/// The header line of a streamed `jsonl` trace of `events` records (see [`jsonl_lines`]);
/// `input.log` is not read.
pub fn jsonl_header(input: &TraceInput<'_>, events: usize) -> Result<Vec<u8>, ExportError> {
    jsonl::header_line(input, events)
}

/// A trace written as the run goes, for a run that does not keep its log: `jsonl`, `text`,
/// `ftrace` and `perfetto` ([`StreamWriter::new`] is `None` for `chrome`, which needs the
/// whole log).
///
/// [`StreamWriter::records`] renders each chunk of records as the run produces them into
/// the body; when the run has ended, [`StreamWriter::header`] (which holds the run's
/// totals) goes in front of the body and [`StreamWriter::footer`] after it. Header, body
/// and footer together are byte for byte what [`render`] gives for the whole log.
pub struct StreamWriter {
    state: Streaming,
}

enum Streaming {
    Jsonl,
    Text(timeline::Current),
    Ftrace(Box<ftrace::Stream>),
    Perfetto(Box<perfetto::Stream>),
}

impl StreamWriter {
    /// A writer of `format` for a machine of `cpus` CPUs, if the format streams.
    pub fn new(format: Format, cpus: u32) -> Option<StreamWriter> {
        let state = match format {
            Format::Jsonl => Streaming::Jsonl,
            Format::Text => Streaming::Text(timeline::Current::new(cpus)),
            Format::Ftrace => Streaming::Ftrace(Box::new(ftrace::Stream::new(cpus))),
            Format::Perfetto => Streaming::Perfetto(Box::new(perfetto::Stream::new(cpus))),
            Format::Chrome => return None,
        };
        Some(StreamWriter { state })
    }

    /// Append the rendering of `records` (the next chunk of the log) to `body`, the bytes
    /// this writer has written so far. `input` gives the tasks, CPUs and configuration
    /// (`input.log` is not read). The `ftrace` writer may also rewrite one byte of an
    /// earlier line (a `prev_state` it has just learned), so `body` must be seekable; it is
    /// left positioned at its end.
    pub fn records<W: std::io::Write + std::io::Seek>(
        &mut self,
        input: &TraceInput<'_>,
        records: &[LogRecord],
        body: &mut W,
    ) -> std::io::Result<()> {
        match &mut self.state {
            Streaming::Jsonl => {
                let mut buf = Vec::with_capacity(128 * records.len());
                jsonl::lines(&mut buf, records).map_err(std::io::Error::other)?;
                body.write_all(&buf)
            }
            Streaming::Text(current) => {
                let mut buf = String::with_capacity(96 * records.len());
                text::lines(&mut buf, input, current, records);
                body.write_all(buf.as_bytes())
            }
            Streaming::Ftrace(stream) => {
                let (lines, earlier) = stream.chunk(input, records);
                if !earlier.is_empty() {
                    let end = body.stream_position()?;
                    for at in earlier {
                        body.seek(std::io::SeekFrom::Start(at))?;
                        body.write_all(b"S")?;
                    }
                    body.seek(std::io::SeekFrom::Start(end))?;
                }
                body.write_all(lines.as_bytes())
            }
            Streaming::Perfetto(stream) => stream.records(input, records, body),
        }
    }

    /// What goes in front of the body of a run that streamed `events` records: the header,
    /// with the run's totals (`input.log` is not read).
    pub fn header(&self, input: &TraceInput<'_>, events: usize) -> Result<Vec<u8>, ExportError> {
        Ok(match self.state {
            Streaming::Jsonl => jsonl::header_line(input, events)?,
            Streaming::Text(_) => text::header(input, events).into_bytes(),
            Streaming::Ftrace(_) => ftrace::header(input).into_bytes(),
            Streaming::Perfetto(_) => Vec::new(),
        })
    }

    /// What goes after the body, once the run has ended: the text timeline's final
    /// `rseq/stats`, perfetto's last bundles (and grant windows open at the end), nothing
    /// for the other formats.
    pub fn footer(&mut self, input: &TraceInput<'_>) -> Vec<u8> {
        match &mut self.state {
            Streaming::Text(_) => {
                let mut out = String::new();
                text::footer(input, &mut out);
                out.into_bytes()
            }
            Streaming::Perfetto(stream) => stream.finish(input),
            Streaming::Jsonl | Streaming::Ftrace(_) => Vec::new(),
        }
    }
}

/// `ns` as µs with three decimals: `12.345`.
pub fn us(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

/// Text as XML or HTML character data or attribute value (JUnit reports, the SVG figure,
/// the HTML page).
pub fn xml_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `little` or `big`, for headers.
fn endian_name(e: Endian) -> &'static str {
    match e {
        Endian::Little => "little",
        Endian::Big => "big",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_keeps_at_most_15_bytes_and_whole_characters() {
        assert_eq!(comm("slice_test"), "slice_test");
        assert_eq!(comm("0123456789abcdefgh"), "0123456789abcde");
        assert_eq!(comm("ééééééééé"), "ééééééé");
    }

    #[test]
    fn microseconds_keep_every_nanosecond() {
        assert_eq!(us(0), "0.000");
        assert_eq!(us(5_000_000_123), "5000000.123");
    }
}
