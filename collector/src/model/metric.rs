//! Metric data points as the collector keeps them: one [`MetricSeries`] (what identifies a
//! series, and its Prometheus name and labels, worked out once at ingest by
//! [`crate::promql::naming`]) and [`MetricPoint`]s of it. A point's value is one of
//! OpenTelemetry's five kinds; delta points are stored as they arrive and turned into
//! running totals by the store (Prometheus reads cumulative series only).

use std::sync::Arc;

use super::{Attributes, Resource, SpanId, TraceId};

/// The kind of an OpenTelemetry metric, with what Prometheus makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricKind {
    Gauge = 1,
    /// A monotonic sum: a Prometheus counter (`_total`).
    Counter = 2,
    /// A sum that may go down: a Prometheus gauge.
    UpDownSum = 3,
    /// Explicit buckets: `_bucket{le}`, `_sum`, `_count`.
    Histogram = 4,
    /// Exponential buckets: kept whole; Prometheus reads its `_sum` and `_count`.
    ExponentialHistogram = 5,
    /// Quantiles computed by the client: `{quantile}`, `_sum`, `_count`.
    Summary = 6,
}

impl MetricKind {
    pub fn from_i64(n: i64) -> Option<Self> {
        Some(match n {
            1 => Self::Gauge,
            2 => Self::Counter,
            3 => Self::UpDownSum,
            4 => Self::Histogram,
            5 => Self::ExponentialHistogram,
            6 => Self::Summary,
            _ => return None,
        })
    }

    /// The type `/api/v1/metadata` reports, as Prometheus names them.
    pub fn prometheus_type(self) -> &'static str {
        match self {
            Self::Gauge | Self::UpDownSum => "gauge",
            Self::Counter => "counter",
            Self::Histogram | Self::ExponentialHistogram => "histogram",
            Self::Summary => "summary",
        }
    }
}

/// How a sum or histogram point counts: since a fixed start (cumulative) or since the
/// previous point (delta). Gauges and summaries have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Temporality {
    None = 0,
    Delta = 1,
    Cumulative = 2,
}

/// One series: a metric of a resource and scope with one set of point attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    /// The OpenTelemetry metric name, as sent.
    pub name: String,
    pub description: String,
    pub unit: String,
    pub kind: MetricKind,
    pub temporality: Temporality,
    pub resource: Arc<Resource>,
    pub scope_name: String,
    pub scope_version: String,
    pub attributes: Attributes,
    /// The Prometheus metric name (before `_bucket`, `_sum`, `_count`).
    pub prometheus_name: String,
    /// Prometheus labels without `__name__`, sorted by name: `job`, `instance` and the
    /// point attributes.
    pub labels: Vec<(String, String)>,
}

impl MetricSeries {
    /// What makes two series one in the store: the Prometheus identity (a query cannot tell
    /// two series with the same name and labels apart), and the kind.
    pub fn key(&self) -> String {
        let mut key = format!("{}\u{1}{}", self.kind as i64, self.prometheus_name);
        for (k, v) in &self.labels {
            key.push('\u{1}');
            key.push_str(k);
            key.push('\u{2}');
            key.push_str(v);
        }
        key
    }
}

/// A value of one of the five kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum PointValue {
    /// Gauges and sums.
    Number(f64),
    Histogram {
        count: u64,
        sum: Option<f64>,
        /// Upper bounds, increasing; one fewer than `counts`.
        bounds: Vec<f64>,
        /// Per bucket (not cumulative), the last one above the last bound.
        counts: Vec<u64>,
    },
    ExponentialHistogram {
        count: u64,
        sum: Option<f64>,
        scale: i32,
        zero_count: u64,
        zero_threshold: f64,
        positive: (i32, Vec<u64>),
        negative: (i32, Vec<u64>),
    },
    Summary {
        count: u64,
        sum: f64,
        /// (quantile, value), as sent.
        quantiles: Vec<(f64, f64)>,
    },
}

/// A point's link to a trace: a sampled measurement with the span it was made in.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub time_ns: i64,
    pub value: f64,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    pub attributes: Attributes,
}

/// One data point of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub series: Arc<MetricSeries>,
    /// 0 when the sender gave none.
    pub start_ns: i64,
    pub time_ns: i64,
    pub value: PointValue,
    /// The point says "no recorded value" (OpenTelemetry's flag): the series went away, which
    /// Prometheus marks as stale.
    pub no_value: bool,
    pub exemplars: Vec<Exemplar>,
}
