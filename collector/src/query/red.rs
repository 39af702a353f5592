//! `GET /api/v1/red?service=&operation=&version=&start=&end=&step=`: rate, errors and
//! duration (p50, p95, p99) of the requests a service served over time, computed from its
//! SERVER and CONSUMER spans: the whole service and each operation, or one operation; all
//! its versions, or the instances of one `service.version` (a canary's two sides).
//!
//! A step of whole 10 s buckets (the default for windows of 10 minutes and more) reads the
//! rollups written at ingest (`crate::rollup`): the window then starts at a whole bucket (a
//! whole minute or hour when the step is whole minutes or hours, so that a store's coarser
//! tiers answer a long window), counts are exact and percentiles within 1 % of the exact
//! ones. Any other step reads the spans (at most [`MAX_SPANS`], `truncated` past it) and
//! gives exact percentiles.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use gauntlet_query_api::params::{Pairs, RedQuery};
use gauntlet_query_api::red::{Red, RedPoint, RedSeries};

use super::{ApiError, QueryState, parse};
use crate::model::{SpanKind, now_ns};
use crate::rollup::{
    BUCKET_NS, RedSteps, aligned_start, bucket_of, ceil_div, default_step_ns, tier_width_ns,
};
use crate::store::{RollupQuery, SampleQuery, Samples, SpanSample};

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
    let (start, end) = match (q.start_ns, q.end_ns) {
        // The default window, the last hour, ends at the next whole row of the coarsest
        // rollup tier its step is made of: its points are then whole rows too.
        (None, None) => {
            let step = q
                .step_ns
                .unwrap_or_else(|| default_step_ns(DEFAULT_WINDOW_NS));
            let width = tier_width_ns(step);
            let end = ceil_div(now_ns(), width) * width;
            (end - DEFAULT_WINDOW_NS, end)
        }
        (start, end) => {
            let end = end.unwrap_or_else(now_ns);
            (start.unwrap_or(end - DEFAULT_WINDOW_NS), end)
        }
    };
    if start >= end {
        return Err(ApiError::bad_request(format!(
            "start ({start} ns) must be before end ({end} ns)"
        )));
    }
    let step = q.step_ns.unwrap_or_else(|| default_step_ns(end - start));
    let points = ceil_div(end - start, step);
    if points > MAX_POINTS {
        return Err(ApiError::bad_request(format!(
            "{points} steps of {}s: at most {MAX_POINTS}; give a longer step or a shorter window",
            step / 1_000_000_000
        )));
    }
    let kinds = vec![SpanKind::Server, SpanKind::Consumer];
    if step % BUCKET_NS == 0 {
        return from_rollups(&s, q, kinds, start, end, step).await;
    }
    let samples = s
        .store
        .span_samples(&SampleQuery {
            service: Some(q.service.clone()),
            operation: q.operation.clone(),
            version: q.version.clone(),
            kinds,
            start_ns: start,
            end_ns: end,
            limit: MAX_SPANS,
            protocols: false,
        })
        .await?;
    let series = series(&samples, q.operation.is_none(), start, end, step);
    Ok(answer(q, series, (start, end, step), samples.truncated))
}

/// The answer: the series, what was asked, and the window in µs.
fn answer(
    q: RedQuery,
    series: Vec<RedSeries>,
    (start, end, step): (i64, i64, i64),
    truncated: bool,
) -> Response {
    axum::Json(Red {
        series,
        service: q.service,
        operation: q.operation,
        version: q.version,
        start: start / 1000,
        end: end / 1000,
        step: step / 1000,
        truncated,
    })
    .into_response()
}

/// A step of whole rollup buckets: the window starts at a whole bucket, or minute or hour
/// when the step is made of them (`start` rounded down, [`aligned_start`]), and each point is the merge of its buckets' cells (counts exact, percentiles within
/// the sketch's 1 %).
async fn from_rollups(
    s: &QueryState,
    q: RedQuery,
    kinds: Vec<SpanKind>,
    start: i64,
    end: i64,
    step: i64,
) -> Result<Response, ApiError> {
    let start = aligned_start(start, step);
    let n = ceil_div(end - start, step).max(1);
    let first = bucket_of(start);
    let per_step = step / BUCKET_NS;
    let steps = s
        .store
        .red_steps(&RollupQuery {
            service: q.service.clone(),
            operation: q.operation.clone(),
            version: q.version.clone(),
            kinds,
            buckets: (first, first + n * per_step),
            buckets_per_step: per_step,
        })
        .await?;
    let series = step_series(&steps, q.operation.is_none(), start, n as usize, step);
    Ok(answer(q, series, (start, end, step), steps.truncated))
}

/// The whole series from a store's steps (and, with `per_operation`, one per operation,
/// busiest first); `n` steps from `start`.
pub fn step_series(
    steps: &RedSteps,
    per_operation: bool,
    start: i64,
    n: usize,
    step: i64,
) -> Vec<RedSeries> {
    let points = |op: Option<u32>| -> Vec<RedPoint> {
        let mut points: Vec<RedPoint> = (0..n)
            .map(|k| point(start + k as i64 * step, step, (0, 0, 0), [None; 3]))
            .collect();
        for s in steps.steps.iter().filter(|s| s.operation == op) {
            if let Some(p) = points.get_mut(s.step as usize) {
                let ms = s.percentiles_ns.map(|ns| ns.map(|ns| ns / 1e6));
                *p = point(p.time * 1000, step, (s.requests, s.errors, s.throttled), ms);
            }
        }
        points
    };
    let mut out = vec![RedSeries {
        operation: None,
        points: points(None),
    }];
    if !per_operation {
        return out;
    }
    let mut ops: Vec<(u64, u32)> = (0..steps.names.len() as u32)
        .map(|op| {
            let mine = steps.steps.iter().filter(|s| s.operation == Some(op));
            (mine.map(|s| s.requests).sum(), op)
        })
        .collect();
    ops.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then_with(|| steps.name(a.1).cmp(steps.name(b.1)))
    });
    out.extend(ops.into_iter().map(|(_, op)| RedSeries {
        operation: Some(steps.name(op).to_string()),
        points: points(Some(op)),
    }));
    out
}

/// One point: its counts per step and its p50, p95 and p99 in milliseconds.
fn point(time_ns: i64, step: i64, counts: (u64, u64, u64), pcts: [Option<f64>; 3]) -> RedPoint {
    let (requests, errors, throttled) = counts;
    let pct = |n: u64| {
        if requests == 0 {
            0.0
        } else {
            100.0 * n as f64 / requests as f64
        }
    };
    RedPoint {
        time: time_ns / 1000,
        requests,
        rate: requests as f64 / (step as f64 / 1e9),
        errors,
        error_pct: pct(errors),
        throttled,
        throttled_pct: pct(throttled),
        p50_ms: pcts[0],
        p95_ms: pcts[1],
        p99_ms: pcts[2],
    }
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
    buckets
        .into_iter()
        .enumerate()
        .map(|(k, (errors, throttled, mut durations))| {
            let requests = durations.len() as u64;
            let pcts = [0.50, 0.95, 0.99].map(|q| percentile_ms(&mut durations, q));
            point(
                start + k as i64 * step,
                step,
                (requests, errors, throttled),
                pcts,
            )
        })
        .collect()
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

    #[test]
    fn steps_from_a_store_fill_their_points_busiest_operation_first() {
        use crate::rollup::RedStep;
        let step = |step: u32, operation: Option<u32>, requests: u64| RedStep {
            step,
            operation,
            requests,
            errors: 1,
            throttled: 0,
            percentiles_ns: [Some(2e6), Some(3e6), Some(4e6)],
        };
        let steps = RedSteps {
            names: vec!["GET /a".into(), "GET /b".into()],
            steps: vec![
                step(0, None, 3),
                step(0, Some(0), 1),
                step(0, Some(1), 3),
                step(2, None, 1),
                step(2, Some(0), 1),
            ],
            truncated: false,
        };
        let s = BUCKET_NS;
        let got = step_series(&steps, true, 100 * s, 3, 2 * s);
        let ops: Vec<Option<&str>> = got.iter().map(|x| x.operation.as_deref()).collect();
        assert_eq!(ops, [None, Some("GET /b"), Some("GET /a")]);
        let all = &got[0].points;
        let counts: Vec<u64> = all.iter().map(|p| p.requests).collect();
        assert_eq!(counts, [3, 0, 1]);
        assert_eq!(all[1].time, (102 * s) / 1000);
        assert_eq!((all[0].p99_ms, all[1].p50_ms), (Some(4.0), None));
        assert!((all[0].error_pct - 100.0 / 3.0).abs() < 1e-9);
        assert!((all[0].rate - 3.0 / 20.0).abs() < 1e-9);
        assert_eq!(got[1].points[0].requests, 3);
        assert_eq!(step_series(&steps, false, 0, 3, 2 * s).len(), 1);
    }
}
