//! Metrics' bad input: malformed data points are rejected one by one with
//! `partial_success` and the valid rest is stored; PromQL requests that cannot run get
//! Prometheus' error shape (`bad_data` 400, `execution` 422) with a message naming what to
//! change, and a query past the series or point limits is refused, not answered from a
//! partial read.

mod common;

use common::TestCollector;
use gauntlet_query_api::prometheus::{PromErrorType, PromResponse, QueryData};
use serde_json::{Value, json};

/// Ten minutes ago, on a whole second: retention cuts metrics by their points' time, so
/// test data is recent.
fn now_ns() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    (now - 600) * 1_000_000_000
}

fn gauge_point(time: u64, value: f64) -> Value {
    json!({"timeUnixNano": time.to_string(), "asDouble": value})
}

fn request(metrics: Vec<Value>) -> Value {
    json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeMetrics": [{"scope": {"name": "t"}, "metrics": metrics}]
    }]})
}

fn histogram(points: Vec<Value>, temporality: &str) -> Value {
    json!({"name": "latency", "unit": "s", "histogram": {
        "aggregationTemporality": temporality, "dataPoints": points}})
}

async fn promql(c: &TestCollector, path_and_query: &str) -> (u16, PromResponse<QueryData>) {
    let resp = c
        .client
        .get(c.api(path_and_query))
        .send()
        .await
        .expect("answered");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("Prometheus JSON"))
}

fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_points_are_rejected_one_by_one_and_the_rest_stored() {
    let c = TestCollector::start().await;
    let t = now_ns();
    let ok_hist = json!({"timeUnixNano": t.to_string(), "startTimeUnixNano": (t - 1).to_string(),
        "count": "3", "sum": 1.5, "bucketCounts": ["1", "2"], "explicitBounds": [0.5]});
    let body = request(vec![
        json!({"name": "queue.depth", "gauge": {"dataPoints": [
            gauge_point(t, 4.0),
            {"asDouble": 1.0},                                        // no time
            {"timeUnixNano": t.to_string(), "startTimeUnixNano": (t + 5).to_string(), "asDouble": 1.0},
            {"timeUnixNano": t.to_string()},                         // no value
        ]}}),
        json!({"name": "orders", "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [
            {"timeUnixNano": t.to_string(), "asDouble": -3.0},       // a counter going negative
        ]}}),
        json!({"name": "mystery", "sum": {"aggregationTemporality": 7, "isMonotonic": true,
            "dataPoints": [gauge_point(t, 1.0)]}}),
        histogram(
            vec![
                ok_hist,
                json!({"timeUnixNano": t.to_string(), "count": "3", "bucketCounts": ["1", "2", "0"], "explicitBounds": [0.5]}),
                json!({"timeUnixNano": t.to_string(), "count": "9", "bucketCounts": ["1", "2"], "explicitBounds": [0.5]}),
                json!({"timeUnixNano": t.to_string(), "count": "3", "bucketCounts": ["1", "1", "1"], "explicitBounds": [0.5, 0.1]}),
                // Counts whose u64 sum wraps around to the count (found by the fuzzer: it
                // overflowed, and a build without overflow checks took the point).
                json!({"timeUnixNano": t.to_string(), "count": "1", "bucketCounts": ["18446744073709551615", "2"], "explicitBounds": [0.5]}),
            ],
            "AGGREGATION_TEMPORALITY_CUMULATIVE",
        ),
        json!({"name": "rpc", "summary": {"dataPoints": [
            {"timeUnixNano": t.to_string(), "count": "1", "sum": 1.0, "quantileValues": [{"quantile": 1.5, "value": 1.0}]}
        ]}}),
    ]);
    let (status, answer) = c.post_json("/v1/metrics", &body).await;
    assert_eq!(status, 200, "{answer}");
    let partial = &answer["partialSuccess"];
    // int64 in OTLP/JSON: a string or a number.
    let rejected = &partial["rejectedDataPoints"];
    assert!(
        rejected == &json!(10) || rejected == &json!("10"),
        "{answer}"
    );
    let message = partial["errorMessage"].as_str().unwrap_or_default();
    for reason in [
        "without a time_unix_nano",
        "starting after their time_unix_nano",
        "without a value",
        "monotonic sum that is NaN or negative",
        "no known aggregation_temporality",
        "bucket_counts are not one more than its explicit_bounds",
        "do not add up to its count",
        "not finite and increasing",
        "quantile outside 0..1",
    ] {
        assert!(
            message.contains(reason),
            "{reason:?} missing from {message:?}"
        );
    }
    // The valid ones are there.
    let at = format!("&time={}", t / 1_000_000_000);
    let (status, gauge) = promql(&c, &format!("/api/v1/query?query=queue_depth{at}")).await;
    assert_eq!(status, 200);
    let PromResponse::Success {
        data: QueryData::Vector(v),
        ..
    } = gauge
    else {
        panic!("{gauge:?}");
    };
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].value.value(), 4.0);
    let (_, count) = promql(
        &c,
        &format!("/api/v1/query?query=latency_seconds_count{at}"),
    )
    .await;
    let PromResponse::Success {
        data: QueryData::Vector(v),
        ..
    } = count
    else {
        panic!("{count:?}");
    };
    assert_eq!(
        v.iter().map(|s| s.value.value()).collect::<Vec<_>>(),
        vec![3.0]
    );
    // Not JSON at all: the whole request is refused, nothing half-stored.
    let resp = c
        .client
        .post(c.otlp_http("/v1/metrics"))
        .header("content-type", "application/json")
        .body("{\"resourceMetrics\": [")
        .send()
        .await
        .expect("answered");
    assert_eq!(resp.status(), 400);
    // A mistyped field inside one metric's data: refused whole, naming the metric, rather
    // than the metric silently dropped.
    let body = request(vec![histogram(
        vec![
            json!({"timeUnixNano": t.to_string(), "count": "1", "bucketCounts": ["1"], "explicitBounds": [], "sum": "lots"}),
        ],
        "AGGREGATION_TEMPORALITY_DELTA",
    )]);
    let (status, answer) = c.post_json("/v1/metrics", &body).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or_default()
            .contains("metric \"latency\", its histogram"),
        "{answer}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promql_errors_have_prometheus_shape_and_limits_hold() {
    let c = TestCollector::start_with(|config| {
        config.promql.max_series = 3;
        config.promql.max_points = 50;
    })
    .await;
    // Five series, twenty points each.
    let base = now_ns();
    for i in 0..20u64 {
        let t = base + i * 15_000_000_000;
        let points: Vec<Value> = (0..5)
            .map(|k| {
                json!({"timeUnixNano": t.to_string(), "asDouble": k as f64,
                "attributes": [{"key": "k", "value": {"intValue": k.to_string()}}]})
            })
            .collect();
        let (status, _) = c
            .post_json(
                "/v1/metrics",
                &request(vec![json!({"name": "g", "gauge": {"dataPoints": points}})]),
            )
            .await;
        assert_eq!(status, 200);
    }
    let end = base / 1_000_000_000 + 300;
    let cases: Vec<(String, u16, PromErrorType, &str)> = vec![
        (
            format!("/api/v1/query?query={}", q("sum(rate(g[5m])")),
            400,
            PromErrorType::BadData,
            "invalid parameter \"query\"",
        ),
        (
            format!(
                "/api/v1/query?query={}",
                q("label_replace(g, \"a\", \"b\", \"c\", \"d\")")
            ),
            400,
            PromErrorType::BadData,
            "label_replace() is not supported",
        ),
        (
            format!("/api/v1/query?query={}", q("max_over_time(g[5m:1m])")),
            400,
            PromErrorType::BadData,
            "subquery is not supported",
        ),
        (
            format!("/api/v1/query?query={}", q("g @ 100")),
            400,
            PromErrorType::BadData,
            "@ modifier is not supported",
        ),
        (
            "/api/v1/query".to_string(),
            400,
            PromErrorType::BadData,
            "give a PromQL expression",
        ),
        (
            "/api/v1/query?query=g&time=yesterday".to_string(),
            400,
            PromErrorType::BadData,
            "cannot parse \"yesterday\"",
        ),
        (
            "/api/v1/query_range?query=g&start=10&end=5&step=1".to_string(),
            400,
            PromErrorType::BadData,
            "end timestamp must not be before start",
        ),
        (
            format!("/api/v1/query_range?query=g&start=0&end={end}&step=1"),
            400,
            PromErrorType::BadData,
            "exceeded maximum resolution",
        ),
        (
            "/api/v1/query_range?query=g&start=0&end=10&step=-1".to_string(),
            400,
            PromErrorType::BadData,
            "zero or negative",
        ),
        (
            format!(
                "/api/v1/query_range?query={}&start=0&end=10&step=1",
                q("g[1m]")
            ),
            400,
            PromErrorType::BadData,
            "range vector",
        ),
        (
            format!("/api/v1/query?query=g&time={end}"),
            422,
            PromErrorType::Execution,
            "more than 3 series",
        ),
        (
            format!(
                "/api/v1/query?query={}&time={end}",
                q("g{k=~\"0|1|2\"}[10m]")
            ),
            422,
            PromErrorType::Execution,
            "too many samples",
        ),
        (
            format!(
                "/api/v1/query?query={}&time={}",
                q("g{k=\"1\"} + on() g{k=~\"2|3\"}"),
                end - 240
            ),
            422,
            PromErrorType::Execution,
            "many-to-many matching not allowed",
        ),
        (
            "/api/v1/series".to_string(),
            400,
            PromErrorType::BadData,
            "no match[]",
        ),
        (
            format!("/api/v1/series?match[]={}", q("rate(g[1m])")),
            400,
            PromErrorType::BadData,
            "not a series selector",
        ),
    ];
    for (path, status, kind, text) in cases {
        let (got, answer) = promql(&c, &path).await;
        assert_eq!(got, status, "{path}: {answer:?}");
        match answer {
            PromResponse::Error { error_type, error } => {
                assert_eq!(error_type, kind, "{path}: {error}");
                assert!(
                    error.contains(text),
                    "{path}: {error:?} should say {text:?}"
                );
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    // Within the limits it answers, and it kept serving.
    let (status, answer) = promql(
        &c,
        &format!("/api/v1/query?query={}&time={end}", q("g{k=\"1\"}")),
    )
    .await;
    assert_eq!(status, 200, "{answer:?}");
    c.shutdown().await;
}
