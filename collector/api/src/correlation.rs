//! `GET /api/v1/correlations/{id}`: everything one business request did, across services and
//! asynchronous hops, as one timeline of spans and logs.

use serde::{Deserialize, Serialize};

use crate::logs::LogEntry;
use crate::{Attributes, SpanKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Timeline {
    pub correlation_id: String,
    /// IDs of the traces that carry the correlation ID.
    pub traces: Vec<String>,
    /// Every service that took part, sorted.
    pub services: Vec<String>,
    pub trace_summaries: Vec<TraceSummary>,
    /// Spans and logs in time order.
    pub items: Vec<TimelineItem>,
    /// More items than the limit: the latest were left out.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub enum TimelineItem {
    Span(TimelineSpan),
    Log(LogEntry),
}

impl TimelineItem {
    pub fn time_unix_nano(&self) -> i64 {
        match self {
            Self::Span(s) => s.time_unix_nano,
            Self::Log(l) => l.time_unix_nano,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct TimelineSpan {
    /// RFC 3339 start.
    pub time: String,
    pub time_unix_nano: i64,
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub span_kind: SpanKind,
    pub duration_ns: i64,
    pub error: bool,
    pub correlation_id: Option<String>,
    /// The spans this one links to (a consumer's link to its message's producer).
    pub links: Vec<SpanLink>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct SpanLink {
    pub trace_id: String,
    pub span_id: String,
    #[serde(default)]
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct TraceSummary {
    pub trace_id: String,
    /// RFC 3339.
    pub start: String,
    pub duration_ns: i64,
    pub root_service: Option<String>,
    pub root_operation: Option<String>,
    pub span_count: u64,
    pub error: bool,
}
