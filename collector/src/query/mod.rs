//! The HTTP query API on `--http`: Jaeger-compatible trace routes ([`jaeger`]) and service
//! dependencies ([`dependencies`]), logs ([`logs`]), correlation timelines ([`correlation`]),
//! RED metrics ([`red`]), the requests behind them ([`requests`]), load and chaos markers ([`markers`]),
//! Prometheus' HTTP API over the stored metrics ([`prometheus`], in Prometheus' own envelope),
//! and the collector's own health, readiness and Prometheus metrics.
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
pub mod prometheus;
pub mod red;
pub mod requests;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gauntlet_query_api::health::{Health, HealthStatus};
use gauntlet_query_api::params::{Pairs, ParamError, QueryParams};
use gauntlet_query_api::{Envelope, ErrorBody};
use serde::Serialize;

use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

#[derive(Clone)]
pub struct QueryState {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub promql: crate::promql::Limits,
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
        .route("/api/v1/requests", get(requests::requests))
        .route("/api/v1/markers", get(markers::markers))
        .route("/api/v1/logs", get(logs::logs))
        .route("/api/v1/correlations/{id}", get(correlation::timeline))
        .merge(prometheus::routes())
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
    /// The store's own words stay in the collector's log: they name files and SQL, which say
    /// nothing a caller can act on and more than a caller should see.
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "query failed in the store");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store could not answer; the collector's log says why. Try again shortly",
        )
    }
}

impl From<ParamError> for ApiError {
    fn from(e: ParamError) -> Self {
        Self::bad_request(e.0)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody::new(self.status.as_u16(), self.message);
        (self.status, axum::Json(body)).into_response()
    }
}

/// Jaeger's success envelope around `data`, `total` items.
pub fn envelope<T: Serialize>(data: T, total: usize) -> Response {
    axum::Json(Envelope::new(data, total)).into_response()
}

/// A query's parameters, parsed from the query string by their type in the API crate.
pub fn parse<Q: QueryParams>(pairs: &Pairs) -> Result<Q, ApiError> {
    Ok(Q::from_pairs(pairs)?)
}

async fn health() -> Response {
    axum::Json(Health {
        status: HealthStatus::Live,
        error: None,
    })
    .into_response()
}

async fn ready(State(s): State<QueryState>) -> Response {
    match s.store.check_ready().await {
        Ok(()) => axum::Json(Health {
            status: HealthStatus::Ready,
            error: None,
        })
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the store does not answer");
            let health = Health {
                status: HealthStatus::Unavailable,
                error: Some("the store does not answer; the collector's log says why".into()),
            };
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(health)).into_response()
        }
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
