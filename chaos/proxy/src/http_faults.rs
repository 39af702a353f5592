//! Proxies of kind `http`: an HTTP/1.1 reverse proxy to the upstream that applies the HTTP
//! faults Toxiproxy lacks (Chaos Mesh's HTTPChaos is the model): `http_abort` answers a
//! status itself instead of forwarding, `http_delay` holds the request before forwarding,
//! each for `percentage` of the requests that match its method, path and header (and, like
//! every toxic, with its `toxicity`). Faults apply in the order they were added.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use crate::model::Attributes;
use crate::proxy::Proxy;

/// The largest request body forwarded.
const MAX_BODY: usize = 64 << 20;

/// Headers that belong to one hop, not to the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

#[derive(Clone)]
struct Ctx {
    proxy: Arc<Proxy>,
    http: reqwest::Client,
}

/// The proxy's listening socket with the sender that tells the proxy it closed: axum drops
/// its listener as soon as shutdown begins, before the open connections have ended.
pub struct OwnedListener {
    inner: TcpListener,
    _open: oneshot::Sender<()>,
}

impl OwnedListener {
    pub fn new(inner: TcpListener, open: oneshot::Sender<()>) -> Self {
        Self { inner, _open: open }
    }
}

impl Listener for OwnedListener {
    type Io = TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (TcpStream, std::net::SocketAddr) {
        Listener::accept(&mut self.inner).await
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

/// Serves the proxy's requests on `listener` until its epoch changes.
pub async fn serve(proxy: Arc<Proxy>, listener: OwnedListener, mut epoch: watch::Receiver<u64>) {
    let ctx = Ctx {
        proxy,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default(),
    };
    let app = Router::new().fallback(forward).with_state(ctx);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = epoch.changed().await;
        })
        .await;
}

fn header_of(headers: &HeaderMap) -> impl Fn(&str) -> Option<String> + '_ {
    |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            to.append(k.clone(), v.clone());
        }
    }
}

async fn forward(State(ctx): State<Ctx>, req: Request) -> Response {
    // The request's parts, not the request: its body is not `Sync`, so no reference to it
    // may be held across an await.
    let (parts, body) = req.into_parts();
    if let Some(aborted) = apply_faults(&ctx, &parts.method, parts.uri.path(), &parts.headers).await
    {
        return aborted;
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body could not be read (over {MAX_BODY} bytes?): {e}"),
            )
                .into_response();
        }
    };
    let mut headers = HeaderMap::new();
    copy_headers(&parts.headers, &mut headers);
    let url = format!("http://{}{target}", ctx.proxy.upstream());
    let sent = ctx
        .http
        .request(parts.method, &url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(resp) => relay(resp, &url).await,
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            axum::Json(serde_json::json!({"error": format!("upstream {url} failed: {e}")})),
        )
            .into_response(),
    }
}

/// The HTTP toxics that match the request, in order: a delay waits, an abort answers in
/// the upstream's place (returned).
async fn apply_faults(
    ctx: &Ctx,
    method: &axum::http::Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    for t in ctx.proxy.current_toxics().iter() {
        let hit =
            |percentage: i64| fastrand::f32() < t.toxicity && fastrand::i64(0..100) < percentage;
        match &t.attributes {
            Attributes::HttpAbort {
                status,
                percentage,
                matching,
            } if matching.matches(method.as_str(), path, header_of(headers))
                && hit(*percentage) =>
            {
                let status =
                    StatusCode::from_u16(*status as u16).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                tracing::info!(proxy = %ctx.proxy.name(), toxic = %t.name, %method, %path, "request aborted");
                let body = serde_json::json!({
                    "error": format!("aborted by gauntlet chaos: toxic {} on proxy {}", t.name, ctx.proxy.name())
                });
                return Some((status, axum::Json(body)).into_response());
            }
            Attributes::HttpDelay {
                delay,
                percentage,
                matching,
            } if matching.matches(method.as_str(), path, header_of(headers))
                && hit(*percentage) =>
            {
                tokio::time::sleep(Duration::from_millis(*delay as u64)).await;
            }
            _ => {}
        }
    }
    None
}

/// The upstream's answer passed on (hop-by-hop headers dropped; the length is the body's).
async fn relay(resp: reqwest::Response, url: &str) -> Response {
    let status = resp.status();
    let mut out_headers = HeaderMap::new();
    copy_headers(resp.headers(), &mut out_headers);
    out_headers.remove(HeaderName::from_static("content-length"));
    match resp.bytes().await {
        Ok(bytes) => {
            let mut r = Response::new(Body::from(bytes));
            *r.status_mut() = status;
            *r.headers_mut() = out_headers;
            r
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("upstream {url} broke off its answer: {e}"),
        )
            .into_response(),
    }
}
