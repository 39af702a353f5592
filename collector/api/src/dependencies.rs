//! `GET /api/dependencies`: Jaeger's service graph, plus errors and latency per edge.

use serde::{Deserialize, Serialize};

use crate::ErrorItem;

/// One edge of the service graph, in Jaeger's shape plus errors and latency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    pub call_count: u64,
    #[serde(default)]
    pub error_count: u64,
    /// The p99 of the called spans' durations, in milliseconds.
    #[serde(default)]
    pub p99_ms: f64,
    /// What the calls were carried by, as the called spans say (`http`, `jsonrpc`, `grpc`,
    /// `rabbitmq`, ...: their `rpc.system`, else `messaging.system`, else `http` for an HTTP
    /// span), sorted; empty when they say nothing (e.g. an event feed's consumer).
    #[serde(default)]
    pub protocols: Vec<String>,
}

/// Jaeger's envelope, and whether the window held more spans than were read (only when the
/// links were counted from spans: a SQLite window with spans of a version before edge
/// rollups).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Dependencies {
    pub data: Vec<DependencyLink>,
    pub total: usize,
    #[serde(default)]
    pub limit: usize,
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub errors: Option<Vec<ErrorItem>>,
    #[serde(default)]
    pub truncated: bool,
}
