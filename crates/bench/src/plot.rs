//! SVG charts of a benchmark run (written by `wvo bench --plot DIR`): replicas per variant
//! over time (one chart per policy), load against ready capacity over time (one per policy),
//! and cost against SLO attainment (all policies). Plain SVG 1.1 text, no dependencies.

use std::fmt::Write as _;

use crate::report::Report;
use crate::scenario::Scenario;
use crate::sim::RunResult;

const W: f64 = 760.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 180.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// One named line.
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound for an axis.
fn nice_max(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        LEFT + (v - self.x0) / (self.x1 - self.x0).max(1e-12) * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        H - BOTTOM - (v - self.y0) / (self.y1 - self.y0).max(1e-12) * (H - TOP - BOTTOM)
    }
}

fn axes(out: &mut String, f: &Frame, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(out, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = write!(
        out,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        esc(title)
    );
    for i in 0..=5 {
        let yv = f.y0 + (f.y1 - f.y0) * f64::from(i) / 5.0;
        let xv = f.x0 + (f.x1 - f.x0) * f64::from(i) / 5.0;
        let (py, px) = (f.y(yv), f.x(xv));
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            fmt_tick(yv)
        );
        let _ = write!(
            out,
            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            H - BOTTOM + 16.0,
            fmt_tick(xv)
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    let _ = write!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0,
        esc(x_label)
    );
    let _ = write!(
        out,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        esc(y_label)
    );
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 || (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn line_chart(title: &str, x_label: &str, y_label: &str, lines: &[Line]) -> String {
    let x1 = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y1 = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    let f = Frame {
        x0: 0.0,
        x1,
        y0: 0.0,
        y1: nice_max(y1 * 1.05),
    };
    let mut out = String::new();
    axes(&mut out, &f, title, x_label, y_label);
    for (i, l) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", f.x(x), f.y(y)))
            .collect();
        let dash = if l.dashed {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.6"{dash} points="{}"/>"#,
            pts.join(" ")
        );
        let ly = TOP + 14.0 + 18.0 * i as f64;
        let _ = write!(
            out,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
            W - RIGHT + 10.0,
            W - RIGHT + 32.0,
            W - RIGHT + 38.0,
            ly + 4.0,
            esc(&l.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Step-shaped points (replica counts change at instants).
fn steps(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (x, y) in points {
        if let Some(&(_, py)) = out.last() {
            if py != y {
                out.push((x, py));
            }
        }
        out.push((x, y));
    }
    out
}

/// The charts of one scenario: (file name, SVG text).
pub fn charts(scenario: &Scenario, report: &Report, runs: &[RunResult]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for run in runs {
        let mut lines = Vec::new();
        for (mi, m) in scenario.models.iter().enumerate() {
            for (vi, v) in m.variants.iter().enumerate() {
                lines.push(Line {
                    name: format!("{}/{} ready", m.name, v.name),
                    points: steps(
                        run.series
                            .iter()
                            .map(|p| (p.t / 60.0, f64::from(p.ready[mi][vi]))),
                    ),
                    dashed: false,
                });
            }
        }
        files.push((
            format!("replicas-{}.svg", run.policy),
            line_chart(
                &format!(
                    "{}: ready replicas per variant ({})",
                    scenario.name, run.policy
                ),
                "time (min)",
                "ready replicas",
                &lines,
            ),
        ));
        let load = Line {
            name: "offered load".into(),
            points: run
                .series
                .iter()
                .map(|p| (p.t / 60.0, p.rate.iter().sum()))
                .collect(),
            dashed: false,
        };
        let capacity = Line {
            name: "ready capacity".into(),
            points: steps(
                run.series
                    .iter()
                    .map(|p| (p.t / 60.0, p.capacity.iter().sum())),
            ),
            dashed: true,
        };
        files.push((
            format!("load-capacity-{}.svg", run.policy),
            line_chart(
                &format!(
                    "{}: load vs capacity at the SLO ({})",
                    scenario.name, run.policy
                ),
                "time (min)",
                "req/s",
                &[load, capacity],
            ),
        ));
    }
    files.push(("cost-attainment.svg".into(), cost_attainment(report)));
    files
}

fn cost_attainment(report: &Report) -> String {
    let x1 = report
        .policies
        .iter()
        .map(|p| p.cost_dollars)
        .fold(0.0, f64::max);
    let y0 = report
        .policies
        .iter()
        .map(|p| p.slo_attainment)
        .fold(1.0, f64::min);
    let f = Frame {
        x0: 0.0,
        x1: nice_max(x1 * 1.1),
        y0: ((y0 - 0.02) * 20.0).floor().max(0.0) / 20.0,
        y1: 1.0,
    };
    let mut out = String::new();
    axes(
        &mut out,
        &f,
        &format!("{}: cost vs SLO attainment", report.scenario),
        "cost ($)",
        "SLO attainment",
    );
    for (i, p) in report.policies.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let (x, y) = (f.x(p.cost_dollars), f.y(p.slo_attainment));
        let _ = write!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="{color}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 9.0,
            y + 4.0,
            esc(&p.policy)
        );
    }
    out.push_str("</svg>\n");
    out
}
