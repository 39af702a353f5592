//! The outbox with real SQLite files and a real feed on loopback: events exist exactly when
//! their state change does, a consumer that was down catches up in order, redelivery is
//! harmless, and a long poll wakes up on the next commit.

use std::time::{Duration, Instant};

use gauntlet_demo_system::platform::db::{Db, DbError};
use gauntlet_demo_system::platform::discovery::Endpoint;
use gauntlet_demo_system::platform::outbox::{
    Consumer, Event, Flush, NewEvent, Outbox, feed_client, feed_router, open_db,
};
use rusqlite::{Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The payload of the test's events.
#[derive(Debug, Serialize, Deserialize)]
struct Placed {
    order_id: i64,
    total_cents: i64,
}

fn event(order: i64) -> NewEvent {
    NewEvent {
        kind: "order.placed".into(),
        aggregate_id: format!("order-{order}"),
        payload: json!(Placed {
            order_id: order,
            total_cents: 1999
        }),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        baggage: Some(format!("correlation_id=req-{order}")),
    }
}

/// The publisher: an orders table and its outbox in one database, the feed on a port.
async fn publisher(dir: &std::path::Path) -> (Outbox, String, tokio::task::JoinHandle<()>) {
    let outbox = Outbox::new(
        open_db(
            &dir.join("orders.sqlite"),
            "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)",
        )
        .expect("orders db"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = feed_router(outbox.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (outbox, url, server)
}

async fn place_order(outbox: &Outbox, id: i64) -> Result<(), DbError> {
    outbox
        .transaction(move |tx| {
            tx.execute("INSERT INTO orders (id) VALUES (?1)", [id])?;
            Outbox::append(tx, &event(id))?;
            Ok(())
        })
        .await
}

fn feed(url: &str) -> gauntlet_demo_system::platform::client::HttpClient {
    feed_client("orders", Endpoint::fixed(url)).expect("feed client")
}

fn consumer(dir: &std::path::Path, url: &str) -> Consumer {
    let db = open_db(
        &dir.join("notifications.sqlite"),
        "CREATE TABLE IF NOT EXISTS sent (order_id INTEGER, event_seq INTEGER)",
    )
    .expect("notifications db");
    Consumer {
        wait: Duration::from_millis(200),
        ..Consumer::new("orders", feed(url), db)
    }
}

fn record(tx: &Transaction<'_>, e: &Event) -> Result<(), String> {
    let placed: Placed = e.payload_as().map_err(|e| e.to_string())?;
    tx.execute(
        "INSERT INTO sent (order_id, event_seq) VALUES (?1, ?2)",
        params![placed.order_id, e.seq],
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

async fn sent(db: &Db) -> Vec<i64> {
    db.read(|tx| {
        let mut stmt = tx.prepare("SELECT order_id FROM sent ORDER BY event_seq")?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<i64>, _>>()?;
        Ok(ids)
    })
    .await
    .expect("read sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_exists_exactly_when_its_state_change_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (outbox, _, _server) = publisher(dir.path()).await;
    place_order(&outbox, 1).await.expect("placed");
    // The same order again violates the primary key after the event was appended: both roll back.
    assert!(place_order(&outbox, 1).await.is_err());
    let events = outbox
        .read_after(0, 10, Duration::ZERO)
        .await
        .expect("read");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].aggregate_id, "order-1");
    assert_eq!(events[0].baggage.as_deref(), Some("correlation_id=req-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_delivers_after_the_consumer_was_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (outbox, url, server) = publisher(dir.path()).await;
    // Orders are placed while no consumer runs.
    for id in 1..=5 {
        place_order(&outbox, id).await.expect("placed");
    }
    let c = consumer(dir.path(), &url);
    let mut applied = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while applied < 5 {
        applied += c.poll_once(&record).await.expect("poll");
        assert!(Instant::now() < deadline, "consumer never caught up");
    }
    assert_eq!(sent(&c.db).await, [1, 2, 3, 4, 5], "in publication order");

    // At least once: a redelivery (cursor lost) is recognised and not applied again.
    c.db.write(|tx| {
        tx.execute("DELETE FROM consumer_cursors", [])?;
        Ok(())
    })
    .await
    .expect("reset cursor");
    assert_eq!(c.poll_once(&record).await.expect("poll"), 0);
    assert_eq!(sent(&c.db).await.len(), 5);

    // The publisher goes away: polling fails clearly, nothing is lost, and it resumes.
    server.abort();
    let _ = server.await;
    let err = c.poll_once(&record).await.expect_err("feed down");
    assert!(
        err.to_string().contains("could not read the event feed"),
        "{err}"
    );
    place_order(&outbox, 6)
        .await
        .expect("placed while the feed is down");
    let (_, url2, _server2) = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = feed_router(outbox.clone());
        (
            (),
            url,
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            }),
        )
    };
    let c = Consumer {
        client: feed(&url2),
        ..c
    };
    assert_eq!(c.poll_once(&record).await.expect("poll"), 1);
    assert_eq!(sent(&c.db).await, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wakes_on_the_next_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (outbox, url, _server) = publisher(dir.path()).await;
    let http = reqwest::Client::new();
    let waiting = tokio::spawn({
        let http = http.clone();
        async move {
            let started = Instant::now();
            let page: serde_json::Value = http
                .get(format!("{url}/events?after=0&wait_ms=10000"))
                .send()
                .await
                .expect("feed")
                .json()
                .await
                .expect("json");
            (page, started.elapsed())
        }
    });
    // Wait until the poll is parked at the publisher, so the commit below is what answers it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while outbox.long_polls_waiting() == 0 {
        assert!(
            !waiting.is_finished(),
            "the long poll returned before anything was published"
        );
        assert!(
            Instant::now() < deadline,
            "the long poll never reached the feed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !waiting.is_finished(),
        "the long poll returned before anything was published"
    );
    place_order(&outbox, 7).await.expect("placed");
    let (page, waited) = waiting.await.expect("task");
    assert_eq!(page["events"][0]["aggregate_id"], "order-7", "{page}");
    assert_eq!(page["next"], page["events"][0]["seq"]);
    assert!(
        waited < Duration::from_secs(9),
        "answered on the commit, not at the timeout"
    );
}

/// Inventory's instances share one database, and a consumer's poll may park at either:
/// a commit by another process (here another `Outbox` on the same file, which wakes nobody
/// in this one) answers it within the recheck, not at the poll's timeout. Not shared, the
/// same poll waits for its timeout (the control: the test's deadline fails).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_sees_what_another_instance_commits_to_the_shared_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY)";
    let path = dir.path().join("shared.sqlite");
    let here = Outbox::new(open_db(&path, schema).expect("db")).shared();
    let there = Outbox::new(open_db(&path, schema).expect("db"));
    let waiting = tokio::spawn({
        let here = here.clone();
        async move { here.read_after(0, 10, Duration::from_secs(60)).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while here.long_polls_waiting() == 0 {
        assert!(Instant::now() < deadline, "the long poll never parked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    place_order(&there, 8).await.expect("placed over there");
    let events = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered long before the poll's 60 s: it read the file again")
        .expect("task")
        .expect("read");
    assert_eq!(
        events
            .iter()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
        ["order-8"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_feed_parameters_get_a_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_outbox, url, _server) = publisher(dir.path()).await;
    for q in ["after=abc", "limit=-1", "wait=5"] {
        let resp = reqwest::get(format!("{url}/events?{q}"))
            .await
            .expect("answer");
        assert_eq!(resp.status(), 400, "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_outbox_a_publisher_restart_loses_events() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (outbox, url, server) = publisher(dir.path()).await;
    outbox.fire_and_forget().expect("fire and forget");
    place_order(&outbox, 1).await.expect("placed");
    place_order(&outbox, 2).await.expect("placed");
    let c = consumer(dir.path(), &url);
    assert_eq!(
        c.poll_once(&record).await.expect("poll"),
        2,
        "delivered while nothing fails"
    );

    // The publisher restarts: what it had not handed over is gone, and its new events
    // start again at position 1, behind the consumer's cursor.
    server.abort();
    let _ = server.await;
    place_order(&outbox, 3)
        .await
        .expect("placed before the restart");
    let (restarted, url2, _server2) = publisher(dir.path()).await;
    restarted.fire_and_forget().expect("fire and forget");
    place_order(&restarted, 4)
        .await
        .expect("placed after the restart");
    let c = Consumer {
        client: feed(&url2),
        ..c
    };
    assert_eq!(
        c.poll_once(&record).await.expect("poll"),
        0,
        "orders 3 and 4 never arrive"
    );
    assert_eq!(sent(&c.db).await, [1, 2]);
    // The orders themselves were committed: only their events were lost.
    let orders: i64 = restarted
        .db()
        .read(|tx| Ok(tx.query_row("SELECT count(*) FROM orders", [], |r| r.get(0))?))
        .await
        .expect("count");
    assert_eq!(orders, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_committed_only_after_its_flush_and_once_per_page() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let (outbox, url, _server) = publisher(dir.path()).await;
    for id in 1..=5 {
        place_order(&outbox, id).await.expect("placed");
    }
    let flushes = std::sync::Arc::new(AtomicUsize::new(0));
    let failing = std::sync::Arc::new(AtomicBool::new(true));
    let mut c = consumer(dir.path(), &url);
    c.flush = {
        let (flushes, failing) = (flushes.clone(), failing.clone());
        Flush::new(move || {
            flushes.fetch_add(1, Ordering::SeqCst);
            if failing.load(Ordering::SeqCst) {
                Err("the disk is full".into())
            } else {
                Ok(())
            }
        })
    };
    // The flush fails: nothing of the page is recorded, so it comes again; a store that
    // cannot sync is not the events' fault, so however often it fails none is parked.
    for _ in 0..4 {
        assert!(c.poll_once(&record).await.is_err());
    }
    assert_eq!(
        c.cursor().await.expect("cursor"),
        0,
        "no cursor past an unflushed page"
    );
    assert_eq!(sent(&c.db).await, Vec::<i64>::new(), "no effect either");
    let parked: i64 =
        c.db.read(|tx| Ok(tx.query_row("SELECT count(*) FROM dead_letters", [], |r| r.get(0))?))
            .await
            .expect("dead letters");
    assert_eq!(parked, 0, "a flush failure parks nothing");

    failing.store(false, Ordering::SeqCst);
    flushes.store(0, Ordering::SeqCst);
    assert_eq!(c.poll_once(&record).await.expect("poll"), 5);
    assert_eq!(sent(&c.db).await, [1, 2, 3, 4, 5]);
    assert_eq!(
        flushes.load(Ordering::SeqCst),
        1,
        "one flush for the page of five"
    );
}
