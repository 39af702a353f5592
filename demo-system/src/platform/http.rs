//! What every demo service shares at its HTTP edge: the one error envelope
//! ([`ErrorBody`], `{"error": "..."}`, with `Retry-After` and `WWW-Authenticate` where they
//! apply), liveness and readiness routes, `/admin/resilience`, request-body and
//! `Idempotency-Key` extraction, and the clock used for stored timestamps.

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::db::{Db, DbError};
use super::resilience::{ResilienceReport, Upstream};
use crate::registry::RegistryClient;

/// The body of every error answer of every demo service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
}

/// The body of `/health/live` and `/health/ready`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// `live` or `ready`.
    pub status: String,
}

/// An error answer: a status and a message a person can act on.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::error!(error = %e, "service database failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the service cannot use its database: {e}"),
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        Self::bad_request(e.body_text())
    }
}

/// A JSON request body, or a 400 in the shared envelope saying what is wrong with it.
pub type Body<T> = Result<Json<T>, JsonRejection>;

/// Unwraps a [`Body`].
pub fn body<T>(b: Body<T>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(ApiError::from)
}

/// The request's `Idempotency-Key`, if any (1-200 visible ASCII characters).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 200 => Ok(Some(k.to_string())),
            _ => Err(ApiError::bad_request(
                "Idempotency-Key must be 1-200 visible ASCII characters",
            )),
        },
    }
}

/// A service's whole router: its own `routes`, `/admin/resilience` for `upstreams`,
/// `/health/live` and `/health/ready` (its database `db` is usable), and a SERVER span
/// with the correlation ID around every request.
pub fn service_router(routes: Router, db: Db, upstreams: Vec<Upstream>) -> Router {
    with_health(with_resilience_admin(routes, upstreams), db)
        .layer(axum::middleware::from_fn(super::telemetry::trace_request))
}

/// The whole router of a service that keeps no data of its own (the backends for
/// frontends): as [`service_router`], but ready while the registry, through which it finds
/// every service it asks, answers.
pub fn stateless_router(
    routes: Router,
    registry: RegistryClient,
    upstreams: Vec<Upstream>,
) -> Router {
    with_resilience_admin(routes, upstreams)
        .route("/health/live", get(live))
        .route(
            "/health/ready",
            get(move || {
                let registry = registry.clone();
                async move { registry_ready(&registry).await }
            }),
        )
        .layer(axum::middleware::from_fn(super::telemetry::trace_request))
}

/// `GET /health/ready` of a service that finds everything through the registry.
pub async fn registry_ready(registry: &RegistryClient) -> Result<Json<Health>, ApiError> {
    if registry.ready().await {
        Ok(Json(Health {
            status: "ready".into(),
        }))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry is unreachable",
        ))
    }
}

/// `Some(v)` as JSON; `None` as a 404 saying what is missing.
pub fn found<T>(v: Option<T>, missing: impl FnOnce() -> String) -> Result<Json<T>, ApiError> {
    v.map(Json).ok_or_else(|| ApiError::not_found(missing()))
}

fn with_health(router: Router, db: Db) -> Router {
    router.route("/health/live", get(live)).route(
        "/health/ready",
        get(move || {
            let db = db.clone();
            async move {
                db.read(|tx| Ok(tx.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
                    .await
                    .map(|_| {
                        Json(Health {
                            status: "ready".into(),
                        })
                    })
                    .map_err(ApiError::from)
            }
        }),
    )
}

/// `GET /health/live`.
pub async fn live() -> Json<Health> {
    Json(Health {
        status: "live".into(),
    })
}

/// `GET /admin/resilience`: breakers, bulkhead occupancy, retries and calls per instance
/// of the service's upstreams (an empty list for a service that calls no other).
fn with_resilience_admin(router: Router, upstreams: Vec<Upstream>) -> Router {
    router.route(
        "/admin/resilience",
        get(move || {
            let report = ResilienceReport::of(&upstreams);
            async move { Json(report) }
        }),
    )
}

/// Milliseconds since the epoch, for timestamps stored by the services.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
