//! OTLP metrics → the model's [`MetricPoint`]s, each data point checked on its own: a
//! malformed one (no time, a start after its time, an unknown temporality, bucket counts
//! that do not fit their bounds or do not add up to the count, a counter that is NaN or
//! negative, a quantile outside 0..1) is counted for `partial_success` and the rest go on.
//! Each resource with attributes beyond its identity also gets a `target_info` point, as
//! Prometheus' translator makes one.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar as ProtoExemplar, ExponentialHistogramDataPoint, HistogramDataPoint, Metric,
    NumberDataPoint, SummaryDataPoint, exemplar, metric, number_data_point,
};

use super::convert::{self, Converted, clamp_ns, span_id, trace_id};
use crate::model::{
    Attributes, Exemplar, MetricKind, MetricPoint, MetricSeries, PointValue, Resource, Temporality,
};
use crate::promql::naming;

/// OpenTelemetry's `DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK`.
const NO_RECORDED_VALUE: u32 = 1;

/// Where a point comes from: what its series shares with the other points of its metric.
struct Origin<'a> {
    resource: &'a Arc<Resource>,
    scope: (&'a str, &'a str),
    metric: &'a Metric,
    kind: MetricKind,
    temporality: Temporality,
}

impl Origin<'_> {
    fn series(&self, attributes: Attributes) -> Arc<MetricSeries> {
        Arc::new(MetricSeries {
            name: self.metric.name.clone(),
            description: self.metric.description.clone(),
            unit: self.metric.unit.clone(),
            kind: self.kind,
            temporality: self.temporality,
            resource: self.resource.clone(),
            scope_name: self.scope.0.to_string(),
            scope_version: self.scope.1.to_string(),
            prometheus_name: naming::metric_name(&self.metric.name, &self.metric.unit, self.kind),
            labels: naming::series_labels(self.resource, &attributes),
            attributes,
        })
    }
}

/// A point's common fields, checked.
struct Stamp {
    start_ns: i64,
    time_ns: i64,
    no_value: bool,
}

fn stamp(start: u64, time: u64, flags: u32) -> Result<Stamp, &'static str> {
    if time == 0 {
        return Err("without a time_unix_nano");
    }
    if start > time {
        return Err("starting after their time_unix_nano");
    }
    Ok(Stamp {
        start_ns: clamp_ns(start),
        time_ns: clamp_ns(time),
        no_value: flags & NO_RECORDED_VALUE != 0,
    })
}

pub fn metrics(req: ExportMetricsServiceRequest) -> Converted {
    let mut out = Converted::default();
    for rm in req.resource_metrics {
        let resource = Arc::new(convert::resource(rm.resource));
        let first = out.batch.metrics.len();
        for sm in rm.scope_metrics {
            let (scope_name, scope_version) =
                sm.scope.map(|s| (s.name, s.version)).unwrap_or_default();
            for metric in &sm.metrics {
                convert_metric(&resource, (&scope_name, &scope_version), metric, &mut out);
            }
        }
        let latest = out.batch.metrics[first..].iter().map(|p| p.time_ns).max();
        if let Some(time_ns) = latest {
            target_info(&resource, time_ns, &mut out);
        }
    }
    out
}

fn convert_metric(
    resource: &Arc<Resource>,
    scope: (&str, &str),
    metric: &Metric,
    out: &mut Converted,
) {
    let Some(data) = &metric.data else {
        return;
    };
    let (kind, temporality, points) = match data {
        metric::Data::Gauge(g) => (MetricKind::Gauge, 0, g.data_points.len()),
        metric::Data::Sum(s) => (
            if s.is_monotonic {
                MetricKind::Counter
            } else {
                MetricKind::UpDownSum
            },
            s.aggregation_temporality,
            s.data_points.len(),
        ),
        metric::Data::Histogram(h) => (
            MetricKind::Histogram,
            h.aggregation_temporality,
            h.data_points.len(),
        ),
        metric::Data::ExponentialHistogram(h) => (
            MetricKind::ExponentialHistogram,
            h.aggregation_temporality,
            h.data_points.len(),
        ),
        metric::Data::Summary(s) => (MetricKind::Summary, 0, s.data_points.len()),
    };
    let temporality = match (kind, temporality) {
        (MetricKind::Gauge | MetricKind::Summary, _) => Temporality::None,
        (_, 1) => Temporality::Delta,
        (_, 2) => Temporality::Cumulative,
        _ => {
            for _ in 0..points {
                out.rejected
                    .add("of a metric with no known aggregation_temporality");
            }
            return;
        }
    };
    if metric.name.is_empty() {
        for _ in 0..points {
            out.rejected.add("of a metric without a name");
        }
        return;
    }
    let origin = Origin {
        resource,
        scope,
        metric,
        kind,
        temporality,
    };
    let converted: Vec<Result<MetricPoint, &'static str>> = match data {
        metric::Data::Gauge(g) => g.data_points.iter().map(|p| number(&origin, p)).collect(),
        metric::Data::Sum(s) => s.data_points.iter().map(|p| number(&origin, p)).collect(),
        metric::Data::Histogram(h) => h
            .data_points
            .iter()
            .map(|p| histogram(&origin, p))
            .collect(),
        metric::Data::ExponentialHistogram(h) => h
            .data_points
            .iter()
            .map(|p| exponential(&origin, p))
            .collect(),
        metric::Data::Summary(s) => s.data_points.iter().map(|p| summary(&origin, p)).collect(),
    };
    for point in converted {
        match point {
            Ok(p) => out.batch.metrics.push(p),
            Err(reason) => out.rejected.add(reason),
        }
    }
}

fn point(
    origin: &Origin<'_>,
    stamp: Stamp,
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    value: PointValue,
    exemplars: &[ProtoExemplar],
) -> MetricPoint {
    MetricPoint {
        series: origin.series(convert::attributes(attributes.to_vec())),
        start_ns: stamp.start_ns,
        time_ns: stamp.time_ns,
        value,
        no_value: stamp.no_value,
        exemplars: exemplars.iter().map(exemplar).collect(),
        min_max: (None, None),
    }
}

fn number(origin: &Origin<'_>, p: &NumberDataPoint) -> Result<MetricPoint, &'static str> {
    let stamp = stamp(p.start_time_unix_nano, p.time_unix_nano, p.flags)?;
    let value = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None if stamp.no_value => f64::NAN,
        None => return Err("without a value"),
    };
    if origin.kind == MetricKind::Counter && !stamp.no_value && (value.is_nan() || value < 0.0) {
        return Err("of a monotonic sum that is NaN or negative");
    }
    Ok(point(
        origin,
        stamp,
        &p.attributes,
        PointValue::Number(value),
        &p.exemplars,
    ))
}

fn histogram(origin: &Origin<'_>, p: &HistogramDataPoint) -> Result<MetricPoint, &'static str> {
    let stamp = stamp(p.start_time_unix_nano, p.time_unix_nano, p.flags)?;
    let bounds = &p.explicit_bounds;
    if !p.bucket_counts.is_empty() && p.bucket_counts.len() != bounds.len() + 1 {
        return Err("of a histogram whose bucket_counts are not one more than its explicit_bounds");
    }
    if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err("of a histogram whose explicit_bounds are not finite and increasing");
    }
    // Added as u128: counts near u64::MAX would overflow (wrap, in a release build) and
    // could then seem to add up.
    let total: u128 = p.bucket_counts.iter().map(|&c| u128::from(c)).sum();
    if !p.bucket_counts.is_empty() && total != u128::from(p.count) {
        return Err("of a histogram whose bucket_counts do not add up to its count");
    }
    let counts = if p.bucket_counts.is_empty() {
        // A histogram without buckets: one bucket, everything in it.
        vec![p.count]
    } else {
        p.bucket_counts.clone()
    };
    let bounds = if p.bucket_counts.is_empty() {
        Vec::new()
    } else {
        bounds.clone()
    };
    let value = PointValue::Histogram {
        count: p.count,
        sum: p.sum,
        bounds,
        counts,
    };
    let mut point = point(origin, stamp, &p.attributes, value, &p.exemplars);
    point.min_max = (p.min, p.max);
    Ok(point)
}

fn exponential(
    origin: &Origin<'_>,
    p: &ExponentialHistogramDataPoint,
) -> Result<MetricPoint, &'static str> {
    let stamp = stamp(p.start_time_unix_nano, p.time_unix_nano, p.flags)?;
    let buckets = |b: &Option<_>| match b {
        Some(
            opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets {
                offset,
                bucket_counts,
            },
        ) => (*offset, bucket_counts.clone()),
        None => (0, Vec::new()),
    };
    let positive = buckets(&p.positive);
    let negative = buckets(&p.negative);
    let total = p.zero_count as u128
        + positive.1.iter().map(|&c| c as u128).sum::<u128>()
        + negative.1.iter().map(|&c| c as u128).sum::<u128>();
    if total != p.count as u128 {
        return Err("of an exponential histogram whose bucket counts do not add up to its count");
    }
    if !(-10..=20).contains(&p.scale) || p.zero_threshold.is_nan() || p.zero_threshold < 0.0 {
        return Err(
            "of an exponential histogram with a scale outside -10..20 or a negative zero_threshold",
        );
    }
    let value = PointValue::ExponentialHistogram {
        count: p.count,
        sum: p.sum,
        scale: p.scale,
        zero_count: p.zero_count,
        zero_threshold: p.zero_threshold,
        positive,
        negative,
    };
    let mut point = point(origin, stamp, &p.attributes, value, &p.exemplars);
    point.min_max = (p.min, p.max);
    Ok(point)
}

fn summary(origin: &Origin<'_>, p: &SummaryDataPoint) -> Result<MetricPoint, &'static str> {
    let stamp = stamp(p.start_time_unix_nano, p.time_unix_nano, p.flags)?;
    if p.quantile_values
        .iter()
        .any(|q| !(0.0..=1.0).contains(&q.quantile))
    {
        return Err("of a summary with a quantile outside 0..1");
    }
    let value = PointValue::Summary {
        count: p.count,
        sum: p.sum,
        quantiles: p
            .quantile_values
            .iter()
            .map(|q| (q.quantile, q.value))
            .collect(),
    };
    Ok(point(origin, stamp, &p.attributes, value, &[]))
}

fn exemplar(e: &ProtoExemplar) -> Exemplar {
    Exemplar {
        time_ns: clamp_ns(e.time_unix_nano),
        value: match e.value {
            Some(exemplar::Value::AsDouble(d)) => d,
            Some(exemplar::Value::AsInt(i)) => i as f64,
            None => f64::NAN,
        },
        trace_id: trace_id(&e.trace_id),
        span_id: span_id(&e.span_id),
        attributes: convert::attributes(e.filtered_attributes.clone()),
    }
}

/// `target_info{job, instance, ...}` = 1 at the resource's latest point, when the resource
/// says more than who it is.
fn target_info(resource: &Arc<Resource>, time_ns: i64, out: &mut Converted) {
    let extra = naming::target_info_attributes(resource);
    if extra.is_empty() {
        return;
    }
    let series = MetricSeries {
        name: "target_info".into(),
        description: "Target metadata".into(),
        unit: String::new(),
        kind: MetricKind::Gauge,
        temporality: Temporality::None,
        resource: resource.clone(),
        scope_name: String::new(),
        scope_version: String::new(),
        prometheus_name: "target_info".into(),
        labels: naming::series_labels(resource, &extra),
        attributes: extra,
    };
    out.batch.metrics.push(MetricPoint {
        series: Arc::new(series),
        start_ns: 0,
        time_ns,
        value: PointValue::Number(1.0),
        no_value: false,
        exemplars: Vec::new(),
        min_max: (None, None),
    });
}
