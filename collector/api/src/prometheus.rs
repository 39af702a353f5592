//! Prometheus' HTTP API answers (`/api/v1/query`, `query_range`, `series`, `labels`,
//! `label/{name}/values`, `metadata`) in Prometheus' own envelope, so that `promtool`,
//! Grafana's Prometheus data source and Prometheus' client libraries read them: `{"status":
//! "success", "data": ...}` or `{"status": "error", "errorType": "bad_data", "error": ...}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The envelope of every answer.
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PromResponse<T> {
    Success {
        data: T,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    Error {
        #[serde(rename = "errorType")]
        error_type: PromErrorType,
        error: String,
    },
}

/// Prometheus' error types, each with its HTTP status.
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromErrorType {
    /// 400: the request cannot be run as written.
    BadData,
    /// 422: it failed while running.
    Execution,
    /// 503: the store failed.
    Unavailable,
    /// 500.
    Internal,
}

impl PromErrorType {
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadData => 400,
            Self::Execution => 422,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

/// A label set as a JSON object.
pub type Metric = BTreeMap<String, String>;

/// `[seconds, "value"]`: a timestamp in seconds since the epoch (milliseconds as decimals)
/// and the value as Prometheus writes it (`"+Inf"`, `"NaN"`, shortest decimal).
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplePair(pub f64, pub String);

impl SamplePair {
    /// The value as a number.
    pub fn value(&self) -> f64 {
        match self.1.as_str() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other.parse().unwrap_or(f64::NAN),
        }
    }
}

#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorSample {
    pub metric: Metric,
    pub value: SamplePair,
}

#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatrixSeries {
    pub metric: Metric,
    pub values: Vec<SamplePair>,
}

/// `data` of `/api/v1/query` and `/api/v1/query_range`.
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum QueryData {
    Vector(Vec<VectorSample>),
    Matrix(Vec<MatrixSeries>),
    Scalar(SamplePair),
    String(SamplePair),
}

/// One metric's entry in `/api/v1/metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricMetadata {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// `data` of `/api/v1/metadata`: metric name → its metadata.
pub type MetadataData = BTreeMap<String, Vec<MetricMetadata>>;

/// One series' exemplars in `/api/v1/query_exemplars`: samples that carry the trace they were
/// measured in (`trace_id`, `span_id` labels).
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemplarSeries {
    #[serde(rename = "seriesLabels")]
    pub series_labels: Metric,
    pub exemplars: Vec<ExemplarData>,
}

#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemplarData {
    pub labels: Metric,
    /// As Prometheus writes sample values.
    pub value: String,
    /// Seconds since the epoch.
    pub timestamp: f64,
}
