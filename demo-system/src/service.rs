//! What every demo service shares at its HTTP edge: the error answer (a status and a
//! message a person can act on, as `{"error": ...}`), liveness and readiness routes, and
//! the clock used for timestamps in service databases.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::outbox::{Outbox, OutboxError};

/// An error answer. `Retry-After` is set when `retry_after` is; `WWW-Authenticate` on 401.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({"error": self.message}))).into_response();
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

impl From<OutboxError> for ApiError {
    fn from(e: OutboxError) -> Self {
        tracing::error!(error = %e, "service database failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the service cannot use its database: {e}"),
        )
    }
}

/// Adds `/health/live` (the process answers) and `/health/ready` (its database is usable).
pub fn with_health(router: Router, db: Outbox) -> Router {
    router
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "live"})) }),
        )
        .route(
            "/health/ready",
            get(move || {
                let db = db.clone();
                async move {
                    match db
                        .transaction(|tx| Ok(tx.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
                    {
                        Ok(_) => Json(json!({"status": "ready"})).into_response(),
                        Err(e) => ApiError::from(e).into_response(),
                    }
                }
            }),
        )
}

/// Adds `GET /admin/resilience`: breakers, bulkhead occupancy and retry counts of the
/// service's upstreams (an empty list for a service that calls no other).
pub fn with_resilience_admin(
    router: Router,
    upstreams: Vec<crate::resilience::Upstream>,
) -> Router {
    router.route(
        "/admin/resilience",
        get(move || {
            let snapshots: Vec<_> = upstreams
                .iter()
                .map(crate::resilience::Upstream::snapshot)
                .collect();
            async move { Json(json!({"upstreams": snapshots})) }
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
