//! OTLP trace exports in protobuf decoded straight from the request's bytes into the model.
//!
//! `prost` would first build `opentelemetry-proto`'s owned structs (a `String` and a `Vec`
//! per attribute, an `Option<AnyValue>` per value) that [`super::convert`] then takes apart;
//! here each string is copied once, into the model, and nothing is built to be thrown away;
//! an attribute key, which every span of an export repeats, once per request (`Keys`), and
//! a scope's name and version once per scope.
//! No crate offers this for OTLP: `prost` decodes into owned types only, and the borrowing
//! protobuf crates need their own code generation from the `.proto` files; the few messages
//! of a trace export are written out by hand over [`super::wire`].
//!
//! The result is the one `convert::traces(prost's decode)` gives for every body, accepted or
//! refused alike, prost's merge rules included (a message field sent twice is merged, a
//! scalar's last value wins, `AnyValue`'s array or list sent twice is extended): the
//! `otlp_traces` fuzz target compares the two on every input, and its corpus is replayed on
//! stable. Fields may come in any order: a resource or scope after its spans still applies
//! to them.

use std::collections::HashMap;
use std::sync::Arc;

use super::convert::{Converted, SpanParts, clamp_ns, resource_of, span_id, trace_id};
use super::wire::{Message, WireError};
use crate::model::{Attributes, Event, Key, Link, Resource, Value};

/// An `ExportTraceServiceRequest`'s bytes as the model's spans, and what was rejected.
pub fn traces(body: &[u8]) -> Result<Converted, WireError> {
    let mut out = Converted::default();
    let mut keys = Keys::default();
    let mut req = Message::new(body);
    while let Some((n, f)) = req.next_field()? {
        match n {
            1 => resource_spans(req.nested(n, f)?, &mut keys, &mut out)?,
            _ => req.skip(n, f)?,
        }
    }
    Ok(out)
}

/// The attribute keys of one request, each allocated once and shared by every span that
/// carries it: an export repeats the same few keys on each of its spans. At most one entry
/// per distinct key the body holds, so bounded by its size. Found by its bytes: only a key
/// seen for the first time is checked for UTF-8.
#[derive(Default)]
struct Keys<'a>(HashMap<&'a [u8], Key, foldhash::fast::RandomState>);

impl<'a> Keys<'a> {
    fn get(&mut self, key: &'a [u8]) -> Result<Key, WireError> {
        if let Some(shared) = self.0.get(key) {
            return Ok(shared.clone());
        }
        let shared = Key::from(std::str::from_utf8(key).map_err(|_| WireError::BadUtf8)?);
        self.0.insert(key, shared.clone());
        Ok(shared)
    }
}

fn resource_spans<'a>(
    mut msg: Message<'a>,
    keys: &mut Keys<'a>,
    out: &mut Converted,
) -> Result<(), WireError> {
    let mut attributes = Vec::new();
    let mut scopes = Vec::new();
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => resource(msg.nested(n, f)?, keys, &mut attributes)?,
            2 => scopes.push(msg.nested(n, f)?),
            3 => {
                f.str(n)?;
            }
            _ => msg.skip(n, f)?,
        }
    }
    let resource = Arc::new(resource_of(Attributes::deduplicated(attributes)));
    for scope in scopes {
        scope_spans(scope, keys, &resource, out)?;
    }
    Ok(())
}

/// A `Resource`: its attributes added to `attributes` (a second `resource` field merges).
fn resource<'a>(
    mut msg: Message<'a>,
    keys: &mut Keys<'a>,
    attributes: &mut Vec<(Key, Value)>,
) -> Result<(), WireError> {
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => attributes.push(key_value(msg.nested(n, f)?, keys)?),
            2 => {
                f.varint(n)?;
            }
            3 => entity_ref(msg.nested(n, f)?)?,
            _ => msg.skip(n, f)?,
        }
    }
    Ok(())
}

/// An `EntityRef`: nothing the model keeps, but checked as prost checks it.
fn entity_ref(mut msg: Message<'_>) -> Result<(), WireError> {
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1..=4 => {
                f.str(n)?;
            }
            _ => msg.skip(n, f)?,
        }
    }
    Ok(())
}

fn scope_spans<'a>(
    mut msg: Message<'a>,
    keys: &mut Keys<'a>,
    resource: &Arc<Resource>,
    out: &mut Converted,
) -> Result<(), WireError> {
    let (mut name, mut version) = ("", "");
    let mut spans = Vec::new();
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => scope(msg.nested(n, f)?, keys, &mut name, &mut version)?,
            2 => spans.push(msg.nested(n, f)?),
            3 => {
                f.str(n)?;
            }
            _ => msg.skip(n, f)?,
        }
    }
    let scope = (name.into(), version.into());
    // Room for the scope's spans at once, rather than the list doubling (and every span,
    // hundreds of bytes, moved) nine times over an export of 512.
    out.batch.spans.reserve(spans.len());
    // One list reused while a span's attributes are read, then copied out at their size.
    let mut scratch = Vec::new();
    for span in spans {
        out.push_span(resource, &scope, self::span(span, keys, &mut scratch)?);
    }
    Ok(())
}

/// An `InstrumentationScope`'s name and version (its attributes are checked, not kept).
fn scope<'a>(
    mut msg: Message<'a>,
    keys: &mut Keys<'a>,
    name: &mut &'a str,
    version: &mut &'a str,
) -> Result<(), WireError> {
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => *name = f.str(n)?,
            2 => *version = f.str(n)?,
            3 => {
                key_value(msg.nested(n, f)?, keys)?;
            }
            4 => {
                f.varint(n)?;
            }
            _ => msg.skip(n, f)?,
        }
    }
    Ok(())
}

fn span<'a>(
    mut msg: Message<'a>,
    keys: &mut Keys<'a>,
    attributes: &mut Vec<(Key, Value)>,
) -> Result<SpanParts<'a>, WireError> {
    let mut s = SpanParts::default();
    let (mut name, mut trace_state, mut status_message) = ("", "", "");
    attributes.clear();
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => s.trace_id = f.bytes(n)?,
            2 => s.span_id = f.bytes(n)?,
            3 => trace_state = f.str(n)?,
            4 => s.parent_span_id = f.bytes(n)?,
            5 => name = f.str(n)?,
            6 => s.kind = f.int32(n)?,
            7 => s.start_ns = f.fixed64(n)?,
            8 => s.end_ns = f.fixed64(n)?,
            9 => attributes.push(key_value(msg.nested(n, f)?, keys)?),
            10 | 12 | 14 => {
                f.varint(n)?;
            }
            11 => s.events.push(event(msg.nested(n, f)?, keys)?),
            13 => {
                if let Some(link) = link(msg.nested(n, f)?, keys)? {
                    s.links.push(link);
                }
            }
            15 => status(msg.nested(n, f)?, &mut s.status_code, &mut status_message)?,
            16 => s.flags = f.fixed32(n)?,
            _ => msg.skip(n, f)?,
        }
    }
    s.name = name.to_owned();
    s.trace_state = trace_state.to_owned();
    s.status_message = status_message.to_owned();
    // Moved out into a list of their own size; the scratch keeps its capacity.
    let mut pairs = Vec::with_capacity(attributes.len());
    pairs.append(attributes);
    s.attributes = Attributes::deduplicated(pairs);
    Ok(s)
}

/// A `Status`, merged into what earlier `status` fields of the span set.
fn status<'a>(
    mut msg: Message<'a>,
    code: &mut i32,
    message: &mut &'a str,
) -> Result<(), WireError> {
    while let Some((n, f)) = msg.next_field()? {
        match n {
            2 => *message = f.str(n)?,
            3 => *code = f.int32(n)?,
            _ => msg.skip(n, f)?,
        }
    }
    Ok(())
}

fn event<'a>(mut msg: Message<'a>, keys: &mut Keys<'a>) -> Result<Event, WireError> {
    let (mut time, mut name) = (0, "");
    let mut attributes = Vec::new();
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => time = f.fixed64(n)?,
            2 => name = f.str(n)?,
            3 => attributes.push(key_value(msg.nested(n, f)?, keys)?),
            4 => {
                f.varint(n)?;
            }
            _ => msg.skip(n, f)?,
        }
    }
    Ok(Event {
        time_ns: clamp_ns(time),
        name: name.to_owned(),
        attributes: Attributes::deduplicated(attributes),
    })
}

/// A link, or `None` when its IDs are no valid trace and span ID (as `convert` has it).
fn link<'a>(mut msg: Message<'a>, keys: &mut Keys<'a>) -> Result<Option<Link>, WireError> {
    let (mut trace, mut span, mut trace_state): (&[u8], &[u8], &str) = (&[], &[], "");
    let mut attributes = Vec::new();
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => trace = f.bytes(n)?,
            2 => span = f.bytes(n)?,
            3 => trace_state = f.str(n)?,
            4 => attributes.push(key_value(msg.nested(n, f)?, keys)?),
            5 => {
                f.varint(n)?;
            }
            6 => {
                f.fixed32(n)?;
            }
            _ => msg.skip(n, f)?,
        }
    }
    let (Some(trace_id), Some(span_id)) = (trace_id(trace), span_id(span)) else {
        return Ok(None);
    };
    Ok(Some(Link {
        trace_id,
        span_id,
        trace_state: trace_state.to_owned(),
        attributes: Attributes::deduplicated(attributes),
    }))
}

fn key_value<'a>(mut msg: Message<'a>, keys: &mut Keys<'a>) -> Result<(Key, Value), WireError> {
    let mut key: &[u8] = &[];
    let mut value = Any::Unset;
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => key = f.bytes(n)?,
            2 => any_value(msg.nested(n, f)?, keys, &mut value)?,
            3 => {
                f.int32(n)?;
            }
            _ => msg.skip(n, f)?,
        }
    }
    Ok((keys.get(key)?, value.finish()))
}

/// An `AnyValue` as it is being read: strings and bytes still borrowed, lists still raw.
enum Any<'a> {
    /// No value, or a string-table index (which only means something inside a profile).
    Unset,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(Vec<Value>),
    Map(Vec<(Key, Value)>),
}

impl Any<'_> {
    fn finish(self) -> Value {
        match self {
            Self::Unset => Value::Empty,
            Self::Str(s) => Value::String(s.to_owned()),
            Self::Bool(b) => Value::Bool(b),
            Self::Int(i) => Value::Int(i),
            Self::Double(d) => Value::Double(d),
            Self::Bytes(b) => Value::Bytes(b.to_vec()),
            Self::Array(values) => Value::Array(values),
            Self::Map(pairs) => Value::Map(Attributes::deduplicated(pairs)),
        }
    }
}

/// An `AnyValue` merged into `value`: the oneof's last field wins, except that an array or
/// list following one of its own kind extends it (prost's merge of a message variant).
fn any_value<'a>(
    mut msg: Message<'a>,
    keys: &mut Keys<'a>,
    value: &mut Any<'a>,
) -> Result<(), WireError> {
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => *value = Any::Str(f.str(n)?),
            2 => *value = Any::Bool(f.varint(n)? != 0),
            3 => *value = Any::Int(f.varint(n)? as i64),
            4 => *value = Any::Double(f64::from_bits(f.fixed64(n)?)),
            5 => {
                let inner = msg.nested(n, f)?;
                if !matches!(value, Any::Array(_)) {
                    *value = Any::Array(Vec::new());
                }
                if let Any::Array(values) = value {
                    array(inner, keys, values)?;
                }
            }
            6 => {
                let inner = msg.nested(n, f)?;
                if !matches!(value, Any::Map(_)) {
                    *value = Any::Map(Vec::new());
                }
                if let Any::Map(pairs) = value {
                    key_value_list(inner, keys, pairs)?;
                }
            }
            7 => *value = Any::Bytes(f.bytes(n)?),
            8 => {
                f.int32(n)?;
                *value = Any::Unset;
            }
            _ => msg.skip(n, f)?,
        }
    }
    Ok(())
}

fn array<'a>(
    mut msg: Message<'a>,
    keys: &mut Keys<'a>,
    values: &mut Vec<Value>,
) -> Result<(), WireError> {
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => {
                let mut value = Any::Unset;
                any_value(msg.nested(n, f)?, keys, &mut value)?;
                values.push(value.finish());
            }
            _ => msg.skip(n, f)?,
        }
    }
    Ok(())
}

fn key_value_list<'a>(
    mut msg: Message<'a>,
    keys: &mut Keys<'a>,
    pairs: &mut Vec<(Key, Value)>,
) -> Result<(), WireError> {
    while let Some((n, f)) = msg.next_field()? {
        match n {
            1 => pairs.push(key_value(msg.nested(n, f)?, keys)?),
            _ => msg.skip(n, f)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::wire::Field;
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
    use prost::Message as _;

    /// Both decoders' answers for one body, in a form that compares NaNs too.
    fn both(body: &[u8]) -> (String, String) {
        let direct = traces(body).map(|c| format!("{:?} {:?}", c.batch.spans, c.rejected));
        let prost = ExportTraceServiceRequest::decode(body)
            .map(super::super::convert::traces)
            .map(|c| format!("{:?} {:?}", c.batch.spans, c.rejected));
        (
            format!("{:?}", direct.map_err(|_| "error")),
            format!("{:?}", prost.map_err(|_| "error")),
        )
    }

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn request() -> ExportTraceServiceRequest {
        use any_value::Value as V;
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            parent_span_id: vec![3; 8],
            name: "GET /orders".into(),
            kind: 2,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: vec![
                kv("correlation_id", V::StringValue("order-7".into())),
                kv("n", V::IntValue(-3)),
                kv("d", V::DoubleValue(f64::NAN)),
                kv("n", V::IntValue(4)),
                kv(
                    "a",
                    V::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(V::BytesValue(vec![9])),
                        }],
                    }),
                ),
            ],
            events: vec![span::Event {
                time_unix_nano: 15,
                name: "retry".into(),
                ..Default::default()
            }],
            links: vec![span::Link {
                trace_id: vec![4; 16],
                span_id: vec![5; 8],
                ..Default::default()
            }],
            status: Some(Status {
                code: 2,
                message: "boom".into(),
            }),
            flags: 0x301,
            ..Default::default()
        };
        let rejected = Span {
            end_time_unix_nano: 5,
            ..span.clone()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(ProtoResource {
                    attributes: vec![kv("service.name", V::StringValue("orders".into()))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "axum".into(),
                        version: "0.8".into(),
                        ..Default::default()
                    }),
                    spans: vec![span, rejected],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_request_decodes_as_prost_and_convert_have_it() {
        let body = request().encode_to_vec();
        let out = traces(&body).expect("a valid body");
        assert_eq!(out.batch.spans.len(), 1);
        assert_eq!(out.rejected.count, 1);
        let span = &out.batch.spans[0];
        assert_eq!(span.resource.service, "orders");
        assert_eq!(span.correlation_id.as_deref(), Some("order-7"));
        assert_eq!(span.attributes.get("n"), Some(&Value::Int(4)));
        assert_eq!(&*span.scope_version, "0.8");
        let (direct, prost) = both(&body);
        assert_eq!(direct, prost);
    }

    #[test]
    fn fields_out_of_order_and_sent_twice_merge_as_prost_merges_them() {
        let body = request().encode_to_vec();
        // ResourceSpans { resource, scope_spans } re-encoded as
        // { scope_spans, resource, resource' }: the resource applies to spans before it,
        // and the second merges into the first (its attribute overrides service.name).
        let mut req = Message::new(&body);
        let Ok(Some((1, Field::Bytes(rs)))) = req.next_field() else {
            panic!("one resource_spans field");
        };
        let mut fields = Vec::new();
        let mut msg = Message::new(rs);
        while let Ok(Some((n, Field::Bytes(b)))) = msg.next_field() {
            fields.push((n, b.to_vec()));
        }
        let later = ProtoResource {
            attributes: vec![kv(
                "service.name",
                any_value::Value::StringValue("billing".into()),
            )],
            ..Default::default()
        }
        .encode_to_vec();
        fields.reverse();
        fields.push((1, later));
        let mut inner = Vec::new();
        for (n, b) in &fields {
            prost::encoding::bytes::encode(*n, b, &mut inner);
        }
        let mut outer = Vec::new();
        prost::encoding::bytes::encode(1, &inner, &mut outer);
        let out = traces(&outer).expect("a valid body");
        assert_eq!(out.batch.spans[0].resource.service, "billing");
        let (direct, prost) = both(&outer);
        assert_eq!(direct, prost);
    }

    /// A request of one span whose one attribute's `AnyValue` is `value` as given.
    fn span_with_value(value: &[u8]) -> Vec<u8> {
        use prost::encoding::bytes::encode;
        let mut key_value = Vec::new();
        encode(1, &b"k".to_vec(), &mut key_value);
        encode(2, &value.to_vec(), &mut key_value);
        let mut span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        }
        .encode_to_vec();
        encode(9, &key_value, &mut span);
        let mut scope_spans = Vec::new();
        encode(2, &span, &mut scope_spans);
        let mut resource_spans = Vec::new();
        encode(2, &scope_spans, &mut resource_spans);
        let mut req = Vec::new();
        encode(1, &resource_spans, &mut req);
        req
    }

    #[test]
    fn an_any_value_sent_in_pieces_merges_as_prost_merges_it() {
        use any_value::Value as V;
        let piece = |v: V| AnyValue { value: Some(v) }.encode_to_vec();
        let array = |n: i64| {
            piece(V::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(V::IntValue(n)),
                }],
            }))
        };
        let list = |k: &str| {
            piece(V::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![kv(k, V::BoolValue(true))],
                },
            ))
        };
        let cases: [(Vec<u8>, Value); 4] = [
            // Two arrays: one of both elements.
            (
                [array(1), array(2)].concat(),
                Value::Array(vec![Value::Int(1), Value::Int(2)]),
            ),
            // An array, a string, an array: the string ended the first array.
            (
                [array(1), piece(V::StringValue("s".into())), array(2)].concat(),
                Value::Array(vec![Value::Int(2)]),
            ),
            // Two lists, the second repeating the first's key: one list.
            (
                [list("a"), list("b"), list("a")].concat(),
                Value::Map([("a", true), ("b", true)].into_iter().collect()),
            ),
            // A string-table index after a value: no value.
            (
                [piece(V::IntValue(3)), piece(V::StringValueStrindex(1))].concat(),
                Value::Empty,
            ),
        ];
        for (value, expected) in cases {
            let body = span_with_value(&value);
            let out = traces(&body).expect("a valid body");
            assert_eq!(out.batch.spans[0].attributes.get("k"), Some(&expected));
            let (direct, prost) = both(&body);
            assert_eq!(direct, prost);
        }
    }

    #[test]
    fn every_truncation_of_a_body_is_answered_as_prost_answers_it() {
        let body = request().encode_to_vec();
        for len in 0..body.len() {
            let (direct, prost) = both(&body[..len]);
            assert_eq!(direct, prost, "the first {len} bytes");
        }
    }
}
