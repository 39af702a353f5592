//! What a run found: one [`Outcome`] per activity in the order they ended, the verdict, and
//! its three renderings: the terminal lines, the `--json` report (schema
//! `gauntlet.chaos.report/v1`) and the `--junit` XML that CI systems show.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::Pattern;

/// The report's schema name, bumped on incompatible change.
pub const SCHEMA: &str = "gauntlet.chaos.report/v1";

/// Where in the run an activity ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Before,
    Method,
    After,
    Rollback,
}

impl Phase {
    pub fn key(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::Method => "method",
            Phase::After => "after",
            Phase::Rollback => "rollback",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Phase::Before => "steady state, before",
            Phase::Method => "method",
            Phase::After => "steady state, after",
            Phase::Rollback => "rollbacks",
        }
    }
}

/// How one activity went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub phase: Phase,
    pub name: String,
    /// The activity's `type`.
    pub kind: String,
    /// A probe (measured against a tolerance), not an action.
    pub probe: bool,
    /// A probe of what a caller feels: a control proves its pattern only by failing one.
    #[serde(default)]
    pub evidence: bool,
    pub background: bool,
    /// Probes: the tolerance was met. Actions: it was done.
    pub ok: bool,
    /// The activity could not be carried out at all (the demo did not answer, the
    /// supervisor refused): the run is aborted, which is not the same as a deviation.
    pub error: Option<String>,
    /// What was measured or done, in words.
    pub detail: String,
    /// Seconds since the run started.
    pub at_s: f64,
    pub took_s: f64,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The hypothesis held before, during and after.
    Completed,
    /// A probe's tolerance was not met.
    Deviated,
    /// An activity could not be carried out.
    Aborted,
    /// Stopped by Ctrl-C (rollbacks ran).
    Interrupted,
}

impl Status {
    /// 0 only when the hypothesis held throughout.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Completed => 0,
            Status::Deviated => 1,
            Status::Aborted => 2,
            Status::Interrupted => 130,
        }
    }

    pub fn says(self) -> &'static str {
        match self {
            Status::Completed => "completed: the hypothesis held throughout",
            Status::Deviated => "deviated: a probe's tolerance was not met",
            Status::Aborted => "aborted: an activity could not be carried out",
            Status::Interrupted => "interrupted: stopped by Ctrl-C, rollbacks ran",
        }
    }
}

/// Whether the run was the experiment or its control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The pattern is on: the hypothesis must hold.
    #[default]
    Experiment,
    /// The demo runs without the pattern (its handle says so): the whole method runs, and
    /// the run proves the pattern only if an evidence probe failed.
    Control,
}

/// The `--json` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub title: String,
    pub validates: Pattern,
    #[serde(default)]
    pub mode: Mode,
    /// The experiment file.
    pub experiment: String,
    pub run_id: String,
    pub status: Status,
    /// Milliseconds since the epoch.
    pub started_unix_ms: u64,
    pub elapsed_s: f64,
    /// The trace holding the `chaos.start` and `chaos.stop` markers, when a collector
    /// received them.
    pub marker_trace: Option<String>,
    pub activities: Vec<Outcome>,
}

impl Outcome {
    /// An evidence probe that measured and missed its tolerance (one that could not be
    /// carried out measured nothing).
    pub fn failed_as_evidence(&self) -> bool {
        self.probe && self.evidence && !self.ok && self.error.is_none()
    }
}

/// One line of the terminal report.
pub fn line(o: &Outcome) -> String {
    let mark = match (&o.error, o.ok, o.probe) {
        (Some(_), _, _) => "ERROR",
        (None, true, true) => "ok",
        (None, true, false) => "done",
        (None, false, _) => "FAIL",
    };
    let bg = match (o.background, o.evidence) {
        (true, true) => " (background, evidence)",
        (true, false) => " (background)",
        (false, true) => " (evidence)",
        (false, false) => "",
    };
    let what = o.error.as_deref().unwrap_or(&o.detail);
    format!(
        "  {mark:<5} {:<52} {what}  [{:.1}s]",
        format!("{}{bg}", o.name),
        o.took_s
    )
}

impl Report {
    /// The evidence probes that failed.
    pub fn failed_evidence(&self) -> impl Iterator<Item = &Outcome> {
        self.activities.iter().filter(|o| o.failed_as_evidence())
    }

    /// An experiment: 0 only when the hypothesis held throughout (1 deviated, 2 aborted,
    /// 130 interrupted). A control: 0 when an evidence probe failed (the pattern is
    /// proven), 1 when none did (unproven), 2 and 130 as for an experiment.
    pub fn exit_code(&self) -> u8 {
        match (self.mode, self.status) {
            (Mode::Control, Status::Completed | Status::Deviated) => {
                u8::from(self.failed_evidence().next().is_none())
            }
            (_, status) => status.exit_code(),
        }
    }

    /// The verdict in words.
    pub fn says(&self) -> String {
        if self.mode == Mode::Experiment
            || !matches!(self.status, Status::Completed | Status::Deviated)
        {
            return self.status.says().to_string();
        }
        let failed: Vec<String> = self
            .failed_evidence()
            .map(|o| format!("{:?}", o.name))
            .collect();
        if failed.is_empty() {
            format!(
                "control: unproven: without {} no evidence probe failed, so this run does not show what the pattern is worth",
                self.validates
            )
        } else {
            format!(
                "control: proven: without {} the evidence failed: {}",
                self.validates,
                failed.join(", ")
            )
        }
    }

    /// The whole terminal report.
    pub fn text(&self) -> String {
        let mut out = format!("{} (validates {})\n", self.title, self.validates.name());
        if self.mode == Mode::Control {
            let _ = writeln!(
                out,
                "control run: this demo runs without {}",
                self.validates
            );
        }
        let mut phase = None;
        for o in &self.activities {
            if phase != Some(o.phase) {
                let _ = writeln!(out, "{}:", o.phase.title());
                phase = Some(o.phase);
            }
            let _ = writeln!(out, "{}", line(o));
        }
        let _ = writeln!(
            out,
            "result: {} (exit {}, {:.1}s)",
            self.says(),
            self.exit_code(),
            self.elapsed_s
        );
        out
    }

    /// JUnit XML: the experiment a suite, each probe and action a test case.
    pub fn junit(&self) -> String {
        let failures = self
            .activities
            .iter()
            .filter(|o| !o.ok && o.error.is_none())
            .count();
        let errors = self.activities.iter().filter(|o| o.error.is_some()).count();
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"gauntlet chaos\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
            self.activities.len(),
            self.elapsed_s
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.3}\">",
            xml(&self.title),
            self.activities.len(),
            self.elapsed_s
        );
        for o in &self.activities {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(&format!("{}.{}", self.validates.name(), o.phase.key())),
                xml(&o.name),
                o.took_s
            );
            match (&o.error, o.ok) {
                (Some(e), _) => {
                    let _ = writeln!(
                        x,
                        ">\n      <error message=\"{}\">{}</error>\n    </testcase>",
                        xml(e),
                        xml(e)
                    );
                }
                (None, false) => {
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml(&o.detail),
                        xml(&o.detail)
                    );
                }
                (None, true) => {
                    let _ = writeln!(
                        x,
                        ">\n      <system-out>{}</system-out>\n    </testcase>",
                        xml(&o.detail)
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }
}

/// Text as XML (or HTML) character data or attribute value.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, kind: &str, ok: bool, error: Option<&str>) -> Outcome {
        Outcome {
            phase: Phase::Method,
            name: name.into(),
            kind: kind.into(),
            probe: kind != "add-toxic",
            evidence: false,
            background: false,
            ok,
            error: error.map(str::to_string),
            detail: "p99 612 ms > 500 ms <fail & stop>".into(),
            at_s: 1.0,
            took_s: 2.0,
        }
    }

    #[test]
    fn junit_counts_failures_and_errors_and_escapes_text() {
        let r = Report {
            schema: SCHEMA.into(),
            title: "Payments \"slow\" <3".into(),
            validates: Pattern::CircuitBreaker,
            mode: Mode::Experiment,
            experiment: "e.toml".into(),
            run_id: "r".into(),
            status: Status::Deviated,
            started_unix_ms: 0,
            elapsed_s: 3.0,
            marker_trace: None,
            activities: vec![
                outcome("payments slow", "add-toxic", true, None),
                outcome("orders fast", "load", false, None),
                outcome(
                    "breaker open",
                    "breaker",
                    false,
                    Some("cannot reach orders"),
                ),
            ],
        };
        let x = r.junit();
        assert!(x.contains("tests=\"3\" failures=\"1\" errors=\"1\""), "{x}");
        assert!(x.contains("Payments &quot;slow&quot; &lt;3"), "{x}");
        assert!(x.contains("&lt;fail &amp; stop&gt;"), "{x}");
        assert!(!x.contains("<fail &"), "{x}");
        let t = r.text();
        assert!(t.contains("FAIL  orders fast"), "{t}");
        assert!(t.contains("ERROR breaker open"), "{t}");
        assert!(t.contains("done  payments slow"), "{t}");
        assert!(t.contains("exit 1"), "{t}");
    }
}
