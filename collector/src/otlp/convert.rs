//! OTLP protobuf types → the collector's model, validating each item on the way: an invalid
//! span is counted for `partial_success` and the valid rest goes on. Attributes are written
//! straight into JSON text (no intermediate map) because this runs for every span ingested.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::model::{
    Batch, CORRELATION_KEYS, LogRecord, Rejections, Resource, SpanId, SpanKind, SpanRecord,
    TraceId, UNKNOWN_SERVICE, hex, now_ns,
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
        let resource = Arc::new(resource(rs.resource.as_ref()));
        for ss in rs.scope_spans {
            let (scope_name, scope_version) =
                ss.scope.map(|s| (s.name, s.version)).unwrap_or_default();
            for span in ss.spans {
                let Some(trace_id) = trace_id(&span.trace_id) else {
                    out.rejected.add(if span.trace_id.len() == 16 {
                        "with an all-zero trace_id"
                    } else {
                        "with a trace_id that is not 16 bytes"
                    });
                    continue;
                };
                let Some(span_id) = span_id(&span.span_id) else {
                    out.rejected.add(if span.span_id.len() == 8 {
                        "with an all-zero span_id"
                    } else {
                        "with a span_id that is not 8 bytes"
                    });
                    continue;
                };
                let parent_span_id = match span.parent_span_id.len() {
                    0 => None,
                    8 => span_id_or_none(&span.parent_span_id),
                    _ => {
                        out.rejected
                            .add("with a parent_span_id that is not 8 bytes");
                        continue;
                    }
                };
                if span.end_time_unix_nano < span.start_time_unix_nano {
                    out.rejected.add("ending before they start");
                    continue;
                }
                let correlation_id = correlation_id(&span.attributes);
                let (status_code, status_message) =
                    span.status.map(|s| (s.code, s.message)).unwrap_or_default();
                out.batch.spans.push(SpanRecord {
                    trace_id,
                    span_id,
                    parent_span_id,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    name: span.name,
                    kind: SpanKind::from_i32(span.kind),
                    start_ns: clamp_ns(span.start_time_unix_nano),
                    end_ns: clamp_ns(span.end_time_unix_nano),
                    status_code,
                    status_message,
                    attributes: attributes_json(&span.attributes),
                    events: json(&Events(&span.events)),
                    links: json(&Links(&span.links)),
                    correlation_id,
                    trace_state: span.trace_state,
                    flags: span.flags,
                });
            }
        }
    }
    out
}

pub fn logs(req: ExportLogsServiceRequest) -> Converted {
    let mut out = Converted::default();
    let received = now_ns();
    for rl in req.resource_logs {
        let resource = Arc::new(resource(rl.resource.as_ref()));
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
                out.batch.logs.push(LogRecord {
                    time_ns,
                    observed_ns,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    severity_number: log.severity_number,
                    severity_text: log.severity_text,
                    body: body_text(log.body.as_ref()),
                    correlation_id: correlation_id(&log.attributes),
                    attributes: attributes_json(&log.attributes),
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

fn clamp_ns(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

fn trace_id(bytes: &[u8]) -> Option<TraceId> {
    let id: TraceId = bytes.try_into().ok()?;
    (id != [0; 16]).then_some(id)
}

fn span_id(bytes: &[u8]) -> Option<SpanId> {
    let id: SpanId = bytes.try_into().ok()?;
    (id != [0; 8]).then_some(id)
}

fn span_id_or_none(bytes: &[u8]) -> Option<SpanId> {
    span_id(bytes)
}

fn resource(r: Option<&ProtoResource>) -> Resource {
    let attrs: &[KeyValue] = r.map(|r| r.attributes.as_slice()).unwrap_or_default();
    let service = attrs
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| match &v.value {
            Some(any_value::Value::StringValue(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
    Resource {
        service,
        attributes: attributes_json(attrs),
    }
}

/// The first correlation attribute present, as text (non-string values are stringified).
pub fn correlation_id(attrs: &[KeyValue]) -> Option<String> {
    CORRELATION_KEYS.iter().find_map(|key| {
        let v = attrs.iter().find(|kv| kv.key == *key)?.value.as_ref()?;
        let s = match v.value.as_ref()? {
            any_value::Value::StringValue(s) => s.clone(),
            any_value::Value::IntValue(i) => i.to_string(),
            other => json(&Any(Some(other))),
        };
        (!s.is_empty()).then_some(s)
    })
}

fn body_text(body: Option<&AnyValue>) -> String {
    match body.and_then(|b| b.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(other) => json(&Any(Some(other))),
    }
}

pub fn attributes_json(attrs: &[KeyValue]) -> String {
    json(&Attrs(attrs))
}

fn json<T: Serialize>(value: &T) -> String {
    // Serializing these wrappers cannot fail: keys are strings, floats are checked below.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

struct Attrs<'a>(&'a [KeyValue]);
struct Any<'a>(Option<&'a any_value::Value>);
struct Events<'a>(&'a [opentelemetry_proto::tonic::trace::v1::span::Event]);
struct Links<'a>(&'a [opentelemetry_proto::tonic::trace::v1::span::Link]);

impl Serialize for Attrs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for kv in self.0 {
            map.serialize_entry(
                &kv.key,
                &Any(kv.value.as_ref().and_then(|v| v.value.as_ref())),
            )?;
        }
        map.end()
    }
}

impl Serialize for Any<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use any_value::Value as V;
        match self.0 {
            None | Some(V::StringValueStrindex(_)) => s.serialize_none(),
            Some(V::StringValue(v)) => s.serialize_str(v),
            Some(V::BoolValue(v)) => s.serialize_bool(*v),
            Some(V::IntValue(v)) => s.serialize_i64(*v),
            // JSON has no NaN/Infinity: keep them as the strings OTLP/JSON uses.
            Some(V::DoubleValue(v)) if !v.is_finite() => s.serialize_str(&v.to_string()),
            Some(V::DoubleValue(v)) => s.serialize_f64(*v),
            Some(V::BytesValue(v)) => {
                use base64::Engine;
                s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
            }
            Some(V::ArrayValue(a)) => {
                let mut seq = s.serialize_seq(Some(a.values.len()))?;
                for v in &a.values {
                    seq.serialize_element(&Any(v.value.as_ref()))?;
                }
                seq.end()
            }
            Some(V::KvlistValue(kv)) => Attrs(&kv.values).serialize(s),
        }
    }
}

impl Serialize for Events<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            seq.serialize_element(&serde_json::json!({
                "time_unix_nano": clamp_ns(e.time_unix_nano),
                "name": e.name,
                "attributes": serde_json::value::RawValue::from_string(attributes_json(&e.attributes)).ok(),
            }))?;
        }
        seq.end()
    }
}

impl Serialize for Links<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for l in self.0 {
            seq.serialize_element(&serde_json::json!({
                "trace_id": hex(&l.trace_id),
                "span_id": hex(&l.span_id),
                "attributes": serde_json::value::RawValue::from_string(attributes_json(&l.attributes)).ok(),
            }))?;
        }
        seq.end()
    }
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
    fn attributes_keep_their_types_as_json() {
        use any_value::Value as V;
        let attrs = vec![
            kv("s", V::StringValue("x".into())),
            kv("b", V::BoolValue(true)),
            kv("i", V::IntValue(-7)),
            kv("d", V::DoubleValue(1.5)),
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
        assert_eq!(
            attributes_json(&attrs),
            r#"{"s":"x","b":true,"i":-7,"d":1.5,"a":[1],"m":{"k":"v"}}"#
        );
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

    #[test]
    fn correlation_id_is_read_from_any_of_the_accepted_keys() {
        use any_value::Value as V;
        assert_eq!(
            correlation_id(&[kv("app.correlation_id", V::StringValue("c-1".into()))]),
            Some("c-1".into())
        );
        assert_eq!(
            correlation_id(&[
                kv("correlation.id", V::StringValue("second".into())),
                kv("correlation_id", V::StringValue("first".into())),
            ]),
            Some("first".into())
        );
        assert_eq!(
            correlation_id(&[kv("other", V::StringValue("x".into()))]),
            None
        );
    }
}
