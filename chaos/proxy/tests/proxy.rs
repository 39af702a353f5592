//! The proxy over real sockets on loopback: Toxiproxy's API shapes and status codes, and
//! each toxic's effect on a connection through it to a small upstream of the test's own.

use std::time::{Duration, Instant};

use gauntlet_chaos_proxy::{ApiError, NewProxy, ProxyView, Toxic};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The API on an ephemeral port.
async fn api() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(gauntlet_chaos_proxy::serve(
        l,
        Vec::<NewProxy>::new(),
        std::future::pending(),
    ));
    url
}

/// An upstream that answers each chunk it reads with the same bytes (an echo), and a
/// `size` byte blob to anyone who sends `blob`.
async fn upstream() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let reply = if &buf[..n] == b"blob" {
                        vec![b'z'; 100_000]
                    } else {
                        buf[..n].to_vec()
                    };
                    if s.write_all(&reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().await.expect("answer");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends `msg` through `addr` and reads `want` bytes back; the time it took.
async fn round_trip(addr: &str, msg: &[u8], want: usize) -> std::io::Result<(Vec<u8>, Duration)> {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(msg).await?;
    let mut got = vec![0u8; want];
    s.read_exact(&mut got).await?;
    Ok((got, t.elapsed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_in_toxiproxys_shapes_and_codes() {
    use reqwest::Method as M;
    let api = api().await;
    let up = upstream().await;
    let (status, created) = call(
        M::POST,
        format!("{api}/proxies"),
        Some(json!({"name": "orders_to_payments", "listen": "127.0.0.1:0", "upstream": up})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let p: ProxyView = serde_json::from_value(created).expect("a proxy");
    assert!(p.enabled && p.toxics.is_empty());
    assert_ne!(p.listen, "127.0.0.1:0", "the port it got is shown");
    let (echo, _) = round_trip(&p.listen, b"hello", 5)
        .await
        .expect("through the proxy");
    assert_eq!(echo, b"hello");

    let err = |v: Value| serde_json::from_value::<ApiError>(v).expect("Toxiproxy's error shape");
    let (s, e) = call(
        M::POST,
        format!("{api}/proxies"),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(
        (s, err(e)),
        (400, ApiError::new(400, "missing required field: upstream"))
    );
    let (s, e) = call(
        M::POST,
        format!("{api}/proxies"),
        Some(json!({"name": "orders_to_payments", "upstream": up})),
    )
    .await;
    assert_eq!((s, err(e).error), (409, "proxy already exists".to_string()));
    let (s, e) = call(M::GET, format!("{api}/proxies/nope"), None).await;
    assert_eq!((s, err(e).error), (404, "proxy not found".to_string()));
    let (s, e) = call(
        M::POST,
        format!("{api}/proxies"),
        Some(json!("not an object")),
    )
    .await;
    assert_eq!(s, 400);
    assert!(err(e).error.starts_with("bad request body"));
    let toxics = format!("{api}/proxies/orders_to_payments/toxics");
    let (s, e) = call(M::POST, toxics.clone(), Some(json!({"type": "gravity"}))).await;
    assert_eq!((s, err(e).error), (400, "invalid toxic type".to_string()));
    let (s, e) = call(
        M::POST,
        toxics.clone(),
        Some(json!({"type": "latency", "stream": "sideways"})),
    )
    .await;
    assert_eq!(
        (s, err(e).error),
        (
            400,
            "stream was invalid, can be either upstream or downstream".to_string()
        )
    );

    // A toxic: defaults filled in as Toxiproxy does; shown, updated partially, removed.
    let (s, t) = call(
        M::POST,
        toxics.clone(),
        Some(json!({"type": "latency", "attributes": {"latency": 100}})),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let t: Toxic = serde_json::from_value(t).expect("a toxic");
    assert_eq!((t.name.as_str(), t.toxicity), ("latency_downstream", 1.0));
    let (_, slow) = round_trip(&p.listen, b"ping", 4).await.expect("slowed");
    assert!(slow >= Duration::from_millis(100), "{slow:?}");
    let (s, _) = call(M::POST, toxics.clone(), Some(json!({"type": "latency"}))).await;
    assert_eq!(s, 409, "the same default name again");
    let (s, updated) = call(
        M::PATCH,
        format!("{toxics}/latency_downstream"),
        Some(json!({"attributes": {"jitter": 5}})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        updated["attributes"],
        json!({"latency": 100, "jitter": 5}),
        "merged over the current attributes"
    );
    let (s, list) = call(M::GET, toxics.clone(), None).await;
    assert_eq!((s, list.as_array().map(Vec::len)), (200, Some(1)));
    let (s, _) = call(M::DELETE, format!("{toxics}/latency_downstream"), None).await;
    assert_eq!(s, 204);
    let (s, _) = call(M::GET, format!("{toxics}/latency_downstream"), None).await;
    assert_eq!(s, 404);

    // Disabled: refuses connections; enabled again: serves; partial updates keep the rest.
    let (s, v) = call(
        M::POST,
        format!("{api}/proxies/orders_to_payments"),
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(
        (s, &v["enabled"], &v["upstream"]),
        (200, &json!(false), &json!(up))
    );
    assert!(
        TcpStream::connect(&p.listen).await.is_err(),
        "disabled means closed"
    );
    let (_, v) = call(
        M::PATCH,
        format!("{api}/proxies/orders_to_payments"),
        Some(json!({"enabled": true, "listen": p.listen})),
    )
    .await;
    assert_eq!(v["enabled"], true);
    round_trip(&p.listen, b"back", 4)
        .await
        .expect("serves again");

    // Populate creates or keeps; reset enables all and drops every toxic, with or without a body.
    let (s, pop) = call(
        M::POST,
        format!("{api}/populate"),
        Some(json!([{"name": "gateway_to_orders", "listen": "127.0.0.1:0", "upstream": up}])),
    )
    .await;
    assert_eq!(s, 201, "{pop}");
    assert_eq!(pop["proxies"][0]["name"], "gateway_to_orders");
    call(
        M::POST,
        toxics.clone(),
        Some(json!({"type": "timeout", "attributes": {"timeout": 0}})),
    )
    .await;
    let (s, _) = call(M::POST, format!("{api}/reset"), None).await;
    assert_eq!(s, 204);
    let (s, _) = call(M::POST, format!("{api}/reset"), Some(json!({}))).await;
    assert_eq!(s, 204);
    let (_, all) = call(M::GET, format!("{api}/proxies"), None).await;
    assert_eq!(all.as_object().map(|o| o.len()), Some(2));
    assert!(
        all.as_object()
            .into_iter()
            .flatten()
            .all(|(_, p)| p["toxics"] == json!([]))
    );
    let (s, v) = call(M::GET, format!("{api}/version"), None).await;
    assert!(s == 200 && v["version"].as_str().is_some_and(|v| v.starts_with("2.")));
    let metrics = reqwest::get(format!("{api}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("toxiproxy_proxy_received_bytes_total{direction=\"upstream\""),
        "{metrics}"
    );
    let browser = reqwest::Client::new()
        .get(format!("{api}/proxies"))
        .header("user-agent", "Mozilla/5.0")
        .send()
        .await
        .expect("answer");
    assert_eq!(browser.status(), 403, "a web page cannot drive the proxy");
    let (s, _) = call(M::DELETE, format!("{api}/proxies/orders_to_payments"), None).await;
    assert_eq!(s, 204);
    assert!(TcpStream::connect(&p.listen).await.is_err());
}

/// A proxy to a fresh upstream with one toxic; its listen address.
async fn with_toxic(api: &str, toxic: Value) -> String {
    let up = upstream().await;
    let name = format!("p{}", fastrand_name());
    let (_, p) = call(
        reqwest::Method::POST,
        format!("{api}/proxies"),
        Some(json!({"name": name, "listen": "127.0.0.1:0", "upstream": up})),
    )
    .await;
    let (s, t) = call(
        reqwest::Method::POST,
        format!("{api}/proxies/{name}/toxics"),
        Some(toxic),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    p["listen"].as_str().expect("listen").to_string()
}

fn fastrand_name() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_toxic_does_what_toxiproxy_says() {
    let api = api().await;

    // limit_data: the connection closes after that many bytes.
    let at = with_toxic(
        &api,
        json!({"type": "limit_data", "attributes": {"bytes": 1000}}),
    )
    .await;
    let mut s = TcpStream::connect(&at).await.expect("connect");
    s.write_all(b"blob").await.expect("ask");
    let mut got = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("closed in time");
    assert!(n.is_ok() && got.len() == 1000, "{} bytes", got.len());

    // bandwidth: 100 KB at 200 KB/s takes about half a second, and arrives whole.
    let at = with_toxic(
        &api,
        json!({"type": "bandwidth", "attributes": {"rate": 200}}),
    )
    .await;
    let (blob, took) = round_trip(&at, b"blob", 100_000).await.expect("whole");
    assert!(blob.iter().all(|b| *b == b'z'));
    assert!(took >= Duration::from_millis(400), "{took:?}");

    // slicer: the same bytes, in small pieces.
    let at = with_toxic(&api, json!({"type": "slicer", "attributes": {"average_size": 10, "size_variation": 5, "delay": 10}})).await;
    let (echo, _) = round_trip(&at, b"sliced into many small pieces", 29)
        .await
        .expect("whole");
    assert_eq!(echo, b"sliced into many small pieces");

    // timeout > 0: nothing passes, and the connection closes after the timeout.
    let at = with_toxic(
        &api,
        json!({"type": "timeout", "attributes": {"timeout": 300}}),
    )
    .await;
    let t = Instant::now();
    let mut s = TcpStream::connect(&at).await.expect("connect");
    s.write_all(b"anyone?").await.expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .expect("closed");
    assert!(
        got.is_empty() && t.elapsed() >= Duration::from_millis(300),
        "{:?} {got:?}",
        t.elapsed()
    );

    // reset_peer, as Toxiproxy's: an idle connection is left alone; the first answer is
    // dropped and, `timeout` later, the client sees a reset, not a clean close.
    let at = with_toxic(
        &api,
        json!({"type": "reset_peer", "attributes": {"timeout": 100}}),
    )
    .await;
    let mut s = TcpStream::connect(&at).await.expect("connect");
    let mut buf = [0u8; 16];
    let idle = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    assert!(idle.is_err(), "an idle connection was ended: {idle:?}");
    let t = Instant::now();
    s.write_all(b"ping").await.expect("write");
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("ended");
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
            && t.elapsed() >= Duration::from_millis(100),
        "{r:?} after {:?}",
        t.elapsed()
    );

    // toxicity 0: the toxic never applies.
    let at = with_toxic(
        &api,
        json!({"type": "latency", "toxicity": 0.0, "attributes": {"latency": 1000}}),
    )
    .await;
    let (_, quick) = round_trip(&at, b"fast", 4).await.expect("echo");
    assert!(quick < Duration::from_millis(500), "{quick:?}");

    // upstream stream: the request is delayed, not the answer.
    let at = with_toxic(
        &api,
        json!({"type": "latency", "stream": "upstream", "attributes": {"latency": 150}}),
    )
    .await;
    let (_, slow) = round_trip(&at, b"slow", 4).await.expect("echo");
    assert!(slow >= Duration::from_millis(150), "{slow:?}");

    // An absurd latency (i64::MAX ms, with as much jitter) holds the bytes: it must not end
    // the connection (latency plus jitter once overflowed and panicked the connection's task).
    let at = with_toxic(
        &api,
        json!({"type": "latency", "attributes": {"latency": i64::MAX, "jitter": i64::MAX}}),
    )
    .await;
    let mut s = TcpStream::connect(&at).await.expect("connect");
    s.write_all(b"held").await.expect("write");
    let mut buf = [0u8; 4];
    let held = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    assert!(held.is_err(), "the connection ended: {held:?}");
}

/// As Toxiproxy's latency toxic, which passes what it holds on when it is interrupted: a
/// chunk held by a 20 s latency arrives as soon as the toxic is removed, not 20 s after it
/// was sent (a fault's end must reach connections already open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_latency_toxic_releases_what_it_held() {
    let api = api().await;
    let up = upstream().await;
    let (_, p) = call(
        reqwest::Method::POST,
        format!("{api}/proxies"),
        Some(json!({"name": "held", "listen": "127.0.0.1:0", "upstream": up})),
    )
    .await;
    let p: ProxyView = serde_json::from_value(p).expect("a proxy");
    let toxic = json!({"name": "hang", "type": "latency", "attributes": {"latency": 20_000}});
    let (s, _) = call(
        reqwest::Method::POST,
        format!("{api}/proxies/held/toxics"),
        Some(toxic),
    )
    .await;
    assert_eq!(s, 200);
    let mut s = TcpStream::connect(&p.listen).await.expect("connect");
    s.write_all(b"held").await.expect("write");
    let mut buf = [0u8; 4];
    let early = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    assert!(early.is_err(), "the latency did not hold it: {early:?}");
    let removed = Instant::now();
    let (status, _) = call(
        reqwest::Method::DELETE,
        format!("{api}/proxies/held/toxics/hang"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .expect("released when the toxic went, not 20 s after it was sent")
        .expect("the echo");
    assert_eq!(&buf, b"held");
    assert!(removed.elapsed() < Duration::from_secs(5));
}

/// Toxiproxy's clients send no credentials, so by default a proxy may only listen and
/// connect on loopback (names are resolved to check), the number of proxies is bounded and
/// an oversized body is refused, each in Toxiproxy's error shape with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_stay_on_loopback_unless_remote_is_allowed() {
    let api = api().await;
    let http = reqwest::Client::new();
    let create = |listen: &str, upstream: &str, name: &str| {
        http.post(format!("{api}/proxies"))
            .json(&json!({"name": name, "listen": listen, "upstream": upstream}))
            .send()
    };
    for (listen, upstream, what) in [
        ("127.0.0.1:0", "10.1.2.3:80", "upstream"),
        ("0.0.0.0:0", "127.0.0.1:80", "listen"),
    ] {
        let refused = create(listen, upstream, "relay").await.expect("answered");
        assert_eq!(refused.status(), 400, "{listen} -> {upstream}");
        let e: ApiError = refused.json().await.expect("Toxiproxy's error shape");
        assert_eq!(e.status, 400);
        assert!(
            e.error.contains(what) && e.error.contains("--allow-remote"),
            "{}",
            e.error
        );
    }
    let local = create("127.0.0.1:0", "localhost:80", "local")
        .await
        .expect("answered");
    assert_eq!(
        local.status(),
        201,
        "a name that resolves to loopback is fine"
    );
    let moved = http
        .post(format!("{api}/proxies/local"))
        .json(&json!({"upstream": "192.0.2.1:80"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(moved.status(), 400, "an update is checked too");

    let huge = format!("[{}]", vec!["{}"; 400_000].join(","));
    let too_large = http
        .post(format!("{api}/populate"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("answered");
    assert_eq!(too_large.status(), 413);
    let e: ApiError = too_large.json().await.expect("Toxiproxy's error shape");
    assert!(e.error.contains("1048576 bytes"), "{}", e.error);

    // Started with --allow-remote, the same proxy is made (it only fails when used).
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let open_api = format!("http://{}", l.local_addr().expect("addr"));
    let policy = gauntlet_chaos_proxy::Policy {
        allow_remote: true,
        ..Default::default()
    };
    let server = gauntlet_chaos_proxy::bind_with(l, Vec::new(), policy)
        .await
        .expect("bind");
    tokio::spawn(server.run(std::future::pending()));
    let allowed = http
        .post(format!("{open_api}/proxies"))
        .json(&json!({"name": "relay", "listen": "127.0.0.1:0", "upstream": "10.1.2.3:80"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(allowed.status(), 201);
}

/// Toxiproxy answers a disable or a delete once the port is closed: a client connecting
/// right after is refused, and the proxy enabled again gets its own port back. Tried many
/// times over, since a listener that closed a moment after the answer does so by chance;
/// for both kinds of proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_stopped_by_the_api_is_closed_when_it_answers() {
    use reqwest::Method as M;
    let api = api().await;
    let up = upstream().await;
    for round in 0..40 {
        let kind = if round % 2 == 0 { "tcp" } else { "http" };
        let name = format!("closing{round}");
        let url = format!("{api}/proxies/{name}");
        let (s, p) = call(
            M::POST,
            format!("{api}/proxies"),
            Some(json!({"name": name, "listen": "127.0.0.1:0", "upstream": up, "kind": kind})),
        )
        .await;
        assert_eq!(s, 201, "{p}");
        let listen = p["listen"].as_str().expect("listen").to_string();
        let (s, p) = call(M::POST, url.clone(), Some(json!({"enabled": false}))).await;
        assert_eq!(s, 200, "{p}");
        let refused = TcpStream::connect(&listen).await.is_err();
        assert!(
            refused,
            "round {round} ({kind}): disabled, yet {listen} accepted"
        );
        let (s, p) = call(M::POST, url.clone(), Some(json!({"enabled": true}))).await;
        assert_eq!(
            (s, p["listen"].as_str()),
            (200, Some(listen.as_str())),
            "{p}"
        );
        let (s, _) = call(M::DELETE, url, None).await;
        assert_eq!(s, 204);
        let refused = TcpStream::connect(&listen).await.is_err();
        assert!(
            refused,
            "round {round} ({kind}): deleted, yet {listen} accepted"
        );
    }
}
