//! `GET /api/v1/requests`: the requests one service (or one version of it) served in a
//! window, one entry each, for judgements that need the samples rather than percentiles
//! (the canary judge's rank test).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedRequests {
    pub service: String,
    pub version: Option<String>,
    /// The window, in microseconds since the epoch.
    pub start: i64,
    pub end: i64,
    /// The newest first.
    pub requests: Vec<ServedRequest>,
    /// More requests were served in the window than the limit: the oldest were left out.
    pub truncated: bool,
}

/// One request a service served (its SERVER span).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServedRequest {
    /// When it started, microseconds since the epoch.
    pub start: i64,
    /// How long it took, in microseconds.
    pub duration_us: i64,
    /// The span's status was an error (5xx answers are).
    pub error: bool,
}
