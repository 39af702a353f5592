//! Jaeger's HTTP query API (the one the Jaeger UI and Grafana's Jaeger data source use):
//! services, operations, trace search and trace by ID, answered with the API crate's
//! [`gauntlet_query_api::jaeger`] types. Times are microseconds; an error status becomes the
//! tag `error=true`; a parent becomes a CHILD_OF reference and a span link a FOLLOWS_FROM one,
//! as Jaeger's own OTLP mapping does.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use gauntlet_query_api::jaeger::{
    Operation, Process, RefType, Reference, Span, SpanLog, Tag, TagValue, Trace,
};
use gauntlet_query_api::params::{OperationsQuery, Pairs, TraceSearch, TracesQuery};

use super::{ApiError, QueryState, envelope, parse};
use crate::model::{
    Attributes, Resource, SpanKind, SpanRecord, StatusCode, TraceId, Value, hex, parse_trace_id,
};
use crate::store::{SpanFilter, TraceQuery};

pub async fn services(State(s): State<QueryState>) -> Result<Response, ApiError> {
    let names = s.store.services().await?;
    let n = names.len();
    Ok(envelope(names, n))
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
    Ok(envelope(names, n))
}

pub async fn operations(
    State(s): State<QueryState>,
    Query(pairs): Query<Pairs>,
) -> Result<Response, ApiError> {
    let q: OperationsQuery = parse(&pairs)?;
    let ops: Vec<Operation> = s
        .store
        .operations(&q.service, q.span_kind)
        .await?
        .into_iter()
        .map(|o| Operation {
            name: o.name,
            span_kind: o.kind,
        })
        .collect();
    let n = ops.len();
    Ok(envelope(ops, n))
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
    Ok(envelope([trace_json(&tid, &spans)], 1))
}

pub async fn find_traces(
    State(s): State<QueryState>,
    Query(pairs): Query<Pairs>,
) -> Result<Response, ApiError> {
    let ids: Vec<TraceId> = match parse(&pairs)? {
        // Jaeger also fetches several traces by ID through this route.
        TracesQuery::ByIds(ids) => ids
            .iter()
            .map(|v| {
                parse_trace_id(v).ok_or_else(|| {
                    ApiError::bad_request(format!("traceID={v:?} is not a trace ID"))
                })
            })
            .collect::<Result<_, _>>()?,
        TracesQuery::Search(search) => s.store.find_trace_ids(&trace_query(search)?).await?,
    };
    let traces = s.store.traces(&ids).await?;
    let data: Vec<Trace> = traces
        .iter()
        .map(|(id, spans)| trace_json(id, spans))
        .collect();
    let n = data.len();
    Ok(envelope(data, n))
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
        "otel.status_code" => SpanFilter::StatusCode(
            StatusCode::from_name(&value).ok_or_else(|| bad("one of UNSET, OK, ERROR"))?,
        ),
        _ => SpanFilter::Attribute { key, value },
    })
}

fn trace_query(search: TraceSearch) -> Result<TraceQuery, ApiError> {
    let limit = search.limit();
    Ok(TraceQuery {
        service: search.service,
        operation: search.operation,
        filters: search
            .tags
            .into_iter()
            .map(|(k, v)| span_filter(k, v))
            .collect::<Result<_, _>>()?,
        start_ns: search.start_ns,
        end_ns: search.end_ns,
        min_duration_ns: search.min_duration_ns,
        max_duration_ns: search.max_duration_ns,
        limit,
    })
}

/// Jaeger's trace JSON: spans plus a process table keyed `p1`, `p2`, ...
pub fn trace_json(trace_id: &TraceId, spans: &[SpanRecord]) -> Trace {
    // A trace has few resources: a list compared by value beats hashing attributes.
    let mut process_ids: Vec<(&Resource, String)> = Vec::new();
    let mut processes = BTreeMap::new();
    let mut out = Vec::with_capacity(spans.len());
    for span in spans {
        let resource = span.resource.as_ref();
        let pid = match process_ids.iter().find(|(r, _)| *r == resource) {
            Some((_, pid)) => pid.clone(),
            None => {
                let pid = format!("p{}", process_ids.len() + 1);
                let tags = attr_tags(&resource.attributes)
                    .into_iter()
                    .filter(|t| t.key != "service.name")
                    .collect();
                processes.insert(
                    pid.clone(),
                    Process {
                        service_name: resource.service.clone(),
                        tags,
                    },
                );
                process_ids.push((resource, pid.clone()));
                pid
            }
        };
        out.push(span_json(trace_id, span, pid));
    }
    Trace {
        trace_id: hex(trace_id),
        spans: out,
        processes,
        warnings: None,
    }
}

fn references(trace_id: &TraceId, span: &SpanRecord) -> Vec<Reference> {
    let mut references = Vec::new();
    if let Some(parent) = &span.parent_span_id {
        references.push(Reference {
            ref_type: RefType::ChildOf,
            trace_id: hex(trace_id),
            span_id: hex(parent),
        });
    }
    references.extend(span.links.iter().map(|l| Reference {
        ref_type: RefType::FollowsFrom,
        trace_id: hex(&l.trace_id),
        span_id: hex(&l.span_id),
    }));
    references
}

fn span_json(trace_id: &TraceId, span: &SpanRecord, pid: String) -> Span {
    let mut tags = attr_tags(&span.attributes);
    let kind = span.kind.jaeger_name();
    if !kind.is_empty() {
        tags.push(Tag::string("span.kind", kind));
    }
    match span.status_code {
        StatusCode::Error => {
            tags.push(Tag {
                key: "error".into(),
                value: TagValue::Bool(true),
            });
            tags.push(Tag::string("otel.status_code", "ERROR"));
        }
        StatusCode::Ok => tags.push(Tag::string("otel.status_code", "OK")),
        StatusCode::Unset => {}
    }
    if !span.status_message.is_empty() {
        tags.push(Tag::string("otel.status_description", &span.status_message));
    }
    if !span.scope_name.is_empty() {
        tags.push(Tag::string("otel.scope.name", &*span.scope_name));
    }
    if !span.scope_version.is_empty() {
        tags.push(Tag::string("otel.scope.version", &*span.scope_version));
    }
    let logs = span
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![Tag::string("event", &e.name)];
            fields.extend(attr_tags(&e.attributes));
            SpanLog {
                timestamp: e.time_ns / 1000,
                fields,
            }
        })
        .collect();
    Span {
        trace_id: hex(trace_id),
        span_id: hex(&span.span_id),
        operation_name: span.name.clone(),
        references: references(trace_id, span),
        flags: span.flags & 0xff,
        start_time: span.start_ns / 1000,
        duration: span.duration_ns() / 1000,
        tags,
        logs,
        process_id: pid,
        warnings: None,
    }
}

/// A Jaeger tag with the value's kind where Jaeger has one (string, bool, int64, float64);
/// bytes as base64 text, arrays and maps as their JSON, as the OpenTelemetry exporters do.
fn tag(key: &str, v: &Value) -> Tag {
    let value = match v {
        Value::Bool(b) => TagValue::Bool(*b),
        Value::Int(i) => TagValue::Int64(*i),
        Value::Double(d) if d.is_finite() => TagValue::Float64(*d),
        other => TagValue::String(other.text().into_owned()),
    };
    Tag {
        key: key.to_string(),
        value,
    }
}

/// Tags sorted by key, as Jaeger shows them.
fn attr_tags(attributes: &Attributes) -> Vec<Tag> {
    let mut tags: Vec<Tag> = attributes.iter().map(|(k, v)| tag(k, v)).collect();
    tags.sort_by(|a, b| a.key.cmp(&b.key));
    tags
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
            Some(SpanFilter::StatusCode(StatusCode::Error))
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
    fn tags_keep_types() {
        let attrs = Attributes::from_json(r#"{"e":[1],"a":"x","b":true,"c":3,"d":1.5,"f":"AQ=="}"#)
            .unwrap_or_default();
        let mut attrs_with_bytes = attrs.clone();
        attrs_with_bytes.insert("f", Value::Bytes(vec![1]));
        assert_eq!(attr_tags(&attrs), attr_tags(&attrs_with_bytes));
        let tags = attr_tags(&attrs);
        let keys: Vec<&str> = tags.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "d", "e", "f"], "sorted by key");
        let values: Vec<TagValue> = tags.into_iter().map(|t| t.value).collect();
        assert_eq!(
            values,
            [
                TagValue::String("x".into()),
                TagValue::Bool(true),
                TagValue::Int64(3),
                TagValue::Float64(1.5),
                TagValue::String("[1]".into()),
                TagValue::String("AQ==".into()),
            ]
        );
    }
}
