//! A collector started with an ingest token takes telemetry only with it: the OpenTelemetry
//! Python SDK (a child process, configured through `OTEL_EXPORTER_OTLP_HEADERS` as users
//! configure it) exports over OTLP/HTTP with the right token, the wrong one and none; the
//! Rust SDK over gRPC with and without it; Zipkin and raw requests get 401 with a
//! google.rpc.Status body. Only the exports with the token are stored.

mod common;

use std::process::Command;

use common::TestCollector;
use gauntlet_collector::query::access::AuthToken;
use opentelemetry::trace::{Tracer, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

const TOKEN: &str = "ingest-s3cret";

/// Exports one span as `service` with the Python SDK; the export result's name.
fn python_export(c: &TestCollector, service: &str, headers: Option<&str>) -> String {
    const SCRIPT: &str = r#"
import sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

finished = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": sys.argv[1]}))
provider.add_span_processor(SimpleSpanProcessor(finished))
with provider.get_tracer("ingest-token-test").start_as_current_span("checked"):
    pass
# Endpoint and headers come from OTEL_EXPORTER_OTLP_* in the environment.
print(OTLPSpanExporter().export(finished.get_finished_spans()).name)
"#;
    let mut cmd = Command::new("python3");
    cmd.args(["-c", SCRIPT, service])
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            c.otlp_http("/v1/traces"),
        )
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    if let Some(h) = headers {
        cmd.env("OTEL_EXPORTER_OTLP_HEADERS", h);
    }
    let out = cmd.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "the OpenTelemetry Python SDK is missing? (bash scripts/test.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Exports one span as `service` with the Rust SDK over gRPC, with `authorization` metadata
/// if given.
async fn grpc_export(c: &TestCollector, service: &str, authorization: Option<&str>) {
    let mut metadata = tonic::metadata::MetadataMap::new();
    if let Some(a) = authorization {
        metadata.insert("authorization", a.parse().expect("metadata"));
    }
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(c.otlp_grpc())
        .with_metadata(metadata)
        .build()
        .expect("exporter");
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder_empty()
                .with_service_name(service.to_string())
                .build(),
        )
        .build();
    provider.tracer("grpc").in_span("checked", |_| {});
    // A refused export is the SDK's error to log, not the test's: what is stored decides.
    tokio::task::spawn_blocking(move || {
        let _ = provider.force_flush();
        let _ = provider.shutdown();
    })
    .await
    .expect("flush task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_exports_with_the_ingest_token_are_stored() {
    let c = TestCollector::start_with(|config| {
        config.ingest_token = Some(AuthToken::new(TOKEN).expect("token"));
    })
    .await;
    let ok = format!("Authorization=Bearer%20{TOKEN}");
    assert_eq!(python_export(&c, "py-with-token", Some(&ok)), "SUCCESS");
    assert_eq!(
        python_export(&c, "py-wrong-token", Some("Authorization=Bearer%20nope")),
        "FAILURE"
    );
    assert_eq!(python_export(&c, "py-no-token", None), "FAILURE");
    grpc_export(&c, "grpc-with-token", Some(&format!("Bearer {TOKEN}"))).await;
    grpc_export(&c, "grpc-no-token", None).await;

    let http = reqwest::Client::new();
    let refused = http
        .post(c.otlp_http("/v1/traces"))
        .header("content-type", "application/json")
        .body(r#"{"resourceSpans":[]}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("www-authenticate"));
    let status: serde_json::Value = refused.json().await.expect("a google.rpc.Status");
    assert_eq!(status["code"], 16, "UNAUTHENTICATED");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("OTEL_EXPORTER_OTLP_HEADERS"))
    );
    let zipkin = c.collector.addrs.zipkin.expect("zipkin on");
    let refused = http
        .post(format!("http://{zipkin}/api/v2/spans"))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 401);

    let services = c
        .wait_for("/api/services", |b| {
            b["data"].as_array().is_some_and(|d| d.len() >= 2)
        })
        .await;
    let mut names: Vec<&str> = services["data"]
        .as_array()
        .map(|d| d.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    names.sort();
    assert_eq!(names, ["grpc-with-token", "py-with-token"]);
}
