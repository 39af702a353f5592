//! Browsers exporting with the OpenTelemetry JS SDK: CORS preflights and exports on
//! OTLP/HTTP are answered for the origins `--cors-origin` allows, and for no one by default.

mod common;

use common::TestCollector;
use gauntlet_collector::otlp::http::CorsOrigin;

const APP: &str = "http://localhost:3000";

async fn preflight(c: &TestCollector, path: &str, origin: &str) -> reqwest::Response {
    c.client
        .request(reqwest::Method::OPTIONS, c.otlp_http(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("answered")
}

fn allowed(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("access-control-allow-origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn allowed_origins_get_cors_answers_and_others_do_not() {
    let c = TestCollector::start_with(|cfg| {
        cfg.cors_origins = vec![APP.parse().expect("origin")];
    })
    .await;
    for path in ["/v1/traces", "/v1/logs"] {
        let ok = preflight(&c, path, APP).await;
        assert!(ok.status().is_success(), "{path}: {}", ok.status());
        assert_eq!(allowed(&ok).as_deref(), Some(APP), "{path}");
        let methods = ok
            .headers()
            .get("access-control-allow-methods")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(methods.contains("POST"), "{methods}");
        let headers = ok
            .headers()
            .get("access-control-allow-headers")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(headers.contains("content-type"), "{headers}");
        let other = preflight(&c, path, "http://evil.example").await;
        assert_eq!(
            allowed(&other),
            None,
            "{path}: another origin is not allowed"
        );
    }
    // The export itself, as the browser sends it, stores and carries the header.
    let body = r#"{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
        "scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "1000000000000001",
        "name": "click", "kind": 1, "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000001000000"}]}]}]}"#;
    let export = c
        .client
        .post(c.otlp_http("/v1/traces"))
        .header("origin", APP)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("export");
    assert_eq!(export.status(), 200);
    assert_eq!(allowed(&export).as_deref(), Some(APP));
    let (status, _) = c.get("/api/traces/5b8efff798038103d269b633813fc60d").await;
    assert_eq!(status, 200);
    c.shutdown().await;
}

#[tokio::test]
async fn without_cors_origins_no_browser_is_answered() {
    let c = TestCollector::start_with(|_| {}).await;
    let r = preflight(&c, "/v1/traces", APP).await;
    assert_eq!(allowed(&r), None);
    c.shutdown().await;
}

#[test]
fn origins_are_checked_when_given() {
    assert_eq!("*".parse::<CorsOrigin>(), Ok(CorsOrigin::Any));
    assert!("https://app.example:8443".parse::<CorsOrigin>().is_ok());
    for bad in [
        "localhost:3000",
        "http://",
        "http://app.example/",
        "ftp://x",
        "http://a b",
    ] {
        let err = bad.parse::<CorsOrigin>().expect_err(bad);
        assert!(err.contains("scheme://host[:port]"), "{bad}: {err}");
    }
}
