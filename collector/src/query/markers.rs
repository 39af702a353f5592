//! `GET /api/v1/markers?start=&end=`: when load runs, chaos experiments and suites started
//! and stopped, read from the marker spans their tools export (`gauntlet load --otlp`,
//! `gauntlet chaos run`, `gauntlet run`), so charts can show the windows and the UI can list
//! the runs. The tools and this module share the names through
//! [`gauntlet_query_api::markers`]; a new kind of marker is one row of its `SOURCES`.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use gauntlet_query_api::markers::{Marker, Markers, RUN_ID_KEY, SOURCES, Source};
use gauntlet_query_api::params::{MarkersQuery, Pairs};

use super::logs::attributes;
use super::{ApiError, QueryState, parse};
use crate::model::{SpanRecord, TraceId, hex, now_ns};
use crate::store::TraceQuery;

const DEFAULT_WINDOW_NS: i64 = 24 * 3_600_000_000_000;

pub async fn markers(
    State(s): State<QueryState>,
    Query(pairs): Query<Pairs>,
) -> Result<Response, ApiError> {
    let q: MarkersQuery = parse(&pairs)?;
    let end = q.end_ns.unwrap_or_else(now_ns);
    let start = q.start_ns.unwrap_or(end - DEFAULT_WINDOW_NS);
    let limit = q.limit();
    let mut data = Vec::new();
    for source in SOURCES {
        let ids = s
            .store
            .find_trace_ids(&TraceQuery {
                service: source.service.into(),
                start_ns: Some(start),
                end_ns: Some(end),
                limit,
                ..Default::default()
            })
            .await?;
        for (trace_id, spans) in s.store.traces(&ids).await? {
            data.extend(
                spans
                    .into_iter()
                    .filter(|sp| {
                        sp.resource.service == source.service
                            && source.names.contains(&sp.name.as_str())
                            && (start..=end).contains(&sp.start_ns)
                    })
                    .map(|sp| marker(source, &trace_id, sp)),
            );
        }
    }
    data.sort_by(|a, b| (a.time, &a.name).cmp(&(b.time, &b.name)));
    data.truncate(limit);
    Ok(axum::Json(Markers {
        total: data.len(),
        data,
    })
    .into_response())
}

fn marker(source: &Source, trace_id: &TraceId, sp: SpanRecord) -> Marker {
    let attributes = attributes(&sp.attributes);
    Marker {
        kind: source.kind,
        run_id: attributes
            .get(RUN_ID_KEY)
            .and_then(|v| v.as_str())
            .map(str::to_string),
        failed: sp.is_error(),
        time: sp.start_ns / 1000,
        end: sp.end_ns / 1000,
        trace_id: hex(trace_id),
        name: sp.name,
        attributes,
    }
}
