//! The payments service over real HTTP with its own SQLite file: the decline rule,
//! idempotent replays, refunds, published events, and clear errors for bad requests.

use gauntlet_demo_system::payments::{self, Payments, PaymentsConfig};
use serde_json::{Value, json};

struct Svc {
    url: String,
    http: reqwest::Client,
    /// The service's database, to see a request reach it.
    db: gauntlet_demo_system::platform::db::Db,
    _dir: tempfile::TempDir,
}

async fn start() -> Svc {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = PaymentsConfig {
        processing_delay_ms: 1,
        ..PaymentsConfig::default()
    };
    let p = Payments::open(&dir.path().join("payments.sqlite"), config).expect("db");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let db = p.outbox().db().clone();
    tokio::spawn(async move { axum::serve(listener, payments::app(p)).await });
    Svc {
        url,
        http: reqwest::Client::new(),
        db,
        _dir: dir,
    }
}

impl Svc {
    async fn authorize(&self, body: Value, key: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/payments/authorizations", self.url))
            .json(&body);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        let resp = req.send().await.expect("answer");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .send()
            .await
            .expect("answer");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("answer");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_ending_in_13_cents_are_declined_the_rest_authorized() {
    let s = start().await;
    let (status, ok) = s
        .authorize(json!({"order_id": "o-1", "amount_cents": 1999}), None)
        .await;
    assert_eq!(status, 201, "{ok}");
    assert_eq!(ok["status"], "authorized");
    let (status, no) = s
        .authorize(json!({"order_id": "o-2", "amount_cents": 2013}), None)
        .await;
    assert_eq!(status, 402, "{no}");
    assert_eq!(no["status"], "declined");
    assert!(
        no["reason"]
            .as_str()
            .is_some_and(|r| r.contains("13 cents"))
    );
    let (status, got) = s
        .get(&format!(
            "/payments/authorizations/{}",
            ok["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!((status, &got["status"]), (200, &json!("authorized")));

    // Both outcomes are published, in order.
    let (_, feed) = s.get("/events?after=0").await;
    let kinds: Vec<&str> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(kinds, ["payment.authorized", "payment.declined"]);
    assert_eq!(feed["events"][1]["aggregate_id"], "o-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let s = start().await;
    let body = json!({"order_id": "o-3", "amount_cents": 500});
    let (s1, first) = s.authorize(body.clone(), Some("order-o-3-pay")).await;
    let (s2, again) = s.authorize(body, Some("order-o-3-pay")).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(
        first["id"], again["id"],
        "the same authorization, not a second one"
    );
    let (_, feed) = s.get("/events?after=0").await;
    assert_eq!(
        feed["events"].as_array().map(Vec::len),
        Some(1),
        "charged once"
    );

    let (status, err) = s
        .authorize(
            json!({"order_id": "o-3", "amount_cents": 501}),
            Some("order-o-3-pay"),
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("different request"))
    );

    // Concurrent duplicates also resolve to one authorization.
    let body = json!({"order_id": "o-4", "amount_cents": 700});
    let (a, b) = tokio::join!(
        s.authorize(body.clone(), Some("k-4")),
        s.authorize(body, Some("k-4"))
    );
    assert_eq!(a.1["id"], b.1["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_are_idempotent_and_declines_have_nothing_to_refund() {
    let s = start().await;
    let (_, auth) = s
        .authorize(json!({"order_id": "o-5", "amount_cents": 1000}), None)
        .await;
    let id = auth["id"].as_str().expect("id");
    for _ in 0..2 {
        let (status, r) = s
            .post(&format!("/payments/authorizations/{id}/refund"))
            .await;
        assert_eq!((status, &r["status"]), (200, &json!("refunded")));
    }
    let (_, feed) = s.get("/events?after=0").await;
    let refunds = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "payment.refunded")
        .count();
    assert_eq!(refunds, 1, "refunded once however often asked");

    let (_, declined) = s
        .authorize(json!({"order_id": "o-6", "amount_cents": 113}), None)
        .await;
    let (status, err) = s
        .post(&format!(
            "/payments/authorizations/{}/refund",
            declined["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(status, 409, "{err}");
    let (status, _) = s.post("/payments/authorizations/nope/refund").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_400_that_says_why() {
    let s = start().await;
    for (body, needle) in [
        (json!({"order_id": "o"}), "amount_cents"),
        (json!({"order_id": "o", "amount_cents": -5}), "positive"),
        (json!({"order_id": "", "amount_cents": 5}), "order_id"),
        (
            json!({"order_id": "o", "amount_cents": 5, "tip": 1}),
            "unknown field",
        ),
    ] {
        let (status, err) = s.authorize(body.clone(), None).await;
        assert_eq!(status, 400, "{body}");
        assert!(
            err["error"].as_str().is_some_and(|e| e.contains(needle)),
            "{body}: {err}"
        );
    }
    let (status, ready) = s.get("/health/ready").await;
    assert_eq!((status, &ready["status"]), (200, &json!("ready")));
}

/// One worker thread, as a small container gives a service: if a request's database work
/// ran on it, a write waiting for a lock would stall every other request on the service.
#[tokio::test(flavor = "current_thread")]
async fn a_write_waiting_for_the_database_does_not_stall_other_requests() {
    let s = start().await;
    let db = s._dir.path().join("payments.sqlite");
    // Another process holds the write lock (as inventory's second instance can).
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        locked_tx.send(()).expect("tell");
        let _ = release_rx.recv_timeout(std::time::Duration::from_secs(4));
        conn.execute_batch("COMMIT").expect("unlock");
    });
    locked_rx.recv().expect("locked");

    let write = tokio::spawn({
        let (http, url) = (s.http.clone(), s.url.clone());
        async move {
            http.post(format!("{url}/payments/authorizations"))
                .json(&json!({"order_id": "o-locked", "amount_cents": 500}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    // Wait until the write has reached the database and waits there for the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // (A write that blocked this one worker instead would finish first, and fail below.)
    while s.db.in_progress() == 0 && !write.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never reached the database"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let (status, live) = s.get("/health/live").await;
    assert_eq!((status, &live["status"]), (200, &json!("live")));
    assert!(
        !write.is_finished(),
        "the write was still waiting for the lock when the other request was answered"
    );

    release_tx.send(()).expect("release");
    holder.join().expect("holder");
    assert_eq!(write.await.expect("task").expect("answer"), 201);
}
