//! PromQL functions, as Prometheus 2.42 computes them: the rate family with its
//! extrapolation to the window's edges and counter resets, the `*_over_time` family,
//! `histogram_quantile` over `le` buckets, and the scalar and math functions. A function
//! outside this list is refused by name.

use promql_parser::parser::{Call, Expr};

use super::eval::{Evaluator, drop_name};
use super::{QueryError, Sample, Series, Value};

/// The functions [`call`] evaluates; any other is refused before anything is read.
pub const SUPPORTED: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "present_over_time",
    "quantile_over_time",
    "abs",
    "ceil",
    "floor",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "round",
    "clamp_min",
    "clamp_max",
    "clamp",
    "histogram_quantile",
    "time",
    "vector",
    "scalar",
    "sort",
    "sort_desc",
];

pub fn call(ev: &Evaluator<'_>, c: &Call, t: i64) -> Result<Value, QueryError> {
    let name = c.func.name;
    let args = &c.args.args;
    let arg = |i: usize| -> Result<&Expr, QueryError> {
        args.get(i).map(|b| b.as_ref()).ok_or_else(|| {
            QueryError::BadData(format!("{name}() is missing its argument {}", i + 1))
        })
    };
    Ok(match name {
        "rate" | "increase" | "delta" | "irate" | "idelta" => {
            let window = arg_window(arg(0)?, t);
            let (range_s, matrix) = matrix_arg(ev, arg(0)?, t)?;
            Value::Vector(
                matrix
                    .into_iter()
                    .filter_map(|s| {
                        let v = match name {
                            "rate" => extrapolated(&s.points, range_s, window, true, true),
                            "increase" => extrapolated(&s.points, range_s, window, true, false),
                            "delta" => extrapolated(&s.points, range_s, window, false, false),
                            "irate" => instant_delta(&s.points, true),
                            _ => instant_delta(&s.points, false),
                        }?;
                        Some(Sample {
                            labels: drop_name(s.labels),
                            value: v,
                        })
                    })
                    .collect(),
            )
        }
        "avg_over_time" | "min_over_time" | "max_over_time" | "sum_over_time"
        | "count_over_time" | "last_over_time" | "stddev_over_time" | "stdvar_over_time"
        | "present_over_time" => {
            let (_, matrix) = matrix_arg(ev, arg(0)?, t)?;
            Value::Vector(
                matrix
                    .into_iter()
                    .map(|s| {
                        let values: Vec<f64> = s.points.iter().map(|p| p.1).collect();
                        let labels = if name == "last_over_time" {
                            s.labels
                        } else {
                            drop_name(s.labels)
                        };
                        Sample {
                            labels,
                            value: over_time(name, &values),
                        }
                    })
                    .collect(),
            )
        }
        "quantile_over_time" => {
            let q = scalar_arg(ev, arg(0)?, t)?;
            let (_, matrix) = matrix_arg(ev, arg(1)?, t)?;
            Value::Vector(
                matrix
                    .into_iter()
                    .map(|s| {
                        let values: Vec<f64> = s.points.iter().map(|p| p.1).collect();
                        Sample {
                            labels: drop_name(s.labels),
                            value: quantile(q, values),
                        }
                    })
                    .collect(),
            )
        }
        "abs" | "ceil" | "floor" | "exp" | "ln" | "log2" | "log10" | "sqrt" | "round"
        | "clamp_min" | "clamp_max" | "clamp" => math(ev, name, args, t)?,
        "histogram_quantile" => {
            let q = scalar_arg(ev, arg(0)?, t)?;
            let v = vector_arg(ev, arg(1)?, t)?;
            Value::Vector(histogram_quantile(q, v))
        }
        "time" => Value::Scalar(t as f64 / 1000.0),
        "vector" => Value::Vector(vec![Sample {
            labels: Vec::new(),
            value: scalar_arg(ev, arg(0)?, t)?,
        }]),
        "scalar" => {
            let v = vector_arg(ev, arg(0)?, t)?;
            Value::Scalar(if v.len() == 1 { v[0].value } else { f64::NAN })
        }
        "sort" | "sort_desc" => {
            let mut v = vector_arg(ev, arg(0)?, t)?;
            v.sort_by(|a, b| a.value.total_cmp(&b.value));
            if name == "sort_desc" {
                v.reverse();
            }
            Value::Vector(v)
        }
        other => {
            return Err(QueryError::BadData(format!(
                "the function {other}() is not supported by this collector's PromQL"
            )));
        }
    })
}

/// The window of a range argument at `t`: (start, end) in milliseconds.
fn arg_window(e: &Expr, t: i64) -> (i64, i64) {
    match e {
        Expr::MatrixSelector(ms) => {
            let end = t.saturating_sub(super::select::offset_ms(&ms.vs));
            (end.saturating_sub(super::select::millis(&ms.range)), end)
        }
        _ => (t, t),
    }
}

fn matrix_arg(ev: &Evaluator<'_>, e: &Expr, t: i64) -> Result<(f64, Vec<Series>), QueryError> {
    match e {
        Expr::MatrixSelector(ms) => Ok((ms.range.as_secs_f64(), ev.matrix(ms, t))),
        _ => Err(QueryError::BadData(
            "expected a range vector selector (subqueries are not supported)".into(),
        )),
    }
}

fn vector_arg(ev: &Evaluator<'_>, e: &Expr, t: i64) -> Result<Vec<Sample>, QueryError> {
    match ev.eval(e, t)? {
        Value::Vector(v) => Ok(v),
        _ => Err(QueryError::BadData(
            "expected an instant vector argument".into(),
        )),
    }
}

fn scalar_arg(ev: &Evaluator<'_>, e: &Expr, t: i64) -> Result<f64, QueryError> {
    match ev.eval(e, t)? {
        Value::Scalar(v) => Ok(v),
        _ => Err(QueryError::BadData("expected a scalar argument".into())),
    }
}

/// `rate`, `increase` and `delta`: Prometheus' `extrapolatedRate`.
fn extrapolated(
    points: &[(i64, f64)],
    range_s: f64,
    window: (i64, i64),
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let mut result = last.1 - first.1;
    if counter {
        let mut previous = 0.0;
        for &(_, v) in points {
            if v < previous {
                result += previous;
            }
            previous = v;
        }
    }
    let mut to_start = (first.0 - window.0) as f64 / 1000.0;
    let to_end = (window.1 - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (points.len() - 1) as f64;
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    result *= interval / sampled;
    if per_second {
        result /= range_s;
    }
    Some(result)
}

/// `irate` and `idelta`: the last two samples.
fn instant_delta(points: &[(i64, f64)], rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (prev, last) = (points[points.len() - 2], points[points.len() - 1]);
    let mut result = if rate && last.1 < prev.1 {
        // A counter reset: the last value is the increase.
        last.1
    } else {
        last.1 - prev.1
    };
    if rate {
        let interval = (last.0 - prev.0) as f64 / 1000.0;
        if interval == 0.0 {
            return None;
        }
        result /= interval;
    }
    Some(result)
}

fn over_time(name: &str, values: &[f64]) -> f64 {
    let n = values.len() as f64;
    match name {
        "avg_over_time" => mean(values),
        "min_over_time" => values
            .iter()
            .copied()
            .fold(f64::NAN, |m, v| if m.is_nan() || v < m { v } else { m }),
        "max_over_time" => values
            .iter()
            .copied()
            .fold(f64::NAN, |m, v| if m.is_nan() || v > m { v } else { m }),
        "sum_over_time" => values.iter().sum(),
        "count_over_time" => n,
        "last_over_time" => values.last().copied().unwrap_or(f64::NAN),
        "present_over_time" => 1.0,
        // stddev and stdvar.
        _ => {
            let var = variance(values);
            if name == "stddev_over_time" {
                var.sqrt()
            } else {
                var
            }
        }
    }
}

/// The population variance, by Welford's running mean (as Prometheus computes it).
pub fn variance(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut aux) = (0.0, 0.0, 0.0);
    for &v in values {
        count += 1.0;
        let delta = v - mean;
        mean += delta / count;
        aux += delta * (v - mean);
    }
    aux / count
}

/// The mean as a running average (Prometheus' `avg` and `avg_over_time`).
pub fn mean(values: &[f64]) -> f64 {
    let mut mean = 0.0;
    for (i, v) in values.iter().enumerate() {
        let count = (i + 1) as f64;
        mean += v / count - mean / count;
    }
    mean
}

/// The φ-quantile of values, interpolated between the closest ranks (Prometheus' rule).
pub fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn math(ev: &Evaluator<'_>, name: &str, args: &[Box<Expr>], t: i64) -> Result<Value, QueryError> {
    let Some(first) = args.first() else {
        return Err(QueryError::BadData(format!("{name}() needs an argument")));
    };
    let v = vector_arg(ev, first, t)?;
    let scalars: Vec<f64> = args[1..]
        .iter()
        .map(|a| scalar_arg(ev, a, t))
        .collect::<Result<_, _>>()?;
    let s = |i: usize| scalars.get(i).copied().unwrap_or(f64::NAN);
    if name == "clamp" && s(0) > s(1) {
        return Ok(Value::Vector(Vec::new()));
    }
    let f = |x: f64| -> f64 {
        match name {
            "abs" => x.abs(),
            "ceil" => x.ceil(),
            "floor" => x.floor(),
            "exp" => x.exp(),
            "ln" => x.ln(),
            "log2" => x.log2(),
            "log10" => x.log10(),
            "sqrt" => x.sqrt(),
            "round" => {
                let to = if scalars.is_empty() { 1.0 } else { s(0) };
                // Go's rounding: halves up, to the nearest multiple of `to`.
                let inverse = 1.0 / to;
                (x * inverse + 0.5).floor() / inverse
            }
            "clamp_min" => x.max(s(0)),
            "clamp_max" => x.min(s(0)),
            // clamp
            _ => x.max(s(0)).min(s(1)),
        }
    };
    Ok(Value::Vector(
        v.into_iter()
            .map(|x| Sample {
                labels: drop_name(x.labels),
                value: f(x.value),
            })
            .collect(),
    ))
}

/// `histogram_quantile(φ, buckets)`: per label set without `le`, Prometheus' `bucketQuantile`.
fn histogram_quantile(q: f64, v: Vec<Sample>) -> Vec<Sample> {
    let mut groups: std::collections::BTreeMap<super::Labels, Vec<(f64, f64)>> =
        std::collections::BTreeMap::new();
    for s in v {
        let Some(le) = s
            .labels
            .iter()
            .find(|(k, _)| k == "le")
            .and_then(|(_, v)| parse_le(v))
        else {
            continue;
        };
        let labels: super::Labels = s
            .labels
            .into_iter()
            .filter(|(k, _)| k != "le" && k != "__name__")
            .collect();
        groups.entry(labels).or_default().push((le, s.value));
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| Sample {
            labels,
            value: bucket_quantile(q, buckets),
        })
        .collect()
}

fn parse_le(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Buckets of one bound: their counts added.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for (le, c) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == le => last.1 += c,
            _ => merged.push((le, c)),
        }
    }
    // Counts that go down (scrapes of buckets at different moments) are raised.
    let mut max = f64::NEG_INFINITY;
    for b in &mut merged {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let (mut start, end, mut count) = (0.0, merged[b].0, merged[b].1);
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_extrapolates_to_the_window_and_counts_resets() {
        // Samples every 10 s over a 60 s window ending at 60 s: 10 → 60, no reset.
        let points: Vec<(i64, f64)> = (1..=6).map(|i| (i * 10_000, i as f64 * 10.0)).collect();
        let r = extrapolated(&points, 60.0, (0, 60_000), true, true).expect("rate");
        // 50 over 50 s sampled; extrapolated to the start by at most the way to zero (10 s).
        assert!((r - 1.0).abs() < 1e-12, "{r}");
        // A reset: 10, 20, 5 → increase 20 + 5 - 10 = 15 before extrapolation.
        let reset = [(10_000, 10.0), (20_000, 20.0), (30_000, 5.0)];
        let inc = extrapolated(&reset, 30.0, (0, 30_000), true, false).expect("increase");
        assert!(inc > 15.0 && inc <= 15.0 * 30.0 / 20.0, "{inc}");
        assert_eq!(instant_delta(&reset, true), Some(0.5));
    }

    #[test]
    fn histogram_quantile_interpolates_inside_the_bucket() {
        let buckets = vec![(0.1, 10.0), (0.5, 30.0), (f64::INFINITY, 40.0)];
        // Rank 20 of 40: halfway through the second bucket (10 → 30).
        assert!((bucket_quantile(0.5, buckets.clone()) - 0.3).abs() < 1e-12);
        // Beyond the last finite bound: that bound.
        assert_eq!(bucket_quantile(0.99, buckets.clone()), 0.5);
        assert!(bucket_quantile(0.5, vec![(0.1, 1.0)]).is_nan());
        assert_eq!(bucket_quantile(-1.0, buckets), f64::NEG_INFINITY);
    }

    #[test]
    fn quantile_interpolates_between_ranks() {
        assert_eq!(quantile(0.5, vec![1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(1.0, vec![3.0, 1.0]), 3.0);
        assert!(quantile(0.5, vec![]).is_nan());
    }
}
