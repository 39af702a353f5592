//! A target that stalls for 1 s once every 5 s (a GC pause, a lock), loaded by 4
//! connections for 10 s. The open model (200 requests a second, whatever happens) sees the
//! stalls as its users would: the requests that were due during a stall wait for it, so
//! the p99 is hundreds of milliseconds while the p50 stays low. The closed model only sends
//! when a connection is free, so during a stall it sends almost nothing, and its p99
//! hides the stall: coordinated omission, as theory says.

use std::time::{Duration, Instant};

use gauntlet_loadgen::RunResult;

mod common;

/// Serves `/` instantly, except during the first second of every five, when every request
/// waits for the second to end.
async fn stalling_target() -> String {
    let born = Instant::now();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move {
            let phase = born.elapsed().as_millis() % 5_000;
            if phase < 1_000 {
                tokio::time::sleep(Duration::from_millis((1_000 - phase) as u64)).await;
            }
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn load(url: &str, rate: Option<f64>) -> RunResult {
    common::run(common::quick(url, 4, rate, Duration::from_secs(10))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_show_in_the_open_model_and_hide_in_the_closed_one() {
    let url = stalling_target().await;
    let open = load(&url, Some(200.0)).await;
    let (p50, p99) = (open.all.quantile_ms(0.5), open.all.quantile_ms(0.99));
    // Two stalls of 1 s in 10 s: a fifth of the requests were due while the server stood
    // still, and waited up to a second.
    assert!(p99 >= 300.0, "open p99 {p99:.1} ms should show the stalls");
    assert!(p50 < 50.0, "open p50 {p50:.1} ms should stay low");
    assert!(
        (1_900..=2_000).contains(&open.all.requests),
        "{}",
        open.all.requests
    );
    assert!(
        open.all.late_sends >= 100,
        "sends due during a stall went out late: {}",
        open.all.late_sends
    );
    assert_eq!(open.all.failures, 0);

    let closed = load(&url, None).await;
    let closed_p99 = closed.all.quantile_ms(0.99);
    println!(
        "open: {} requests, p50 {p50:.1} ms, p99 {p99:.1} ms, {} late sends; closed: {} requests, p50 {:.2} ms, p99 {closed_p99:.2} ms, max {:.1} ms",
        open.all.requests,
        open.all.late_sends,
        closed.all.requests,
        closed.all.quantile_ms(0.5),
        closed.all.max_ms()
    );
    assert!(
        closed_p99 * 5.0 < p99,
        "the closed model's p99 ({closed_p99:.1} ms) hides what the open model's ({p99:.1} ms) shows"
    );
    assert!(
        closed.all.max_ms() >= 500.0,
        "yet the stalled requests themselves were slow: max {:.1} ms",
        closed.all.max_ms()
    );
    assert_eq!(
        closed.all.late_sends, 0,
        "the closed model has no schedule to be late for"
    );
}
