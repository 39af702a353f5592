//! Attribute values with OpenTelemetry's value kinds, as the query API's JSON carries them:
//! string, bool, int, double, array and map (bytes arrive as their base64 text).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The attribute keys that carry a correlation ID, in order of preference: the collector
/// reads them at ingest, the UI shows them.
pub const CORRELATION_KEYS: [&str; 3] = ["correlation_id", "correlation.id", "app.correlation_id"];

/// Attributes by key, in key order.
pub type Attributes = BTreeMap<String, AttributeValue>;

/// One attribute value. In JSON a value is its plain form, so `3` is an int and `1.5` a double.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub enum AttributeValue {
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    Array(Vec<AttributeValue>),
    Map(BTreeMap<String, AttributeValue>),
}

impl AttributeValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The value as a person reads it: strings bare, everything else as JSON.
impl fmt::Display for AttributeValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Double(x) => write!(f, "{x}"),
            Self::String(s) => f.write_str(s),
            other => match serde_json::to_string(other) {
                Ok(json) => f.write_str(&json),
                Err(_) => Err(fmt::Error),
            },
        }
    }
}

impl From<&str> for AttributeValue {
    fn from(s: &str) -> Self {
        Self::String(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_keep_their_kinds() {
        let a: Attributes =
            serde_json::from_str(r#"{"s":"x","b":true,"i":3,"d":1.5,"a":[1,"y"],"m":{"k":false}}"#)
                .expect("parses");
        assert_eq!(a["s"], AttributeValue::String("x".into()));
        assert_eq!(a["b"], AttributeValue::Bool(true));
        assert_eq!(a["i"], AttributeValue::Int(3));
        assert_eq!(a["d"], AttributeValue::Double(1.5));
        assert_eq!(
            a["a"],
            AttributeValue::Array(vec![AttributeValue::Int(1), "y".into()])
        );
        assert_eq!(a["m"].to_string(), r#"{"k":false}"#);
        let back = serde_json::to_string(&a).expect("serialises");
        assert_eq!(
            back,
            r#"{"a":[1,"y"],"b":true,"d":1.5,"i":3,"m":{"k":false},"s":"x"}"#
        );
    }
}
