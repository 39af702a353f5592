//! The open model's clock against a target whose latency is known: a fixed 20 ms delay
//! (wiremock's `set_delay`), measured at 200 requests a second. wiremock sleeps on a tokio
//! timer, which rounds up to whole milliseconds, so its "20 ms" is 20-22 ms of real time;
//! the test also measures that truth with the plainest client, one request at a time, and
//! holds the generator to within 1.5 ms of it (two measurements taken seconds apart can land
//! on different phases of that millisecond timer: a CI run saw 21.6 against 22.7 ms).

use std::time::Duration;

use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_20ms_delay_measures_as_20ms() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(20)))
        .mount(&server)
        .await;
    let plan = common::quick(
        &format!("{}/slow", server.uri()),
        20,
        Some(200.0),
        Duration::from_secs(3),
    );
    let r = common::run(plan).await;
    // The server saw every request, with the trace context and correlation ID on it.
    let seen = server.received_requests().await.expect("recorded");
    assert_eq!(seen.len() as u64, r.all.requests);
    assert!(seen.iter().all(
        |q| q.headers.contains_key("traceparent") && q.headers.contains_key("x-correlation-id")
    ));
    let p50 = r.all.quantile_ms(0.5);
    let truth = sequential_p50_ms(&format!("{}/slow", server.uri())).await;
    println!(
        "generator p50 {p50:.3} ms; the target's own p50, one request at a time, {truth:.3} ms"
    );
    assert!(
        (p50 - truth).abs() <= 1.5,
        "generator p50 {p50:.3} ms, the target's own p50 {truth:.3} ms"
    );
    assert!(
        (20.0..23.0).contains(&p50),
        "p50 {p50:.3} ms for a 20 ms delay"
    );
    assert!(
        r.all.requests >= 590 && r.all.requests <= 600,
        "{} requests",
        r.all.requests
    );
    assert_eq!(r.all.failures, 0);
    assert_eq!(r.all.status.get(&200).copied(), Some(r.all.requests));
}

/// The target's latency as the plainest client sees it: one keep-alive socket, one request
/// at a time, written and read with std (no runtime, no HTTP library), on its own thread.
async fn sequential_p50_ms(url: &str) -> f64 {
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port")
        .to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        let mut ms = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..100 {
            let t = std::time::Instant::now();
            s.write_all(format!("GET /slow HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
                .expect("write");
            // wiremock answers with an empty body: the head is the whole answer.
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0, "closed");
                got.extend_from_slice(&buf[..n]);
            }
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        ms[ms.len() / 2]
    })
    .await
    .expect("probe")
}
