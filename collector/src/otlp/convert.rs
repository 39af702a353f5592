//! OTLP protobuf types → the collector's model, validating each item on the way: an invalid
//! span is counted for `partial_success` and the valid rest goes on. The request is consumed:
//! names and values move into the model rather than being copied.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::span;

use crate::model::{
    Attributes, Batch, Event, Link, LogRecord, Rejections, Resource, SpanId, SpanKind, SpanRecord,
    StatusCode, TraceId, UNKNOWN_SERVICE, Value, now_ns,
};

/// Spans (or logs) of one request: what to store and what was rejected.
#[derive(Debug, Default)]
pub struct Converted {
    pub batch: Batch,
    pub rejected: Rejections,
}

pub fn traces(req: ExportTraceServiceRequest) -> Converted {
    let mut out = Converted::default();
    for rs in req.resource_spans {
        let resource = Arc::new(resource(rs.resource));
        for ss in rs.scope_spans {
            let scope = ss
                .scope
                .map(|s| (s.name.into(), s.version.into()))
                .unwrap_or_else(|| ("".into(), "".into()));
            for span in ss.spans {
                let status = span.status.unwrap_or_default();
                out.push_span(
                    &resource,
                    &scope,
                    SpanParts {
                        trace_id: &span.trace_id,
                        span_id: &span.span_id,
                        parent_span_id: &span.parent_span_id,
                        name: span.name,
                        kind: span.kind,
                        start_ns: span.start_time_unix_nano,
                        end_ns: span.end_time_unix_nano,
                        status_code: status.code,
                        status_message: status.message,
                        attributes: attributes(span.attributes),
                        events: span.events.into_iter().map(event).collect(),
                        links: span.links.into_iter().filter_map(link).collect(),
                        trace_state: span.trace_state,
                        flags: span.flags,
                    },
                );
            }
        }
    }
    out
}

/// One span as a decoder read it: the IDs still as the request's bytes (checked here), the
/// rest already the model's.
#[derive(Default)]
pub(super) struct SpanParts<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub name: String,
    pub kind: i32,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status_code: i32,
    pub status_message: String,
    pub attributes: Attributes,
    pub events: Vec<Event>,
    pub links: Vec<Link>,
    pub trace_state: String,
    pub flags: u32,
}

impl Converted {
    /// Checks a decoded span and keeps it, or counts why not: the one rule both OTLP
    /// decoders (`prost`'s structs here, the request's bytes in `trace_decode`) apply.
    pub(super) fn push_span(
        &mut self,
        resource: &Arc<Resource>,
        (scope_name, scope_version): &(Arc<str>, Arc<str>),
        span: SpanParts<'_>,
    ) {
        let Some(trace_id) = trace_id(span.trace_id) else {
            self.rejected.add(if span.trace_id.len() == 16 {
                "with an all-zero trace_id"
            } else {
                "with a trace_id that is not 16 bytes"
            });
            return;
        };
        let Some(span_id) = span_id(span.span_id) else {
            self.rejected.add(if span.span_id.len() == 8 {
                "with an all-zero span_id"
            } else {
                "with a span_id that is not 8 bytes"
            });
            return;
        };
        let parent_span_id = match span.parent_span_id.len() {
            0 => None,
            8 => span_id_or_none(span.parent_span_id),
            _ => {
                self.rejected
                    .add("with a parent_span_id that is not 8 bytes");
                return;
            }
        };
        if span.end_ns < span.start_ns {
            self.rejected.add("ending before they start");
            return;
        }
        self.batch.spans.push(SpanRecord {
            trace_id,
            span_id,
            parent_span_id,
            resource: resource.clone(),
            scope_name: scope_name.clone(),
            scope_version: scope_version.clone(),
            name: span.name,
            kind: SpanKind::from_i32(span.kind),
            start_ns: clamp_ns(span.start_ns),
            end_ns: clamp_ns(span.end_ns),
            status_code: StatusCode::from_i32(span.status_code),
            status_message: span.status_message,
            correlation_id: span.attributes.correlation_id(),
            attributes: span.attributes,
            events: span.events,
            links: span.links,
            trace_state: span.trace_state,
            flags: span.flags,
        });
    }
}

pub fn logs(req: ExportLogsServiceRequest) -> Converted {
    let mut out = Converted::default();
    let received = now_ns();
    for rl in req.resource_logs {
        let resource = Arc::new(resource(rl.resource));
        for sl in rl.scope_logs {
            let scope_name = sl.scope.map(|s| s.name).unwrap_or_default();
            for log in sl.log_records {
                // The spec: an absent or invalid trace/span ID means "not associated with a
                // trace", not a bad record; a wrong length is a broken sender, so reject that.
                if !matches!(log.trace_id.len(), 0 | 16) {
                    out.rejected.add("with a trace_id that is not 16 bytes");
                    continue;
                }
                if !matches!(log.span_id.len(), 0 | 8) {
                    out.rejected.add("with a span_id that is not 8 bytes");
                    continue;
                }
                let observed_ns = match clamp_ns(log.observed_time_unix_nano) {
                    0 => received,
                    t => t,
                };
                let time_ns = match clamp_ns(log.time_unix_nano) {
                    0 => observed_ns,
                    t => t,
                };
                let attributes = attributes(log.attributes);
                out.batch.logs.push(LogRecord {
                    time_ns,
                    observed_ns,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    severity_number: log.severity_number,
                    severity_text: log.severity_text,
                    body: body_text(log.body),
                    correlation_id: attributes.correlation_id(),
                    attributes,
                    trace_id: trace_id(&log.trace_id),
                    span_id: span_id_or_none(&log.span_id),
                    flags: log.flags,
                    event_name: log.event_name,
                });
            }
        }
    }
    out
}

pub(super) fn clamp_ns(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

pub(super) fn trace_id(bytes: &[u8]) -> Option<TraceId> {
    let id: TraceId = bytes.try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

pub(super) fn span_id(bytes: &[u8]) -> Option<SpanId> {
    let id: SpanId = bytes.try_into().ok()?;
    (id != [0; 8]).then_some(id)
}

fn span_id_or_none(bytes: &[u8]) -> Option<SpanId> {
    span_id(bytes)
}

pub(super) fn resource(r: Option<ProtoResource>) -> Resource {
    resource_of(attributes(r.map(|r| r.attributes).unwrap_or_default()))
}

/// A resource of these attributes: its service is `service.name`'s string, or
/// [`UNKNOWN_SERVICE`].
pub(super) fn resource_of(attributes: Attributes) -> Resource {
    let service = match attributes.get("service.name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => UNKNOWN_SERVICE.to_string(),
    };
    Resource {
        service,
        attributes,
    }
}

/// A list of OTLP key-values as the model's attributes, in their order (a repeated key once,
/// with its last value).
pub fn attributes(kvs: Vec<KeyValue>) -> Attributes {
    Attributes::deduplicated(
        kvs.into_iter()
            .map(|kv| (kv.key.into(), any(kv.value)))
            .collect(),
    )
}

fn any(v: Option<AnyValue>) -> Value {
    use any_value::Value as V;
    match v.and_then(|v| v.value) {
        // A string-table index only means something inside a profile; it is no value here.
        None | Some(V::StringValueStrindex(_)) => Value::Empty,
        Some(V::StringValue(s)) => Value::String(s),
        Some(V::BoolValue(b)) => Value::Bool(b),
        Some(V::IntValue(i)) => Value::Int(i),
        Some(V::DoubleValue(d)) => Value::Double(d),
        Some(V::BytesValue(b)) => Value::Bytes(b),
        Some(V::ArrayValue(a)) => {
            Value::Array(a.values.into_iter().map(|v| any(Some(v))).collect())
        }
        Some(V::KvlistValue(kv)) => Value::Map(attributes(kv.values)),
    }
}

fn body_text(body: Option<AnyValue>) -> String {
    match any(body) {
        Value::Empty => String::new(),
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn event(e: span::Event) -> Event {
    Event {
        time_ns: clamp_ns(e.time_unix_nano),
        name: e.name,
        attributes: attributes(e.attributes),
    }
}

/// A link, or `None` when its IDs are not a valid trace and span ID: such a link points
/// nowhere, and the span is kept without it.
fn link(l: span::Link) -> Option<Link> {
    Some(Link {
        trace_id: trace_id(&l.trace_id)?,
        span_id: span_id(&l.span_id)?,
        trace_state: l.trace_state,
        attributes: attributes(l.attributes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn span(trace: Vec<u8>, id: Vec<u8>, start: u64, end: u64) -> Span {
        Span {
            trace_id: trace,
            span_id: id,
            name: "op".into(),
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            ..Default::default()
        }
    }

    #[test]
    fn attributes_keep_their_kinds_and_order() {
        use any_value::Value as V;
        let attrs = vec![
            kv("s", V::StringValue("x".into())),
            kv("b", V::BoolValue(true)),
            kv("i", V::IntValue(-7)),
            kv("d", V::DoubleValue(1.5)),
            kv("y", V::BytesValue(vec![1, 2])),
            kv(
                "a",
                V::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(V::IntValue(1)),
                    }],
                }),
            ),
            kv(
                "m",
                V::KvlistValue(KeyValueList {
                    values: vec![kv("k", V::StringValue("v".into()))],
                }),
            ),
        ];
        let mut map = Attributes::new();
        map.push("k", "v");
        let expected: Attributes = [
            ("s", Value::from("x")),
            ("b", Value::Bool(true)),
            ("i", Value::Int(-7)),
            ("d", Value::Double(1.5)),
            ("y", Value::Bytes(vec![1, 2])),
            ("a", Value::Array(vec![Value::Int(1)])),
            ("m", Value::Map(map)),
        ]
        .into_iter()
        .collect();
        assert_eq!(attributes(attrs), expected);
    }

    #[test]
    fn events_links_and_status_are_typed_and_links_to_nowhere_dropped() {
        use opentelemetry_proto::tonic::trace::v1::Status;
        let mut s = span(vec![1; 16], vec![2; 8], 10, 20);
        s.status = Some(Status {
            code: 2,
            message: "boom".into(),
        });
        s.events = vec![span::Event {
            time_unix_nano: 15,
            name: "retry".into(),
            attributes: vec![kv("attempt", any_value::Value::IntValue(2))],
            ..Default::default()
        }];
        let link = |trace: Vec<u8>| span::Link {
            trace_id: trace,
            span_id: vec![3; 8],
            trace_state: "k=v".into(),
            ..Default::default()
        };
        s.links = vec![link(vec![4; 16]), link(vec![4; 3])];
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![s],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let out = traces(req);
        let got = &out.batch.spans[0];
        assert_eq!(got.status_code, StatusCode::Error);
        assert_eq!(got.status_message, "boom");
        assert_eq!(got.events.len(), 1);
        assert_eq!(got.events[0].time_ns, 15);
        assert_eq!(
            got.events[0].attributes.get("attempt"),
            Some(&Value::Int(2))
        );
        assert_eq!(
            got.links.len(),
            1,
            "the link with a 3-byte trace ID is dropped"
        );
        assert_eq!(got.links[0].trace_id, [4; 16]);
        assert_eq!(got.links[0].trace_state, "k=v");
    }

    #[test]
    fn invalid_spans_are_counted_and_the_rest_kept() {
        let good = span(vec![1; 16], vec![2; 8], 10, 20);
        let zero_trace = span(vec![0; 16], vec![2; 8], 10, 20);
        let short_span = span(vec![1; 16], vec![2; 4], 10, 20);
        let backwards = span(vec![1; 16], vec![3; 8], 20, 10);
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![good, zero_trace, short_span, backwards],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let out = traces(req);
        assert_eq!(out.batch.spans.len(), 1);
        assert_eq!(out.rejected.count, 3);
        assert_eq!(out.batch.spans[0].resource.service, UNKNOWN_SERVICE);
        assert!(
            out.rejected
                .message("spans")
                .contains("1 ending before they start")
        );
    }
}
