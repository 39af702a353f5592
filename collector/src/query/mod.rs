//! The HTTP query API on `--http`: Jaeger-compatible trace routes ([`jaeger`]) and service
//! dependencies ([`dependencies`]), logs ([`logs`]), correlation timelines ([`correlation`]),
//! RED metrics ([`red`]), load and chaos markers ([`markers`]), and the collector's own health, readiness and Prometheus metrics.
//! Only this module speaks the query API; [`access`] guards it.
//!
//! Every error is a JSON body in Jaeger's envelope, `{"data": null, "errors": [{"code", "msg"}]}`,
//! with the matching HTTP status; a failing store is 503, never 500.

pub mod access;
pub mod correlation;
pub mod dependencies;
pub mod jaeger;
pub mod logs;
pub mod markers;
pub mod red;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct QueryState {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/api/services", get(jaeger::services))
        .route(
            "/api/services/{service}/operations",
            get(jaeger::service_operations),
        )
        .route("/api/operations", get(jaeger::operations))
        .route("/api/traces", get(jaeger::find_traces))
        .route("/api/traces/{trace_id}", get(jaeger::get_trace))
        .route("/api/dependencies", get(dependencies::dependencies))
        .route("/api/v1/red", get(red::red))
        .route("/api/v1/markers", get(markers::markers))
        .route("/api/v1/logs", get(logs::logs))
        .route("/api/v1/correlations/{id}", get(correlation::timeline))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown path; see the README for the query API",
            )
        })
        .with_state(state)
}

/// A query API error: an HTTP status and a message saying what to change.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "query failed in the store");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store could not answer: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "data": null,
            "total": 0,
            "limit": 0,
            "offset": 0,
            "errors": [{"code": self.status.as_u16(), "msg": self.message}],
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// Jaeger's success envelope.
pub fn envelope(data: serde_json::Value, total: usize) -> Response {
    axum::Json(json!({
        "data": data,
        "total": total,
        "limit": 0,
        "offset": 0,
        "errors": null,
    }))
    .into_response()
}

/// Query parameters as pairs, so repeated keys (`tag=`, `traceID=`) are kept.
pub type Params = Vec<(String, String)>;

pub fn param<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A time given as microseconds since the epoch (Jaeger's unit) or as RFC 3339; in ns.
pub fn time_param(params: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = param(params, key) else {
        return Ok(None);
    };
    if let Ok(us) = v.parse::<i64>() {
        return Ok(Some(us.saturating_mul(1000)));
    }
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Some(d.as_nanos() as i64))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{key}={v:?} is not a time: give microseconds since the epoch or RFC 3339 (2026-01-02T03:04:05Z)"
            ))
        })
}

/// `limit`, defaulting to `default` and capped at `max`.
pub fn limit_param(params: &Params, default: usize, max: usize) -> Result<usize, ApiError> {
    match param(params, "limit") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(0) => Ok(default),
            Ok(n) => Ok(n.min(max)),
            Err(_) => Err(ApiError::bad_request(format!(
                "limit={v:?} is not a whole number"
            ))),
        },
    }
}

async fn health() -> Response {
    axum::Json(json!({"status": "live"})).into_response()
}

async fn ready(State(s): State<QueryState>) -> Response {
    match s.store.check_ready().await {
        Ok(()) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<QueryState>) -> Response {
    if let Ok(bytes) = s.store.disk_usage().await {
        s.metrics.store_bytes.set(bytes);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}
