//! The run's report: the JSON written by `--out` (schema `gauntlet.load.report/v1`,
//! documented in loadgen/REPORT.md; fields are only ever added), and the summary table
//! printed at the end.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::engine::{Point, RunResult};
use crate::metrics::Stats;
use crate::threshold::Verdict;

pub const SCHEMA: &str = "gauntlet.load.report/v1";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub schema: String,
    pub run_id: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_s: f64,
    /// `open`, `closed` or `mixed`.
    pub model: String,
    /// The open-model scenarios' intended rate, summed (requests or iterations a second).
    pub target_rps: Option<f64>,
    /// Stopped early (Ctrl-C): the figures cover what ran.
    pub interrupted: bool,
    pub summary: Summary,
    pub scenarios: BTreeMap<String, Summary>,
    pub requests: BTreeMap<String, Summary>,
    pub thresholds: Vec<Verdict>,
    pub timeline: Vec<Point>,
    /// With `--otlp`: the trace holding the run's start, stop and threshold markers.
    pub marker_trace_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub requests: u64,
    pub rps: f64,
    /// Requests that failed: no answer, or a status not expected (by default ≥ 400).
    pub errors: u64,
    pub error_rate: f64,
    /// Status code → count.
    pub status_codes: BTreeMap<String, u64>,
    /// `connect`, `timeout`, `reset`, `protocol`, `template` → count.
    pub errors_by_kind: BTreeMap<String, u64>,
    pub checks: Checks,
    /// Approximate wire bytes (headers and bodies).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Open model: sends more than 2 ms (the timer's granularity) behind their intended
    /// time, and the worst delay.
    pub late_sends: u64,
    pub max_send_delay_ms: f64,
    /// From the intended send time in the open model, from the actual one in the closed.
    pub latency_ms: Latency,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Checks {
    pub passed: u64,
    pub failed: u64,
    /// Passed share (1 when there were none).
    pub rate: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub min: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
    pub stdev: f64,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Summary {
    /// The table's columns: requests, req/s, error %, p50, p90, p99, p99.9, max (ms).
    pub fn cells(&self) -> [String; 8] {
        let l = &self.latency_ms;
        [
            self.requests.to_string(),
            format!("{:.1}", self.rps),
            format!("{:.2}%", self.error_rate * 100.0),
            format!("{:.2}", l.p50),
            format!("{:.2}", l.p90),
            format!("{:.2}", l.p99),
            format!("{:.2}", l.p99_9),
            format!("{:.2}", l.max),
        ]
    }

    pub fn of(s: &Stats, secs: f64) -> Self {
        Self {
            requests: s.requests,
            rps: round3(if secs > 0.0 {
                s.requests as f64 / secs
            } else {
                0.0
            }),
            errors: s.failures,
            error_rate: s.error_rate(),
            status_codes: s.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            errors_by_kind: s
                .errors
                .iter()
                .map(|(k, v)| (format!("{k:?}").to_lowercase(), *v))
                .collect(),
            checks: Checks {
                passed: s.checks_passed,
                failed: s.checks_failed,
                rate: s.check_rate(),
            },
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            late_sends: s.late_sends,
            max_send_delay_ms: round3(s.max_send_delay_us as f64 / 1000.0),
            latency_ms: Latency {
                min: round3(s.min_ms()),
                p50: round3(s.quantile_ms(0.5)),
                p90: round3(s.quantile_ms(0.9)),
                p95: round3(s.quantile_ms(0.95)),
                p99: round3(s.quantile_ms(0.99)),
                p99_9: round3(s.quantile_ms(0.999)),
                max: round3(s.max_ms()),
                mean: round3(s.mean_ms()),
                stdev: round3(s.stdev_ms()),
            },
        }
    }
}

impl Report {
    pub fn of(r: &RunResult) -> Self {
        let secs = r.elapsed.as_secs_f64();
        Self {
            schema: SCHEMA.into(),
            run_id: r.run_id.clone(),
            started_at: humantime::format_rfc3339_millis(r.started).to_string(),
            duration_s: round3(secs),
            model: r.model.into(),
            target_rps: r.target_rps.map(round3),
            interrupted: r.interrupted,
            summary: Summary::of(&r.all, secs),
            scenarios: r
                .scenarios
                .iter()
                .map(|(n, s)| (n.clone(), Summary::of(s, secs)))
                .collect(),
            requests: r
                .names
                .iter()
                .zip(&r.by_name)
                .map(|(n, s)| (n.clone(), Summary::of(s, secs)))
                .collect(),
            thresholds: r.verdicts.clone(),
            timeline: r.timeline.clone(),
            marker_trace_id: r.marker_trace.clone(),
        }
    }

    /// The table printed when the run ends.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let target = self
            .target_rps
            .map(|t| format!("; target {t:.1} iterations/s"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} requests in {:.1} s ({:.1} req/s{target}), {} model{}",
            self.summary.requests,
            self.duration_s,
            self.summary.rps,
            self.model,
            if self.interrupted {
                ", stopped early"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "{:<36} {:>9} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "requests", "req/s", "errors", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        let mut row = |label: String, s: &Summary| {
            let label: String = label.chars().take(36).collect();
            let cells: Vec<String> = s.cells().iter().map(|c| format!("{c:>9}")).collect();
            let _ = writeln!(out, "{label:<36} {}", cells.join(" "));
        };
        row("all".into(), &self.summary);
        if self.scenarios.len() > 1 {
            for (n, s) in &self.scenarios {
                row(format!("scenario {n}"), s);
            }
        }
        if self.requests.len() > 1 {
            for (n, s) in &self.requests {
                row(format!("  {n}"), s);
            }
        }
        self.footer(&mut out);
        out
    }

    /// Status codes, errors without an answer, checks, late sends and thresholds.
    fn footer(&self, out: &mut String) {
        for line in self.footer_lines() {
            let _ = writeln!(out, "{line}");
        }
    }

    /// The footer's lines: what the terminal prints under the table and the HTML report
    /// lists, so neither leaves anything out.
    pub fn footer_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let codes: Vec<String> = self
            .summary
            .status_codes
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        lines.push(format!(
            "status: {}",
            if codes.is_empty() {
                "none".into()
            } else {
                codes.join(", ")
            }
        ));
        if !self.summary.errors_by_kind.is_empty() {
            let kinds: Vec<String> = self
                .summary
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect();
            lines.push(format!("errors without an answer: {}", kinds.join(", ")));
        }
        let c = &self.summary.checks;
        if c.passed + c.failed > 0 {
            lines.push(format!(
                "checks: {} passed, {} failed ({:.2}%)",
                c.passed,
                c.failed,
                c.rate * 100.0
            ));
        }
        if self.model != "closed" {
            lines.push(format!(
                "late sends: {} (over 2 ms behind schedule; worst {:.1} ms; latency counts from the intended time)",
                self.summary.late_sends, self.summary.max_send_delay_ms
            ));
        }
        if !self.thresholds.is_empty() {
            lines.push("thresholds:".into());
            for t in &self.thresholds {
                lines.push(format!(
                    "  {} {}: {} (measured {})",
                    if t.passed { "ok  " } else { "FAIL" },
                    t.scope,
                    t.expr,
                    t.measured()
                ));
            }
        }
        lines
    }
}
