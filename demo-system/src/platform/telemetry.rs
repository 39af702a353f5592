//! Each demo service's OpenTelemetry: traces, logs and metrics (see [`super::meters`])
//! exported over OTLP/HTTP to the collector, W3C trace context and baggage propagated on every HTTP call and inside outbox
//! events, and the request's correlation ID on every span and log.
//!
//! The correlation ID travels as the baggage entry `correlation_id`. [`trace_request`]
//! puts it there (from `X-Correlation-ID`, or the incoming baggage, or a new UUID v7), and
//! two processors copy it from the current context onto every span and log record, so no
//! code has to remember to. `tracing-opentelemetry`'s context activation makes the span's
//! context current whenever a span is entered.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{LogExporter, MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogProcessor, SdkLogRecord, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{SdkTracerProvider, Span, SpanData, SpanProcessor};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The baggage key and span/log attribute that carries the correlation ID.
pub const CORRELATION_KEY: &str = "correlation_id";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// The installed providers; [`Telemetry::shutdown`] flushes what is still buffered.
#[derive(Debug)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
    logs: Option<SdkLoggerProvider>,
    metrics: Option<SdkMeterProvider>,
}

/// How often a service exports its metrics: short, so a chaos probe or the UI sees a
/// change within seconds (the SDK's default is a minute).
pub const METRIC_INTERVAL: Duration = Duration::from_secs(5);

/// Copies the correlation ID from the parent context's baggage onto each new span.
#[derive(Debug)]
struct CorrelationSpans;

impl SpanProcessor for CorrelationSpans {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        use opentelemetry::trace::Span as _;
        if let Some(v) = cx.baggage().get(CORRELATION_KEY) {
            span.set_attribute(KeyValue::new(CORRELATION_KEY, v.to_string()));
        }
    }
    fn on_end(&self, _span: SpanData) {}
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// Copies the correlation ID from the current context's baggage onto each log record
/// (unless the event set one itself). Runs before the exporting processor.
#[derive(Debug)]
struct CorrelationLogs;

impl LogProcessor for CorrelationLogs {
    fn emit(&self, record: &mut SdkLogRecord, _scope: &opentelemetry::InstrumentationScope) {
        use opentelemetry::logs::LogRecord as _;
        let has = record
            .attributes_iter()
            .any(|(k, _)| k.as_str() == CORRELATION_KEY);
        if !has
            && let Some(v) =
                Context::map_current(|cx| cx.baggage().get(CORRELATION_KEY).map(|v| v.to_string()))
        {
            record.add_attribute(CORRELATION_KEY, v);
        }
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

impl Telemetry {
    /// Installs this process's subscriber: logs to stderr always; traces, logs and metrics
    /// to `otlp_http` (e.g. `http://127.0.0.1:4318`) when given. `instance` becomes
    /// `service.instance.id`: two instances' metrics are two series (Prometheus'
    /// `instance` label), not one.
    pub fn init(
        service: &str,
        version: &str,
        instance: &str,
        otlp_http: Option<&str>,
    ) -> Result<Self, TelemetryError> {
        global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]));
        let filter = || {
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,h2=warn,hyper=warn,reqwest=warn".into())
        };
        // The supervisor sends a service's output to a log file: colour codes only on a
        // terminal.
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter());
        let Some(endpoint) = otlp_http else {
            tracing_subscriber::registry()
                .with(fmt)
                .try_init()
                .map_err(|_| TelemetryError::AlreadyInstalled)?;
            return Ok(Self {
                traces: None,
                logs: None,
                metrics: None,
            });
        };
        let endpoint = endpoint.trim_end_matches('/');
        let resource = Resource::builder_empty()
            .with_service_name(service.to_string())
            .with_attribute(KeyValue::new("service.version", version.to_string()))
            .with_attribute(KeyValue::new("service.namespace", "gauntlet-demo"))
            .with_attribute(KeyValue::new("service.instance.id", instance.to_string()))
            .build();
        let spans = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let logs = LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{endpoint}/v1/logs"))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let metrics = MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{endpoint}/v1/metrics"))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let metrics = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(
                PeriodicReader::builder(metrics)
                    .with_interval(METRIC_INTERVAL)
                    .build(),
            )
            .build();
        global::set_meter_provider(metrics.clone());
        super::meters::install();
        let traces = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_span_processor(CorrelationSpans)
            .with_batch_exporter(spans)
            .build();
        let logs = SdkLoggerProvider::builder()
            .with_resource(resource)
            .with_log_processor(CorrelationLogs)
            .with_batch_exporter(logs)
            .build();
        // The exporters' own HTTP clients log through `tracing` too: keep those out of OTLP.
        let otel_filter = || {
            EnvFilter::new(
                "info,h2=off,hyper=off,hyper_util=off,reqwest=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off",
            )
        };
        tracing_subscriber::registry()
            .with(fmt)
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(traces.tracer(service.to_string()))
                    .with_filter(otel_filter()),
            )
            .with(
                opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&logs)
                    .with_filter(otel_filter()),
            )
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInstalled)?;
        Ok(Self {
            traces: Some(traces),
            logs: Some(logs),
            metrics: Some(metrics),
        })
    }

    /// Flushes and stops the exporters (blocking: call it off the async runtime or at exit).
    pub fn shutdown(self) {
        if let Some(t) = self.traces {
            let _ = t.shutdown();
        }
        if let Some(l) = self.logs {
            let _ = l.shutdown();
        }
        if let Some(m) = self.metrics {
            let _ = m.shutdown();
        }
    }
}

/// Axum middleware: a SERVER span for the request, continuing the caller's trace and
/// baggage, with the correlation ID taken from `X-Correlation-ID`, the baggage, or new.
/// The ID is also set on the request (for handlers) and echoed on the response.
pub async fn trace_request(mut req: Request, next: Next) -> Response {
    // Health checks and feed polls repeat every few seconds: spans for them would bury
    // the requests people look for.
    let path = req.uri().path();
    if path.starts_with("/health/") || path == "/events" {
        return next.run(req).await;
    }
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(req.headers())));
    let from_header = req
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string);
    let correlation = from_header
        .or_else(|| parent.baggage().get(CORRELATION_KEY).map(|v| v.to_string()))
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let parent = parent.with_baggage([KeyValue::new(CORRELATION_KEY, correlation.clone())]);
    if let Ok(v) = HeaderValue::from_str(&correlation) {
        req.headers_mut().insert("x-correlation-id", v);
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let method = req.method().to_string();
    let mirrored = req
        .headers()
        .contains_key(crate::gateway::shadow::MIRROR_HEADER);
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (server_address, server_port) = match host.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse::<u16>().ok()),
        None => (host.clone(), None),
    };
    // A gRPC call is named by its method (`package.Service/Method`), as RPC spans are.
    let grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/grpc"));
    let (name, route) = if grpc {
        let path = req.uri().path().to_string();
        (path.trim_start_matches('/').to_string(), path)
    } else {
        (format!("{method} {route}"), route)
    };
    let span = tracing::info_span!(
        "request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        url.path = %req.uri().path(),
        server.address = %server_address,
        server.port = server_port,
        http.response.status_code = tracing::field::Empty,
        correlation_id = %correlation,
        shadow.mirror = tracing::field::Empty,
        // Set by a route that carries RPC over HTTP (JSON-RPC), and for gRPC.
        rpc.system = tracing::field::Empty,
        rpc.service = tracing::field::Empty,
        rpc.method = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    if grpc {
        super::grpc::describe(&span, &route);
    }
    // A copy the gateway mirrored to compare answers (shadow deployment), not a client's.
    if mirrored {
        span.record("shadow.mirror", true);
    }
    let _ = span.set_parent(parent);
    let started = std::time::Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    super::meters::served(&method, &route, status, started.elapsed().as_secs_f64());
    span.record("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
    if grpc {
        super::grpc::record_server_status(&span, resp.headers());
    }
    if let Ok(v) = HeaderValue::from_str(&correlation) {
        resp.headers_mut().insert("x-correlation-id", v);
    }
    resp
}

/// The current trace context and baggage as W3C headers (`traceparent`, `tracestate`,
/// `baggage`), to send on an HTTP call or store with an outbox event.
pub fn current_headers() -> HashMap<String, String> {
    headers_of(&tracing::Span::current())
}

/// A CONSUMER span for processing an event: a new trace (the event was consumed later, by
/// another service), linked to the span that published it, carrying its baggage.
pub fn consumer_span(
    kind: &str,
    traceparent: Option<&str>,
    baggage: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "consume",
        otel.name = %format!("{kind} process"),
        otel.kind = "consumer",
        messaging.operation.type = "process",
        messaging.message.type = %kind,
        messaging.system = tracing::field::Empty,
        messaging.destination.name = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
    );
    linked_root(span, traceparent, baggage)
}

/// A PRODUCER span for sending an event to a broker, a child of the span that published it
/// (the event's `traceparent`, carried in the outbox), so the request's trace shows when
/// its event left; the message's headers then carry this span's context.
pub fn producer_span(
    system: &'static str,
    destination: &str,
    routing_key: &str,
    kind: &str,
    message_id: &str,
    traceparent: Option<&str>,
    baggage: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "publish",
        otel.name = %format!("publish {destination}"),
        otel.kind = "producer",
        messaging.system = system,
        messaging.operation.type = "send",
        messaging.destination.name = %destination,
        messaging.rabbitmq.destination.routing_key = %routing_key,
        messaging.message.id = %message_id,
        messaging.message.type = %kind,
    );
    let _ = span.set_parent(extract(traceparent, baggage));
    span
}

/// The context a `traceparent` and `baggage` carry (an event's, a message's).
fn extract(traceparent: Option<&str>, baggage: Option<&str>) -> Context {
    let mut carrier = axum::http::HeaderMap::new();
    for (k, v) in [("traceparent", traceparent), ("baggage", baggage)] {
        if let Some(v) = v.and_then(|v| HeaderValue::from_str(v).ok()) {
            carrier.insert(k, v);
        }
    }
    global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(&carrier)))
}

/// The W3C trace context of `span` (`traceparent`, `baggage`), for a message's headers.
pub fn headers_of(span: &tracing::Span) -> HashMap<String, String> {
    let cx = span.context();
    let mut headers = axum::http::HeaderMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut HeaderInjector(&mut headers)));
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// Makes `span` the root of a new trace that carries on the story of the context in
/// `traceparent` and `baggage` (an event's, an order's): it keeps that baggage, so the
/// correlation ID crosses (recorded on `span`'s `correlation_id` field, which it must
/// declare), and links to that span. For work done later than the request it belongs to:
/// consuming its event, resuming its saga.
pub fn linked_root(
    span: tracing::Span,
    traceparent: Option<&str>,
    baggage: Option<&str>,
) -> tracing::Span {
    let producer = extract(traceparent, baggage);
    if let Some(correlation) = producer.baggage().get(CORRELATION_KEY) {
        span.record(CORRELATION_KEY, correlation.to_string());
    }
    let root = Context::new().with_baggage(
        producer
            .baggage()
            .iter()
            .map(|(k, (v, _))| KeyValue::new(k.clone(), v.clone())),
    );
    let _ = span.set_parent(root);
    let producer_span = producer.span().span_context().clone();
    if producer_span.is_valid() {
        span.add_link(producer_span);
    }
    span
}

/// The correlation ID of the current span's context, if it carries one.
pub fn current_correlation_id() -> Option<String> {
    let cx = tracing::Span::current().context();
    cx.baggage().get(CORRELATION_KEY).map(|v| v.to_string())
}
