//! Loopback plumbing shared by the demo-system tests.
#![allow(dead_code)]

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
