//! Event-driven side of the demo over real services: orders are placed while the
//! notifications and order-history consumers are down; started later, they catch up from
//! the orders feed, and restarting one does not repeat anything.

mod common;

use common::{bind, eventually, orders_at, orders_feed, serve};

use std::time::Duration;

use gauntlet_demo_system::inventory::{self, Inventory};
use gauntlet_demo_system::notifications::{self, Notifications};
use gauntlet_demo_system::order_history::{self, OrderHistory};
use gauntlet_demo_system::orders;
use gauntlet_demo_system::payments::{self, Payments, PaymentsConfig};
use gauntlet_demo_system::platform::dead_letters::{self, DeadLetter};
use gauntlet_demo_system::platform::outbox::{ConsumeOptions, Consumer, Event, FeedConsumer};
use gauntlet_demo_system::platform::resilience::ResilienceConfig;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_that_were_down_catch_up_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let orders_url = shop(d).await;
    let http = reqwest::Client::new();

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
    tokio::spawn(history.consume(
        orders_feed(&orders_url),
        ConsumeOptions::default(),
        async move {
            let _ = stopped_h.await;
        },
    ));
    let notes = Notifications::open(&d.join("notifications.sqlite")).expect("notifications");
    let (stop_n, stopped_n) = tokio::sync::oneshot::channel::<()>();
    let first_run = tokio::spawn(notes.consume(
        orders_feed(&orders_url),
        ConsumeOptions::default(),
        async move {
            let _ = stopped_n.await;
        },
    ));

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
    let mut reader = again.consumer(orders_feed(&orders_url));
    reader.wait = Duration::from_millis(100);
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

/// Orders, inventory and payments on real sockets; the orders service's URL.
async fn shop(d: &std::path::Path) -> String {
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
    let orders = orders_at(
        d,
        &inventory_url,
        &payments_url,
        &ResilienceConfig::default(),
    );
    let (ol, orders_url) = bind().await;
    serve(ol, orders::app(orders));
    orders_url
}

async fn place(http: &reqwest::Client, orders_url: &str, customer: &str) {
    let placed = http
        .post(format!("{orders_url}/orders"))
        .json(&json!({"customer_id": customer, "items": [{"sku": "SKU-MOUSE", "quantity": 1}]}))
        .send()
        .await
        .expect("place");
    assert_eq!(placed.status(), 201);
}

/// A poison event (an order whose customer ID notifications' mailer does not take) is
/// parked after three failed deliveries, with its error and trace context, and the events
/// after it flow; without dead letters the consumer stays stuck on it. A replay after the
/// fix applies it once; a replay of an event handled meanwhile changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_parked_and_the_events_after_it_flow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let orders_url = shop(d).await;
    let http = reqwest::Client::new();
    let poison = "p".repeat(notifications::MAX_RECIPIENT + 1);
    for customer in ["before", poison.as_str(), "after"] {
        place(&http, &orders_url, customer).await;
    }
    let told = |n: &Notifications, who: &'static str| {
        let n = n.clone();
        async move {
            let all = n.list(Default::default()).await.expect("list");
            all.iter().filter(|x| x.customer_id == who).count()
        }
    };

    // Without dead letters: stuck on the poison event, poll after poll.
    let stuck = Notifications::open(&d.join("stuck.sqlite")).expect("open");
    let mut reader = stuck.consumer(orders_feed(&orders_url));
    (reader.wait, reader.dead_letter_after) = (Duration::from_millis(100), None);
    for _ in 0..5 {
        assert!(reader.poll_once(&Notifications::apply).await.is_err());
    }
    assert_eq!(told(&stuck, "after").await, 0, "nobody after it is told");

    // With them: parked on the third failure, and the rest flow.
    let n = Notifications::open(&d.join("notifications.sqlite")).expect("open");
    let mut reader = n.consumer(orders_feed(&orders_url));
    (reader.wait, reader.dead_letter_after) = (Duration::from_millis(100), Some(3));
    let went: Vec<bool> = polls(&reader, 3).await;
    assert_eq!(
        went,
        [false, false, true],
        "failed, failed, parked and went on"
    );
    assert_eq!((told(&n, "before").await, told(&n, "after").await), (1, 1));

    let (al, admin) = bind().await;
    serve(
        al,
        dead_letters::router(n.db().clone(), Notifications::apply),
    );
    let parked: Vec<DeadLetter> = dead_letters(&http, &admin).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    let letter = &parked[0];
    assert_eq!((letter.attempts, letter.feed.as_str()), (3, "orders"));
    assert!(
        letter
            .error
            .contains("the mailer takes recipients of at most"),
        "{letter:?}"
    );
    // The event as it came (its trace context too, which this test's orders, without a
    // tracer, do not send; the demo's do).
    let order: orders::Order = letter.event.payload_as().expect("an order event");
    assert_eq!(
        (order.customer_id.as_str(), letter.event.kind.as_str()),
        (poison.as_str(), "order.confirmed")
    );
    let id = letter.event.id;

    // Replayed before the fix: still failing, still parked, one attempt more.
    let replay = |base: &str| format!("{base}/admin/dead-letters/{id}/replay");
    let again = http.post(replay(&admin)).send().await.expect("replay");
    assert_eq!(again.status(), 409);
    // After the fix (a mailer that takes it): applied once, unparked; twice is a 404.
    let (fl, fixed) = bind().await;
    serve(
        fl,
        dead_letters::router(
            n.db().clone(),
            |_: &rusqlite::Transaction<'_>, _: &Event| Ok(()),
        ),
    );
    assert_eq!(
        http.post(replay(&fixed))
            .send()
            .await
            .expect("replay")
            .status(),
        200
    );
    assert_eq!(
        http.post(replay(&fixed))
            .send()
            .await
            .expect("replay")
            .status(),
        404
    );
    let left: Vec<DeadLetter> = dead_letters(&http, &admin).await;
    assert!(left.is_empty(), "{left:?}");

    // A parked event delivered meanwhile (redelivered after a fix) is not applied twice.
    place(&http, &orders_url, &poison).await;
    assert_eq!(polls(&reader, 3).await, [false, false, true]);
    let parked: Vec<DeadLetter> = dead_letters(&http, &admin).await;
    let event = parked[0].event.clone();
    let ok = |_: &rusqlite::Transaction<'_>, _: &Event| Ok(());
    assert!(reader.deliver(&ok, event.clone()).await.expect("deliver"));
    let twice = http
        .post(format!("{fixed}/admin/dead-letters/{}/replay", event.id))
        .send()
        .await
        .expect("replay");
    assert_eq!(twice.status(), 409);
    let says = twice.text().await.unwrap_or_default();
    assert!(says.contains("already handled"), "{says}");
}

/// The parked events `GET /admin/dead-letters` lists at `admin`.
async fn dead_letters(http: &reqwest::Client, admin: &str) -> Vec<DeadLetter> {
    http.get(format!("{admin}/admin/dead-letters"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("dead letters")
}

/// `n` polls of `reader`: whether each went through.
async fn polls(reader: &Consumer, n: usize) -> Vec<bool> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(reader.poll_once(&Notifications::apply).await.is_ok());
    }
    out
}
