//! HTTP faults on a proxy of kind `http`, against a wiremock upstream that counts what
//! actually arrived: aborted requests never reach it, delayed ones do, late; matching by
//! method, path and header; a percentage applies to about that share.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn api() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(gauntlet_chaos_proxy::serve(
        l,
        Vec::new(),
        std::future::pending(),
    ));
    url
}

async fn post(url: String, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .expect("answer");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// `POST {through}/payments/authorizations`, with `x-chaos: on` if `chaos`.
async fn authorize(through: &str, chaos: bool) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{through}/payments/authorizations"))
        .body("{}");
    if chaos {
        req = req.header("x-chaos", "on");
    }
    req.send().await.expect("answer")
}

async fn arrived(server: &MockServer, m: &str, p: &str) -> usize {
    server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborts_and_delays_hit_only_matching_requests() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/payments/authorizations"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"status": "authorized"})))
        .mount(&upstream)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("fine"))
        .mount(&upstream)
        .await;
    let api = api().await;
    let addr = upstream.address().to_string();
    let (s, p) = post(format!("{api}/proxies"), json!({"name": "orders_to_payments", "kind": "http", "listen": "127.0.0.1:0", "upstream": addr})).await;
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["kind"], "http");
    let through = format!("http://{}", p["listen"].as_str().expect("listen"));
    let toxics = format!("{api}/proxies/orders_to_payments/toxics");
    let http = reqwest::Client::new();

    // Without faults, requests and answers pass as they are.
    let r = authorize(&through, false).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.expect("json")["status"],
        "authorized"
    );

    // A TCP toxic does not belong on an HTTP proxy: refused with a reason.
    let (s, e) = post(
        toxics.clone(),
        json!({"type": "latency", "attributes": {"latency": 10}}),
    )
    .await;
    assert_eq!(s, 400, "{e}");

    // Abort every POST under /payments/ carrying the header: answered 503 by the proxy.
    let (s, t) = post(toxics.clone(), json!({"type": "http_abort", "name": "payments_down", "attributes": {"status": 503, "method": "POST", "path": "/payments/*", "header": "x-chaos: on"}})).await;
    assert_eq!(s, 200, "{t}");
    let before = arrived(&upstream, "POST", "/payments/authorizations").await;
    let r = authorize(&through, true).await;
    assert_eq!(r.status(), 503);
    assert!(
        r.json::<Value>().await.expect("json")["error"]
            .as_str()
            .is_some_and(|e| e.contains("payments_down"))
    );
    assert_eq!(
        arrived(&upstream, "POST", "/payments/authorizations").await,
        before,
        "it never reached the upstream"
    );
    // Without the header, or with GET, it passes.
    let r = authorize(&through, false).await;
    assert_eq!(r.status(), 201);
    let r = http
        .get(format!("{through}/payments/x"))
        .header("x-chaos", "on")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(
        arrived(&upstream, "POST", "/payments/authorizations").await,
        before + 1
    );

    // Half of the matching requests, about.
    post(
        format!("{toxics}/payments_down"),
        json!({"attributes": {"percentage": 50, "header": ""}}),
    )
    .await;
    let mut aborted = 0;
    for _ in 0..200 {
        let r = authorize(&through, false).await;
        if r.status() == 503 {
            aborted += 1;
        }
    }
    assert!(
        (60..=140).contains(&aborted),
        "{aborted} of 200 aborted at 50 %"
    );
    assert_eq!(
        arrived(&upstream, "POST", "/payments/authorizations").await,
        before + 1 + 200 - aborted
    );
    let (s, _) = reqwest::Client::new()
        .delete(format!("{toxics}/payments_down"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("delete");
    assert_eq!(s, 204);

    // Delay GETs of one path by 200 ms: they arrive, late.
    post(toxics.clone(), json!({"type": "http_delay", "attributes": {"delay": 200, "method": "GET", "path": "/slow"}})).await;
    let t = Instant::now();
    let r = http
        .get(format!("{through}/slow"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(arrived(&upstream, "GET", "/slow").await, 1);
    let t = Instant::now();
    http.get(format!("{through}/fast"))
        .send()
        .await
        .expect("answer");
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "other paths are not delayed"
    );
}
