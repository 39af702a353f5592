//! A verification [`Report`] as JUnit XML (one test suite per provider, one test case per
//! interaction, classname = consumer), for CI systems that show test reports. A pending
//! pact's failed interaction is a skipped case: it does not fail the run either.

use std::path::Path;

use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};

use crate::{ContractsError, Report};

pub fn write(report: &Report, path: &Path) -> Result<(), ContractsError> {
    let err = |reason: String| ContractsError::Junit {
        path: path.display().to_string(),
        reason,
    };
    let mut suite = TestSuite::new(format!("contracts of {}", report.provider));
    for o in &report.outcomes {
        let status = if o.passed() {
            TestCaseStatus::success()
        } else if o.pending {
            // A pending pact's failure does not fail the run: shown, not counted against it.
            let mut s = TestCaseStatus::skipped();
            s.set_message(format!("pending pact: {}", o.problems.join("\n")));
            s
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(o.problems.join("\n"));
            s.set_type("contract mismatch");
            s
        };
        let mut case = TestCase::new(o.description.clone(), status);
        case.set_classname(format!("{} -> {}", o.consumer, report.provider));
        case.set_time(o.duration);
        suite.add_test_case(case);
    }
    let mut junit = JunitReport::new("gauntlet contracts verify");
    junit.add_test_suite(suite);
    let xml = junit.to_string().map_err(|e| err(e.to_string()))?;
    std::fs::write(path, xml).map_err(|e| err(e.to_string()))
}
