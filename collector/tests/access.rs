//! Who may read the query API: with `auth_token` set, every route but /health and /ready
//! wants `Authorization: Bearer <token>` (compared in constant time); ingest is unaffected;
//! every answer carries the headers that keep a browser from running what it returns. A
//! non-loopback query address needs a token or `insecure_ui`.

mod common;

use common::{TestCollector, json_span, json_traces};
use gauntlet_collector::query::access::{AuthToken, CONTENT_SECURITY_POLICY};
use gauntlet_collector::{Collector, CollectorError, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_query_api_but_not_probes_or_ingest() {
    let c = TestCollector::start_with(|config| {
        config.auth_token = Some(AuthToken::new("s3cr3t-42").expect("token"));
    })
    .await;
    let trace = json_traces(
        "guarded",
        vec![json_span(&"a".repeat(32), &"1".repeat(16), "", "op", 1, 2)],
    );
    let (status, _) = c.post_json("/v1/traces", &trace).await;
    assert_eq!(status, 200, "OTLP ingest takes no token");

    let get = |path: &str, auth: Option<&str>| {
        let mut req = c.client.get(c.api(path));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cr3t-4"),
        Some("s3cr3t-42"),
        Some("Basic s3cr3t-42"),
    ] {
        let resp = get("/api/services", auth).await.expect("answers");
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"gauntlet\"")
        );
        let body: serde_json::Value = resp.json().await.expect("json");
        let msg = body["errors"][0]["msg"].as_str().unwrap_or_default();
        assert!(msg.contains("Authorization: Bearer"), "{msg}");
    }
    let resp = get("/api/services", Some("Bearer s3cr3t-42"))
        .await
        .expect("answers");
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["data"], serde_json::json!(["guarded"]));
    for open in ["/health", "/ready"] {
        let resp = get(open, None).await.expect("answers");
        assert_eq!(resp.status().as_u16(), 200, "{open} is for probes");
    }
    for path in ["/metrics", "/api/v1/logs", "/no/such/path"] {
        let resp = get(path, None).await.expect("answers");
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_forbids_inline_scripts_and_sniffing() {
    let c = TestCollector::start().await;
    for path in [
        "/api/services",
        "/health",
        "/no/such/path",
        "/api/traces/zz",
    ] {
        let resp = c.client.get(c.api(path)).send().await.expect("answers");
        let h = resp.headers();
        assert_eq!(
            h.get("content-security-policy")
                .and_then(|v| v.to_str().ok()),
            Some(CONTENT_SECURITY_POLICY),
            "{path}"
        );
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe-inline"));
        assert_eq!(
            h.get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{path}"
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_api_off_loopback_needs_a_token_or_insecure_ui() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::ephemeral(dir.path().join("data"));
    config.http = "0.0.0.0:0".parse().expect("addr");
    match Collector::start(config.clone()).await {
        Err(CollectorError::Unprotected { addr }) => assert_eq!(addr, config.http),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("an exposed query API without a token started"),
    }
    // [::1] is loopback too: no token needed (a machine without IPv6 may fail to bind it,
    // but never for want of a token).
    config.http = "[::1]:0".parse().expect("addr");
    match Collector::start(config.clone()).await {
        Ok(c) => c.shutdown().await,
        Err(CollectorError::Unprotected { .. }) => panic!("[::1] is loopback"),
        Err(e) => eprintln!("no IPv6 loopback here: {e}"),
    }
    config.http = "0.0.0.0:0".parse().expect("addr");
    config.insecure_ui = true;
    let c = Collector::start(config).await.expect("starts when told");
    c.shutdown().await;
}
