//! What `gauntlet run` found, as one type (schema `gauntlet.run.report/v1`, written with
//! `--json` and read by the tests): a row per pattern (held and proven, broken, unproven,
//! aborted) with both runs' proof, the contracts, the load runs, the drift, and the verdict;
//! rendered as terminal lines, JUnit, and the HTML page (`html.rs`).

use std::fmt::Write as _;

use gauntlet_chaos::Pattern;
use gauntlet_chaos::proof::{Proof, Verdict};
use gauntlet_loadgen::threshold::Verdict as Threshold;
use serde::{Deserialize, Serialize};

use crate::assertions::AssertReport;

/// The report's schema name, bumped on incompatible change.
pub const SCHEMA: &str = "gauntlet.run.report/v1";

/// The one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunVerdict {
    /// Every pattern held and was proven, every contract verified, every threshold held.
    Passed,
    /// Something did not.
    Failed,
    /// The run could not finish (a system would not start or died, Ctrl-C).
    Aborted,
}

impl RunVerdict {
    pub fn exit_code(self) -> u8 {
        match self {
            RunVerdict::Passed => 0,
            RunVerdict::Failed => 1,
            RunVerdict::Aborted => 2,
        }
    }
}

/// One pattern: its experiment and control, judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternRow {
    pub pattern: Pattern,
    /// The experiment file, as the suite names it.
    pub experiment: String,
    pub verdict: Verdict,
    pub reason: String,
    /// Both runs, every probe paired (absent when a run could not start).
    pub proof: Option<Proof>,
}

/// One provider's verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractRow {
    pub provider: String,
    pub passed: bool,
    pub interactions: usize,
    /// `consumer: description: problem`, for each failed interaction; or why it could not run.
    pub failures: Vec<String>,
}

/// One pacticipant asked `can-i-deploy` at the run's version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRow {
    pub pacticipant: String,
    pub deployable: bool,
    /// The broker's reason.
    pub reason: String,
}

/// One load run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadRow {
    pub name: String,
    pub passed: bool,
    pub requests: u64,
    pub failures: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub thresholds: Vec<Threshold>,
    /// Its own HTML page, beside the report.
    pub html: Option<String>,
    /// Why it could not run, if it could not.
    pub error: Option<String>,
    /// When it ran, milliseconds since the epoch (0 when it did not).
    #[serde(default)]
    pub start_unix_ms: u64,
    #[serde(default)]
    pub end_unix_ms: u64,
}

/// One assertion file, judged on the system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssertRow {
    /// The file, as the suite names it.
    pub file: String,
    /// The load run whose window it checked; none: its trigger request's trace set.
    pub load: Option<String>,
    pub passed: bool,
    pub report: Option<AssertReport>,
    /// Why it could not be checked, if it could not.
    pub error: Option<String>,
}

impl AssertRow {
    /// `held (5 of 5 specs)`, `FAILED (4 of 5 specs): ...`, or why it could not run.
    pub fn summary(&self) -> String {
        match (&self.report, &self.error) {
            (_, Some(e)) => format!("FAILED: {e}"),
            (Some(r), None) => {
                let held = r.specs.iter().filter(|s| s.passed).count();
                let failed: Vec<&str> = r
                    .specs
                    .iter()
                    .filter(|s| !s.passed)
                    .map(|s| s.name.as_str())
                    .collect();
                if failed.is_empty() {
                    format!("held ({held} of {} specs, {} sets)", r.specs.len(), r.sets)
                } else {
                    format!(
                        "FAILED ({held} of {} specs): {}",
                        r.specs.len(),
                        failed.join("; ")
                    )
                }
            }
            (None, None) => "not run".into(),
        }
    }

    /// A JUnit case per spec (one for the file when it could not run).
    fn junit_cases(&self) -> Vec<(&'static str, String, Option<String>)> {
        match (&self.report, &self.error) {
            (Some(r), None) => r
                .specs
                .iter()
                .map(|s| {
                    let failure = (!s.passed)
                        .then(|| format!("{}\n{}", s.tally(), s.failure_lines().join("\n")));
                    ("assertions", format!("{}: {}", self.file, s.name), failure)
                })
                .collect(),
            _ => vec![("assertions", self.file.clone(), Some(self.summary()))],
        }
    }
}

/// Contracts against the calls the run caused: reported, not judged (the demo's own
/// traffic need not exercise every contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    pub traces: usize,
    pub covered: usize,
    /// Calls seen that no contract covers.
    pub uncovered: Vec<String>,
    /// Contracted interactions the run never caused.
    pub unseen: Vec<String>,
    pub error: Option<String>,
}

/// Where the system's telemetry stays after the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectorRow {
    /// The system's collector data directory.
    pub data_dir: String,
    /// The command that serves it again, and the UI address it then has.
    pub reopen: String,
    pub ui: String,
}

/// The `--json` report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuiteReport {
    pub schema: String,
    pub title: String,
    pub suite: String,
    /// The run's ID on its markers (`gauntlet.run_id`), as the collector's runs page lists it.
    #[serde(default)]
    pub run_id: String,
    pub verdict: RunVerdict,
    /// Why, in one sentence.
    pub reason: String,
    pub started_unix_ms: u64,
    pub elapsed_s: f64,
    pub patterns: Vec<PatternRow>,
    pub contracts: Vec<ContractRow>,
    /// `can-i-deploy` for every pacticipant, after the verifications were published.
    #[serde(default)]
    pub can_i_deploy: Vec<DeployRow>,
    pub load: Vec<LoadRow>,
    #[serde(default)]
    pub assertions: Vec<AssertRow>,
    pub drift: Option<DriftRow>,
    /// Parts not run, and why (`--only`).
    pub skipped: Vec<String>,
    pub collector: Option<CollectorRow>,
}

impl SuiteReport {
    /// The verdict and its reason, from the rows (`aborted` is decided by the runner).
    pub fn judge(&mut self, aborted: Option<String>) {
        let mut failed: Vec<String> = Vec::new();
        for p in &self.patterns {
            if p.verdict != Verdict::HeldAndProven {
                failed.push(format!("{} {}", p.pattern, p.verdict.says()));
            }
        }
        for c in self.contracts.iter().filter(|c| !c.passed) {
            failed.push(format!("{}'s contracts failed", c.provider));
        }
        for d in self.can_i_deploy.iter().filter(|d| !d.deployable) {
            failed.push(format!("{} cannot be deployed", d.pacticipant));
        }
        for l in self.load.iter().filter(|l| !l.passed) {
            failed.push(format!("load {:?} breached a threshold", l.name));
        }
        for a in self.assertions.iter().filter(|a| !a.passed) {
            failed.push(format!("assertions {} did not hold", a.file));
        }
        (self.verdict, self.reason) = match (aborted, failed.is_empty()) {
            (Some(why), _) => (RunVerdict::Aborted, why),
            (None, true) => {
                let mut held = vec![format!(
                    "every pattern held and was proven ({})",
                    self.patterns.len()
                )];
                if !self.contracts.is_empty() {
                    held.push(format!(
                        "every contract verified ({} providers)",
                        self.contracts.len()
                    ));
                }
                if !self.can_i_deploy.is_empty() {
                    held.push(format!(
                        "can-i-deploy yes for all {}",
                        self.can_i_deploy.len()
                    ));
                }
                if !self.load.is_empty() {
                    held.push("every load threshold held".into());
                }
                if !self.assertions.is_empty() {
                    held.push("every trace assertion held".into());
                }
                (RunVerdict::Passed, held.join(", "))
            }
            (None, false) => (RunVerdict::Failed, failed.join("; ")),
        };
    }

    /// The terminal summary.
    pub fn text(&self) -> String {
        let mut out = format!("{}: {}\n", self.title, verdict_word(self.verdict));
        for p in &self.patterns {
            let _ = writeln!(
                out,
                "  {:<22} {:<16} {}",
                p.pattern.name(),
                p.verdict.says(),
                p.reason
            );
        }
        for c in &self.contracts {
            let _ = writeln!(
                out,
                "  contracts {:<12} {} ({} interactions)",
                c.provider,
                if c.passed { "verified" } else { "FAILED" },
                c.interactions
            );
        }
        for d in &self.can_i_deploy {
            let _ = writeln!(
                out,
                "  can-i-deploy {:<10} {}: {}",
                d.pacticipant,
                if d.deployable { "yes" } else { "NO" },
                d.reason
            );
        }
        for l in &self.load {
            let _ = writeln!(
                out,
                "  load {:<17} {} ({} requests, p99 {:.0} ms)",
                l.name,
                if l.passed { "held" } else { "BREACHED" },
                l.requests,
                l.p99_ms
            );
        }
        for a in &self.assertions {
            let _ = writeln!(out, "  assert {:<15} {}", a.file, a.summary());
        }
        for s in &self.skipped {
            let _ = writeln!(out, "  skipped: {s}");
        }
        let _ = writeln!(
            out,
            "verdict: {}: {} (exit {}, {:.0}s)",
            verdict_word(self.verdict),
            self.reason,
            self.verdict.exit_code(),
            self.elapsed_s
        );
        out
    }

    /// JUnit XML: a suite per part, a case per pattern, provider and load run.
    pub fn junit(&self) -> String {
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let cases: Vec<(&str, String, Option<String>)> = self
            .patterns
            .iter()
            .map(|p| {
                let failure = (p.verdict != Verdict::HeldAndProven)
                    .then(|| format!("{}: {}", p.verdict.says(), p.reason));
                ("patterns", p.pattern.name().to_string(), failure)
            })
            .chain(self.contracts.iter().map(|c| {
                (
                    "contracts",
                    c.provider.clone(),
                    (!c.passed).then(|| c.failures.join("\n")),
                )
            }))
            .chain(self.load.iter().map(|l| {
                let breached: Vec<String> = l
                    .thresholds
                    .iter()
                    .filter(|t| !t.passed)
                    .map(|t| format!("{} {} (measured {})", t.scope, t.expr, t.measured()))
                    .collect();
                let failure = (!l.passed).then(|| l.error.clone().unwrap_or(breached.join("\n")));
                ("load", l.name.clone(), failure)
            }))
            .chain(self.can_i_deploy.iter().map(|d| {
                (
                    "contracts",
                    format!("can-i-deploy {}", d.pacticipant),
                    (!d.deployable).then(|| d.reason.clone()),
                )
            }))
            .chain(self.assertions.iter().flat_map(AssertRow::junit_cases))
            .collect();
        let failures = cases.iter().filter(|c| c.2.is_some()).count();
        let _ = writeln!(
            x,
            "<testsuites name=\"gauntlet run\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
            cases.len(),
            self.elapsed_s
        );
        for part in ["patterns", "contracts", "load", "assertions"] {
            let mine: Vec<_> = cases.iter().filter(|c| c.0 == part).collect();
            if mine.is_empty() {
                continue;
            }
            let f = mine.iter().filter(|c| c.2.is_some()).count();
            let _ = writeln!(
                x,
                "  <testsuite name=\"{part}\" tests=\"{}\" failures=\"{f}\">",
                mine.len()
            );
            for (_, name, failure) in mine {
                let name = esc(name);
                match failure {
                    None => {
                        let _ =
                            writeln!(x, "    <testcase classname=\"{part}\" name=\"{name}\" />");
                    }
                    Some(why) => {
                        let why = esc(why);
                        let _ = writeln!(
                            x,
                            "    <testcase classname=\"{part}\" name=\"{name}\">\n      <failure message=\"{why}\">{why}</failure>\n    </testcase>"
                        );
                    }
                }
            }
            x.push_str("  </testsuite>\n");
        }
        x.push_str("</testsuites>\n");
        x
    }
}

pub(crate) fn verdict_word(v: RunVerdict) -> &'static str {
    match v {
        RunVerdict::Passed => "passed",
        RunVerdict::Failed => "failed",
        RunVerdict::Aborted => "aborted",
    }
}

/// Text as XML or HTML character data and attribute values.
pub(crate) use gauntlet_chaos::report::xml as esc;

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SuiteReport {
        SuiteReport {
            schema: SCHEMA.into(),
            title: "t".into(),
            suite: "gauntlet.toml".into(),
            run_id: "suite-1".into(),
            verdict: RunVerdict::Passed,
            reason: String::new(),
            started_unix_ms: 0,
            elapsed_s: 1.0,
            patterns: vec![PatternRow {
                pattern: Pattern::CircuitBreaker,
                experiment: "e.toml".into(),
                verdict: Verdict::HeldAndProven,
                reason: "ok".into(),
                proof: None,
            }],
            contracts: vec![ContractRow {
                provider: "orders".into(),
                passed: true,
                interactions: 3,
                failures: vec![],
            }],
            can_i_deploy: vec![DeployRow {
                pacticipant: "gateway".into(),
                deployable: true,
                reason: "All required verification results are published and successful".into(),
            }],
            load: vec![],
            assertions: vec![],
            drift: None,
            skipped: vec![],
            collector: None,
        }
    }

    #[test]
    fn one_unproven_pattern_or_failed_contract_fails_the_run() {
        let mut r = report();
        r.judge(None);
        assert_eq!(r.verdict, RunVerdict::Passed, "{}", r.reason);
        r.patterns[0].verdict = Verdict::Unproven;
        r.judge(None);
        assert_eq!(r.verdict, RunVerdict::Failed);
        assert!(
            r.reason.contains("circuit-breaker unproven"),
            "{}",
            r.reason
        );
        let x = r.junit();
        assert!(x.contains("tests=\"3\" failures=\"1\""), "{x}");
        let mut r = report();
        r.contracts[0].passed = false;
        r.judge(None);
        assert!(
            r.reason.contains("orders's contracts failed") || r.reason.contains("orders'"),
            "{}",
            r.reason
        );
        let mut r = report();
        r.can_i_deploy[0].deployable = false;
        r.judge(None);
        assert_eq!(r.verdict, RunVerdict::Failed);
        assert!(
            r.reason.contains("gateway cannot be deployed"),
            "{}",
            r.reason
        );
        r.judge(Some("the system did not start".into()));
        assert_eq!(r.verdict.exit_code(), 2);
    }
}
