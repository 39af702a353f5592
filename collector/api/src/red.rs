//! `GET /api/v1/red`: rate, errors and duration of the requests a service served, over time.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Red {
    pub service: String,
    pub operation: Option<String>,
    /// The `service.version` asked for; all versions together when `null`.
    #[serde(default)]
    pub version: Option<String>,
    /// The window and the step, in microseconds as Jaeger's API gives times.
    pub start: i64,
    pub end: i64,
    pub step: i64,
    /// The whole service first (`operation: null`) and then each operation, busiest first;
    /// or only the operation asked for.
    pub series: Vec<RedSeries>,
    /// The window held more requests than one answer reads: the oldest were not counted.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct RedSeries {
    pub operation: Option<String>,
    pub points: Vec<RedPoint>,
}

/// One step: requests that started in `[time, time + step)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct RedPoint {
    /// Microseconds since the epoch.
    pub time: i64,
    pub requests: u64,
    /// Requests per second.
    pub rate: f64,
    pub errors: u64,
    /// Percentage of requests that failed (0 when there were none).
    pub error_pct: f64,
    /// Requests refused as too many (HTTP 429): not errors of the server's, but no answer
    /// for the caller either, so a rate-limit storm shows as one.
    #[serde(default)]
    pub throttled: u64,
    #[serde(default)]
    pub throttled_pct: f64,
    /// Duration percentiles in milliseconds (`null` with no requests).
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}
