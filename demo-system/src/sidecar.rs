//! The sidecar: a small HTTP reverse proxy that runs beside an app with no OpenTelemetry in
//! it (the legacy shop) and gives it what the other services have, from outside:
//!
//! - a server span per request, continuing the caller's `traceparent`, with the caller's
//!   correlation ID (the platform's [`trace_request`]), named after the app's routes;
//! - a request log line per request (method, route, status, time), carrying the
//!   correlation ID like every log of the demo;
//! - `/health/live` and `/health/ready` (ready when the app answers), which the registry
//!   checks;
//! - the app's place in the registry: the runner announces the sidecar's address under the
//!   app's name, so callers reach the app through it.
//!
//! It exports under the app's service name, so the app appears in traces, logs and the
//! service map like any other service. It is the demo's own, not the chaos proxy, which
//! stays free of the demo and of OpenTelemetry.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};

use crate::platform::http::{ApiError, Health, live};
use crate::platform::telemetry::trace_request;

/// The largest request body the sidecar passes on.
const MAX_BODY: usize = 1 << 20;

/// Where the app is, and how to reach it.
#[derive(Clone, Debug)]
pub struct Sidecar {
    /// The app's base URL, e.g. `http://127.0.0.1:8900`.
    app: String,
    /// Where the app answers when it is ready (it has no health route of its own).
    ready_path: &'static str,
    http: reqwest::Client,
}

impl Sidecar {
    pub fn new(app: &str, ready_path: &'static str) -> Self {
        Self {
            app: app.trim_end_matches('/').to_string(),
            ready_path,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }
}

/// The sidecar's routes: health, then every request passed to the app. `routes` are the
/// app's route templates, so spans are named `GET /shop/orders/{order_number}` rather than
/// after each order number.
pub fn app(sidecar: Sidecar, routes: &[&str]) -> Router {
    let mut router = Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready));
    for route in routes {
        router = router.route(route, any(forward));
    }
    router
        .fallback(forward)
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(sidecar)
}

async fn ready(State(s): State<Sidecar>) -> Result<Json<Health>, ApiError> {
    let url = format!("{}{}", s.app, s.ready_path);
    match s
        .http
        .get(&url)
        .timeout(Duration::from_secs(1))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Ok(Json(Health {
            status: "ready".into(),
        })),
        Ok(r) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the app answered {} at {url}", r.status()),
        )),
        Err(e) => {
            tracing::warn!(error = %e, %url, "the app is unreachable");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the app beside this sidecar is unreachable",
            ))
        }
    }
}

/// Headers that describe one connection, not the request: never passed on (RFC 9110 §7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn passed_on(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(k, _)| !hop_by_hop(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Passes one request to the app and its answer back, with a log line saying how it went.
async fn forward(State(s): State<Sidecar>, req: Request) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let method = req.method().clone();
    let target = format!(
        "{}{}",
        s.app,
        req.uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let headers = passed_on(req.headers());
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request bodies are limited to {MAX_BODY} bytes"),
            )
            .into_response();
        }
    };
    let answer = s
        .http
        .request(method.clone(), &target)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let resp = match answer {
        Ok(r) => relay(r).await,
        Err(e) => {
            tracing::warn!(error = %e, %target, "the app is unreachable");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "the app beside this sidecar is unreachable",
            )
            .into_response()
        }
    };
    let status = resp.status().as_u16();
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %route, status, took_ms, "request failed in the app");
    } else {
        tracing::info!(%method, %route, status, took_ms, "request served by the app");
    }
    resp
}

/// The app's answer as ours: status, end-to-end headers, body.
async fn relay(r: reqwest::Response) -> Response {
    let status = r.status();
    let headers = passed_on(r.headers());
    match r.bytes().await {
        Ok(bytes) => {
            let mut resp = Response::new(Body::from(bytes));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "the app's answer broke off");
            (StatusCode::BAD_GATEWAY, [(header::CONNECTION, "close")]).into_response()
        }
    }
}
