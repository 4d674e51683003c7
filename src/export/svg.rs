//! `run --timeline-svg FILE [--window START..END]`: the HTML page's picture as a static
//! SVG figure, for documents (the tutorial's figures are made with it).
//!
//! Same lanes, bands, glyphs and level of detail as the page ([`Lanes`],
//! [`lanes::layout_row`]), no script: each band and glyph carries a `<title>` with its log
//! text, which SVG viewers show on hover. The legend lists only the kinds in the figure.
//! Coordinates are printed with one decimal, so the same run gives the same bytes.

use std::fmt::Write;

use super::html::PALETTE;
use super::lanes::{self, Lanes, Window, BAND_KINDS, LANE_H, MARK_KINDS};
use super::xml_text;
use super::{ExportError, TraceInput};

const WIDTH: f64 = 960.0;
const GUTTER: f64 = 130.0;
const RIGHT: f64 = 36.0;
const TITLE_H: f64 = 30.0;
const AXIS_H: f64 = 26.0;

/// The figure of `input` over `window` (the whole run when `None`), titled `title`.
pub fn render(
    input: &TraceInput<'_>,
    title: &str,
    window: Option<Window>,
) -> Result<String, ExportError> {
    let l = Lanes::checked(input)?;
    let w = window.unwrap_or(Window {
        start_ns: 0,
        end_ns: l.end_ns.max(1),
    });
    let plot_w = WIDTH - GUTTER - RIGHT;
    let scale = plot_w / (w.end_ns - w.start_ns) as f64;
    let x_of = |t: u64| GUTTER + (t as f64 - w.start_ns as f64) * scale;
    let top = TITLE_H + AXIS_H;
    let lanes_h = l.lanes.len() as f64 * f64::from(LANE_H);

    let mut body = String::new();
    let mut used_marks = [false; MARK_KINDS.len()];
    let mut used_bands = [false; BAND_KINDS.len()];
    axis(&mut body, w, top, lanes_h, &x_of);
    for (i, lane) in l.lanes.iter().enumerate() {
        let y0 = top + i as f64 * f64::from(LANE_H);
        let cpu = matches!(lane.of, lanes::LaneOf::Cpu(_));
        let _ = writeln!(
            body,
            r##"<text x="6" y="{:.1}" font-weight="bold" font-size="12">{}</text>"##,
            y0 + 14.0,
            xml_text(&lane.name)
        );
        for k in BAND_KINDS.iter().filter(|k| k.cpu_lane == cpu) {
            let _ = writeln!(
                body,
                r##"<text x="{:.1}" y="{:.1}" font-size="9" fill="#777" text-anchor="end">{}</text>"##,
                GUTTER - 5.0,
                y0 + f64::from(k.y) + f64::from(k.h) / 2.0 + 3.0,
                k.short
            );
        }
    }
    let _ = writeln!(body, r##"<g clip-path="url(#plot)">"##);
    let mut last_px: Vec<f64> = Vec::new();
    let mut key = None;
    for b in &l.bands {
        if b.end_ns < w.start_ns || b.start_ns > w.end_ns {
            continue;
        }
        if key != Some((b.lane, b.kind)) {
            key = Some((b.lane, b.kind));
            last_px.clear();
        }
        let (x1, x2) = (x_of(b.start_ns), x_of(b.end_ns));
        // Bands within one pixel already filled add nothing to a figure.
        if last_px
            .last()
            .is_some_and(|&p| x2 < p + 1.0 && x1.floor() <= p)
        {
            continue;
        }
        let k = &BAND_KINDS[b.kind as usize];
        used_bands[b.kind as usize] = true;
        let y = top + f64::from(b.lane * LANE_H + k.y);
        let width = (x2 - x1).max(1.0);
        let fill = k
            .color
            .unwrap_or_else(|| PALETTE[b.task.unwrap_or(0) as usize % PALETTE.len()]);
        let _ = writeln!(
            body,
            r##"<rect x="{x1:.1}" y="{y:.1}" width="{width:.1}" height="{}" fill="{fill}"><title>{}</title></rect>"##,
            k.h,
            xml_text(&b.detail)
        );
        last_px.push((x1 + width).floor());
        // A task name fits at about 6 px per character.
        if !b.label.is_empty() && width > 6.0 * b.label.len() as f64 + 8.0 {
            let _ = writeln!(
                body,
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#fff">{}</text>"##,
                x1.max(GUTTER) + 3.0,
                y + f64::from(k.h) / 2.0 + 3.5,
                xml_text(&b.label)
            );
        }
    }
    for ((lane, row_y), all) in l.rows() {
        let idx: Vec<usize> = all
            .into_iter()
            .filter(|&i| (w.start_ns..=w.end_ns).contains(&l.marks[i].time_ns))
            .collect();
        let glyphs = lanes::layout_row(&l.marks, &idx, x_of);
        for g in &glyphs {
            used_marks[g.kind as usize] = true;
        }
        draw_glyphs(
            &mut body,
            &l,
            &glyphs,
            top + f64::from(lane * LANE_H + row_y),
        );
    }
    body.push_str("</g>\n");

    let legend_y = top + lanes_h + 16.0;
    let legend_h = legend(&mut body, legend_y, &used_marks, &used_bands);
    let height = legend_y + legend_h + 6.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">"##
    );
    let _ = writeln!(
        svg,
        r##"<defs><clipPath id="plot"><rect x="{GUTTER}" y="0" width="{:.1}" height="{height:.0}"/></clipPath></defs>"##,
        plot_w + RIGHT - 4.0
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        svg,
        r##"<text x="6" y="19" font-size="14" font-weight="bold">{}</text>"##,
        xml_text(title)
    );
    for i in 0..l.lanes.len() {
        let _ = writeln!(
            svg,
            r##"<rect x="0" y="{:.1}" width="{WIDTH}" height="{LANE_H}" fill="{}"/>"##,
            top + (i as u32 * LANE_H) as f64,
            if i % 2 == 1 { "#fafafa" } else { "#f1f3f5" }
        );
    }
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// One marker row's glyphs at height `y`: a titled glyph per marker, with its label where
/// the layout left room, or a counted box for a merged cluster.
fn draw_glyphs(body: &mut String, l: &Lanes, glyphs: &[lanes::Glyph], y: f64) {
    for (gi, g) in glyphs.iter().enumerate() {
        let k = &MARK_KINDS[g.kind as usize];
        let m = &l.marks[g.first];
        if g.count == 1 {
            let _ = writeln!(
                body,
                "<g>{}<title>{}</title></g>",
                shape(k.shape, k.color, g.x, y),
                xml_text(&m.detail(l))
            );
            // A label shows where layout_row left it room (not where a merged
            // box sits).
            let next = glyphs.get(gi + 1).map_or(f64::INFINITY, |n| n.x);
            if !m.label.is_empty() && next - g.x >= lanes::GLYPH_W + lanes::label_w(&m.label) {
                let _ = writeln!(
                    body,
                    r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="{}">{}</text>"##,
                    g.x + 6.0,
                    y + 3.0,
                    k.color,
                    xml_text(&m.label)
                );
            }
        } else {
            let _ = writeln!(
                body,
                r##"<g><rect x="{:.1}" y="{:.1}" width="{:.1}" height="12" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="8" font-weight="bold" fill="#fff" text-anchor="middle">{}</text><title>{} events from {}</title></g>"##,
                g.x - lanes::GLYPH_W / 2.0 + 0.5,
                y - 6.0,
                lanes::GLYPH_W - 1.0,
                k.color,
                g.x,
                y + 3.0,
                if g.count > 99 {
                    "+".to_string()
                } else {
                    g.count.to_string()
                },
                g.count,
                xml_text(&m.detail(l))
            );
        }
    }
}

/// Ticks every 1, 2 or 5 × 10^k ns, about every 110 px, labelled in the tick's unit.
fn axis(out: &mut String, w: Window, top: f64, lanes_h: f64, x_of: &impl Fn(u64) -> f64) {
    let span = w.end_ns - w.start_ns;
    let target = span as f64 / ((WIDTH - GUTTER - RIGHT) / 110.0);
    let mut step = 10f64.powf(target.log10().floor()).max(1.0) as u64;
    if target / step as f64 >= 5.0 {
        step *= 5;
    } else if target / step as f64 >= 2.0 {
        step *= 2;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{GUTTER}" y="{:.1}" width="{:.1}" height="1" fill="#555"/>"##,
        top - 1.0,
        WIDTH - GUTTER - RIGHT
    );
    let mut t = w.start_ns.div_ceil(step) * step;
    while t <= w.end_ns {
        let x = x_of(t);
        let _ = writeln!(
            out,
            r##"<rect x="{x:.1}" y="{top:.1}" width="1" height="{lanes_h:.1}" fill="#e3e3e3"/><rect x="{x:.1}" y="{:.1}" width="1" height="6" fill="#555"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{}</text>"##,
            top - 6.0,
            top - 10.0,
            tick_label(t, step, span)
        );
        t += step;
    }
}

/// `t` in the unit the window's `span` reads best in, with as many decimals as the tick
/// `step` needs (`14.5 us`).
fn tick_label(t: u64, step: u64, span: u64) -> String {
    let (unit, name) = match span {
        s if s >= 2_000_000 => (1_000_000, "ms"),
        s if s >= 2_000 => (1_000, "us"),
        _ => (1, "ns"),
    };
    let mut decimals = 0;
    while decimals < 6 && (step * 10u64.pow(decimals)) % unit != 0 {
        decimals += 1;
    }
    format!("{:.*} {name}", decimals as usize, t as f64 / unit as f64)
}

/// A glyph as SVG, the same shapes the page draws.
fn shape(kind: &str, color: &str, x: f64, y: f64) -> String {
    let poly = |pts: &[(f64, f64)]| {
        let p: Vec<String> = pts
            .iter()
            .map(|(dx, dy)| format!("{:.1},{:.1}", x + dx, y + dy))
            .collect();
        format!(r##"<polygon points="{}" fill="{color}"/>"##, p.join(" "))
    };
    match kind {
        "bar" => format!(
            r##"<rect x="{:.1}" y="{:.1}" width="2" height="12" fill="{color}"/>"##,
            x - 1.0,
            y - 6.0
        ),
        "tri_up" => poly(&[(0.0, -5.0), (5.0, 4.0), (-5.0, 4.0)]),
        "tri_down" => poly(&[(0.0, 5.0), (5.0, -4.0), (-5.0, -4.0)]),
        "diamond" => poly(&[(0.0, -6.0), (5.0, 0.0), (0.0, 6.0), (-5.0, 0.0)]),
        "circle" => format!(r##"<circle cx="{x:.1}" cy="{y:.1}" r="4.5" fill="{color}"/>"##),
        "ring" => format!(
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="3.8" fill="none" stroke="{color}" stroke-width="1.6"/>"##
        ),
        "box" => format!(
            r##"<rect x="{:.1}" y="{:.1}" width="7" height="7" fill="none" stroke="{color}" stroke-width="1.6"/>"##,
            x - 3.5,
            y - 3.5
        ),
        "square" => format!(
            r##"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{color}"/>"##,
            x - 4.0,
            y - 4.0
        ),
        "x" => format!(
            r##"<path d="M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}" stroke="{color}" stroke-width="1.6"/>"##,
            x - 4.0,
            y - 4.0,
            x + 4.0,
            y + 4.0,
            x + 4.0,
            y - 4.0,
            x - 4.0,
            y + 4.0
        ),
        _ => format!(
            r##"<path d="M{:.1} {y:.1}H{:.1}M{x:.1} {:.1}V{:.1}" stroke="{color}" stroke-width="3"/>"##,
            x - 5.0,
            x + 5.0,
            y - 6.0,
            y + 6.0
        ),
    }
}

/// The legend of the kinds used, in rows of four; returns its height.
fn legend(out: &mut String, y0: f64, marks: &[bool], bands: &[bool]) -> f64 {
    let mut items: Vec<(String, &str)> = Vec::new();
    for (k, _) in MARK_KINDS.iter().zip(marks).filter(|(_, &u)| u) {
        items.push((shape(k.shape, k.color, 10.0, 0.0), k.legend));
    }
    for (k, _) in BAND_KINDS.iter().zip(bands).filter(|(_, &u)| u) {
        let fill = k.color.unwrap_or(PALETTE[0]);
        items.push((
            format!(
                r##"<rect x="0" y="{:.1}" width="20" height="{}" fill="{fill}"/>"##,
                -f64::from(k.h) / 2.0,
                k.h
            ),
            k.legend,
        ));
    }
    let col_w = (WIDTH - 12.0) / 4.0;
    for (i, (glyph, text)) in items.iter().enumerate() {
        let x = 6.0 + (i % 4) as f64 * col_w;
        let y = y0 + (i / 4) as f64 * 18.0;
        let _ = writeln!(
            out,
            r##"<g transform="translate({x:.1},{y:.1})">{glyph}<text x="26" y="4">{}</text></g>"##,
            xml_text(text)
        );
    }
    items.len().div_ceil(4) as f64 * 18.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_carry_the_decimals_their_step_needs() {
        assert_eq!(tick_label(14_500, 500, 7_000), "14.5 us");
        assert_eq!(tick_label(14_000, 1000, 7_000), "14 us");
        assert_eq!(tick_label(300, 100, 1_000), "300 ns");
        assert_eq!(tick_label(2_000_000, 1_000_000, 10_000_000), "2 ms");
        assert_eq!(tick_label(2_500_000, 500_000, 10_000_000), "2.5 ms");
    }
}
