//! The generator's own telemetry (`--otlp URL`): a span for a sample of requests and for
//! every failed one, with the same trace and span IDs as the `traceparent` the request
//! carried, so the service's side of the trace joins it; and run markers (start, stop, one
//! per threshold verdict) in one trace whose `correlation_id` is the run ID, so the load
//! window is one query away. Sent as OTLP/HTTP protobuf, in batches, off the hot path.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gauntlet_query_api::markers::RUN_ID_KEY;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use prost::Message;
use tokio::sync::mpsc;

/// Most spans a run exports for failed requests (the sample is extra): a run that fails
/// everything must not flood the collector.
const MAX_FAILURE_SPANS: u64 = 2_000;

/// IDs for one request's W3C trace context.
#[derive(Debug, Clone, Copy)]
pub struct TraceIds {
    pub trace: [u8; 16],
    pub span: [u8; 8],
}

impl TraceIds {
    pub fn random() -> Self {
        Self {
            trace: fastrand::u128(1..).to_be_bytes(),
            span: fastrand::u64(1..).to_be_bytes(),
        }
    }

    /// `00-<trace>-<span>-01`: sampled, so the services record their side.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-01",
            const_hex::encode(self.trace),
            const_hex::encode(self.span)
        )
    }

    pub fn trace_hex(&self) -> String {
        const_hex::encode(self.trace)
    }
}

/// What a request span says.
#[derive(Debug, Clone)]
pub struct RequestSpan {
    pub ids: TraceIds,
    pub name: String,
    pub scenario: String,
    pub method: String,
    pub url: String,
    pub correlation_id: String,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub failed: bool,
    pub start: SystemTime,
    pub end: SystemTime,
}

/// The exporter's handle; cheap to clone.
#[derive(Clone, Debug)]
pub struct Exporter {
    tx: mpsc::Sender<Span>,
    run_id: String,
    run_trace: [u8; 16],
    sample: f64,
    failures: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

impl Exporter {
    /// Starts the background sender to `endpoint` (an OTLP/HTTP base URL such as
    /// `http://127.0.0.1:4318`), whose spans say they come from `service`
    /// (`gauntlet-loadgen`, `gauntlet-chaos`); returns the handle and the task to join at
    /// the end.
    pub fn start(
        endpoint: &str,
        service: &'static str,
        run_id: &str,
        sample: f64,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(8_192);
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let task = tokio::spawn(send_batches(url, service, rx));
        (
            Self {
                tx,
                run_id: run_id.to_string(),
                run_trace: fastrand::u128(1..).to_be_bytes(),
                sample: sample.clamp(0.0, 1.0),
                failures: Default::default(),
            },
            task,
        )
    }

    /// Whether a request with this outcome should be exported.
    pub fn wants(&self, failed: bool) -> bool {
        if failed
            && self
                .failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                < MAX_FAILURE_SPANS
        {
            return true;
        }
        self.sample > 0.0 && fastrand::f64() < self.sample
    }

    /// Queues a request's span; drops it rather than wait if the queue is full.
    pub fn request(&self, r: RequestSpan) {
        let mut attributes = vec![
            text("http.request.method", r.method),
            text("url.full", r.url),
            text("correlation_id", r.correlation_id),
            text(RUN_ID_KEY, self.run_id.clone()),
            text("gauntlet.scenario", r.scenario),
        ];
        if let Some(s) = r.status {
            attributes.push(kv(
                "http.response.status_code",
                any_value::Value::IntValue(i64::from(s)),
            ));
        }
        if let Some(e) = &r.error {
            attributes.push(text("error.type", e.clone()));
        }
        let span = Span {
            trace_id: r.ids.trace.to_vec(),
            span_id: r.ids.span.to_vec(),
            name: r.name,
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: nanos(r.start),
            end_time_unix_nano: nanos(r.end).max(nanos(r.start)),
            attributes,
            status: Some(Status {
                code: if r.failed {
                    status::StatusCode::Error as i32
                } else {
                    status::StatusCode::Unset as i32
                },
                message: r.error.unwrap_or_default(),
            }),
            ..Default::default()
        };
        let _ = self.tx.try_send(span);
    }

    /// Queues a run marker (`load.start`, `load.stop`, `load.threshold`): a span in the
    /// run's trace carrying the run ID as its correlation ID.
    pub async fn marker(
        &self,
        name: &str,
        start: SystemTime,
        end: SystemTime,
        attrs: Vec<(String, String)>,
        failed: bool,
    ) {
        let mut attributes = vec![
            text("correlation_id", self.run_id.clone()),
            text(RUN_ID_KEY, self.run_id.clone()),
        ];
        attributes.extend(attrs.into_iter().map(|(k, v)| text(&k, v)));
        let span = Span {
            trace_id: self.run_trace.to_vec(),
            span_id: fastrand::u64(1..).to_be_bytes().to_vec(),
            name: name.into(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: nanos(start),
            end_time_unix_nano: nanos(end).max(nanos(start)),
            attributes,
            status: Some(Status {
                code: if failed {
                    status::StatusCode::Error as i32
                } else {
                    status::StatusCode::Ok as i32
                },
                message: String::new(),
            }),
            ..Default::default()
        };
        let _ = self.tx.send(span).await;
    }

    /// The trace ID (hex) that holds the run's markers.
    pub fn run_trace_hex(&self) -> String {
        const_hex::encode(self.run_trace)
    }
}

async fn send_batches(url: String, service: &'static str, mut rx: mpsc::Receiver<Span>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut batch = Vec::new();
    let every = Duration::from_millis(500);
    let mut last = tokio::time::Instant::now();
    loop {
        let wait = every.saturating_sub(last.elapsed());
        let closed = match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(span)) => {
                batch.push(span);
                while batch.len() < 512 {
                    match rx.try_recv() {
                        Ok(s) => batch.push(s),
                        Err(_) => break,
                    }
                }
                false
            }
            Ok(None) => true,
            Err(_) => false,
        };
        let due = batch.len() >= 512 || last.elapsed() >= every || closed;
        if due {
            last = tokio::time::Instant::now();
        }
        if due && !batch.is_empty() {
            let body = ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![text("service.name", service)],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: service.into(),
                            version: env!("CARGO_PKG_VERSION").into(),
                            ..Default::default()
                        }),
                        spans: std::mem::take(&mut batch),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            let sent = http
                .post(&url)
                .header("content-type", "application/x-protobuf")
                .body(body.encode_to_vec())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(status = %r.status(), %url, "the collector refused the generator's spans")
                }
                Err(e) => tracing::warn!(error = %e, %url, "cannot send the generator's spans"),
            }
        }
        if closed {
            return;
        }
    }
}
