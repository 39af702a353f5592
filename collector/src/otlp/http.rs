//! OTLP/HTTP: `POST /v1/traces`, `/v1/logs` and `/v1/metrics`, protobuf or JSON on the same
//! port, gzip or not. The response mirrors the request's encoding. A store that keeps no
//! metrics (both bundled stores do) makes `/v1/metrics` answer 404 with a google.rpc.Status
//! saying so, so a misconfigured SDK is told, not ignored.
//! Browsers' exports get CORS answers for the origins `--cors-origin` allows, none by default.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::convert::{self, Converted};
use super::status::{Format, RpcError};
use super::{json, trace_decode};
use crate::ingest::{IngestError, Pipeline};
use crate::metrics::{Metrics, Outcome, Protocol, Signal};
use crate::payload::{self, PayloadError};

#[derive(Clone)]
pub struct HttpReceiver {
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
    /// Largest body accepted, before and after decompression.
    pub max_body: usize,
    /// Bytes of bodies held at once, shared with the other receivers.
    pub budget: payload::BodyBudget,
}

/// A browser origin allowed to export to OTLP/HTTP (`--cors-origin`): `scheme://host[:port]`,
/// or `*` for any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigin {
    Any,
    Exact(axum::http::HeaderValue),
}

impl std::str::FromStr for CorsOrigin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "*" {
            return Ok(Self::Any);
        }
        let bad = |why: &str| {
            format!(
                "{s:?} is not an origin ({why}): give scheme://host[:port], as a browser sends it, e.g. http://localhost:3000, or * for any"
            )
        };
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| bad("no http:// or https://"))?;
        if rest.is_empty() || rest.contains('/') {
            return Err(bad("a host and nothing after it"));
        }
        if !rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        {
            return Err(bad("a host name, an IP address and a port only"));
        }
        axum::http::HeaderValue::from_str(s)
            .map(Self::Exact)
            .map_err(|_| bad("not a valid header value"))
    }
}

/// The CORS answer for browsers' exports: preflights and responses carry
/// `Access-Control-Allow-Origin` for the allowed origins only; none, no CORS at all.
fn cors(origins: &[CorsOrigin]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.contains(&CorsOrigin::Any) {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| match o {
            CorsOrigin::Exact(v) => Some(v.clone()),
            CorsOrigin::Any => None,
        }))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([axum::http::Method::POST])
            // The SDKs send Content-Type and whatever headers their users configure; echoing
            // the request's list also holds where `*` does not (credentialed requests).
            .allow_headers(AllowHeaders::mirror_request())
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

pub fn router(receiver: HttpReceiver, cors_origins: &[CorsOrigin]) -> Router {
    let router = Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .fallback(unknown_path)
        // The limit is enforced while reading, in `payload`, with OTLP's error body.
        .layer(DefaultBodyLimit::disable())
        .with_state(receiver);
    match cors(cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

async fn traces(State(r): State<HttpReceiver>, headers: HeaderMap, body: Body) -> Response {
    // The reservation is held until the commit: the decoded batch is what it stands for.
    let (format, bytes, _held) = match read_body(&r, &headers, body).await {
        Ok(ok) => ok,
        Err((format, e)) => return e.into_response(format),
    };
    let converted = match decode_traces(format, &bytes) {
        Ok(converted) => converted,
        Err(msg) => return RpcError::bad_request(msg).into_response(format),
    };
    let protocol = protocol(format);
    let rejected = converted.rejected.clone();
    match commit(&r, Signal::Spans, protocol, converted).await {
        Ok(()) => respond(
            format,
            &ExportTraceServiceResponse {
                partial_success: (rejected.count > 0).then(|| ExportTracePartialSuccess {
                    rejected_spans: rejected.count,
                    error_message: rejected.message("spans"),
                }),
            },
        ),
        Err(e) => e.into_response(format),
    }
}

async fn logs(State(r): State<HttpReceiver>, headers: HeaderMap, body: Body) -> Response {
    let (format, req, _held) = match read::<ExportLogsServiceRequest>(&r, &headers, body).await {
        Ok(ok) => ok,
        Err((format, e)) => return e.into_response(format),
    };
    let protocol = protocol(format);
    let converted = convert::logs(req);
    let rejected = converted.rejected.clone();
    match commit(&r, Signal::Logs, protocol, converted).await {
        Ok(()) => respond(
            format,
            &ExportLogsServiceResponse {
                partial_success: (rejected.count > 0).then(|| ExportLogsPartialSuccess {
                    rejected_log_records: rejected.count,
                    error_message: rejected.message("log records"),
                }),
            },
        ),
        Err(e) => e.into_response(format),
    }
}

async fn metrics(State(r): State<HttpReceiver>, headers: HeaderMap, body: Body) -> Response {
    if !r.pipeline.keeps_metrics() {
        let format = content_format(&headers).unwrap_or(Format::Json);
        return RpcError::new(
            StatusCode::NOT_FOUND,
            tonic::Code::Unimplemented,
            METRICS_NOT_KEPT,
        )
        .into_response(format);
    }
    let (format, req, _held) = match read::<ExportMetricsServiceRequest>(&r, &headers, body).await {
        Ok(ok) => ok,
        Err((format, e)) => return e.into_response(format),
    };
    let protocol = protocol(format);
    let converted = super::metrics::metrics(req);
    let rejected = converted.rejected.clone();
    match commit(&r, Signal::MetricPoints, protocol, converted).await {
        Ok(()) => respond(
            format,
            &ExportMetricsServiceResponse {
                partial_success: (rejected.count > 0).then(|| ExportMetricsPartialSuccess {
                    rejected_data_points: rejected.count,
                    error_message: rejected.message("data points"),
                }),
            },
        ),
        Err(e) => e.into_response(format),
    }
}

/// What a metrics export hears from a store that keeps none.
pub const METRICS_NOT_KEPT: &str = "this collector's store does not keep metrics: turn the \
    SDK's metrics exporter off (OTEL_METRICS_EXPORTER=none)";

async fn unknown_path(headers: HeaderMap) -> Response {
    let format = content_format(&headers).unwrap_or(Format::Json);
    RpcError::new(
        StatusCode::NOT_FOUND,
        tonic::Code::NotFound,
        "unknown path: OTLP/HTTP takes POST /v1/traces, POST /v1/logs and POST /v1/metrics",
    )
    .into_response(format)
}

fn protocol(format: Format) -> Protocol {
    match format {
        Format::Protobuf => Protocol::OtlpHttpProtobuf,
        Format::Json => Protocol::OtlpHttpJson,
    }
}

fn content_format(headers: &HeaderMap) -> Option<Format> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = ct.split(';').next()?.trim().to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Some(Format::Protobuf),
        "application/json" => Some(Format::Json),
        _ => None,
    }
}

/// Checks the content type, reads and decompresses the body, decodes it.
async fn read<M: Message + Default + DeserializeOwned>(
    r: &HttpReceiver,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Format, M, payload::Reservation), (Format, RpcError)> {
    let (format, bytes, held) = read_body(r, headers, body).await?;
    decode(format, &bytes)
        .map(|m| (format, m, held))
        .map_err(|msg| (format, RpcError::bad_request(msg)))
}

/// Checks the content type, reads and decompresses the body.
async fn read_body(
    r: &HttpReceiver,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Format, bytes::Bytes, payload::Reservation), (Format, RpcError)> {
    let Some(format) = content_format(headers) else {
        let got = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return Err((
            Format::Json,
            RpcError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
                format!(
                    "unsupported Content-Type {got:?}: send application/x-protobuf or application/json"
                ),
            ),
        ));
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let (bytes, held) = payload::read(body, encoding, r.max_body, &r.budget)
        .await
        .map_err(|e| (format, payload_error(e)))?;
    Ok((format, bytes, held))
}

/// An OTLP/HTTP traces body (decompressed) as the model's spans: protobuf straight from its
/// bytes ([`trace_decode`]), JSON through `opentelemetry-proto`'s types. What the receiver,
/// the fuzz target and its corpus replay decode with.
pub fn decode_traces(format: Format, bytes: &[u8]) -> Result<Converted, String> {
    match format {
        Format::Protobuf => {
            trace_decode::traces(bytes).map_err(|e| format!("invalid OTLP protobuf: {e}"))
        }
        Format::Json => json::decode::<ExportTraceServiceRequest>(bytes).map(convert::traces),
    }
}

/// An OTLP/HTTP body (decompressed) as the request type `M`; the error says what is wrong.
/// What the receivers, the fuzz targets and their corpus replay (`tests/fuzz_corpus.rs`)
/// all decode with.
pub fn decode<M: Message + Default + DeserializeOwned>(
    format: Format,
    bytes: &[u8],
) -> Result<M, String> {
    match format {
        Format::Protobuf => M::decode(bytes).map_err(|e| format!("invalid OTLP protobuf: {e}")),
        Format::Json => json::decode::<M>(bytes),
    }
}

pub fn payload_error(e: PayloadError) -> RpcError {
    if let PayloadError::OverBudget { .. } = e {
        return RpcError::new(
            StatusCode::TOO_MANY_REQUESTS,
            tonic::Code::Unavailable,
            e.to_string(),
        )
        .retry_after(payload::BUDGET_RETRY_AFTER);
    }
    let (http, code) = match &e {
        PayloadError::TooLarge { .. } | PayloadError::DecompressedTooLarge { .. } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
        ),
        PayloadError::UnsupportedEncoding(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
        ),
        PayloadError::BadGzip(_) | PayloadError::Read(_) | PayloadError::OverBudget { .. } => {
            (StatusCode::BAD_REQUEST, tonic::Code::InvalidArgument)
        }
    };
    let hint = match &e {
        PayloadError::TooLarge { .. } | PayloadError::DecompressedTooLarge { .. } => {
            "; send smaller batches (e.g. OTEL_BSP_MAX_EXPORT_BATCH_SIZE) or raise --max-body"
        }
        _ => "",
    };
    RpcError::new(http, code, format!("{e}{hint}"))
}

/// Counts and commits; maps a refusal to 429/503 with `Retry-After`.
pub async fn commit(
    r: &HttpReceiver,
    signal: Signal,
    protocol: Protocol,
    converted: Converted,
) -> Result<(), RpcError> {
    let Converted { batch, rejected } = converted;
    let n = batch.rows() as u64;
    r.metrics
        .count(signal, protocol, Outcome::Rejected, rejected.count as u64);
    match r.pipeline.submit(batch).await {
        Ok(()) => {
            r.metrics.count(signal, protocol, Outcome::Accepted, n);
            Ok(())
        }
        Err(e) => {
            r.metrics.count(signal, protocol, Outcome::Refused, n);
            Err(ingest_error(&e))
        }
    }
}

pub fn ingest_error(e: &IngestError) -> RpcError {
    let (http, code) = match e {
        IngestError::Busy { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            tonic::Code::ResourceExhausted,
        ),
        IngestError::Store(_) | IngestError::ShuttingDown => {
            (StatusCode::SERVICE_UNAVAILABLE, tonic::Code::Unavailable)
        }
    };
    RpcError::new(http, code, e.to_string()).retry_after(e.retry_after())
}

fn respond<M: Message + Serialize>(format: Format, msg: &M) -> Response {
    let body = match format {
        Format::Protobuf => msg.encode_to_vec(),
        Format::Json => serde_json::to_vec(msg).unwrap_or_default(),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, format.content_type())],
        body,
    )
        .into_response()
}
