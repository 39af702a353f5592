//! Span attributes as segment format 8 stores them: each key as its ID in the catalog's
//! `attribute_keys` (held in memory by the [`Dictionary`], shared by every segment) and each
//! value in a few tagged bytes, rather than a JSON object that spells every key out again in
//! every row. For the attributes SDKs send that is about half the bytes of the JSON, written
//! without escaping or number formatting and read without parsing; values keep their kinds
//! (bytes stay bytes). A span with a key the dictionary has no room for
//! ([`MAX_ATTRIBUTE_KEYS`]) is stored as JSON, as every older segment holds its spans:
//! readers tell the two apart by the column's type, BLOB or TEXT ([`stored`]).
//!
//! Layout: a version byte ([`VERSION`]), then per pair the key's ID (varint) and the value:
//! a tag byte, then for a string or bytes its length (varint) and the bytes, for an int its
//! zigzag varint, for a double its 8 bytes little-endian, for an array its count and values,
//! for a map its count and pairs; nothing more for a bool or an empty value, or for a string
//! equal to the span's correlation ID, which its own column holds already ([`CORRELATION`]:
//! a correlation ID is the longest value most spans carry).

use std::sync::Arc;

use rusqlite::types::ValueRef;

use super::dictionary::{Dictionary, Names};
use crate::model::{Attributes, Key, Value};

/// The first byte of a packed column: the layout's version.
pub(super) const VERSION: u8 = 1;

/// Distinct attribute keys the dictionary takes; spans with others are stored as JSON. A
/// sender inventing keys cannot grow the catalog or the memory of every reader without end.
pub(super) const MAX_ATTRIBUTE_KEYS: usize = 1 << 16;

/// Nesting a stored value may have: arrays and maps in maps come from senders, but a
/// damaged file must not recurse without end.
const MAX_DEPTH: usize = 64;

const EMPTY: u8 = 0;
const STRING: u8 = 1;
const FALSE: u8 = 2;
const TRUE: u8 = 3;
const INT: u8 = 4;
const DOUBLE: u8 = 5;
const BYTES: u8 = 6;
const ARRAY: u8 = 7;
const MAP: u8 = 8;
/// A string: the row's `correlation_id`.
const CORRELATION: u8 = 9;

/// What a packed [`CORRELATION`] value reads as.
#[derive(Debug, Clone, Copy)]
pub(super) enum Correlation<'a> {
    /// The row's `correlation_id` column.
    Column(Option<&'a str>),
    /// Not read: the caller wants other attributes (the HTTP status, the protocol), and the
    /// value reads as empty.
    Unread,
}

/// An attributes column as written: packed (where in the buffer [`column`] appended to),
/// or JSON when a key had no ID.
#[derive(Debug)]
pub(super) enum Column {
    Packed((u32, u32)),
    Json(String),
}

/// Key IDs as one request's encoding looks them up: the decoder hands out each distinct key
/// of a request once, so after its first use a key is found by its pointer, without hashing
/// its text or taking the dictionary's lock.
pub(super) struct KeyIds<'d> {
    dictionary: &'d Dictionary,
    /// By the key's address; the key is kept (so the address cannot be reused meanwhile).
    seen: foldhash::HashMap<usize, (Key, u32)>,
}

impl<'d> KeyIds<'d> {
    pub(super) fn new(dictionary: &'d Dictionary) -> Self {
        Self {
            dictionary,
            seen: foldhash::HashMap::default(),
        }
    }

    fn id(&mut self, key: &Key) -> Option<u32> {
        let at = Arc::as_ptr(key).cast::<u8>() as usize;
        if let Some((_, id)) = self.seen.get(&at) {
            return Some(*id);
        }
        let id = self.dictionary.attribute_key_id(key)?;
        self.seen.insert(at, (key.clone(), id));
        Some(id)
    }
}

/// The attributes of a span with `correlation` as its correlation ID, as a column: packed
/// at the end of `out`, or JSON when the dictionary is full.
pub(super) fn column(
    attributes: &Attributes,
    correlation: Option<&str>,
    ids: &mut KeyIds<'_>,
    out: &mut Vec<u8>,
) -> Column {
    let from = out.len();
    out.reserve(packed_hint(attributes));
    out.push(VERSION);
    let mut packer = Packer {
        out: &mut *out,
        ids,
        correlation,
    };
    match packer.pairs(attributes) {
        Some(()) => Column::Packed((from as u32, out.len() as u32)),
        None => {
            out.truncate(from);
            Column::Json(attributes.to_json())
        }
    }
}

fn packed_hint(attributes: &Attributes) -> usize {
    1 + attributes
        .pairs()
        .iter()
        .map(|(_, v)| match v {
            Value::String(s) => s.len() + 4,
            Value::Bytes(b) => b.len() + 4,
            _ => 12,
        })
        .sum::<usize>()
}

struct Packer<'o, 'k, 'd, 'c> {
    out: &'o mut Vec<u8>,
    ids: &'k mut KeyIds<'d>,
    correlation: Option<&'c str>,
}

impl Packer<'_, '_, '_, '_> {
    /// Appends the pairs (without their count); `None` when a key gets no ID.
    fn pairs(&mut self, attributes: &Attributes) -> Option<()> {
        for (key, value) in attributes.pairs() {
            varint(self.out, u64::from(self.ids.id(key)?));
            self.value(value)?;
        }
        Some(())
    }

    fn value(&mut self, value: &Value) -> Option<()> {
        let out = &mut *self.out;
        match value {
            Value::Empty => out.push(EMPTY),
            Value::String(s) if self.correlation == Some(s.as_str()) => out.push(CORRELATION),
            Value::String(s) => {
                out.push(STRING);
                varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
            Value::Int(i) => {
                out.push(INT);
                varint(out, ((i << 1) ^ (i >> 63)) as u64);
            }
            Value::Double(d) => {
                out.push(DOUBLE);
                out.extend_from_slice(&d.to_le_bytes());
            }
            Value::Bytes(b) => {
                out.push(BYTES);
                varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Array(values) => {
                out.push(ARRAY);
                varint(out, values.len() as u64);
                for v in values {
                    self.value(v)?;
                }
            }
            Value::Map(pairs) => {
                out.push(MAP);
                varint(out, pairs.len() as u64);
                self.pairs(pairs)?;
            }
        }
        Some(())
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Why a packed column does not read (a damaged file, or one of a newer layout).
#[derive(Debug, thiserror::Error)]
pub(super) enum UnpackError {
    #[error("packed attributes of layout {0}; this build reads layout {VERSION}")]
    Version(u8),
    #[error("packed attributes end inside a value")]
    Truncated,
    #[error("packed attributes name key {0}, which the catalog does not hold")]
    UnknownKey(u64),
    #[error("packed attributes hold a value of unknown kind {0}")]
    UnknownKind(u8),
    #[error("packed attributes hold text that is not UTF-8")]
    NotUtf8,
    #[error("packed attributes nest deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("packed attributes name the row's correlation ID, and the row has none")]
    NoCorrelation,
}

/// Reads a packed column back, keys named by the dictionary.
pub(super) fn unpack(
    bytes: &[u8],
    names: &Names,
    correlation: Correlation<'_>,
) -> Result<Attributes, UnpackError> {
    let (&version, rest) = bytes.split_first().ok_or(UnpackError::Truncated)?;
    if version != VERSION {
        return Err(UnpackError::Version(version));
    }
    let mut reader = Reader {
        rest,
        keys: names.attribute_keys(),
        correlation,
    };
    let mut pairs = Vec::new();
    while !reader.rest.is_empty() {
        pairs.push(reader.pair(0)?);
    }
    Ok(Attributes::deduplicated(pairs))
}

struct Reader<'a> {
    rest: &'a [u8],
    keys: &'a [Key],
    correlation: Correlation<'a>,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, UnpackError> {
        let (&b, rest) = self.rest.split_first().ok_or(UnpackError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, UnpackError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(UnpackError::Truncated)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], UnpackError> {
        let n = usize::try_from(n).map_err(|_| UnpackError::Truncated)?;
        if n > self.rest.len() {
            return Err(UnpackError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// A count of things each at least a byte long: more than the bytes left is damage (and
    /// must not size an allocation).
    fn count(&mut self) -> Result<usize, UnpackError> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.rest.len())
            .ok_or(UnpackError::Truncated)
    }

    fn pair(&mut self, depth: usize) -> Result<(Key, Value), UnpackError> {
        let id = self.varint()?;
        let key = usize::try_from(id)
            .ok()
            .and_then(|i| self.keys.get(i))
            .ok_or(UnpackError::UnknownKey(id))?
            .clone();
        Ok((key, self.value(depth)?))
    }

    fn value(&mut self, depth: usize) -> Result<Value, UnpackError> {
        if depth > MAX_DEPTH {
            return Err(UnpackError::TooDeep);
        }
        Ok(match self.byte()? {
            EMPTY => Value::Empty,
            STRING => {
                let n = self.varint()?;
                let text = std::str::from_utf8(self.take(n)?).map_err(|_| UnpackError::NotUtf8)?;
                Value::String(text.to_owned())
            }
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            INT => {
                let z = self.varint()?;
                Value::Int(((z >> 1) as i64) ^ -((z & 1) as i64))
            }
            DOUBLE => {
                let b: [u8; 8] = self
                    .take(8)?
                    .try_into()
                    .map_err(|_| UnpackError::Truncated)?;
                Value::Double(f64::from_le_bytes(b))
            }
            BYTES => {
                let n = self.varint()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            ARRAY => {
                let n = self.count()?;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(self.value(depth + 1)?);
                }
                Value::Array(values)
            }
            MAP => {
                let n = self.count()?;
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    pairs.push(self.pair(depth + 1)?);
                }
                Value::Map(Attributes::deduplicated(pairs))
            }
            CORRELATION => match self.correlation {
                Correlation::Column(Some(c)) => Value::String(c.to_owned()),
                Correlation::Column(None) => return Err(UnpackError::NoCorrelation),
                Correlation::Unread => Value::Empty,
            },
            other => return Err(UnpackError::UnknownKind(other)),
        })
    }
}

/// Why a stored attributes column does not read.
#[derive(Debug, thiserror::Error)]
pub(super) enum StoredError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Packed(#[from] UnpackError),
    #[error("attributes stored as neither text nor a blob")]
    Type,
}

/// An attributes column as stored: JSON text (segment formats 1 to 7, and spans whose keys
/// the dictionary had no room for) or packed.
pub(super) fn stored(
    value: ValueRef<'_>,
    names: &Names,
    correlation: Correlation<'_>,
) -> Result<Attributes, StoredError> {
    match value {
        ValueRef::Text(t) => {
            let text = std::str::from_utf8(t).map_err(|_| UnpackError::NotUtf8)?;
            Ok(Attributes::from_json(text)?)
        }
        ValueRef::Blob(b) => Ok(unpack(b, names, correlation)?),
        _ => Err(StoredError::Type),
    }
}

/// An attributes column read whole, to be parsed only if needed (trace search reads one
/// per span it walks, and parses it only when a filter asks for an attribute).
#[derive(Debug, Clone)]
pub(super) struct Raw(Vec<u8>, bool);

impl rusqlite::types::FromSql for Raw {
    fn column_result(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        match value {
            ValueRef::Text(t) => Ok(Self(t.to_vec(), false)),
            ValueRef::Blob(b) => Ok(Self(b.to_vec(), true)),
            _ => Err(rusqlite::types::FromSqlError::InvalidType),
        }
    }
}

impl Raw {
    pub(super) fn parse(
        &self,
        names: &Names,
        correlation: Correlation<'_>,
    ) -> Result<Attributes, StoredError> {
        stored(
            if self.1 {
                ValueRef::Blob(&self.0)
            } else {
                ValueRef::Text(&self.0)
            },
            names,
            correlation,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Attributes {
        let mut nested = Attributes::new();
        nested.push("inner", Value::Int(-7));
        nested.push("flag", Value::Bool(true));
        let mut a = Attributes::new();
        a.push("http.request.method", Value::String("GET".into()));
        a.push("http.response.status_code", Value::Int(200));
        a.push("big", Value::Int(i64::MIN));
        a.push("ratio", Value::Double(0.25));
        a.push("nan", Value::Double(f64::NAN));
        a.push("raw", Value::Bytes(vec![0, 0xff, 7]));
        a.push("none", Value::Empty);
        a.push("off", Value::Bool(false));
        a.push("text", Value::String("naïve \"quoted\" ☃".into()));
        a.push(
            "list",
            Value::Array(vec![
                Value::Int(1),
                Value::String("two".into()),
                Value::Empty,
            ]),
        );
        a.push("map", Value::Map(nested));
        a
    }

    /// Packs with a correlation ID; `None` when stored as JSON.
    fn pack(dictionary: &Dictionary, a: &Attributes, correlation: Option<&str>) -> Option<Vec<u8>> {
        // After other bytes, as in a request's arena.
        let mut out = vec![0xee; 3];
        match column(a, correlation, &mut KeyIds::new(dictionary), &mut out) {
            Column::Packed((from, to)) => {
                assert_eq!((from, to as usize), (3, out.len()));
                Some(out.split_off(3))
            }
            Column::Json(_) => {
                assert_eq!(out.len(), 3, "nothing left behind");
                None
            }
        }
    }

    fn packed(dictionary: &Dictionary, a: &Attributes) -> Vec<u8> {
        pack(dictionary, a, None).expect("packed")
    }

    #[test]
    fn every_kind_of_value_reads_back_as_it_was_written() {
        let dictionary = Dictionary::default();
        let a = sample();
        let bytes = packed(&dictionary, &a);
        let back = unpack(&bytes, &dictionary.read(), Correlation::Column(None)).expect("unpack");
        // NaN is not equal to itself: compare the debug forms.
        assert_eq!(format!("{back:?}"), format!("{a:?}"));
        assert_eq!(back.get("raw"), Some(&Value::Bytes(vec![0, 0xff, 7])));
        // Keys are numbers: fewer bytes than the JSON, which spells them out.
        assert!(bytes.len() < a.to_json().len() * 2 / 3, "{}", bytes.len());
        // Nothing at all packs to the version byte alone.
        let empty = packed(&dictionary, &Attributes::new());
        assert_eq!(empty, [VERSION]);
        assert!(
            unpack(&empty, &dictionary.read(), Correlation::Column(None))
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn a_request_shares_key_ids_and_the_dictionary_keeps_them_across_requests() {
        let dictionary = Dictionary::default();
        let first = packed(&dictionary, &sample());
        assert_eq!(packed(&dictionary, &sample()), first);
        let keys = dictionary.read().attribute_keys().len();
        assert_eq!(keys, 13, "11 keys and the map's 2");
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let dictionary = Dictionary::default();
        let bytes = packed(&dictionary, &sample());
        let names = dictionary.read();
        let none = Correlation::Column(None);
        for cut in 1..bytes.len() {
            // A prefix either reads (it ends between pairs) or says it is cut short.
            match unpack(&bytes[..cut], &names, none) {
                Ok(a) => assert!(a.len() < sample().len()),
                Err(e) => assert!(
                    matches!(e, UnpackError::Truncated | UnpackError::NotUtf8),
                    "{e}"
                ),
            }
        }
        assert!(matches!(
            unpack(&[], &names, none),
            Err(UnpackError::Truncated)
        ));
        assert!(matches!(
            unpack(&[9], &names, none),
            Err(UnpackError::Version(9))
        ));
        assert!(matches!(
            unpack(&[VERSION, 0x7f, EMPTY], &names, none),
            Err(UnpackError::UnknownKey(0x7f))
        ));
        assert!(matches!(
            unpack(&[VERSION, 0, 42], &names, none),
            Err(UnpackError::UnknownKind(42))
        ));
        // A count far beyond the bytes left sizes no allocation.
        let mut huge = vec![VERSION, 0, ARRAY];
        varint(&mut huge, u64::MAX >> 1);
        assert!(matches!(
            unpack(&huge, &names, none),
            Err(UnpackError::Truncated)
        ));
        let mut deep = vec![VERSION, 0];
        for _ in 0..100 {
            deep.extend([ARRAY, 1]);
        }
        deep.push(EMPTY);
        assert!(matches!(
            unpack(&deep, &names, none),
            Err(UnpackError::TooDeep)
        ));
    }

    #[test]
    fn the_correlation_id_is_not_stored_twice() {
        let dictionary = Dictionary::default();
        let mut a = Attributes::new();
        a.push("http.route", Value::String("/orders".into()));
        a.push("correlation.id", Value::String("c0ffee".repeat(5)));
        let id = "c0ffee".repeat(5);
        let bytes = pack(&dictionary, &a, Some(&id)).expect("packed");
        let spelled = packed(&dictionary, &a);
        assert_eq!(bytes.len() + 1 + id.len(), spelled.len());
        let names = dictionary.read();
        let back = unpack(&bytes, &names, Correlation::Column(Some(&id))).expect("unpack");
        assert_eq!(back, a);
        let unread = unpack(&bytes, &names, Correlation::Unread).expect("unread");
        assert_eq!(unread.get("correlation.id"), Some(&Value::Empty));
        assert_eq!(unread.get("http.route"), a.get("http.route"));
        assert!(matches!(
            unpack(&bytes, &names, Correlation::Column(None)),
            Err(UnpackError::NoCorrelation)
        ));
    }

    #[test]
    fn a_key_is_not_waited_for_while_the_names_are_locked() {
        let dictionary = Dictionary::default();
        let mut a = Attributes::new();
        a.push("http.route", Value::String("/orders".into()));
        // A query holds the names while it reads: encoding does not wait for it.
        {
            let _query = dictionary.read();
            assert!(
                pack(&dictionary, &a, None).is_none(),
                "JSON rather than waiting"
            );
        }
        assert!(pack(&dictionary, &a, None).is_some());
    }

    #[test]
    fn a_full_dictionary_stores_the_span_as_json_which_reads_alike() {
        let dictionary = Dictionary::default();
        for i in 0..MAX_ATTRIBUTE_KEYS {
            let key: Key = format!("k{i}").into();
            assert!(dictionary.attribute_key_id(&key).is_some());
        }
        let mut a = Attributes::new();
        a.push("k1", Value::Int(1));
        assert!(pack(&dictionary, &a, None).is_some());
        a.push("one.too.many", Value::Int(2));
        assert!(pack(&dictionary, &a, None).is_none(), "JSON past the limit");
        let Column::Json(json) = column(&a, None, &mut KeyIds::new(&dictionary), &mut Vec::new())
        else {
            panic!("a key past the limit must fall back to JSON");
        };
        let back = stored(
            ValueRef::Text(json.as_bytes()),
            &dictionary.read(),
            Correlation::Column(None),
        )
        .expect("json");
        assert_eq!(back, a);
    }
}
