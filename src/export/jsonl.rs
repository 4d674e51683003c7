//! `jsonl`: one JSON object per line, schema `slicesim-jsonl` version [`VERSION`].
//!
//! Line 1 is a header (`{"format":"slicesim-jsonl","version":1,...}`: configuration,
//! tasks, final counters); every further line is one log record: `t_ns`, `cpu`, `task`
//! (id or null), `kind` (snake_case) and the kind's fields. Control words appear twice:
//! as their four bytes in memory order (`[b0,b1,b2,b3]`) and as the log's text
//! (`"req=1 gr=0 rsv=0000"`). `docs/trace-formats.md` lists every kind and field; a change
//! that renames or removes a field bumps [`VERSION`], adding one does not.

use rseq_abi::CtrlWord;
use rseq_sim::{FaultCause, LogKind, LogRecord};
use serde::Serialize;

use super::{endian_name, ExportError, TraceInput};

/// Value of the header's `format`.
pub(crate) const FORMAT: &str = "slicesim-jsonl";

/// Value of the header's `version`.
pub(crate) const VERSION: u32 = 1;

#[derive(Serialize)]
struct Header<'a> {
    format: &'static str,
    version: u32,
    revision: &'static str,
    preempt: &'static str,
    endian: &'static str,
    seed: u64,
    hz: u32,
    slice_ext_nsec: u32,
    rseq_debug: bool,
    cpus: u32,
    end_ns: u64,
    events: usize,
    workload: Option<&'a str>,
    tasks: Vec<TaskJson<'a>>,
    stats: StatsJson,
}

#[derive(Serialize)]
struct TaskJson<'a> {
    id: u32,
    name: &'a str,
    pid: u32,
    tgid: u32,
}

#[derive(Serialize)]
struct StatsJson {
    granted: u64,
    expired: u64,
    revoked: u64,
    yielded: u64,
    aborted: u64,
}

#[derive(Serialize)]
struct Line<'a> {
    t_ns: u64,
    cpu: u32,
    task: Option<u32>,
    #[serde(flatten)]
    kind: Kind<'a>,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Kind<'a> {
    TaskStart,
    TaskExit {
        status: &'a str,
    },
    IrqEnter {
        irq: &'static str,
        from_user: bool,
    },
    SyscallEnter {
        name: &'static str,
        nr: i64,
    },
    SyscallExit {
        name: &'static str,
        ret: i64,
        errno: Option<&'static str>,
    },
    ExitToUser,
    NeedResched {
        lazy: bool,
        why: &'static str,
    },
    Grant {
        before: [u8; 4],
        before_text: String,
        after: [u8; 4],
        after_text: String,
        expires_ns: u64,
    },
    NoGrant {
        why: &'static str,
    },
    Revoke {
        path: &'static str,
        before: [u8; 4],
        before_text: String,
        after: [u8; 4],
        after_text: String,
        was_granted: bool,
    },
    TimerArm {
        expires_ns: u64,
    },
    TimerExpire {
        hit: bool,
    },
    TimerCancel,
    SliceSyscall {
        outcome: &'static str,
    },
    Switch {
        prev: Option<u32>,
        next: Option<u32>,
    },
    Wakeup {
        woken: u32,
        target_cpu: u32,
    },
    Migrate {
        migrated: u32,
        from_cpu: u32,
        to_cpu: u32,
    },
    IdsUpdate {
        cpu_id: u32,
    },
    RseqCs {
        fixup_abort_ip: Option<u64>,
    },
    Signal {
        signo: i32,
        cause: Option<&'static str>,
        cause_text: Option<String>,
    },
    UserStore {
        off: u8,
        after: [u8; 4],
        after_text: String,
    },
    UserLoad {
        off: u8,
        val: u32,
    },
    Injected {
        what: &'static str,
        point: u32,
    },
    Mark {
        marker: &'static str,
        lock: Option<u32>,
    },
}

pub(crate) fn render(input: &TraceInput<'_>) -> Result<Vec<u8>, ExportError> {
    let mut out = Vec::with_capacity(128 * (input.log.len() + 1));
    serde_json::to_writer(&mut out, &header(input, input.log.len()))?;
    out.push(b'\n');
    lines(&mut out, input.log)?;
    Ok(out)
}

/// The record lines of `records`, appended to `out` (the streaming writer's body).
pub(crate) fn lines(out: &mut Vec<u8>, records: &[LogRecord]) -> Result<(), ExportError> {
    for r in records {
        serde_json::to_writer(&mut *out, &line(r))?;
        out.push(b'\n');
    }
    Ok(())
}

/// The header line of a run whose `events` records were streamed (`input.log` unused).
pub(crate) fn header_line(input: &TraceInput<'_>, events: usize) -> Result<Vec<u8>, ExportError> {
    let mut out = serde_json::to_vec(&header(input, events))?;
    out.push(b'\n');
    Ok(out)
}

fn header<'a>(input: &'a TraceInput<'a>, events: usize) -> Header<'a> {
    let m = &input.meta;
    let s = input.stats;
    Header {
        format: FORMAT,
        version: VERSION,
        revision: m.revision.name(),
        preempt: m.preempt.name(),
        endian: endian_name(m.endian),
        seed: m.seed,
        hz: m.hz,
        slice_ext_nsec: m.slice_ext_nsec,
        rseq_debug: m.rseq_debug,
        cpus: input.cpus,
        end_ns: m.end_ns,
        events,
        workload: m.workload.as_deref(),
        tasks: (0..input.tasks.len() as u32)
            .map(|id| TaskJson {
                id,
                name: input.task_name(id),
                pid: input.pid(id),
                tgid: input.tgid(id),
            })
            .collect(),
        stats: StatsJson {
            granted: s.granted,
            expired: s.expired,
            revoked: s.revoked,
            yielded: s.yielded,
            aborted: s.aborted,
        },
    }
}

fn text(w: CtrlWord) -> String {
    w.to_string()
}

fn line(r: &LogRecord) -> Line<'_> {
    let kind = match &r.kind {
        LogKind::TaskStart => Kind::TaskStart,
        LogKind::TaskExit { status } => Kind::TaskExit { status },
        LogKind::IrqEnter { kind, from_user } => Kind::IrqEnter {
            irq: kind.name(),
            from_user: *from_user,
        },
        LogKind::SyscallEnter { name, nr } => Kind::SyscallEnter { name, nr: *nr },
        LogKind::SyscallExit { name, ret } => Kind::SyscallExit {
            name,
            ret: match ret {
                Ok(v) => *v,
                Err(e) => -i64::from(e.0),
            },
            errno: ret.as_ref().err().map(|e| e.name()),
        },
        LogKind::ExitToUser => Kind::ExitToUser,
        LogKind::NeedResched { lazy, why } => Kind::NeedResched { lazy: *lazy, why },
        LogKind::Grant {
            before,
            after,
            expires,
        } => Kind::Grant {
            before: before.bytes,
            before_text: text(*before),
            after: after.bytes,
            after_text: text(*after),
            expires_ns: *expires,
        },
        LogKind::NoGrant { why } => Kind::NoGrant { why },
        LogKind::Revoke {
            path,
            before,
            after,
            was_granted,
        } => Kind::Revoke {
            path: path.tag(),
            before: before.bytes,
            before_text: text(*before),
            after: after.bytes,
            after_text: text(*after),
            was_granted: *was_granted,
        },
        LogKind::TimerArm { expires } => Kind::TimerArm {
            expires_ns: *expires,
        },
        LogKind::TimerExpire { hit } => Kind::TimerExpire { hit: *hit },
        LogKind::TimerCancel => Kind::TimerCancel,
        LogKind::SliceSyscall { yielded } => Kind::SliceSyscall {
            outcome: match yielded {
                Some(true) => "yielded",
                Some(false) => "aborted",
                None => "already_rescheduled",
            },
        },
        LogKind::Switch { prev, next } => Kind::Switch {
            prev: *prev,
            next: *next,
        },
        LogKind::Wakeup { task, cpu } => Kind::Wakeup {
            woken: *task,
            target_cpu: *cpu,
        },
        LogKind::Migrate { task, from, to } => Kind::Migrate {
            migrated: *task,
            from_cpu: *from,
            to_cpu: *to,
        },
        LogKind::IdsUpdate { cpu_id } => Kind::IdsUpdate { cpu_id: *cpu_id },
        LogKind::RseqCs { fixup } => Kind::RseqCs {
            fixup_abort_ip: *fixup,
        },
        LogKind::Signal { signo, cause } => Kind::Signal {
            signo: *signo,
            cause: cause.as_ref().map(cause_tag),
            cause_text: cause.as_ref().map(ToString::to_string),
        },
        LogKind::UserStore { off, after } => Kind::UserStore {
            off: *off,
            after: after.bytes,
            after_text: text(*after),
        },
        LogKind::UserLoad { off, val } => Kind::UserLoad {
            off: *off,
            val: *val,
        },
        LogKind::Injected { what, point } => Kind::Injected {
            what: what.name(),
            point: *point,
        },
        LogKind::Mark(m) => Kind::Mark {
            marker: m.name(),
            lock: m.lock().map(|w| w.0),
        },
    };
    Line {
        t_ns: r.time,
        cpu: r.cpu,
        task: r.task,
        kind,
    }
}

/// The snake_case name of a fault cause (its text goes in `cause_text`).
fn cause_tag(c: &FaultCause) -> &'static str {
    match c {
        FaultCause::GrantFault => "grant_fault",
        FaultCause::SyscallClearFault => "syscall_clear_fault",
        FaultCause::DebugWordMismatch { .. } => "debug_word_mismatch",
        FaultCause::PrctlFlags { .. } => "prctl_flags",
        FaultCause::RseqUpdateFault => "rseq_update_fault",
        FaultCause::UnregisterFault => "unregister_fault",
        FaultCause::V1SyscallInGrant { .. } => "v1_syscall_in_grant",
        FaultCause::IdFieldTampered => "id_field_tampered",
        FaultCause::RseqCsInvalid => "rseq_cs_invalid",
        FaultCause::RseqCsDescriptor { .. } => "rseq_cs_descriptor",
        FaultCause::External => "external",
    }
}
