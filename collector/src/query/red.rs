//! `GET /api/v1/red?service=&operation=&version=&start=&end=&step=`: rate, errors and
//! duration (p50, p95, p99) of the requests a service served over time, computed from its
//! SERVER and CONSUMER spans: the whole service and each operation, or one operation; all
//! its versions, or the instances of one `service.version` (a canary's two sides).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use gauntlet_query_api::params::{Pairs, RedQuery};
use gauntlet_query_api::red::{Red, RedPoint, RedSeries};

use super::{ApiError, QueryState, parse};
use crate::model::{SpanKind, now_ns};
use crate::store::{SampleQuery, Samples, SpanSample};

/// Spans one answer reads at most (the newest in the window); past it, `truncated` is true.
pub const MAX_SPANS: usize = 2_000_000;
/// Points a series has at most: a finer step over a longer window is refused.
pub const MAX_POINTS: i64 = 1_440;
const DEFAULT_WINDOW_NS: i64 = 3_600_000_000_000;

pub async fn red(
    State(s): State<QueryState>,
    Query(pairs): Query<Pairs>,
) -> Result<Response, ApiError> {
    let q: RedQuery = parse(&pairs)?;
    let end = q.end_ns.unwrap_or_else(now_ns);
    let start = q.start_ns.unwrap_or(end - DEFAULT_WINDOW_NS);
    if start >= end {
        return Err(ApiError::bad_request(format!(
            "start ({start} ns) must be before end ({end} ns)"
        )));
    }
    // By default sixty points, each a whole number of seconds.
    let step = q
        .step_ns
        .unwrap_or_else(|| ceil_div((end - start) / 60, 1_000_000_000).max(1) * 1_000_000_000);
    let points = ceil_div(end - start, step);
    if points > MAX_POINTS {
        return Err(ApiError::bad_request(format!(
            "{points} steps of {}s: at most {MAX_POINTS}; give a longer step or a shorter window",
            step / 1_000_000_000
        )));
    }
    let samples = s
        .store
        .span_samples(&SampleQuery {
            service: Some(q.service.clone()),
            operation: q.operation.clone(),
            version: q.version.clone(),
            kinds: vec![SpanKind::Server, SpanKind::Consumer],
            start_ns: start,
            end_ns: end,
            limit: MAX_SPANS,
            protocols: false,
        })
        .await?;
    Ok(axum::Json(Red {
        series: series(&samples, q.operation.is_none(), start, end, step),
        service: q.service,
        operation: q.operation,
        version: q.version,
        start: start / 1000,
        end: end / 1000,
        step: step / 1000,
        truncated: samples.truncated,
    })
    .into_response())
}

/// The whole series (and, with `per_operation`, one per operation, busiest first).
pub fn series(
    samples: &Samples,
    per_operation: bool,
    start: i64,
    end: i64,
    step: i64,
) -> Vec<RedSeries> {
    let all: Vec<&SpanSample> = samples.spans.iter().collect();
    let mut out = vec![RedSeries {
        operation: None,
        points: points(&all, start, end, step),
    }];
    if !per_operation {
        return out;
    }
    let mut by_op: HashMap<u32, Vec<&SpanSample>> = HashMap::new();
    for s in &samples.spans {
        by_op.entry(s.operation).or_default().push(s);
    }
    let mut ops: Vec<(u32, Vec<&SpanSample>)> = by_op.into_iter().collect();
    ops.sort_by(|a, b| {
        b.1.len()
            .cmp(&a.1.len())
            .then_with(|| samples.name(a.0).cmp(samples.name(b.0)))
    });
    out.extend(ops.into_iter().map(|(op, spans)| RedSeries {
        operation: Some(samples.name(op).to_string()),
        points: points(&spans, start, end, step),
    }));
    out
}

fn points(spans: &[&SpanSample], start: i64, end: i64, step: i64) -> Vec<RedPoint> {
    let n = ceil_div(end - start, step).max(1) as usize;
    let mut buckets: Vec<(u64, u64, Vec<i64>)> = (0..n).map(|_| (0, 0, Vec::new())).collect();
    for s in spans {
        let k = ((s.start_ns - start) / step) as usize;
        if let Some(b) = buckets.get_mut(k) {
            b.0 += u64::from(s.error);
            b.1 += u64::from(s.http_status == Some(429));
            b.2.push(s.duration_ns);
        }
    }
    let pct = |n: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    let step_s = step as f64 / 1e9;
    buckets
        .into_iter()
        .enumerate()
        .map(|(k, (errors, throttled, mut durations))| {
            let requests = durations.len() as u64;
            RedPoint {
                time: (start + k as i64 * step) / 1000,
                requests,
                rate: requests as f64 / step_s,
                errors,
                error_pct: pct(errors, requests),
                throttled,
                throttled_pct: pct(throttled, requests),
                p50_ms: percentile_ms(&mut durations, 0.50),
                p95_ms: percentile_ms(&mut durations, 0.95),
                p99_ms: percentile_ms(&mut durations, 0.99),
            }
        })
        .collect()
}

/// `a / b` rounded up, for `a >= 0` and `b > 0` (`i64::div_ceil` is not stable).
fn ceil_div(a: i64, b: i64) -> i64 {
    a / b + i64::from(a % b != 0)
}

/// The nearest-rank percentile `q` of durations in ns, in milliseconds: an exact value that
/// was measured, the same on every store.
pub fn percentile_ms(durations_ns: &mut [i64], q: f64) -> Option<f64> {
    if durations_ns.is_empty() {
        return None;
    }
    let rank = ((q * durations_ns.len() as f64).ceil() as usize).clamp(1, durations_ns.len());
    let (_, v, _) = durations_ns.select_nth_unstable(rank - 1);
    Some(*v as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(op: u32, start_s: i64, ms: i64, error: bool) -> SpanSample {
        SpanSample {
            trace_id: [1; 16],
            span_id: [start_s as u8; 8],
            parent_span_id: None,
            link: None,
            service: 0,
            operation: op,
            kind: SpanKind::Server,
            start_ns: start_s * 1_000_000_000,
            duration_ns: ms * 1_000_000,
            error,
            status: if error {
                crate::model::StatusCode::Error
            } else {
                crate::model::StatusCode::Unset
            },
            http_status: None,
            protocol: None,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut d: Vec<i64> = (1..=100).map(|ms| ms * 1_000_000).collect();
        assert_eq!(percentile_ms(&mut d, 0.50), Some(50.0));
        assert_eq!(percentile_ms(&mut d, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&mut [7_000_000], 0.99), Some(7.0));
        assert_eq!(percentile_ms(&mut [], 0.5), None);
    }

    #[test]
    fn refused_as_too_many_is_counted_apart_from_errors() {
        let mut throttled = sample(0, 1, 1, false);
        throttled.http_status = Some(429);
        let mut served = sample(0, 2, 1, false);
        served.http_status = Some(200);
        let samples = Samples {
            spans: vec![throttled, throttled, served],
            names: vec!["GET /a".into()],
            truncated: false,
        };
        let s = 1_000_000_000;
        let point = &series(&samples, true, 0, 10 * s, 10 * s)[0].points[0];
        assert_eq!((point.requests, point.errors, point.throttled), (3, 0, 2));
        assert!((point.throttled_pct - 200.0 / 3.0).abs() < 1e-9);
    }

    #[test]
    fn requests_fall_in_their_step_and_empty_steps_are_kept() {
        let samples = Samples {
            spans: vec![
                sample(0, 0, 10, false),
                sample(0, 5, 30, true),
                sample(1, 9, 20, false),
                sample(1, 25, 40, false),
                // Outside the window: not counted.
                sample(1, 30, 1, false),
            ],
            names: vec!["GET /a".into(), "GET /b".into()],
            truncated: false,
        };
        let s = 1_000_000_000;
        let got = series(&samples, true, 0, 30 * s, 10 * s);
        assert_eq!(got.len(), 3);
        let all = &got[0];
        assert_eq!(all.operation, None);
        let counts: Vec<u64> = all.points.iter().map(|p| p.requests).collect();
        assert_eq!(counts, [3, 0, 1]);
        assert_eq!(all.points[0].time, 0);
        assert_eq!(all.points[1].time, 10_000_000);
        assert_eq!(all.points[0].errors, 1);
        assert!((all.points[0].error_pct - 100.0 / 3.0).abs() < 1e-9);
        assert!((all.points[0].rate - 0.3).abs() < 1e-9);
        assert_eq!(all.points[0].p50_ms, Some(20.0));
        assert_eq!(all.points[0].p99_ms, Some(30.0));
        assert_eq!(all.points[1].p50_ms, None);
        // GET /b served more requests than GET /a: it comes first.
        assert_eq!(got[1].operation.as_deref(), Some("GET /b"));
        assert_eq!(got[2].operation.as_deref(), Some("GET /a"));
        let b: Vec<u64> = got[1].points.iter().map(|p| p.requests).collect();
        assert_eq!(b, [1, 0, 1]);
    }
}
