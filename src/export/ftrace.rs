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

use super::timeline::{prev_states, Current};
use super::{comm, endian_name, swapper, us, TraceInput, PRIO};

/// The address the export gives CPU `cpu`'s `slice_timer` hrtimer: one per-CPU variable,
/// so a fixed offset in per-CPU areas 256 KiB apart.
pub(crate) fn hrtimer_addr(cpu: u32) -> u64 {
    0xffff_8880_7fc2_1e40 + u64::from(cpu) * 0x4_0000
}

pub(crate) fn render(input: &TraceInput<'_>) -> String {
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

    let states = prev_states(input);
    let mut current = Current::new(input.cpus);
    let mut queued = vec![false; input.cpus as usize];
    for (i, r) in input.log.iter().enumerate() {
        let cpu = r.cpu;
        let timer = hrtimer_addr(cpu);
        match r.kind {
            LogKind::Switch { prev, next } => {
                let name = |t: Option<u32>| t.map_or_else(|| swapper(cpu), |t| task_comm(input, t));
                let pid = |t: Option<u32>| t.map_or(0, |t| input.pid(t));
                let state = states[i].map_or("R", |s| s.letter());
                line(
                    &mut out,
                    input,
                    r,
                    prev,
                    "sched_switch",
                    format_args!(
                        "prev_comm={} prev_pid={} prev_prio={PRIO} prev_state={state} ==> next_comm={} next_pid={} next_prio={PRIO}",
                        name(prev),
                        pid(prev),
                        name(next),
                        pid(next)
                    ),
                );
            }
            LogKind::Wakeup { task, cpu: target } => {
                line(
                    &mut out,
                    input,
                    r,
                    current.get(cpu),
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
                        &mut out,
                        input,
                        r,
                        current.get(cpu),
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
                if queued[cpu as usize] {
                    cancel(&mut out, input, r, timer);
                }
                queued[cpu as usize] = true;
                line(
                    &mut out,
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
                queued[cpu as usize] = false;
                cancel(&mut out, input, r, timer);
            }
            LogKind::TimerExpire { .. } => {
                queued[cpu as usize] = false;
                let now = r.time;
                line(
                    &mut out,
                    input,
                    r,
                    r.task,
                    "hrtimer_expire_entry",
                    format_args!("hrtimer={timer:#018x} now={now} function=rseq_slice_expired"),
                );
                line(
                    &mut out,
                    input,
                    r,
                    r.task,
                    "hrtimer_expire_exit",
                    format_args!("hrtimer={timer:#018x}"),
                );
            }
            _ => {}
        }
        current.observe(r);
    }
    out
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
) {
    let (who, pid) = match task {
        Some(t) => (task_comm(input, t), input.pid(t)),
        None => ("<idle>".to_string(), 0),
    };
    let _ = writeln!(
        out,
        "{who:>16}-{pid:<5} [{:03}] {:>5}.{:09}: {event}: {fields}",
        r.cpu,
        r.time / 1_000_000_000,
        r.time % 1_000_000_000
    );
}
