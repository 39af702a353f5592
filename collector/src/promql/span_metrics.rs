//! RED from spans as metrics, under the OpenTelemetry Collector spanmetrics connector's
//! names, so a Prometheus RED dashboard works from traces alone:
//! `traces_span_metrics_calls_total` and `traces_span_metrics_duration_seconds_bucket`,
//! `_sum`, `_count`, labelled `service_name`, `span_name`, `span_kind`
//! (`SPAN_KIND_SERVER`, ...) and `status_code` (`STATUS_CODE_UNSET`, `_OK`, `_ERROR`), with
//! the connector's default buckets.
//!
//! They are computed from the stored spans of the query's window (no rollups yet): counters
//! at every 15 s boundary, counting spans that started since the start of the data the
//! query reads. So `rate`, `increase` and `histogram_quantile` over them are exact for the
//! window; a counter's own value starts at zero there, as a connector's does when it starts.

use std::collections::BTreeMap;

use super::naming::format_float;
use super::{Engine, Labels, QueryError, Series};
use crate::store::SampleQuery;
use crate::store::clickhouse::rows::{kind_name, status_name};

pub const CALLS: &str = "traces_span_metrics_calls_total";
pub const DURATION: &str = "traces_span_metrics_duration_seconds";

/// The spanmetrics connector's default histogram bounds, in seconds.
pub const BOUNDS: [f64; 16] = [
    0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0,
];

/// Where the counters are sampled: every 15 s, on the epoch's 15 s boundaries.
pub const GRID_MS: i64 = 15_000;

/// The metric names span metrics answer to.
pub fn names() -> [String; 4] {
    [
        CALLS.to_string(),
        format!("{DURATION}_bucket"),
        format!("{DURATION}_sum"),
        format!("{DURATION}_count"),
    ]
}

/// Every span metric series over `[lo_ms, hi_ms]`, reading at most `max_spans` spans.
pub async fn series(engine: &Engine, lo_ms: i64, hi_ms: i64) -> Result<Vec<Series>, QueryError> {
    let max_spans = engine.limits.max_points;
    let samples = engine
        .store
        .span_samples(&SampleQuery {
            start_ns: lo_ms.saturating_mul(1_000_000),
            end_ns: hi_ms.saturating_mul(1_000_000),
            limit: max_spans,
            ..SampleQuery::default()
        })
        .await?;
    if samples.truncated {
        return Err(QueryError::TooLarge(format!(
            "span metrics over this window would read more than {max_spans} spans (the limit, --max-query-points): shorten the window"
        )));
    }
    // Grouping and counting is CPU work: off the runtime.
    tokio::task::spawn_blocking(move || {
        // Per series: each span's (start, duration), in start order.
        let mut groups: BTreeMap<Labels, Vec<(i64, i64)>> = BTreeMap::new();
        for s in &samples.spans {
            let labels = vec![
                (
                    "service_name".to_string(),
                    samples.name(s.service).to_string(),
                ),
                ("span_kind".to_string(), kind_name(s.kind).to_string()),
                (
                    "span_name".to_string(),
                    samples.name(s.operation).to_string(),
                ),
                ("status_code".to_string(), status_name(s.status).to_string()),
            ];
            groups
                .entry(labels)
                .or_default()
                .push((s.start_ns.div_euclid(1_000_000), s.duration_ns));
        }
        let mut out = Vec::new();
        for (labels, mut spans) in groups {
            spans.sort_unstable();
            out.extend(group_series(&labels, &spans, hi_ms));
        }
        out
    })
    .await
    .map_err(|e| QueryError::Store(crate::store::StoreError::Task(e.to_string())))
}

/// One group's counters at each 15 s boundary from its first span to `hi_ms`.
fn group_series(labels: &Labels, spans: &[(i64, i64)], hi_ms: i64) -> Vec<Series> {
    let Some(&(first, _)) = spans.first() else {
        return Vec::new();
    };
    let named = |name: &str, extra: Option<(&str, String)>| {
        let mut l = labels.clone();
        l.push(("__name__".into(), name.into()));
        if let Some((k, v)) = extra {
            l.push((k.into(), v));
        }
        l.sort();
        l
    };
    let mut calls = Vec::new();
    let mut sum = Vec::new();
    let mut buckets: Vec<Vec<(i64, f64)>> = vec![Vec::new(); BOUNDS.len() + 1];
    let (mut i, mut total, mut seconds) = (0usize, 0u64, 0.0f64);
    let mut per_bucket = vec![0u64; BOUNDS.len() + 1];
    // Zero at the last boundary before the first span (a counter starts from nothing, so
    // `increase` counts the first spans too), then each boundary after, and the window's
    // end.
    let zero = (first - 1).div_euclid(GRID_MS) * GRID_MS;
    calls.push((zero, 0.0));
    sum.push((zero, 0.0));
    buckets.iter_mut().for_each(|b| b.push((zero, 0.0)));
    let mut g = zero + GRID_MS;
    loop {
        let t = g.min(hi_ms);
        while let Some(&(start, duration)) = spans.get(i) {
            if start > t {
                break;
            }
            let d = duration as f64 / 1e9;
            total += 1;
            seconds += d;
            // `le` is inclusive: the first bound at or above the duration.
            per_bucket[BOUNDS.partition_point(|b| *b < d)] += 1;
            i += 1;
        }
        calls.push((t, total as f64));
        sum.push((t, seconds));
        let mut cumulative = 0;
        for (b, n) in per_bucket.iter().enumerate() {
            cumulative += n;
            buckets[b].push((t, cumulative as f64));
        }
        if g >= hi_ms {
            break;
        }
        g += GRID_MS;
    }
    let mut out = vec![
        Series {
            labels: named(CALLS, None),
            points: calls.clone(),
        },
        Series {
            labels: named(&format!("{DURATION}_count"), None),
            points: calls,
        },
        Series {
            labels: named(&format!("{DURATION}_sum"), None),
            points: sum,
        },
    ];
    for (b, points) in buckets.into_iter().enumerate() {
        let le = BOUNDS.get(b).copied().unwrap_or(f64::INFINITY);
        out.push(Series {
            labels: named(
                &format!("{DURATION}_bucket"),
                Some(("le", format_float(le))),
            ),
            points,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_step_at_each_boundary_and_buckets_are_cumulative() {
        let labels = vec![("service_name".to_string(), "shop".to_string())];
        // Spans at 1 s (3 ms), 20 s (0.3 s) and 31 s (20 s).
        let spans = [
            (1_000, 3_000_000),
            (20_000, 300_000_000),
            (31_000, 20_000_000_000),
        ];
        let series = group_series(&labels, &spans, 40_000);
        let calls = &series[0];
        assert_eq!(
            calls.points,
            vec![(0, 0.0), (15_000, 1.0), (30_000, 2.0), (40_000, 3.0)]
        );
        let bucket = |le: &str| {
            series
                .iter()
                .find(|s| s.labels.iter().any(|(k, v)| k == "le" && v == le))
                .map(|s| s.points.last().map(|p| p.1))
        };
        assert_eq!(bucket("0.004"), Some(Some(1.0)));
        assert_eq!(bucket("0.4"), Some(Some(2.0)));
        assert_eq!(bucket("15"), Some(Some(2.0)));
        assert_eq!(bucket("+Inf"), Some(Some(3.0)));
    }
}
