//! Event-driven side of the demo over real services: orders are placed while the
//! notifications and order-history consumers are down; started later, they catch up from
//! the orders feed, and restarting one does not repeat anything.

mod common;

use common::{bind, eventually, orders_at, orders_feed, serve};

use std::time::Duration;

use gauntlet_demo_system::inventory::{self, Inventory};
use gauntlet_demo_system::notifications::Notifications;
use gauntlet_demo_system::order_history::{self, OrderHistory};
use gauntlet_demo_system::orders;
use gauntlet_demo_system::payments::{self, Payments, PaymentsConfig};
use gauntlet_demo_system::platform::outbox::{Consumer, FeedConsumer};
use gauntlet_demo_system::platform::resilience::ResilienceConfig;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_that_were_down_catch_up_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (il, inventory_url) = bind().await;
    serve(
        il,
        inventory::app(Inventory::open(&d.join("inventory.sqlite")).expect("inv")),
    );
    let (pl, payments_url) = bind().await;
    let cfg = PaymentsConfig {
        processing_delay_ms: 1,
        ..PaymentsConfig::default()
    };
    serve(
        pl,
        payments::app(Payments::open(&d.join("payments.sqlite"), cfg).expect("pay")),
    );
    let http = reqwest::Client::new();
    let orders = orders_at(
        d,
        &inventory_url,
        &payments_url,
        &ResilienceConfig::default(),
    );
    let (ol, orders_url) = bind().await;
    serve(ol, orders::app(orders));

    let mut ids = Vec::new();
    for (sku, qty) in [("SKU-MOUSE", 1), ("SKU-LAMP", 1), ("SKU-MONITOR", 99)] {
        let order: Value = http
            .post(format!("{orders_url}/orders"))
            .json(&json!({"customer_id": "cust-9", "items": [{"sku": sku, "quantity": qty}]}))
            .send()
            .await
            .expect("place")
            .json()
            .await
            .expect("json");
        ids.push((
            order["id"].as_str().expect("id").to_string(),
            order["status"].as_str().expect("status").to_string(),
        ));
    }
    let statuses: Vec<&str> = ids.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(statuses, ["confirmed", "cancelled", "rejected"]);

    // Now the consumers start, long after the events were published.
    let history = OrderHistory::open(&d.join("history.sqlite")).expect("history");
    let (hl, history_url) = bind().await;
    serve(hl, order_history::app(history.clone()));
    let (stop_h, stopped_h) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(history.consume(orders_feed(&orders_url), true, async move {
        let _ = stopped_h.await;
    }));
    let notes = Notifications::open(&d.join("notifications.sqlite")).expect("notifications");
    let (stop_n, stopped_n) = tokio::sync::oneshot::channel::<()>();
    let first_run = tokio::spawn(notes.consume(orders_feed(&orders_url), true, async move {
        let _ = stopped_n.await;
    }));

    eventually("three notifications", || async {
        notes
            .list(Default::default())
            .await
            .map(|n| n.len() == 3)
            .unwrap_or(false)
    })
    .await;
    let all = notes.list(Default::default()).await.expect("list");
    assert!(all[0].message.contains("is confirmed"), "{:?}", all[0]);
    assert!(all[1].message.contains("13 cents"), "{:?}", all[1]);
    assert!(all[2].message.contains("not enough"), "{:?}", all[2]);
    assert!(all.iter().all(|n| n.customer_id == "cust-9"));

    let (cancelled, _) = &ids[1];
    eventually("the cancelled order's full history", || async {
        history
            .history(cancelled)
            .await
            .ok()
            .flatten()
            .is_some_and(|h| h.order.status == orders::OrderStatus::Cancelled)
    })
    .await;
    let h: Value = http
        .get(format!("{history_url}/orders/{cancelled}/history"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let steps: Vec<&str> = h["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert_eq!(
        steps,
        ["pending", "stock_reserved", "compensating", "cancelled"]
    );
    eventually("all three orders of the customer", || async {
        history
            .of_customer("cust-9")
            .await
            .map(|v| v.len() == 3)
            .unwrap_or(false)
    })
    .await;
    let mine: Value = http
        .get(format!("{history_url}/customers/cust-9/orders"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(mine[0]["status"], "confirmed");
    let resp = http
        .get(format!("{history_url}/orders/nope/history"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 404);

    // Restarting the notifications consumer repeats nothing.
    let _ = stop_n.send(());
    first_run.await.expect("stopped");
    let again = Notifications::open(&d.join("notifications.sqlite")).expect("reopen");
    // A short long-poll: there is nothing new to wait for.
    let reader = Consumer {
        wait: Duration::from_millis(100),
        ..again.consumer(orders_feed(&orders_url))
    };
    assert!(
        reader.cursor().await.expect("cursor") > 0,
        "it remembers where it was"
    );
    assert_eq!(
        reader.poll_once(&Notifications::apply).await.expect("poll"),
        0
    );
    assert_eq!(again.list(Default::default()).await.expect("list").len(), 3);
    let _ = stop_h.send(());
}
