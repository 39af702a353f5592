//! The collector's own span and log model: what every receiver (OTLP, Zipkin) produces, every
//! store keeps and every query reads. Attribute values keep OpenTelemetry's kinds, events and
//! links are structs and the status an enum; how a store encodes them is its own business
//! (see `store::sqlite` and `store::clickhouse::rows`).

use std::sync::Arc;

mod attributes;
mod metric;

pub use attributes::{Attributes, Key, Value};
pub use metric::{Exemplar, MetricKind, MetricPoint, MetricSeries, PointValue, Temporality};

/// A 16-byte trace ID; never all zero once it is in the model.
pub type TraceId = [u8; 16];
/// An 8-byte span ID; never all zero once it is in the model.
pub type SpanId = [u8; 8];

/// The attribute keys that carry a correlation ID, in order of preference.
pub use gauntlet_query_api::CORRELATION_KEYS;

/// Service name used when a resource has no `service.name`, as the OTel SDKs do.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The entity that produced telemetry: shared by all spans and logs of one resource block.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub service: String,
    /// Resource attributes (including `service.name`).
    pub attributes: Attributes,
}

/// OTLP span kinds: the query API's type, so the model and the answers share it.
pub use gauntlet_query_api::SpanKind;

/// OTLP status codes; the numbers are the protocol's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StatusCode {
    #[default]
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    /// The protocol's number; an unknown one is `Unset`, as the spec reads it.
    pub fn from_i32(code: i32) -> Self {
        match code {
            1 => Self::Ok,
            2 => Self::Error,
            _ => Self::Unset,
        }
    }

    /// `UNSET`, `OK` or `ERROR`: the names `otel.status_code` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unset => "UNSET",
            Self::Ok => "OK",
            Self::Error => "ERROR",
        }
    }

    /// The name in any case, as a search tag gives it.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Unset, Self::Ok, Self::Error]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

/// Something that happened at a point within a span.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub time_ns: i64,
    pub name: String,
    pub attributes: Attributes,
}

/// A span this one is causally related to besides its parent (e.g. the producer of a
/// message it consumes).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub attributes: Attributes,
}

/// One span, as received and as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub resource: Arc<Resource>,
    /// Shared by the spans of one scope of an export, as the resource is.
    pub scope_name: Arc<str>,
    pub scope_version: Arc<str>,
    pub name: String,
    pub kind: SpanKind,
    pub start_ns: i64,
    pub end_ns: i64,
    pub status_code: StatusCode,
    pub status_message: String,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    pub correlation_id: Option<String>,
    pub trace_state: String,
    pub flags: u32,
}

impl SpanRecord {
    /// A server span of service `svc`, operation `op`, 1 ms long at 2023-11-14, with nothing
    /// else: what unit tests build on.
    #[cfg(test)]
    pub(crate) fn for_test(trace_id: TraceId, span_id: SpanId) -> Self {
        SpanRecord {
            trace_id,
            span_id,
            parent_span_id: None,
            resource: Arc::new(Resource {
                service: "svc".into(),
                attributes: Attributes::new(),
            }),
            scope_name: "".into(),
            scope_version: "".into(),
            name: "op".into(),
            kind: SpanKind::Server,
            start_ns: 1_700_000_000_000_000_000,
            end_ns: 1_700_000_000_001_000_000,
            status_code: StatusCode::Unset,
            status_message: String::new(),
            attributes: Attributes::new(),
            events: Vec::new(),
            links: Vec::new(),
            correlation_id: None,
            trace_state: String::new(),
            flags: 0,
        }
    }

    pub fn duration_ns(&self) -> i64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
    pub fn is_error(&self) -> bool {
        self.status_code == StatusCode::Error
    }
}

/// One log record, as received and as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    pub time_ns: i64,
    pub observed_ns: i64,
    pub resource: Arc<Resource>,
    pub scope_name: String,
    pub severity_number: i32,
    pub severity_text: String,
    /// The body as text: a string body as it is, any other value as JSON.
    pub body: String,
    pub attributes: Attributes,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub correlation_id: Option<String>,
    pub flags: u32,
    pub event_name: String,
}

/// What one export request contributes to the store.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub spans: Vec<SpanRecord>,
    pub logs: Vec<LogRecord>,
    pub metrics: Vec<MetricPoint>,
}

impl Batch {
    /// Rows this batch will write: the unit of the ingest queue's capacity.
    pub fn rows(&self) -> usize {
        self.spans.len() + self.logs.len() + self.metrics.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }
    pub fn extend(&mut self, other: Batch) {
        self.spans.extend(other.spans);
        self.logs.extend(other.logs);
        self.metrics.extend(other.metrics);
    }
}

/// Items of a request that were not accepted, and why (for OTLP `partial_success`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rejections {
    pub count: i64,
    reasons: Vec<(&'static str, i64)>,
}

impl Rejections {
    pub fn add(&mut self, reason: &'static str) {
        self.count += 1;
        match self.reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.reasons.push((reason, 1)),
        }
    }

    /// A message a person can act on, e.g. `2 spans rejected: 2 with an all-zero trace_id`.
    pub fn message(&self, noun: &str) -> String {
        if self.count == 0 {
            return String::new();
        }
        let parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        format!("{} {noun} rejected: {}", self.count, parts.join("; "))
    }
}

/// Lower-case hex of an ID.
pub fn hex(id: &[u8]) -> String {
    const_hex::encode(id)
}

/// Parses a trace ID in hex, case-insensitive; shorter IDs (64-bit Zipkin/Jaeger ones) are
/// left-padded with zeros. `None` for anything else or for the all-zero ID.
pub fn parse_trace_id(s: &str) -> Option<TraceId> {
    parse_hex_id(s)
}

/// Parses an 8-byte span ID in hex (up to 16 digits, left-padded).
pub fn parse_span_id(s: &str) -> Option<SpanId> {
    parse_hex_id(s)
}

fn parse_hex_id<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    if s.is_empty() || s.len() > 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{s:0>width$}", width = 2 * N);
    let mut id = [0u8; N];
    const_hex::decode_to_slice(&padded, &mut id).ok()?;
    (id != [0u8; N]).then_some(id)
}

/// Formats nanoseconds since the epoch as RFC 3339 (UTC, nanosecond precision).
pub fn rfc3339(ns: i64) -> String {
    let ns = ns.max(0) as u64;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Wall-clock now in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_parse_case_insensitively_and_pad_short_ones() {
        let upper = parse_trace_id("5B8EFFF798038103D269B633813FC60C");
        let lower = parse_trace_id("5b8efff798038103d269b633813fc60c");
        assert!(upper.is_some());
        assert_eq!(upper, lower);
        let short = parse_trace_id("d269b633813fc60c").map(|id| hex(&id));
        assert_eq!(short.as_deref(), Some("0000000000000000d269b633813fc60c"));
        assert_eq!(parse_trace_id("00000000000000000000000000000000"), None);
        assert_eq!(parse_trace_id("xyz"), None);
        assert_eq!(parse_trace_id(&"a".repeat(33)), None);
    }

    #[test]
    fn rejection_messages_count_each_reason() {
        let mut r = Rejections::default();
        r.add("with an all-zero trace_id");
        r.add("ending before they start");
        r.add("with an all-zero trace_id");
        assert_eq!(r.count, 3);
        assert_eq!(
            r.message("spans"),
            "3 spans rejected: 2 with an all-zero trace_id; 1 ending before they start"
        );
    }
}
