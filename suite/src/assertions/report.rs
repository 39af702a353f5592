//! The specs judged on the trace sets, and the answer: for each spec, how many sets it
//! applied to and passed, and for the first failures the set, the assertion, the span and
//! the value it had. Printed for a terminal, written as JSON (schema
//! `gauntlet.assert.report/v1`) and as JUnit (a case per spec).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::file::{Assertions, Spec};
use super::gather::{Gathered, Unit};

pub const SCHEMA: &str = "gauntlet.assert.report/v1";
/// Failures kept per spec: enough to see the pattern, not a wall.
const FAILURES_KEPT: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertReport {
    pub schema: String,
    pub title: String,
    pub file: String,
    /// The request sent, or the IDs or window read.
    pub trigger: String,
    /// The trigger request's correlation ID (its trace set's, in the collector's UI).
    pub correlation_id: Option<String>,
    /// The trigger request's trace ID.
    pub trace_id: Option<String>,
    /// How many trace sets were read (correlation IDs or traces).
    pub sets: usize,
    /// Every set went quiet before the time limit.
    pub complete: bool,
    pub specs: Vec<SpecResult>,
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecResult {
    pub name: String,
    pub selector: String,
    pub when: Option<String>,
    pub assertions: Vec<String>,
    /// The share of sets that must pass, 0–1.
    pub share: f64,
    /// Sets it applied to: its `when` chose a span (or it has none), and its selector chose
    /// a span (or it asserts a count).
    pub applicable: usize,
    pub passed_sets: usize,
    pub passed: bool,
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// `correlation …` or `trace …`.
    pub set: String,
    pub assertion: String,
    /// What was measured.
    pub actual: String,
    pub span: Option<SpanRef>,
}

/// The span an assertion failed on, enough to open it in the collector's UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanRef {
    pub trace_id: String,
    pub span_id: String,
    pub service: String,
    pub name: String,
}

/// Judges every spec on every set.
pub fn judge(a: &Assertions, gathered: &Gathered) -> AssertReport {
    let specs: Vec<SpecResult> = a
        .specs
        .iter()
        .map(|s| judge_spec(s, &gathered.units))
        .collect();
    AssertReport {
        schema: SCHEMA.into(),
        title: a.title.clone(),
        file: a.path.display().to_string(),
        trigger: gathered.trigger.clone(),
        correlation_id: gathered.correlation_id.clone(),
        trace_id: gathered.trace_id.clone(),
        sets: gathered.units.len(),
        complete: gathered.complete,
        passed: specs.iter().all(|s| s.passed),
        specs,
    }
}

fn judge_spec(spec: &Spec, units: &[Unit]) -> SpecResult {
    let (mut applicable, mut passed_sets, mut failures) = (0, 0, Vec::new());
    for unit in units {
        if let Some(when) = &spec.when
            && when.select(&unit.spans).is_empty()
        {
            continue;
        }
        let chosen = spec.selector.select(&unit.spans);
        // Assertions about each chosen span say nothing about a set where none was chosen;
        // `count` assertions always do.
        if chosen.is_empty() && spec.checks.iter().all(|c| c.per_span()) {
            continue;
        }
        applicable += 1;
        let miss = spec
            .checks
            .iter()
            .find_map(|c| c.first_miss(&unit.spans, &chosen).map(|m| (c, m)));
        match miss {
            None => passed_sets += 1,
            Some((check, miss)) if failures.len() < FAILURES_KEPT => failures.push(Failure {
                set: unit.label.clone(),
                assertion: check.to_string(),
                actual: miss.actual,
                span: miss.span.map(|i| {
                    let n = unit.spans.node(i);
                    SpanRef {
                        trace_id: n.span.trace_id.clone(),
                        span_id: n.span.span_id.clone(),
                        service: n.service.clone(),
                        name: n.span.operation_name.clone(),
                    }
                }),
            }),
            Some(_) => {}
        }
    }
    // A spec that applied to nothing checked nothing: that is not a pass.
    let passed = applicable > 0 && passed_sets as f64 >= spec.share * applicable as f64 - 1e-9;
    SpecResult {
        name: spec.name.clone(),
        selector: spec.selector.to_string(),
        when: spec.when.as_ref().map(ToString::to_string),
        assertions: spec.checks.iter().map(ToString::to_string).collect(),
        share: spec.share,
        applicable,
        passed_sets,
        passed,
        failures,
    }
}

impl SpecResult {
    /// `3/3 sets` or `297/300 sets (99%: 99.0%)`.
    pub fn tally(&self) -> String {
        let mut t = format!("{}/{} sets", self.passed_sets, self.applicable);
        if self.share < 1.0 && self.applicable > 0 {
            let _ = write!(
                t,
                " ({:.1}% passed, {}% needed)",
                100.0 * self.passed_sets as f64 / self.applicable as f64,
                self.share * 100.0
            );
        }
        if self.applicable == 0 {
            t.push_str(": it applied to none, so nothing was checked");
        }
        t
    }

    pub fn failure_lines(&self) -> Vec<String> {
        self.failures
            .iter()
            .map(|f| {
                let at = f.span.as_ref().map_or(String::new(), |s| {
                    format!(
                        " on {} {:?} (trace {} span {})",
                        s.service, s.name, s.trace_id, s.span_id
                    )
                });
                format!("{}: `{}` was {}{at}", f.set, f.assertion, f.actual)
            })
            .collect()
    }
}

impl AssertReport {
    /// For a terminal.
    pub fn text(&self) -> String {
        let mut out = format!(
            "{} ({})\ntrigger: {}\n",
            self.title, self.file, self.trigger
        );
        if !self.complete {
            out.push_str("warning: not every trace set went quiet before the time limit; spans may be missing\n");
        }
        for s in &self.specs {
            let mark = if s.passed { "PASS" } else { "FAIL" };
            let _ = writeln!(out, "  {mark} {}: {}", s.name, s.tally());
            for line in s.failure_lines() {
                let _ = writeln!(out, "       {line}");
            }
        }
        let failed = self.specs.iter().filter(|s| !s.passed).count();
        let _ = writeln!(
            out,
            "{}: {} of {} specs held",
            if self.passed { "passed" } else { "failed" },
            self.specs.len() - failed,
            self.specs.len()
        );
        out
    }

    /// JUnit XML: one test suite, a case per spec.
    pub fn junit(&self) -> String {
        let mut suite = quick_junit::TestSuite::new(self.title.clone());
        for s in &self.specs {
            let mut case = quick_junit::TestCase::new(
                s.name.clone(),
                if s.passed {
                    quick_junit::TestCaseStatus::success()
                } else {
                    let mut st = quick_junit::TestCaseStatus::non_success(
                        quick_junit::NonSuccessKind::Failure,
                    );
                    st.set_message(s.tally());
                    st.set_description(s.failure_lines().join("\n"));
                    st
                },
            );
            case.set_classname(self.file.clone());
            suite.add_test_case(case);
        }
        let mut report = quick_junit::Report::new("gauntlet assert");
        report.add_test_suite(suite);
        report.to_string().unwrap_or_default()
    }
}
