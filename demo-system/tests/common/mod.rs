//! Loopback plumbing shared by the demo-system tests.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use gauntlet_demo_system::inventory::InventoryClient;
use gauntlet_demo_system::orders::Orders;
use gauntlet_demo_system::payments::PaymentsClient;
use gauntlet_demo_system::platform::client::HttpClient;
use gauntlet_demo_system::platform::discovery::Endpoint;
use gauntlet_demo_system::platform::outbox::feed_client;
use gauntlet_demo_system::platform::resilience::ResilienceConfig;

/// A listener on an ephemeral loopback port, and its base URL.
pub async fn bind() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    (l, url)
}

/// Serves `app` on `listener` in the background.
pub fn serve(listener: tokio::net::TcpListener, app: axum::Router) {
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// A typed-call client for `name` at a fixed URL.
pub fn client(name: &str, url: &str, config: &ResilienceConfig) -> HttpClient {
    HttpClient::at(name, url, config).expect("valid resilience settings")
}

/// The orders saga calling inventory and payments at fixed URLs.
pub fn orders_at(dir: &Path, inventory: &str, payments: &str, r: &ResilienceConfig) -> Orders {
    Orders::open(
        &dir.join("orders.sqlite"),
        InventoryClient::new(client("inventory", inventory, r)),
        PaymentsClient::new(client("payments", payments, r)),
    )
    .expect("orders db")
}

/// How a consumer reads the orders feed at `url`.
pub fn orders_feed(url: &str) -> HttpClient {
    feed_client("orders", Endpoint::fixed(url)).expect("feed client")
}

/// Polls until `ok` holds, for at most 10 s.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut ok: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
