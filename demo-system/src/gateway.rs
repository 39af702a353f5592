//! The API gateway and backend-for-frontend: the one entry point of the demo.
//!
//! - Finds upstream instances through the registry (cached briefly; a stale answer is
//!   better than none when the registry is down) and spreads calls round-robin.
//! - Each upstream service has its own [`Upstream`]: retry, circuit breaker, bulkhead, timeout.
//! - `GET /api/products` falls back to the last good product list when inventory fails
//!   (`X-Fallback: cache`, and how old it is).
//! - `POST /api/orders` needs a JWT (HS256, from `POST /api/token`); every client is rate
//!   limited (429 + `Retry-After`).
//! - Every response echoes `X-Correlation-ID` (taken from the request or a new UUID v7), and
//!   calls upstream carry it as a header and in W3C baggage.
//! - `/mobile/...` serves trimmed shapes of the same data.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::resilience::{
    Call, CallError, ConfigError, ResilienceConfig, Upstream, UpstreamSnapshot,
};
use crate::service::ApiError;

/// The upstream services the gateway routes to.
pub const UPSTREAMS: [&str; 3] = ["inventory", "orders", "order-history"];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// HS256 key for the demo's tokens. A demo key: never reuse it anywhere real.
    pub jwt_secret: String,
    pub token_ttl_secs: u64,
    /// Requests a client may make per second, and in a burst.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// How long a registry answer is reused.
    pub discovery_ttl_ms: u64,
    /// The product list fallback is served while younger than this.
    pub fallback_max_age_ms: u64,
    pub resilience: ResilienceConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            jwt_secret: "gauntlet-demo-key-not-a-secret".into(),
            token_ttl_secs: 3600,
            rate_limit_per_second: 200,
            rate_limit_burst: 400,
            discovery_ttl_ms: 1_000,
            fallback_max_age_ms: 300_000,
            resilience: ResilienceConfig::default(),
        }
    }
}

/// The correlation ID of the request being handled.
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gateway")
    }
}

struct Inner {
    config: GatewayConfig,
    registry_url: String,
    http: reqwest::Client,
    upstreams: HashMap<&'static str, Upstream>,
    /// Service name → when it was asked, and its healthy instance addresses.
    discovery: Mutex<HashMap<String, (Instant, Vec<String>)>>,
    /// Round-robin position per service, and calls made per instance (for /admin).
    next: Mutex<HashMap<String, usize>>,
    calls: Mutex<HashMap<String, u64>>,
    products: Mutex<Option<(Instant, Value)>>,
    limiter: DefaultKeyedRateLimiter<String>,
    rate_limited: std::sync::atomic::AtomicU64,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let status = match e {
            CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            CallError::Status { .. } => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        let retry = matches!(
            e,
            CallError::CircuitOpen { .. } | CallError::BulkheadFull { .. }
        );
        Self {
            status,
            message: e.to_string(),
            retry_after: retry.then_some(1),
        }
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Gateway {
    pub fn new(registry_url: &str, config: GatewayConfig) -> Result<Self, ConfigError> {
        let http = reqwest::Client::new();
        let mut upstreams = HashMap::new();
        for name in UPSTREAMS {
            upstreams.insert(name, Upstream::new(name, http.clone(), &config.resilience)?);
        }
        let per_second =
            NonZeroU32::new(config.rate_limit_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.rate_limit_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            inner: Arc::new(Inner {
                registry_url: registry_url.trim_end_matches('/').to_string(),
                http,
                upstreams,
                discovery: Mutex::new(HashMap::new()),
                next: Mutex::new(HashMap::new()),
                calls: Mutex::new(HashMap::new()),
                products: Mutex::new(None),
                limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                rate_limited: std::sync::atomic::AtomicU64::new(0),
                encoding: EncodingKey::from_secret(config.jwt_secret.as_bytes()),
                decoding: DecodingKey::from_secret(config.jwt_secret.as_bytes()),
                config,
            }),
        })
    }

    /// Healthy instances of `service`, from the registry or its recent answer.
    async fn instances(&self, service: &str) -> Result<Vec<String>, ApiError> {
        let ttl = Duration::from_millis(self.inner.config.discovery_ttl_ms);
        let cached = lock(&self.inner.discovery).get(service).cloned();
        if let Some((at, list)) = &cached
            && at.elapsed() < ttl
            && !list.is_empty()
        {
            return Ok(list.clone());
        }
        let url = format!("{}/services/{service}", self.inner.registry_url);
        let asked = self
            .inner
            .http
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        let fresh: Option<Vec<String>> = match asked {
            Ok(r) if r.status().is_success() => r.json::<Vec<Value>>().await.ok().map(|list| {
                list.iter()
                    .filter_map(|i| {
                        i["address"]
                            .as_str()
                            .map(|a| a.trim_end_matches('/').to_string())
                    })
                    .collect()
            }),
            Ok(r) if r.status() == StatusCode::NOT_FOUND => Some(Vec::new()),
            _ => None,
        };
        match fresh {
            Some(list) => {
                lock(&self.inner.discovery)
                    .insert(service.to_string(), (Instant::now(), list.clone()));
                if list.is_empty() {
                    return Err(ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("no healthy instance of {service} is registered"),
                    ));
                }
                Ok(list)
            }
            // The registry is unreachable: a stale list beats no list.
            None => cached
                .map(|(_, l)| l)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!(
                            "the registry is unreachable and no instance of {service} is known"
                        ),
                    )
                }),
        }
    }

    /// The base URL of the next instance of `service`, round-robin.
    async fn pick(&self, service: &str) -> Result<String, ApiError> {
        let list = self.instances(service).await?;
        let mut next = lock(&self.inner.next);
        let n = next.entry(service.to_string()).or_insert(0);
        let chosen = list[*n % list.len()].clone();
        *n = n.wrapping_add(1);
        *lock(&self.inner.calls).entry(chosen.clone()).or_insert(0) += 1;
        Ok(chosen)
    }

    /// Calls `service` at `path`, carrying the correlation ID.
    async fn forward(
        &self,
        service: &'static str,
        cid: &CorrelationId,
        make: impl FnOnce(String) -> Call,
    ) -> Result<crate::resilience::Reply, ApiError> {
        let base = self.pick(service).await?;
        let mut call = make(base);
        call.headers
            .push(("x-correlation-id".into(), cid.0.clone()));
        call.headers
            .push(("baggage".into(), format!("correlation_id={}", cid.0)));
        let upstream = self.inner.upstreams.get(service).ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("no upstream {service}"),
            )
        })?;
        Ok(upstream.call(call).await?)
    }

    /// GETs `path` from `service`.
    async fn get(
        &self,
        service: &'static str,
        cid: &CorrelationId,
        path: String,
    ) -> Result<crate::resilience::Reply, ApiError> {
        self.forward(service, cid, |base| Call::get(format!("{base}{path}")))
            .await
    }

    pub fn snapshots(&self) -> Vec<UpstreamSnapshot> {
        let mut v: Vec<UpstreamSnapshot> = self
            .inner
            .upstreams
            .values()
            .map(Upstream::snapshot)
            .collect();
        v.sort_by(|a, b| a.upstream.cmp(&b.upstream));
        v
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Passes an upstream answer on: its status and JSON body.
fn relay(reply: &crate::resilience::Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    (status, Json(body)).into_response()
}

pub fn app(gateway: Gateway) -> Router {
    Router::new()
        .route("/api/token", post(token))
        .route("/api/products", get(products))
        .route("/api/orders", post(place_order))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/customers/{id}/orders", get(customer_orders))
        .route("/mobile/products", get(mobile_products))
        .route("/mobile/orders/{id}", get(mobile_order))
        .route("/admin/resilience", get(admin))
        .route(
            "/health/live",
            get(|| async { Json(json!({"status": "live"})) }),
        )
        .route("/health/ready", get(ready))
        .layer(middleware::from_fn_with_state(gateway.clone(), rate_limit))
        .layer(middleware::from_fn(correlation))
        // Outermost: the request's span and correlation ID exist before anything else runs.
        .layer(middleware::from_fn(crate::telemetry::trace_request))
        .with_state(gateway)
}

/// Serves the gateway with client addresses known to the rate limiter.
pub async fn run(
    gateway: Gateway,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app(gateway).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn correlation(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-correlation-id", v);
    }
    resp
}

async fn rate_limit(State(g): State<Gateway>, req: Request, next: Next) -> Response {
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    if let Err(not_until) = g.inner.limiter.check_key(&client) {
        g.inner
            .rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "rate limit of {} requests a second exceeded; retry later",
                g.inner.config.rate_limit_per_second
            ),
        );
        e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        return e.into_response();
    }
    next.run(req).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

async fn token(
    State(g): State<Gateway>,
    body: Result<Json<Credentials>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(c) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if (c.username.as_str(), c.password.as_str()) != ("demo", "demo") {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown username or wrong password (the demo user is demo/demo)",
        ));
    }
    let now = now_secs();
    let claims = Claims {
        sub: c.username,
        iat: now,
        exp: now + g.inner.config.token_ttl_secs,
    };
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &g.inner.encoding)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(
        json!({"access_token": token, "token_type": "Bearer", "expires_in": g.inner.config.token_ttl_secs}),
    ))
}

fn authorize(g: &Gateway, headers: &HeaderMap) -> Result<String, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a Bearer token is required: POST /api/token first",
            )
        })?;
    jsonwebtoken::decode::<Claims>(token, &g.inner.decoding, &Validation::new(Algorithm::HS256))
        .map(|d| d.claims.sub)
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, format!("invalid token: {e}")))
}

async fn products(
    State(g): State<Gateway>,
    Extension(cid): Extension<CorrelationId>,
) -> Result<Response, ApiError> {
    match g
        .forward("inventory", &cid, |base| {
            Call::get(format!("{base}/products"))
        })
        .await
    {
        Ok(reply) if reply.status == 200 => {
            let list: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            *lock(&g.inner.products) = Some((Instant::now(), list.clone()));
            Ok(Json(list).into_response())
        }
        Ok(reply) => Ok(relay(&reply)),
        Err(e) => {
            let max_age = Duration::from_millis(g.inner.config.fallback_max_age_ms);
            let cached = lock(&g.inner.products).clone();
            match cached {
                Some((at, list)) if at.elapsed() < max_age => {
                    tracing::warn!(error = %e.message, "inventory unavailable; serving the cached product list");
                    let mut resp = Json(list).into_response();
                    resp.headers_mut()
                        .insert("x-fallback", HeaderValue::from_static("cache"));
                    if let Ok(v) = HeaderValue::from_str(&at.elapsed().as_secs().to_string()) {
                        resp.headers_mut().insert(header::AGE, v);
                    }
                    Ok(resp)
                }
                _ => Err(e),
            }
        }
    }
}

async fn place_order(
    State(g): State<Gateway>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let user = authorize(&g, &headers)?;
    tracing::info!(%user, "order received at the gateway");
    let Json(body) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let reply = g
        .forward("orders", &cid, |base| {
            Call::post(format!("{base}/orders"), body, key.as_deref())
        })
        .await?;
    Ok(relay(&reply))
}

async fn get_order(
    State(g): State<Gateway>,
    Extension(cid): Extension<CorrelationId>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let reply = g.get("orders", &cid, format!("/orders/{id}")).await?;
    Ok(relay(&reply))
}

async fn customer_orders(
    State(g): State<Gateway>,
    Extension(cid): Extension<CorrelationId>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let reply = g
        .get("order-history", &cid, format!("/customers/{id}/orders"))
        .await?;
    Ok(relay(&reply))
}

async fn mobile_products(
    state: State<Gateway>,
    cid: Extension<CorrelationId>,
) -> Result<Response, ApiError> {
    let full = products(state, cid).await?;
    let fallback = full.headers().get("x-fallback").cloned();
    let (parts, body) = full.into_parts();
    if !parts.status.is_success() {
        return Ok(Response::from_parts(parts, body));
    }
    let bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    let list: Vec<Value> = serde_json::from_slice(&bytes).unwrap_or_default();
    let trimmed: Vec<Value> = list
        .iter()
        .map(|p| json!({"sku": p["sku"], "name": p["name"], "price": format!("{:.2}", p["price_cents"].as_f64().unwrap_or(0.0) / 100.0), "in_stock": p["stock"].as_i64().unwrap_or(0) > 0}))
        .collect();
    let mut resp = Json(trimmed).into_response();
    if let Some(f) = fallback {
        resp.headers_mut().insert("x-fallback", f);
    }
    Ok(resp)
}

async fn mobile_order(
    State(g): State<Gateway>,
    Extension(cid): Extension<CorrelationId>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let reply = g.get("orders", &cid, format!("/orders/{id}")).await?;
    if reply.status != 200 {
        return Ok(relay(&reply));
    }
    let o: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    Ok(Json(json!({"id": o["id"], "status": o["status"], "total": format!("{:.2}", o["total_cents"].as_f64().unwrap_or(0.0) / 100.0)})).into_response())
}

async fn admin(State(g): State<Gateway>) -> Json<Value> {
    let calls = lock(&g.inner.calls).clone();
    Json(json!({
        "upstreams": g.snapshots(),
        "calls_per_instance": calls,
        "rate_limited": g.inner.rate_limited.load(std::sync::atomic::Ordering::Relaxed),
    }))
}

async fn ready(State(g): State<Gateway>) -> Response {
    let url = format!("{}/health/ready", g.inner.registry_url);
    match g
        .inner
        .http
        .get(&url)
        .timeout(Duration::from_secs(1))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => Json(json!({"status": "ready"})).into_response(),
        _ => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry is unreachable",
        )
        .into_response(),
    }
}
