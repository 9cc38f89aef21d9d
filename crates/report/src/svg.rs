//! Hand-written SVG charts with real axes, ticks, labels and legends. Every
//! text that comes from data is escaped.

use std::fmt::Write;

use crate::html::escape;

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

fn open(title: &str, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-label="{t}" font-family="system-ui, sans-serif" font-size="12"><title>{t}</title><rect width="100%" height="100%" fill="white"/><text x="{x}" y="18" text-anchor="middle" font-size="14" font-weight="600">{t}</text>"#,
        t = escape(title),
        x = W / 2.0
    )
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

/// y axis with grid lines and tick labels; returns the mapping from value to pixel.
fn y_axis(out: &mut String, lo: f64, hi: f64, label: &str, plot_h: f64) -> impl Fn(f64) -> f64 {
    let span = if hi > lo { hi - lo } else { 1.0 };
    let y = move |v: f64| TOP + plot_h - (v - lo) / span * plot_h;
    for t in ticks(lo, hi, 5) {
        let py = y(t);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            fmt_tick(t)
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{}" stroke="#333"/><text transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"##,
        TOP + plot_h,
        TOP + plot_h / 2.0,
        escape(label)
    );
    y
}

fn legend(out: &mut String, items: &[(String, &str)], y: f64) {
    let mut x = LEFT;
    for (name, color) in items {
        let _ = write!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            y - 9.0,
            x + 14.0,
            y,
            escape(name)
        );
        x += 24.0 + 7.0 * name.chars().count() as f64;
    }
}

/// Figure 1: stacked unshifted / marginal / shifted ratios, one bar per run.
pub fn stacked_ratios(runs: &[(String, [f64; 3])]) -> String {
    let plot_h = H - TOP - BOTTOM - 16.0;
    let mut out = open("Token positions by category", H);
    let y = y_axis(&mut out, 0.0, 100.0, "% of positions", plot_h);
    let slot = (W - LEFT - RIGHT) / runs.len().max(1) as f64;
    let bar = (slot * 0.5).min(120.0);
    for (i, (name, ratios)) in runs.iter().enumerate() {
        let x = LEFT + slot * (i as f64 + 0.5) - bar / 2.0;
        let mut acc = 0.0;
        for (k, r) in ratios.iter().enumerate() {
            let (y1, y0) = (y(acc + r * 100.0), y(acc));
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{y1:.1}" width="{bar:.1}" height="{:.1}" fill="{}"><title>{}: {:.1} %</title></rect>"#,
                (y0 - y1).max(0.0),
                CATEGORY_COLORS[k],
                ["unshifted", "marginal", "shifted"][k],
                r * 100.0
            );
            if r * 100.0 >= 4.0 {
                let _ = write!(
                    out,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="white" font-weight="600">{:.1}</text>"#,
                    x + bar / 2.0,
                    (y0 + y1) / 2.0 + 4.0,
                    r * 100.0
                );
            }
            acc += r * 100.0;
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x + bar / 2.0,
            TOP + plot_h + 16.0,
            escape(name)
        );
    }
    let items: Vec<(String, &str)> = ["unshifted", "marginal", "shifted"]
        .iter()
        .zip(CATEGORY_COLORS)
        .map(|(n, c)| (n.to_string(), c))
        .collect();
    legend(&mut out, &items, H - 10.0);
    out.push_str("</svg>");
    out
}

/// Horizontal bars: label, value, and an annotation at the bar's end.
pub fn horizontal_bars(
    title: &str,
    x_label: &str,
    rows: &[(String, f64, String)],
    color: &str,
) -> String {
    let row_h = 20.0;
    let height = TOP + rows.len() as f64 * row_h + BOTTOM;
    let mut out = open(title, height);
    let left = 150.0;
    let max = rows.iter().map(|r| r.1).fold(0.0, f64::max).max(1e-12);
    let x = |v: f64| left + v / max * (W - left - RIGHT - 110.0);
    for t in ticks(0.0, max, 5) {
        let px = x(t);
        let _ = write!(
            out,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            height - BOTTOM,
            height - BOTTOM + 14.0,
            fmt_tick(t)
        );
    }
    for (i, (label, value, note)) in rows.iter().enumerate() {
        let top = TOP + i as f64 * row_h + 3.0;
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-family="ui-monospace, monospace">{}</text><rect x="{left}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            left - 6.0,
            top + 12.0,
            escape(label),
            (x(*value) - left).max(0.5),
            row_h - 6.0,
            x(*value) + 4.0,
            top + 12.0,
            escape(note)
        );
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text></svg>"#,
        (left + W) / 2.0,
        height - 10.0,
        escape(x_label)
    );
    out
}

/// One series of a line chart: name, and points (x, mean, standard error).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// Lines with 95 % confidence bands (mean +- 1.96 SE), one per series.
pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let plot_h = H - TOP - BOTTOM - 16.0;
    let mut out = open(title, H);
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
    let y = y_axis(&mut out, lo, hi.max(lo + 1e-9), y_label, plot_h);
    let x = |v: f64| LEFT + v / xmax.max(1.0) * (W - LEFT - RIGHT);
    for t in ticks(0.0, xmax.max(1.0), 8) {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(t),
            TOP + plot_h + 14.0,
            fmt_tick(t)
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        W - RIGHT,
        TOP + plot_h,
        TOP + plot_h
    );
    let mut items = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<&(f64, f64, f64)> = s.points.iter().filter(|p| p.1.is_finite()).collect();
        if pts.is_empty() {
            continue;
        }
        let upper: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1 + 1.96 * p.2)))
            .collect();
        let lower: Vec<String> = pts
            .iter()
            .rev()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1 - 1.96 * p.2)))
            .collect();
        let _ = write!(
            out,
            r#"<polygon points="{} {}" fill="{color}" fill-opacity="0.18" stroke="none"/>"#,
            upper.join(" "),
            lower.join(" ")
        );
        let line: Vec<String> = pts
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.8"/>"#,
            line.join(" ")
        );
        items.push((s.name.clone(), color));
    }
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (LEFT + W) / 2.0,
        TOP + plot_h + 30.0,
        escape(x_label)
    );
    legend(&mut out, &items, H - 4.0);
    out.push_str("</svg>");
    out
}

/// Vertical bars for labelled bins, one group per run.
pub fn grouped_bars(
    title: &str,
    y_label: &str,
    bins: &[String],
    runs: &[(String, Vec<f64>)],
) -> String {
    let plot_h = H - TOP - BOTTOM - 16.0;
    let mut out = open(title, H);
    let max = runs
        .iter()
        .flat_map(|r| r.1.iter())
        .copied()
        .fold(0.0, f64::max)
        .max(1e-12);
    let y = y_axis(&mut out, 0.0, max, y_label, plot_h);
    let slot = (W - LEFT - RIGHT) / bins.len().max(1) as f64;
    let bar = slot * 0.8 / runs.len().max(1) as f64;
    for (b, name) in bins.iter().enumerate() {
        for (r, (run, values)) in runs.iter().enumerate() {
            let v = values.get(b).copied().unwrap_or(0.0);
            let x = LEFT + slot * b as f64 + slot * 0.1 + bar * r as f64;
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="{}"><title>{}: {}: {}</title></rect>"#,
                y(v),
                (TOP + plot_h - y(v)).max(0.0),
                PALETTE[r % PALETTE.len()],
                escape(run),
                escape(name),
                fmt_tick(v)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + slot * (b as f64 + 0.5),
            TOP + plot_h + 14.0,
            escape(name)
        );
    }
    let items: Vec<(String, &str)> = runs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.0.clone(), PALETTE[i % PALETTE.len()]))
        .collect();
    legend(&mut out, &items, H - 4.0);
    out.push_str("</svg>");
    out
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
        let svg = horizontal_bars(
            "t",
            "x",
            &[("<script>alert(1)</script>".into(), 3.0, "&amp;".into())],
            "#000",
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;") && svg.contains("&amp;amp;"));
    }
}
