//! `gauntlet run` as users run it: the repository's suite with `--only circuit-breaker`
//! proves the pattern (its experiment held, its control failed on the evidence this test
//! names) and writes the HTML report (screenshot in Chromium), the JSON and JUnit; a suite
//! whose demo is configured so the breaker never opens and retries make one attempt (its
//! config file, not `--disable`) reads broken for both patterns and exits 1; a bad suite
//! exits 2 with nothing started. One test, run in order: several demos at once on two cores
//! would measure each other.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::BIN;
use gauntlet_chaos::Pattern;
use gauntlet_chaos::proof::Verdict;
use gauntlet_suite::{RunVerdict, SuiteReport};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `gauntlet run SUITE --report DIR --junit DIR/junit.xml [extra]`: exit code, stdout, report.
fn run(suite: &Path, dir: &Path, extra: &[&str]) -> (i32, String, SuiteReport) {
    let o = Command::new(BIN)
        .current_dir(ROOT)
        .arg("run")
        .arg(suite)
        .arg("--report")
        .arg(dir)
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .args(extra)
        .output()
        .expect("gauntlet run");
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let report: SuiteReport = serde_json::from_slice(
        &std::fs::read(dir.join("report.json"))
            .unwrap_or_else(|e| panic!("no report.json ({e}):\n{stdout}")),
    )
    .expect("report.json parses");
    (o.status.code().unwrap_or(-1), stdout, report)
}

#[test]
fn the_suite_proves_a_pattern_and_a_weakened_demo_fails_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    a_bad_suite_starts_nothing(dir.path());
    trace_assertions_judge_a_load_run(dir.path());
    a_running_system_is_used_and_left_running(dir.path());
    one_pattern_is_held_and_proven(dir.path());
    a_weakened_demo_breaks_its_patterns(dir.path());
}

fn a_bad_suite_starts_nothing(dir: &Path) {
    let suite = dir.join("bad.toml");
    std::fs::write(&suite, "title = \"t\"\nexperiments = [\"nope.toml\"]\n").expect("write");
    let o = Command::new(BIN)
        .arg("run")
        .arg(&suite)
        .arg("--report")
        .arg(dir.join("bad"))
        .output()
        .expect("gauntlet run");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("nope.toml"), "{stderr}");
    assert!(!dir.join("bad").exists(), "nothing was started or written");
}

fn one_pattern_is_held_and_proven(dir: &Path) {
    let out = dir.join("proven");
    let (code, stdout, report) = run(
        &PathBuf::from(ROOT).join("gauntlet.toml"),
        &out,
        &["--only", "circuit-breaker"],
    );
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(report.verdict, RunVerdict::Passed, "{stdout}");
    let [row] = report.patterns.as_slice() else {
        panic!("one pattern: {stdout}");
    };
    assert_eq!(row.pattern, Pattern::CircuitBreaker);
    assert_eq!(row.verdict, Verdict::HeldAndProven, "{stdout}");
    let proof = row.proof.as_ref().expect("both runs");
    assert_eq!(
        proof.failed_evidence,
        [
            "payments is spared: at most 5 calls reach it in 3 s",
            "orders fail fast while it is open"
        ],
        "{stdout}"
    );
    assert!(
        stdout.contains("circuit-breaker: its control"),
        "progress: {stdout}"
    );
    let html = std::fs::read_to_string(out.join("index.html")).expect("index.html");
    for needle in [
        "held and proven",
        "orders fail fast while it is open",
        "evidence",
    ] {
        assert!(html.contains(needle), "{needle} not in the report");
    }
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "self-contained"
    );
    let junit = std::fs::read_to_string(out.join("junit.xml")).expect("junit");
    assert!(junit.contains("name=\"circuit-breaker\""), "{junit}");
    screenshot(&out.join("index.html"));
}

/// The report in Debian's Chromium, saved where the UI test saves its screenshots.
fn screenshot(page: &Path) {
    let shots = PathBuf::from(ROOT).join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshots dir");
    let png = shots.join("run-report.png");
    let _ = std::fs::remove_file(&png);
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("Chromium (scripts/test.sh installs Debian's)");
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1100",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium");
    assert!(
        std::fs::metadata(&png).is_ok_and(|m| m.len() > 10_000),
        "no screenshot: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A suite of one short load run and three assertion files: the demo's invariants hold on
/// their trigger's order and on every correlation of the load run; a spec the demo breaks
/// ("payments is never called") fails the run, named in the report.
fn trace_assertions_judge_a_load_run(dir: &Path) {
    let broken = dir.join("never-pays.toml");
    std::fs::write(
        &broken,
        "title = \"Orders never reach payments\"\n[[spec]]\nname = \"payments is never called\"\nwhen = 'span[service.name=\"orders\" name=\"POST /orders\"]'\nselector = 'span[service.name=\"payments\" kind=\"server\"]'\nassert = [\"count = 0\"]\n",
    )
    .expect("write");
    let suite = dir.join("asserts.toml");
    let orders = format!("{ROOT}/demo-system/assertions/orders.toml");
    std::fs::write(
        &suite,
        format!(
            "title = \"Assertions\"\n[contracts]\npacts = \"{ROOT}/contracts/pacts\"\ndrift = false\n[[load]]\nname = \"shoppers\"\nscenario = \"{ROOT}/loadgen/scenarios/demo.toml\"\nduration = \"3s\"\n\
             [[assert]]\nfile = {orders:?}\n[[assert]]\nfile = {orders:?}\nload = \"shoppers\"\n\
             [[assert]]\nfile = {:?}\nload = \"shoppers\"\n",
            broken.display().to_string()
        ),
    )
    .expect("write suite");
    let (code, stdout, report) = run(&suite, &dir.join("asserts"), &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(report.verdict, RunVerdict::Failed, "{stdout}");
    // The contracts went through the run's broker: every provider verified, every
    // pacticipant deployable at the run's version.
    assert!(
        report.contracts.len() >= 4 && report.contracts.iter().all(|c| c.passed),
        "{stdout}"
    );
    let deployable: Vec<&str> = report
        .can_i_deploy
        .iter()
        .filter(|d| d.deployable)
        .map(|d| d.pacticipant.as_str())
        .collect();
    for p in [
        "gateway",
        "orders",
        "inventory",
        "payments",
        "notifications",
    ] {
        assert!(deployable.contains(&p), "{p} deployable: {stdout}");
    }
    assert_eq!(deployable.len(), report.can_i_deploy.len(), "{stdout}");
    let [trigger, window, never] = report.assertions.as_slice() else {
        panic!("three assertion rows: {stdout}");
    };
    assert!(trigger.passed && window.passed, "{stdout}");
    let sets = |row: &gauntlet_suite::report::AssertRow| row.report.as_ref().map_or(0, |r| r.sets);
    assert_eq!(sets(trigger), 1, "{stdout}");
    assert!(
        sets(window) > 10,
        "every correlation of the load run: {stdout}"
    );
    assert!(!never.passed, "{stdout}");
    let spec = &never.report.as_ref().expect("judged").specs[0];
    assert_eq!(spec.failures[0].assertion, "count = 0", "{stdout}");
    assert_eq!(spec.failures[0].actual, "1", "{stdout}");
    assert!(
        report.reason.contains("never-pays.toml did not hold"),
        "{}",
        report.reason
    );
    let html = std::fs::read_to_string(dir.join("asserts/index.html")).expect("index.html");
    assert!(
        html.contains("payments is never called"),
        "the report shows the spec"
    );
    the_system_keeps_the_runs_markers(&dir.join("asserts/system/collector"), &report);
}

/// The system's collector, opened again as the report says: its markers hold the suite's
/// run with its verdict, and the load run it made.
fn the_system_keeps_the_runs_markers(data: &Path, report: &SuiteReport) {
    use gauntlet_collector::{Collector, Config};
    use gauntlet_query_api::client::QueryClient;
    use gauntlet_query_api::markers::{MarkerKind, RUN_STOP, RUN_VERDICT_KEY};
    use gauntlet_query_api::params::MarkersQuery;
    let markers = common::runtime().block_on(async {
        let c = Collector::start(Config::ephemeral(data))
            .await
            .expect("collector");
        let client = QueryClient::new(
            &format!("http://{}", c.addrs.http),
            None,
            std::time::Duration::from_secs(10),
        );
        let m = client
            .markers(&MarkersQuery::default())
            .await
            .expect("markers");
        c.shutdown().await;
        m
    });
    let stop = markers
        .iter()
        .find(|m| m.kind == MarkerKind::Run && m.name == RUN_STOP)
        .unwrap_or_else(|| panic!("no run.stop marker: {markers:?}"));
    assert_eq!(stop.run_id.as_deref(), Some(report.run_id.as_str()));
    assert!(stop.failed, "the run failed");
    assert_eq!(
        stop.attributes
            .get(RUN_VERDICT_KEY)
            .and_then(|v| v.as_str()),
        Some("failed")
    );
    assert!(
        markers.iter().any(|m| m.kind == MarkerKind::Load),
        "the load run's markers: {markers:?}"
    );
}

/// A suite naming a running system and the running control of one of its patterns: the
/// pattern with a control is proven, the one without is unproven (said so), and the system
/// is still running afterwards. A control that runs with its pattern on is refused.
fn a_running_system_is_used_and_left_running(dir: &Path) {
    let on = common::Demo::start(&dir.join("running-on"), &["--chaos"]);
    let off = common::Demo::start(
        &dir.join("running-off"),
        &["--chaos", "--disable", "load-balancing"],
    );
    let (on_handle, off_handle) = (
        dir.join("running-on/demo.json"),
        dir.join("running-off/demo.json"),
    );
    common::wait_for_file(&on_handle, std::time::Duration::from_secs(90));
    common::wait_for_file(&off_handle, std::time::Duration::from_secs(90));
    let exp = |f: &str| format!("{ROOT}/chaos/experiments/{f}");
    let suite = |control: &Path| {
        format!(
            "title = \"A running system\"\nexperiments = [{:?}, {:?}]\n[system]\nhandle = {:?}\ncontrols = {{ load-balancing = {:?} }}\n",
            exp("inventory-balance.toml"),
            exp("inventory-unreachable.toml"),
            on_handle.display().to_string(),
            control.display().to_string()
        )
    };
    let bad = dir.join("running-bad.toml");
    std::fs::write(&bad, suite(&on_handle)).expect("write");
    let o = Command::new(BIN)
        .arg("run")
        .arg(&bad)
        .arg("--report")
        .arg(dir.join("running-bad"))
        .output()
        .expect("gauntlet run");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("runs with load-balancing on"), "{stderr}");

    let good = dir.join("running.toml");
    std::fs::write(&good, suite(&off_handle)).expect("write");
    let (code, stdout, report) = run(&good, &dir.join("running"), &[]);
    assert_eq!(code, 1, "{stdout}");
    let verdict = |p: Pattern| {
        report
            .patterns
            .iter()
            .find(|r| r.pattern == p)
            .unwrap_or_else(|| panic!("no {p} row: {stdout}"))
    };
    assert_eq!(
        verdict(Pattern::LoadBalancing).verdict,
        Verdict::HeldAndProven,
        "{stdout}"
    );
    let fallback = verdict(Pattern::Fallback);
    assert_eq!(fallback.verdict, Verdict::Unproven, "{stdout}");
    assert!(
        fallback.reason.contains("no control system"),
        "{}",
        fallback.reason
    );
    assert!(
        !dir.join("running/system").exists(),
        "nothing was started for the system"
    );
    let handle: gauntlet_demo_system::handle::DemoHandle =
        serde_json::from_slice(&std::fs::read(&on_handle).expect("handle")).expect("parses");
    let live = reqwest::blocking::get(format!("{}/health/live", handle.gateway)).expect("gateway");
    assert!(
        live.status().is_success(),
        "the running system was left running"
    );
    drop((on, off));
}

/// A demo whose breaker can never open (it needs more calls than its window holds) and whose
/// retries make one attempt, through the suite's config file.
fn a_weakened_demo_breaks_its_patterns(dir: &Path) {
    let config = dir.join("weak-demo.toml");
    std::fs::write(
        &config,
        "[orders.circuit_breaker]\nminimum_number_of_calls = 1000000\n[gateway.resilience.circuit_breaker]\nminimum_number_of_calls = 1000000\n[orders.retry]\nmax_attempts = 1\n[gateway.resilience.retry]\nmax_attempts = 1\n",
    )
    .expect("write config");
    let suite = dir.join("weak.toml");
    let exp = |f: &str| format!("{ROOT}/chaos/experiments/{f}");
    std::fs::write(
        &suite,
        format!(
            "title = \"A weakened demo\"\nexperiments = [{:?}, {:?}]\n[system]\nconfig = \"weak-demo.toml\"\n",
            exp("payments-slow.toml"),
            exp("inventory-resets.toml")
        ),
    )
    .expect("write suite");
    let (code, stdout, report) = run(&suite, &dir.join("weak"), &[]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(report.verdict, RunVerdict::Failed);
    for (pattern, evidence) in [
        (Pattern::CircuitBreaker, "orders fail fast while it is open"),
        (Pattern::Retries, "99 % of orders are still confirmed"),
    ] {
        let row = report
            .patterns
            .iter()
            .find(|r| r.pattern == pattern)
            .unwrap_or_else(|| panic!("no {pattern} row: {stdout}"));
        assert_eq!(row.verdict, Verdict::Broken, "{pattern}: {stdout}");
        let failed: Vec<&str> = row
            .proof
            .as_ref()
            .expect("both runs")
            .experiment
            .failed_evidence()
            .map(|o| o.name.as_str())
            .collect();
        assert!(
            failed.contains(&evidence),
            "{pattern}: the experiment failed on {failed:?}, want {evidence:?}: {stdout}"
        );
    }
}
