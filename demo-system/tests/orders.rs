//! The order saga over real inventory and payments services on loopback, each with its own
//! SQLite file: confirmation, compensation of a declined payment, rejection for lack of
//! stock, idempotent placement, a saga that resumes after a restart, and overlapping runs
//! that record each step once (the event store's optimistic concurrency).

mod common;

use common::{bind, orders_at, serve};

use std::path::Path;

use gauntlet_demo_system::inventory::{self, Inventory};
use gauntlet_demo_system::orders::{self, Order, OrderStatus, OrderStream, Orders};
use gauntlet_demo_system::payments::{self, Payments, PaymentsConfig};
use gauntlet_demo_system::platform::resilience::{BreakerConfig, ResilienceConfig, RetryConfig};
use serde_json::{Value, json};

fn resilience() -> ResilienceConfig {
    ResilienceConfig {
        circuit_breaker: BreakerConfig {
            enabled: false,
            ..BreakerConfig::default()
        },
        retry: RetryConfig {
            max_attempts: 2,
            initial_backoff_ms: 10,
            ..RetryConfig::default()
        },
        timeout_ms: 300,
        ..ResilienceConfig::default()
    }
}

fn orders_service(dir: &Path, inventory_url: &str, payments_url: &str) -> Orders {
    orders_at(dir, inventory_url, payments_url, &resilience())
}

/// Inventory on its own SQLite file in `dir`, served on loopback; its URL.
async fn inventory_at(dir: &Path) -> String {
    let (il, url) = bind().await;
    serve(
        il,
        inventory::app(Inventory::open(&dir.join("inventory.sqlite")).expect("inv")),
    );
    url
}

struct Demo {
    orders: String,
    inventory: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn demo() -> Demo {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory = inventory_at(dir.path()).await;
    let (pl, payments_url) = bind().await;
    let cfg = PaymentsConfig {
        processing_delay_ms: 1,
        ..PaymentsConfig::default()
    };
    serve(
        pl,
        payments::app(Payments::open(&dir.path().join("payments.sqlite"), cfg).expect("pay")),
    );
    let (ol, orders) = bind().await;
    serve(
        ol,
        orders::app(orders_service(dir.path(), &inventory, &payments_url)),
    );
    Demo {
        orders,
        inventory,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Demo {
    async fn place(&self, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/orders", self.orders))
            .json(&body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let resp = req.send().await.expect("answer");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }

    async fn stock(&self, sku: &str) -> i64 {
        let p: Value = self
            .http
            .get(format!("{}/products/{sku}", self.inventory))
            .send()
            .await
            .expect("answer")
            .json()
            .await
            .expect("json");
        p["stock"].as_i64().expect("stock")
    }

    async fn events(&self) -> Vec<String> {
        let feed: Value = self
            .http
            .get(format!("{}/events?after=0&limit=1000", self.orders))
            .send()
            .await
            .expect("feed")
            .json()
            .await
            .expect("json");
        feed["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["type"].as_str().map(str::to_string))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_goes_through_reserve_authorize_confirm() {
    let d = demo().await;
    let (status, order) = d
        .place(
            json!({"customer_id": "c-1", "items": [{"sku": "SKU-MOUSE", "quantity": 2}]}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "confirmed");
    assert_eq!(order["total_cents"], 5800);
    assert!(order["payment_id"].is_string());
    assert_eq!(d.stock("SKU-MOUSE").await, 298);
    assert_eq!(
        d.events().await,
        [
            "order.pending",
            "order.stock_reserved",
            "order.payment_authorized",
            "order.confirmed"
        ]
    );
    let got: Order = d
        .http
        .get(format!(
            "{}/orders/{}",
            d.orders,
            order["id"].as_str().expect("id")
        ))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(got.status, OrderStatus::Confirmed);

    // The order is its stream of events: one per step, versions 1..4, making the order
    // every other answer shows.
    let stream: OrderStream = d
        .http
        .get(format!("{}/orders/{}/events", d.orders, got.id))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let steps: Vec<(i64, OrderStatus)> = stream
        .events
        .iter()
        .map(|e| (e.version, e.change.status()))
        .collect();
    assert_eq!(
        steps,
        [
            (1, OrderStatus::Pending),
            (2, OrderStatus::StockReserved),
            (3, OrderStatus::PaymentAuthorized),
            (4, OrderStatus::Confirmed)
        ]
    );
    assert_eq!((stream.version, &stream.order), (4, &got));
    let unknown = d
        .http
        .get(format!("{}/orders/nope/events", d.orders))
        .send()
        .await
        .expect("get");
    assert_eq!(unknown.status(), 404);

    // Its upstreams' breakers, bulkheads and retries are visible.
    let admin: Value = d
        .http
        .get(format!("{}/admin/resilience", d.orders))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = admin["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .filter_map(|u| u["upstream"].as_str())
        .collect();
    assert_eq!(names, ["inventory", "payments"], "{admin}");
    assert_eq!(admin["upstreams"][1]["bulkhead_in_use"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_is_compensated_in_reverse() {
    let d = demo().await;
    let before = d.stock("SKU-LAMP").await;
    // A lamp costs 34.13: amounts ending in 13 cents are declined.
    let (status, order) = d
        .place(
            json!({"customer_id": "c-2", "items": [{"sku": "SKU-LAMP", "quantity": 1}]}),
            None,
        )
        .await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["status"], "cancelled");
    assert!(
        order["reason"]
            .as_str()
            .is_some_and(|r| r.contains("13 cents")),
        "{order}"
    );
    assert_eq!(
        d.stock("SKU-LAMP").await,
        before,
        "the reserved lamp is back"
    );
    assert_eq!(
        d.events().await,
        [
            "order.pending",
            "order.stock_reserved",
            "order.compensating",
            "order.cancelled"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lack_of_stock_rejects_without_compensation_and_bad_orders_get_a_reason() {
    let d = demo().await;
    let (status, order) = d
        .place(
            json!({"customer_id": "c-3", "items": [{"sku": "SKU-MONITOR", "quantity": 41}]}),
            None,
        )
        .await;
    assert_eq!(
        (status, &order["status"]),
        (201, &json!("rejected")),
        "{order}"
    );
    assert!(
        order["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not enough"))
    );
    for (body, status, needle) in [
        (
            json!({"customer_id": "c", "items": []}),
            400,
            "at least one item",
        ),
        (
            json!({"customer_id": "c", "items": [{"sku": "SKU-NOPE", "quantity": 1}]}),
            422,
            "no product",
        ),
        (
            json!({"customer_id": "c", "items": [{"sku": "SKU-MOUSE", "quantity": -1}]}),
            400,
            "positive",
        ),
        (json!({"items": []}), 400, "customer_id"),
    ] {
        let (got, err) = d.place(body.clone(), None).await;
        assert_eq!(got, status, "{body}");
        assert!(
            err["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{body}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_places_one_order() {
    let d = demo().await;
    let body = json!({"customer_id": "c-4", "items": [{"sku": "SKU-CABLE", "quantity": 3}]});
    let (s1, first) = d.place(body.clone(), Some("checkout-42")).await;
    let (s2, again) = d.place(body, Some("checkout-42")).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["id"], again["id"]);
    assert_eq!(
        d.stock("SKU-CABLE").await,
        997,
        "reserved and confirmed once"
    );
    let (status, err) = d
        .place(
            json!({"customer_id": "c-4", "items": [{"sku": "SKU-CABLE", "quantity": 4}]}),
            Some("checkout-42"),
        )
        .await;
    assert_eq!(status, 422, "{err}");
}

/// Inventory and orders running, payments' port bound but not answering: an order placed
/// for `sku` waits in `stock_reserved`.
struct Waiting {
    inventory_url: String,
    payments: tokio::net::TcpListener,
    payments_url: String,
    order: Order,
}

async fn an_order_waiting_for_payments(dir: &Path, sku: &str) -> Waiting {
    let inventory_url = inventory_at(dir).await;
    // Payments' port is bound but nobody answers yet: calls time out.
    let (payments, payments_url) = bind().await;
    let first = orders_service(dir, &inventory_url, &payments_url);
    let (ol, orders_url) = bind().await;
    serve(ol, orders::app(first));
    let resp = reqwest::Client::new()
        .post(format!("{orders_url}/orders"))
        .json(&json!({"customer_id": "c-5", "items": [{"sku": sku, "quantity": 1}]}))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 202, "accepted, waiting for payments");
    let order: Order = resp.json().await.expect("json");
    assert_eq!(order.status, OrderStatus::StockReserved);
    Waiting {
        inventory_url,
        payments,
        payments_url,
        order,
    }
}

/// Payments starts answering on the listener the orders service already calls.
fn payments_comes_up(dir: &Path, listener: tokio::net::TcpListener, delay_ms: u64) {
    let cfg = PaymentsConfig {
        processing_delay_ms: delay_ms,
        ..PaymentsConfig::default()
    };
    serve(
        listener,
        payments::app(Payments::open(&dir.join("payments.sqlite"), cfg).expect("pay")),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saga_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Waiting {
        inventory_url,
        payments,
        payments_url,
        order,
    } = an_order_waiting_for_payments(dir.path(), "SKU-KEYBOARD").await;
    let http = reqwest::Client::new();

    // Payments comes up; a new orders instance on the same database resumes the saga.
    payments_comes_up(dir.path(), payments, 1);
    let restarted = orders_service(dir.path(), &inventory_url, &payments_url);
    assert_eq!(
        restarted
            .resume_all(std::time::Duration::ZERO)
            .await
            .expect("resume"),
        1
    );
    let done = restarted
        .order(&order.id)
        .await
        .expect("db")
        .expect("order");
    assert_eq!(done.status, OrderStatus::Confirmed);
    let kb: Value = http
        .get(format!("{inventory_url}/products/SKU-KEYBOARD"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(kb["stock"], 119, "reserved once, confirmed once");
    assert_eq!(
        restarted
            .resume_all(std::time::Duration::ZERO)
            .await
            .expect("resume"),
        0,
        "nothing left to do"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_of_one_saga_publish_each_state_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Waiting {
        inventory_url,
        payments,
        payments_url,
        order,
    } = an_order_waiting_for_payments(dir.path(), "SKU-CABLE").await;
    // Payments comes up, and two runs of the saga (a retried request and the periodic
    // resume, or two instances) take the order forward at the same time.
    payments_comes_up(dir.path(), payments, 20);
    let a = orders_service(dir.path(), &inventory_url, &payments_url);
    let b = orders_service(dir.path(), &inventory_url, &payments_url);
    let (ra, rb) = tokio::join!(a.advance(&order.id), b.advance(&order.id));
    assert_eq!(ra.expect("a").status, OrderStatus::Confirmed);
    assert_eq!(rb.expect("b").status, OrderStatus::Confirmed);

    let events = a
        .outbox()
        .read_after(0, 1000, std::time::Duration::ZERO)
        .await
        .expect("events");
    let kinds: Vec<&str> = events
        .iter()
        .filter(|e| e.aggregate_id == order.id)
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "order.pending",
            "order.stock_reserved",
            "order.payment_authorized",
            "order.confirmed"
        ],
        "each state published once"
    );
}

/// A data directory from before the event store: an `orders` table without versions and
/// the order events in the outbox. Opening it makes streams of those events at the same
/// feed positions and projects them, so answers and consumers' cursors hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_file_from_before_the_event_store_opens_with_its_orders_and_positions() {
    use gauntlet_demo_system::platform::outbox;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("orders.sqlite");
    let old = rusqlite::Connection::open(&path).expect("old file");
    old.execute_batch(outbox::SCHEMA).expect("outbox");
    old.execute_batch(
        "CREATE TABLE orders (id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, items TEXT NOT NULL,
             total_cents INTEGER NOT NULL, status TEXT NOT NULL, payment_id TEXT, reason TEXT,
             created_unix_ms INTEGER NOT NULL, updated_unix_ms INTEGER NOT NULL);
         INSERT INTO orders VALUES ('o-1', 'c-9', '[{\"sku\":\"SKU-LAMP\",\"quantity\":1}]', 3413,
             'cancelled', 'pay-1', 'declined', 1, 2);",
    )
    .expect("old orders");
    let mut order = json!({"id": "o-1", "customer_id": "c-9", "items": [{"sku": "SKU-LAMP", "quantity": 1}],
        "total_cents": 3413, "status": "pending", "payment_id": null, "reason": null});
    for (seq, status) in [
        (3, "pending"),
        (5, "stock_reserved"),
        (6, "compensating"),
        (8, "cancelled"),
    ] {
        order["status"] = json!(status);
        if status == "compensating" {
            order["payment_id"] = json!("pay-1");
            order["reason"] = json!("declined");
        }
        old.execute(
            "INSERT INTO outbox (seq, id, type, aggregate_id, payload, created_unix_ms)
             VALUES (?1, ?2, ?3, 'o-1', ?4, 1)",
            rusqlite::params![
                seq,
                uuid::Uuid::now_v7().to_string(),
                format!("order.{status}"),
                order.to_string()
            ],
        )
        .expect("old event");
    }
    drop(old);

    let orders = orders_service(dir.path(), "http://127.0.0.1:9", "http://127.0.0.1:9");
    let o = orders.order("o-1").await.expect("db").expect("the order");
    assert_eq!(
        (o.status, o.reason.as_deref()),
        (OrderStatus::Cancelled, Some("declined"))
    );
    let stream = orders.stream("o-1").await.expect("db").expect("its stream");
    let kept: Vec<(i64, i64)> = stream.events.iter().map(|e| (e.version, e.seq)).collect();
    assert_eq!(
        kept,
        [(1, 3), (2, 5), (3, 6), (4, 8)],
        "versions 1..4 at the old positions"
    );
    assert_eq!(stream.order, o);
}

/// The periodic resume runs beside requests: an order whose saga this process is running
/// (waiting on payments) is left to it, so payments gets one authorization call, not two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resumer_leaves_a_saga_this_process_is_running_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inventory_url = inventory_at(dir.path()).await;
    // Payments, answering in 200 ms, with every authorization request it gets counted.
    let (pl, payments_url) = bind().await;
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = asked.clone();
    let cfg = PaymentsConfig {
        processing_delay_ms: 200,
        ..PaymentsConfig::default()
    };
    let app = payments::app(Payments::open(&dir.path().join("payments.sqlite"), cfg).expect("pay"))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                if req.method() == axum::http::Method::POST
                    && req.uri().path() == "/payments/authorizations"
                {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                next.run(req)
            },
        ));
    serve(pl, app);
    let orders = orders_service(dir.path(), &inventory_url, &payments_url);
    let placing = {
        let o = orders.clone();
        let req = orders::PlaceOrder {
            customer_id: "c-in-flight".into(),
            items: vec![orders::Item {
                sku: "SKU-CABLE".into(),
                quantity: 1,
            }],
        };
        tokio::spawn(async move { o.place(req, None).await })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mine = orders.of_customer("c-in-flight").await.expect("db");
        if mine
            .first()
            .is_some_and(|o| o.status == OrderStatus::StockReserved)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the order never reached payments"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The request's saga waits on payments now; the resumer runs.
    orders
        .resume_all(std::time::Duration::ZERO)
        .await
        .expect("resume");
    let (_, order) = placing.await.expect("the request").expect("placed");
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(
        asked.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one authorization request: the resumer left the order to its request"
    );
}
