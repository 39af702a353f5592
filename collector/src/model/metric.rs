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

impl PointValue {
    /// `total + delta`; a delta of another shape (new bounds, another scale) starts over.
    pub fn plus(&self, delta: &PointValue) -> PointValue {
        let total = self;
        use PointValue as P;
        let sum = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(a + b),
            _ => b,
        };
        let plus = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(x, y)| x + y).collect::<Vec<u64>>();
        match (total, delta) {
            (P::Number(a), P::Number(b)) => P::Number(a + b),
            (
                P::Histogram {
                    count: c1,
                    sum: s1,
                    bounds: b1,
                    counts: n1,
                },
                P::Histogram {
                    count: c2,
                    sum: s2,
                    bounds: b2,
                    counts: n2,
                },
            ) if b1 == b2 && n1.len() == n2.len() => P::Histogram {
                count: c1 + c2,
                sum: sum(*s1, *s2),
                bounds: b2.clone(),
                counts: plus(n1, n2),
            },
            (
                P::ExponentialHistogram {
                    count: c1,
                    sum: s1,
                    scale: k1,
                    zero_count: z1,
                    positive: p1,
                    negative: m1,
                    ..
                },
                P::ExponentialHistogram {
                    count: c2,
                    sum: s2,
                    scale: k2,
                    zero_count: z2,
                    zero_threshold,
                    positive: p2,
                    negative: m2,
                },
            ) if k1 == k2
                && p1.0 == p2.0
                && m1.0 == m2.0
                && p1.1.len() == p2.1.len()
                && m1.1.len() == m2.1.len() =>
            {
                P::ExponentialHistogram {
                    count: c1 + c2,
                    sum: sum(*s1, *s2),
                    scale: *k2,
                    zero_count: z1 + z2,
                    zero_threshold: *zero_threshold,
                    positive: (p2.0, plus(&p1.1, &p2.1)),
                    negative: (m2.0, plus(&m1.1, &m2.1)),
                }
            }
            _ => delta.clone(),
        }
    }
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
    /// A histogram's smallest and largest observation, when the sender gave them (kept by
    /// the ClickHouse store's `Min`/`Max` columns; PromQL has no use for them).
    pub min_max: (Option<f64>, Option<f64>),
}
