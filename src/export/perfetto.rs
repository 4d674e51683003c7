//! `perfetto`: a Perfetto protobuf trace (`perfetto.protos.Trace`) the Perfetto UI shows in
//! its native CPU view.
//!
//! The trace holds one `TrackDescriptor` per simulated process (`ProcessDescriptor`) and
//! per task (`ThreadDescriptor`), so tasks carry their names, then per CPU
//! `FtraceEventBundle`s of `sched_switch`, `sched_wakeup` and `sched_wakeup_new` (task
//! start) events, from which the UI draws the CPU tracks and thread states. Grant windows
//! are `print` events in atrace form (`B|tgid|slice_ext grant` at the grant, `E|tgid` at
//! its end), which the UI turns into slices on the task's thread track. Timestamps are
//! simulated ns (the default trace clock).
//!
//! The messages are declared by hand in [`proto`] with the field numbers of Perfetto's
//! `.proto` files; only the fields written here are declared (a decoder skips the rest).

use prost::Message;
use rseq_sim::{LogKind, LogRecord};

use super::timeline::{grant_windows, prev_states, Current, PrevState};
use super::{comm, swapper, TraceInput, PRIO};

/// The subset of Perfetto's trace protos this exporter writes.
///
/// Field numbers are those of `google/perfetto` `protos/perfetto/trace/`: `trace.proto`,
/// `trace_packet.proto`, `ftrace/ftrace_event_bundle.proto`, `ftrace/ftrace_event.proto`,
/// `ftrace/sched.proto`, `ftrace/ftrace.proto`, `track_event/track_descriptor.proto`,
/// `track_event/process_descriptor.proto` and `track_event/thread_descriptor.proto`.
/// All are proto2 `optional`/`repeated` fields; a one-field `oneof` encodes exactly like an
/// `optional` field, which is how `trusted_packet_sequence_id` is declared here.
pub mod proto {
    /// `Trace` (`trace.proto`): a trace file is this message.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Trace {
        /// `repeated TracePacket packet = 1`.
        #[prost(message, repeated, tag = "1")]
        pub packet: Vec<TracePacket>,
    }

    /// `TracePacket` (`trace_packet.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TracePacket {
        /// `optional uint64 timestamp = 8`.
        #[prost(uint64, optional, tag = "8")]
        pub timestamp: Option<u64>,
        /// `uint32 trusted_packet_sequence_id = 10` (in a one-field oneof).
        #[prost(uint32, optional, tag = "10")]
        pub trusted_packet_sequence_id: Option<u32>,
        /// The `data` oneof.
        #[prost(oneof = "Data", tags = "1, 60")]
        pub data: Option<Data>,
    }

    /// The members of `TracePacket.data` written here.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Data {
        /// `FtraceEventBundle ftrace_events = 1`.
        #[prost(message, tag = "1")]
        FtraceEvents(FtraceEventBundle),
        /// `TrackDescriptor track_descriptor = 60`.
        #[prost(message, tag = "60")]
        TrackDescriptor(TrackDescriptor),
    }

    /// `FtraceEventBundle` (`ftrace/ftrace_event_bundle.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FtraceEventBundle {
        /// `optional uint32 cpu = 1`.
        #[prost(uint32, optional, tag = "1")]
        pub cpu: Option<u32>,
        /// `repeated FtraceEvent event = 2`.
        #[prost(message, repeated, tag = "2")]
        pub event: Vec<FtraceEvent>,
    }

    /// `FtraceEvent` (`ftrace/ftrace_event.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FtraceEvent {
        /// `optional uint64 timestamp = 1` (ns).
        #[prost(uint64, optional, tag = "1")]
        pub timestamp: Option<u64>,
        /// `optional uint32 pid = 2`: the task the event happened in (`common_pid`).
        #[prost(uint32, optional, tag = "2")]
        pub pid: Option<u32>,
        /// The `event` oneof.
        #[prost(oneof = "Event", tags = "3, 4, 17, 114")]
        pub event: Option<Event>,
    }

    /// The members of `FtraceEvent.event` written here.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Event {
        /// `PrintFtraceEvent print = 3`.
        #[prost(message, tag = "3")]
        Print(PrintFtraceEvent),
        /// `SchedSwitchFtraceEvent sched_switch = 4`.
        #[prost(message, tag = "4")]
        SchedSwitch(SchedSwitchFtraceEvent),
        /// `SchedWakeupFtraceEvent sched_wakeup = 17`.
        #[prost(message, tag = "17")]
        SchedWakeup(SchedWakeupFtraceEvent),
        /// `SchedWakeupNewFtraceEvent sched_wakeup_new = 114`.
        #[prost(message, tag = "114")]
        SchedWakeupNew(SchedWakeupFtraceEvent),
    }

    /// `SchedSwitchFtraceEvent` (`ftrace/sched.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SchedSwitchFtraceEvent {
        /// `optional string prev_comm = 1`.
        #[prost(string, optional, tag = "1")]
        pub prev_comm: Option<String>,
        /// `optional int32 prev_pid = 2`.
        #[prost(int32, optional, tag = "2")]
        pub prev_pid: Option<i32>,
        /// `optional int32 prev_prio = 3`.
        #[prost(int32, optional, tag = "3")]
        pub prev_prio: Option<i32>,
        /// `optional int64 prev_state = 4`: the kernel's report bits (0 = R, 1 = S, ...).
        #[prost(int64, optional, tag = "4")]
        pub prev_state: Option<i64>,
        /// `optional string next_comm = 5`.
        #[prost(string, optional, tag = "5")]
        pub next_comm: Option<String>,
        /// `optional int32 next_pid = 6`.
        #[prost(int32, optional, tag = "6")]
        pub next_pid: Option<i32>,
        /// `optional int32 next_prio = 7`.
        #[prost(int32, optional, tag = "7")]
        pub next_prio: Option<i32>,
    }

    /// `SchedWakeupFtraceEvent` (`ftrace/sched.proto`); `SchedWakeupNewFtraceEvent` has the
    /// same fields and numbers.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SchedWakeupFtraceEvent {
        /// `optional string comm = 1`.
        #[prost(string, optional, tag = "1")]
        pub comm: Option<String>,
        /// `optional int32 pid = 2`.
        #[prost(int32, optional, tag = "2")]
        pub pid: Option<i32>,
        /// `optional int32 prio = 3`.
        #[prost(int32, optional, tag = "3")]
        pub prio: Option<i32>,
        /// `optional int32 success = 4`.
        #[prost(int32, optional, tag = "4")]
        pub success: Option<i32>,
        /// `optional int32 target_cpu = 5`.
        #[prost(int32, optional, tag = "5")]
        pub target_cpu: Option<i32>,
    }

    /// `PrintFtraceEvent` (`ftrace/ftrace.proto`): a `trace_marker` write.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PrintFtraceEvent {
        /// `optional uint64 ip = 1`.
        #[prost(uint64, optional, tag = "1")]
        pub ip: Option<u64>,
        /// `optional string buf = 2`.
        #[prost(string, optional, tag = "2")]
        pub buf: Option<String>,
    }

    /// `TrackDescriptor` (`track_event/track_descriptor.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TrackDescriptor {
        /// `optional uint64 uuid = 1`.
        #[prost(uint64, optional, tag = "1")]
        pub uuid: Option<u64>,
        /// `optional string name = 2`.
        #[prost(string, optional, tag = "2")]
        pub name: Option<String>,
        /// `optional ProcessDescriptor process = 3`.
        #[prost(message, optional, tag = "3")]
        pub process: Option<ProcessDescriptor>,
        /// `optional ThreadDescriptor thread = 4`.
        #[prost(message, optional, tag = "4")]
        pub thread: Option<ThreadDescriptor>,
        /// `optional uint64 parent_uuid = 5`.
        #[prost(uint64, optional, tag = "5")]
        pub parent_uuid: Option<u64>,
    }

    /// `ProcessDescriptor` (`track_event/process_descriptor.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProcessDescriptor {
        /// `optional int32 pid = 1`.
        #[prost(int32, optional, tag = "1")]
        pub pid: Option<i32>,
        /// `optional string process_name = 6`.
        #[prost(string, optional, tag = "6")]
        pub process_name: Option<String>,
    }

    /// `ThreadDescriptor` (`track_event/thread_descriptor.proto`).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ThreadDescriptor {
        /// `optional int32 pid = 1`.
        #[prost(int32, optional, tag = "1")]
        pub pid: Option<i32>,
        /// `optional int32 tid = 2`.
        #[prost(int32, optional, tag = "2")]
        pub tid: Option<i32>,
        /// `optional string thread_name = 5`.
        #[prost(string, optional, tag = "5")]
        pub thread_name: Option<String>,
    }
}

use proto::*;

/// Sequence id of every packet (a trace written by one writer).
const SEQUENCE_ID: u32 = 1;

/// Most events per `FtraceEventBundle` (keeps packets small, as `traced_probes` does).
const BUNDLE_EVENTS: usize = 4096;

pub(crate) fn render(input: &TraceInput<'_>) -> Vec<u8> {
    let mut packets = descriptors(input);
    let mut per_cpu: Vec<Vec<FtraceEvent>> = vec![Vec::new(); input.cpus as usize];
    // Grant windows as atrace begin/end markers, each placed right after the record that
    // opened or closed it (windows still open at the end close after the last record).
    let mut marks: Vec<(usize, u32, FtraceEvent)> = Vec::new();
    for w in grant_windows(input) {
        let (pid, tgid) = (input.pid(w.task), input.tgid(w.task));
        let begin = print(w.start_ns, pid, format!("B|{tgid}|slice_ext grant"));
        marks.push((w.start_index, w.cpu, begin));
        let end_index = w.end_index.unwrap_or(usize::MAX);
        marks.push((
            end_index,
            w.end_cpu,
            print(w.end_ns, pid, format!("E|{tgid}")),
        ));
    }
    marks.sort_by_key(|m| m.0);
    let mut marks = marks.into_iter().peekable();

    let states = prev_states(input);
    let mut current = Current::new(input.cpus);
    for (i, r) in input.log.iter().enumerate() {
        if let Some(e) = sched_event(input, r, states[i], &current) {
            per_cpu[r.cpu as usize].push(e);
        }
        current.observe(r);
        while let Some((_, cpu, e)) = marks.next_if(|m| m.0 <= i) {
            per_cpu[cpu as usize].push(e);
        }
    }
    for (_, cpu, e) in marks {
        per_cpu[cpu as usize].push(e);
    }

    for (cpu, events) in per_cpu.into_iter().enumerate() {
        for chunk in events.chunks(BUNDLE_EVENTS) {
            packets.push(TracePacket {
                timestamp: None,
                trusted_packet_sequence_id: Some(SEQUENCE_ID),
                data: Some(Data::FtraceEvents(FtraceEventBundle {
                    cpu: Some(cpu as u32),
                    event: chunk.to_vec(),
                })),
            });
        }
    }
    Trace { packet: packets }.encode_to_vec()
}

/// The scheduler event of a record, if it is one: `sched_switch` (in the previous task),
/// `sched_wakeup` and `sched_wakeup_new` (in whatever runs on the CPU).
fn sched_event(
    input: &TraceInput<'_>,
    r: &LogRecord,
    state: Option<PrevState>,
    current: &Current,
) -> Option<FtraceEvent> {
    let pid_of = |t: Option<u32>| t.map_or(0, |t| input.pid(t));
    let comm_of = |t: Option<u32>| t.map_or_else(|| swapper(r.cpu), |t| comm(input.task_name(t)));
    let (pid, event) = match r.kind {
        LogKind::Switch { prev, next } => (
            pid_of(prev),
            Event::SchedSwitch(SchedSwitchFtraceEvent {
                prev_comm: Some(comm_of(prev)),
                prev_pid: Some(pid_of(prev) as i32),
                prev_prio: Some(PRIO),
                prev_state: Some(state.map_or(0, PrevState::bits)),
                next_comm: Some(comm_of(next)),
                next_pid: Some(pid_of(next) as i32),
                next_prio: Some(PRIO),
            }),
        ),
        LogKind::Wakeup { task, cpu } => (
            pid_of(current.get(r.cpu)),
            Event::SchedWakeup(wakeup(input, task, cpu)),
        ),
        LogKind::TaskStart => (
            pid_of(current.get(r.cpu)),
            Event::SchedWakeupNew(wakeup(input, r.task?, r.cpu)),
        ),
        _ => return None,
    };
    Some(FtraceEvent {
        timestamp: Some(r.time),
        pid: Some(pid),
        event: Some(event),
    })
}

fn wakeup(input: &TraceInput<'_>, task: u32, cpu: u32) -> SchedWakeupFtraceEvent {
    SchedWakeupFtraceEvent {
        comm: Some(comm(input.task_name(task))),
        pid: Some(input.pid(task) as i32),
        prio: Some(PRIO),
        success: Some(1),
        target_cpu: Some(cpu as i32),
    }
}

fn print(t: u64, pid: u32, buf: String) -> FtraceEvent {
    FtraceEvent {
        timestamp: Some(t),
        pid: Some(pid),
        event: Some(Event::Print(PrintFtraceEvent {
            ip: None,
            buf: Some(buf + "\n"),
        })),
    }
}

/// A process track per simulated process, a thread track per task. Track uuids: the
/// process's pid for a process, `1 << 32 | tid` for a thread.
fn descriptors(input: &TraceInput<'_>) -> Vec<TracePacket> {
    let mut out = Vec::new();
    let packet = |d: TrackDescriptor| TracePacket {
        timestamp: Some(0),
        trusted_packet_sequence_id: Some(SEQUENCE_ID),
        data: Some(Data::TrackDescriptor(d)),
    };
    for t in 0..input.tasks.len() as u32 {
        let (pid, tgid) = (input.pid(t), input.tgid(t));
        if pid == tgid {
            out.push(packet(TrackDescriptor {
                uuid: Some(u64::from(tgid)),
                process: Some(ProcessDescriptor {
                    pid: Some(tgid as i32),
                    process_name: Some(input.task_name(t).to_string()),
                }),
                ..Default::default()
            }));
        }
    }
    for t in 0..input.tasks.len() as u32 {
        let (pid, tgid) = (input.pid(t), input.tgid(t));
        out.push(packet(TrackDescriptor {
            uuid: Some(1 << 32 | u64::from(pid)),
            parent_uuid: Some(u64::from(tgid)),
            thread: Some(ThreadDescriptor {
                pid: Some(tgid as i32),
                tid: Some(pid as i32),
                thread_name: Some(input.task_name(t).to_string()),
            }),
            ..Default::default()
        }));
    }
    out
}
