//! `--html`: one self-contained page (inline CSS and SVG, no script, nothing loaded from
//! anywhere) with latency over time, requests a second, the latency histogram, the table
//! and the thresholds. Every name from the scenario is escaped.

use std::fmt::Write;

use crate::metrics::Stats;
use crate::report::Report;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const W: f64 = 760.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

/// A line chart of several series over the run's seconds.
fn lines(title: &str, unit: &str, xs: &[f64], series: &[(&str, &str, Vec<f64>)]) -> String {
    let max_x = xs.iter().cloned().fold(1.0, f64::max);
    let max_y = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().cloned())
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |v: f64| PAD + v / max_x * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD + -(v / max_y) * (H - 2.0 * PAD);
    let mut svg = format!(
        r#"<figure><figcaption>{}</figcaption><svg viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        esc(title),
        esc(title)
    );
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{b}" stroke="#888"/>"##,
        b = H - PAD,
        r = W - PAD
    );
    for i in 0..=4 {
        let v = max_y * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{:.1}</text>"##,
            PAD - 4.0,
            y(v) + 3.0,
            v
        );
    }
    for i in 0..=4 {
        let t = max_x * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{:.0} s</text>"#,
            x(t),
            H - PAD + 16.0,
            t
        );
    }
    let _ = write!(
        svg,
        r#"<text x="4" y="{}" font-size="10">{}</text>"#,
        PAD - 10.0,
        esc(unit)
    );
    for (i, (name, color, values)) in series.iter().enumerate() {
        let pts: Vec<String> = xs
            .iter()
            .zip(values)
            .map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/><text x="{}" y="{}" font-size="11" fill="{color}">{}</text>"#,
            pts.join(" "),
            PAD + 10.0 + 80.0 * i as f64,
            PAD - 10.0,
            esc(name)
        );
    }
    svg + "</svg></figure>"
}

/// Bars of how many requests fell in each latency bucket (log-spaced).
fn histogram(stats: &Stats) -> String {
    let h = &stats.latency;
    if h.is_empty() {
        return "<p>No latencies were recorded.</p>".into();
    }
    let (lo, hi) = ((h.min().max(1)) as f64, (h.max().max(2)) as f64);
    let n = 40usize;
    let edge = |i: usize| lo * (hi / lo).powf(i as f64 / n as f64);
    let counts: Vec<u64> = (0..n)
        .map(|i| {
            let (a, b) = (edge(i) as u64, edge(i + 1) as u64);
            h.iter_recorded()
                .filter(|v| {
                    let x = v.value_iterated_to();
                    x >= a && (x < b || (i == n - 1 && x <= b))
                })
                .map(|v| u64::from(v.count_at_value()))
                .sum()
        })
        .collect();
    let max = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bw = (W - 2.0 * PAD) / n as f64;
    let mut svg = format!(
        r#"<figure><figcaption>Latency histogram (log buckets, ms)</figcaption><svg viewBox="0 0 {W} {H}" role="img" aria-label="latency histogram">"#
    );
    for (i, c) in counts.iter().enumerate() {
        let bh = *c as f64 / max * (H - 2.0 * PAD);
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#4a7bd0"><title>{:.2}–{:.2} ms: {c}</title></rect>"##,
            PAD + i as f64 * bw,
            H - PAD - bh,
            bw - 1.0,
            bh,
            edge(i) / 1000.0,
            edge(i + 1) / 1000.0
        );
    }
    for i in [0, n / 2, n] {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{:.2}</text>"#,
            PAD + i as f64 * bw,
            H - PAD + 14.0,
            edge(i) / 1000.0
        );
    }
    // The count scale: requests per bucket.
    for (frac, label) in [(0.0, 0.0), (0.5, max / 2.0), (1.0, max)] {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{:.0}</text>"#,
            PAD - 4.0,
            H - PAD - frac * (H - 2.0 * PAD) + 3.0,
            label
        );
    }
    let _ = write!(
        svg,
        r#"<text x="4" y="{}" font-size="10">requests</text>"#,
        PAD - 10.0
    );
    svg + "</svg></figure>"
}

/// The latency and rate charts over the run's timeline.
fn charts(report: &Report) -> (String, String) {
    let xs: Vec<f64> = report.timeline.iter().map(|p| f64::from(p.t)).collect();
    let series = |f: fn(&crate::engine::Point) -> f64| -> Vec<f64> {
        report.timeline.iter().map(f).collect()
    };
    let latency = lines(
        "Latency over time",
        "ms",
        &xs,
        &[
            ("p50", "#2a9d8f", series(|p| p.p50_ms)),
            ("p90", "#e9c46a", series(|p| p.p90_ms)),
            ("p99", "#e76f51", series(|p| p.p99_ms)),
        ],
    );
    let rate = lines(
        "Requests and errors a second",
        "req/s",
        &xs,
        &[
            ("requests", "#264653", series(|p| p.requests as f64)),
            ("errors", "#d62828", series(|p| p.errors as f64)),
        ],
    );
    (latency, rate)
}

/// The summary table's rows: the whole run, each scenario, each request name.
fn summary_rows(report: &Report) -> String {
    let mut rows = String::new();
    let mut row = |label: &str, s: &crate::report::Summary| {
        let cells: String = s.cells().iter().map(|c| format!("<td>{c}</td>")).collect();
        let _ = write!(rows, "<tr><td>{}</td>{cells}</tr>", esc(label));
    };
    row("all", &report.summary);
    for (n, s) in &report.scenarios {
        row(&format!("scenario {n}"), s);
    }
    for (n, s) in &report.requests {
        row(n, s);
    }
    rows
}

/// One list item per threshold, passed or failed.
fn verdict_items(report: &Report) -> String {
    report
        .thresholds
        .iter()
        .map(|t| {
            format!(
                "<li class=\"{}\">{} {}: {} (measured {})</li>",
                if t.passed { "ok" } else { "fail" },
                if t.passed { "ok" } else { "FAIL" },
                esc(&t.scope),
                esc(&t.expr),
                esc(&t.measured())
            )
        })
        .collect()
}

/// The whole page.
pub fn render(report: &Report, all: &Stats) -> String {
    let (latency, rate) = charts(report);
    let rows = summary_rows(report);
    let verdicts = verdict_items(report);
    let answers: String = report
        .footer_lines()
        .into_iter()
        .filter(|l| !l.starts_with("thresholds") && !l.starts_with("  "))
        .map(|l| format!("<li>{}</li>", esc(&l)))
        .collect();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gauntlet load report {run}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:820px}}table{{border-collapse:collapse}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}td:first-child,th:first-child{{text-align:left}}.ok{{color:#2a7}}.fail{{color:#c22;font-weight:bold}}figure{{margin:1em 0}}svg{{width:100%;height:auto;background:#fafafa}}</style>
</head><body>
<h1>Load report</h1>
<p>Run {run}, started {started}: {req} requests in {dur:.1} s ({rps:.1} req/s), {model} model.</p>
<table><tr><th></th><th>requests</th><th>req/s</th><th>errors</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>{rows}</table>
<ul>{answers}</ul>
<ul>{verdicts}</ul>
{latency}
{rate}
{hist}
</body></html>
"#,
        run = esc(&report.run_id),
        started = esc(&report.started_at),
        req = report.summary.requests,
        dur = report.duration_s,
        rps = report.summary.rps,
        model = esc(&report.model),
        hist = histogram(all),
    )
}
