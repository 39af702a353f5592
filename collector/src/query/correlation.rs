//! `GET /api/v1/correlations/{id}`: everything one business request did, across services
//! and asynchronous hops. Traces are found by the correlation ID on any of their spans;
//! logs by the ID or by belonging to one of those traces; all merged into one timeline.

use std::collections::HashSet;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::logs::log_json;
use super::{ApiError, Params, QueryState, limit_param};
use crate::model::{hex, rfc3339};

/// Traces one timeline gathers at most.
const MAX_TRACES: usize = 200;

pub async fn timeline(
    State(s): State<QueryState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let limit = limit_param(&params, 5000, 50_000)?;
    let trace_ids = s.store.correlated_trace_ids(&id, MAX_TRACES).await?;
    let traces = s.store.traces(&trace_ids).await?;
    let summaries = s.store.trace_summaries(&trace_ids).await?;
    let logs = s.store.correlated_logs(&id, &trace_ids, limit).await?;
    if traces.is_empty() && logs.is_empty() {
        return Err(ApiError::not_found(format!(
            "no span or log carries correlation ID {id:?} (attributes correlation_id, correlation.id or app.correlation_id)"
        )));
    }
    let mut items: Vec<(i64, Value)> = Vec::new();
    let mut services = HashSet::new();
    for (trace_id, spans) in &traces {
        for span in spans {
            services.insert(span.resource.service.clone());
            items.push((
                span.start_ns,
                json!({
                    "kind": "span",
                    "time": rfc3339(span.start_ns),
                    "time_unix_nano": span.start_ns,
                    "service": span.resource.service,
                    "trace_id": hex(trace_id),
                    "span_id": hex(&span.span_id),
                    "parent_span_id": span.parent_span_id.map(|p| hex(&p)),
                    "name": span.name,
                    "span_kind": span.kind.jaeger_name(),
                    "duration_ns": span.duration_ns(),
                    "error": span.is_error(),
                    "correlation_id": span.correlation_id,
                    "links": serde_json::from_str::<Value>(&span.links).unwrap_or(Value::Null),
                }),
            ));
        }
    }
    for log in &logs {
        services.insert(log.resource.service.clone());
        let mut item = log_json(log);
        if let Value::Object(map) = &mut item {
            map.insert("kind".into(), "log".into());
        }
        items.push((log.time_ns, item));
    }
    items.sort_by_key(|(t, _)| *t);
    let truncated = items.len() > limit;
    items.truncate(limit);
    let mut services: Vec<String> = services.into_iter().collect();
    services.sort();
    Ok(axum::Json(json!({
        "correlation_id": id,
        "traces": trace_ids.iter().map(|t| hex(t)).collect::<Vec<_>>(),
        "services": services,
        "trace_summaries": summaries.iter().map(|t| json!({
            "trace_id": hex(&t.trace_id),
            "start": rfc3339(t.start_ns),
            "duration_ns": t.end_ns - t.start_ns,
            "root_service": t.root.as_ref().map(|r| &r.0),
            "root_operation": t.root.as_ref().map(|r| &r.1),
            "span_count": t.span_count,
            "error": t.error,
        })).collect::<Vec<_>>(),
        "items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "truncated": truncated,
    }))
    .into_response())
}
