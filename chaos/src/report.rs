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

/// The `--json` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub title: String,
    pub validates: Pattern,
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

/// One line of the terminal report.
pub fn line(o: &Outcome) -> String {
    let mark = match (&o.error, o.ok, o.probe) {
        (Some(_), _, _) => "ERROR",
        (None, true, true) => "ok",
        (None, true, false) => "done",
        (None, false, _) => "FAIL",
    };
    let bg = if o.background { " (background)" } else { "" };
    let what = o.error.as_deref().unwrap_or(&o.detail);
    format!(
        "  {mark:<5} {:<52} {what}  [{:.1}s]",
        format!("{}{bg}", o.name),
        o.took_s
    )
}

impl Report {
    /// The whole terminal report.
    pub fn text(&self) -> String {
        let mut out = format!("{} (validates {})\n", self.title, self.validates.name());
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
            self.status.says(),
            self.status.exit_code(),
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

/// Text as XML character data or attribute value.
fn xml(s: &str) -> String {
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
