//! `gauntlet load` as a user runs it: exit codes CI can gate on, the JSON and HTML reports,
//! bad input refused with a reason, and the demo scenario against a running demo, whose
//! collector then holds the run's markers and a failed request's trace.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use gauntlet_loadgen::Report;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

mod common;

use common::{BIN, Demo};

fn load(args: &[&str], cwd: Option<&Path>) -> Output {
    let mut c = Command::new(BIN);
    c.arg("load").args(args).arg("--progress").arg("off");
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    c.stdin(Stdio::null()).output().expect("gauntlet runs")
}

/// A target on loopback answering 200 after 5 ms, served by its own runtime thread.
fn target() -> (tokio::runtime::Runtime, MockServer) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = rt.block_on(async {
        let s = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_string("ok")
                    .set_delay(Duration::from_millis(5)),
            )
            .mount(&s)
            .await;
        s
    });
    (rt, server)
}

#[test]
fn thresholds_gate_the_exit_code_and_the_reports_are_written() {
    let (_rt, server) = target();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("report.json");
    let html = dir.path().join("report.html");
    let url = format!("{}/ping", server.uri());
    let passed = load(
        &[
            &url,
            "-c",
            "4",
            "-r",
            "100",
            "-d",
            "2s",
            "--threshold",
            "p99 < 2s",
            "--threshold",
            "error_rate < 0.01",
            "--out",
            out.to_str().expect("path"),
            "--html",
            html.to_str().expect("path"),
        ],
        None,
    );
    assert_eq!(
        passed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&passed.stderr)
    );
    let table = String::from_utf8_lossy(&passed.stdout);
    assert!(
        table.contains("open model") && table.contains("ok   all: p99 < 2s"),
        "{table}"
    );

    let report: Report = serde_json::from_slice(&std::fs::read(&out).expect("--out written"))
        .expect("the documented schema");
    assert_eq!(report.schema, "gauntlet.load.report/v1");
    assert!(
        (190..=200).contains(&report.summary.requests),
        "{}",
        report.summary.requests
    );
    assert_eq!(
        report.summary.status_codes.get("200"),
        Some(&report.summary.requests)
    );
    assert!(
        report.summary.latency_ms.p50 >= 5.0
            && report.summary.latency_ms.max >= report.summary.latency_ms.p99
    );
    assert_eq!(report.target_rps, Some(100.0));
    assert!(report.thresholds.iter().all(|t| t.passed));
    assert!(!report.timeline.is_empty());
    let page = std::fs::read_to_string(&html).expect("--html written");
    assert!(page.contains("<svg") && page.contains("Latency over time"));
    assert!(
        !page.contains("<script") && !page.contains("src=\"http") && !page.contains("href=\"http"),
        "self-contained"
    );

    // A latency no 5 ms server can meet: exit 99, and the table says which threshold.
    let breached = load(
        &[&url, "-c", "2", "-n", "50", "--threshold", "p50 < 1ms"],
        None,
    );
    assert_eq!(breached.status.code(), Some(99));
    assert!(String::from_utf8_lossy(&breached.stdout).contains("FAIL all: p50 < 1ms"));
}

#[test]
fn bad_input_is_refused_with_a_reason_before_any_request() {
    let cases: [(&[&str], &str); 6] = [
        (&["http://10.9.8.7:8080/"], "--allow-remote"),
        (&["127.0.0.1:8080/"], "http://"),
        (
            &["http://127.0.0.1:1/", "--threshold", "p99 fast"],
            "p99 < 300ms",
        ),
        (
            &["http://127.0.0.1:1/", "-r", "5", "-n", "10"],
            "goes with the closed model",
        ),
        (&["http://127.0.0.1:1/", "-H", "no colon"], "Name: value"),
        (&[], "give a URL"),
    ];
    for (args, needle) in cases {
        let out = load(args, None);
        assert!(
            matches!(out.status.code(), Some(1) | Some(2)),
            "{args:?}: {:?}",
            out.status
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("s.toml");
    std::fs::write(&scenario, "[[scenarios]]\nname = \"x\"\nexecutor = \"constant-vus\"\nvus = 1\nduration = \"1s\"\n[[scenarios.flows]]\n[[scenarios.flows.steps]]\nurl = \"{{host}}/\"\n").expect("write");
    let out = load(&["run", scenario.to_str().expect("path")], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("{{host}} is not a var"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_demo_scenario_runs_against_the_demo_and_its_window_is_in_the_collector() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Run from its directory, the demo writes gauntlet-demo/demo.json there.
    let _demo = Demo::start_in(Some(dir.path()), &[]);
    let handle_path = dir.path().join("gauntlet-demo/demo.json");
    let deadline = Instant::now() + Duration::from_secs(90);
    let handle = loop {
        if let Ok(h) = gauntlet_demo_system::handle::DemoHandle::load(&handle_path) {
            break h;
        }
        assert!(Instant::now() < deadline, "the demo never wrote demo.json");
        std::thread::sleep(Duration::from_millis(100));
    };
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("loadgen/scenarios/demo.toml");
    let out = dir.path().join("demo-report.json");
    // From the demo's directory: the scenario finds the gateway in gauntlet-demo/demo.json.
    let run = load(
        &[
            "run",
            scenario.to_str().expect("path"),
            "--out",
            out.to_str().expect("path"),
        ],
        Some(dir.path()),
    );
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Report =
        serde_json::from_slice(&std::fs::read(&out).expect("report")).expect("schema");
    for step in [
        "log in",
        "browse",
        "place order",
        "order by id",
        "order details",
        "order history",
        "old shop catalogue",
        "old shop order",
        "web page",
        "mobile products",
    ] {
        let s = report
            .requests
            .get(step)
            .unwrap_or_else(|| panic!("no {step} in {:?}", report.requests.keys()));
        assert!(s.requests > 0, "{step} never ran");
        assert_eq!(s.errors, 0, "{step}: {s:?}");
        assert_eq!(s.checks.failed, 0, "{step}: {s:?}");
    }
    // The captured order ID and customer made the later steps possible.
    assert_eq!(
        report.requests["order by id"].requests,
        report.requests["place order"].requests
    );
    assert_eq!(report.scenarios.len(), 2);

    // A run with failures, its telemetry sent to the demo's collector.
    let api = handle.collector.api.clone().expect("the demo's collector");
    let failing = load(
        &[
            &format!("{}/api/orders/no-such-order", handle.gateway),
            "-n",
            "20",
            "-c",
            "2",
            "--otlp",
            &handle.collector.otlp_http,
            "--otlp-sample",
            "0",
        ],
        None,
    );
    assert_eq!(failing.status.code(), Some(0));
    let said = String::from_utf8_lossy(&failing.stdout);
    let run_id = said
        .split("correlation ID ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no run ID printed: {said}"))
        .to_string();
    let rt = common::runtime();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        // The run's markers are one correlation query away.
        let markers: Vec<String> = loop {
            let tl: serde_json::Value = http.get(format!("{api}/api/v1/correlations/{run_id}")).send().await.expect("collector").json().await.unwrap_or_default();
            let names: Vec<String> = tl["items"].as_array().into_iter().flatten()
                .filter(|i| i["service"] == "gauntlet-loadgen")
                .filter_map(|i| i["name"].as_str().map(str::to_string)).collect();
            if names.contains(&"load.stop".to_string()) || Instant::now() > deadline {
                break names;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(markers.contains(&"load.start".to_string()) && markers.contains(&"load.stop".to_string()), "{markers:?}");
        // And the markers API (what the UI's charts read) lists them with their run.
        let listed: serde_json::Value = http.get(format!("{api}/api/v1/markers")).send().await.expect("collector").json().await.expect("markers JSON");
        let ours: Vec<&serde_json::Value> = listed["data"].as_array().into_iter().flatten()
            .filter(|m| m["run_id"] == run_id.as_str()).collect();
        let names: Vec<&str> = ours.iter().filter_map(|m| m["name"].as_str()).collect();
        assert!(names.contains(&"load.start") && names.contains(&"load.stop"), "{listed}");
        assert!(ours.iter().all(|m| m["kind"] == "load" && m["time"].as_i64() <= m["end"].as_i64()), "{listed}");
        // A failed request is there as an error span, in the same trace as the gateway's.
        let found: serde_json::Value = loop {
            let q: serde_json::Value = http.get(format!("{api}/api/traces?service=gauntlet-loadgen&tags=%7B%22error%22%3A%22true%22%7D&limit=5"))
                .send().await.expect("collector").json().await.unwrap_or_default();
            let has_gateway = q["data"].as_array().into_iter().flatten().any(|t| {
                t["processes"].as_object().is_some_and(|p| p.values().any(|v| v["serviceName"] == "gateway"))
            });
            if has_gateway || Instant::now() > deadline {
                break q;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let trace = found["data"].as_array().into_iter().flatten().find(|t| {
            t["processes"].as_object().is_some_and(|p| p.values().any(|v| v["serviceName"] == "gateway"))
        });
        assert!(trace.is_some(), "no failed load request joined to the gateway's trace: {found}");
    });
}
