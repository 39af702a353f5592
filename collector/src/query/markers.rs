//! `GET /api/v1/markers?start=&end=`: when load runs and chaos experiments started and stopped,
//! read from the marker spans their tools export (`gauntlet load --otlp`, `gauntlet chaos
//! run`), so charts can show the windows. A new kind of marker is one row of [`SOURCES`].

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, Params, QueryState, limit_param, time_param};
use crate::model::{hex, now_ns};
use crate::store::TraceQuery;

/// A tool that exports markers: its service name, the marker kind, and the span names that
/// are markers (the tool's other spans are not).
pub struct Source {
    pub service: &'static str,
    pub kind: &'static str,
    pub names: &'static [&'static str],
}

pub const SOURCES: &[Source] = &[
    Source {
        service: "gauntlet-loadgen",
        kind: "load",
        names: &["load.start", "load.stop", "load.threshold"],
    },
    Source {
        service: "gauntlet-chaos",
        kind: "chaos",
        names: &["chaos.start", "chaos.stop", "chaos.fault_window"],
    },
];

const DEFAULT_WINDOW_NS: i64 = 24 * 3_600_000_000_000;

/// One marker: a moment (or, when `end` is later than `time`, a span of time) in a run.
#[derive(Debug, PartialEq, Serialize)]
pub struct Marker {
    pub kind: &'static str,
    pub name: String,
    /// The run it belongs to (`gauntlet.run_id`), shared by its start and stop.
    pub run_id: Option<String>,
    /// Microseconds since the epoch.
    pub time: i64,
    pub end: i64,
    /// A breached threshold, a deviated experiment.
    pub failed: bool,
    pub trace_id: String,
    /// The marker's attributes (the experiment's title, the threshold, ...).
    pub attributes: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct Answer {
    data: Vec<Marker>,
    total: usize,
}

pub async fn markers(
    State(s): State<QueryState>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let end = time_param(&params, "end")?.unwrap_or_else(now_ns);
    let start = time_param(&params, "start")?.unwrap_or(end - DEFAULT_WINDOW_NS);
    let limit = limit_param(&params, 200, 1500)?;
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
                    .map(|sp| {
                        let attributes: serde_json::Value =
                            serde_json::from_str(&sp.attributes).unwrap_or_default();
                        Marker {
                            kind: source.kind,
                            run_id: attributes
                                .get("gauntlet.run_id")
                                .and_then(|v| v.as_str())
                                .map(str::to_string),
                            failed: sp.is_error(),
                            name: sp.name,
                            time: sp.start_ns / 1000,
                            end: sp.end_ns / 1000,
                            trace_id: hex(&trace_id),
                            attributes,
                        }
                    }),
            );
        }
    }
    data.sort_by(|a, b| (a.time, &a.name).cmp(&(b.time, &b.name)));
    data.truncate(limit);
    Ok(axum::Json(Answer {
        total: data.len(),
        data,
    })
    .into_response())
}
