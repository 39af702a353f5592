//! Starts a real collector on ephemeral loopback ports with a temporary data directory, and
//! reads its query API over HTTP.
#![allow(dead_code)]

pub mod prompb;

use gauntlet_collector::{Collector, Config};
use serde_json::Value;

pub struct TestCollector {
    pub collector: Collector,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
}

impl TestCollector {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::ephemeral(dir.path().join("data"));
        tweak(&mut config);
        let collector = Collector::start(config).await.expect("collector starts");
        Self {
            collector,
            dir,
            client: reqwest::Client::new(),
        }
    }

    pub fn otlp_http(&self, path: &str) -> String {
        format!("http://{}{path}", self.collector.addrs.otlp_http)
    }

    pub fn otlp_grpc(&self) -> String {
        format!("http://{}", self.collector.addrs.otlp_grpc)
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.collector.addrs.http)
    }

    /// GET on the query API: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(self.api(path))
            .send()
            .await
            .expect("query API answers");
        let status = resp.status().as_u16();
        let body = resp.json().await.expect("query API answers JSON");
        (status, body)
    }

    /// POSTs an OTLP/JSON body and returns status and JSON response.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(self.otlp_http(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("OTLP/HTTP answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Polls `path` until `ok` holds for its body, for at most 10 s.
    pub async fn wait_for(&self, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (_, body) = self.get(path).await;
            if ok(&body) || std::time::Instant::now() > deadline {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The collector's own metrics, as Prometheus text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.api("/metrics"))
            .send()
            .await
            .expect("metrics answered")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn shutdown(self) {
        self.collector.shutdown().await;
    }
}

/// One OTLP/JSON span, for hand-made requests.
pub fn json_span(trace: &str, span: &str, parent: &str, name: &str, start: u64, end: u64) -> Value {
    serde_json::json!({
        "traceId": trace, "spanId": span, "parentSpanId": parent, "name": name,
        "kind": 2, "startTimeUnixNano": start.to_string(), "endTimeUnixNano": end.to_string(),
    })
}

/// An OTLP/JSON trace request with the given spans from one service.
pub fn json_traces(service: &str, spans: Vec<Value>) -> Value {
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}],
    }]})
}

/// Span IDs of a Jaeger trace, by operation name.
pub fn spans_by_name(trace: &Value) -> std::collections::HashMap<String, Value> {
    trace["spans"]
        .as_array()
        .map(|spans| {
            spans
                .iter()
                .map(|s| {
                    (
                        s["operationName"].as_str().unwrap_or("").to_string(),
                        s.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The value of a Jaeger tag on a span, if present.
pub fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"]
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
        .map(|t| &t["value"])
}
