//! Span metrics: RED from stored spans, served in PromQL under the spanmetrics connector's
//! names, agree with the spans sent (counts exact, buckets exact, the error share) and with
//! the RED API over the same spans.

mod common;

use common::TestCollector;
use gauntlet_query_api::client::QueryClient;
use gauntlet_query_api::params::RedQuery;
use gauntlet_query_api::prometheus::{PromResponse, QueryData};
use serde_json::{Value, json};

fn span(i: u64, start_ns: u64, ms: u64, error: bool, name: &str) -> Value {
    json!({
        "traceId": format!("{:032x}", 0xabc0_0000 + i),
        "spanId": format!("{:016x}", 0x100 + i),
        "name": name,
        "kind": 2,
        "startTimeUnixNano": start_ns.to_string(),
        "endTimeUnixNano": (start_ns + ms * 1_000_000).to_string(),
        "status": {"code": if error { 2 } else { 0 }}
    })
}

async fn vector(c: &TestCollector, query: &str, time_s: u64) -> Vec<(Vec<(String, String)>, f64)> {
    let url = c.api(&format!(
        "/api/v1/query?time={time_s}&query={}",
        form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
    ));
    let answer: PromResponse<QueryData> = c
        .client
        .get(url)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let PromResponse::Success {
        data: QueryData::Vector(v),
        ..
    } = answer
    else {
        panic!("{query}: {answer:?}");
    };
    let mut out: Vec<_> = v
        .into_iter()
        .map(|s| (s.metric.into_iter().collect::<Vec<_>>(), s.value.value()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_metrics_count_what_was_sent() {
    let c = TestCollector::start().await;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let base = (now_s - 300) * 1_000_000_000;
    // 40 spans over 200 s: durations 1..40 × 7 ms; every fifth failed.
    let spans: Vec<Value> = (0..40u64)
        .map(|i| {
            span(
                i,
                base + i * 5_000_000_000,
                (i + 1) * 7,
                i % 5 == 0,
                "GET /items",
            )
        })
        .collect();
    let body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"spans": spans}]}]});
    let (status, answer) = c.post_json("/v1/traces", &body).await;
    assert_eq!(status, 200, "{answer}");
    let at = now_s;
    let calls = vector(&c, "traces_span_metrics_calls_total", at).await;
    let by_status: Vec<(String, f64)> = calls
        .iter()
        .map(|(l, v)| {
            let status = l
                .iter()
                .find(|(k, _)| k == "status_code")
                .map(|(_, v)| v.clone());
            (status.unwrap_or_default(), *v)
        })
        .collect();
    assert_eq!(
        by_status,
        vec![
            ("STATUS_CODE_ERROR".into(), 8.0),
            ("STATUS_CODE_UNSET".into(), 32.0)
        ]
    );
    let labels: Vec<&str> = calls[0].0.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        labels,
        [
            "__name__",
            "service_name",
            "span_kind",
            "span_name",
            "status_code"
        ]
    );
    assert!(
        calls[0]
            .0
            .contains(&("span_kind".into(), "SPAN_KIND_SERVER".into()))
    );
    // Durations 7..280 ms: 1 at or under 10 ms, 7 under 50, 14 under 100, 28 under 200.
    let le =
        |bound: &str| format!("sum(traces_span_metrics_duration_seconds_bucket{{le=\"{bound}\"}})");
    for (bound, want) in [
        ("0.01", 1.0),
        ("0.05", 7.0),
        ("0.1", 14.0),
        ("0.2", 28.0),
        ("+Inf", 40.0),
    ] {
        let got = vector(&c, &le(bound), at).await;
        assert_eq!(got.first().map(|x| x.1), Some(want), "le={bound}");
    }
    let sum = vector(&c, "sum(traces_span_metrics_duration_seconds_sum)", at).await;
    let want: f64 = (1..=40).map(|i| i as f64 * 0.007).sum();
    assert!((sum[0].1 - want).abs() < 1e-9, "{sum:?}");
    // The error share over the whole window, as a RED panel would ask.
    let share = vector(
        &c,
        "sum(increase(traces_span_metrics_calls_total{status_code=\"STATUS_CODE_ERROR\"}[10m])) / sum(increase(traces_span_metrics_calls_total[10m]))",
        at,
    )
    .await;
    // Counters start from zero before their first span and end at the query's time, so
    // Prometheus' extrapolation adds nothing: the share is exact.
    assert!((share[0].1 - 0.2).abs() < 1e-9, "{share:?}");
    // And the RED API counts the same spans.
    let client = QueryClient::new(&c.api(""), None, std::time::Duration::from_secs(10));
    let red = client
        .red(&RedQuery {
            service: "shop".into(),
            start_ns: Some(base as i64 - 1),
            end_ns: Some(now_s as i64 * 1_000_000_000),
            step_ns: Some(600_000_000_000),
            ..RedQuery::default()
        })
        .await
        .expect("RED answered");
    let total: u64 = red
        .series
        .iter()
        .filter(|s| s.operation.as_deref() == Some("GET /items"))
        .flat_map(|s| &s.points)
        .map(|p| p.requests)
        .sum();
    assert_eq!(total, 40, "{red:?}");
    c.shutdown().await;
}
