//! `GET /api/v1/markers` over OTLP/JSON exports: the marker spans of the load generator and
//! the chaos runner are listed with their run; other spans of those tools, and spans of other
//! services that happen to share a marker's name, are not.

mod common;

use common::{TestCollector, json_span, json_traces};
use gauntlet_collector::model::now_ns;
use serde_json::json;

/// A span of a tool's run: `trace` and `span` are the hex digit their IDs repeat.
fn run_span(
    trace: char,
    span: char,
    name: &str,
    start: u64,
    end: u64,
    run: &str,
    failed: bool,
) -> serde_json::Value {
    let mut span = json_span(
        &trace.to_string().repeat(32),
        &span.to_string().repeat(16),
        "",
        name,
        start,
        end,
    );
    span["attributes"] = json!([
        {"key": "gauntlet.run_id", "value": {"stringValue": run}},
        {"key": "correlation_id", "value": {"stringValue": run}},
    ]);
    span["kind"] = json!(1);
    span["status"] = json!({"code": if failed { 2 } else { 1 }});
    span
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marker_spans_of_the_tools_are_listed_with_their_run() {
    let c = TestCollector::start().await;
    let t = now_ns() as u64 - 60_000_000_000;
    let s = 1_000_000_000u64;
    let chaos = json_traces(
        "gauntlet-chaos",
        vec![
            run_span('c', '1', "chaos.start", t, t, "chaos-1", false),
            run_span(
                'c',
                '2',
                "chaos.stop",
                t + 9 * s,
                t + 9 * s,
                "chaos-1",
                true,
            ),
            run_span(
                'c',
                '3',
                "chaos.fault_window",
                t,
                t + 9 * s,
                "chaos-1",
                true,
            ),
            // Not a marker: another span of the same tool.
            run_span('c', '4', "probe", t, t + s, "chaos-1", false),
        ],
    );
    let load = json_traces(
        "gauntlet-loadgen",
        vec![
            run_span('d', '5', "load.start", t + s, t + s, "run-7", false),
            run_span('d', '6', "load.stop", t + 5 * s, t + 5 * s, "run-7", false),
        ],
    );
    // A service's own span named like a marker is not one.
    let impostor = json_traces(
        "gateway",
        vec![json_span(
            &"e".repeat(32),
            &"7".repeat(16),
            "",
            "load.start",
            t,
            t + s,
        )],
    );
    for body in [chaos, load, impostor] {
        let (status, answer) = c.post_json("/v1/traces", &body).await;
        assert_eq!(status, 200, "{answer}");
    }
    let (status, listed) = c.get("/api/v1/markers").await;
    assert_eq!(status, 200, "{listed}");
    let got: Vec<(&str, &str, &str, bool)> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap_or_default(),
                m["name"].as_str().unwrap_or_default(),
                m["run_id"].as_str().unwrap_or_default(),
                m["failed"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("chaos", "chaos.fault_window", "chaos-1", true),
            ("chaos", "chaos.start", "chaos-1", false),
            ("load", "load.start", "run-7", false),
            ("load", "load.stop", "run-7", false),
            ("chaos", "chaos.stop", "chaos-1", true),
        ],
        "by time, then name"
    );
    let window = &listed["data"][0];
    assert_eq!(window["time"], (t / 1000) as i64);
    assert_eq!(window["end"], ((t + 9 * s) / 1000) as i64);
    assert_eq!(window["trace_id"], "c".repeat(32));

    // A window that holds only the load run.
    let (_, narrow) = c
        .get(&format!(
            "/api/v1/markers?start={}&end={}",
            (t + s) / 1000,
            (t + 6 * s) / 1000
        ))
        .await;
    let names: Vec<&str> = narrow["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["load.start", "load.stop"]);
    let (status, bad) = c.get("/api/v1/markers?start=soon").await;
    assert_eq!(status, 400, "{bad}");
    c.shutdown().await;
}
