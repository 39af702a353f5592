//! OpenTelemetry attribute values with their kinds (string, bool, int, double, bytes, array,
//! map, or empty), in the order they were received, and their plain JSON form: a string as a
//! JSON string, a number as a JSON number, bytes as base64 text, an array as a JSON array, a
//! map as a JSON object. That form is what the SQLite store keeps (and what its files of
//! earlier versions hold), what trace search compares a tag with (as [`Value::text`]) and
//! what a person reads.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

use super::CORRELATION_KEYS;

/// One attribute value, of one of OpenTelemetry's kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An `AnyValue` with no value set (the protocol allows it).
    Empty,
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Attributes),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as text: a string as it is, anything else as its plain JSON (how trace
    /// search compares tags, and how the ClickHouse schema stores attribute values).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Self::String(s) => Cow::Borrowed(s),
            Self::Double(d) if !d.is_finite() => Cow::Borrowed(non_finite_name(*d)),
            Self::Bytes(b) => Cow::Owned(base64::engine::general_purpose::STANDARD.encode(b)),
            other => Cow::Owned(other.to_string()),
        }
    }
}

/// The names OTLP/JSON gives the doubles JSON has no number for.
fn non_finite_name(d: f64) -> &'static str {
    if d.is_nan() {
        "NaN"
    } else if d > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// Plain JSON (see the module doc); strings are quoted.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::String(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// An attribute's key. Shared rather than owned: an export repeats the same few keys on
/// every span, and the OTLP decoder hands each distinct key of a request out once
/// (`otlp::trace_decode`), so a span's keys cost no allocation of their own.
pub type Key = Arc<str>;

/// Key-value pairs in the order received. OTLP sends a list, not a map: keys are not
/// checked for uniqueness here, and [`Attributes::get`] answers the first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(Vec<(Key, Value)>);

impl Attributes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    pub fn push(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        self.0.push((key.into(), value.into()));
    }

    /// Sets `key` to `value`, replacing the first value it had or adding it at the end.
    pub fn insert(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    /// Attributes from a list that may repeat a key (OpenTelemetry says keys are unique;
    /// some senders repeat one): the last value wins, in the place the key first took, as an
    /// SDK's `set_attribute` would have it. Long lists are checked through a map, so a
    /// hostile sender's thousands of attributes cost linear time.
    pub fn deduplicated(pairs: Vec<(Key, Value)>) -> Self {
        const SCAN: usize = 32;
        // Almost every list repeats nothing: kept as it came, without moving a pair.
        let repeats = if pairs.len() <= SCAN {
            (1..pairs.len()).any(|i| pairs[..i].iter().any(|(k, _)| *k == pairs[i].0))
        } else {
            let mut seen = std::collections::HashSet::with_capacity(pairs.len());
            !pairs.iter().all(|(k, _)| seen.insert(&**k))
        };
        if !repeats {
            return Self(pairs);
        }
        let mut out: Vec<(Key, Value)> = Vec::with_capacity(pairs.len());
        if pairs.len() <= SCAN {
            for (k, v) in pairs {
                match out.iter_mut().find(|(key, _)| *key == k) {
                    Some((_, old)) => *old = v,
                    None => out.push((k, v)),
                }
            }
            return Self(out);
        }
        let mut at: std::collections::HashMap<Key, usize> =
            std::collections::HashMap::with_capacity(pairs.len());
        for (k, v) in pairs {
            match at.get(&k) {
                Some(&i) => out[i].1 = v,
                None => {
                    at.insert(k.clone(), out.len());
                    out.push((k, v));
                }
            }
        }
        Self(out)
    }

    /// The first value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| **k == *key).map(|(_, v)| v)
    }

    /// The pairs as they are held (keys shared, as the decoder handed them out).
    pub fn pairs(&self) -> &[(Key, Value)] {
        &self.0
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first correlation attribute present and not empty, as text (a string as it is,
    /// any other value as its plain JSON).
    pub fn correlation_id(&self) -> Option<String> {
        CORRELATION_KEYS.iter().find_map(|key| {
            let value = self.get(key)?;
            if *value == Value::Empty {
                return None;
            }
            let text = value.text();
            (!text.is_empty()).then(|| text.into_owned())
        })
    }

    /// `http.response.status_code` (or the older `http.status_code`) as a status, by the
    /// rule the stores' span queries read it with (a number, or text that is one).
    pub fn http_status(&self) -> Option<u16> {
        let value = self
            .get("http.response.status_code")
            .or_else(|| self.get("http.status_code"))?;
        let code = match value {
            Value::Int(i) => *i,
            Value::Double(d) => *d as i64,
            Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        u16::try_from(code).ok()
    }

    /// What carried the span, by [`crate::store::SpanSample::protocol`]'s rule as the stores'
    /// queries read it: its `rpc.system`, else its `messaging.system` (as text: a boolean as
    /// `1` or `0`, as SQLite's JSON functions give it), else `http` when it has an HTTP
    /// method attribute.
    pub fn protocol(&self) -> Option<std::borrow::Cow<'static, str>> {
        use std::borrow::Cow;
        let text = |v: &Value| match v {
            Value::Empty => None,
            Value::String(s) => Some(Cow::Owned(s.clone())),
            Value::Bool(b) => Some(Cow::Borrowed(if *b { "1" } else { "0" })),
            Value::Int(i) => Some(Cow::Owned(i.to_string())),
            Value::Double(d) => Some(Cow::Owned(format!("{d:?}"))),
            other => serde_json::to_string(other).ok().map(Cow::Owned),
        };
        self.get("rpc.system")
            .and_then(text)
            .or_else(|| self.get("messaging.system").and_then(text))
            .or_else(|| {
                let http = self
                    .get("http.request.method")
                    .or_else(|| self.get("http.method"));
                http.map(|_| Cow::Borrowed("http"))
            })
    }

    /// The plain JSON object (what the SQLite store keeps), byte for byte what `serde_json`
    /// writes for it. Written here because it runs for every span stored: sized once from
    /// the pairs, and text that needs no escape (almost all of it) copied whole rather than
    /// byte by byte; the rare double, array or map goes through `serde_json`.
    pub fn to_json(&self) -> String {
        let hint: usize = self.0.iter().map(|(k, v)| k.len() + json_hint(v) + 4).sum();
        let mut out = String::with_capacity(hint + 2);
        out.push('{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_json_str(&mut out, k);
            out.push(':');
            push_json_value(&mut out, v);
        }
        out.push('}');
        out
    }

    /// Reads a plain JSON object; anything else is an error.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}

/// About how many bytes a value's JSON takes (a string's quotes included).
fn json_hint(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Bytes(b) => b.len() * 4 / 3 + 4,
        _ => 8,
    }
}

/// Whether JSON must escape any byte of `s`: a control character, a quote or a backslash
/// (`serde_json` escapes nothing else). Sixteen bytes at a time without a branch, which the
/// compiler turns into vector compares.
fn needs_escape(s: &str) -> bool {
    let escapes = |chunk: &[u8]| {
        chunk.iter().fold(false, |any, &b| {
            any | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    };
    let mut chunks = s.as_bytes().chunks_exact(16);
    chunks.by_ref().any(escapes) || escapes(chunks.remainder())
}

/// `s` as a JSON string.
fn push_json_str(out: &mut String, s: &str) {
    if needs_escape(s) {
        // Escaping a string cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// A value's plain JSON (see the module doc), as `serde_json` writes it.
fn push_json_value(out: &mut String, v: &Value) {
    match v {
        Value::Empty => out.push_str("null"),
        Value::String(s) => push_json_str(out, s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
        // Serializing cannot fail: non-finite doubles become strings, keys are strings.
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

impl<K: Into<Key>, V: Into<Value>> FromIterator<(K, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl IntoIterator for Attributes {
    type Item = (Key, Value);
    type IntoIter = std::vec::IntoIter<(Key, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Empty => s.serialize_none(),
            Self::String(v) => s.serialize_str(v),
            Self::Bool(v) => s.serialize_bool(*v),
            Self::Int(v) => s.serialize_i64(*v),
            // JSON has no NaN or Infinity: keep them as the strings OTLP/JSON uses.
            Self::Double(v) if !v.is_finite() => s.serialize_str(non_finite_name(*v)),
            Self::Double(v) => s.serialize_f64(*v),
            Self::Bytes(v) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v)),
            Self::Array(values) => {
                let mut seq = s.serialize_seq(Some(values.len()))?;
                for v in values {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Self::Map(map) => map.serialize(s),
        }
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(&**k, v)?;
        }
        map.end()
    }
}

/// Plain JSON back into values: a whole number that fits is an int, any other number a
/// double, `null` the empty value. Bytes were written as base64 text and read as a string.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ValueVisitor).and_then(|v| match v {
            Value::Map(m) => Ok(m),
            _ => Err(de::Error::custom("attributes are a JSON object")),
        })
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an attribute value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Empty)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Empty)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Double(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some((key, value)) = map.next_entry::<Cow<'de, str>, Value>()? {
            out.push((Key::from(key), value));
        }
        Ok(Value::Map(Attributes(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Attributes {
        let mut inner = Attributes::new();
        inner.push("k", "v");
        let mut a = Attributes::new();
        a.push("s", "x");
        a.push("b", true);
        a.push("i", -7);
        a.push("d", Value::Double(1.5));
        a.push("a", Value::Array(vec![Value::Int(1), "two".into()]));
        a.push("m", Value::Map(inner));
        a.push("e", Value::Empty);
        a
    }

    #[test]
    fn plain_json_keeps_order_and_kinds() {
        let json = sample().to_json();
        assert_eq!(
            json,
            r#"{"s":"x","b":true,"i":-7,"d":1.5,"a":[1,"two"],"m":{"k":"v"},"e":null}"#
        );
        assert_eq!(Attributes::from_json(&json).ok(), Some(sample()));
    }

    #[test]
    fn the_json_writer_writes_what_serde_json_writes() {
        // Strings of every length around the 16-byte chunks, with each byte JSON escapes
        // (and some it does not) at every position.
        let specials = ['"', '\\', '\n', '\u{1}', '\u{1f}', ' ', '\u{7f}', 'é', '€'];
        let mut a = sample();
        a.push("raw", Value::Bytes(vec![0, 255, 7]));
        a.push("nan", Value::Double(f64::NAN));
        a.push("min", i64::MIN);
        a.push("max", i64::MAX);
        a.push("big", Value::Double(1e300));
        for len in [0, 1, 15, 16, 17, 31, 32, 33] {
            for at in 0..len {
                for c in specials {
                    let mut text: String = "x".repeat(len);
                    text.replace_range(at..at + 1, &c.to_string());
                    a.push(text.clone(), text);
                }
            }
            a.push("x".repeat(len), "y".repeat(len));
        }
        let expected = serde_json::to_string(&a).unwrap_or_default();
        assert_eq!(a.to_json(), expected);
        assert_eq!(
            Attributes::from_json(&a.to_json()).map(|b| b.len()).ok(),
            Some(a.len())
        );
    }

    #[test]
    fn bytes_and_odd_doubles_become_text() {
        let mut a = Attributes::new();
        a.push("raw", Value::Bytes(vec![0, 255]));
        a.push("nan", Value::Double(f64::NAN));
        a.push("big", Value::Double(1e300));
        a.push("low", Value::Double(f64::NEG_INFINITY));
        assert_eq!(
            a.to_json(),
            r#"{"raw":"AP8=","nan":"NaN","big":1e+300,"low":"-Infinity"}"#
        );
        assert_eq!(Value::Bytes(vec![0, 255]).text(), "AP8=");
        assert_eq!(Value::Double(f64::NAN).text(), "NaN");
        let back = Attributes::from_json(&a.to_json()).unwrap_or_default();
        assert_eq!(back.get("raw"), Some(&Value::String("AP8=".into())));
        assert_eq!(back.get("big"), Some(&Value::Double(1e300)));
    }

    #[test]
    fn text_is_the_string_or_the_json() {
        assert_eq!(Value::from("x").text(), "x");
        assert_eq!(Value::Int(500).text(), "500");
        assert_eq!(Value::Array(vec!["a".into()]).text(), r#"["a"]"#);
        assert_eq!(Value::Bool(true).to_string(), "true");
    }

    #[test]
    fn a_repeated_key_keeps_its_place_and_its_last_value() {
        let pairs = |n: usize| -> Vec<(Key, Value)> {
            let mut p: Vec<(Key, Value)> = (0..n)
                .map(|i| (format!("k{i}").into(), Value::Int(i as i64)))
                .collect();
            p.push(("k0".into(), "last".into()));
            p
        };
        for n in [3, 100] {
            let a = Attributes::deduplicated(pairs(n));
            assert_eq!(a.len(), n, "one k0 of {n}");
            assert_eq!(a.iter().next(), Some(("k0", &Value::from("last"))));
        }
    }

    #[test]
    fn a_list_without_repeats_is_kept_as_it_came() {
        for n in [0, 1, 32, 33, 100] {
            let pairs: Vec<(Key, Value)> = (0..n)
                .map(|i| (format!("k{i}").into(), Value::Int(i as i64)))
                .collect();
            let a = Attributes::deduplicated(pairs.clone());
            let kept: Vec<(Key, Value)> = a.iter().map(|(k, v)| (k.into(), v.clone())).collect();
            assert_eq!(kept, pairs, "{n} pairs");
        }
    }

    #[test]
    fn anything_but_an_object_is_not_attributes() {
        assert!(Attributes::from_json("[1]").is_err());
        assert!(Attributes::from_json("not json").is_err());
    }

    #[test]
    fn the_first_non_empty_correlation_key_wins() {
        let a: Attributes = [("correlation.id", "second"), ("correlation_id", "first")]
            .into_iter()
            .collect();
        assert_eq!(a.correlation_id().as_deref(), Some("first"));
        let empty: Attributes = [("correlation_id", ""), ("app.correlation_id", "c")]
            .into_iter()
            .collect();
        assert_eq!(empty.correlation_id().as_deref(), Some("c"));
        let mut int = Attributes::new();
        int.push("correlation_id", 42);
        assert_eq!(int.correlation_id().as_deref(), Some("42"));
        assert_eq!(Attributes::new().correlation_id(), None);
    }
}
