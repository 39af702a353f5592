//! Jaeger's answer envelope, which every Jaeger-shaped route and every error uses.

use serde::{Deserialize, Serialize};

/// `{"data": ..., "total": n, "limit": 0, "offset": 0, "errors": null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Envelope<T> {
    pub data: T,
    #[serde(default)]
    pub total: usize,
    #[serde(default)]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub errors: Option<Vec<ErrorItem>>,
}

impl<T> Envelope<T> {
    /// A successful answer of `total` items.
    pub fn new(data: T, total: usize) -> Self {
        Self {
            data,
            total,
            limit: 0,
            offset: 0,
            errors: None,
        }
    }
}

/// One error: the HTTP status and a message saying what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ErrorItem {
    pub code: u16,
    pub msg: String,
}

/// Every error answer of the query API: the envelope with no data and one error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct ErrorBody {
    pub data: Option<()>,
    #[serde(default)]
    pub total: usize,
    #[serde(default)]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
    pub errors: Vec<ErrorItem>,
}

impl ErrorBody {
    pub fn new(code: u16, msg: impl Into<String>) -> Self {
        Self {
            data: None,
            total: 0,
            limit: 0,
            offset: 0,
            errors: vec![ErrorItem {
                code,
                msg: msg.into(),
            }],
        }
    }

    /// The first error's message (the only one the collector sends).
    pub fn message(&self) -> &str {
        self.errors.first().map_or("", |e| e.msg.as_str())
    }
}
