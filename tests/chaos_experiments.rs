//! The bundled chaos experiments against real demos: each holds against `gauntlet demo
//! --chaos` (exit 0, reports written, markers in the collector), each fails (exit 1) against
//! a demo started with `--disable <the pattern it validates>`, and Ctrl-C in the middle of
//! one still runs its rollbacks. One test, run in order: the experiments measure latency
//! and timing, and several demos at once on two cores would measure each other.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Demo, wait_for_file};
use gauntlet_chaos::{Report, Status};
use gauntlet_demo_system::handle::DemoHandle;

fn experiment(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("chaos/experiments")
        .join(name)
}

const EXPERIMENTS: [(&str, &str); 4] = [
    ("payments-slow.toml", "circuit-breaker"),
    ("inventory-resets.toml", "retries"),
    ("inventory-instance-killed.toml", "health-checks"),
    ("notifications-down.toml", "outbox"),
];

/// `gauntlet chaos run EXPERIMENT --demo DEMO --json J --junit X`: exit code, stdout, and the
/// JSON report.
fn run(exp: &Path, demo: &Path, out: &Path) -> (i32, String, Report) {
    let json = out.with_extension("json");
    let junit = out.with_extension("xml");
    let o = Command::new(BIN)
        .args(["chaos", "run"])
        .arg(exp)
        .arg("--demo")
        .arg(demo)
        .arg("--json")
        .arg(&json)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("gauntlet chaos run");
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let report: Report = serde_json::from_slice(
        &std::fs::read(&json).unwrap_or_else(|e| panic!("no --json report ({e}):\n{stdout}")),
    )
    .expect("the report parses");
    let xml = std::fs::read_to_string(&junit).expect("--junit report");
    assert!(
        xml.contains("<testsuite ") && xml.matches("<testcase ").count() == report.activities.len(),
        "{xml}"
    );
    (o.status.code().unwrap_or(-1), stdout, report)
}

fn demo(dir: &Path, name: &str, extra: &[&str]) -> (Demo, PathBuf) {
    let data = dir.join(name);
    let mut args = vec!["--chaos"];
    args.extend_from_slice(extra);
    let d = Demo::start(&data, &args);
    let handle = data.join("demo.json");
    wait_for_file(&handle, Duration::from_secs(90));
    (d, handle)
}

#[test]
fn the_bundled_experiments_hold_with_their_pattern_and_fail_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut problems = Vec::new();

    // With every pattern on, every experiment holds.
    let (mut on, handle_path) = demo(dir.path(), "on", &[]);
    let handle = DemoHandle::load(&handle_path).expect("demo.json");

    ctrl_c_runs_the_rollbacks(&handle_path, &handle);

    for (file, pattern) in EXPERIMENTS {
        let (code, stdout, report) = run(
            &experiment(file),
            &handle_path,
            &dir.path().join(format!("on-{pattern}")),
        );
        eprintln!("{stdout}");
        if code != 0 || report.status != Status::Completed {
            problems.push(format!("{file} did not hold (exit {code}):\n{stdout}"));
        }
        assert!(
            report
                .activities
                .iter()
                .any(|a| a.kind == "load" && a.ok && a.detail.contains("requests")),
            "every experiment measures load: {stdout}"
        );
        if code == 0 {
            markers_reached_the_collector(&handle, &report);
        }
    }
    on.stop();

    // With its pattern off, each one fails: an experiment that cannot fail proves nothing.
    for (file, pattern) in EXPERIMENTS {
        let (mut off, handle_path) = demo(dir.path(), pattern, &["--disable", pattern]);
        let (code, stdout, report) = run(
            &experiment(file),
            &handle_path,
            &dir.path().join(format!("off-{pattern}")),
        );
        eprintln!("{stdout}");
        if code != 1 || report.status != Status::Deviated {
            problems.push(format!(
                "{file} did not fail with --disable {pattern} (exit {code}):\n{stdout}"
            ));
        }
        off.stop();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// The `chaos.start` and `chaos.stop` markers are spans of `gauntlet-chaos` in the run's
/// trace, carrying the run ID as the correlation ID.
fn markers_reached_the_collector(handle: &DemoHandle, report: &Report) {
    let api = handle.collector.api.clone().expect("the demo's collector");
    let trace = report.marker_trace.clone().expect("a marker trace");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = get_json(&format!("{api}/api/traces/{trace}"));
        let names: Vec<String> = body["data"][0]["spans"]
            .as_array()
            .map(|spans| {
                spans
                    .iter()
                    .filter_map(|s| s["operationName"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let service = &body["data"][0]["processes"]["p1"]["serviceName"];
        if names.iter().any(|n| n == "chaos.start") && names.iter().any(|n| n == "chaos.stop") {
            assert_eq!(service, "gauntlet-chaos");
            let corr = api_correlation(&api, &report.run_id);
            assert!(corr, "the run ID is the markers' correlation ID");
            // The markers API lists the run's start, stop and fault window.
            let listed = get_json(&format!("{api}/api/v1/markers"));
            let mut ours: Vec<&str> = listed["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["run_id"] == report.run_id.as_str() && m["kind"] == "chaos")
                .filter_map(|m| m["name"].as_str())
                .collect();
            ours.sort_unstable();
            assert_eq!(
                ours,
                ["chaos.fault_window", "chaos.start", "chaos.stop"],
                "{listed}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no chaos markers in trace {trace}: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// GET `url` as JSON (`null` if it cannot be had).
fn get_json(url: &str) -> serde_json::Value {
    common::runtime().block_on(async {
        match reqwest::get(url).await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    })
}

fn api_correlation(api: &str, run_id: &str) -> bool {
    get_json(&format!("{api}/api/v1/correlations/{run_id}"))
        .to_string()
        .contains("chaos.start")
}

/// Ctrl-C while the fault is in place: exit 130, and the toxic is gone afterwards.
fn ctrl_c_runs_the_rollbacks(handle_path: &Path, handle: &DemoHandle) {
    let mut child = Command::new(BIN)
        .args(["chaos", "run"])
        .arg(experiment("payments-slow.toml"))
        .arg("--demo")
        .arg(handle_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gauntlet chaos run");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        seen.push(line.clone());
        if line.contains("payments answers 3 s late") {
            break;
        }
    }
    let api = &handle.chaos.as_ref().expect("chaos").api;
    let toxics = || get_json(&format!("{api}/proxies/orders_to_payments/toxics"));
    assert_eq!(
        toxics().as_array().map(Vec::len),
        Some(1),
        "the fault is in place: {seen:?}"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .expect("SIGINT");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("exit");
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("interrupted"))
            && rest.iter().any(|l| l.contains("removed \"payments-slow\"")),
        "{rest:?}"
    );
    assert_eq!(
        toxics().as_array().map(Vec::len),
        Some(0),
        "the rollback removed the toxic"
    );
}
