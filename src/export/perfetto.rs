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

use super::timeline::{Current, PrevState};
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

/// The whole trace: the streaming writer fed the whole log at once, so a streamed trace and
/// a rendered one are the same bytes.
pub(crate) fn render(input: &TraceInput<'_>) -> Vec<u8> {
    let mut stream = Stream::new(input.cpus);
    let mut out = Vec::new();
    let mut body = std::io::Cursor::new(&mut out);
    stream
        .records(input, input.log, &mut body)
        .expect("writing to memory");
    let tail = stream.finish(input);
    out.extend(tail);
    out
}

/// An event waiting in its CPU's next bundle.
struct Slot {
    event: FtraceEvent,
    /// A `sched_switch` whose previous task's state is not known yet (written as R).
    pending: Option<u32>,
}

/// Where a switched-out task's `prev_state` is, until its next wakeup (then it was S) or
/// switch-in (R, as written).
#[derive(Clone, Copy)]
enum Pending {
    /// In the CPU's bundle not written yet, at this index.
    Buffered { cpu: u32, index: usize },
    /// Written: the byte at this offset of the file.
    Written(u64),
}

/// The `perfetto` writer, streaming: a run's records go in chunk by chunk, and what it
/// holds is bounded by the machine (one bundle of at most [`BUNDLE_EVENTS`] events per CPU,
/// one pending `prev_state` and one open grant window per task), never by simulated time.
///
/// Packets: a process and a thread `TrackDescriptor` the first time a task appears, then
/// per CPU an `FtraceEventBundle` each time the CPU has [`BUNDLE_EVENTS`] events, and the
/// remainder of every CPU at the end. A `sched_switch`'s `prev_state` is learned later (a
/// wakeup says the task was sleeping); it is written as R and, if need be, its one byte
/// (every state's varint is one byte) is patched afterwards, as `ftrace`'s letter is.
pub(crate) struct Stream {
    bundles: Vec<Vec<Slot>>,
    current: Current,
    /// Bytes written so far.
    written: u64,
    /// Tasks whose descriptors are written; processes likewise.
    described: std::collections::BTreeSet<u32>,
    processes: std::collections::BTreeSet<u32>,
    exited: std::collections::BTreeSet<u32>,
    pending: std::collections::BTreeMap<u32, Pending>,
    /// Open grant windows: task → its pid, tgid and the CPU of the grant.
    open: std::collections::BTreeMap<u32, (u32, u32, u32)>,
    /// Time of the latest record.
    last_ns: u64,
}

impl Stream {
    pub(crate) fn new(cpus: u32) -> Self {
        Stream {
            bundles: (0..cpus).map(|_| Vec::new()).collect(),
            current: Current::new(cpus),
            written: 0,
            described: Default::default(),
            processes: Default::default(),
            exited: Default::default(),
            pending: Default::default(),
            open: Default::default(),
            last_ns: 0,
        }
    }

    /// Write the packets `records` complete to `body` (positioned at its end, which is left
    /// there), patching `prev_state` bytes of earlier packets.
    pub(crate) fn records<W: std::io::Write + std::io::Seek>(
        &mut self,
        input: &TraceInput<'_>,
        records: &[LogRecord],
        body: &mut W,
    ) -> std::io::Result<()> {
        let mut out = Vec::new();
        let mut earlier = Vec::new();
        let base = self.written;
        for r in records {
            self.last_ns = self.last_ns.max(r.time);
            for t in [r.task, record_other_task(r)].into_iter().flatten() {
                self.describe(input, t, &mut out);
            }
            let mut state = None;
            match r.kind {
                LogKind::Wakeup { task, .. } => match self.pending.remove(&task) {
                    Some(Pending::Buffered { cpu, index }) => {
                        let slot = &mut self.bundles[cpu as usize][index];
                        set_prev_state(&mut slot.event, PrevState::Sleeping);
                        slot.pending = None;
                    }
                    Some(Pending::Written(at)) if at >= base => {
                        out[(at - base) as usize] = PrevState::Sleeping.bits() as u8;
                    }
                    Some(Pending::Written(at)) => earlier.push(at),
                    None => {}
                },
                LogKind::Switch { prev, next } => {
                    if let Some(n) = next {
                        if let Some(Pending::Buffered { cpu, index }) = self.pending.remove(&n) {
                            self.bundles[cpu as usize][index].pending = None;
                        }
                    }
                    if let Some(p) = prev {
                        state = Some(if self.exited.contains(&p) {
                            let leader =
                                input.tasks.get(p as usize).is_some_and(|t| t.process == p);
                            PrevState::Dead { leader }
                        } else {
                            PrevState::Runnable
                        });
                    }
                }
                LogKind::TaskExit { .. } => {
                    if let Some(t) = r.task {
                        self.exited.insert(t);
                    }
                }
                _ => {}
            }
            if let Some(e) = sched_event(input, r, state, &self.current) {
                let pending = match (&r.kind, state) {
                    (&LogKind::Switch { prev: Some(p), .. }, Some(PrevState::Runnable)) => {
                        let index = self.bundles[r.cpu as usize].len();
                        self.pending
                            .insert(p, Pending::Buffered { cpu: r.cpu, index });
                        Some(p)
                    }
                    _ => None,
                };
                self.push(r.cpu, Slot { event: e, pending }, &mut out);
            }
            self.current.observe(r);
            self.grant_marks(input, r, &mut out);
        }
        if !earlier.is_empty() {
            let end = body.stream_position()?;
            for at in earlier {
                body.seek(std::io::SeekFrom::Start(at))?;
                body.write_all(&[PrevState::Sleeping.bits() as u8])?;
            }
            body.seek(std::io::SeekFrom::Start(end))?;
        }
        body.write_all(&out)
    }

    /// The rest, once the run has ended: grant windows still open close at the end of the
    /// trace, every task not seen yet gets its descriptors, every CPU's last bundle.
    pub(crate) fn finish(&mut self, input: &TraceInput<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let end_ns = self.last_ns.max(input.meta.end_ns);
        for (pid, tgid, cpu) in std::mem::take(&mut self.open).into_values() {
            self.push_print(cpu, print(end_ns, pid, format!("E|{tgid}")), &mut out);
        }
        for t in 0..input.tasks.len() as u32 {
            self.describe(input, t, &mut out);
        }
        for cpu in 0..self.bundles.len() as u32 {
            self.flush(cpu, &mut out);
        }
        out
    }

    /// Begin (at a grant) and end (at whatever ends it) markers of grant windows, in the
    /// CPU's bundle after the record's own event.
    fn grant_marks(&mut self, input: &TraceInput<'_>, r: &LogRecord, out: &mut Vec<u8>) {
        let Some(task) = r.task else { return };
        if super::timeline::grant_end(&r.kind).is_none() {
            return;
        }
        if let Some((pid, tgid, _)) = self.open.remove(&task) {
            self.push_print(r.cpu, print(r.time, pid, format!("E|{tgid}")), out);
        }
        if let LogKind::Grant { .. } = r.kind {
            let (pid, tgid) = (input.pid(task), input.tgid(task));
            let begin = print(r.time, pid, format!("B|{tgid}|slice_ext grant"));
            self.push_print(r.cpu, begin, out);
            self.open.insert(task, (pid, tgid, r.cpu));
        }
    }

    /// A grant marker (never waiting for a `prev_state`) into `cpu`'s bundle.
    fn push_print(&mut self, cpu: u32, event: FtraceEvent, out: &mut Vec<u8>) {
        let slot = Slot {
            event,
            pending: None,
        };
        self.push(cpu, slot, out);
    }

    fn push(&mut self, cpu: u32, slot: Slot, out: &mut Vec<u8>) {
        self.bundles[cpu as usize].push(slot);
        if self.bundles[cpu as usize].len() >= BUNDLE_EVENTS {
            self.flush(cpu, out);
        }
    }

    /// Write `cpu`'s bundle as one packet; its switches still pending are now bytes of the
    /// file, found by encoding it a second time with them set to S.
    fn flush(&mut self, cpu: u32, out: &mut Vec<u8>) {
        let slots = std::mem::take(&mut self.bundles[cpu as usize]);
        if slots.is_empty() {
            return;
        }
        let waiting: Vec<u32> = slots.iter().filter_map(|s| s.pending).collect();
        let packet = |slots: &[Slot]| TracePacket {
            timestamp: None,
            trusted_packet_sequence_id: Some(SEQUENCE_ID),
            data: Some(Data::FtraceEvents(FtraceEventBundle {
                cpu: Some(cpu),
                event: slots.iter().map(|s| s.event.clone()).collect(),
            })),
        };
        let bytes = packet_bytes(&packet(&slots));
        if !waiting.is_empty() {
            let mut asleep = slots;
            for s in asleep.iter_mut().filter(|s| s.pending.is_some()) {
                set_prev_state(&mut s.event, PrevState::Sleeping);
            }
            let other = packet_bytes(&packet(&asleep));
            debug_assert_eq!(bytes.len(), other.len(), "prev_state is one byte");
            let at = bytes
                .iter()
                .zip(&other)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, _)| i);
            let start = self.written;
            for (task, i) in waiting.into_iter().zip(at) {
                self.pending
                    .insert(task, Pending::Written(start + i as u64));
            }
        }
        self.written += bytes.len() as u64;
        out.extend_from_slice(&bytes);
    }

    /// A task's thread descriptor (and its process's, first), once.
    fn describe(&mut self, input: &TraceInput<'_>, task: u32, out: &mut Vec<u8>) {
        if (task as usize) >= input.tasks.len() || !self.described.insert(task) {
            return;
        }
        let (pid, tgid) = (input.pid(task), input.tgid(task));
        let leader = input.tasks[task as usize].process;
        let packet = |d: TrackDescriptor| TracePacket {
            timestamp: Some(0),
            trusted_packet_sequence_id: Some(SEQUENCE_ID),
            data: Some(Data::TrackDescriptor(d)),
        };
        let mut write = |p: TracePacket, written: &mut u64| {
            let b = packet_bytes(&p);
            *written += b.len() as u64;
            out.extend_from_slice(&b);
        };
        if self.processes.insert(tgid) {
            let d = TrackDescriptor {
                uuid: Some(u64::from(tgid)),
                process: Some(ProcessDescriptor {
                    pid: Some(tgid as i32),
                    process_name: Some(input.task_name(leader).to_string()),
                }),
                ..Default::default()
            };
            write(packet(d), &mut self.written);
        }
        let d = TrackDescriptor {
            uuid: Some(1 << 32 | u64::from(pid)),
            parent_uuid: Some(u64::from(tgid)),
            thread: Some(ThreadDescriptor {
                pid: Some(tgid as i32),
                tid: Some(pid as i32),
                thread_name: Some(input.task_name(task).to_string()),
            }),
            ..Default::default()
        };
        write(packet(d), &mut self.written);
    }
}

/// A task a record names besides its own: the one woken, or the one switched in or out.
fn record_other_task(r: &LogRecord) -> Option<u32> {
    match r.kind {
        LogKind::Wakeup { task, .. } => Some(task),
        LogKind::Switch { next, .. } => next,
        _ => None,
    }
}

fn set_prev_state(e: &mut FtraceEvent, state: PrevState) {
    if let Some(Event::SchedSwitch(s)) = &mut e.event {
        s.prev_state = Some(state.bits());
    }
}

/// One packet as a `Trace` writes it: `packet` (field 1, length-delimited), its length,
/// its bytes. A trace file is these, one after another.
fn packet_bytes(p: &TracePacket) -> Vec<u8> {
    Trace {
        packet: vec![p.clone()],
    }
    .encode_to_vec()
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
