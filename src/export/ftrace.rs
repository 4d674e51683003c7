//! `ftrace`: `trace-cmd report`-style text of the scheduler and enforcement-timer events.
//!
//! A few `#` header lines and `cpus=N`, then one line per event in time order:
//!
//! ```text
//!      slice_test-1000    [001]     0.012345678: hrtimer_start: hrtimer=0xffff88807fc61e40 function=rseq_slice_expired expires=12350678 softexpires=12350678 mode=ABS|PINNED|HARD
//! ```
//!
//! `comm-pid` is the task the event happened in (`<idle>-0` for none), the CPU is
//! zero-padded to three digits, and the timestamp is simulated seconds with nanosecond
//! decimals (as `trace-cmd report -t` prints them: grants last a few µs, and the kernel's
//! `rseq-slice-hist.py` measures them in ns). Events and fields follow the kernel's
//! tracepoint formats:
//!
//! - `sched_switch` (`prev_state` `R`, `S`, `X` or `Z`, inferred from the log),
//!   `sched_wakeup`, `sched_wakeup_new` (a task start), all `prio=120`;
//! - `hrtimer_start`, `hrtimer_cancel`, `hrtimer_expire_entry`, `hrtimer_expire_exit` of the
//!   per-CPU slice timer, whose address [`hrtimer_addr`] is constant per CPU. As in the
//!   kernel, starting a timer that is still queued first dequeues it, which traces an
//!   `hrtimer_cancel`: there is one `hrtimer_cancel` per `TimerCancel` record plus one per
//!   `TimerArm` while the CPU's timer was queued.
//!
//! So `rseq-slice-hist.py`'s logic (a slice starts at `hrtimer_start` with function
//! `rseq_slice_expired`, ends at the same timer's `hrtimer_cancel` or, as `EXPIRED`, at its
//! `hrtimer_expire_entry`) applies to this text as to a recording of a real kernel.

use std::fmt::Write;

use rseq_sim::{LogKind, LogRecord};

use super::timeline::{prev_states, Current, PrevState};
use super::{comm, endian_name, swapper, us, TraceInput, PRIO};

/// The address the export gives CPU `cpu`'s `slice_timer` hrtimer: one per-CPU variable,
/// so a fixed offset in per-CPU areas 256 KiB apart.
pub(crate) fn hrtimer_addr(cpu: u32) -> u64 {
    0xffff_8880_7fc2_1e40 + u64::from(cpu) * 0x4_0000
}

pub(crate) fn render(input: &TraceInput<'_>) -> String {
    let mut out = header(input);
    let states = prev_states(input);
    let mut w = Writer::new(input.cpus);
    for (i, r) in input.log.iter().enumerate() {
        w.record(&mut out, input, r, states[i].map_or("R", |s| s.letter()));
    }
    out
}

/// The lines before the events: they name the run's end, so a streamed trace writes them
/// last, in front of the events.
pub(crate) fn header(input: &TraceInput<'_>) -> String {
    let mut out = String::new();
    let m = &input.meta;
    let _ = writeln!(
        out,
        "# slicesim: simulated kernel trace, trace-cmd report style"
    );
    let _ = writeln!(
        out,
        "# revision {}, preempt {}, {} endian, seed {}, slice_ext_nsec {}, run ended at {} us",
        m.revision.name(),
        m.preempt.name(),
        endian_name(m.endian),
        m.seed,
        m.slice_ext_nsec,
        us(m.end_ns)
    );
    if let Some(w) = &m.workload {
        let _ = writeln!(out, "# workload: {w}");
    }
    let _ = writeln!(
        out,
        "# timestamps: simulated CLOCK_MONOTONIC, seconds with ns decimals; pid = {} + task id",
        super::PID_BASE
    );
    let _ = writeln!(out, "cpus={}", input.cpus);
    out
}

/// What the event lines carry from one record to the next.
struct Writer {
    current: Current,
    queued: Vec<bool>,
}

impl Writer {
    fn new(cpus: u32) -> Self {
        Writer {
            current: Current::new(cpus),
            queued: vec![false; cpus as usize],
        }
    }

    /// The lines of record `r`; `state` is the `prev_state` of a switch. Returns, for a
    /// switch away from a task, where in `out` its `prev_state` letter is.
    fn record(
        &mut self,
        out: &mut String,
        input: &TraceInput<'_>,
        r: &LogRecord,
        state: &str,
    ) -> Option<usize> {
        let cpu = r.cpu;
        let timer = hrtimer_addr(cpu);
        let mut letter = None;
        match r.kind {
            LogKind::Switch { prev, next } => {
                let name = |t: Option<u32>| t.map_or_else(|| swapper(cpu), |t| task_comm(input, t));
                let pid = |t: Option<u32>| t.map_or(0, |t| input.pid(t));
                let before = format!(
                    "prev_comm={} prev_pid={} prev_prio={PRIO} prev_state=",
                    name(prev),
                    pid(prev)
                );
                let at = line(
                    out,
                    input,
                    r,
                    prev,
                    "sched_switch",
                    format_args!(
                        "{before}{state} ==> next_comm={} next_pid={} next_prio={PRIO}",
                        name(next),
                        pid(next)
                    ),
                );
                letter = prev.map(|_| at + before.len());
            }
            LogKind::Wakeup { task, cpu: target } => {
                line(
                    out,
                    input,
                    r,
                    self.current.get(cpu),
                    "sched_wakeup",
                    format_args!(
                        "comm={} pid={} prio={PRIO} target_cpu={target:03}",
                        task_comm(input, task),
                        input.pid(task)
                    ),
                );
            }
            LogKind::TaskStart => {
                if let Some(t) = r.task {
                    line(
                        out,
                        input,
                        r,
                        self.current.get(cpu),
                        "sched_wakeup_new",
                        format_args!(
                            "comm={} pid={} prio={PRIO} target_cpu={cpu:03}",
                            task_comm(input, t),
                            input.pid(t)
                        ),
                    );
                }
            }
            LogKind::TimerArm { expires } => {
                if self.queued[cpu as usize] {
                    cancel(out, input, r, timer);
                }
                self.queued[cpu as usize] = true;
                line(
                    out,
                    input,
                    r,
                    r.task,
                    "hrtimer_start",
                    format_args!(
                        "hrtimer={timer:#018x} function=rseq_slice_expired expires={expires} softexpires={expires} mode=ABS|PINNED|HARD"
                    ),
                );
            }
            LogKind::TimerCancel => {
                self.queued[cpu as usize] = false;
                cancel(out, input, r, timer);
            }
            LogKind::TimerExpire { .. } => {
                self.queued[cpu as usize] = false;
                let now = r.time;
                line(
                    out,
                    input,
                    r,
                    r.task,
                    "hrtimer_expire_entry",
                    format_args!("hrtimer={timer:#018x} now={now} function=rseq_slice_expired"),
                );
                line(
                    out,
                    input,
                    r,
                    r.task,
                    "hrtimer_expire_exit",
                    format_args!("hrtimer={timer:#018x}"),
                );
            }
            _ => {}
        }
        self.current.observe(r);
        letter
    }
}

/// The streaming `ftrace` writer: the event lines of each chunk of records as the run
/// produces them, and [`header`] at the end.
///
/// A switch away from a task prints its `prev_state`, which the whole-log writer learns by
/// looking ahead ([`prev_states`]): `S` if the task's next event is a wakeup, `R` if it is
/// being switched back in (or nothing). The stream writes `R` and remembers where; when the
/// task's wakeup comes, that one byte becomes `S` (in this chunk, or by a patch of the
/// bytes already written). A task that has exited is `X`/`Z` at once. One pending letter
/// per task: memory does not grow with the log.
pub(crate) struct Stream {
    writer: Writer,
    /// Bytes of event lines written before this chunk.
    written: u64,
    /// Tasks whose `TaskExit` has been seen.
    exited: std::collections::BTreeSet<u32>,
    /// Task switched away from → where its `R` is, until its next wakeup or switch-in.
    pending: std::collections::BTreeMap<u32, u64>,
}

impl Stream {
    pub(crate) fn new(cpus: u32) -> Self {
        Stream {
            writer: Writer::new(cpus),
            written: 0,
            exited: Default::default(),
            pending: Default::default(),
        }
    }

    /// The lines of `records`, and the offsets in earlier chunks' bytes whose `R` is an `S`.
    pub(crate) fn chunk(
        &mut self,
        input: &TraceInput<'_>,
        records: &[LogRecord],
    ) -> (String, Vec<u64>) {
        let mut out = String::new();
        let mut earlier = Vec::new();
        let base = self.written;
        for r in records {
            let mut state = "R";
            match r.kind {
                LogKind::Wakeup { task, .. } => {
                    if let Some(at) = self.pending.remove(&task) {
                        if at >= base {
                            // A one-byte ASCII letter for another: still UTF-8.
                            out.replace_range((at - base) as usize..(at - base) as usize + 1, "S");
                        } else {
                            earlier.push(at);
                        }
                    }
                }
                LogKind::Switch { prev, next } => {
                    if let Some(n) = next {
                        self.pending.remove(&n);
                    }
                    if let Some(p) = prev.filter(|p| self.exited.contains(p)) {
                        let leader = input.tasks.get(p as usize).is_some_and(|t| t.process == p);
                        state = PrevState::Dead { leader }.letter();
                    }
                }
                LogKind::TaskExit { .. } => {
                    if let Some(t) = r.task {
                        self.exited.insert(t);
                    }
                }
                _ => {}
            }
            let letter = self.writer.record(&mut out, input, r, state);
            if let (Some(at), LogKind::Switch { prev: Some(p), .. }) = (letter, &r.kind) {
                if state == "R" {
                    self.pending.insert(*p, base + at as u64);
                }
            }
        }
        self.written += out.len() as u64;
        (out, earlier)
    }
}

fn task_comm(input: &TraceInput<'_>, t: u32) -> String {
    comm(input.task_name(t))
}

fn cancel(out: &mut String, input: &TraceInput<'_>, r: &LogRecord, timer: u64) {
    line(
        out,
        input,
        r,
        r.task,
        "hrtimer_cancel",
        format_args!("hrtimer={timer:#018x}"),
    );
}

/// One event line: `comm-pid [cpu] secs.nanos: event: fields`.
fn line(
    out: &mut String,
    input: &TraceInput<'_>,
    r: &LogRecord,
    task: Option<u32>,
    event: &str,
    fields: std::fmt::Arguments<'_>,
) -> usize {
    let (who, pid) = match task {
        Some(t) => (task_comm(input, t), input.pid(t)),
        None => ("<idle>".to_string(), 0),
    };
    let _ = write!(
        out,
        "{who:>16}-{pid:<5} [{:03}] {:>5}.{:09}: {event}: ",
        r.cpu,
        r.time / 1_000_000_000,
        r.time % 1_000_000_000
    );
    let at = out.len();
    let _ = writeln!(out, "{fields}");
    at
}
