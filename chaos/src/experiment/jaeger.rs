//! The Jaeger query API's JSON (`GET /api/traces`), as the collector answers it: what the
//! collector probes read. Jaeger's shape, so the probes also work against a real Jaeger.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// `{"data": [...], ...}`.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub data: T,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    #[serde(default)]
    pub processes: BTreeMap<String, Process>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub service_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub operation_name: String,
    /// Microseconds since the epoch.
    pub start_time: i64,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: TagValue,
}

/// A tag's value: Jaeger types them string, bool, int64 or float64.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum TagValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for TagValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagValue::Bool(b) => write!(f, "{b}"),
            TagValue::Int(i) => write!(f, "{i}"),
            TagValue::Float(x) => write!(f, "{x}"),
            TagValue::Text(s) => f.write_str(s),
        }
    }
}

/// A span event: Jaeger puts its name in the `event` field.
#[derive(Debug, Clone, Deserialize)]
pub struct Log {
    #[serde(default)]
    pub fields: Vec<Tag>,
}

fn find<'a>(tags: &'a [Tag], key: &str) -> Option<&'a TagValue> {
    tags.iter().find(|t| t.key == key).map(|t| &t.value)
}

impl Span {
    pub fn tag(&self, key: &str) -> Option<&TagValue> {
        find(&self.tags, key)
    }

    pub fn is_error(&self) -> bool {
        self.tag("error") == Some(&TagValue::Bool(true))
            || self
                .tag("otel.status_code")
                .is_some_and(|v| v.to_string() == "ERROR")
    }

    pub fn kind(&self) -> Option<String> {
        self.tag("span.kind").map(ToString::to_string)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_collectors_shape() {
        let text = r#"{"data": [{"traceID": "ab", "processes": {"p1": {"serviceName": "orders", "tags": []}},
            "spans": [{"traceID": "ab", "spanID": "01", "operationName": "POST /orders", "startTime": 5,
              "duration": 3, "processID": "p1", "references": [], "flags": 1, "warnings": null,
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
        assert_eq!(s.kind().as_deref(), Some("server"));
        assert_eq!(
            s.tag("http.response.status_code"),
            Some(&TagValue::Int(503))
        );
        let to = |v: &str| BTreeMap::from([("to".to_string(), v.to_string())]);
        assert!(s.has_event("circuit_breaker.state_change", &to("open")));
        assert!(!s.has_event("circuit_breaker.state_change", &to("closed")));
        assert!(!s.has_event("retry", &BTreeMap::new()));
    }
}
