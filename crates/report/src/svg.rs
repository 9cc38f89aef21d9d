//! SVG charts with real axes, ticks, labels and legends. The geometry is
//! computed here as a list of marks; templates/chart.svg turns them into
//! markup and escapes every text, so data never reaches the SVG unescaped.

use aligntds_formats::sides::Estimate;
use serde::Serialize;

use crate::{templates, ReportError};

/// Colour-blind-safe palette (Okabe-Ito).
pub const PALETTE: &[&str] = &[
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];
/// unshifted, marginal, shifted: blue, orange, vermillion (distinguishable for colour-blind readers).
pub const CATEGORY_COLORS: [&str; 3] = ["#0072B2", "#E69F00", "#D55E00"];

const W: f64 = 640.0;
const H: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 48.0;

/// A coordinate as the markup writes it (one decimal is finer than a pixel).
fn px(v: f64) -> String {
    format!("{v:.1}")
}

fn points(pts: impl Iterator<Item = (f64, f64)>) -> String {
    pts.map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A text mark; the builder methods set its optional attributes.
#[derive(Serialize)]
struct Text {
    x: String,
    y: String,
    transform: Option<String>,
    anchor: Option<&'static str>,
    size: Option<u32>,
    bold: bool,
    mono: bool,
    fill: Option<&'static str>,
    text: String,
}

impl Text {
    fn at(x: f64, y: f64, text: impl Into<String>) -> Self {
        Self {
            x: px(x),
            y: px(y),
            transform: None,
            anchor: None,
            size: None,
            bold: false,
            mono: false,
            fill: None,
            text: text.into(),
        }
    }

    fn middle(mut self) -> Self {
        self.anchor = Some("middle");
        self
    }

    fn end(mut self) -> Self {
        self.anchor = Some("end");
        self
    }
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Mark {
    Line {
        x1: String,
        x2: String,
        y1: String,
        y2: String,
        stroke: &'static str,
    },
    Text(Text),
    Rect {
        x: String,
        y: String,
        width: String,
        height: String,
        fill: &'static str,
        title: Option<String>,
    },
    /// A confidence band: a filled, translucent polygon.
    Band {
        points: String,
        fill: &'static str,
    },
    Polyline {
        points: String,
        stroke: &'static str,
    },
    Circle {
        cx: String,
        cy: String,
        r: String,
        fill: &'static str,
        title: Option<String>,
    },
}

/// One chart: its size, its title (shown and given to screen readers) and its marks.
#[derive(Serialize)]
struct Chart {
    width: String,
    height: String,
    title: String,
    marks: Vec<Mark>,
}

impl Chart {
    fn new(title: &str, height: f64) -> Self {
        let mut chart = Self {
            width: px(W),
            height: px(height),
            title: title.to_string(),
            marks: Vec::new(),
        };
        let mut heading = Text::at(W / 2.0, 18.0, title).middle();
        heading.size = Some(14);
        heading.bold = true;
        chart.text(heading);
        chart
    }

    fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &'static str) {
        self.marks.push(Mark::Line {
            x1: px(x1),
            x2: px(x2),
            y1: px(y1),
            y2: px(y2),
            stroke,
        });
    }

    fn text(&mut self, text: Text) {
        self.marks.push(Mark::Text(text));
    }

    fn rect(
        &mut self,
        (x, y): (f64, f64),
        (w, h): (f64, f64),
        fill: &'static str,
        title: Option<String>,
    ) {
        self.marks.push(Mark::Rect {
            x: px(x),
            y: px(y),
            width: px(w),
            height: px(h),
            fill,
            title,
        });
    }

    /// y axis with grid lines and tick labels; returns the mapping from value to pixel.
    fn y_axis(&mut self, lo: f64, hi: f64, label: &str, plot_h: f64) -> impl Fn(f64) -> f64 {
        let span = if hi > lo { hi - lo } else { 1.0 };
        let y = move |v: f64| TOP + plot_h - (v - lo) / span * plot_h;
        for t in ticks(lo, hi, 5) {
            let py = y(t);
            self.line((LEFT, py), (W - RIGHT, py), "#ddd");
            self.text(Text::at(LEFT - 6.0, py + 4.0, fmt_tick(t)).end());
        }
        self.line((LEFT, TOP), (LEFT, TOP + plot_h), "#333");
        let mut axis = Text::at(0.0, 0.0, label).middle();
        axis.transform = Some(format!(
            "translate(14 {:.1}) rotate(-90)",
            TOP + plot_h / 2.0
        ));
        self.text(axis);
        y
    }

    fn legend(&mut self, items: &[(String, &'static str)], y: f64) {
        let mut x = LEFT;
        for (name, color) in items {
            self.rect((x, y - 9.0), (10.0, 10.0), color, None);
            self.text(Text::at(x + 14.0, y, name.clone()));
            x += 24.0 + 7.0 * name.chars().count() as f64;
        }
    }

    fn render(&self) -> Result<String, ReportError> {
        templates::render("chart.svg", self)
    }
}

/// "Nice" tick values covering [lo, hi].
pub fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater)
        || !lo.is_finite()
        || !hi.is_finite()
    {
        return vec![lo];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    // k * step, rounded so 3 * 0.2 prints as 0.6
    (first..=last)
        .map(|k| ((k as f64 * step) * 1e9).round() / 1e9)
        .collect()
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 || v.abs() < 0.01 {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Figure 1: stacked unshifted / marginal / shifted ratios, one bar per run.
pub fn stacked_ratios(runs: &[(String, [f64; 3])]) -> Result<String, ReportError> {
    let plot_h = H - TOP - BOTTOM - 16.0;
    let mut chart = Chart::new("Token positions by category", H);
    let y = chart.y_axis(0.0, 100.0, "% of positions", plot_h);
    let slot = (W - LEFT - RIGHT) / runs.len().max(1) as f64;
    let bar = (slot * 0.5).min(120.0);
    const NAMES: [&str; 3] = ["unshifted", "marginal", "shifted"];
    for (i, (name, ratios)) in runs.iter().enumerate() {
        let x = LEFT + slot * (i as f64 + 0.5) - bar / 2.0;
        let mut acc = 0.0;
        for (k, r) in ratios.iter().enumerate() {
            let (y1, y0) = (y(acc + r * 100.0), y(acc));
            let title = format!("{}: {:.1} %", NAMES[k], r * 100.0);
            chart.rect(
                (x, y1),
                (bar, (y0 - y1).max(0.0)),
                CATEGORY_COLORS[k],
                Some(title),
            );
            if r * 100.0 >= 4.0 {
                let mut label = Text::at(
                    x + bar / 2.0,
                    (y0 + y1) / 2.0 + 4.0,
                    format!("{:.1}", r * 100.0),
                )
                .middle();
                label.fill = Some("white");
                label.bold = true;
                chart.text(label);
            }
            acc += r * 100.0;
        }
        chart.text(Text::at(x + bar / 2.0, TOP + plot_h + 16.0, name.clone()).middle());
    }
    let items: Vec<(String, &'static str)> = NAMES
        .iter()
        .zip(CATEGORY_COLORS)
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    chart.legend(&items, H - 10.0);
    chart.render()
}

/// Horizontal bars: label, value, and an annotation at the bar's end.
pub fn horizontal_bars(
    title: &str,
    x_label: &str,
    rows: &[(String, f64, String)],
    color: &'static str,
) -> Result<String, ReportError> {
    let row_h = 20.0;
    let height = TOP + rows.len() as f64 * row_h + BOTTOM;
    let mut chart = Chart::new(title, height);
    let left = 150.0;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-12);
    let x = |v: f64| left + v / max * (W - left - RIGHT - 110.0);
    for t in ticks(0.0, max, 5) {
        let px = x(t);
        chart.line((px, TOP), (px, height - BOTTOM), "#eee");
        chart.text(Text::at(px, height - BOTTOM + 14.0, fmt_tick(t)).middle());
    }
    for (i, (label, value, note)) in rows.iter().enumerate() {
        let top = TOP + i as f64 * row_h + 3.0;
        let mut name = Text::at(left - 6.0, top + 12.0, label.clone()).end();
        name.mono = true;
        chart.text(name);
        chart.rect(
            (left, top),
            ((x(*value) - left).max(0.5), row_h - 6.0),
            color,
            None,
        );
        chart.text(Text::at(x(*value) + 4.0, top + 12.0, note.clone()));
    }
    chart.text(Text::at((left + W) / 2.0, height - 10.0, x_label).middle());
    chart.render()
}

/// One series of a line chart: name, and points (x, mean, standard error).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// Lines with 95 % confidence bands (mean +- 1.96 SE), one per series.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, ReportError> {
    let plot_h = H - TOP - BOTTOM - 16.0;
    let mut chart = Chart::new(title, H);
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut lo, mut hi, mut xmax) = (f64::INFINITY, f64::NEG_INFINITY, 0f64);
    for &(px, m, se) in all {
        if m.is_finite() {
            lo = lo.min(m - 1.96 * se.max(0.0));
            hi = hi.max(m + 1.96 * se.max(0.0));
            xmax = xmax.max(px);
        }
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let lo = lo.min(0.0);
    let y = chart.y_axis(lo, hi.max(lo + 1e-9), y_label, plot_h);
    let x = |v: f64| LEFT + v / xmax.max(1.0) * (W - LEFT - RIGHT);
    for t in ticks(0.0, xmax.max(1.0), 8) {
        chart.text(Text::at(x(t), TOP + plot_h + 14.0, fmt_tick(t)).middle());
    }
    chart.line((LEFT, TOP + plot_h), (W - RIGHT, TOP + plot_h), "#333");
    let mut items = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<&(f64, f64, f64)> = s.points.iter().filter(|p| p.1.is_finite()).collect();
        if pts.is_empty() {
            continue;
        }
        let upper = pts.iter().map(|p| (x(p.0), y(p.1 + 1.96 * p.2)));
        let lower = pts.iter().rev().map(|p| (x(p.0), y(p.1 - 1.96 * p.2)));
        chart.marks.push(Mark::Band {
            points: points(upper.chain(lower)),
            fill: color,
        });
        chart.marks.push(Mark::Polyline {
            points: points(pts.iter().map(|p| (x(p.0), y(p.1)))),
            stroke: color,
        });
        items.push((s.name.clone(), color));
    }
    chart.text(Text::at((LEFT + W) / 2.0, TOP + plot_h + 30.0, x_label).middle());
    chart.legend(&items, H - 4.0);
    chart.render()
}

/// Vertical bars for labelled bins, one group per run.
pub fn grouped_bars(
    title: &str,
    y_label: &str,
    bins: &[String],
    runs: &[(String, Vec<f64>)],
) -> Result<String, ReportError> {
    let plot_h = H - TOP - BOTTOM - 16.0;
    let mut chart = Chart::new(title, H);
    let max = runs
        .iter()
        .flat_map(|r| r.1.iter())
        .copied()
        .fold(0.0, f64::max)
        .max(1e-12);
    let y = chart.y_axis(0.0, max, y_label, plot_h);
    let slot = (W - LEFT - RIGHT) / bins.len().max(1) as f64;
    let bar = slot * 0.8 / runs.len().max(1) as f64;
    for (b, name) in bins.iter().enumerate() {
        for (r, (run, values)) in runs.iter().enumerate() {
            let v = values.get(b).copied().unwrap_or(0.0);
            let x = LEFT + slot * b as f64 + slot * 0.1 + bar * r as f64;
            let title = format!("{run}: {name}: {}", fmt_tick(v));
            chart.rect(
                (x, y(v)),
                (bar, (TOP + plot_h - y(v)).max(0.0)),
                PALETTE[r % PALETTE.len()],
                Some(title),
            );
        }
        chart.text(
            Text::at(
                LEFT + slot * (b as f64 + 0.5),
                TOP + plot_h + 14.0,
                name.clone(),
            )
            .middle(),
        );
    }
    let items: Vec<(String, &'static str)> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.0.clone(), PALETTE[i % PALETTE.len()]))
        .collect();
    chart.legend(&items, H - 4.0);
    chart.render()
}

/// One labelled point of a scatter chart, with intervals on both axes.
pub struct Point {
    pub label: String,
    pub x: Estimate,
    pub y: Estimate,
}

/// Labelled points with 95 % interval whiskers on both axes; the x axis
/// spans `x_range`, the y axis the points' intervals.
pub fn scatter(
    title: &str,
    x_label: &str,
    x_range: (f64, f64),
    y_label: &str,
    points: &[Point],
) -> Result<String, ReportError> {
    let plot_h = H - TOP - BOTTOM;
    let mut chart = Chart::new(title, H);
    let finite = |v: f64, or: f64| if v.is_finite() { v } else { or };
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in points.iter().filter(|p| p.y.value.is_finite()) {
        lo = lo.min(finite(p.y.low, p.y.value));
        hi = hi.max(finite(p.y.high, p.y.value));
    }
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-6);
    let y = chart.y_axis(lo - pad, hi + pad, y_label, plot_h);
    let (x0, x1) = x_range;
    let x = |v: f64| LEFT + 8.0 + (v - x0) / (x1 - x0).max(1e-12) * (W - LEFT - RIGHT - 16.0);
    for t in ticks(x0, x1, 8) {
        chart.text(Text::at(x(t), TOP + plot_h + 14.0, fmt_tick(t)).middle());
    }
    chart.line((LEFT, TOP + plot_h), (W - RIGHT, TOP + plot_h), "#333");
    // Points that fall on one spot share one label, so names never overprint.
    let mut labels: Vec<((f64, f64), String, &'static str)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        if !(p.x.value.is_finite() && p.y.value.is_finite()) {
            continue;
        }
        let color = PALETTE[i % PALETTE.len()];
        let (cx, cy) = (x(p.x.value), y(p.y.value));
        let (xl, xh) = (
            x(finite(p.x.low, p.x.value)),
            x(finite(p.x.high, p.x.value)),
        );
        let (yl, yh) = (
            y(finite(p.y.low, p.y.value)),
            y(finite(p.y.high, p.y.value)),
        );
        chart.line((xl, cy), (xh, cy), color);
        chart.line((cx, yl), (cx, yh), color);
        chart.marks.push(Mark::Circle {
            cx: px(cx),
            cy: px(cy),
            r: px(4.5),
            fill: color,
            title: Some(format!(
                "{}: {x_label} {:.3} [{:.3}, {:.3}]; {y_label} {:.3} [{:.3}, {:.3}]",
                p.label, p.x.value, p.x.low, p.x.high, p.y.value, p.y.low, p.y.high
            )),
        });
        match labels
            .iter_mut()
            .find(|((lx, ly), _, _)| (lx - cx).abs() < 8.0 && (ly - cy).abs() < 8.0)
        {
            Some((_, text, _)) => {
                text.push_str(", ");
                text.push_str(&p.label);
            }
            None => labels.push(((cx, cy), p.label.clone(), color)),
        }
    }
    // Each label takes the first corner around its point where it overlaps
    // no label placed before it (boxes estimated at 7 px per character).
    let mut placed: Vec<(f64, f64, f64, f64)> = Vec::new();
    for ((cx, cy), text, color) in labels {
        let width = 7.0 * text.chars().count() as f64;
        let right_first = cx <= (LEFT + W) / 2.0;
        let corners = [(true, -7.0), (true, 16.0), (false, -7.0), (false, 16.0)];
        let boxed = |(right, dy): (bool, f64)| {
            let right = right == right_first;
            let x0 = if right { cx + 7.0 } else { cx - 7.0 - width };
            (
                right,
                cy + dy,
                (x0, cy + dy - 11.0, x0 + width, cy + dy + 2.0),
            )
        };
        let free = |b: &(f64, f64, f64, f64)| {
            placed
                .iter()
                .all(|p| b.2 < p.0 || b.0 > p.2 || b.3 < p.1 || b.1 > p.3)
        };
        let (right, y, b) = corners
            .into_iter()
            .map(boxed)
            .find(|(_, _, b)| free(b))
            .unwrap_or_else(|| boxed(corners[0]));
        placed.push(b);
        // In the point's colour, so a label beside another point still says whose it is.
        let mut label = if right {
            Text::at(cx + 7.0, y, text)
        } else {
            Text::at(cx - 7.0, y, text).end()
        };
        label.fill = Some(color);
        chart.text(label);
    }
    chart.text(Text::at((LEFT + W) / 2.0, TOP + plot_h + 32.0, x_label).middle());
    chart.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(ticks(0.0, 0.7, 5), vec![0.0, 0.2, 0.4, 0.6]);
        assert_eq!(ticks(1.0, 1.0, 5), vec![1.0]);
    }

    #[test]
    fn charts_escape_data_text() {
        let hostile = "<script>alert(1)</script>";
        let svgs = [
            horizontal_bars(
                hostile,
                hostile,
                &[(hostile.into(), 3.0, "&amp;".into())],
                "#000",
            )
            .unwrap(),
            stacked_ratios(&[(hostile.into(), [0.5, 0.3, 0.2])]).unwrap(),
            lines(
                hostile,
                hostile,
                hostile,
                &[Series {
                    name: hostile.into(),
                    points: vec![(0.0, 1.0, 0.1), (1.0, 2.0, 0.1)],
                }],
            )
            .unwrap(),
            grouped_bars(
                hostile,
                hostile,
                &[hostile.into()],
                &[(hostile.into(), vec![1.0])],
            )
            .unwrap(),
        ];
        for svg in svgs {
            assert!(!svg.contains("<script>"), "{svg}");
            assert!(
                svg.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
                "{svg}"
            );
            assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        }
    }

    #[test]
    fn charts_draw_what_they_are_given() {
        // Two runs' ratios: six rectangles with their percentages, in category colours.
        let svg = stacked_ratios(&[
            ("a".into(), [0.777, 0.145, 0.078]),
            ("b".into(), [0.824, 0.128, 0.048]),
        ])
        .unwrap();
        assert!(svg.contains("<title>unshifted: 77.7 %</title>"));
        assert!(svg.contains("<title>shifted: 4.8 %</title>"));
        assert_eq!(
            svg.matches("<rect x=").count(),
            6 + 3,
            "bars and legend swatches"
        );
        assert!(svg.contains("fill=\"#D55E00\""));
        // A line chart: one band and one line per series with points.
        let s = |name: &str| Series {
            name: name.into(),
            points: vec![(0.0, 0.5, 0.1), (10.0, 0.2, 0.05)],
        };
        let svg = lines(
            "t",
            "x",
            "y",
            &[
                s("a"),
                s("b"),
                Series {
                    name: "none".into(),
                    points: vec![],
                },
            ],
        )
        .unwrap();
        assert_eq!(svg.matches("<polygon").count(), 2);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("rotate(-90)\" text-anchor=\"middle\">y</text>"));
    }
}
