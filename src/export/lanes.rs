//! The run drawn as lanes over simulated time: what the HTML page and the SVG figure both
//! draw, so the two pictures always agree.
//!
//! A lane per CPU (who runs, the enforcement timer's queued span, interrupts, timer
//! arm/expire/cancel) and a lane per task (the user word's `request` and `granted` bytes,
//! the kernel's grant, need-resched, grant, revoke with its path, syscall entry, the
//! result of `rseq_slice_yield()`, SIGSEGV). Bands are intervals, markers are instants;
//! both carry the log's own text so a reader can match a picture to `--trace` output.
//!
//! The kinds' look (colour, shape, row) is data ([`BAND_KINDS`], [`MARK_KINDS`]) that
//! both renderers read, so the legend, the page and the figure cannot drift apart.

use std::collections::BTreeMap;
use std::str::FromStr;

use rseq_sim::{LogKind, LogRecord};

use super::timeline::{self, GrantEnd, GrantWindow, TimerEnd};
use super::{ExportError, TraceInput};

/// Height of one lane, px (both renderers).
pub const LANE_H: u32 = 58;
/// At most this many lanes: a browser's canvas is at most 32 767 px tall, and beyond a few
/// hundred lanes a picture stops being readable anyway.
pub const MAX_LANES: usize = 500;
/// Width of one marker glyph, px: markers closer than this are nudged apart or merged.
pub const GLYPH_W: f64 = 10.0;
/// At most this many markers are nudged side by side; a denser cluster becomes one
/// aggregate glyph with a count (level of detail).
pub const FAN_MAX: usize = 3;

/// What a lane shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneOf {
    /// A CPU: its current task, its enforcement timer, interrupts.
    Cpu(u32),
    /// A task: its user word, its kernel grant, its syscalls.
    Task(u32),
}

/// One horizontal lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lane {
    /// `cpu0`, `T1 holder`.
    pub name: String,
    /// CPU or task.
    pub of: LaneOf,
}

/// How a kind of band looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandKind {
    /// Identifier (`running`, `timer`, `request`, `granted`, `kernel_granted`).
    pub name: &'static str,
    /// Fill colour (CSS); `None`: the colour of the task it shows.
    pub color: Option<&'static str>,
    /// Offset of the band's top from the lane's top, px.
    pub y: u32,
    /// Height, px.
    pub h: u32,
    /// Row label in the lane's gutter.
    pub short: &'static str,
    /// Legend text.
    pub legend: &'static str,
    /// Drawn in CPU lanes (else task lanes).
    pub cpu_lane: bool,
}

/// Index into [`BAND_KINDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Band {
    /// A task is current on the CPU.
    Running,
    /// The CPU's enforcement hrtimer is queued.
    Timer,
    /// The user word's `request` is set.
    Request,
    /// The user word's `granted` is set.
    Granted,
    /// The kernel's grant state (`slice.state.granted`), from grant to its end.
    KernelGranted,
}

/// The look of every [`Band`], indexed by it.
pub const BAND_KINDS: [BandKind; 5] = [
    BandKind {
        name: "running",
        color: None,
        y: 32,
        h: 12,
        short: "task",
        legend: "task running on the CPU",
        cpu_lane: true,
    },
    BandKind {
        name: "timer",
        color: Some("#9467bd"),
        y: 47,
        h: 6,
        short: "timer",
        legend: "slice timer queued",
        cpu_lane: true,
    },
    BandKind {
        name: "request",
        color: Some("#ff9f1c"),
        y: 31,
        h: 7,
        short: "request",
        legend: "user word: request = 1",
        cpu_lane: false,
    },
    BandKind {
        name: "granted",
        color: Some("#2ca02c"),
        y: 40,
        h: 7,
        short: "granted",
        legend: "user word: granted = 1",
        cpu_lane: false,
    },
    BandKind {
        name: "kernel_granted",
        color: Some("#145a32"),
        y: 49,
        h: 7,
        short: "kernel",
        legend: "kernel: grant active",
        cpu_lane: false,
    },
];

/// How a kind of marker looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkKind {
    /// Identifier (`irq`, `grant`, ...).
    pub name: &'static str,
    /// Colour (CSS).
    pub color: &'static str,
    /// `bar`, `tri_up`, `tri_down`, `diamond`, `circle`, `ring`, `square`, `x`, `cross`.
    pub shape: &'static str,
    /// Centre of the glyph below the lane's top, px (two marker rows per lane).
    pub y: u32,
    /// Legend text.
    pub legend: &'static str,
    /// Rank in a merged cluster: the most important kind shows (lower wins).
    pub rank: u8,
}

/// Index into [`MARK_KINDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Mark {
    /// Interrupt or exception entry.
    Irq,
    /// A reschedule request.
    NeedResched,
    /// The grant decision granted.
    Grant,
    /// A revocation or clearing path ran (label: its path).
    Revoke,
    /// The enforcement timer was started.
    TimerArm,
    /// The enforcement timer fired (label `hit` when it counted `s_expired`).
    TimerExpire,
    /// The enforcement timer was cancelled at syscall entry.
    TimerCancel,
    /// Syscall entry.
    Syscall,
    /// `rseq_slice_yield()` returned (label: its value).
    YieldResult,
    /// SIGSEGV was queued.
    Sigsegv,
    /// An explorer's injected event (`explore`, `run --schedule`; label: its kind).
    Injected,
    /// The program loaded `granted` or the whole control word (label: what it read,
    /// `gr=1`): the moment it decides whether to yield, the key moment of the grant/revoke
    /// race (§8.3).
    UserLoad,
}

const ROW_A: u32 = 10;
const ROW_B: u32 = 23;

/// The look of every [`Mark`], indexed by it.
pub const MARK_KINDS: [MarkKind; 12] = [
    MarkKind {
        name: "irq",
        color: "#7f7f7f",
        shape: "bar",
        y: ROW_A,
        legend: "interrupt entry",
        rank: 9,
    },
    MarkKind {
        name: "need_resched",
        color: "#e8590c",
        shape: "tri_down",
        y: ROW_A,
        legend: "need-resched set",
        rank: 5,
    },
    MarkKind {
        name: "grant",
        color: "#2ca02c",
        shape: "tri_up",
        y: ROW_A,
        legend: "grant",
        rank: 2,
    },
    MarkKind {
        name: "revoke",
        color: "#d62728",
        shape: "diamond",
        y: ROW_A,
        legend: "revoke (path R1..R10, §5)",
        rank: 1,
    },
    MarkKind {
        name: "timer_arm",
        color: "#9467bd",
        shape: "ring",
        y: ROW_B,
        legend: "slice timer armed",
        rank: 6,
    },
    MarkKind {
        name: "timer_expire",
        color: "#9467bd",
        shape: "circle",
        y: ROW_B,
        legend: "slice timer expired",
        rank: 4,
    },
    MarkKind {
        name: "timer_cancel",
        color: "#9467bd",
        shape: "x",
        y: ROW_B,
        legend: "slice timer cancelled",
        rank: 7,
    },
    MarkKind {
        name: "syscall",
        color: "#1f77b4",
        shape: "bar",
        y: ROW_B,
        legend: "syscall entry",
        rank: 8,
    },
    MarkKind {
        name: "yield_result",
        color: "#0b7285",
        shape: "square",
        y: ROW_B,
        legend: "rseq_slice_yield() result",
        rank: 3,
    },
    MarkKind {
        name: "sigsegv",
        color: "#000000",
        shape: "cross",
        y: ROW_A,
        legend: "SIGSEGV",
        rank: 0,
    },
    MarkKind {
        name: "injected",
        color: "#e64980",
        shape: "x",
        y: ROW_B,
        legend: "explorer's injected event",
        rank: 10,
    },
    MarkKind {
        name: "user_load",
        color: "#0ca678",
        shape: "box",
        // With the decisions (grant, revoke), not crowding the syscall and its result.
        y: ROW_A,
        legend: "user load of granted",
        rank: 11,
    },
];

/// An interval on a lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BandItem {
    /// Index in [`Lanes::lanes`].
    pub lane: u32,
    /// What it shows.
    pub kind: Band,
    /// Start, ns.
    pub start_ns: u64,
    /// End, ns.
    pub end_ns: u64,
    /// Task whose colour fills it (running bands).
    pub task: Option<u32>,
    /// Text drawn inside it where it is wide enough (a task name), else empty.
    pub label: String,
    /// Hover text.
    pub detail: String,
}

/// An instant on a lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkItem {
    /// Index in [`Lanes::lanes`].
    pub lane: u32,
    /// What it shows.
    pub kind: Mark,
    /// Time, ns.
    pub time_ns: u64,
    /// CPU of the record.
    pub cpu: u32,
    /// Task of the record (`None`: the idle context).
    pub task: Option<u32>,
    /// Short text beside the glyph where there is room (`R2`, `=0`, `hit`), else empty.
    pub label: String,
    /// The log record's own text (`revoke R2 [req=0 gr=1 rsv=0000] -> ...`).
    pub text: String,
}

impl MarkItem {
    /// Hover text: time, CPU, task and the record's text, as `--trace` prints it.
    pub fn detail(&self, lanes: &Lanes) -> String {
        let who = match self.task {
            Some(t) => &lanes.lanes[(lanes.cpus + t) as usize].name,
            None => "idle",
        };
        format!(
            "{} us cpu{} {who}: {}",
            super::us(self.time_ns),
            self.cpu,
            self.text
        )
    }
}

/// The whole picture: lanes, bands and markers (each in time order per lane and kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lanes {
    /// CPU lanes first, then task lanes.
    pub lanes: Vec<Lane>,
    /// Every band, sorted by (lane, kind, start).
    pub bands: Vec<BandItem>,
    /// Every marker, sorted by (lane, time, log order).
    pub marks: Vec<MarkItem>,
    /// Number of CPUs (the first lanes).
    pub cpus: u32,
    /// End of the trace, ns.
    pub end_ns: u64,
}

/// A stretch of simulated time, `START..END` on the command line (`14us..22us`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First instant shown, ns.
    pub start_ns: u64,
    /// Last instant shown, ns (greater than `start_ns`).
    pub end_ns: u64,
}

impl FromStr for Window {
    type Err = String;

    /// `START..END`, each a duration with a unit (`0..5us`, `14.5us..22us`, `1ms..2ms`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, b) = s
            .split_once("..")
            .ok_or_else(|| format!("window {s:?} is not START..END (e.g. 14us..22us)"))?;
        // A bare 0 needs no unit.
        let parse = |t: &str| {
            if t.trim() == "0" {
                Ok(0)
            } else {
                crate::scenario::Nanos::parse(t).map(|n| n.0)
            }
        };
        let (start_ns, end_ns) = (parse(a)?, parse(b)?);
        if end_ns <= start_ns {
            return Err(format!("window {s:?} ends before it starts"));
        }
        Ok(Window { start_ns, end_ns })
    }
}

/// Which marker a record is, if any.
pub fn mark_of(r: &LogRecord) -> Option<Mark> {
    Some(match &r.kind {
        LogKind::IrqEnter { .. } => Mark::Irq,
        LogKind::NeedResched { .. } => Mark::NeedResched,
        LogKind::Grant { .. } => Mark::Grant,
        LogKind::Revoke { .. } => Mark::Revoke,
        LogKind::TimerArm { .. } => Mark::TimerArm,
        LogKind::TimerExpire { .. } => Mark::TimerExpire,
        LogKind::TimerCancel => Mark::TimerCancel,
        LogKind::SyscallEnter { .. } => Mark::Syscall,
        LogKind::SyscallExit { name, .. } if *name == "rseq_slice_yield" => Mark::YieldResult,
        LogKind::Signal { signo: 11, .. } => Mark::Sigsegv,
        LogKind::Injected { .. } => Mark::Injected,
        LogKind::UserLoad { .. } => Mark::UserLoad,
        _ => return None,
    })
}

/// The short label beside a marker.
fn mark_label(r: &LogRecord) -> String {
    match &r.kind {
        LogKind::Revoke { path, .. } => path.tag().to_string(),
        LogKind::TimerExpire { hit: true } => "hit".into(),
        LogKind::SyscallExit { ret, .. } => match ret {
            Ok(v) => format!("={v}"),
            Err(e) => format!("={}", e.name()),
        },
        LogKind::Signal { .. } => "SIGSEGV".into(),
        LogKind::Injected { what, .. } => what.name().into(),
        _ => String::new(),
    }
}

/// Loads drawn as markers: of `granted`, the byte the thread decides on, and of the whole
/// word (V1's only way to read it). A load of `request` only classifies the outcome
/// (§8.1); drawn, its glyph would crowd out the yield beside it.
fn is_decision_load(meta: &super::Metadata, off: u8, val: u32) -> bool {
    use rseq_abi::layout::offset;
    let off = usize::from(off);
    off == offset::GRANTED || off == offset::SLICE_CTRL && (meta.revision.is_v1() || val > 0xff)
}

/// What a user load read, short: `gr=1`, `req=0`, or a V1 word as `REQ=1 GR=0`.
fn load_label(meta: &super::Metadata, off: u8, val: u32) -> String {
    use rseq_abi::layout::offset;
    let off = usize::from(off);
    if meta.revision.is_v1() || off == offset::SLICE_CTRL && val > 0xff {
        let w = rseq_abi::CtrlWord::from_all(val, meta.endian);
        let b = |x: bool| u8::from(x);
        if meta.revision.is_v1() {
            return format!(
                "REQ={} GR={}",
                b(w.is_requested(meta.revision, meta.endian)),
                b(w.is_granted(meta.revision, meta.endian))
            );
        }
        return format!("req={} gr={}", w.request(), w.granted());
    }
    match off {
        o if o == offset::REQUEST => format!("req={val}"),
        o if o == offset::GRANTED => format!("gr={val}"),
        _ => format!("{val:#x}"),
    }
}

impl Lanes {
    /// Lay out a finished run's log, after checking it ([`TraceInput::validate`]) and that
    /// its lanes fit ([`MAX_LANES`]).
    pub fn checked(input: &TraceInput<'_>) -> Result<Lanes, ExportError> {
        input.validate()?;
        let lanes = input.cpus as usize + input.tasks.len();
        if lanes > MAX_LANES {
            return Err(ExportError::TooManyLanes {
                lanes,
                max: MAX_LANES,
            });
        }
        Ok(Lanes::build(input))
    }

    /// Lay out a finished run's log (valid: every CPU and task it names exists).
    pub fn build(input: &TraceInput<'_>) -> Lanes {
        let cpus = input.cpus;
        let mut lanes: Vec<Lane> = (0..cpus)
            .map(|c| Lane {
                name: format!("cpu{c}"),
                of: LaneOf::Cpu(c),
            })
            .collect();
        lanes.extend((0..input.tasks.len() as u32).map(|t| Lane {
            name: format!("T{t} {}", input.task_name(t)),
            of: LaneOf::Task(t),
        }));
        let task_lane = |t: u32| cpus + t;
        let who = |t: Option<u32>| t.map_or("idle".to_string(), |t| format!("T{t}"));

        let mut bands = Vec::new();
        for s in timeline::running_spans(input) {
            bands.push(BandItem {
                lane: s.cpu,
                kind: Band::Running,
                start_ns: s.start_ns,
                end_ns: s.end_ns,
                task: Some(s.task),
                label: lanes[task_lane(s.task) as usize].name.clone(),
                detail: format!("T{} {} on cpu{}", s.task, input.task_name(s.task), s.cpu),
            });
        }
        for s in timeline::timer_spans(input) {
            let end = match s.end {
                TimerEnd::Expired { hit } => format!("expired hit={}", u8::from(hit)),
                TimerEnd::Cancelled => "cancelled".into(),
                TimerEnd::Restarted => "restarted".into(),
                TimerEnd::EndOfTrace => "still queued at the end".into(),
            };
            bands.push(BandItem {
                lane: s.cpu,
                kind: Band::Timer,
                start_ns: s.start_ns,
                end_ns: s.end_ns,
                task: None,
                label: String::new(),
                detail: format!(
                    "slice timer of cpu{} armed by {} expires={}: {end}",
                    s.cpu,
                    who(s.task),
                    s.expires_ns
                ),
            });
        }
        for w in timeline::grant_windows(input) {
            let (end_ns, end) = kernel_grant_end(input, &w);
            bands.push(BandItem {
                lane: task_lane(w.task),
                kind: Band::KernelGranted,
                start_ns: w.start_ns,
                end_ns,
                task: Some(w.task),
                label: String::new(),
                detail: format!(
                    "kernel grant of T{} on cpu{} expires={}: {end}",
                    w.task, w.cpu, w.expires_ns
                ),
            });
        }
        word_bands(input, &mut bands, task_lane);
        bands.sort_by_key(|b| (b.lane, b.kind, b.start_ns, b.end_ns));

        let mut marks = Vec::new();
        for r in input.log {
            let Some(kind) = mark_of(r) else { continue };
            if let LogKind::UserLoad { off, val } = r.kind {
                if !is_decision_load(&input.meta, off, val) {
                    continue;
                }
            }
            let cpu_lane = matches!(
                kind,
                Mark::Irq | Mark::TimerArm | Mark::TimerExpire | Mark::TimerCancel
            );
            let lane = match r.task {
                Some(t) if !cpu_lane => task_lane(t),
                _ => r.cpu,
            };
            marks.push(MarkItem {
                lane,
                kind,
                time_ns: r.time,
                cpu: r.cpu,
                task: r.task,
                label: match &r.kind {
                    LogKind::UserLoad { off, val } => load_label(&input.meta, *off, *val),
                    _ => mark_label(r),
                },
                text: format!(
                    "{}{}",
                    r.kind,
                    crate::explain::v1_gloss(input.meta.revision, input.meta.endian, &r.kind)
                        .unwrap_or_default()
                ),
            });
        }
        // Stable: equal times keep the log's order.
        marks.sort_by_key(|m| (m.lane, m.time_ns));
        Lanes {
            lanes,
            bands,
            marks,
            cpus,
            end_ns: input.end_ns(),
        }
    }
}

impl Lanes {
    /// Indices into [`Lanes::marks`] per (lane, marker row `y`), each in time order: what
    /// [`layout_row`] lays out. Rows without markers are absent.
    pub fn rows(&self) -> BTreeMap<(u32, u32), Vec<usize>> {
        let mut rows: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
        for (i, m) in self.marks.iter().enumerate() {
            rows.entry((m.lane, MARK_KINDS[m.kind as usize].y))
                .or_default()
                .push(i);
        }
        rows
    }
}

/// When the kernel's grant state of window `w` is really cleared, and how to say it.
///
/// A grant window ends when the timer fires on it or at the syscall-entry work, but
/// neither clears the kernel's `granted` there: the expiry only sets need-resched (spec
/// §4.3), and the entry work clears it after its reschedule point (§6.1 step 7), so a
/// task that yields to another one keeps it while it is off the CPU. The band runs until
/// the record that clears it: the revoke that follows (R2, R6), or the task's exit.
fn kernel_grant_end(input: &TraceInput<'_>, w: &GrantWindow) -> (u64, String) {
    let at = match (w.end, w.end_index) {
        (
            GrantEnd::Expired
            | GrantEnd::Yielded
            | GrantEnd::Aborted
            | GrantEnd::AlreadyRescheduled,
            Some(at),
        ) => at,
        (GrantEnd::Revoked(_) | GrantEnd::EndOfTrace, _) => {
            return (w.end_ns, w.end.describe());
        }
        _ => return (w.end_ns, format!("ended by {}", w.end.describe())),
    };
    let ended = match w.end {
        GrantEnd::Expired => format!("the timer expired at {} us", super::us(w.end_ns)),
        end => format!("{} at {} us", end.describe(), super::us(w.end_ns)),
    };
    let cleared = input.log[at..].iter().find(|r| {
        r.task == Some(w.task)
            && matches!(
                r.kind,
                LogKind::Revoke {
                    was_granted: true,
                    ..
                } | LogKind::TaskExit { .. }
                    | LogKind::Grant { .. }
            )
    });
    match cleared {
        Some(r) => (r.time, format!("{ended}, cleared by {}", r.kind)),
        None => (input.end_ns(), format!("{ended}, still set at the end")),
    }
}

/// Bands of the user word's `request` and `granted` per task, followed through every
/// record that shows the word after a write: user stores, grants and revokes.
fn word_bands(input: &TraceInput<'_>, bands: &mut Vec<BandItem>, task_lane: impl Fn(u32) -> u32) {
    let (rev, endian) = (input.meta.revision, input.meta.endian);
    // Per task: since when request / granted has been set.
    let n = input.tasks.len();
    let mut open: Vec<[Option<u64>; 2]> = vec![[None; 2]; n];
    // V1's word is two bits of one u32, not bytes: name them as V1 did.
    let kinds = if rev.is_v1() {
        [
            (Band::Request, "bit REQUEST"),
            (Band::Granted, "bit GRANTED"),
        ]
    } else {
        [(Band::Request, "request"), (Band::Granted, "granted")]
    };
    let mut close = |task: u32, which: usize, since: u64, until: u64, why: &str| {
        bands.push(BandItem {
            lane: task_lane(task),
            kind: kinds[which].0,
            start_ns: since,
            end_ns: until,
            task: Some(task),
            label: String::new(),
            detail: format!("T{task} user word {} = 1 ({why})", kinds[which].1),
        });
    };
    for r in input.log {
        let Some(t) = r.task else { continue };
        let after = match r.kind {
            LogKind::UserStore { after, .. }
            | LogKind::Grant { after, .. }
            | LogKind::Revoke { after, .. } => after,
            LogKind::TaskExit { .. } => {
                for (which, slot) in open[t as usize].iter_mut().enumerate() {
                    if let Some(since) = slot.take() {
                        close(t, which, since, r.time, "until the task exited");
                    }
                }
                continue;
            }
            _ => continue,
        };
        let set = [
            after.is_requested(rev, endian),
            after.is_granted(rev, endian),
        ];
        for (which, slot) in open[t as usize].iter_mut().enumerate() {
            match (set[which], *slot) {
                (true, None) => *slot = Some(r.time),
                (false, Some(since)) => {
                    *slot = None;
                    close(t, which, since, r.time, &format!("cleared by {}", r.kind));
                }
                _ => {}
            }
        }
    }
    let end = input.end_ns();
    for (t, o) in open.into_iter().enumerate() {
        for (which, since) in o.into_iter().enumerate() {
            if let Some(since) = since {
                close(t as u32, which, since, end, "still set at the end");
            }
        }
    }
}

/// One glyph of a lane's marker row after level of detail: a single marker (possibly
/// nudged beside its neighbours) or an aggregate of a dense cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Glyph {
    /// Where it is drawn, px from the plot's left edge.
    pub x: f64,
    /// Index in [`Lanes::marks`] of its first marker.
    pub first: usize,
    /// How many markers it stands for (1: a single marker).
    pub count: usize,
    /// The kind it shows: the marker's, or the most important in the cluster.
    pub kind: Mark,
}

/// Room a marker's label takes beside its glyph, px (about 6 px per character of the
/// 10 px font, plus a gap).
pub fn label_w(label: &str) -> f64 {
    if label.is_empty() {
        0.0
    } else {
        6.0 * label.chars().count() as f64 + 2.0
    }
}

/// Level of detail for one marker row: `marks` are indices into `all` in time order,
/// `x_of` maps a time to px. Markers closer than [`GLYPH_W`] form a cluster; a cluster of
/// at most [`FAN_MAX`] is drawn side by side, each glyph followed by room for its label
/// (nudged right, never left of its time, by at most [`FAN_MAX`] glyphs), a larger or
/// further-pushed one as a single aggregate glyph with a count. The page's JavaScript
/// does the same (keep `layoutRow` in `html/timeline.js` in step).
pub fn layout_row(all: &[MarkItem], marks: &[usize], x_of: impl Fn(u64) -> f64) -> Vec<Glyph> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut cursor = f64::NEG_INFINITY;
    while i < marks.len() {
        let x0 = x_of(all[marks[i]].time_ns);
        let mut j = i + 1;
        while j < marks.len() && x_of(all[marks[j]].time_ns) - x0 < GLYPH_W {
            j += 1;
        }
        let cluster = &marks[i..j];
        let start = x0.max(cursor);
        if cluster.len() <= FAN_MAX && start - x0 <= GLYPH_W * FAN_MAX as f64 {
            let mut x = start;
            for &m in cluster {
                out.push(Glyph {
                    x,
                    first: m,
                    count: 1,
                    kind: all[m].kind,
                });
                x += GLYPH_W + label_w(&all[m].label);
            }
            cursor = x;
        } else {
            let kind = cluster
                .iter()
                .map(|&m| all[m].kind)
                .min_by_key(|k| MARK_KINDS[*k as usize].rank)
                .expect("a cluster has a marker");
            out.push(Glyph {
                x: x0,
                first: cluster[0],
                count: cluster.len(),
                kind,
            });
            cursor = x0 + GLYPH_W;
        }
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_with_units_and_reject_empty_ones() {
        assert_eq!(
            "14us..22.5us".parse::<Window>(),
            Ok(Window {
                start_ns: 14_000,
                end_ns: 22_500
            })
        );
        assert_eq!("0..1ms".parse::<Window>().map(|w| w.end_ns), Ok(1_000_000));
        assert!("5us..5us"
            .parse::<Window>()
            .unwrap_err()
            .contains("ends before"));
        assert!("5us".parse::<Window>().unwrap_err().contains("START..END"));
        assert!("5..6us".parse::<Window>().unwrap_err().contains("unit"));
    }

    fn mark(t: u64, kind: Mark) -> MarkItem {
        MarkItem {
            lane: 0,
            kind,
            time_ns: t,
            cpu: 0,
            task: None,
            label: String::new(),
            text: String::new(),
        }
    }

    #[test]
    fn close_markers_are_nudged_apart_and_dense_ones_merged() {
        // Three at the same instant: side by side. Then five within one glyph: merged,
        // showing the most important kind (the revoke).
        let all: Vec<MarkItem> = [0, 0, 0, 100, 101, 102, 103, 104]
            .iter()
            .enumerate()
            .map(|(i, &t)| mark(t, if i == 5 { Mark::Revoke } else { Mark::Irq }))
            .collect();
        let idx: Vec<usize> = (0..all.len()).collect();
        let g = layout_row(&all, &idx, |t| t as f64);
        assert_eq!(g.len(), 4);
        assert_eq!(
            g.iter().map(|g| g.x).collect::<Vec<_>>(),
            [0.0, 10.0, 20.0, 100.0]
        );
        assert_eq!((g[3].count, g[3].kind), (5, Mark::Revoke));
        assert_eq!(g.iter().map(|g| g.count).sum::<usize>(), all.len());
    }

    #[test]
    fn a_label_pushes_its_neighbour_right_by_its_width() {
        let mut all = vec![mark(0, Mark::Revoke), mark(0, Mark::Irq)];
        all[0].label = "R2".into();
        let g = layout_row(&all, &[0, 1], |t| t as f64);
        assert_eq!(g[1].x, GLYPH_W + label_w("R2"));
        assert_eq!(label_w("R2"), 14.0);
        assert_eq!(label_w(""), 0.0);
    }
}
