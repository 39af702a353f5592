//! Whether an experiment proves its pattern: the experiment's run (the pattern on) must
//! hold, and its control's run (the pattern off) must fail on an *evidence* probe, one that
//! measures what a caller feels. A control that fails only on what the mechanism reports of
//! itself (a breaker's state, a span event it writes), or not at all, leaves the pattern
//! unproven. [`Proof`] holds both reports and the verdict; its text shows every probe of
//! both runs side by side.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::Pattern;
use crate::report::{Mode, Outcome, Phase, Report, Status, xml};

/// The proof's schema name, bumped on incompatible change.
pub const SCHEMA: &str = "gauntlet.chaos.proof/v1";

/// What the two runs show about the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The experiment held, and without the pattern an evidence probe failed.
    HeldAndProven,
    /// The experiment did not hold: with the pattern on, a probe missed its tolerance.
    Broken,
    /// The experiment held, but without the pattern no evidence probe failed: the runs do
    /// not show what the pattern is worth.
    Unproven,
    /// A run could not be carried out (an action failed) or was interrupted.
    Aborted,
}

impl Verdict {
    pub fn says(self) -> &'static str {
        match self {
            Verdict::HeldAndProven => "held and proven",
            Verdict::Broken => "broken",
            Verdict::Unproven => "unproven",
            Verdict::Aborted => "aborted",
        }
    }

    /// 0 only when held and proven; 2 when aborted.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::HeldAndProven => 0,
            Verdict::Broken | Verdict::Unproven => 1,
            Verdict::Aborted => 2,
        }
    }
}

/// One probe in both runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub phase: Phase,
    pub name: String,
    pub evidence: bool,
    /// How it went with the pattern on (absent if that run ended before it).
    pub experiment: Option<Outcome>,
    /// And without it.
    pub control: Option<Outcome>,
}

/// The experiment's run, its control's, and what they show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proof {
    pub schema: String,
    pub pattern: Pattern,
    pub title: String,
    pub verdict: Verdict,
    /// Why, in one sentence.
    pub reason: String,
    /// The evidence probes that failed in the control.
    pub failed_evidence: Vec<String>,
    pub rows: Vec<Row>,
    pub experiment: Report,
    pub control: Report,
}

/// Judges an experiment's run against its control's.
pub fn judge(experiment: Report, control: Report) -> Proof {
    let failed_evidence: Vec<String> = control.failed_evidence().map(|o| o.name.clone()).collect();
    let (verdict, reason) = verdict(&experiment, &control, &failed_evidence);
    Proof {
        schema: SCHEMA.into(),
        pattern: experiment.validates,
        title: experiment.title.clone(),
        verdict,
        reason,
        failed_evidence,
        rows: rows(&experiment, &control),
        experiment,
        control,
    }
}

fn verdict(experiment: &Report, control: &Report, failed: &[String]) -> (Verdict, String) {
    let pattern = experiment.validates;
    let unfinished = |r: &Report| matches!(r.status, Status::Aborted | Status::Interrupted);
    if unfinished(experiment) || unfinished(control) {
        let which = if unfinished(experiment) {
            "the experiment"
        } else {
            "the control"
        };
        return (
            Verdict::Aborted,
            format!("{which} could not be carried out to the end"),
        );
    }
    if control.mode != Mode::Control {
        return (
            Verdict::Aborted,
            format!("the control ran against a demo with {pattern} on"),
        );
    }
    if experiment.status != Status::Completed {
        let missed: Vec<String> = experiment
            .activities
            .iter()
            .filter(|o| o.probe && !o.ok)
            .map(|o| format!("{:?}", o.name))
            .collect();
        return (
            Verdict::Broken,
            format!("with {pattern} on, {} failed", missed.join(", ")),
        );
    }
    if failed.is_empty() {
        let others: Vec<String> = control
            .activities
            .iter()
            .filter(|o| o.probe && !o.ok)
            .map(|o| format!("{:?}", o.name))
            .collect();
        let only = if others.is_empty() {
            "nothing failed".to_string()
        } else {
            format!(
                "only probes that are not evidence failed ({})",
                others.join(", ")
            )
        };
        return (
            Verdict::Unproven,
            format!("without {pattern} {only}: the runs do not show what it is worth"),
        );
    }
    (
        Verdict::HeldAndProven,
        format!(
            "it held with {pattern}, and without it the evidence failed: {}",
            failed
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// Every probe of either run, in the experiment's order (the control's extra ones after),
/// each paired with its namesake in the other run.
fn rows(experiment: &Report, control: &Report) -> Vec<Row> {
    let probes =
        |r: &Report| -> Vec<Outcome> { r.activities.iter().filter(|o| o.probe).cloned().collect() };
    let mut theirs = probes(control);
    let mut out = Vec::new();
    for o in probes(experiment) {
        let twin = theirs
            .iter()
            .position(|c| c.phase == o.phase && c.name == o.name)
            .map(|i| theirs.remove(i));
        out.push(Row {
            phase: o.phase,
            name: o.name.clone(),
            evidence: o.evidence,
            experiment: Some(o),
            control: twin,
        });
    }
    out.extend(theirs.into_iter().map(|c| Row {
        phase: c.phase,
        name: c.name.clone(),
        evidence: c.evidence,
        experiment: None,
        control: Some(c),
    }));
    out
}

impl Proof {
    /// The terminal rendering: the verdict, then each probe with both runs' figures.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{}: {}\n  {}\n",
            self.pattern,
            self.verdict.says(),
            self.title
        );
        for r in &self.rows {
            let tag = if r.evidence { " [evidence]" } else { "" };
            let _ = writeln!(out, "  {} / {}{tag}", r.phase.title(), r.name);
            for (label, o) in [("with   ", &r.experiment), ("without", &r.control)] {
                let _ = writeln!(out, "      {label} {}", figure(o.as_ref()));
            }
        }
        let _ = writeln!(
            out,
            "verdict: {}: {} (exit {})",
            self.verdict.says(),
            self.reason,
            self.verdict.exit_code()
        );
        out
    }
}

impl Proof {
    /// JUnit XML: the pattern a suite of two cases, "held" (the experiment) and "proven"
    /// (the control failed on evidence).
    pub fn junit(&self) -> String {
        let held = self.experiment.status == Status::Completed;
        let proven = !self.failed_evidence.is_empty() && self.control.mode == Mode::Control;
        let cases = [
            ("held with the pattern on", held, self.experiment.elapsed_s),
            ("proven by its control", proven, self.control.elapsed_s),
        ];
        let failures = cases.iter().filter(|c| !c.1).count();
        let name = xml(self.pattern.name());
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites name=\"gauntlet chaos prove\" tests=\"2\" failures=\"{failures}\">"
        );
        let _ = writeln!(
            x,
            "  <testsuite name=\"{name}\" tests=\"2\" failures=\"{failures}\">"
        );
        for (case, ok, time) in cases {
            let _ = write!(
                x,
                "    <testcase classname=\"{name}\" name=\"{case}\" time=\"{time:.3}\""
            );
            if ok {
                let _ = writeln!(x, " />");
            } else {
                let reason = xml(&self.reason);
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{reason}\">{reason}</failure>\n    </testcase>"
                );
            }
        }
        x.push_str("  </testsuite>\n</testsuites>\n");
        x
    }
}

/// One run's result for a probe, in words.
fn figure(o: Option<&Outcome>) -> String {
    match o {
        None => "—     (not reached)".into(),
        Some(o) => {
            let mark = match (&o.error, o.ok) {
                (Some(_), _) => "ERROR",
                (None, true) => "ok",
                (None, false) => "FAIL",
            };
            format!("{mark:<5} {}", o.error.as_deref().unwrap_or(&o.detail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::SCHEMA as REPORT_SCHEMA;

    fn probe(name: &str, evidence: bool, ok: bool) -> Outcome {
        Outcome {
            phase: Phase::Method,
            name: name.into(),
            kind: "load".into(),
            probe: true,
            evidence,
            background: false,
            ok,
            error: None,
            detail: format!("{name} measured"),
            at_s: 0.0,
            took_s: 1.0,
        }
    }

    fn report(mode: Mode, activities: Vec<Outcome>) -> Report {
        let status = if activities.iter().all(|o| o.ok) {
            Status::Completed
        } else {
            Status::Deviated
        };
        Report {
            schema: REPORT_SCHEMA.into(),
            title: "t".into(),
            validates: Pattern::CircuitBreaker,
            mode,
            experiment: "e.toml".into(),
            run_id: "r".into(),
            status,
            started_unix_ms: 0,
            elapsed_s: 1.0,
            marker_trace: None,
            activities,
        }
    }

    fn held() -> Report {
        report(
            Mode::Experiment,
            vec![probe("fast", true, true), probe("opens", false, true)],
        )
    }

    #[test]
    fn a_control_proves_only_by_failing_evidence() {
        let proven = judge(
            held(),
            report(
                Mode::Control,
                vec![probe("fast", true, false), probe("opens", false, false)],
            ),
        );
        assert_eq!(proven.verdict, Verdict::HeldAndProven, "{}", proven.text());
        assert_eq!(proven.failed_evidence, ["fast"]);
        assert_eq!(proven.control.exit_code(), 0);

        // The mechanism's own report failing is not evidence.
        let unproven = judge(
            held(),
            report(
                Mode::Control,
                vec![probe("fast", true, true), probe("opens", false, false)],
            ),
        );
        assert_eq!(unproven.verdict, Verdict::Unproven);
        assert!(unproven.reason.contains("\"opens\""), "{}", unproven.reason);
        assert_eq!(unproven.control.exit_code(), 1);
        assert_eq!(unproven.verdict.exit_code(), 1);
    }

    #[test]
    fn an_experiment_that_did_not_hold_is_broken_and_a_wrong_control_aborts() {
        let broken = judge(
            report(Mode::Experiment, vec![probe("fast", true, false)]),
            report(Mode::Control, vec![probe("fast", true, false)]),
        );
        assert_eq!(broken.verdict, Verdict::Broken);
        assert!(broken.reason.contains("\"fast\""), "{}", broken.reason);
        let not_a_control = judge(
            held(),
            report(Mode::Experiment, vec![probe("fast", true, false)]),
        );
        assert_eq!(not_a_control.verdict, Verdict::Aborted);
    }

    #[test]
    fn rows_pair_each_probe_with_its_namesake() {
        let p = judge(
            held(),
            report(
                Mode::Control,
                vec![probe("opens", false, false), probe("extra", false, true)],
            ),
        );
        let names: Vec<(&str, bool, bool)> = p
            .rows
            .iter()
            .map(|r| (r.name.as_str(), r.experiment.is_some(), r.control.is_some()))
            .collect();
        assert_eq!(
            names,
            [
                ("fast", true, false),
                ("opens", true, true),
                ("extra", false, true)
            ]
        );
        let t = p.text();
        assert!(t.contains("fast [evidence]"), "{t}");
        assert!(t.contains("without —     (not reached)"), "{t}");
        assert!(t.contains("without FAIL  opens measured"), "{t}");
    }
}
