//! The catch report's chart as SVG: the share of each scenario's accounts caught by the end of each
//! day, and below it the share of honest users who have met friction. Written by hand: two panels of
//! polylines do not justify a plotting library's build time in CI (ARCHITECTURE.md).

use crate::report::Report;
use std::fmt::Write;

const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

pub fn svg(r: &Report, title: &str) -> String {
    let (w, h) = (900.0, 620.0);
    let (left, right) = (60.0, 700.0);
    let (top1, bottom1) = (50.0, 380.0);
    let (top2, bottom2) = (440.0, 580.0);
    let days = r.days.max(1) as f64;
    let x = |d: f64| left + (right - left) * d / days;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"##
    );
    let _ = write!(
        s,
        r##"<rect width="100%" height="100%" fill="white"/><text x="{left}" y="28" font-size="15" font-weight="bold">{}</text>"##,
        escape(title)
    );
    // Top panel: recall over time.
    let y1 = |v: f64| bottom1 - (bottom1 - top1) * v;
    axes(
        &mut s,
        left,
        right,
        top1,
        bottom1,
        days,
        "accounts caught",
        |i| format!("{}%", i * 20),
        5,
        |v| y1(v as f64 / 5.0),
    );
    let target = y1(crate::report::TARGET_RECALL);
    let _ = write!(
        s,
        r##"<line x1="{left}" x2="{right}" y1="{target:.1}" y2="{target:.1}" stroke="#444" stroke-dasharray="4 4"/><text x="{}" y="{:.1}" fill="#444">target</text>"##,
        right + 4.0,
        target + 4.0
    );
    for (i, series) in r.timeline.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = series
            .values
            .iter()
            .enumerate()
            .map(|(d, v)| format!("{:.1},{:.1}", x(d as f64 + 1.0), y1(*v)))
            .collect();
        let _ = write!(
            s,
            r##"<polyline fill="none" stroke="{color}" stroke-width="2" points="{:.1},{:.1} {}"/>"##,
            x(0.0),
            y1(0.0),
            pts.join(" ")
        );
        let ly = top1 + 16.0 * i as f64;
        let _ = write!(
            s,
            r##"<rect x="{}" y="{:.1}" width="12" height="3" fill="{color}"/><text x="{}" y="{:.1}">{}</text>"##,
            right + 20.0,
            ly + 6.0,
            right + 36.0,
            ly + 10.0,
            escape(&series.name)
        );
    }
    // Bottom panel: honest friction over time.
    let fmax = r
        .friction_curve
        .iter()
        .copied()
        .fold(crate::report::TARGET_FRICTION * 1.25, f64::max);
    let y2 = |v: f64| bottom2 - (bottom2 - top2) * v / fmax;
    axes(
        &mut s,
        left,
        right,
        top2,
        bottom2,
        days,
        "honest users with friction",
        |i| format!("{:.2}%", fmax * 100.0 * i as f64 / 4.0),
        4,
        |v| y2(fmax * v as f64 / 4.0),
    );
    let t2 = y2(crate::report::TARGET_FRICTION);
    let _ = write!(
        s,
        r##"<line x1="{left}" x2="{right}" y1="{t2:.1}" y2="{t2:.1}" stroke="#444" stroke-dasharray="4 4"/>"##
    );
    let pts: Vec<String> = r
        .friction_curve
        .iter()
        .enumerate()
        .map(|(d, v)| format!("{:.1},{:.1}", x(d as f64 + 1.0), y2(*v)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#d62728" stroke-width="2" points="{:.1},{:.1} {}"/>"##,
        x(0.0),
        y2(0.0),
        pts.join(" ")
    );
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{}" text-anchor="middle">day</text></svg>"##,
        (left + right) / 2.0,
        h - 8.0
    );
    s.push('\n');
    s
}

#[allow(clippy::too_many_arguments)]
fn axes(
    s: &mut String,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    days: f64,
    label: &str,
    tick: impl Fn(u32) -> String,
    n: u32,
    y: impl Fn(u32) -> f64,
) {
    let _ = write!(
        s,
        r##"<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="black"/><line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="black"/>"##
    );
    for i in 0..=n {
        let yy = y(i);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{right}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            left - 4.0,
            yy + 4.0,
            tick(i)
        );
    }
    let step = if days > 20.0 { 5.0 } else { 1.0 };
    let mut d = 0.0;
    while d <= days {
        let xx = left + (right - left) * d / days;
        let _ = write!(
            s,
            r##"<text x="{xx:.1}" y="{}" text-anchor="middle">{d}</text>"##,
            bottom + 14.0
        );
        d += step;
    }
    let _ = write!(
        s,
        r##"<text x="{left}" y="{}" fill="#333">{}</text>"##,
        top - 6.0,
        escape(label)
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
