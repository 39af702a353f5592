//! Jaeger's trace JSON (what `GET /api/traces` and `GET /api/traces/{id}` answer, and what the
//! Jaeger UI and Grafana's Jaeger data source read): a trace is spans plus a process table;
//! a span's attributes, kind and status are typed tags; its events are logs of fields.
//! Readers here also accept a real Jaeger's answers (missing optional fields default).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// OTLP span kinds, with the protocol's integer values; on the wire Jaeger's lower-case names
/// (`""` for unspecified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[repr(i32)]
pub enum SpanKind {
    #[serde(rename = "")]
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    pub fn from_i32(v: i32) -> Self {
        match v {
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => Self::Unspecified,
        }
    }

    /// The lower-case name Jaeger uses in the `span.kind` tag and the operations API.
    pub fn jaeger_name(self) -> &'static str {
        match self {
            Self::Unspecified => "",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }

    pub fn from_jaeger_name(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "internal" => Self::Internal,
            "server" => Self::Server,
            "client" => Self::Client,
            "producer" => Self::Producer,
            "consumer" => Self::Consumer,
            "unspecified" | "" => Self::Unspecified,
            _ => return None,
        })
    }
}

/// One trace: its spans and the processes (services) they came from, keyed `p1`, `p2`, ...
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    #[serde(default)]
    pub processes: BTreeMap<String, Process>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Process {
    pub service_name: String,
    /// Resource attributes other than `service.name`.
    #[serde(default)]
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub operation_name: String,
    /// The parent (`CHILD_OF`) and the span's links (`FOLLOWS_FROM`).
    #[serde(default)]
    pub references: Vec<Reference>,
    #[serde(default)]
    pub flags: u32,
    /// Microseconds since the epoch.
    pub start_time: i64,
    /// Microseconds.
    pub duration: i64,
    /// Attributes, plus `span.kind`, `error`, `otel.status_code`, `otel.status_description`
    /// and `otel.scope.*` as Jaeger's OTLP mapping adds them.
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Span events: the name in the field `event`, then the event's attributes.
    #[serde(default)]
    pub logs: Vec<SpanLog>,
    #[serde(rename = "processID")]
    pub process_id: String,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub enum RefType {
    ChildOf,
    FollowsFrom,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Reference {
    pub ref_type: RefType,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

/// A span event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct SpanLog {
    /// Microseconds since the epoch.
    pub timestamp: i64,
    #[serde(default)]
    pub fields: Vec<Tag>,
}

/// A tag: `{"key": "k", "type": "int64", "value": 3}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Tag {
    pub key: String,
    #[serde(flatten)]
    pub value: TagValue,
}

/// A tag's value with Jaeger's type name beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub enum TagValue {
    String(String),
    Bool(bool),
    Int64(i64),
    Float64(f64),
    /// Base64, as Jaeger sends bytes.
    Binary(String),
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) | Self::Binary(s) => f.write_str(s),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int64(i) => write!(f, "{i}"),
            Self::Float64(x) => write!(f, "{x}"),
        }
    }
}

impl Tag {
    pub fn string(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: TagValue::String(value.into()),
        }
    }
}

fn find<'a>(tags: &'a [Tag], key: &str) -> Option<&'a TagValue> {
    tags.iter().find(|t| t.key == key).map(|t| &t.value)
}

impl Span {
    pub fn tag(&self, key: &str) -> Option<&TagValue> {
        find(&self.tags, key)
    }

    /// A string tag's text.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.tag(key)? {
            TagValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// An integer tag (or a string tag holding one, as some SDKs send status codes).
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.tag(key)? {
            TagValue::Int64(i) => Some(*i),
            TagValue::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn is_error(&self) -> bool {
        self.tag("error") == Some(&TagValue::Bool(true))
            || self.text("otel.status_code") == Some("ERROR")
    }

    pub fn kind(&self) -> Option<SpanKind> {
        self.text("span.kind").and_then(SpanKind::from_jaeger_name)
    }

    /// The parent span's ID, if the span has one.
    pub fn parent_span_id(&self) -> Option<&str> {
        self.references
            .iter()
            .find(|r| r.ref_type == RefType::ChildOf)
            .map(|r| r.span_id.as_str())
    }

    /// Whether an event called `name` with these attribute values happened in this span.
    pub fn has_event(&self, name: &str, attributes: &BTreeMap<String, String>) -> bool {
        self.logs.iter().any(|l| {
            find(&l.fields, "event").is_some_and(|v| v.to_string() == name)
                && attributes
                    .iter()
                    .all(|(k, want)| find(&l.fields, k).is_some_and(|v| v.to_string() == *want))
        })
    }
}

impl Trace {
    pub fn service_of(&self, span: &Span) -> &str {
        self.processes
            .get(&span.process_id)
            .map_or("", |p| p.service_name.as_str())
    }

    /// The spans of one service.
    pub fn spans_of<'a>(&'a self, service: &'a str) -> impl Iterator<Item = &'a Span> + 'a {
        self.spans
            .iter()
            .filter(move |s| self.service_of(s) == service)
    }
}

/// One entry of `GET /api/operations?service=`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Operation {
    pub name: String,
    pub span_kind: SpanKind,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Envelope;

    #[test]
    fn reads_jaegers_shape() {
        let text = r#"{"data": [{"traceID": "ab", "processes": {"p1": {"serviceName": "orders", "tags": []}},
            "spans": [{"traceID": "ab", "spanID": "01", "operationName": "POST /orders", "startTime": 5,
              "duration": 3, "processID": "p1", "references": [{"refType": "CHILD_OF", "traceID": "ab", "spanID": "00"}],
              "flags": 1, "warnings": null,
              "tags": [{"key": "span.kind", "type": "string", "value": "server"},
                       {"key": "error", "type": "bool", "value": true},
                       {"key": "http.response.status_code", "type": "int64", "value": 503}],
              "logs": [{"timestamp": 6, "fields": [{"key": "event", "type": "string", "value": "circuit_breaker.state_change"},
                                                    {"key": "to", "type": "string", "value": "open"}]}]}]}],
            "total": 1, "limit": 0, "offset": 0, "errors": null}"#;
        let e: Envelope<Vec<Trace>> = serde_json::from_str(text).expect("parses");
        let t = &e.data[0];
        let s = &t.spans[0];
        assert_eq!(t.service_of(s), "orders");
        assert!(s.is_error());
        assert_eq!(s.kind(), Some(SpanKind::Server));
        assert_eq!(s.int("http.response.status_code"), Some(503));
        assert_eq!(s.parent_span_id(), Some("00"));
        let to = |v: &str| BTreeMap::from([("to".to_string(), v.to_string())]);
        assert!(s.has_event("circuit_breaker.state_change", &to("open")));
        assert!(!s.has_event("circuit_breaker.state_change", &to("closed")));
        assert!(!s.has_event("retry", &BTreeMap::new()));
        // What is read is what is written.
        let again: Envelope<Vec<Trace>> =
            serde_json::from_str(&serde_json::to_string(&e).expect("writes")).expect("reads");
        assert_eq!(again, e);
    }

    #[test]
    fn tags_carry_their_type_beside_the_value() {
        let tags = vec![
            Tag::string("a", "x"),
            Tag {
                key: "n".into(),
                value: TagValue::Int64(3),
            },
        ];
        assert_eq!(
            serde_json::to_string(&tags).expect("writes"),
            r#"[{"key":"a","type":"string","value":"x"},{"key":"n","type":"int64","value":3}]"#
        );
        let kinds = serde_json::to_string(&[SpanKind::Unspecified, SpanKind::Consumer]);
        assert_eq!(kinds.ok().as_deref(), Some(r#"["","consumer"]"#));
    }
}
