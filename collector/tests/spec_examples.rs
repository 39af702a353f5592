//! The example payloads of the OTLP specification repository (`fixtures/`, copied as they
//! are) are accepted as they are, and Zipkin v2 JSON from Zipkin's API docs lands in the
//! same trace model.

mod common;

use common::{TestCollector, spans_by_name, tag};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_spec_examples_are_accepted_as_they_are() {
    let c = TestCollector::start().await;
    for (path, file) in [("/v1/traces", "trace.json"), ("/v1/logs", "logs.json")] {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        let resp = c
            .client
            .post(c.otlp_http(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200, "{file}");
        let v: serde_json::Value = resp.json().await.expect("JSON response");
        assert!(v["partialSuccess"].is_null(), "{file}: {v}");
    }
    // The upper-case hex IDs of the example are the same trace in lower case.
    let (status, body) = c.get("/api/traces/5b8efff798038103d269b633813fc60c").await;
    assert_eq!(status, 200);
    let span = &spans_by_name(&body["data"][0])["I'm a server span"];
    assert_eq!(span["spanID"], "eee19b7ec3c1b174");
    assert_eq!(span["references"][0]["spanID"], "eee19b7ec3c1b173");
    assert_eq!(span["startTime"], 1_544_712_660_000_000i64);
    assert_eq!(span["duration"], 1_000_000);
    assert_eq!(tag(span, "my.span.attr"), Some(&json!("some value")));
    assert_eq!(tag(span, "otel.scope.name"), Some(&json!("my.library")));
    assert_eq!(
        body["data"][0]["processes"]["p1"]["serviceName"],
        "my.service"
    );

    let (_, logs) = c
        .get("/api/v1/logs?trace_id=5B8EFFF798038103D269B633813FC60C")
        .await;
    let log = &logs["data"][0];
    assert_eq!(log["body"], "Example log record");
    assert_eq!(log["severity"], "Information");
    assert_eq!(log["span_id"], "eee19b7ec3c1b174");
    assert_eq!(log["attributes"]["int.attribute"], 10);
    assert_eq!(log["attributes"]["double.attribute"], 637.704);
    assert_eq!(
        log["attributes"]["array.attribute"],
        json!(["many", "values"])
    );
    assert_eq!(
        log["attributes"]["map.attribute"]["some.map.key"],
        "some value"
    );
    assert_eq!(log["time"], "2018-12-13T14:51:00.300000000Z");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zipkin_v2_json_is_stored_as_spans() {
    let c = TestCollector::start().await;
    let zipkin = c.collector.addrs.zipkin.expect("zipkin listens");
    // The example of Zipkin's API documentation, plus a child and a broken span.
    let body = json!([
        {"id": "352bff9a74ca9ad2", "traceId": "5af7183fb1d4cf5f", "parentId": "6b221d5bc9e6496c",
         "name": "get /api", "timestamp": 1556604172355737u64, "duration": 1431, "kind": "SERVER",
         "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.1", "port": 3306},
         "remoteEndpoint": {"ipv4": "172.19.0.2", "port": 58648},
         "tags": {"http.method": "GET", "http.path": "/api", "correlation_id": "zipkin-corr"}},
        {"id": "6b221d5bc9e6496c", "traceId": "5af7183fb1d4cf5f", "name": "get",
         "timestamp": 1556604172355000u64, "duration": 3000, "kind": "CLIENT",
         "localEndpoint": {"serviceName": "frontend"}, "tags": {"error": "timeout"}},
        {"id": "not-hex", "traceId": "5af7183fb1d4cf5f", "timestamp": 1}
    ]);
    let resp = c
        .client
        .post(format!("http://{zipkin}/api/v2/spans"))
        .json(&body)
        .send()
        .await
        .expect("zipkin answers");
    assert_eq!(resp.status(), 202);
    let v: serde_json::Value = resp.json().await.expect("rejection report");
    assert_eq!(v["rejected_spans"], 1);

    let (status, trace) = c.get("/api/traces/5af7183fb1d4cf5f").await;
    assert_eq!(status, 200, "64-bit Zipkin IDs are found");
    let spans = spans_by_name(&trace["data"][0]);
    assert_eq!(
        spans["get /api"]["references"][0]["spanID"],
        spans["get"]["spanID"]
    );
    assert_eq!(spans["get /api"]["duration"], 1431);
    assert_eq!(tag(&spans["get"], "error"), Some(&json!(true)));
    assert_eq!(tag(&spans["get /api"], "http.method"), Some(&json!("GET")));
    let (status, tl) = c.get("/api/v1/correlations/zipkin-corr").await;
    assert_eq!(status, 200);
    assert_eq!(tl["items"].as_array().map(Vec::len), Some(2), "{tl}");

    let resp = c
        .client
        .post(format!("http://{zipkin}/api/v2/spans"))
        .header("content-type", "application/json")
        .body("{\"not\": \"an array\"}")
        .send()
        .await
        .expect("zipkin answers");
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap_or_default()
            .contains("array of spans")
    );
    c.shutdown().await;
}
