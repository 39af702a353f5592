//! The gateway in front of the real services, all on loopback and found through the real
//! registry: tokens, correlation IDs, round-robin, the product fallback, the BFF shapes,
//! order details composed under deadlines, and rate limiting.

mod common;

use common::bind;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gauntlet_demo_system::gateway::shadow::ShadowReport;
use gauntlet_demo_system::gateway::{self, Gateway, GatewayConfig, OrderDetails};
use gauntlet_demo_system::inventory::{self, CatalogClient, Inventory, InventoryClient, Product};
use gauntlet_demo_system::mobile_bff::{self, MobileBff};
use gauntlet_demo_system::notifications::{self, Notifications};
use gauntlet_demo_system::order_history::{self, OrderHistory, OrderHistoryClient};
use gauntlet_demo_system::orders::{self, Orders, OrdersClient};
use gauntlet_demo_system::payments::{self, Payments, PaymentsClient, PaymentsConfig};
use gauntlet_demo_system::platform::client::HttpClient;
use gauntlet_demo_system::platform::discovery::{Discovery, DiscoveryConfig};
use gauntlet_demo_system::platform::outbox::{ConsumeOptions, FeedConsumer, feed_client};
use gauntlet_demo_system::platform::resilience::{ResilienceConfig, ResilienceReport, Upstream};
use gauntlet_demo_system::platform::sharding::Shard;
use gauntlet_demo_system::registry::{
    self, Registration, Registry, RegistryClient, RegistryConfig,
};
use gauntlet_demo_system::topology::Service;
use gauntlet_demo_system::web_bff::{self, GraphQlResponse, WebBff, WebBffConfig};
use serde_json::{Value, json};

/// Serves `app` and announces it to the registry under `name`.
async fn service(registry: &str, name: &str, app: axum::Router) -> String {
    shard(registry, name, app, None).await
}

/// Serves `app` and announces it to the registry under `name`, holding `shard` of its data.
async fn shard(registry: &str, name: &str, app: axum::Router, shard: Option<Shard>) -> String {
    let (l, url) = bind().await;
    tokio::spawn(async move { axum::serve(l, app).await });
    let reg = Registration {
        name: name.into(),
        address: url.clone(),
        version: "test".into(),
        health_url: format!("{url}/health/ready"),
        shard,
    };
    let registry = registry.to_string();
    let registry = RegistryClient::new(&registry);
    tokio::spawn(async move { registry::announce(registry, reg, std::future::pending()).await });
    url
}

/// Makes an instance answer 503 while `down` is set, as a crashed dependency would look.
fn switchable(app: axum::Router, down: Arc<AtomicBool>) -> axum::Router {
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let down = down.clone();
            async move {
                if down.load(Ordering::SeqCst) {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                } else {
                    next.run(req).await
                }
            }
        },
    ))
}
use axum::response::IntoResponse;

/// Holds every answer of an instance for the given milliseconds (0: none), as a service
/// that hangs would.
fn holdable(app: axum::Router, hold_ms: Arc<AtomicU64>) -> axum::Router {
    app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let hold = hold_ms.load(Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(hold)).await;
                next.run(req).await
            }
        },
    ))
}

struct Stack {
    gateway: String,
    /// The web BFF's own address, to read what it asked of its services.
    web_bff: String,
    inventory_down: Arc<AtomicBool>,
    /// How long payments holds its answers.
    payments_hold_ms: Arc<AtomicU64>,
    /// How long the shadow (a candidate pricing everything a cent higher) holds its
    /// answers, and whether it is down.
    shadow_hold_ms: Arc<AtomicU64>,
    shadow_down: Arc<AtomicBool>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn stack(config: GatewayConfig) -> Stack {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (rl, registry_url) = bind().await;
    let rconf = RegistryConfig {
        ttl: Duration::from_secs(5),
        health_interval: Duration::from_millis(200),
        ..RegistryConfig::default()
    };
    tokio::spawn(registry::run(
        Registry::new(rconf),
        rl,
        std::future::pending(),
    ));
    let inventory_down = Arc::new(AtomicBool::new(false));
    for _ in 0..2 {
        let app = switchable(
            inventory::app(Inventory::open(&d.join("inventory.sqlite")).expect("inv")),
            inventory_down.clone(),
        );
        service(&registry_url, "inventory", app).await;
    }
    let cfg = PaymentsConfig {
        processing_delay_ms: 1,
        ..PaymentsConfig::default()
    };
    let shadow_hold_ms = Arc::new(AtomicU64::new(0));
    let shadow_down = Arc::new(AtomicBool::new(false));
    let candidate = Inventory::open(&d.join("inventory.sqlite"))
        .expect("inv")
        .with_price_offset(1);
    let shadow = holdable(
        switchable(inventory::shadow_app(candidate), shadow_down.clone()),
        shadow_hold_ms.clone(),
    );
    service(&registry_url, "inventory-shadow", shadow).await;
    let payments_hold_ms = Arc::new(AtomicU64::new(0));
    let pay = payments::app(Payments::open(&d.join("payments.sqlite"), cfg).expect("pay"));
    service(
        &registry_url,
        "payments",
        holdable(pay, payments_hold_ms.clone()),
    )
    .await;
    // Orders, the consumer and the gateway all find their upstreams through the registry.
    let discovery = Discovery::new(
        RegistryClient::new(&registry_url),
        DiscoveryConfig::default(),
    );
    let http = reqwest::Client::new();
    let up = |s: Service| {
        HttpClient::new(
            Upstream::new(
                s.name(),
                discovery.endpoint(s),
                http.clone(),
                &ResilienceConfig::default(),
            )
            .expect("upstream"),
        )
    };
    let orders = Orders::open(
        &d.join("orders.sqlite"),
        InventoryClient::new(up(Service::Inventory)),
        PaymentsClient::new(up(Service::Payments)),
    )
    .expect("orders");
    service(&registry_url, "orders", orders::app(orders)).await;
    // Order-history in two shards, each its own database, each keeping its customers.
    for index in 1..=2 {
        let held = Shard { index, of: 2 };
        let history = OrderHistory::open(&d.join(format!("history-{index}.sqlite")))
            .expect("history")
            .holding(held);
        let feed = feed_client("orders", discovery.endpoint(Service::Orders)).expect("feed");
        tokio::spawn(history.consume(feed, ConsumeOptions::default(), std::future::pending()));
        let app = order_history::app(history);
        shard(&registry_url, "order-history", app, Some(held)).await;
    }
    let notes = Notifications::open(&d.join("notifications.sqlite")).expect("notifications");
    let feed = feed_client("orders", discovery.endpoint(Service::Orders)).expect("feed");
    tokio::spawn(
        notes
            .clone()
            .consume(feed, ConsumeOptions::default(), std::future::pending()),
    );
    service(&registry_url, "notifications", notifications::app(notes)).await;
    // The backends for frontends, each its own server with its own clients.
    let upstreams = web_bff::Upstreams {
        inventory: InventoryClient::new(up(Service::Inventory)),
        history: OrderHistoryClient::discovered(&discovery, |endpoint| {
            Upstream::new(
                "order-history",
                endpoint,
                http.clone(),
                &ResilienceConfig::default(),
            )
            .map(HttpClient::new)
        })
        .expect("upstreams"),
        payments: PaymentsClient::new(up(Service::Payments)),
    };
    let web = WebBff::new(upstreams, &WebBffConfig::default());
    let registry_client = RegistryClient::new(&registry_url);
    let web_bff = service(
        &registry_url,
        "web-bff",
        web_bff::app(web, registry_client.clone()),
    )
    .await;
    let mobile = MobileBff {
        inventory: CatalogClient::new(up(Service::Inventory)),
        orders: OrdersClient::new(up(Service::Orders)),
    };
    service(
        &registry_url,
        "mobile-bff",
        mobile_bff::app(mobile, registry_client),
    )
    .await;

    let (gl, gateway_url) = bind().await;
    // The gateway's own view of the registry, as in its own process.
    let g = Gateway::new(
        Discovery::new(
            RegistryClient::new(&registry_url),
            DiscoveryConfig::default(),
        ),
        config,
    )
    .expect("gateway");
    tokio::spawn(gateway::run(g, gl, std::future::pending()));
    // Ready once every upstream is discoverable.
    let deadline = Instant::now() + Duration::from_secs(10);
    for name in [
        "inventory",
        "orders",
        "order-history",
        "payments",
        "notifications",
        "inventory-shadow",
        "web-bff",
        "mobile-bff",
    ] {
        loop {
            let r = http
                .get(format!("{registry_url}/services/{name}"))
                .send()
                .await
                .expect("registry");
            if r.status() == 200
                && r.json::<Vec<Value>>()
                    .await
                    .map(|v| !v.is_empty())
                    .unwrap_or(false)
            {
                break;
            }
            assert!(Instant::now() < deadline, "{name} never registered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Stack {
        gateway: gateway_url,
        web_bff,
        inventory_down,
        payments_hold_ms,
        shadow_hold_ms,
        shadow_down,
        http,
        _dir: dir,
    }
}

impl Stack {
    /// The gateway's `/admin/resilience`.
    async fn resilience(&self) -> ResilienceReport {
        self.get("/admin/resilience")
            .await
            .json()
            .await
            .expect("report")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.gateway))
            .send()
            .await
            .expect("gateway answers")
    }

    async fn token(&self) -> String {
        let v: Value = self
            .http
            .post(format!("{}/api/token", self.gateway))
            .json(&json!({"username": "demo", "password": "demo"}))
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("json");
        v["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_go_through_the_gateway_with_a_token_and_a_correlation_id() {
    let s = stack(GatewayConfig::default()).await;
    let order = json!({"customer_id": "cust-g", "items": [{"sku": "SKU-MOUSE", "quantity": 1}]});
    let resp = s
        .http
        .post(format!("{}/api/orders", s.gateway))
        .json(&order)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer")
    );
    let bad = s
        .http
        .post(format!("{}/api/token", s.gateway))
        .json(&json!({"username": "demo", "password": "nope"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(bad.status(), 401);

    let token = s.token().await;
    let resp = s
        .http
        .post(format!("{}/api/orders", s.gateway))
        .bearer_auth(&token)
        .header("x-correlation-id", "req-gw-1")
        .json(&order)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 201);
    assert_eq!(
        resp.headers()
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok()),
        Some("req-gw-1")
    );
    let placed: Value = resp.json().await.expect("json");
    assert_eq!(placed["status"], "confirmed");
    let id = placed["id"].as_str().expect("id");
    let got: Value = s
        .get(&format!("/api/orders/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(got["status"], "confirmed");
    let mobile: Value = s
        .get(&format!("/mobile/orders/{id}"))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        mobile,
        json!({"id": id, "status": "confirmed", "total": "29.00"})
    );

    // A request without the header gets a fresh UUID v7.
    let generated = s
        .get("/api/products")
        .await
        .headers()
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("echoed");
    assert_eq!(
        uuid::Uuid::parse_str(&generated)
            .map(|u| u.get_version_num())
            .ok(),
        Some(7)
    );

    // The CQRS side catches up and answers through the gateway.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mine: Value = s
            .get("/api/customers/cust-g/orders")
            .await
            .json()
            .await
            .unwrap_or(Value::Null);
        if mine
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["status"] == "confirmed")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "history never showed the order: {mine}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // cust-g is shard 1's customer (CRC-32 of the ID is even): every one of those reads
    // went to shard 1's instance, none to shard 2's.
    assert_eq!(Shard::index_of("cust-g", 2), 1);
    let admin = s.resilience().await;
    let shards: Vec<_> = (admin.upstreams.iter())
        .filter(|u| u.upstream == "order-history")
        .collect();
    let calls: Vec<u64> = shards
        .iter()
        .map(|u| u.calls_per_instance.values().sum())
        .collect();
    assert_eq!(
        shards.iter().map(|u| u.shard).collect::<Vec<_>>(),
        [Some(1), Some(2)],
        "one upstream per shard: {admin:?}"
    );
    assert!(calls[0] > 0 && calls[1] == 0, "calls per shard: {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_spread_round_robin_and_products_fall_back_to_the_cache() {
    let s = stack(GatewayConfig::default()).await;
    for _ in 0..4 {
        assert_eq!(s.get("/api/products").await.status(), 200);
    }
    let admin = s.resilience().await;
    let per_instance: Vec<u64> = admin
        .upstream("inventory")
        .expect("inventory")
        .calls_per_instance
        .values()
        .copied()
        .collect();
    assert_eq!(
        per_instance,
        [2, 2],
        "two inventory instances, two calls each: {admin:?}"
    );
    let mobile: Value = s.get("/mobile/products").await.json().await.expect("json");
    assert_eq!(
        mobile[0].as_object().map(|o| o.len()),
        Some(4),
        "trimmed: sku, name, price, in_stock"
    );

    // Inventory fails: the last good list is served, marked as such.
    s.inventory_down.store(true, Ordering::SeqCst);
    let resp = s.get("/api/products").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("x-fallback")
            .and_then(|v| v.to_str().ok()),
        Some("cache")
    );
    let list: Value = resp.json().await.expect("json");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(inventory::CATALOG.len())
    );
    let admin: Value = s.get("/admin/resilience").await.json().await.expect("json");
    let inv = admin["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .find(|u| u["upstream"] == "inventory")
        .expect("inventory");
    assert!(
        inv["retries"].as_u64().unwrap_or(0) > 0,
        "GETs were retried before falling back: {inv}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let s = stack(GatewayConfig {
        rate_limit_per_second: 1,
        rate_limit_burst: 2,
        ..GatewayConfig::default()
    })
    .await;
    let statuses = [
        s.get("/health/live").await,
        s.get("/health/live").await,
        s.get("/health/live").await,
    ];
    let codes: Vec<u16> = statuses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(codes, [200, 200, 429]);
    let retry: u64 = statuses[2]
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
}

/// Orders have a limit of their own per client, beside the requests'; with the limit
/// switched off (`--disable rate-limiting`) nothing is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_have_their_own_limit_and_the_switch_lifts_both() {
    let limited = |on: bool| GatewayConfig {
        rate_limit: on,
        rate_limit_per_second: 1,
        rate_limit_burst: 10,
        rate_limit_orders_per_second: 1,
        rate_limit_orders_burst: 2,
        ..GatewayConfig::default()
    };
    let s = stack(limited(true)).await;
    let order = || async {
        // Refused for want of a token, but counted: the limiter stands before everything.
        s.http
            .post(format!("{}/api/orders", s.gateway))
            .json(&json!({"customer_id": "c", "items": []}))
            .send()
            .await
            .expect("gateway answers")
    };
    let codes = [
        order().await.status().as_u16(),
        order().await.status().as_u16(),
        order().await.status().as_u16(),
    ];
    assert_eq!(codes, [401, 401, 429], "two orders in a burst, not three");
    let third = order().await;
    let body: Value = third.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("rate limit of 1 orders a second")),
        "{body}"
    );
    // Other requests still have their own allowance left.
    assert_eq!(s.get("/health/live").await.status().as_u16(), 200);

    let s = stack(limited(false)).await;
    for _ in 0..15 {
        assert_eq!(s.get("/health/live").await.status().as_u16(), 200);
    }
}

impl Stack {
    /// Places an order of one mouse and waits until every part of its details is known
    /// (the notification comes through the feed, a little after the order).
    async fn confirmed_order(&self, customer: &str) -> String {
        let token = self.token().await;
        let placed: Value = self
            .http
            .post(format!("{}/api/orders", self.gateway))
            .bearer_auth(&token)
            .json(&json!({"customer_id": customer, "items": [{"sku": "SKU-MOUSE", "quantity": 1}]}))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("json");
        assert_eq!(placed["status"], "confirmed", "{placed}");
        let id = placed["id"].as_str().expect("id").to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let details: Value = self
                .get(&format!("/api/orders/{id}/details"))
                .await
                .json()
                .await
                .expect("json");
            if details["notifications"]
                .as_array()
                .is_some_and(|n| n.len() == 1)
            {
                return id;
            }
            assert!(Instant::now() < deadline, "never notified: {details}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The details of `id`, and how long they took.
    async fn details(&self, id: &str) -> (OrderDetails, Duration) {
        let started = Instant::now();
        let resp = self.get(&format!("/api/orders/{id}/details")).await;
        assert_eq!(resp.status(), 200);
        let details = resp.json().await.expect("details");
        (details, started.elapsed())
    }
}

/// Composition: the order with its reservation, payments and notifications in one answer;
/// a part that misses its deadline is left out and named, and the answer does not wait for
/// it. Without the deadlines, the same answer waits for the slow part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_details_come_within_their_deadline_whatever_one_part_does() {
    let s = stack(GatewayConfig::default()).await;
    let id = s.confirmed_order("cust-details").await;
    let (d, _) = s.details(&id).await;
    assert_eq!(d.order.id, id);
    assert!(d.missing.is_empty(), "{d:?}");
    let reservation = d.reservation.expect("the order's reservation");
    assert_eq!(reservation.reservation_id, id);
    assert_eq!(reservation.status.as_str(), "confirmed");
    let statuses: Vec<&str> = d.payments.iter().map(|p| p.status.as_str()).collect();
    assert_eq!(statuses, ["authorized"]);
    assert_eq!(d.notifications[0].kind, "order_confirmed");

    // An unknown order is a 404, not a partial answer.
    let unknown = s.get("/api/orders/no-such-order/details").await;
    assert_eq!(unknown.status(), 404);

    // Payments holds its answers 1.5 s: past the part's 500 ms deadline.
    s.payments_hold_ms.store(1_500, Ordering::SeqCst);
    let (d, took) = s.details(&id).await;
    assert_eq!(d.missing, [Service::Payments], "{d:?}");
    assert!(d.payments.is_empty() && d.reservation.is_some() && d.notifications.len() == 1);
    assert!(
        took < Duration::from_millis(1_200),
        "answered after {took:?}, past the 1 s deadline"
    );

    // Without the deadlines the answer is whole, but waits for payments.
    let config = GatewayConfig {
        composition_deadlines: false,
        ..GatewayConfig::default()
    };
    let s = stack(config).await;
    let id = s.confirmed_order("cust-details").await;
    s.payments_hold_ms.store(1_500, Ordering::SeqCst);
    let (d, took) = s.details(&id).await;
    assert!(d.missing.is_empty(), "{d:?}");
    assert!(took >= Duration::from_millis(1_500), "{took:?}");
}

impl Stack {
    async fn shadow_report(&self) -> ShadowReport {
        self.get("/admin/shadow")
            .await
            .json()
            .await
            .expect("shadow report")
    }

    /// The report once `n` comparisons (or failures) are in.
    async fn shadow_after(&self, n: u64) -> ShadowReport {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.shadow_report().await;
            if r.compared + r.candidate_failures >= n {
                return r;
            }
            assert!(Instant::now() < deadline, "mirroring stalled: {r:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Browses once: the prices the client got, and how long it took.
    async fn browse(&self) -> (Vec<i64>, Duration) {
        let started = Instant::now();
        let resp = self.get("/api/products").await;
        assert_eq!(resp.status(), 200);
        let list: Vec<Product> = resp.json().await.expect("products");
        (
            list.iter().map(|p| p.price_cents).collect(),
            started.elapsed(),
        )
    }
}

/// Shadow deployment: product reads are mirrored to a candidate that prices everything a
/// cent higher; the comparison names that field and nothing else, and a slow or failing
/// shadow changes neither the client's answer nor when it comes. Without isolation the
/// client waits for the shadow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_is_compared_field_by_field_and_never_changes_an_answer() {
    let s = stack(GatewayConfig::default()).await;
    let (prices, _) = s.browse().await;
    for _ in 0..7 {
        assert_eq!(s.browse().await.0, prices, "the primary's prices, always");
    }
    let report = s.shadow_after(8).await;
    assert_eq!(report.differences, ["/*/price_cents"], "{report:?}");
    assert_eq!(report.candidate_failures, 0);

    // A shadow that hangs 1.5 s: clients are answered as quickly, with the same prices.
    s.shadow_hold_ms.store(1_500, Ordering::SeqCst);
    for _ in 0..5 {
        let (got, took) = s.browse().await;
        assert_eq!(got, prices);
        assert!(
            took < Duration::from_millis(1_000),
            "{took:?}: waited for the shadow"
        );
    }
    // A shadow that fails: the same, and the failures are counted.
    s.shadow_hold_ms.store(0, Ordering::SeqCst);
    s.shadow_down.store(true, Ordering::SeqCst);
    let before = s.shadow_report().await.candidate_failures;
    for _ in 0..3 {
        assert_eq!(s.browse().await.0, prices);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.shadow_report().await.candidate_failures <= before {
        assert!(Instant::now() < deadline, "shadow failures never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Without isolation, the same slow shadow holds every client's answer.
    let mut config = GatewayConfig::default();
    config.shadow.isolation = false;
    let s = stack(config).await;
    s.shadow_hold_ms.store(1_500, Ordering::SeqCst);
    let (_, took) = s.browse().await;
    assert!(took >= Duration::from_millis(1_500), "{took:?}");
}

impl Stack {
    /// `body` posted to the gateway's `/graphql` with `accept`: the status, the content
    /// type, and the answer.
    async fn graphql(&self, body: &Value, accept: &str) -> (u16, String, GraphQlResponse) {
        let resp = self
            .http
            .post(format!("{}/graphql", self.gateway))
            .header("accept", accept)
            .json(body)
            .send()
            .await
            .expect("gateway answers");
        let status = resp.status().as_u16();
        let media = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (status, media, resp.json().await.expect("a GraphQL answer"))
    }

    /// Every call the web BFF has made to its services.
    async fn web_bff_calls(&self) -> u64 {
        let report: ResilienceReport = self
            .http
            .get(format!("{}/admin/resilience", self.web_bff))
            .send()
            .await
            .expect("web BFF answers")
            .json()
            .await
            .expect("report");
        report
            .upstreams
            .iter()
            .flat_map(|u| u.calls_per_instance.values())
            .sum()
    }
}

const NEW: &str = "application/graphql-response+json";

/// The web BFF through the gateway: one query brings a page's products with their stock
/// and a customer's orders with their payments; a query that does not parse, names an
/// unknown field or goes past a limit is refused in the GraphQL error shape, with
/// locations, before any service is asked; a failing service is a field error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_bff_answers_a_page_in_one_query_and_refuses_bad_ones_before_asking_anyone() {
    let s = stack(GatewayConfig::default()).await;
    let token = s.token().await;
    let placed: Value = s
        .http
        .post(format!("{}/api/orders", s.gateway))
        .bearer_auth(&token)
        .json(&json!({"customer_id": "cust-web", "items": [{"sku": "SKU-MOUSE", "quantity": 2}]}))
        .send()
        .await
        .expect("placed")
        .json()
        .await
        .expect("json");
    let id = placed["id"].as_str().expect("id").to_string();
    let page = json!({
        "query": "query Page($c: String!) { products { sku stock inStock price } \
                  customerOrders(customerId: $c) { id status total items { sku quantity } \
                  payments { status amountCents } } }",
        "operationName": "Page",
        "variables": {"c": "cust-web"},
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let data = loop {
        let (status, media, answer) = s.graphql(&page, NEW).await;
        assert_eq!((status, media.as_str()), (200, NEW), "{answer:?}");
        assert!(answer.errors.is_empty(), "{answer:?}");
        let data = answer.data.expect("data");
        if data["customerOrders"][0]["id"] == id.as_str() {
            break data;
        }
        assert!(Instant::now() < deadline, "the order never showed: {data}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        data["products"].as_array().map(Vec::len),
        Some(inventory::CATALOG.len())
    );
    assert!(data["products"][0]["stock"].as_i64().is_some(), "{data}");
    assert_eq!(
        data["customerOrders"][0]["payments"],
        json!([{"status": "authorized", "amountCents": placed["total_cents"]}])
    );
    let (_, _, none) = s
        .graphql(
            &json!({"query": "{ order(id: \"ord-nobody\") { id } }"}),
            NEW,
        )
        .await;
    assert_eq!(none.data, Some(json!({"order": null})), "{none:?}");

    let asked = s.web_bff_calls().await;
    let costly = (0..3)
        .map(|n| format!("o{n}: customerOrders(customerId: \"c\") {{ id payments {{ id status amountCents reason }} }}"))
        .collect::<Vec<_>>()
        .join(" ");
    let costly = format!("{{ {costly} }}");
    let refusals = [
        ("{ products { sku ", "expected selection_set", Some((1, 18))),
        (
            "{ products { colour } }",
            "Unknown field \"colour\"",
            Some((1, 14)),
        ),
        (costly.as_str(), "Query is too complex", None),
        (
            "{ __schema { types { fields { type { ofType { ofType { name } } } } } } }",
            "Query is nested too deep",
            None,
        ),
    ];
    for (query, says, at) in refusals {
        let (status, media, answer) = s.graphql(&json!({ "query": query }), NEW).await;
        assert_eq!((status, media.as_str()), (400, NEW), "{query}: {answer:?}");
        assert!(answer.data.is_none(), "{query}: a refusal has no data");
        let e = &answer.errors[0];
        assert!(e.message.contains(says), "{query}: {}", e.message);
        if let Some((line, column)) = at {
            assert_eq!(
                (e.locations[0].line, e.locations[0].column),
                (line, column),
                "{query}"
            );
        }
        // Older clients asked for plain JSON: the same refusal, with 200.
        let (status, media, _) = s
            .graphql(&json!({ "query": query }), "application/json")
            .await;
        assert_eq!(
            (status, media.as_str()),
            (200, "application/json"),
            "{query}"
        );
    }
    for (body, says) in [
        (
            json!({"qurey": "{ products { sku } }"}),
            "unknown field `qurey`",
        ),
        (
            json!({"query": "{ products { sku } }", "variables": [1]}),
            "variables must be a JSON object",
        ),
    ] {
        let (status, _, answer) = s.graphql(&body, "application/json").await;
        assert!(
            answer.errors[0].message.contains(says),
            "{body}: {answer:?}"
        );
        assert!(
            status == 400 || body.get("variables").is_some(),
            "{body}: {status}"
        );
    }
    assert_eq!(
        s.web_bff_calls().await,
        asked,
        "no refused query asked any service"
    );

    // A failing service is a field error the page can read; the answer still comes.
    s.inventory_down.store(true, Ordering::SeqCst);
    let (status, _, answer) = s
        .graphql(&json!({"query": "{ products { sku } }"}), NEW)
        .await;
    assert_eq!(status, 200, "{answer:?}");
    assert_eq!(answer.data, Some(Value::Null));
    let e = &answer.errors[0];
    assert_eq!(e.path.len(), 1, "{e:?}");
    let ext = serde_json::to_value(&e.extensions).expect("extensions");
    assert_eq!(
        ext,
        json!({"code": "UPSTREAM_UNAVAILABLE", "service": "inventory"})
    );
}
