//! `GET /api/v1/correlations/{id}`: everything one business request did, across services
//! and asynchronous hops. Traces are found by the correlation ID on any of their spans;
//! logs by the ID or by belonging to one of those traces; all merged into one timeline.

use std::collections::BTreeSet;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use gauntlet_query_api::correlation::{
    SpanLink, Timeline, TimelineItem, TimelineSpan, TraceSummary,
};
use gauntlet_query_api::params::{Pairs, TimelineQuery};

use super::logs::log_entry;
use super::{ApiError, QueryState, parse};
use crate::model::{SpanRecord, TraceId, hex, rfc3339};
use crate::store;

/// Traces one timeline gathers at most.
const MAX_TRACES: usize = 200;

pub async fn timeline(
    State(s): State<QueryState>,
    Path(id): Path<String>,
    Query(pairs): Query<Pairs>,
) -> Result<Response, ApiError> {
    let limit = parse::<TimelineQuery>(&pairs)?.limit();
    let trace_ids = s.store.correlated_trace_ids(&id, MAX_TRACES).await?;
    let traces = s.store.traces(&trace_ids).await?;
    let summaries = s.store.trace_summaries(&trace_ids).await?;
    let logs = s.store.correlated_logs(&id, &trace_ids, limit).await?;
    if traces.is_empty() && logs.is_empty() {
        return Err(ApiError::not_found(format!(
            "no span or log carries correlation ID {id:?} (attributes correlation_id, correlation.id or app.correlation_id)"
        )));
    }
    let mut items: Vec<TimelineItem> = Vec::new();
    let mut services = BTreeSet::new();
    for (trace_id, spans) in &traces {
        for span in spans {
            services.insert(span.resource.service.clone());
            items.push(TimelineItem::Span(timeline_span(trace_id, span)));
        }
    }
    for log in &logs {
        services.insert(log.resource.service.clone());
        items.push(TimelineItem::Log(log_entry(log)));
    }
    items.sort_by_key(TimelineItem::time_unix_nano);
    let truncated = items.len() > limit;
    items.truncate(limit);
    Ok(axum::Json(Timeline {
        correlation_id: id,
        traces: trace_ids.iter().map(|t| hex(t)).collect(),
        services: services.into_iter().collect(),
        trace_summaries: summaries.iter().map(summary).collect(),
        items,
        truncated,
    })
    .into_response())
}

fn timeline_span(trace_id: &TraceId, span: &SpanRecord) -> TimelineSpan {
    TimelineSpan {
        time: rfc3339(span.start_ns),
        time_unix_nano: span.start_ns,
        service: span.resource.service.clone(),
        trace_id: hex(trace_id),
        span_id: hex(&span.span_id),
        parent_span_id: span.parent_span_id.map(|p| hex(&p)),
        name: span.name.clone(),
        span_kind: span.kind,
        duration_ns: span.duration_ns(),
        error: span.is_error(),
        correlation_id: span.correlation_id.clone(),
        links: span
            .links
            .iter()
            .map(|l| SpanLink {
                trace_id: hex(&l.trace_id),
                span_id: hex(&l.span_id),
                attributes: super::logs::attributes(&l.attributes),
            })
            .collect(),
    }
}

fn summary(t: &store::TraceSummary) -> TraceSummary {
    TraceSummary {
        trace_id: hex(&t.trace_id),
        start: rfc3339(t.start_ns),
        duration_ns: t.end_ns - t.start_ns,
        root_service: t.root.as_ref().map(|r| r.0.clone()),
        root_operation: t.root.as_ref().map(|r| r.1.clone()),
        span_count: t.span_count as u64,
        error: t.error,
    }
}
