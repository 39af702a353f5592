//! The inventory service as the demo runs it: two instances over one shared SQLite file,
//! on real sockets. Reservations hold stock, confirm and release settle it idempotently,
//! and concurrent reservations through both instances never oversell.

use gauntlet_demo_system::inventory::{self, Inventory};
use serde_json::{Value, json};

async fn instance(db: &std::path::Path) -> String {
    let inv = Inventory::open(db).expect("inventory db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, inventory::app(inv)).await });
    url
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("answer");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn stock(http: &reqwest::Client, url: &str, sku: &str) -> i64 {
    let (_, p) = call(
        http,
        reqwest::Method::GET,
        format!("{url}/products/{sku}"),
        None,
    )
    .await;
    p["stock"].as_i64().expect("stock")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_confirm_and_release_move_stock_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("inventory.sqlite");
    let (a, b) = (instance(&db).await, instance(&db).await);
    let http = reqwest::Client::new();
    use reqwest::Method as M;

    let (status, products) = call(&http, M::GET, format!("{a}/products"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        products.as_array().map(Vec::len),
        Some(inventory::CATALOG.len())
    );
    assert_eq!(stock(&http, &a, "SKU-MOUSE").await, 300);

    let order = json!({"reservation_id": "order-1", "items": [{"sku": "SKU-MOUSE", "quantity": 2}, {"sku": "SKU-CABLE", "quantity": 3}]});
    let (status, r) = call(
        &http,
        M::POST,
        format!("{a}/reservations"),
        Some(order.clone()),
    )
    .await;
    assert_eq!((status, &r["status"]), (201, &json!("reserved")), "{r}");
    // Seen by the other instance at once, and a repeat is answered, not applied again.
    assert_eq!(stock(&http, &b, "SKU-MOUSE").await, 298);
    let (status, _) = call(&http, M::POST, format!("{b}/reservations"), Some(order)).await;
    assert_eq!(status, 200);
    assert_eq!(stock(&http, &a, "SKU-MOUSE").await, 298);

    for _ in 0..2 {
        let (status, r) = call(
            &http,
            M::POST,
            format!("{b}/reservations/order-1/confirm"),
            None,
        )
        .await;
        assert_eq!((status, &r["status"]), (200, &json!("confirmed")));
    }
    assert_eq!(
        stock(&http, &a, "SKU-MOUSE").await,
        298,
        "confirmed: gone for good"
    );
    let (status, err) = call(
        &http,
        M::POST,
        format!("{a}/reservations/order-1/release"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{err}");

    let second =
        json!({"reservation_id": "order-2", "items": [{"sku": "SKU-MONITOR", "quantity": 5}]});
    call(&http, M::POST, format!("{a}/reservations"), Some(second)).await;
    assert_eq!(stock(&http, &a, "SKU-MONITOR").await, 35);
    let (status, _) = call(
        &http,
        M::POST,
        format!("{a}/reservations/order-2/release"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        stock(&http, &b, "SKU-MONITOR").await,
        40,
        "released: back on the shelf"
    );

    let (_, feed) = call(&http, M::GET, format!("{b}/events?after=0"), None).await;
    let kinds: Vec<&str> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "stock.reserved",
            "stock.confirmed",
            "stock.reserved",
            "stock.released"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reservations_through_two_instances_never_oversell() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("inventory.sqlite");
    let urls = [instance(&db).await, instance(&db).await];
    let http = reqwest::Client::new();
    let lamps = stock(&http, &urls[0], "SKU-LAMP").await;
    let attempts = lamps + 15;
    let tasks: Vec<_> = (0..attempts)
        .map(|i| {
            let (http, url) = (http.clone(), urls[(i % 2) as usize].clone());
            tokio::spawn(async move {
                let body = json!({"reservation_id": format!("lamp-{i}"), "items": [{"sku": "SKU-LAMP", "quantity": 1}]});
                call(&http, reqwest::Method::POST, format!("{url}/reservations"), Some(body)).await.0
            })
        })
        .collect();
    let mut reserved = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            201 => reserved += 1,
            409 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((reserved, refused), (lamps, 15));
    assert_eq!(stock(&http, &urls[1], "SKU-LAMP").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reservations_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = instance(&dir.path().join("inventory.sqlite")).await;
    let http = reqwest::Client::new();
    for (body, status, needle) in [
        (
            json!({"reservation_id": "x", "items": []}),
            400,
            "at least one item",
        ),
        (
            json!({"reservation_id": "x", "items": [{"sku": "SKU-MOUSE", "quantity": 0}]}),
            400,
            "positive",
        ),
        (
            json!({"reservation_id": "x", "items": [{"sku": "SKU-NOPE", "quantity": 1}]}),
            404,
            "no product",
        ),
        (
            json!({"reservation_id": "x", "items": [{"sku": "SKU-MONITOR", "quantity": 41}]}),
            409,
            "not enough",
        ),
        (json!({"items": []}), 400, "reservation_id"),
    ] {
        let (got, err) = call(
            &http,
            reqwest::Method::POST,
            format!("{url}/reservations"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(got, status, "{body}");
        assert!(
            err["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{body}: {err}"
        );
    }
    let (status, _) = call(
        &http,
        reqwest::Method::GET,
        format!("{url}/reservations/none"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// The catalogue over gRPC, on the instance's own port beside its HTTP routes: the same
/// products as `GET /products`; an unknown SKU is `NOT_FOUND` (a 404 refusal to the caller),
/// a missing one `INVALID_ARGUMENT` (400); an instance that is gone is a transport failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalogue_answers_over_grpc_as_over_http() {
    use gauntlet_demo_system::inventory::{CatalogClient, Product};
    use gauntlet_demo_system::platform::client::{ClientError, HttpClient};
    use gauntlet_demo_system::platform::resilience::{CallError, ResilienceConfig};
    let dir = tempfile::tempdir().expect("tempdir");
    let url = instance(&dir.path().join("inventory.sqlite")).await;
    let client = |url: &str| {
        CatalogClient::new(
            HttpClient::at("inventory", url, &ResilienceConfig::default()).expect("client"),
        )
    };
    let grpc = client(&url);
    let over_grpc = grpc.products().await.expect("products over gRPC");
    let over_http: Vec<Product> = reqwest::get(format!("{url}/products"))
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(over_grpc, over_http);
    assert_eq!(over_grpc.len(), inventory::CATALOG.len());
    let lamp = grpc.product("SKU-LAMP").await.expect("a lamp");
    assert_eq!(Some(&lamp), over_http.iter().find(|p| p.sku == "SKU-LAMP"));
    let unknown = grpc.product("SKU-NOTHING").await.expect_err("unknown");
    assert!(
        matches!(&unknown, ClientError::Refused { status: 404, message, .. } if message.contains("SKU-NOTHING")),
        "{unknown:?}"
    );
    let empty = grpc.product("").await.expect_err("no sku");
    assert_eq!(empty.refused_status(), Some(400), "{empty:?}");
    // Nobody listens there any more: a transport failure, as an HTTP call's would be.
    let gone = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let failed = client(&gone).products().await.expect_err("nobody there");
    assert!(
        matches!(failed, ClientError::Call(CallError::Transport { .. })),
        "{failed:?}"
    );
}
