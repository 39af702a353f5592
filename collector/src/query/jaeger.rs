//! Jaeger's HTTP query API (the one the Jaeger UI and Grafana's Jaeger data source use):
//! services, operations, trace search and trace by ID, with Jaeger's trace/span/process JSON.
//! Times are microseconds; an error status becomes the tag `error=true`; a parent becomes a
//! CHILD_OF reference and a span link a FOLLOWS_FROM one, as Jaeger's own OTLP mapping does.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::{ApiError, Params, QueryState, envelope, limit_param, param, time_param};
use crate::model::{STATUS_ERROR, STATUS_OK, SpanKind, SpanRecord, TraceId, hex, parse_trace_id};
use crate::store::{SpanFilter, TraceQuery};

pub async fn services(State(s): State<QueryState>) -> Result<Response, ApiError> {
    let names = s.store.services().await?;
    let n = names.len();
    Ok(envelope(json!(names), n))
}

pub async fn service_operations(
    State(s): State<QueryState>,
    Path(service): Path<String>,
) -> Result<Response, ApiError> {
    let mut names: Vec<String> = s
        .store
        .operations(&service, None)
        .await?
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.dedup();
    let n = names.len();
    Ok(envelope(json!(names), n))
}

pub async fn operations(
    State(s): State<QueryState>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let service = param(&params, "service")
        .ok_or_else(|| ApiError::bad_request("parameter 'service' is required"))?;
    let kind = match param(&params, "spanKind") {
        None => None,
        Some(k) => Some(SpanKind::from_jaeger_name(k).ok_or_else(|| {
            ApiError::bad_request(format!(
                "spanKind={k:?} is not one of server, client, producer, consumer, internal"
            ))
        })?),
    };
    let ops: Vec<Value> = s
        .store
        .operations(service, kind)
        .await?
        .into_iter()
        .map(|o| json!({"name": o.name, "spanKind": o.kind.jaeger_name()}))
        .collect();
    let n = ops.len();
    Ok(envelope(Value::Array(ops), n))
}

pub async fn get_trace(
    State(s): State<QueryState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let trace_id = parse_trace_id(&id).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{id:?} is not a trace ID: give 32 (or 16) hex digits, not all zero"
        ))
    })?;
    let traces = s.store.traces(&[trace_id]).await?;
    let Some((tid, spans)) = traces.into_iter().next() else {
        return Err(ApiError::not_found(format!(
            "trace {} not found",
            hex(&trace_id)
        )));
    };
    Ok(envelope(json!([trace_json(&tid, &spans)]), 1))
}

pub async fn find_traces(
    State(s): State<QueryState>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    // Jaeger also fetches several traces by ID through this route.
    let by_id: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "traceID")
        .map(|(_, v)| v.as_str())
        .collect();
    let ids: Vec<TraceId> = if !by_id.is_empty() {
        by_id
            .iter()
            .map(|v| {
                parse_trace_id(v).ok_or_else(|| {
                    ApiError::bad_request(format!("traceID={v:?} is not a trace ID"))
                })
            })
            .collect::<Result<_, _>>()?
    } else {
        let query = trace_query(&params)?;
        s.store.find_trace_ids(&query).await?
    };
    let traces = s.store.traces(&ids).await?;
    let data: Vec<Value> = traces
        .iter()
        .map(|(id, spans)| trace_json(id, spans))
        .collect();
    let n = data.len();
    Ok(envelope(Value::Array(data), n))
}

/// A Jaeger search tag as a store filter: the pseudo-tags `error`, `span.kind` and
/// `otel.status_code` read the span's status and kind; any other key is an attribute.
pub fn span_filter(key: String, value: String) -> Result<SpanFilter, ApiError> {
    let bad = |what: &str| ApiError::bad_request(format!("tag {key}={value:?}: {what}"));
    Ok(match key.as_str() {
        "error" => match value.to_ascii_lowercase().as_str() {
            "true" => SpanFilter::Error(true),
            "false" => SpanFilter::Error(false),
            _ => return Err(bad("error is true or false")),
        },
        "span.kind" => SpanFilter::Kind(
            SpanKind::from_jaeger_name(&value)
                .ok_or_else(|| bad("one of server, client, producer, consumer, internal"))?,
        ),
        "otel.status_code" => SpanFilter::StatusCode(match value.to_ascii_uppercase().as_str() {
            "UNSET" => 0,
            "OK" => 1,
            "ERROR" => 2,
            _ => return Err(bad("one of UNSET, OK, ERROR")),
        }),
        _ => SpanFilter::Attribute { key, value },
    })
}

fn trace_query(params: &Params) -> Result<TraceQuery, ApiError> {
    let service = param(params, "service")
        .ok_or_else(|| ApiError::bad_request("parameter 'service' is required"))?;
    let mut tags = Vec::new();
    if let Some(t) = param(params, "tags") {
        let map: serde_json::Map<String, Value> = serde_json::from_str(t).map_err(|e| {
            ApiError::bad_request(format!(
                "tags={t:?} is not a JSON object of strings, like {{\"http.status_code\":\"500\"}}: {e}"
            ))
        })?;
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            tags.push((k, v));
        }
    }
    for (k, v) in params.iter().filter(|(k, _)| k == "tag") {
        let (key, value) = v
            .split_once(':')
            .ok_or_else(|| ApiError::bad_request(format!("{k}={v:?} must be key:value")))?;
        tags.push((key.to_string(), value.to_string()));
    }
    let duration = |key: &str| -> Result<Option<i64>, ApiError> {
        param(params, key)
            .map(|v| {
                go_duration_ns(v).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "{key}={v:?} is not a duration: use forms like 250ms, 1.5s, 2m, 100us"
                    ))
                })
            })
            .transpose()
    };
    Ok(TraceQuery {
        service: service.to_string(),
        operation: param(params, "operation").map(str::to_string),
        filters: tags
            .into_iter()
            .map(|(k, v)| span_filter(k, v))
            .collect::<Result<_, _>>()?,
        start_ns: time_param(params, "start")?,
        end_ns: time_param(params, "end")?,
        min_duration_ns: duration("minDuration")?,
        max_duration_ns: duration("maxDuration")?,
        limit: limit_param(params, 20, 1500)?,
    })
}

/// Parses a Go duration (`1h2m`, `1.5s`, `300ms`, `10us`, `5µs`, `7ns`) into nanoseconds.
pub fn go_duration_ns(s: &str) -> Option<i64> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Some(total as i64)
}

/// Jaeger's trace JSON: spans plus a process table keyed `p1`, `p2`, ...
pub fn trace_json(trace_id: &TraceId, spans: &[SpanRecord]) -> Value {
    let mut process_ids: HashMap<&str, String> = HashMap::new();
    let mut processes = serde_json::Map::new();
    let mut out = Vec::with_capacity(spans.len());
    for span in spans {
        let key = span.resource.attributes.as_str();
        let next = process_ids.len() + 1;
        let pid = process_ids
            .entry(key)
            .or_insert_with(|| {
                let pid = format!("p{next}");
                let tags: Vec<Value> = attr_tags(&span.resource.attributes)
                    .into_iter()
                    .filter(|t| t["key"] != "service.name")
                    .collect();
                processes.insert(
                    pid.clone(),
                    json!({"serviceName": span.resource.service, "tags": tags}),
                );
                pid
            })
            .clone();
        out.push(span_json(trace_id, span, &pid));
    }
    json!({
        "traceID": hex(trace_id),
        "spans": out,
        "processes": processes,
        "warnings": null,
    })
}

fn span_json(trace_id: &TraceId, span: &SpanRecord, pid: &str) -> Value {
    let mut references = Vec::new();
    if let Some(parent) = &span.parent_span_id {
        references.push(json!({
            "refType": "CHILD_OF", "traceID": hex(trace_id), "spanID": hex(parent),
        }));
    }
    if let Ok(Value::Array(links)) = serde_json::from_str::<Value>(&span.links) {
        for l in links {
            references.push(json!({
                "refType": "FOLLOWS_FROM", "traceID": l["trace_id"], "spanID": l["span_id"],
            }));
        }
    }
    let mut tags = attr_tags(&span.attributes);
    let kind = span.kind.jaeger_name();
    if !kind.is_empty() {
        tags.push(tag_str("span.kind", kind));
    }
    match span.status_code {
        STATUS_ERROR => {
            tags.push(json!({"key": "error", "type": "bool", "value": true}));
            tags.push(tag_str("otel.status_code", "ERROR"));
        }
        STATUS_OK => tags.push(tag_str("otel.status_code", "OK")),
        _ => {}
    }
    if !span.status_message.is_empty() {
        tags.push(tag_str("otel.status_description", &span.status_message));
    }
    if !span.scope_name.is_empty() {
        tags.push(tag_str("otel.scope.name", &span.scope_name));
    }
    if !span.scope_version.is_empty() {
        tags.push(tag_str("otel.scope.version", &span.scope_version));
    }
    let logs: Vec<Value> = match serde_json::from_str::<Value>(&span.events) {
        Ok(Value::Array(events)) => events
            .iter()
            .map(|e| {
                let mut fields = vec![tag_str("event", e["name"].as_str().unwrap_or(""))];
                if let Value::Object(attrs) = &e["attributes"] {
                    fields.extend(attrs.iter().map(|(k, v)| tag(k, v)));
                }
                json!({
                    "timestamp": e["time_unix_nano"].as_i64().unwrap_or(0) / 1000,
                    "fields": fields,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    json!({
        "traceID": hex(trace_id),
        "spanID": hex(&span.span_id),
        "operationName": span.name,
        "references": references,
        "flags": span.flags & 0xff,
        "startTime": span.start_ns / 1000,
        "duration": span.duration_ns() / 1000,
        "tags": tags,
        "logs": logs,
        "processID": pid,
        "warnings": null,
    })
}

fn tag_str(key: &str, value: &str) -> Value {
    json!({"key": key, "type": "string", "value": value})
}

/// A Jaeger tag with the JSON value's type: string, bool, int64 or float64.
fn tag(key: &str, v: &Value) -> Value {
    match v {
        Value::String(s) => tag_str(key, s),
        Value::Bool(b) => json!({"key": key, "type": "bool", "value": b}),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            json!({"key": key, "type": "int64", "value": n})
        }
        Value::Number(n) => json!({"key": key, "type": "float64", "value": n}),
        other => tag_str(key, &other.to_string()),
    }
}

fn attr_tags(attributes: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(attributes) {
        Ok(Value::Object(map)) => map.iter().map(|(k, v)| tag(k, v)).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_tags_become_status_and_kind_filters() {
        let f = |k: &str, v: &str| span_filter(k.into(), v.into());
        assert_eq!(f("error", "TRUE").ok(), Some(SpanFilter::Error(true)));
        assert_eq!(
            f("span.kind", "consumer").ok(),
            Some(SpanFilter::Kind(SpanKind::Consumer))
        );
        assert_eq!(
            f("otel.status_code", "error").ok(),
            Some(SpanFilter::StatusCode(2))
        );
        assert_eq!(
            f("http.route", "/x").ok(),
            Some(SpanFilter::Attribute {
                key: "http.route".into(),
                value: "/x".into()
            })
        );
        for (k, v, says) in [
            ("error", "maybe", "true or false"),
            ("span.kind", "sideways", "server, client"),
            ("otel.status_code", "FINE", "UNSET, OK, ERROR"),
        ] {
            let e = f(k, v).expect_err("refused");
            assert!(e.message.contains(says), "{}", e.message);
        }
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration_ns("250ms"), Some(250_000_000));
        assert_eq!(go_duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration_ns("100us"), Some(100_000));
        assert_eq!(go_duration_ns("7µs"), Some(7_000));
        assert_eq!(go_duration_ns("10"), None);
        assert_eq!(go_duration_ns("fast"), None);
    }

    #[test]
    fn tags_keep_types() {
        let tags = attr_tags(r#"{"a":"x","b":true,"c":3,"d":1.5,"e":[1]}"#);
        let types: Vec<&str> = tags
            .iter()
            .map(|t| t["type"].as_str().unwrap_or("?"))
            .collect();
        assert_eq!(types, ["string", "bool", "int64", "float64", "string"]);
    }
}
