//! Toxiproxy's HTTP API, route by route, so its clients (Go, Ruby, Python, Node,
//! toxiproxy-cli) work unchanged: proxies and their toxics, `/populate`, `/reset`,
//! `/version`, `/metrics`; errors as `{"error", "status"}` with Toxiproxy's codes; a browser
//! (a `Mozilla/` user agent) is refused, as Toxiproxy does, so a web page cannot drive it.

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;

use crate::model::{ApiError, NewProxy, NewToxic, ProxyUpdate, ToxicUpdate};
use crate::proxy::Proxies;

/// The version `/version` reports: Toxiproxy's API level this follows, and ours.
pub const VERSION: &str = concat!("2.12.0-gauntlet-", env!("CARGO_PKG_VERSION"));

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

/// The body as `T`, or Toxiproxy's 400.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("bad request body: {e}")))
}

pub fn router(proxies: Proxies) -> Router {
    Router::new()
        .route("/reset", post(reset))
        .route("/proxies", get(index).post(create))
        .route("/populate", post(populate))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(remove),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn(body_limit_error))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(stop_browsers))
        .with_state(proxies)
}

/// The largest API request body: a `/populate` of the most proxies kept fits easily.
pub const MAX_BODY: usize = 1 << 20;

/// A body over the limit answered in Toxiproxy's error shape, naming the limit.
async fn body_limit_error(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return resp;
    }
    ApiError::new(
        413,
        format!("the request body is larger than the API's limit of {MAX_BODY} bytes"),
    )
    .into_response()
}

async fn stop_browsers(req: Request, next: Next) -> Response {
    let browser = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if browser {
        return (StatusCode::FORBIDDEN, "User agent not allowed\n").into_response();
    }
    next.run(req).await
}

async fn reset(State(p): State<Proxies>) -> Result<StatusCode, ApiError> {
    p.reset().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn index(State(p): State<Proxies>) -> Response {
    Json(p.views()).into_response()
}

async fn create(State(p): State<Proxies>, body: Bytes) -> Result<Response, ApiError> {
    let view = p.create(parse::<NewProxy>(&body)?).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn populate(State(p): State<Proxies>, body: Bytes) -> Result<Response, ApiError> {
    let list: Vec<NewProxy> = parse(&body)?;
    let (done, err) = p.populate(list).await;
    let mut out = serde_json::json!({ "proxies": done });
    let status = match err {
        Some(e) => {
            out["error"] = e.error.clone().into();
            out["status"] = e.status.into();
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        None => StatusCode::CREATED,
    };
    Ok((status, Json(out)).into_response())
}

async fn show(State(p): State<Proxies>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(p.get(&name)?.view()).into_response())
}

async fn update(
    State(p): State<Proxies>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.get(&name)?;
    let u: ProxyUpdate = parse(&body)?;
    Ok(Json(p.update(&name, u).await?).into_response())
}

async fn remove(
    State(p): State<Proxies>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    p.delete(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn toxics(State(p): State<Proxies>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(p.toxic_list(&name)?).into_response())
}

async fn add_toxic(
    State(p): State<Proxies>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    p.get(&name)?;
    let toxic = parse::<NewToxic>(&body)?.into_toxic()?;
    Ok(Json(p.add_toxic(&name, toxic)?).into_response())
}

async fn show_toxic(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok(Json(p.toxic(&name, &toxic)?).into_response())
}

async fn update_toxic(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let current = p.toxic(&name, &toxic)?;
    let updated = current.updated(parse::<ToxicUpdate>(&body)?)?;
    Ok(Json(p.replace_toxic(&name, updated)?).into_response())
}

async fn remove_toxic(
    State(p): State<Proxies>,
    Path((name, toxic)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    p.remove_toxic(&name, &toxic)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn version() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        format!("{{\"version\": \"{VERSION}\"}}\n"),
    )
        .into_response()
}

/// Prometheus text: bytes received per proxy and direction, as Toxiproxy names them.
async fn metrics(State(p): State<Proxies>) -> Response {
    let mut out = String::from(
        "# HELP toxiproxy_proxy_received_bytes_total The number of bytes received from the client (upstream) or the upstream server (downstream).\n# TYPE toxiproxy_proxy_received_bytes_total counter\n",
    );
    for (name, upstream, listen, bytes) in p.counters() {
        for (direction, n) in [("upstream", bytes[0]), ("downstream", bytes[1])] {
            out.push_str(&format!(
                "toxiproxy_proxy_received_bytes_total{{direction=\"{direction}\",listener=\"{listen}\",proxy=\"{name}\",upstream=\"{upstream}\"}} {n}\n"
            ));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
