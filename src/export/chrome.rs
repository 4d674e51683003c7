//! `chrome`: the Chrome trace-event JSON format (`chrome://tracing`, Perfetto UI).
//!
//! `{"traceEvents":[...],"displayTimeUnit":"ns","otherData":{...}}`, timestamps in µs as
//! floats computed from simulated ns (three decimals carry every nanosecond). Layout:
//!
//! - process `rseq/stats` ([`STATS_PID`]): one counter per `rseq/stats` line (`sgrant`,
//!   `sexpir`, `srevok`, `syield`, `sabort`), cumulative over time;
//! - process `CPU n` ([`CPU_PID_BASE`]` + n`): thread `running` with a complete (`X`) slice
//!   per stretch a task is current (from the switch records), thread `slice_timer` with a
//!   slice per stretch the enforcement hrtimer is queued and an instant per expiry;
//! - one process per simulated process (pid = [`PID_BASE`](super::PID_BASE)` + id` of its
//!   first task) with a thread per task (tid = `PID_BASE + id`): a `grant` slice per grant
//!   window (grant until revoke, slice syscall, timer expiry or exit) and instants for
//!   `request`, `grant`, `revoke Rn`, `yield`/`abort`, and `SIGSEGV`.
//!
//! Names come from metadata (`M`) events. Events are sorted by timestamp.

use rseq_sim::{LogKind, LogRecord};
use serde::Serialize;
use serde_json::{json, Value};

use super::timeline::{
    grant_windows, is_request, running_spans, timer_spans, StatsTracker, TimerEnd,
};
use super::{endian_name, ExportError, TraceInput};

/// pid of the `rseq/stats` counter process.
pub(crate) const STATS_PID: u32 = 1_000_000;
/// pid of CPU 0's process; CPU `n` is `CPU_PID_BASE + n`.
pub(crate) const CPU_PID_BASE: u32 = 1_000_001;
/// tid of a CPU's `running` track.
const RUNNING_TID: u32 = 1;
/// tid of a CPU's `slice_timer` track.
const TIMER_TID: u32 = 2;

#[derive(Serialize)]
struct Event {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cat: Option<&'static str>,
    ph: &'static str,
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: u32,
    tid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'static str>,
    #[serde(skip_serializing_if = "Value::is_null")]
    args: Value,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Events with their time in ns, sorted (stably) before writing.
struct Events(Vec<(u64, Event)>);

impl Events {
    fn meta(&mut self, name: &str, pid: u32, tid: u32, args: Value) {
        self.push(0, name.to_string(), None, "M", None, (pid, tid), args);
    }

    fn complete(
        &mut self,
        name: String,
        cat: &'static str,
        (start, end): (u64, u64),
        track: (u32, u32),
        args: Value,
    ) {
        let dur = Some(us(end - start));
        self.push(start, name, Some(cat), "X", dur, track, args);
    }

    fn instant(&mut self, name: String, cat: &'static str, t: u64, track: (u32, u32), args: Value) {
        self.0.push((
            t,
            Event {
                name,
                cat: Some(cat),
                ph: "i",
                ts: us(t),
                dur: None,
                pid: track.0,
                tid: track.1,
                s: Some("t"),
                args,
            },
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        t: u64,
        name: String,
        cat: Option<&'static str>,
        ph: &'static str,
        dur: Option<f64>,
        (pid, tid): (u32, u32),
        args: Value,
    ) {
        self.0.push((
            t,
            Event {
                name,
                cat,
                ph,
                ts: us(t),
                dur,
                pid,
                tid,
                s: None,
                args,
            },
        ));
    }
}

pub(crate) fn render(input: &TraceInput<'_>) -> Result<Vec<u8>, ExportError> {
    let mut ev = Events(Vec::new());
    metadata(input, &mut ev);
    let label = |t: u32| format!("T{t} {}", input.task_name(t));
    let task_track = |t: u32| (input.tgid(t), input.pid(t));
    let cpu_track = |cpu: u32, tid: u32| (CPU_PID_BASE + cpu, tid);

    for s in running_spans(input) {
        ev.complete(
            label(s.task),
            "sched",
            (s.start_ns, s.end_ns),
            cpu_track(s.cpu, RUNNING_TID),
            json!({ "task": s.task, "pid": input.pid(s.task) }),
        );
    }
    for w in grant_windows(input) {
        ev.complete(
            "grant".into(),
            "slice",
            (w.start_ns, w.end_ns),
            task_track(w.task),
            json!({
                "cpu": w.cpu,
                "expires_ns": w.expires_ns,
                "end": w.end.describe(),
                "duration_ns": w.end_ns - w.start_ns,
            }),
        );
    }
    for s in timer_spans(input) {
        let end = match s.end {
            TimerEnd::Expired { hit } => format!("expired hit={}", u8::from(hit)),
            TimerEnd::Cancelled => "cancelled".into(),
            TimerEnd::Restarted => "restarted".into(),
            TimerEnd::EndOfTrace => "end of trace".into(),
        };
        ev.complete(
            "slice_timer queued".into(),
            "timer",
            (s.start_ns, s.end_ns),
            cpu_track(s.cpu, TIMER_TID),
            json!({ "expires_ns": s.expires_ns, "cookie": s.task, "end": end }),
        );
    }

    let mut stats = StatsTracker::default();
    for (name, v) in stats.0.named() {
        counter(&mut ev, name, v, 0);
    }
    for r in input.log {
        instants(input, r, &mut ev, task_track, cpu_track);
        let before = stats.0;
        if stats.apply(r) {
            for ((name, v), (_, old)) in stats.0.named().into_iter().zip(before.named()) {
                if v != old {
                    counter(&mut ev, name, v, r.time);
                }
            }
        }
    }

    ev.0.sort_by_key(|(t, _)| *t);
    let mut out = Vec::with_capacity(160 * (ev.0.len() + 1));
    out.extend_from_slice(b"{\"traceEvents\":[\n");
    for (i, (_, e)) in ev.0.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",\n");
        }
        serde_json::to_writer(&mut out, e)?;
    }
    out.extend_from_slice(b"\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":");
    serde_json::to_writer(&mut out, &other_data(input))?;
    out.extend_from_slice(b"\n}\n");
    Ok(out)
}

fn counter(ev: &mut Events, name: &str, v: u64, t: u64) {
    ev.push(
        t,
        name.to_string(),
        Some("stats"),
        "C",
        None,
        (STATS_PID, 0),
        json!({ name: v }),
    );
}

fn instants(
    input: &TraceInput<'_>,
    r: &LogRecord,
    ev: &mut Events,
    task_track: impl Fn(u32) -> (u32, u32),
    cpu_track: impl Fn(u32, u32) -> (u32, u32),
) {
    let t = r.time;
    if let LogKind::TimerExpire { hit } = r.kind {
        ev.instant(
            "timer expire".into(),
            "timer",
            t,
            cpu_track(r.cpu, TIMER_TID),
            json!({ "hit": hit, "current": r.task }),
        );
        return;
    }
    let Some(task) = r.task else { return };
    let track = task_track(task);
    let (name, args) = match &r.kind {
        LogKind::UserStore { after, .. } if is_request(input, r) => (
            "request".to_string(),
            json!({ "cpu": r.cpu, "word": after.to_string() }),
        ),
        LogKind::Grant {
            before,
            after,
            expires,
        } => (
            "grant".to_string(),
            json!({
                "cpu": r.cpu,
                "before": before.to_string(),
                "after": after.to_string(),
                "expires_ns": expires,
            }),
        ),
        LogKind::Revoke {
            path,
            before,
            after,
            was_granted,
        } if *was_granted || before != after => (
            format!("revoke {}", path.tag()),
            json!({
                "cpu": r.cpu,
                "before": before.to_string(),
                "after": after.to_string(),
                "was_granted": was_granted,
            }),
        ),
        LogKind::SliceSyscall { yielded } => (
            match yielded {
                Some(true) => "yield",
                Some(false) => "abort",
                None => "slice syscall (already rescheduled)",
            }
            .to_string(),
            json!({ "cpu": r.cpu }),
        ),
        LogKind::Signal { signo, cause } => (
            if *signo == 11 {
                "SIGSEGV".to_string()
            } else {
                format!("signal {signo}")
            },
            json!({ "cpu": r.cpu, "cause": cause.as_ref().map(ToString::to_string) }),
        ),
        _ => return,
    };
    ev.instant(name, "slice", t, track, args);
}

fn metadata(input: &TraceInput<'_>, ev: &mut Events) {
    let name = |n: &str| json!({ "name": n });
    let sort = |i: u32| json!({ "sort_index": i });
    ev.meta("process_name", STATS_PID, 0, name("rseq/stats"));
    ev.meta("process_sort_index", STATS_PID, 0, sort(0));
    for cpu in 0..input.cpus {
        let pid = CPU_PID_BASE + cpu;
        ev.meta("process_name", pid, 0, name(&format!("CPU {cpu}")));
        ev.meta("process_sort_index", pid, 0, sort(1 + cpu));
        ev.meta("thread_name", pid, RUNNING_TID, name("running"));
        ev.meta("thread_sort_index", pid, RUNNING_TID, sort(0));
        ev.meta("thread_name", pid, TIMER_TID, name("slice_timer"));
        ev.meta("thread_sort_index", pid, TIMER_TID, sort(1));
    }
    for t in 0..input.tasks.len() as u32 {
        let (pid, tid) = (input.tgid(t), input.pid(t));
        if pid == tid {
            ev.meta("process_name", pid, 0, name(input.task_name(t)));
            ev.meta("process_sort_index", pid, 0, sort(1 + input.cpus + t));
        }
        ev.meta(
            "thread_name",
            pid,
            tid,
            name(&format!("T{t} {}", input.task_name(t))),
        );
        ev.meta("thread_sort_index", pid, tid, sort(t));
    }
}

fn other_data(input: &TraceInput<'_>) -> Value {
    let m = &input.meta;
    let s = input.stats;
    json!({
        "generator": "slicesim",
        "revision": m.revision.name(),
        "preempt": m.preempt.name(),
        "endian": endian_name(m.endian),
        "seed": m.seed,
        "hz": m.hz,
        "slice_ext_nsec": m.slice_ext_nsec,
        "rseq_debug": m.rseq_debug,
        "cpus": input.cpus,
        "end_ns": m.end_ns,
        "workload": m.workload,
        "stats": {
            "granted": s.granted,
            "expired": s.expired,
            "revoked": s.revoked,
            "yielded": s.yielded,
            "aborted": s.aborted,
        },
    })
}
