//! `GET /api/v1/logs`: a page of log records, newest first, and the cursor to the next page.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Attributes;

/// One log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct LogEntry {
    /// RFC 3339, UTC, nanosecond precision.
    pub time: String,
    pub time_unix_nano: i64,
    pub service: String,
    /// The record's severity text, or the name its number gives (`INFO`, `WARN`, ...).
    pub severity: String,
    pub severity_number: i32,
    /// The body as text: a string body as it is, any other value as JSON.
    pub body: String,
    pub attributes: Attributes,
    /// Resource attributes (with `service.name`).
    pub resource: Attributes,
    pub scope: String,
    pub event_name: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct LogPage {
    pub data: Vec<LogEntry>,
    /// Give it back as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<LogCursor>,
    #[serde(default)]
    pub errors: Option<Vec<crate::ErrorItem>>,
}

/// Where a page ended: the last record's time and row, written `TIME_NS.ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(type = "string"))]
pub struct LogCursor {
    pub time_ns: i64,
    pub id: i64,
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.time_ns, self.id)
    }
}

/// A text that is not a cursor this API gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a next_cursor this API gave")]
pub struct BadCursor(pub String);

impl FromStr for LogCursor {
    type Err = BadCursor;
    fn from_str(v: &str) -> Result<Self, BadCursor> {
        v.split_once('.')
            .and_then(|(t, id)| {
                Some(Self {
                    time_ns: t.parse().ok()?,
                    id: id.parse().ok()?,
                })
            })
            .ok_or_else(|| BadCursor(v.to_string()))
    }
}

impl Serialize for LogCursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LogCursor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The severity name OpenTelemetry gives a severity number.
pub fn severity_name(n: i32) -> &'static str {
    match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "UNSPECIFIED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c: Result<LogCursor, _> = "1700000000000000000.42".parse();
        assert_eq!(
            c,
            Ok(LogCursor {
                time_ns: 1_700_000_000_000_000_000,
                id: 42
            })
        );
        assert!("garbage".parse::<LogCursor>().is_err());
        let page = LogPage {
            data: vec![],
            next_cursor: c.ok(),
            errors: None,
        };
        let text = serde_json::to_string(&page).expect("writes");
        assert_eq!(
            text,
            r#"{"data":[],"next_cursor":"1700000000000000000.42","errors":null}"#
        );
        assert_eq!(serde_json::from_str::<LogPage>(&text).ok(), Some(page));
    }
}
