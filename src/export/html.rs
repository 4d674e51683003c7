//! `run --html FILE`: one self-contained HTML page to explore a run in a browser.
//!
//! The page is the [`Lanes`] picture drawn on a `<canvas>` by a small inline script
//! (`html/timeline.js`, styles in `html/timeline.css`): zoom with the wheel or buttons, pan
//! by dragging or with the arrow keys, hover any marker or band for its log text. Nothing
//! is fetched: the data sits in the page as compact JSON (column arrays per lane and a
//! table of distinct strings), so a 100 000-event run stays a few MB and opens offline.
//! Only what is visible is drawn, and markers that crowd one spot merge into a counted
//! glyph ([`lanes::layout_row`]), so the page stays responsive however long the run.
//!
//! The bytes depend only on the run (no time stamps, no random ids): same run, same file.

use std::collections::BTreeMap;

use serde::Serialize;

use super::lanes::{self, Lanes, Window, BAND_KINDS, MARK_KINDS};
use super::{ExportError, TraceInput};

const PAGE: &str = include_str!("html/page.html");
const SCRIPT: &str = include_str!("html/timeline.js");
const STYLE: &str = include_str!("html/timeline.css");

/// Fill colours of task `i`'s running bands: `PALETTE[i % len]`.
pub(crate) const PALETTE: [&str; 8] = [
    "#4e79a7", "#59a14f", "#b07aa1", "#f28e2b", "#76b7b2", "#edc948", "#e15759", "#9c755f",
];

/// The interned strings of the page: each distinct text once, by first use.
#[derive(Default)]
struct Strings {
    index: BTreeMap<String, u32>,
    list: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.index.insert(s.to_string(), i);
        self.list.push(s.to_string());
        i
    }
}

#[derive(Serialize)]
struct LaneJson<'a> {
    name: &'a str,
    cpu: bool,
}

#[derive(Serialize)]
struct BandKindJson {
    name: &'static str,
    color: Option<&'static str>,
    y: u32,
    h: u32,
    short: &'static str,
    legend: &'static str,
    cpu_lane: bool,
}

#[derive(Serialize)]
struct MarkKindJson {
    name: &'static str,
    color: &'static str,
    shape: &'static str,
    y: u32,
    legend: &'static str,
    rank: u8,
}

/// The bands of one kind on one lane, as columns (`s`tart, `e`nd, `p`alette task or -1,
/// `n`: label string, `d`: detail string).
#[derive(Serialize, Default)]
struct BandSeries {
    lane: u32,
    kind: u8,
    s: Vec<u64>,
    e: Vec<u64>,
    p: Vec<i64>,
    n: Vec<u32>,
    d: Vec<u32>,
}

/// The markers of one lane, as columns in time order (`t`ime, `k`ind, `c`pu, `w`ho: task
/// or -1, `l`abel string, `x`: text string).
#[derive(Serialize, Default)]
struct MarkColumns {
    t: Vec<u64>,
    k: Vec<u8>,
    c: Vec<u32>,
    w: Vec<i64>,
    l: Vec<u32>,
    x: Vec<u32>,
}

#[derive(Serialize)]
struct PageData<'a> {
    title: &'a str,
    subtitle: String,
    end_ns: u64,
    window: Option<[u64; 2]>,
    lane_h: u32,
    glyph_w: f64,
    fan_max: usize,
    palette: [&'static str; 8],
    band_kinds: Vec<BandKindJson>,
    mark_kinds: Vec<MarkKindJson>,
    lanes: Vec<LaneJson<'a>>,
    bands: Vec<BandSeries>,
    marks: Vec<MarkColumns>,
    strings: Vec<String>,
}

/// The page for `input`, opening on `window` (the whole run when `None`).
pub fn render(
    input: &TraceInput<'_>,
    title: &str,
    window: Option<Window>,
) -> Result<String, ExportError> {
    let l = Lanes::checked(input)?;
    let mut strings = Strings::default();
    strings.id("");
    let mut bands: Vec<BandSeries> = Vec::new();
    for b in &l.bands {
        if bands
            .last()
            .is_none_or(|s| (s.lane, s.kind) != (b.lane, b.kind as u8))
        {
            bands.push(BandSeries {
                lane: b.lane,
                kind: b.kind as u8,
                ..BandSeries::default()
            });
        }
        let s = bands.last_mut().expect("pushed above");
        s.s.push(b.start_ns);
        s.e.push(b.end_ns);
        s.p.push(b.task.map_or(-1, i64::from));
        s.n.push(strings.id(&b.label));
        s.d.push(strings.id(&b.detail));
    }
    let mut marks: Vec<MarkColumns> = (0..l.lanes.len()).map(|_| MarkColumns::default()).collect();
    for m in &l.marks {
        let c = &mut marks[m.lane as usize];
        c.t.push(m.time_ns);
        c.k.push(m.kind as u8);
        c.c.push(m.cpu);
        c.w.push(m.task.map_or(-1, i64::from));
        c.l.push(strings.id(&m.label));
        c.x.push(strings.id(&m.text));
    }
    let s = input.stats;
    let subtitle = format!(
        "revision {}, preempt {}, {} CPU{}, seed {}, {} events, {} us; rseq/stats: sgrant {} sexpir {} srevok {} syield {} sabort {}",
        input.meta.revision.name(),
        input.meta.preempt.name(),
        input.cpus,
        if input.cpus == 1 { "" } else { "s" },
        input.meta.seed,
        input.log.len(),
        super::us(l.end_ns),
        s.granted,
        s.expired,
        s.revoked,
        s.yielded,
        s.aborted,
    );
    let data = PageData {
        title,
        subtitle,
        end_ns: l.end_ns.max(1),
        window: window.map(|w| [w.start_ns, w.end_ns]),
        lane_h: lanes::LANE_H,
        glyph_w: lanes::GLYPH_W,
        fan_max: lanes::FAN_MAX,
        palette: PALETTE,
        band_kinds: BAND_KINDS
            .iter()
            .map(|k| BandKindJson {
                name: k.name,
                color: k.color,
                y: k.y,
                h: k.h,
                short: k.short,
                legend: k.legend,
                cpu_lane: k.cpu_lane,
            })
            .collect(),
        mark_kinds: MARK_KINDS
            .iter()
            .map(|k| MarkKindJson {
                name: k.name,
                color: k.color,
                shape: k.shape,
                y: k.y,
                legend: k.legend,
                rank: k.rank,
            })
            .collect(),
        lanes: l
            .lanes
            .iter()
            .map(|x| LaneJson {
                name: &x.name,
                cpu: matches!(x.of, lanes::LaneOf::Cpu(_)),
            })
            .collect(),
        bands,
        marks,
        strings: strings.list,
    };
    let json = serde_json::to_string(&data)?;
    // Inside <script> only `</script` or `<!--` could end the block early; JSON allows
    // `<` escaped in strings, and `<` never occurs outside them.
    let json = json.replace('<', "\\u003c");
    Ok(fill(
        PAGE,
        &[
            ("{{TITLE}}", &super::xml_text(title)),
            ("{{STYLE}}", STYLE),
            ("{{DATA}}", &json),
            ("{{SCRIPT}}", SCRIPT),
        ],
    ))
}

/// `template` with each placeholder replaced once, in one pass (so a value can never be
/// mistaken for a later placeholder).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    for (key, value) in values {
        let (before, after) = rest
            .split_once(key)
            .expect("the page has every placeholder, in order");
        out.push_str(before);
        out.push_str(value);
        rest = after;
    }
    out.push_str(rest);
    out
}
