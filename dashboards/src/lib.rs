//! Gauntlet's web UI: the bundle built from `dashboards/web` (TypeScript, committed in
//! `dashboards/dist` so that `cargo build` needs no Node), embedded in the binary, and the
//! routes that serve it. Every page path answers the same `index.html`; the script picks
//! the page, so each page has a URL that can be shared.
//!
//! The shell and its assets hold no telemetry, so they are served without the collector's
//! token; the data comes from the query API, which the collector guards.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

/// The built UI, as `dashboards/web/build.mjs` wrote it.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        bytes: include_bytes!("../dist/index.html"),
    },
    Asset {
        path: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../dist/app.js"),
    },
    Asset {
        path: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../dist/app.css"),
    },
];

/// The UI's pages; each answers `index.html`.
pub const PAGES: &[&str] = &[
    "/",
    "/search",
    "/trace/{id}",
    "/logs",
    "/correlation/{id}",
    "/map",
    "/red",
    "/graph",
    "/runs",
];

/// Where a page of the UI is, for links printed by the CLI.
pub mod links {
    /// The correlation timeline of one request.
    pub fn correlation(base: &str, id: &str) -> String {
        format!("{base}/correlation/{}", encode(id))
    }
    /// One trace's waterfall.
    pub fn trace(base: &str, trace_id: &str) -> String {
        format!("{base}/trace/{trace_id}")
    }
    pub fn map(base: &str) -> String {
        format!("{base}/map")
    }
    pub fn search(base: &str) -> String {
        format!("{base}/search")
    }
    /// A service's rate, errors and duration over a fixed window (microseconds since the
    /// epoch), as the runs page links a run's window.
    pub fn red_window(base: &str, service: &str, start_us: i64, end_us: i64) -> String {
        format!(
            "{base}/red?service={}&start={start_us}&end={end_us}",
            encode(service)
        )
    }
    /// Every load run, experiment and suite the collector holds markers of.
    pub fn runs(base: &str) -> String {
        format!("{base}/runs")
    }

    /// Percent-encodes all but unreserved characters (RFC 3986), for a path segment.
    fn encode(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

/// The UI's routes: its pages and `/assets/{file}`.
pub fn router() -> Router {
    let mut router = Router::new().route("/assets/{file}", get(asset));
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router
}

fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// A strong validator for an embedded file: FNV-1a over its bytes, computed once.
fn etag(asset: &Asset) -> HeaderValue {
    static TAGS: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
                for b in a.bytes {
                    hash ^= u64::from(*b);
                    hash = hash.wrapping_mul(0x0100_0000_01b3);
                }
                HeaderValue::from_str(&format!("\"{hash:016x}\""))
                    .unwrap_or(HeaderValue::from_static("\"0\""))
            })
            .collect()
    });
    let i = ASSETS
        .iter()
        .position(|a| a.path == asset.path)
        .unwrap_or(0);
    tags[i].clone()
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset);
    // The bundle changes with the binary: revalidate every time, cheaply (304).
    let headers = [
        (header::ETAG, tag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    if request.get(header::IF_NONE_MATCH) == Some(&tag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        headers,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.bytes,
    )
        .into_response()
}

async fn index(request: HeaderMap) -> Response {
    match find("index.html") {
        Some(a) => serve(a, &request),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn asset(
    axum::extract::Path(file): axum::extract::Path<String>,
    request: HeaderMap,
) -> Response {
    match find(&file).filter(|a| a.path != "index.html") {
        Some(a) => serve(a, &request),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no UI asset {file:?}: the UI has app.js and app.css\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str, etag: Option<&HeaderValue>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = etag {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router()
            .oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn every_page_answers_the_shell_and_assets_revalidate() {
        for path in [
            "/",
            "/search?service=x",
            "/trace/abc",
            "/correlation/a%20b",
            "/map",
            "/red",
            "/runs",
            "/logs",
        ] {
            let r = get(path, None).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert_eq!(
                r.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            let body = r.into_body().collect().await.expect("body").to_bytes();
            assert!(body.starts_with(b"<!doctype html>"), "{path}");
        }
        let js = get("/assets/app.js", None).await;
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(
            js.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let tag = js.headers()[header::ETAG].clone();
        assert_eq!(
            get("/assets/app.js", Some(&tag)).await.status(),
            StatusCode::NOT_MODIFIED
        );
        let css_tag = get("/assets/app.css", None).await.headers()[header::ETAG].clone();
        assert_ne!(tag, css_tag, "each file has its own validator");
        assert_eq!(
            get("/assets/app.css", Some(&tag)).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            get("/assets/index.html", None).await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/assets/../Cargo.toml", None).await.status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn the_shell_loads_only_its_own_files() {
        let html = std::str::from_utf8(ASSETS[0].bytes).expect("utf-8");
        assert!(html.contains("src=\"/assets/app.js\""));
        assert!(html.contains("href=\"/assets/app.css\""));
        // Inline script would be refused by the collector's Content-Security-Policy.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing from a CDN"
        );
    }

    #[test]
    fn links_escape_what_a_path_cannot_carry() {
        assert_eq!(
            links::correlation("http://127.0.0.1:16686", "order 7/a?b"),
            "http://127.0.0.1:16686/correlation/order%207%2Fa%3Fb"
        );
        assert_eq!(links::map("http://h"), "http://h/map");
    }
}
