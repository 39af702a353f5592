//! Zipkin v2 JSON intake (`POST /api/v2/spans`), mapped onto the same span model as OTLP,
//! since many services still speak Zipkin. Zipkin's types are small and its one crate is
//! unmaintained, so the few serde structs are written here.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use crate::metrics::{Outcome, Protocol, Signal};
use crate::model::{
    Attributes, Batch, Event, Rejections, Resource, SpanKind, SpanRecord, StatusCode as SpanStatus,
    UNKNOWN_SERVICE, Value, parse_span_id, parse_trace_id,
};
use crate::otlp::http::{HttpReceiver, ingest_error, payload_error};
use crate::payload;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan {
    trace_id: String,
    id: String,
    parent_id: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    /// Microseconds since the epoch.
    timestamp: Option<u64>,
    /// Microseconds.
    duration: Option<u64>,
    local_endpoint: Option<Endpoint>,
    remote_endpoint: Option<Endpoint>,
    #[serde(default)]
    annotations: Vec<Annotation>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<u16>,
}

#[derive(Debug, Deserialize)]
struct Annotation {
    timestamp: u64,
    value: String,
}

pub fn router(receiver: HttpReceiver) -> Router {
    Router::new()
        .route("/api/v2/spans", post(spans))
        .layer(DefaultBodyLimit::disable())
        .with_state(receiver)
}

async fn spans(State(r): State<HttpReceiver>, headers: HeaderMap, body: Body) -> Response {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Type {ct:?}: this endpoint takes Zipkin v2 JSON (application/json)"
            ),
        );
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let (bytes, _held) = match payload::read(body, encoding, r.max_body, &r.budget).await {
        Ok(b) => b,
        Err(e) => return rpc_error(payload_error(e)),
    };
    let (batch, rejected) = match decode(&bytes) {
        Ok(decoded) => decoded,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let n = batch.rows() as u64;
    let p = Protocol::ZipkinJson;
    r.metrics
        .count(Signal::Spans, p, Outcome::Rejected, rejected.count as u64);
    match r.pipeline.submit(batch).await {
        Ok(()) => {
            r.metrics.count(Signal::Spans, p, Outcome::Accepted, n);
            if rejected.count > 0 {
                let body = serde_json::json!({
                    "rejected_spans": rejected.count,
                    "message": rejected.message("spans"),
                });
                (StatusCode::ACCEPTED, axum::Json(body)).into_response()
            } else {
                StatusCode::ACCEPTED.into_response()
            }
        }
        Err(e) => {
            r.metrics.count(Signal::Spans, p, Outcome::Refused, n);
            rpc_error(ingest_error(&e))
        }
    }
}

/// A Zipkin v2 JSON body (decompressed) as spans of the model, and the spans refused (with
/// why); the error says what is wrong with the body as a whole.
pub fn decode(body: &[u8]) -> Result<(Batch, Rejections), String> {
    let spans: Vec<ZipkinSpan> = serde_json::from_slice(body)
        .map_err(|e| format!("invalid Zipkin v2 JSON (expected an array of spans): {e}"))?;
    Ok(convert(spans))
}

/// A refusal as Zipkin clients read it: the status, `Retry-After` when there is one, text.
fn rpc_error(e: crate::otlp::status::RpcError) -> Response {
    let mut resp = error(e.http, e.message);
    if let Some(after) = e.retry_after
        && let Ok(v) = after.as_secs().max(1).to_string().parse()
    {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

fn error(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

fn convert(spans: Vec<ZipkinSpan>) -> (Batch, Rejections) {
    let mut batch = Batch::default();
    let mut rejected = Rejections::default();
    let mut resources: BTreeMap<String, Arc<Resource>> = BTreeMap::new();
    for z in spans {
        match span(z, &mut resources) {
            Ok(span) => batch.spans.push(span),
            Err(reason) => rejected.add(reason),
        }
    }
    (batch, rejected)
}

/// One Zipkin span in the model, or why it was rejected. Spans of one local service share
/// a resource.
fn span(
    z: ZipkinSpan,
    resources: &mut BTreeMap<String, Arc<Resource>>,
) -> Result<SpanRecord, &'static str> {
    let trace_id = parse_trace_id(&z.trace_id)
        .ok_or("with a traceId that is not 16 or 32 hex digits (or is all zero)")?;
    let span_id =
        parse_span_id(&z.id).ok_or("with an id that is not 16 hex digits (or is all zero)")?;
    let parent_span_id = match z.parent_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(parse_span_id(p).ok_or("with a parentId that is not 16 hex digits")?),
    };
    let ts_us = z.timestamp.ok_or("without a timestamp")?;
    let attrs = attributes(&z);
    let (status_code, status_message) = match z.tags.get("error") {
        Some(msg) => (SpanStatus::Error, msg.clone()),
        None => (SpanStatus::Unset, String::new()),
    };
    let kind = match z.kind.as_deref() {
        Some("SERVER") => SpanKind::Server,
        Some("CLIENT") => SpanKind::Client,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        _ => SpanKind::Internal,
    };
    let events = z
        .annotations
        .iter()
        .map(|a| Event {
            time_ns: us_to_ns(a.timestamp),
            name: a.value.clone(),
            attributes: Attributes::new(),
        })
        .collect();
    let start_ns = us_to_ns(ts_us);
    Ok(SpanRecord {
        trace_id,
        span_id,
        parent_span_id,
        resource: resource(&z, resources),
        scope_name: "zipkin".into(),
        scope_version: "".into(),
        name: z.name.unwrap_or_default(),
        kind,
        start_ns,
        end_ns: start_ns.saturating_add(us_to_ns(z.duration.unwrap_or(0))),
        status_code,
        status_message,
        correlation_id: attrs.correlation_id(),
        attributes: attrs,
        events,
        links: Vec::new(),
        trace_state: String::new(),
        flags: 0,
    })
}

/// The local endpoint as a resource: its service and address.
fn resource(z: &ZipkinSpan, resources: &mut BTreeMap<String, Arc<Resource>>) -> Arc<Resource> {
    let service = z
        .local_endpoint
        .as_ref()
        .and_then(|e| e.service_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
    resources
        .entry(service.clone())
        .or_insert_with(|| {
            let mut attrs = Attributes::new();
            attrs.insert("service.name", service.clone());
            if let Some(e) = &z.local_endpoint
                && let Some(ip) = e.ipv4.as_ref().or(e.ipv6.as_ref())
            {
                attrs.insert("host.ip", ip.clone());
            }
            Arc::new(Resource {
                service,
                attributes: attrs,
            })
        })
        .clone()
}

/// The tags (but `error`, which is the status here) and the remote endpoint as the
/// semantic conventions name it.
fn attributes(z: &ZipkinSpan) -> Attributes {
    let mut attrs: Attributes = z
        .tags
        .iter()
        .filter(|(k, _)| k.as_str() != "error")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(e) = &z.remote_endpoint {
        if let Some(name) = &e.service_name {
            attrs.insert("peer.service", name.clone());
        }
        if let Some(ip) = e.ipv4.as_ref().or(e.ipv6.as_ref()) {
            attrs.insert("server.address", ip.clone());
        }
        if let Some(port) = e.port {
            attrs.insert("server.port", Value::Int(i64::from(port)));
        }
    }
    attrs
}

fn us_to_ns(us: u64) -> i64 {
    i64::try_from(us.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipkin_spans_map_to_the_model() {
        let json = r#"[{"traceId":"463ac35c9f6413ad","id":"a2fb4a1d1a96d312","parentId":"0020000000000001",
            "name":"get /api","kind":"SERVER","timestamp":1700000000000000,"duration":2500,
            "localEndpoint":{"serviceName":"frontend","ipv4":"127.0.0.1"},
            "remoteEndpoint":{"serviceName":"browser","port":4000},
            "annotations":[{"timestamp":1700000000001000,"value":"wr"}],
            "tags":{"http.method":"GET","error":"boom","correlation_id":"c-9"}},
            {"traceId":"zz","id":"a2fb4a1d1a96d312","timestamp":1}]"#;
        let spans: Vec<ZipkinSpan> = serde_json::from_str(json).expect("parses");
        let (batch, rejected) = convert(spans);
        assert_eq!(rejected.count, 1);
        let s = &batch.spans[0];
        assert_eq!(
            crate::model::hex(&s.trace_id),
            "0000000000000000463ac35c9f6413ad"
        );
        assert_eq!(s.resource.service, "frontend");
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.duration_ns(), 2_500_000);
        assert_eq!(s.status_code, SpanStatus::Error);
        assert_eq!(s.correlation_id.as_deref(), Some("c-9"));
        assert_eq!(s.attributes.get("peer.service"), Some(&"browser".into()));
        assert_eq!(s.attributes.get("server.port"), Some(&Value::Int(4000)));
        assert_eq!(s.attributes.get("error"), None);
        assert_eq!(s.events[0].name, "wr");
        assert_eq!(s.events[0].time_ns, 1_700_000_000_001_000_000);
    }
}
