//! Rows of the OpenTelemetry ClickHouse schema and their conversion to and from the
//! collector's model. Attribute values become text, as the OpenTelemetry Collector's exporter
//! writes them (a string as itself, anything else as its JSON), so a row reads the same
//! whoever wrote it; read back, every attribute value is a string.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::{
    self, CORRELATION_KEYS, Event, Link, LogRecord, Resource, SpanKind, SpanRecord, StatusCode,
    TraceId, hex,
};

/// An attribute map as the schema keeps it: every value as text.
pub type Attributes = Vec<(String, String)>;

/// One row of `otel_traces`, written and read.
#[derive(Debug, Clone, ::clickhouse::Row, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SpanRow {
    pub timestamp: i64,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub trace_state: String,
    pub span_name: String,
    pub span_kind: String,
    pub service_name: String,
    pub resource_attributes: Attributes,
    pub scope_name: String,
    pub scope_version: String,
    pub span_attributes: Attributes,
    pub duration: u64,
    pub status_code: String,
    pub status_message: String,
    #[serde(rename = "Events.Timestamp")]
    pub events_timestamp: Vec<i64>,
    #[serde(rename = "Events.Name")]
    pub events_name: Vec<String>,
    #[serde(rename = "Events.Attributes")]
    pub events_attributes: Vec<Attributes>,
    #[serde(rename = "Links.TraceId")]
    pub links_trace_id: Vec<String>,
    #[serde(rename = "Links.SpanId")]
    pub links_span_id: Vec<String>,
    #[serde(rename = "Links.TraceState")]
    pub links_trace_state: Vec<String>,
    #[serde(rename = "Links.Attributes")]
    pub links_attributes: Vec<Attributes>,
}

/// The columns of [`SpanRow`], for SELECTs (a `DateTime64(9)` reads as nanoseconds; no
/// column is renamed, so conditions on them see the columns, not aliases).
pub const SPAN_COLUMNS: &str = "Timestamp, TraceId, SpanId, ParentSpanId, TraceState, SpanName, \
    SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, \
    StatusCode, StatusMessage, `Events.Timestamp`, `Events.Name`, `Events.Attributes`, \
    `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`";

/// One row of `otel_logs` as Gauntlet writes it (`TimestampTime` is the table's default).
#[derive(Debug, Clone, ::clickhouse::Row, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogRow {
    pub timestamp: i64,
    pub trace_id: String,
    pub span_id: String,
    pub trace_flags: u8,
    pub severity_text: String,
    pub severity_number: u8,
    pub service_name: String,
    pub body: String,
    pub resource_schema_url: String,
    pub resource_attributes: Attributes,
    pub scope_schema_url: String,
    pub scope_name: String,
    pub scope_version: String,
    pub scope_attributes: Attributes,
    pub log_attributes: Attributes,
    pub event_name: String,
}

/// A log read back: [`LogRow`]'s columns (RowBinary has no nesting) and the ID that orders
/// logs of the same nanosecond.
#[derive(Debug, Clone, ::clickhouse::Row, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StoredLogRow {
    pub timestamp: i64,
    pub trace_id: String,
    pub span_id: String,
    pub trace_flags: u8,
    pub severity_text: String,
    pub severity_number: u8,
    pub service_name: String,
    pub body: String,
    pub resource_attributes: Attributes,
    pub scope_name: String,
    pub log_attributes: Attributes,
    pub event_name: String,
    pub log_id: i64,
}

impl StoredLogRow {
    pub fn split(self) -> (i64, LogRow) {
        (
            self.log_id,
            LogRow {
                timestamp: self.timestamp,
                trace_id: self.trace_id,
                span_id: self.span_id,
                trace_flags: self.trace_flags,
                severity_text: self.severity_text,
                severity_number: self.severity_number,
                service_name: self.service_name,
                body: self.body,
                resource_schema_url: String::new(),
                resource_attributes: self.resource_attributes,
                scope_schema_url: String::new(),
                scope_name: self.scope_name,
                scope_version: String::new(),
                scope_attributes: Vec::new(),
                log_attributes: self.log_attributes,
                event_name: self.event_name,
            },
        )
    }
}

/// A stable ID for a log row (ClickHouse has no row IDs): a hash of what it holds, so that
/// pages by `(time, id)` join up, whoever wrote the row.
pub const LOG_ID: &str = "toInt64(bitShiftRight(cityHash64(Timestamp, TraceId, SpanId, \
    ServiceName, Body, SeverityNumber, toString(LogAttributes)), 1))";

pub const LOG_COLUMNS: &str = "Timestamp, TraceId, SpanId, TraceFlags, SeverityText, \
    SeverityNumber, ServiceName, Body, ResourceAttributes, ScopeName, LogAttributes, EventName";

/// The exporter's names for span kinds and status codes (the protocol's enum names).
pub fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

/// A kind as written by any exporter version: `SPAN_KIND_SERVER` or `Server`.
pub fn parse_kind(name: &str) -> SpanKind {
    let short = name.strip_prefix("SPAN_KIND_").unwrap_or(name);
    match short.to_ascii_uppercase().as_str() {
        "INTERNAL" => SpanKind::Internal,
        "SERVER" => SpanKind::Server,
        "CLIENT" => SpanKind::Client,
        "PRODUCER" => SpanKind::Producer,
        "CONSUMER" => SpanKind::Consumer,
        _ => SpanKind::Unspecified,
    }
}

/// Every name a kind has been written as, for `IN (...)` filters.
pub fn kind_names(kind: SpanKind) -> [String; 2] {
    let long = kind_name(kind);
    let short = long.trim_start_matches("SPAN_KIND_");
    let mut pretty = short.to_ascii_lowercase();
    if let Some(first) = pretty.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    [long.to_string(), pretty]
}

pub fn status_name(code: StatusCode) -> &'static str {
    status_names(code)[0]
}

/// A status as written by any exporter version: `STATUS_CODE_ERROR` or `Error`.
pub fn parse_status(name: &str) -> StatusCode {
    StatusCode::from_name(name.strip_prefix("STATUS_CODE_").unwrap_or(name)).unwrap_or_default()
}

/// The names a status code has been written as.
pub fn status_names(code: StatusCode) -> [&'static str; 2] {
    match code {
        StatusCode::Ok => ["STATUS_CODE_OK", "Ok"],
        StatusCode::Error => ["STATUS_CODE_ERROR", "Error"],
        StatusCode::Unset => ["STATUS_CODE_UNSET", "Unset"],
    }
}

/// The model's attributes as the schema's map, in their order: strings as they are, other
/// values as their JSON.
pub fn to_map(attributes: &model::Attributes) -> Attributes {
    attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.text().into_owned()))
        .collect()
}

/// The schema's map as the model's attributes: every value a string.
pub fn from_map(map: Attributes) -> model::Attributes {
    map.into_iter().collect()
}

/// The first correlation attribute present, as ingest picks it.
pub fn correlation_of(map: &Attributes) -> Option<String> {
    CORRELATION_KEYS.iter().find_map(|key| {
        map.iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
    })
}

/// The map with the record's correlation ID in it (under `correlation_id`) when none of the
/// correlation keys holds it: ClickHouse keeps correlation IDs in the attribute maps.
fn with_correlation(mut map: Attributes, correlation: &Option<String>) -> Attributes {
    if let Some(id) = correlation
        && correlation_of(&map).is_none()
    {
        map.push((CORRELATION_KEYS[0].to_string(), id.clone()));
    }
    map
}

pub fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    const_hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

impl SpanRow {
    pub fn from_record(s: &SpanRecord) -> Self {
        Self {
            timestamp: s.start_ns,
            trace_id: hex(&s.trace_id),
            span_id: hex(&s.span_id),
            parent_span_id: s.parent_span_id.map(|p| hex(&p)).unwrap_or_default(),
            trace_state: s.trace_state.clone(),
            span_name: s.name.clone(),
            span_kind: kind_name(s.kind).to_string(),
            service_name: s.resource.service.clone(),
            resource_attributes: to_map(&s.resource.attributes),
            scope_name: s.scope_name.to_string(),
            scope_version: s.scope_version.to_string(),
            span_attributes: with_correlation(to_map(&s.attributes), &s.correlation_id),
            duration: u64::try_from(s.duration_ns()).unwrap_or(0),
            status_code: status_name(s.status_code).to_string(),
            status_message: s.status_message.clone(),
            events_timestamp: s.events.iter().map(|e| e.time_ns).collect(),
            events_name: s.events.iter().map(|e| e.name.clone()).collect(),
            events_attributes: s.events.iter().map(|e| to_map(&e.attributes)).collect(),
            links_trace_id: s.links.iter().map(|l| hex(&l.trace_id)).collect(),
            links_span_id: s.links.iter().map(|l| hex(&l.span_id)).collect(),
            links_trace_state: s.links.iter().map(|l| l.trace_state.clone()).collect(),
            links_attributes: s.links.iter().map(|l| to_map(&l.attributes)).collect(),
        }
    }

    /// The record, or `None` for a row whose IDs are not hex of the right length. The
    /// nested columns are parallel arrays; a short one reads as empty values, and a link whose
    /// IDs do not parse is left out.
    pub fn into_record(self, resources: &mut ResourceCache) -> Option<SpanRecord> {
        let trace_id: TraceId = parse_hex(&self.trace_id)?;
        let span_id = parse_hex(&self.span_id)?;
        let parent_span_id = match self.parent_span_id.as_str() {
            "" => None,
            p => Some(parse_hex(p)?),
        };
        let mut event_times = self.events_timestamp.into_iter();
        let mut event_attrs = self.events_attributes.into_iter();
        let events = self
            .events_name
            .into_iter()
            .map(|name| Event {
                time_ns: event_times.next().unwrap_or(0),
                name,
                attributes: from_map(event_attrs.next().unwrap_or_default()),
            })
            .collect();
        let mut span_ids = self.links_span_id.into_iter();
        let mut states = self.links_trace_state.into_iter();
        let mut link_attrs = self.links_attributes.into_iter();
        let links = self
            .links_trace_id
            .into_iter()
            .filter_map(|trace| {
                let (span, state, attrs) = (span_ids.next(), states.next(), link_attrs.next());
                Some(Link {
                    trace_id: parse_hex(&trace)?,
                    span_id: parse_hex(&span?)?,
                    trace_state: state.unwrap_or_default(),
                    attributes: from_map(attrs.unwrap_or_default()),
                })
            })
            .collect();
        let correlation_id = correlation_of(&self.span_attributes);
        Some(SpanRecord {
            trace_id,
            span_id,
            parent_span_id,
            resource: resources.get(self.service_name, &self.resource_attributes),
            scope_name: self.scope_name.into(),
            scope_version: self.scope_version.into(),
            name: self.span_name,
            kind: parse_kind(&self.span_kind),
            start_ns: self.timestamp,
            end_ns: self
                .timestamp
                .saturating_add(i64::try_from(self.duration).unwrap_or(i64::MAX)),
            status_code: parse_status(&self.status_code),
            status_message: self.status_message,
            attributes: from_map(self.span_attributes),
            events,
            links,
            correlation_id,
            trace_state: self.trace_state,
            flags: 1,
        })
    }
}

impl LogRow {
    pub fn from_record(l: &LogRecord) -> Self {
        Self {
            timestamp: l.time_ns,
            trace_id: l.trace_id.map(|t| hex(&t)).unwrap_or_default(),
            span_id: l.span_id.map(|s| hex(&s)).unwrap_or_default(),
            trace_flags: (l.flags & 0xff) as u8,
            severity_text: l.severity_text.clone(),
            severity_number: u8::try_from(l.severity_number.clamp(0, 255)).unwrap_or(0),
            service_name: l.resource.service.clone(),
            body: l.body.clone(),
            resource_schema_url: String::new(),
            resource_attributes: to_map(&l.resource.attributes),
            scope_schema_url: String::new(),
            scope_name: l.scope_name.clone(),
            scope_version: String::new(),
            scope_attributes: Vec::new(),
            log_attributes: with_correlation(to_map(&l.attributes), &l.correlation_id),
            event_name: l.event_name.clone(),
        }
    }

    pub fn into_record(self, resources: &mut ResourceCache) -> LogRecord {
        let correlation_id = correlation_of(&self.log_attributes);
        LogRecord {
            time_ns: self.timestamp,
            // The schema keeps no observed time.
            observed_ns: self.timestamp,
            resource: resources.get(self.service_name, &self.resource_attributes),
            scope_name: self.scope_name,
            severity_number: i32::from(self.severity_number),
            severity_text: self.severity_text,
            body: self.body,
            attributes: from_map(self.log_attributes),
            trace_id: parse_hex(&self.trace_id),
            span_id: parse_hex(&self.span_id),
            correlation_id,
            flags: u32::from(self.trace_flags),
            event_name: self.event_name,
        }
    }
}

/// Shares one `Resource` among the rows of an answer that have the same one.
#[derive(Default)]
pub struct ResourceCache(HashMap<(String, Attributes), Arc<Resource>>);

impl ResourceCache {
    pub fn get(&mut self, service: String, attributes: &Attributes) -> Arc<Resource> {
        self.0
            .entry((service.clone(), attributes.clone()))
            .or_insert_with(|| {
                Arc::new(Resource {
                    service,
                    attributes: from_map(attributes.clone()),
                })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_become_text_as_the_exporter_writes_them() {
        let typed =
            model::Attributes::from_json(r#"{"s":"x","n":1,"b":true,"a":[1,"two"],"f":1.5}"#)
                .unwrap_or_default();
        let map = to_map(&typed);
        assert_eq!(
            map,
            [
                ("s".into(), "x".into()),
                ("n".into(), "1".into()),
                ("b".into(), "true".into()),
                ("a".into(), r#"[1,"two"]"#.into()),
                ("f".into(), "1.5".into()),
            ]
        );
        let back = from_map(map);
        assert_eq!(
            back.get("n"),
            Some(&model::Value::from("1")),
            "read back as text"
        );
        assert_eq!(back.len(), 5);
    }

    #[test]
    fn kinds_and_statuses_read_in_either_spelling() {
        for kind in [SpanKind::Server, SpanKind::Consumer, SpanKind::Internal] {
            let [long, short] = kind_names(kind);
            assert_eq!(parse_kind(&long), kind);
            assert_eq!(parse_kind(&short), kind);
        }
        assert_eq!(kind_names(SpanKind::Server)[1], "Server");
        assert_eq!(parse_status("STATUS_CODE_ERROR"), StatusCode::Error);
        assert_eq!(parse_status("Ok"), StatusCode::Ok);
        assert_eq!(parse_status("whatever"), StatusCode::Unset);
    }

    #[test]
    fn a_correlation_id_lives_in_the_attributes() {
        let mut map: Attributes = vec![("a".into(), "1".into())];
        map = with_correlation(map, &Some("c-9".into()));
        assert_eq!(correlation_of(&map).as_deref(), Some("c-9"));
        let kept = with_correlation(
            vec![("correlation.id".into(), "c-1".into())],
            &Some("c-1".into()),
        );
        assert_eq!(kept.len(), 1, "not added twice");
    }
}
