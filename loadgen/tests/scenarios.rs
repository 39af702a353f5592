//! Scenario files against wiremock upstreams: setup steps capture a token that later steps
//! send, captures from one step feed the next, CSV rows and templates render, checks count,
//! and thresholds judge per request.

use std::time::Duration;

use common::run;
use gauntlet_loadgen::Plan;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_templates_csv_and_checks_work_together() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "t0k3n"})),
        )
        .mount(&server)
        .await;
    // Only a request with the captured token and a CSV customer gets an order.
    Mock::given(method("POST"))
        .and(path("/orders"))
        .and(header("authorization", "Bearer t0k3n"))
        .and(body_string_contains("\"customer\": \"alice\""))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"id": "o-1", "status": "confirmed"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/orders"))
        .and(header("authorization", "Bearer t0k3n"))
        .and(body_string_contains("\"customer\": \"bob\""))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(serde_json::json!({"id": "o-2", "status": "pending"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orders/o-1"))
        .respond_with(ResponseTemplate::new(200).set_body_string("order o-1"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/orders/o-2"))
        .respond_with(ResponseTemplate::new(200).set_body_string("order o-2"))
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("customers.csv");
    std::fs::write(&csv, "name,tier\nalice,gold\nbob,silver\n").expect("csv");
    let toml_text = format!(
        r#"
        [vars]
        base = "{base}"
        [thresholds]
        "request:order" = ["error_rate < 0.01"]
        "request:read back" = ["checks > 0.99"]
        [[scenarios]]
        name = "buyers"
        executor = "constant-vus"
        vus = 2
        iterations = 20
        data = "{csv}"
          [[scenarios.setup]]
          name = "login"
          method = "POST"
          url = "{{{{base}}}}/token"
          capture = {{ token = "/access_token" }}
          [[scenarios.flows]]
            [[scenarios.flows.steps]]
            name = "order"
            method = "POST"
            url = "{{{{base}}}}/orders"
            headers = {{ authorization = "Bearer {{{{token}}}}" }}
            body = '{{"customer": "{{{{csv.name}}}}", "n": {{{{seq}}}}}}'
            capture = {{ order = "/id" }}
            checks = [{{ status = 201 }}, {{ json = "/status", equals = "confirmed" }}]
            [[scenarios.flows.steps]]
            name = "read back"
            url = "{{{{base}}}}/orders/{{{{order}}}}"
            checks = [{{ body_contains = "order o-" }}]
        "#,
        base = server.uri(),
        csv = csv.display()
    );
    let plan = Plan::compile(toml::from_str(&toml_text).expect("toml"), &[]).expect("plan");
    let r = run(plan).await;
    let by = |n: &str| {
        let i = r.names.iter().position(|x| x == n).expect(n);
        r.by_name[i].clone()
    };
    assert_eq!(by("login").requests, 2, "setup runs once per VU");
    let order = by("order");
    assert_eq!(order.requests, 20);
    assert_eq!(
        order.failures, 0,
        "every order carried the token and a CSV customer"
    );
    // Alice and Bob alternate: half the orders come back confirmed, half pending.
    assert_eq!((order.checks_passed, order.checks_failed), (30, 10));
    let read = by("read back");
    assert_eq!(
        read.requests, 20,
        "the captured order ID reached the next step"
    );
    assert_eq!(read.checks_failed, 0);
    assert!(r.verdicts.iter().all(|v| v.passed), "{:?}", r.verdicts);
    let seqs: Vec<String> = server
        .received_requests()
        .await
        .expect("recorded")
        .iter()
        .filter(|q| q.url.path() == "/orders")
        .map(|q| String::from_utf8_lossy(&q.body).to_string())
        .collect();
    assert_eq!(seqs.len(), 20);
    assert!(seqs.iter().all(|b| b.contains("\"n\": ")), "{seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_sorted_by_kind() {
    // A port nobody listens on: every request fails to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", closed.local_addr().expect("addr"));
    drop(closed);
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let toml_text = format!(
        r#"
        [[scenarios]]
        name = "s"
        executor = "constant-vus"
        vus = 1
        iterations = 5
          [[scenarios.flows]]
            [[scenarios.flows.steps]]
            name = "refused"
            url = "{url}"
          [[scenarios.flows]]
            [[scenarios.flows.steps]]
            name = "unavailable"
            url = "{}/x"
        "#,
        server.uri()
    );
    let plan = Plan::compile(toml::from_str(&toml_text).expect("toml"), &[]).expect("plan");
    let r = tokio::time::timeout(Duration::from_secs(20), run(plan))
        .await
        .expect("bounded");
    assert_eq!(r.all.requests, 5);
    assert_eq!(r.all.failures, 5);
    let connect = r
        .all
        .errors
        .get(&gauntlet_loadgen::metrics::ErrorKind::Connect)
        .copied()
        .unwrap_or(0);
    let unavailable = r.all.status.get(&503).copied().unwrap_or(0);
    assert_eq!(
        connect + unavailable,
        5,
        "{:?} {:?}",
        r.all.errors,
        r.all.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_and_chunked_http1_answers_are_read_whole() {
    // wiremock serves HTTP/1.1 and HTTP/2 (h2c) on one port.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/h"))
        .respond_with(ResponseTemplate::new(200).set_body_string("over h2"))
        .mount(&server)
        .await;
    let mut q = gauntlet_loadgen::Quick {
        url: format!("{}/h", server.uri()),
        method: gauntlet_loadgen::scenario::HttpMethod::GET,
        headers: vec![],
        body: None,
        connections: 2,
        rate: None,
        duration: Duration::from_secs(1),
        requests: Some(40),
        timeout: Duration::from_secs(5),
        http2: true,
        thresholds: vec![],
    };
    let r = run(Plan::quick(q.clone()).expect("plan")).await;
    assert_eq!((r.all.requests, r.all.failures), (40, 0));
    assert_eq!(r.all.status.get(&200), Some(&40));

    // A chunked HTTP/1.1 answer (axum streams a body of unknown length).
    let app = axum::Router::new().route(
        "/chunked",
        axum::routing::get(|| async {
            let parts =
                ["alpha ", "beta ", "gamma"].map(|p| Ok::<_, std::io::Error>(p.to_string()));
            axum::body::Body::from_stream(futures_util::stream::iter(parts))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/chunked", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    q.url = url;
    q.http2 = false;
    let r = run(Plan::quick(q).expect("plan")).await;
    assert_eq!((r.all.requests, r.all.failures), (40, 0));
    assert!(
        r.all.bytes_in >= 40 * "alpha beta gamma".len() as u64,
        "the whole chunked body was read: {} bytes",
        r.all.bytes_in
    );
}
