//! The SVG chart of `ipcx bench --svg`: for each pinning, p50 round-trip
//! latency and one-way throughput, grouped by message size, one bar pair
//! (ipcx solid, raw pale) per transport, on log scales. Hand-written SVG.

use std::fmt::Write;

use super::measure::Kind;
use super::{Pin, Row, human_ns, human_size};

/// One colour per transport row (12, so every default row has its own).
const COLORS: [&str; 12] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f",
    "#17becf", "#8c564b", "#bcbd22", "#1f1f7a",
];
/// Width of one legend entry: the longest label ("sysv-shm(block) (ipcx,
/// raw)") fits.
const LEGEND_W: f64 = 190.0;
const BAR: f64 = 9.0;
const GAP: f64 = 22.0;
const LEFT: f64 = 84.0;
const PLOT_H: f64 = 200.0;
const PANEL_H: f64 = 270.0;

fn unique<T: PartialEq + Copy>(it: impl Iterator<Item = T>) -> Vec<T> {
    let mut v = Vec::new();
    for x in it {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    v
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart as an SVG document.
pub fn svg(rows: &[Row]) -> String {
    let transports = unique(rows.iter().map(|r| r.transport.as_str()));
    let sizes = unique(rows.iter().map(|r| r.size));
    let pins = unique(rows.iter().map(|r| r.pin));
    let group_w = transports.len() as f64 * 2.0 * BAR + GAP;
    let width = (LEFT + sizes.len() as f64 * group_w + 20.0).max(LEFT + 4.0 * LEGEND_W);
    let panels = pins.len() * 2;
    let height = 40.0 + panels as f64 * PANEL_H + 20.0 * transports.len().div_ceil(4) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    // Legend.
    for (i, t) in transports.iter().enumerate() {
        let x = LEFT + (i % 4) as f64 * LEGEND_W;
        let y = 14.0 + (i / 4) as f64 * 16.0;
        let c = COLORS[i % COLORS.len()];
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{c}"/><rect x="{}" y="{}" width="10" height="10" fill="{c}" opacity="0.35"/><text x="{}" y="{}">{} (ipcx, raw)</text>"#,
            y - 9.0,
            x + 11.0,
            y - 9.0,
            x + 25.0,
            y,
            escape(t)
        );
    }
    let mut top = 30.0 + 16.0 * transports.len().div_ceil(4) as f64;
    for &pin in &pins {
        for kind in [Kind::Latency, Kind::Throughput] {
            panel(&mut out, rows, &transports, &sizes, pin, kind, top, group_w);
            top += PANEL_H;
        }
    }
    out.push_str("</svg>\n");
    out
}

fn value(r: &Row, kind: Kind, raw: bool) -> f64 {
    let o = if raw { &r.raw } else { &r.ipcx };
    match kind {
        Kind::Latency => o.p50_ns,
        Kind::Throughput => o.msgs_per_s * r.size as f64 / 1e9,
    }
}

fn label(kind: Kind, v: f64) -> String {
    match kind {
        Kind::Latency => human_ns(v),
        Kind::Throughput if v >= 1.0 => format!("{v:.0} GB/s"),
        Kind::Throughput => format!("{v} GB/s"),
    }
}

#[allow(clippy::too_many_arguments)]
fn panel(
    out: &mut String,
    rows: &[Row],
    transports: &[&str],
    sizes: &[usize],
    pin: Pin,
    kind: Kind,
    top: f64,
    group_w: f64,
) {
    let picked: Vec<&Row> = rows
        .iter()
        .filter(|r| r.pin == pin && r.kind == kind)
        .collect();
    let values: Vec<f64> = picked
        .iter()
        .flat_map(|r| [value(r, kind, false), value(r, kind, true)])
        .filter(|v| *v > 0.0)
        .collect();
    let title = match kind {
        Kind::Latency => "p50 round trip (log scale, lower is better)",
        Kind::Throughput => "one-way throughput, GB/s (log scale, higher is better)",
    };
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{title} — pin {}</text>"#,
        top + 14.0,
        pin.name()
    );
    if values.is_empty() {
        return;
    }
    let lo = values
        .iter()
        .copied()
        .fold(f64::MAX, f64::min)
        .log10()
        .floor();
    let hi = values
        .iter()
        .copied()
        .fold(f64::MIN, f64::max)
        .log10()
        .ceil();
    let hi = if hi <= lo { lo + 1.0 } else { hi };
    let base = top + 24.0 + PLOT_H;
    let y_of = |v: f64| base - (v.log10() - lo) / (hi - lo) * PLOT_H;
    // Decade grid lines.
    let mut d = lo;
    while d <= hi {
        let v = 10f64.powf(d);
        let y = y_of(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + sizes.len() as f64 * group_w,
            LEFT - 4.0,
            y + 4.0,
            label(kind, v)
        );
        d += 1.0;
    }
    for (g, &size) in sizes.iter().enumerate() {
        let gx = LEFT + g as f64 * group_w + GAP / 2.0;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            gx + (group_w - GAP) / 2.0,
            base + 14.0,
            human_size(size)
        );
        for (i, t) in transports.iter().enumerate() {
            let Some(r) = picked.iter().find(|r| r.transport == *t && r.size == size) else {
                continue;
            };
            let c = COLORS[i % COLORS.len()];
            for (j, raw) in [false, true].into_iter().enumerate() {
                let v = value(r, kind, raw);
                if v <= 0.0 {
                    continue;
                }
                let x = gx + (2 * i + j) as f64 * BAR;
                let y = y_of(v);
                let _ = writeln!(
                    out,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{c}" opacity="{}"><title>{} {} {}: {}</title></rect>"#,
                    BAR - 1.0,
                    (base - y).max(0.5),
                    if raw { "0.35" } else { "1" },
                    escape(t),
                    if raw { "raw" } else { "ipcx" },
                    human_size(size),
                    label(kind, v)
                );
            }
        }
    }
}
