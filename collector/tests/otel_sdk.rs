//! The real OpenTelemetry Rust SDK exporting to the collector — OTLP/HTTP protobuf,
//! OTLP/HTTP JSON and OTLP/gRPC, gzip on — then every query route reading it back:
//! parent/child structure, attributes, status, logs by correlation ID, the timeline.

mod common;

use common::{TestCollector, spans_by_name, tag};
use gauntlet_query_api::client::QueryClient;
use gauntlet_query_api::params::{RedQuery, RequestsQuery};
use opentelemetry::trace::{
    Link, Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{
    Compression, LogExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
    WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Copy, Debug)]
enum Transport {
    HttpProtobuf,
    HttpJson,
    Grpc,
}

struct Service {
    traces: SdkTracerProvider,
    logs: SdkLoggerProvider,
}

impl Service {
    fn new(name: &str, c: &TestCollector, transport: Transport) -> Self {
        let resource = Resource::builder_empty()
            .with_service_name(name.to_string())
            .with_attribute(KeyValue::new("deployment.environment.name", "test"))
            .build();
        let (spans, logs) = match transport {
            Transport::HttpProtobuf | Transport::HttpJson => {
                let protocol = match transport {
                    Transport::HttpJson => Protocol::HttpJson,
                    _ => Protocol::HttpBinary,
                };
                (
                    SpanExporter::builder()
                        .with_http()
                        .with_protocol(protocol)
                        .with_compression(Compression::Gzip)
                        .with_endpoint(c.otlp_http("/v1/traces"))
                        .build()
                        .expect("span exporter"),
                    LogExporter::builder()
                        .with_http()
                        .with_protocol(protocol)
                        .with_endpoint(c.otlp_http("/v1/logs"))
                        .build()
                        .expect("log exporter"),
                )
            }
            Transport::Grpc => (
                SpanExporter::builder()
                    .with_tonic()
                    .with_compression(Compression::Gzip)
                    .with_endpoint(c.otlp_grpc())
                    .build()
                    .expect("span exporter"),
                LogExporter::builder()
                    .with_tonic()
                    .with_endpoint(c.otlp_grpc())
                    .build()
                    .expect("log exporter"),
            ),
        };
        Self {
            traces: SdkTracerProvider::builder()
                .with_resource(resource.clone())
                .with_batch_exporter(spans)
                .build(),
            logs: SdkLoggerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(logs)
                .build(),
        }
    }

    /// Emits a `tracing` event through this service's OTel log bridge, inside `cx`.
    fn log(&self, cx: &Context, emit: impl FnOnce()) {
        let _attached = cx.clone().attach();
        let subscriber =
            tracing_subscriber::registry().with(OpenTelemetryTracingBridge::new(&self.logs));
        tracing::subscriber::with_default(subscriber, emit);
    }

    async fn flush(self) {
        tokio::task::spawn_blocking(move || {
            self.traces.force_flush().expect("flush spans");
            self.logs.force_flush().expect("flush logs");
            self.traces.shutdown().expect("shutdown tracer");
            self.logs.shutdown().expect("shutdown logger");
        })
        .await
        .expect("flush task");
    }
}

async fn round_trip(transport: Transport) {
    let c = TestCollector::start().await;
    let corr = format!("corr-{transport:?}-{}", std::process::id());
    let gateway = Service::new("gateway", &c, transport);
    let payments = Service::new("payments", &c, transport);
    let notifications = Service::new("notifications", &c, transport);

    // gateway: server span with a client child calling payments.
    let gw = gateway.traces.tracer("test");
    let root = gw
        .span_builder("POST /api/orders")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("correlation_id", corr.clone()),
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.response.status_code", 201),
        ])
        .start(&gw);
    let root_cx = Context::new().with_span(root);
    let call = gw
        .span_builder("POST /payments")
        .with_kind(SpanKind::Client)
        .with_attributes([KeyValue::new("correlation_id", corr.clone())])
        .start_with_context(&gw, &root_cx);
    let call_cx = root_cx.with_span(call);
    let trace_id = call_cx.span().span_context().trace_id();
    gateway.log(&root_cx, || {
        tracing::info!(correlation_id = corr.as_str(), order = 42, "order received");
    });

    // payments: a remote child that fails, and a log that only its trace ties to the request.
    let pay = payments.tracer_for_test();
    let remote = Context::new().with_remote_span_context(call_cx.span().span_context().clone());
    let mut charge = pay
        .span_builder("charge card")
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new("correlation_id", corr.clone())])
        .start_with_context(&pay, &remote);
    charge.set_status(Status::error("card declined"));
    let charge_cx = remote.with_span(charge);
    payments.log(&charge_cx, || tracing::warn!("card declined for order 42"));
    let producer_ctx = charge_cx.span().span_context().clone();
    charge_cx.span().end();
    call_cx.span().end();
    root_cx.span().end();

    // notifications: an asynchronous hop, a new trace linked to the producer.
    let notif = notifications.traces.tracer("test");
    let consume = notif
        .span_builder("order.declined process")
        .with_kind(SpanKind::Consumer)
        .with_links(vec![Link::with_context(producer_ctx.clone())])
        .with_attributes([KeyValue::new("app.correlation_id", corr.clone())])
        .start(&notif);
    let consume_cx = Context::new().with_span(consume);
    let async_trace_id = consume_cx.span().span_context().trace_id();
    notifications.log(&consume_cx, || {
        tracing::info!(correlation_id = corr.as_str(), "notification recorded");
    });
    consume_cx.span().end();

    gateway.flush().await;
    payments.flush().await;
    notifications.flush().await;

    // The trace by ID: three spans, two services, parent/child intact.
    let (status, body) = c.get(&format!("/api/traces/{trace_id}")).await;
    assert_eq!(status, 200, "{body}");
    let trace = &body["data"][0];
    assert_eq!(trace["traceID"], trace_id.to_string());
    let spans = spans_by_name(trace);
    assert_eq!(spans.len(), 3, "{trace}");
    let root = &spans["POST /api/orders"];
    let call = &spans["POST /payments"];
    let charge = &spans["charge card"];
    assert_eq!(root["references"].as_array().map(Vec::len), Some(0));
    assert_eq!(call["references"][0]["refType"], "CHILD_OF");
    assert_eq!(call["references"][0]["spanID"], root["spanID"]);
    assert_eq!(charge["references"][0]["spanID"], call["spanID"]);
    assert_eq!(tag(root, "http.request.method"), Some(&"POST".into()));
    assert_eq!(tag(root, "http.response.status_code"), Some(&201.into()));
    assert_eq!(tag(root, "span.kind"), Some(&"server".into()));
    assert_eq!(tag(call, "span.kind"), Some(&"client".into()));
    assert_eq!(tag(charge, "error"), Some(&true.into()));
    assert_eq!(
        tag(charge, "otel.status_description"),
        Some(&"card declined".into())
    );
    assert_eq!(tag(root, "error"), None);
    let processes = trace["processes"].as_object().expect("processes");
    let services: std::collections::BTreeSet<&str> = processes
        .values()
        .filter_map(|p| p["serviceName"].as_str())
        .collect();
    assert_eq!(services, ["gateway", "payments"].into_iter().collect());
    let charge_process = &processes[charge["processID"].as_str().expect("processID")];
    assert_eq!(charge_process["serviceName"], "payments");
    assert!(
        charge_process["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["key"] == "deployment.environment.name")),
        "{charge_process}"
    );
    let micros = root["startTime"].as_i64().expect("startTime");
    assert!(
        micros > 1_700_000_000_000_000 && micros < 5_000_000_000_000_000,
        "µs: {micros}"
    );

    // Search: by service, by operation and kind, by tag, by duration.
    let (_, services) = c.get("/api/services").await;
    for s in ["gateway", "payments", "notifications"] {
        assert!(
            services["data"]
                .as_array()
                .is_some_and(|a| a.contains(&s.into())),
            "{services}"
        );
    }
    let (_, ops) = c
        .get("/api/operations?service=gateway&spanKind=client")
        .await;
    assert_eq!(
        ops["data"],
        serde_json::json!([{"name": "POST /payments", "spanKind": "client"}])
    );
    let (_, ops) = c.get("/api/services/gateway/operations").await;
    assert_eq!(
        ops["data"],
        serde_json::json!(["POST /api/orders", "POST /payments"])
    );
    let tags = urlencode(&format!(r#"{{"correlation_id":"{corr}"}}"#));
    let (_, found) = c
        .get(&format!("/api/traces?service=gateway&tags={tags}"))
        .await;
    assert_eq!(found["data"][0]["traceID"], trace_id.to_string(), "{found}");
    let (_, found) = c
        .get("/api/traces?service=payments&tags=%7B%22error%22%3A%22true%22%7D")
        .await;
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{found}");
    let (_, none) = c.get("/api/traces?service=gateway&operation=nope").await;
    assert_eq!(none["data"], serde_json::json!([]));
    let (_, none) = c.get("/api/traces?service=gateway&minDuration=1h").await;
    assert_eq!(none["data"], serde_json::json!([]));

    // Logs by correlation ID: the ones that carry it, from two services.
    let (status, logs) = c.get(&format!("/api/v1/logs?correlation_id={corr}")).await;
    assert_eq!(status, 200, "{logs}");
    let bodies: Vec<&str> = logs["data"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(|l| l["body"].as_str())
        .collect();
    assert_eq!(bodies.len(), 2, "{logs}");
    assert!(bodies.contains(&"order received") && bodies.contains(&"notification recorded"));
    let received = logs["data"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l["body"] == "order received"))
        .expect("gateway log");
    assert_eq!(received["service"], "gateway");
    assert_eq!(received["trace_id"], trace_id.to_string());
    assert_eq!(received["severity"], "INFO");
    assert_eq!(received["attributes"]["order"], 42);
    let (_, warn) = c
        .get("/api/v1/logs?service=payments&severity_min=warn")
        .await;
    assert_eq!(
        warn["data"][0]["body"], "card declined for order 42",
        "{warn}"
    );
    let (_, text) = c.get("/api/v1/logs?q=DECLINED").await;
    assert_eq!(text["data"].as_array().map(Vec::len), Some(1), "{text}");

    // The timeline: both traces, the log tied only by its trace, in time order.
    let (status, tl) = c.get(&format!("/api/v1/correlations/{corr}")).await;
    assert_eq!(status, 200, "{tl}");
    let traces: Vec<&str> = tl["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(traces.len(), 2, "{tl}");
    assert!(traces.contains(&trace_id.to_string().as_str()));
    assert!(traces.contains(&async_trace_id.to_string().as_str()));
    let summary = tl["trace_summaries"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["trace_id"] == trace_id.to_string()))
        .expect("summary of the request's trace");
    assert_eq!(summary["span_count"], 3, "{summary}");
    assert_eq!(summary["root_service"], "gateway");
    assert_eq!(summary["root_operation"], "POST /api/orders");
    assert_eq!(summary["error"], true, "a failed span marks the trace");
    let items = tl["items"].as_array().expect("items");
    let spans = items.iter().filter(|i| i["kind"] == "span").count();
    let logs: Vec<&str> = items
        .iter()
        .filter(|i| i["kind"] == "log")
        .filter_map(|i| i["body"].as_str())
        .collect();
    assert_eq!(spans, 4, "{tl}");
    assert_eq!(logs.len(), 3, "{tl}");
    assert!(logs.contains(&"card declined for order 42"));
    let times: Vec<i64> = items
        .iter()
        .filter_map(|i| i["time_unix_nano"].as_i64())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "ordered by time: {times:?}"
    );
    for item in items {
        for key in ["kind", "service", "trace_id", "time"] {
            assert!(item[key].is_string(), "{key} missing in {item}");
        }
    }
    let consumer = items
        .iter()
        .find(|i| i["name"] == "order.declined process")
        .expect("consumer span");
    assert_eq!(
        consumer["links"][0]["span_id"],
        producer_ctx.span_id().to_string()
    );
    let (status, _) = c.get("/api/v1/correlations/no-such-request").await;
    assert_eq!(status, 404);

    // The service graph and RED, from the same spans (the defaults: the last hour).
    let (status, deps) = c.get("/api/dependencies").await;
    assert_eq!(status, 200, "{deps}");
    let links = deps["data"].as_array().expect("links");
    let edges: Vec<(&str, &str, u64, u64)> = links
        .iter()
        .map(|l| {
            (
                l["parent"].as_str().unwrap_or_default(),
                l["child"].as_str().unwrap_or_default(),
                l["callCount"].as_u64().unwrap_or_default(),
                l["errorCount"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        edges,
        [
            // The charge failed.
            ("gateway", "payments", 1, 1),
            // The asynchronous hop: notifications' new trace links to payments' span.
            ("payments", "notifications", 1, 0),
        ],
        "{deps}"
    );
    assert!(
        links
            .iter()
            .all(|l| l["p99Ms"].as_f64().is_some_and(|ms| ms >= 0.0)),
        "{deps}"
    );
    assert_eq!(deps["truncated"], false);
    let (status, red) = c.get("/api/v1/red?service=payments&step=1m").await;
    assert_eq!(status, 200, "{red}");
    let series = red["series"].as_array().expect("series");
    assert_eq!(series[0]["operation"], serde_json::Value::Null);
    assert_eq!(series[1]["operation"], "charge card");
    let points = series[0]["points"].as_array().expect("points");
    assert_eq!(points.len(), 60, "an hour in steps of a minute");
    let sum = |key: &str| points.iter().filter_map(|p| p[key].as_u64()).sum::<u64>();
    assert_eq!((sum("requests"), sum("errors")), (1, 1), "{red}");
    let (status, red) = c
        .get("/api/v1/red?service=gateway&operation=POST%20%2Fapi%2Forders")
        .await;
    assert_eq!(status, 200, "{red}");
    let series = red["series"].as_array().expect("series");
    assert_eq!(series.len(), 1, "one operation asked: one series");
    let served: u64 = series[0]["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter_map(|p| p["requests"].as_u64())
        .sum();
    assert_eq!(
        served, 1,
        "the gateway's client span is not a request it served"
    );
    for (bad, says) in [
        ("/api/v1/red", "service is required"),
        ("/api/v1/red?service=gateway&step=soon", "step=\"soon\""),
        ("/api/v1/red?service=gateway&step=1s", "at most 1440"),
        (
            "/api/v1/red?service=gateway&start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            "before end",
        ),
        ("/api/dependencies?endTs=yesterday", "endTs=\"yesterday\""),
        ("/api/dependencies?lookback=-1", "lookback=\"-1\""),
    ] {
        let (status, body) = c.get(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let msg = body["errors"][0]["msg"].as_str().unwrap_or_default();
        assert!(msg.contains(says), "{bad}: {msg}");
    }

    // The collector counted what it took.
    let metrics = c.metrics().await;
    // Label values in Prometheus's snake_case.
    assert!(
        ["otlp_http_protobuf", "otlp_http_json", "otlp_grpc"]
            .iter()
            .any(|p| metrics.contains(&format!(
                r#"signal="spans",protocol="{p}",outcome="accepted""#
            ))),
        "{metrics}"
    );
    assert!(!metrics.contains("Accepted"), "{metrics}");
    c.shutdown().await;
}

trait TracerForTest {
    fn tracer_for_test(&self) -> opentelemetry_sdk::trace::SdkTracer;
}

impl TracerForTest for Service {
    fn tracer_for_test(&self) -> opentelemetry_sdk::trace::SdkTracer {
        self.traces.tracer("test")
    }
}

/// One instance of `inventory` at `version`, exporting spans over OTLP/HTTP protobuf.
fn inventory_at(version: &str, c: &TestCollector) -> SdkTracerProvider {
    let resource = Resource::builder_empty()
        .with_service_name("inventory")
        .with_attribute(KeyValue::new("service.version", version.to_string()))
        .with_attribute(KeyValue::new(
            "service.instance.id",
            format!("inventory-{version}"),
        ))
        .build();
    let spans = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(c.otlp_http("/v1/traces"))
        .build()
        .expect("span exporter");
    SdkTracerProvider::builder()
        .with_resource(resource)
        .with_batch_exporter(spans)
        .build()
}

/// A canary's two versions of one service, as two SDKs report them: RED and the served
/// requests of one `service.version` count only that version's server spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_of_one_service_are_told_apart() {
    let c = TestCollector::start().await;
    let started = opentelemetry::time::now();
    for (version, served, failed) in [("v1", 5, 0), ("v2", 3, 1)] {
        let provider = inventory_at(version, &c);
        let tracer = provider.tracer("test");
        for k in 0..served {
            let mut span = tracer
                .span_builder("GET /products")
                .with_kind(SpanKind::Server)
                .start(&tracer);
            if k < failed {
                span.set_status(Status::error("503"));
            }
            span.end();
        }
        // A call it made is not a request it served.
        tracer
            .span_builder("GET stock")
            .with_kind(SpanKind::Client)
            .start(&tracer)
            .end();
        tokio::task::spawn_blocking(move || provider.shutdown().expect("shutdown"))
            .await
            .expect("flush");
    }
    let client = QueryClient::new(&c.api(""), None, std::time::Duration::from_secs(5));
    let start_ns = started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .expect("after the epoch")
        - 1_000_000_000;
    let requests = |version: Option<&str>| RequestsQuery {
        service: "inventory".into(),
        version: version.map(str::to_string),
        start_ns,
        ..Default::default()
    };
    let v2 = client.requests(&requests(Some("v2"))).await.expect("v2");
    let errors = v2.requests.iter().filter(|r| r.error).count();
    assert_eq!((v2.requests.len(), errors), (3, 1), "{v2:?}");
    assert_eq!(v2.version.as_deref(), Some("v2"));
    let all = client.requests(&requests(None)).await.expect("all");
    assert_eq!(all.requests.len(), 8, "both versions, server spans only");
    let none = client.requests(&requests(Some("v3"))).await.expect("v3");
    assert!(none.requests.is_empty(), "nobody runs v3: {none:?}");

    let red = client
        .red(&RedQuery {
            service: "inventory".into(),
            version: Some("v1".into()),
            start_ns: Some(start_ns),
            ..Default::default()
        })
        .await
        .expect("red");
    assert_eq!(red.version.as_deref(), Some("v1"));
    let (served, errors) = red.series[0]
        .points
        .iter()
        .fold((0, 0), |(n, e), p| (n + p.requests, e + p.errors));
    assert_eq!((served, errors), (5, 0), "v1's requests only");

    // A window that ends before it starts, and no start at all, are refused with the reason.
    for (bad, says) in [
        ("/api/v1/requests?service=inventory", "start is required"),
        (
            "/api/v1/requests?service=inventory&start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z",
            "before end",
        ),
    ] {
        let (status, body) = c.get(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let refused: gauntlet_query_api::ErrorBody =
            serde_json::from_value(body).expect("the error body");
        assert!(refused.errors[0].msg.contains(says), "{bad}: {refused:?}");
    }
    c.shutdown().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_http_protobuf() {
    round_trip(Transport::HttpProtobuf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_http_json() {
    round_trip(Transport::HttpJson).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_grpc() {
    round_trip(Transport::Grpc).await;
}
