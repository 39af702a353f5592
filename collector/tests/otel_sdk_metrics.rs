//! The OpenTelemetry Rust SDK's metrics exporter, with its defaults (cumulative
//! temporality), over OTLP/gRPC and OTLP/HTTP protobuf: a counter, an up-down counter, a
//! histogram and a gauge arrive, and PromQL reads them under the names the compatibility
//! specification gives them, with `job` and `instance` from the resource and the rest of the
//! resource on `target_info`.

mod common;

use common::TestCollector;
use gauntlet_query_api::prometheus::{PromResponse, QueryData};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider;
use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

enum Transport {
    HttpProtobuf,
    Grpc,
}

async fn export(c: &TestCollector, transport: Transport, service: &str) {
    let exporter = match transport {
        Transport::HttpProtobuf => MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(c.otlp_http("/v1/metrics"))
            .build(),
        Transport::Grpc => MetricExporter::builder()
            .with_tonic()
            .with_endpoint(c.otlp_grpc())
            .build(),
    }
    .expect("metric exporter");
    let provider = SdkMeterProvider::builder()
        .with_resource(
            Resource::builder_empty()
                .with_service_name(service.to_string())
                .with_attribute(KeyValue::new("service.instance.id", format!("{service}-1")))
                .with_attribute(KeyValue::new("deployment.environment.name", "test"))
                .build(),
        )
        .with_reader(PeriodicReader::builder(exporter).build())
        .build();
    let meter = provider.meter("orders");
    let requests = meter
        .u64_counter("app.orders.placed")
        .with_unit("{order}")
        .build();
    let in_flight = meter.i64_up_down_counter("app.orders.in_flight").build();
    let duration = meter
        .f64_histogram("http.server.request.duration")
        .with_unit("s")
        .with_boundaries(vec![0.1, 0.5, 1.0])
        .build();
    let temperature = meter
        .f64_gauge("app.oven.temperature")
        .with_unit("Cel")
        .build();
    let get = [KeyValue::new("http.request.method", "GET")];
    requests.add(3, &get);
    requests.add(2, &[KeyValue::new("http.request.method", "POST")]);
    in_flight.add(4, &[]);
    in_flight.add(-1, &[]);
    for v in [0.05, 0.2, 0.3, 0.7, 3.0] {
        duration.record(v, &get);
    }
    temperature.record(180.5, &[]);
    tokio::task::spawn_blocking(move || {
        provider.force_flush().expect("metrics flushed");
        provider.shutdown().expect("meter provider shut down");
    })
    .await
    .expect("flush task");
}

/// The instant vector PromQL gives for `query`, as (labels without job/instance, value).
async fn vector(c: &TestCollector, query: &str) -> Vec<(Vec<(String, String)>, f64)> {
    let url = c.api(&format!(
        "/api/v1/query?query={}",
        form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
    ));
    let answer: PromResponse<QueryData> = c
        .client
        .get(url)
        .send()
        .await
        .expect("query answered")
        .json()
        .await
        .expect("Prometheus JSON");
    let PromResponse::Success {
        data: QueryData::Vector(samples),
        ..
    } = answer
    else {
        panic!("{query}: {answer:?}");
    };
    let mut out: Vec<(Vec<(String, String)>, f64)> = samples
        .into_iter()
        .map(|s| (s.metric.into_iter().collect(), s.value.value()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn round_trip(transport: Transport, service: &str) {
    let c = TestCollector::start().await;
    export(&c, transport, service).await;
    let job = [("instance", &*format!("{service}-1")), ("job", service)];
    let with = |name: &str, extra: &[(&str, &str)]| {
        let mut l: Vec<(&str, &str)> = vec![("__name__", name)];
        l.extend_from_slice(extra);
        l.extend_from_slice(&job);
        l.sort();
        pairs(&l)
    };
    let orders = vector(&c, "app_orders_placed_total").await;
    assert_eq!(
        orders,
        vec![
            (
                with("app_orders_placed_total", &[("http_request_method", "GET")]),
                3.0
            ),
            (
                with(
                    "app_orders_placed_total",
                    &[("http_request_method", "POST")]
                ),
                2.0
            ),
        ]
    );
    assert_eq!(
        vector(&c, "app_orders_in_flight").await,
        vec![(with("app_orders_in_flight", &[]), 3.0)]
    );
    assert_eq!(
        vector(&c, "app_oven_temperature_celsius").await,
        vec![(with("app_oven_temperature_celsius", &[]), 180.5)]
    );
    let buckets = vector(&c, "http_server_request_duration_seconds_bucket").await;
    let counts: Vec<(String, f64)> = buckets
        .iter()
        .map(|(l, v)| {
            let le = l.iter().find(|(k, _)| k == "le").map(|(_, v)| v.clone());
            (le.unwrap_or_default(), *v)
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            ("+Inf".into(), 5.0),
            ("0.1".into(), 1.0),
            ("0.5".into(), 3.0),
            ("1".into(), 4.0)
        ]
    );
    let p50 = vector(
        &c,
        "histogram_quantile(0.5, http_server_request_duration_seconds_bucket)",
    )
    .await;
    // Rank 2.5 of 5 falls in (0.1, 0.5], which holds 2 of the 5 after 1 below it: 1.5 of
    // 2 into it, 0.1 + 0.4 × 0.75.
    assert_eq!(p50.len(), 1, "{p50:?}");
    assert!((p50[0].1 - 0.4).abs() < 1e-9, "{p50:?}");
    let info = vector(&c, "target_info").await;
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(
        info[0]
            .0
            .contains(&("deployment_environment_name".into(), "test".into())),
        "{info:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_metrics_over_http_protobuf() {
    round_trip(Transport::HttpProtobuf, "orders-http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_metrics_over_grpc() {
    round_trip(Transport::Grpc, "orders-grpc").await;
}

/// The OpenTelemetry Python SDK (installed by scripts/test.sh), as a user configures it with
/// the standard variables, asking for delta temporality: its counter's deltas add up, and a
/// histogram recorded inside a sampled span carries an exemplar with that span's trace (the
/// Python SDK's default `trace_based` exemplar filter). Prints the span's trace ID.
const PYTHON_METRICS: &str = r#"
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

resource = Resource.create({"service.name": "py-shop", "service.instance.id": "py-1"})
trace.set_tracer_provider(TracerProvider(resource=resource))
reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=3_600_000)
provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = provider.get_meter("shop")
orders = meter.create_counter("shop.orders", unit="{order}")
latency = meter.create_histogram("shop.checkout.duration", unit="s")
orders.add(3)
provider.force_flush()
orders.add(2)
with trace.get_tracer("shop").start_as_current_span("checkout") as span:
    latency.record(0.3)
    print(format(span.get_span_context().trace_id, "032x"))
provider.force_flush()
provider.shutdown()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_deltas_add_up_and_exemplars_carry_the_trace() {
    let c = TestCollector::start().await;
    let out = tokio::process::Command::new("python3")
        .args(["-c", PYTHON_METRICS])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", c.otlp_http(""))
        .env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .output()
        .await
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the OpenTelemetry Python SDK is missing? (bash scripts/test.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Failed to export"), "{stderr}");
    // Two deltas, 3 then 2: a counter of 5.
    let orders = vector(&c, "shop_orders_total").await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0].1, 5.0);
    assert!(orders[0].0.contains(&("instance".into(), "py-1".into())));
    let count = vector(&c, "shop_checkout_duration_seconds_count").await;
    assert_eq!(count.first().map(|x| x.1), Some(1.0), "{count:?}");
    let url = c.api(&format!(
        "/api/v1/query_exemplars?query={}",
        form_urlencoded::byte_serialize(b"shop_checkout_duration_seconds_bucket")
            .collect::<String>()
    ));
    let answer: PromResponse<Vec<gauntlet_query_api::prometheus::ExemplarSeries>> = c
        .client
        .get(url)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let PromResponse::Success { data, .. } = answer else {
        panic!("{answer:?}");
    };
    let traces: Vec<&str> = data
        .iter()
        .flat_map(|s| &s.exemplars)
        .filter_map(|e| e.labels.get("trace_id").map(String::as_str))
        .collect();
    assert_eq!(traces, [trace_id.as_str()], "{data:?}");
    c.shutdown().await;
}
