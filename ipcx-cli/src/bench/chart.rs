//! The SVG chart of `ipcx bench --svg`: for each pinning, p50 round-trip
//! latency and one-way throughput, grouped by message size, one bar pair
//! (ipcx solid, raw pale) per transport, on log scales; then for each
//! pinning the ratio ipcx/raw of both, one bar per transport at the median
//! of the repetitions with an error bar from the smallest to the largest
//! (unstable rows pale), against a line at 1; and the chart of
//! `ipcx bench --scale --svg`: cost against the number of connections.
//! Hand-written SVG.

use std::fmt::Write;

use super::measure::Kind;
use super::scale::ScaleRow;
use super::stats::Spread;
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
    let panels = pins.len() * 4;
    let height = 40.0 + panels as f64 * PANEL_H + 20.0 * transports.len().div_ceil(4) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    legend(&mut out, &transports, true);
    let mut top = 30.0 + 16.0 * transports.len().div_ceil(4) as f64;
    for &pin in &pins {
        for kind in [Kind::Latency, Kind::Throughput] {
            panel(&mut out, rows, &transports, &sizes, pin, kind, top, group_w);
            top += PANEL_H;
        }
    }
    for &pin in &pins {
        for kind in [Kind::Latency, Kind::Throughput] {
            ratio_panel(&mut out, rows, &transports, &sizes, pin, kind, top, group_w);
            top += PANEL_H;
        }
    }
    out.push_str("</svg>\n");
    out
}

/// The highest ratio the ratio panels' scale reaches.
const RATIO_CAP: f64 = 3.0;

/// The ratio ipcx/raw of one measurement at one pinning: per size and
/// transport a bar to the median, an error bar over the repetitions'
/// range, a dashed line at 1 (parity).
#[allow(clippy::too_many_arguments)]
fn ratio_panel(
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
    let title = match kind {
        Kind::Latency => {
            "round trip ipcx/raw, median and range of the repetitions (lower is better)"
        }
        Kind::Throughput => {
            "throughput ipcx/raw, median and range of the repetitions (higher is better)"
        }
    };
    let _ = writeln!(
        out,
        r#"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{title} — pin {}</text>"#,
        top + 14.0,
        pin.name()
    );
    let spreads: Vec<(&Row, Spread)> = picked
        .iter()
        .map(|r| (*r, r.spread()))
        .filter(|(_, s)| s.max.is_finite() && s.min >= 0.0)
        .collect();
    if spreads.is_empty() {
        return;
    }
    let base = top + 24.0 + PLOT_H;
    // Linear, up to the largest ratio but no further than RATIO_CAP: one
    // wild repetition must not flatten every other bar. A range reaching
    // beyond is cut at the top and its end written there.
    let mut values: Vec<f64> = spreads.iter().map(|(_, s)| s.max.min(RATIO_CAP)).collect();
    values.push(1.0);
    let scale = Scale::fit(&values, false, base);
    let cap = scale.hi;
    let right = LEFT + sizes.len() as f64 * group_w;
    scale.grid(out, right, &|v| format!("{v:.2}x"));
    let one = scale.y(1.0);
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" x2="{right}" y1="{one:.1}" y2="{one:.1}" stroke="#c00" stroke-dasharray="4 3"/>"##
    );
    let bar = 2.0 * BAR;
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
            let Some((_, s)) = spreads
                .iter()
                .find(|(r, _)| r.transport == *t && r.size == size)
            else {
                continue;
            };
            let c = COLORS[i % COLORS.len()];
            let x = gx + i as f64 * bar;
            let y = scale.y(s.median.min(cap));
            let mid = x + (bar - 2.0) / 2.0;
            let (lo, hi) = (scale.y(s.min.min(cap)), scale.y(s.max.min(cap)));
            if s.max > cap {
                let _ = writeln!(
                    out,
                    r#"<text x="{mid:.1}" y="{:.1}" text-anchor="middle" font-size="9">{:.1}x</text>"#,
                    hi - 3.0,
                    s.max
                );
            }
            let _ = writeln!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{c}" opacity="{}"><title>{} {}: {:.2}x [{:.2}-{:.2}] over {} repetitions{}</title></rect><line class="range" x1="{mid:.1}" x2="{mid:.1}" y1="{hi:.1}" y2="{lo:.1}" stroke="black"/><line x1="{:.1}" x2="{:.1}" y1="{hi:.1}" y2="{hi:.1}" stroke="black"/><line x1="{:.1}" x2="{:.1}" y1="{lo:.1}" y2="{lo:.1}" stroke="black"/>"#,
                bar - 2.0,
                (base - y).max(0.5),
                if s.unstable() { "0.45" } else { "1" },
                escape(t),
                human_size(size),
                s.median,
                s.min,
                s.max,
                s.n,
                if s.unstable() { ", unstable" } else { "" },
                mid - 3.0,
                mid + 3.0,
                mid - 3.0,
                mid + 3.0,
            );
        }
    }
}

/// One colour square per transport (and a pale one beside it when `raw`),
/// four to a line.
fn legend(out: &mut String, transports: &[&str], raw: bool) {
    for (i, t) in transports.iter().enumerate() {
        let x = LEFT + (i % 4) as f64 * LEGEND_W;
        let y = 14.0 + (i / 4) as f64 * 16.0;
        let c = COLORS[i % COLORS.len()];
        if raw {
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
        } else {
            let _ = writeln!(
                out,
                r#"<rect x="{x}" y="{}" width="10" height="10" fill="{c}"/><text x="{}" y="{}">{}</text>"#,
                y - 9.0,
                x + 14.0,
                y,
                escape(t)
            );
        }
    }
}

/// A vertical scale: log (decades) or linear from 0.
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
    base: f64,
}

impl Scale {
    /// Fits `values` (those above 0 on a log scale).
    fn fit(values: &[f64], log: bool, base: f64) -> Scale {
        let max = values.iter().copied().fold(0.0, f64::max);
        if log {
            let pos = values.iter().copied().filter(|v| *v > 0.0);
            let lo = pos.fold(f64::MAX, f64::min).log10().floor();
            let hi = max.log10().ceil();
            let hi = if hi <= lo { lo + 1.0 } else { hi };
            Scale { lo, hi, log, base }
        } else {
            let hi = if max > 0.0 { max * 1.15 } else { 1.0 };
            Scale {
                lo: 0.0,
                hi,
                log,
                base,
            }
        }
    }

    fn y(&self, v: f64) -> f64 {
        let f = if self.log { v.log10() } else { v };
        self.base - (f - self.lo) / (self.hi - self.lo) * PLOT_H
    }

    /// Grid values: each decade, or five even steps.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut v = Vec::new();
            let mut d = self.lo;
            while d <= self.hi {
                v.push(10f64.powf(d));
                d += 1.0;
            }
            v
        } else {
            (0..=4).map(|i| self.hi * i as f64 / 4.0).collect()
        }
    }

    /// Horizontal grid lines with labels, from `LEFT` to `right`.
    fn grid(&self, out: &mut String, right: f64, label: &dyn Fn(f64) -> String) {
        for v in self.ticks() {
            let y = self.y(v);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT - 4.0,
                y + 4.0,
                label(v)
            );
        }
    }
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
    let base = top + 24.0 + PLOT_H;
    let scale = Scale::fit(&values, true, base);
    let y_of = |v: f64| scale.y(v);
    scale.grid(out, LEFT + sizes.len() as f64 * group_w, &|v| {
        label(kind, v)
    });
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

/// What a panel of the scale chart shows of a row.
type Measure = (&'static str, bool, fn(&ScaleRow) -> f64, fn(f64) -> String);

/// The scale panels: title, log scale, value, label.
const SCALE_PANELS: [Measure; 3] = [
    (
        "idle server CPU, % of one core (lower is better)",
        false,
        |r| r.idle_cpu_pct,
        |v| format!("{v:.2} %"),
    ),
    (
        "connect time per connection (log scale, lower is better)",
        true,
        |r| {
            if r.connected > 0 {
                r.connect_s * 1e9 / r.connected as f64
            } else {
                0.0
            }
        },
        human_ns,
    ),
    (
        "round trip of one connection / the same with none idle (goal: under 1.2)",
        false,
        |r| r.rtt_ratio,
        |v| format!("{v:.2}x"),
    ),
];

/// The issue's goal for the round-trip ratio, drawn as a dashed line.
const GOAL_RATIO: f64 = 1.2;

/// The chart of `ipcx bench --scale --svg`: for each measure a bar group
/// per N (connections), one bar per transport.
pub fn scale_svg(rows: &[ScaleRow]) -> String {
    let transports = unique(rows.iter().map(|r| r.transport.as_str()));
    let counts = unique(rows.iter().map(|r| r.n));
    let bar = 2.0 * BAR;
    let group_w = transports.len() as f64 * bar + GAP;
    let right = LEFT + counts.len() as f64 * group_w;
    let width = (right + 20.0).max(LEFT + 4.0 * LEGEND_W);
    let legend_h = 16.0 * transports.len().div_ceil(4) as f64;
    let height = 40.0 + legend_h + SCALE_PANELS.len() as f64 * PANEL_H;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    legend(&mut out, &transports, false);
    let mut top = 30.0 + legend_h;
    for (title, log, get, label) in SCALE_PANELS {
        let _ = writeln!(
            out,
            r#"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{}</text>"#,
            top + 14.0,
            escape(title)
        );
        let goal = title.contains("goal");
        let mut values: Vec<f64> = rows.iter().map(get).collect();
        if goal {
            values.push(GOAL_RATIO);
        }
        let base = top + 24.0 + PLOT_H;
        let scale = Scale::fit(&values, log, base);
        scale.grid(&mut out, right, &label);
        if goal {
            let y = scale.y(GOAL_RATIO);
            let _ = writeln!(
                out,
                r##"<line x1="{LEFT}" x2="{right}" y1="{y:.1}" y2="{y:.1}" stroke="#c00" stroke-dasharray="4 3"/>"##
            );
        }
        for (g, &n) in counts.iter().enumerate() {
            let gx = LEFT + g as f64 * group_w + GAP / 2.0;
            let name = if n == 1 {
                "N = 1 (baseline)".to_string()
            } else {
                format!("N = {n}")
            };
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{name}</text>"#,
                gx + (group_w - GAP) / 2.0,
                base + 14.0,
            );
            for (i, t) in transports.iter().enumerate() {
                let Some(r) = rows.iter().find(|r| r.transport == *t && r.n == n) else {
                    continue;
                };
                let v = get(r);
                if v <= 0.0 && log {
                    continue;
                }
                let x = gx + i as f64 * bar;
                let y = scale.y(v);
                let _ = writeln!(
                    out,
                    r#"<rect x="{x:.0}" y="{y:.1}" width="{}" height="{:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                    bar - 2.0,
                    (base - y).max(0.5),
                    COLORS[i % COLORS.len()],
                    escape(t),
                    r.connected,
                    label(v)
                );
            }
        }
        top += PANEL_H;
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(transport: &str, n: usize, ratio: f64) -> ScaleRow {
        ScaleRow {
            transport: transport.into(),
            n,
            connected: n,
            connect_s: n as f64 * 1e-3,
            idle_cpu_pct: 0.0,
            server_rss_kib: 0,
            client_rss_kib: 0,
            rtt_p50_ns: 10_000.0 * ratio,
            rtt_base_ns: 10_000.0,
            rtt_ratio: ratio,
            error: None,
        }
    }

    #[test]
    fn ratio_panels_have_an_error_bar_per_row() {
        use crate::bench::measure::Outcome;
        use crate::bench::{Rep, Row};
        let rep = |a: f64, b: f64| Rep {
            ipcx: Outcome {
                p50_ns: a,
                msgs_per_s: a,
                ..Outcome::default()
            },
            raw: Outcome {
                p50_ns: b,
                msgs_per_s: b,
                ..Outcome::default()
            },
        };
        let rows: Vec<Row> = [Kind::Latency, Kind::Throughput]
            .into_iter()
            .flat_map(|k| {
                [
                    Row::new(
                        "unix",
                        64,
                        Pin::Same,
                        k,
                        vec![rep(10.0, 10.0), rep(11.0, 10.0)],
                    ),
                    Row::new(
                        "pipe",
                        64,
                        Pin::Same,
                        k,
                        vec![rep(5.0, 10.0), rep(150.0, 10.0)],
                    ),
                ]
            })
            .collect();
        let svg = svg(&rows);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches(r#"class="range""#).count(), rows.len());
        assert!(svg.contains("unix 64 B: 1.05x [1.00-1.10] over 2 repetitions</title>"));
        assert!(svg.contains("pipe 64 B: 7.75x [0.50-15.00] over 2 repetitions, unstable</title>"));
        // A range beyond the scale is cut at the top, its end written there.
        assert!(svg.contains(">15.0x</text>"));
        assert!(svg.contains("stroke-dasharray"), "the parity line");
    }

    #[test]
    fn scale_chart_has_a_bar_per_row_and_panel() {
        let rows = [
            row("unix", 1, 1.0),
            row("unix", 1000, 1.1),
            row("shm", 1, 1.0),
            row("shm", 1000, 1.3),
        ];
        let svg = scale_svg(&rows);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(
            svg.matches("<title>").count(),
            rows.len() * SCALE_PANELS.len()
        );
        assert!(svg.contains("N = 1 (baseline)") && svg.contains("N = 1000"));
        assert!(svg.contains("stroke-dasharray"), "the 1.2 goal line");
        assert!(svg.contains("<title>shm 1000: 1.30x</title>"));
    }
}
