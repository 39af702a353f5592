//! The API gateway and backend-for-frontend: the one entry point of the demo.
//!
//! - Reaches inventory, orders and order-history through their typed clients, each found
//!   through the registry and protected by its own resilience layers.
//! - `GET /api/products` falls back to the last good product list when inventory fails
//!   (`X-Fallback: cache`, and how old it is).
//! - `POST /api/orders` needs a JWT (HS256, from `POST /api/token`); every client is rate
//!   limited (429 + `Retry-After`).
//! - Every response echoes `X-Correlation-ID` (taken from the request or a new UUID v7),
//!   and it travels upstream in W3C baggage and as the header.
//! - `/mobile/...` is the mobile BFF's and `POST /graphql` the web BFF's: passed on to
//!   those services and their answers relayed.
//! - `/shop/...` serves the old shop's routes, each from the legacy monolith or from the
//!   new services as `shop_routes` says ([`super::strangler`]).
//! - `GET /api/products` reads are mirrored to inventory's shadow and compared
//!   ([`super::shadow`]); `GET /admin/shadow` says what differed.
//! - `GET /api/orders/{id}/details` composes the order with its reservation, payments and
//!   notifications, each part under its own deadline ([`super::composition`]).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::{ConnectInfo, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::api::{Credentials, OrderDetails, TokenResponse};
use super::composition::{Composer, Deadlines};
use super::shadow::{Mirror, ShadowReport, ShadowSettings};
use super::strangler::{self, ShopRoute, ShopRoutes, Strangler, default_routes};
use crate::inventory::{InventoryClient, Product};
use crate::legacy::{LegacyClient, ShopCatalogue, ShopOrder};
use crate::mobile_bff::{MobileBffClient, MobileOrder, MobileProduct};
use crate::notifications::NotificationsClient;
use crate::order_history::{OrderHistoryClient, OrderView};
use crate::orders::{Order, OrdersClient, PlaceOrder};
use crate::payments::PaymentsClient;
use crate::platform::client::{HttpClient, service_http};
use crate::platform::discovery::Discovery;
use crate::platform::http::{ApiError, Body, Health, body, idempotency_key, live, registry_ready};
use crate::platform::live_config::{self, SHOP_ROUTES_PREFIX};
use crate::platform::lock;
use crate::platform::resilience::{
    ConfigError, ConnectionPool, ResilienceConfig, ResilienceReport, Upstream,
};
use crate::topology::Service;
use crate::web_bff::{self, GraphQlMedia, GraphQlResponse, WebBffClient};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// HS256 key for the demo's tokens. A demo key: never reuse it anywhere real.
    pub jwt_secret: String,
    pub token_ttl_secs: u64,
    /// Limit each client (by address) to `rate_limit_per_second` requests a second, bursts
    /// of `rate_limit_burst`; `false` (`--disable rate-limiting`): no limit.
    pub rate_limit: bool,
    /// Requests a client may make per second, and in a burst.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    /// Orders a client may place per second, and in a burst: an order runs a saga through
    /// three services where a browse reads a cache, so one client's flood of orders must not
    /// take the places (bulkheads, connections) the others' orders need.
    pub rate_limit_orders_per_second: u32,
    pub rate_limit_orders_burst: u32,
    /// The product list fallback is served while younger than this.
    pub fallback_max_age_ms: u64,
    /// Serve the last good product list when inventory fails; `false` (`--disable
    /// fallback`): the failure reaches the caller.
    pub fallback: bool,
    /// Give each part of an order's details its own deadline and answer without the late
    /// ones; `false` (`--disable composition-deadlines`): wait for every part.
    pub composition_deadlines: bool,
    /// The details request's deadline, and each part's inside it, in milliseconds.
    pub details_deadline_ms: u64,
    pub details_part_deadline_ms: u64,
    /// The strangler fig's route table: who answers each of the old shop's routes
    /// (`legacy`, or the new service that replaces it).
    pub shop_routes: ShopRoutes,
    /// Shadow deployment: product reads mirrored to inventory's candidate and compared.
    pub shadow: ShadowSettings,
    /// The most calls the gateway has in flight to all its upstreams together (its
    /// connection pool); the next waits for a free connection within its deadline.
    pub max_connections: usize,
    pub resilience: ResilienceConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            jwt_secret: "gauntlet-demo-key-not-a-secret".into(),
            token_ttl_secs: 3600,
            rate_limit: true,
            rate_limit_per_second: 200,
            rate_limit_burst: 400,
            rate_limit_orders_per_second: 10,
            rate_limit_orders_burst: 10,
            fallback_max_age_ms: 300_000,
            fallback: true,
            composition_deadlines: true,
            details_deadline_ms: 1_000,
            details_part_deadline_ms: 500,
            shop_routes: default_routes(),
            shadow: ShadowSettings::default(),
            max_connections: 24,
            resilience: ResilienceConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// Why these settings cannot run, if they cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.details_deadline_ms == 0 || self.details_part_deadline_ms == 0 {
            return Err("details_deadline_ms and details_part_deadline_ms must be above 0".into());
        }
        if self.details_part_deadline_ms > self.details_deadline_ms {
            return Err(format!(
                "details_part_deadline_ms ({}) must fit inside details_deadline_ms ({}): \
                 a part's deadline is inside the request's",
                self.details_part_deadline_ms, self.details_deadline_ms
            ));
        }
        self.shadow.check()?;
        strangler::check(&self.shop_routes)
    }
}

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
    discovery: Discovery,
    inventory: InventoryClient,
    orders: OrdersClient,
    history: OrderHistoryClient,
    /// Order details: orders, inventory, payments and notifications.
    composer: Composer,
    /// The old shop's routes.
    strangler: Strangler,
    /// Product reads mirrored to the shadow.
    mirror: Arc<Mirror>,
    /// The backends for frontends: the web page's GraphQL, the mobile app's routes.
    web: WebBffClient,
    mobile: MobileBffClient,
    /// The last good product list, for the fallback.
    products: Mutex<Option<(Instant, Vec<Product>)>>,
    limiter: DefaultKeyedRateLimiter<String>,
    /// Orders per client, on top of `limiter`.
    order_limiter: DefaultKeyedRateLimiter<String>,
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

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Gateway {
    /// A gateway that finds its upstreams through `discovery`.
    pub fn new(discovery: Discovery, config: GatewayConfig) -> Result<Self, ConfigError> {
        let http = service_http();
        let pool = ConnectionPool::new(config.max_connections.max(1));
        let client = |service: Service| -> Result<HttpClient, ConfigError> {
            Ok(HttpClient::new(Upstream::pooled(
                service.name(),
                discovery.endpoint(service),
                http.clone(),
                &config.resilience,
                pool.clone(),
            )?))
        };
        let per_second =
            NonZeroU32::new(config.rate_limit_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.rate_limit_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let orders_per_second =
            NonZeroU32::new(config.rate_limit_orders_per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let orders_burst =
            NonZeroU32::new(config.rate_limit_orders_burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let inventory = InventoryClient::new(client(Service::Inventory)?);
        let orders = OrdersClient::new(client(Service::Orders)?);
        let composer = Composer {
            orders: orders.clone(),
            inventory: inventory.clone(),
            payments: PaymentsClient::new(client(Service::Payments)?),
            notifications: NotificationsClient::new(client(Service::Notifications)?),
            deadlines: Deadlines {
                request: Duration::from_millis(config.details_deadline_ms.max(1)),
                part: Duration::from_millis(config.details_part_deadline_ms.max(1)),
                enabled: config.composition_deadlines,
            },
        };
        let strangler = Strangler::new(
            config.shop_routes.clone(),
            LegacyClient::new(client(Service::Legacy)?),
            inventory.clone(),
            orders.clone(),
        );
        // The mirror's calls have connections of their own and are made once: a shadow
        // must not take what the clients' calls need.
        let mirror_pool = ConnectionPool::new(config.shadow.max_in_flight.max(1) * 2);
        let mirror_discovery = discovery.separate();
        let mut once = config.resilience.clone();
        once.retry.enabled = false;
        let mirrored = |service: Service, name: &str| -> Result<InventoryClient, ConfigError> {
            Ok(InventoryClient::new(HttpClient::new(Upstream::pooled(
                name,
                mirror_discovery.endpoint(service),
                http.clone(),
                &once,
                mirror_pool.clone(),
            )?)))
        };
        let mirror = Arc::new(Mirror::new(
            config.shadow.clone(),
            mirrored(Service::InventoryShadow, Service::InventoryShadow.name())?,
            mirrored(Service::Inventory, "inventory (mirror)")?,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                inventory,
                orders,
                composer,
                strangler,
                mirror,
                history: OrderHistoryClient::discovered(&discovery, |endpoint| {
                    Ok::<_, ConfigError>(HttpClient::new(Upstream::pooled(
                        Service::OrderHistory.name(),
                        endpoint,
                        http.clone(),
                        &config.resilience,
                        pool.clone(),
                    )?))
                })?,
                web: WebBffClient::new(client(Service::WebBff)?),
                mobile: MobileBffClient::new(client(Service::MobileBff)?),
                discovery,
                products: Mutex::new(None),
                limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
                order_limiter: RateLimiter::keyed(
                    Quota::per_second(orders_per_second).allow_burst(orders_burst),
                ),
                rate_limited: std::sync::atomic::AtomicU64::new(0),
                encoding: EncodingKey::from_secret(config.jwt_secret.as_bytes()),
                decoding: DecodingKey::from_secret(config.jwt_secret.as_bytes()),
                config,
            }),
        })
    }

    fn upstreams(&self) -> Vec<Upstream> {
        vec![
            self.inner.inventory.http().upstream().clone(),
            self.inner.orders.http().upstream().clone(),
            self.inner.composer.payments.http().upstream().clone(),
            self.inner.composer.notifications.http().upstream().clone(),
            self.inner.strangler.legacy.http().upstream().clone(),
            self.inner.web.http().upstream().clone(),
            self.inner.mobile.http().upstream().clone(),
        ]
        .into_iter()
        .chain(self.inner.history.upstreams())
        .collect()
    }

    pub fn report(&self) -> ResilienceReport {
        ResilienceReport {
            rate_limited: Some(
                self.inner
                    .rate_limited
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            ..ResilienceReport::of(&self.upstreams())
        }
    }
}

pub fn app(gateway: Gateway) -> Router {
    Router::new()
        .route("/api/token", post(token))
        .route("/api/products", get(products))
        .route("/api/orders", post(place_order))
        .route("/api/orders/{id}", get(get_order))
        .route("/api/orders/{id}/details", get(order_details))
        .route("/api/customers/{id}/orders", get(customer_orders))
        .route(ShopRoute::Products.path(), get(shop_products))
        .route(ShopRoute::Order.path(), get(shop_order))
        .route("/mobile/products", get(mobile_products))
        .route("/mobile/orders/{id}", get(mobile_order))
        .route("/graphql", post(graphql))
        .route("/admin/resilience", get(admin))
        .route("/admin/shadow", get(shadow_report))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .layer(middleware::from_fn_with_state(gateway.clone(), rate_limit))
        // Outermost: the request's span and correlation ID exist before anything else runs.
        .layer(middleware::from_fn(
            crate::platform::telemetry::trace_request,
        ))
        .with_state(gateway)
}

/// Serves the gateway with client addresses known to the rate limiter.
pub async fn run(
    gateway: Gateway,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mirror = gateway.inner.mirror.clone();
    // The old shop's routes follow the configuration store's feature flags, live; the
    // watcher is joined before returning.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let flags = {
        let strangler = gateway.inner.strangler.clone();
        let registry = gateway.inner.discovery.registry().clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let until = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            live_config::watch(registry, SHOP_ROUTES_PREFIX, |v| strangler.follow(v), until).await
        })
    };
    let served = axum::serve(
        listener,
        app(gateway).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    let _ = stop.send(true);
    let _ = flags.await;
    mirror.finish().await;
    served
}

async fn rate_limit(State(g): State<Gateway>, req: Request, next: Next) -> Response {
    let config = &g.inner.config;
    if !config.rate_limit {
        return next.run(req).await;
    }
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    let is_order = req.method() == axum::http::Method::POST && req.uri().path() == "/api/orders";
    let now = DefaultClock::default().now();
    let refused = match g.inner.limiter.check_key(&client) {
        Err(not_until) => Some((
            not_until.wait_time_from(now),
            config.rate_limit_per_second,
            "requests",
        )),
        Ok(()) if is_order => g.inner.order_limiter.check_key(&client).err().map(|n| {
            (
                n.wait_time_from(now),
                config.rate_limit_orders_per_second,
                "orders",
            )
        }),
        Ok(()) => None,
    };
    if let Some((wait, limit, what)) = refused {
        g.inner
            .rate_limited
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("rate limit of {limit} {what} a second exceeded; retry later"),
        );
        e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        return e.into_response();
    }
    next.run(req).await
}

async fn token(
    State(g): State<Gateway>,
    creds: Body<Credentials>,
) -> Result<Json<TokenResponse>, ApiError> {
    let c = body(creds)?;
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
    Ok(Json(TokenResponse {
        access_token: token,
        token_type: "Bearer".into(),
        expires_in: g.inner.config.token_ttl_secs,
    }))
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

/// The product list, or the last good one (and how old it is) when inventory fails.
async fn product_list(g: &Gateway) -> Result<(Vec<Product>, Option<Duration>), ApiError> {
    match g.inner.inventory.products().await {
        Ok(list) => {
            *lock(&g.inner.products) = Some((Instant::now(), list.clone()));
            Ok((list, None))
        }
        Err(e) if e.refused_status().is_some() || !g.inner.config.fallback => Err(e.into()),
        Err(e) => {
            let max_age = Duration::from_millis(g.inner.config.fallback_max_age_ms);
            match lock(&g.inner.products).clone() {
                Some((at, list)) if at.elapsed() < max_age => {
                    tracing::warn!(error = %e, "inventory unavailable; serving the cached product list");
                    Ok((list, Some(at.elapsed())))
                }
                _ => Err(e.into()),
            }
        }
    }
}

/// Marks a response served from the fallback cache.
fn fallback(mut resp: Response, age: Option<Duration>) -> Response {
    if let Some(age) = age {
        resp.headers_mut()
            .insert("x-fallback", HeaderValue::from_static("cache"));
        if let Ok(v) = HeaderValue::from_str(&age.as_secs().to_string()) {
            resp.headers_mut().insert(header::AGE, v);
        }
    }
    resp
}

async fn products(State(g): State<Gateway>) -> Result<Response, ApiError> {
    let (list, age) = product_list(&g).await?;
    // Only inventory's own answers are worth comparing, not the fallback's copy.
    if age.is_none() {
        g.inner.mirror.mirror(&list).await;
    }
    Ok(fallback(Json(list).into_response(), age))
}

async fn place_order(
    State(g): State<Gateway>,
    headers: HeaderMap,
    order: Body<PlaceOrder>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let user = authorize(&g, &headers)?;
    tracing::info!(%user, "order received at the gateway");
    let order = body(order)?;
    let key = idempotency_key(&headers)?;
    let placed = g.inner.orders.place(&order, key.as_deref()).await?;
    Ok((
        StatusCode::from_u16(placed.status).unwrap_or(StatusCode::OK),
        Json(placed.body),
    ))
}

async fn get_order(
    State(g): State<Gateway>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Order>, ApiError> {
    Ok(Json(g.inner.orders.order(&id).await?))
}

async fn order_details(
    State(g): State<Gateway>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<OrderDetails>, ApiError> {
    Ok(Json(g.inner.composer.details(&id).await?))
}

async fn shop_products(State(g): State<Gateway>) -> Result<Json<ShopCatalogue>, ApiError> {
    Ok(Json(g.inner.strangler.catalogue().await?))
}

async fn shop_order(
    State(g): State<Gateway>,
    UrlPath(number): UrlPath<String>,
) -> Result<Json<ShopOrder>, ApiError> {
    Ok(Json(g.inner.strangler.order(&number).await?))
}

async fn customer_orders(
    State(g): State<Gateway>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Vec<OrderView>>, ApiError> {
    Ok(Json(g.inner.history.customer_orders(&id).await?))
}

async fn mobile_products(State(g): State<Gateway>) -> Result<Json<Vec<MobileProduct>>, ApiError> {
    Ok(Json(g.inner.mobile.products().await?))
}

async fn mobile_order(
    State(g): State<Gateway>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<MobileOrder>, ApiError> {
    Ok(Json(g.inner.mobile.order(&id).await?))
}

/// Passes the page's GraphQL request to the web BFF and relays its answer; when the BFF
/// cannot answer, says so in the GraphQL error shape the page reads.
async fn graphql(State(g): State<Gateway>, headers: HeaderMap, body: bytes::Bytes) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let media = GraphQlMedia::negotiate(accept);
    match g.inner.web.forward(body, accept).await {
        Ok(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut resp = (status, reply.body).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(media.content_type()),
            );
            resp
        }
        Err(e) => {
            let status = ApiError::from(e.clone()).status;
            tracing::warn!(error = %e, "the web BFF did not answer");
            let mut resp = web_bff::server::answer(
                media,
                &GraphQlResponse::refused("the web BFF did not answer; try again shortly"),
            );
            *resp.status_mut() = status;
            resp
        }
    }
}

async fn admin(State(g): State<Gateway>) -> Json<ResilienceReport> {
    Json(g.report())
}

async fn shadow_report(State(g): State<Gateway>) -> Json<ShadowReport> {
    Json(g.inner.mirror.report())
}

async fn ready(State(g): State<Gateway>) -> Result<Json<Health>, ApiError> {
    registry_ready(g.inner.discovery.registry()).await
}
