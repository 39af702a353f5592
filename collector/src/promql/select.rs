//! Selectors against the store: before evaluation, every selector of the expression is
//! matched against the stored series once and their points for the whole query window read
//! once ([`load`]); evaluation then slices them per step. A stored series is several
//! Prometheus series: a histogram is `_bucket` per `le` (cumulative, `+Inf` = the count),
//! `_sum` and `_count`; a summary its quantiles, `_sum` and `_count`; an exponential
//! histogram its `_sum` and `_count`. A point flagged "no recorded value" becomes
//! Prometheus' staleness marker in each of them.

use std::collections::{BTreeMap, HashMap};

use promql_parser::label::{Matcher, Matchers};
use promql_parser::parser::{Expr, Offset, VectorSelector};

use super::naming::format_float;
use super::{Engine, LOOKBACK_MS, Labels, QueryError, Range, Series};
use crate::model::{MetricKind, PointValue};
use crate::store::{MetricSeriesInfo, PointQuery, StoredExemplar, StoredPoint};

/// Prometheus' staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The series each selector of a query selects, by the selector's text.
#[derive(Debug, Default)]
pub struct Loaded {
    pub series: HashMap<String, Vec<Series>>,
}

/// The key a selector's series are found under.
pub fn key(vs: &VectorSelector) -> String {
    vs.to_string()
}

/// A selector's offset in milliseconds (negative for `offset -5m`).
pub fn offset_ms(vs: &VectorSelector) -> i64 {
    match &vs.offset {
        Some(Offset::Pos(d)) => millis(d),
        Some(Offset::Neg(d)) => -millis(d),
        None => 0,
    }
}

/// A duration in milliseconds, at most `i64::MAX / 4` (an absurd range or offset must not
/// overflow the arithmetic that uses it).
pub fn millis(d: &std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).map_or(i64::MAX / 4, |m| m.min(i64::MAX / 4))
}

/// Each selector with the window of raw data it needs over the whole query.
fn selectors<'a>(
    expr: &'a Expr,
    range: Range,
    out: &mut Vec<(&'a VectorSelector, i64, i64)>,
) -> Result<(), QueryError> {
    let unsupported = |what: &str| {
        Err(QueryError::BadData(format!(
            "{what} is not supported by this collector's PromQL"
        )))
    };
    match expr {
        Expr::VectorSelector(vs) => {
            check_selector(vs)?;
            let off = offset_ms(vs);
            out.push((
                vs,
                range
                    .start_ms
                    .saturating_sub(off)
                    .saturating_sub(LOOKBACK_MS),
                range.end_ms.saturating_sub(off),
            ));
        }
        Expr::MatrixSelector(ms) => {
            check_selector(&ms.vs)?;
            let off = offset_ms(&ms.vs);
            let r = millis(&ms.range);
            out.push((
                &ms.vs,
                range.start_ms.saturating_sub(off).saturating_sub(r),
                range.end_ms.saturating_sub(off),
            ));
        }
        Expr::Aggregate(a) => {
            if !super::aggregate::supported(&a.op) {
                return unsupported(&format!("the aggregation {}", a.op));
            }
            if let Some(p) = &a.param {
                selectors(p, range, out)?;
            }
            selectors(&a.expr, range, out)?;
        }
        Expr::Unary(u) => selectors(&u.expr, range, out)?,
        Expr::Binary(b) => {
            if let Some(m) = &b.modifier
                && (m.fill_values.lhs.is_some() || m.fill_values.rhs.is_some())
            {
                return unsupported("fill()");
            }
            selectors(&b.lhs, range, out)?;
            selectors(&b.rhs, range, out)?;
        }
        Expr::Paren(p) => selectors(&p.expr, range, out)?,
        Expr::Call(c) => {
            if !super::functions::SUPPORTED.contains(&c.func.name) {
                return unsupported(&format!("the function {}()", c.func.name));
            }
            for a in &c.args.args {
                selectors(a, range, out)?;
            }
        }
        Expr::Subquery(_) => return unsupported("a subquery"),
        Expr::Extension(_) => return unsupported("an extension expression"),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
    }
    Ok(())
}

fn check_selector(vs: &VectorSelector) -> Result<(), QueryError> {
    if vs.at.is_some() {
        return Err(QueryError::BadData(
            "the @ modifier is not supported by this collector's PromQL".into(),
        ));
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::BadData(
            "\"or\" inside a selector's braces is not supported by this collector's PromQL".into(),
        ));
    }
    Ok(())
}

/// Reads what every selector of `expr` needs for `range`.
pub async fn load(engine: &Engine, expr: &Expr, range: Range) -> Result<Loaded, QueryError> {
    let mut wanted = Vec::new();
    selectors(expr, range, &mut wanted)?;
    let mut windows: HashMap<String, (&VectorSelector, i64, i64)> = HashMap::new();
    for (vs, lo, hi) in wanted {
        let e = windows.entry(key(vs)).or_insert((vs, lo, hi));
        e.1 = e.1.min(lo);
        e.2 = e.2.max(hi);
    }
    let catalog = engine.store.metric_series().await?;
    let mut loaded = Loaded::default();
    let (mut series_left, mut points_left) = (engine.limits.max_series, engine.limits.max_points);
    for (key, (vs, lo, hi)) in windows {
        let matchers = all_matchers(vs);
        let candidates: Vec<&MetricSeriesInfo> = catalog
            .iter()
            .filter(|s| {
                components(s)
                    .iter()
                    .any(|c| matches_before_points(&matchers, s, c))
            })
            .collect();
        if candidates.len() > series_left {
            return Err(too_many_series(engine.limits.max_series));
        }
        // Buckets and quantiles are read only when a selector wants them.
        let details = candidates.iter().any(|s| {
            components(s).iter().any(|c| {
                matches!(c.part, Part::Bucket | Part::Quantile)
                    && matches_before_points(&matchers, s, c)
            })
        });
        let answer = engine
            .store
            .metric_points(&PointQuery {
                series: candidates.iter().map(|s| s.id).collect(),
                start_ms: lo,
                end_ms: hi,
                max_points: points_left,
                details,
            })
            .await?;
        if answer.exceeded {
            return Err(QueryError::TooLarge(format!(
                "query processing would load too many samples into memory: more than {} stored points (the limit, --max-query-points)",
                engine.limits.max_points
            )));
        }
        points_left -= answer.series.iter().map(|(_, p)| p.len()).sum::<usize>();
        // Expanding points into Prometheus series is CPU work: off the runtime.
        let infos: HashMap<i64, MetricSeriesInfo> = candidates
            .iter()
            .map(|s| (s.id, MetricSeriesInfo::clone(s)))
            .collect();
        let m = matchers.clone();
        let mut selected = tokio::task::spawn_blocking(move || {
            let mut selected = Vec::new();
            for (id, points) in &answer.series {
                let Some(info) = infos.get(id) else {
                    continue;
                };
                for c in components(info) {
                    if matches_before_points(&m, info, &c) {
                        expand(info, &c, points, &m, &mut selected);
                    }
                }
            }
            selected
        })
        .await
        .map_err(|e| QueryError::Store(crate::store::StoreError::Task(e.to_string())))?;
        if super::span_metrics::names()
            .iter()
            .any(|name| name_may_match(&matchers, name))
        {
            for s in super::span_metrics::series(engine, lo, hi).await? {
                if matches(&matchers, &s.labels) {
                    selected.push(s);
                }
            }
        }
        if selected.len() > series_left {
            return Err(too_many_series(engine.limits.max_series));
        }
        series_left -= selected.len();
        selected.sort_by(|a, b| a.labels.cmp(&b.labels));
        loaded.series.insert(key, selected);
    }
    Ok(loaded)
}

fn too_many_series(limit: usize) -> QueryError {
    QueryError::TooLarge(format!(
        "the query selects more than {limit} series (the limit, --max-query-series): narrow its selectors"
    ))
}

/// The selector's matchers, its metric name as one more.
fn all_matchers(vs: &VectorSelector) -> Vec<Matcher> {
    let mut m: Vec<Matcher> = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name
        && !m.iter().any(|x| x.name == "__name__")
    {
        m.push(Matcher::new(
            promql_parser::label::MatchOp::Equal,
            "__name__",
            name,
        ));
    }
    m
}

/// One Prometheus series family of a stored series.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Value,
    Sum,
    Count,
    /// `_bucket`, one series per `le`.
    Bucket,
    /// A summary's `{quantile}` series.
    Quantile,
}

struct Component {
    name: String,
    part: Part,
}

fn components(s: &MetricSeriesInfo) -> Vec<Component> {
    let n = &s.prometheus_name;
    let c = |suffix: &str, part| Component {
        name: format!("{n}{suffix}"),
        part,
    };
    match s.kind {
        MetricKind::Gauge | MetricKind::Counter | MetricKind::UpDownSum => vec![c("", Part::Value)],
        MetricKind::Histogram => vec![
            c("_bucket", Part::Bucket),
            c("_sum", Part::Sum),
            c("_count", Part::Count),
        ],
        MetricKind::ExponentialHistogram => vec![c("_sum", Part::Sum), c("_count", Part::Count)],
        MetricKind::Summary => vec![
            c("", Part::Quantile),
            c("_sum", Part::Sum),
            c("_count", Part::Count),
        ],
    }
}

/// The label a part adds per point (`le`, `quantile`), checked once points are read.
fn added_label(part: Part) -> Option<&'static str> {
    match part {
        Part::Bucket => Some("le"),
        Part::Quantile => Some("quantile"),
        _ => None,
    }
}

fn matches_before_points(matchers: &[Matcher], s: &MetricSeriesInfo, c: &Component) -> bool {
    let added = added_label(c.part);
    matchers.iter().all(|m| {
        if Some(m.name.as_str()) == added {
            return true;
        }
        let value = if m.name == "__name__" {
            c.name.as_str()
        } else {
            s.labels
                .iter()
                .find(|(k, _)| *k == m.name)
                .map_or("", |(_, v)| v.as_str())
        };
        m.is_match(value)
    })
}

/// Whether a metric of this name could match (its `__name__` matchers only).
fn name_may_match(matchers: &[Matcher], name: &str) -> bool {
    matchers
        .iter()
        .filter(|m| m.name == "__name__")
        .all(|m| m.is_match(name))
}

fn matches(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| {
        let v = labels
            .iter()
            .find(|(k, _)| *k == m.name)
            .map_or("", |(_, v)| v.as_str());
        m.is_match(v)
    })
}

/// The Prometheus series one part of a stored series makes of its points.
fn expand(
    info: &MetricSeriesInfo,
    c: &Component,
    points: &[StoredPoint],
    matchers: &[Matcher],
    out: &mut Vec<Series>,
) {
    let stale = f64::from_bits(STALE_NAN_BITS);
    let mut base = info.labels.clone();
    base.push(("__name__".into(), c.name.clone()));
    // Per added label value (or one series when none), its points. A point's bounds (or
    // quantiles) are mostly its predecessor's: the label values and their slots are worked
    // out again only when they change, not per bucket per point.
    let mut by_label: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
    let mut slot_of: HashMap<String, usize> = HashMap::new();
    let mut last_keys: Vec<f64> = Vec::new();
    let mut slots: Vec<usize> = Vec::new();
    let mut slots_for = |keys: &[f64], by_label: &mut Vec<(String, Vec<(i64, f64)>)>| {
        if keys != last_keys.as_slice() || slots.len() != keys.len() {
            last_keys = keys.to_vec();
            slots = keys
                .iter()
                .map(|k| {
                    let text = format_float(*k);
                    *slot_of.entry(text.clone()).or_insert_with(|| {
                        by_label.push((text, Vec::new()));
                        by_label.len() - 1
                    })
                })
                .collect();
        }
        slots.clone()
    };
    let mut plain: Vec<(i64, f64)> = Vec::new();
    let mut keys: Vec<f64> = Vec::new();
    for p in points {
        let t = p.time_ms;
        match (c.part, &p.value) {
            (_, _) if p.stale => match added_label(c.part) {
                Some(_) => by_label.iter_mut().for_each(|(_, v)| v.push((t, stale))),
                None => plain.push((t, stale)),
            },
            (Part::Value, PointValue::Number(v)) => plain.push((t, *v)),
            (Part::Count, v) => {
                if let Some(n) = count_of(v) {
                    plain.push((t, n));
                }
            }
            (Part::Sum, v) => {
                if let Some(s) = sum_of(v) {
                    plain.push((t, s));
                }
            }
            (Part::Bucket, PointValue::Histogram { bounds, counts, .. }) => {
                keys.clear();
                keys.extend(
                    (0..counts.len()).map(|i| bounds.get(i).copied().unwrap_or(f64::INFINITY)),
                );
                let slots = slots_for(&keys, &mut by_label);
                let mut cumulative = 0u64;
                for (n, slot) in counts.iter().zip(slots) {
                    cumulative += n;
                    by_label[slot].1.push((t, cumulative as f64));
                }
            }
            (Part::Quantile, PointValue::Summary { quantiles, .. }) => {
                keys.clear();
                keys.extend(quantiles.iter().map(|q| q.0));
                let slots = slots_for(&keys, &mut by_label);
                for ((_, v), slot) in quantiles.iter().zip(slots) {
                    by_label[slot].1.push((t, *v));
                }
            }
            _ => {}
        }
    }
    by_label.sort_by(|a, b| a.0.cmp(&b.0));
    let mut push = |labels: Labels, points: Vec<(i64, f64)>| {
        if !points.is_empty() && matches(matchers, &labels) {
            out.push(Series { labels, points });
        }
    };
    match added_label(c.part) {
        None => {
            let mut labels = base;
            labels.sort();
            push(labels, plain);
        }
        Some(name) => {
            for (value, points) in by_label {
                let mut labels = base.clone();
                labels.push((name.to_string(), value));
                labels.sort();
                push(labels, points);
            }
        }
    }
}

fn count_of(v: &PointValue) -> Option<f64> {
    match v {
        PointValue::Histogram { count, .. }
        | PointValue::ExponentialHistogram { count, .. }
        | PointValue::Summary { count, .. } => Some(*count as f64),
        PointValue::Number(_) => None,
    }
}

fn sum_of(v: &PointValue) -> Option<f64> {
    match v {
        PointValue::Histogram { sum, .. } | PointValue::ExponentialHistogram { sum, .. } => *sum,
        PointValue::Summary { sum, .. } => Some(*sum),
        PointValue::Number(_) => None,
    }
}

/// The label names and values of the whole catalog that a list of selectors (`match[]`)
/// picks, for `/api/v1/series`, `/labels` and `/label/{name}/values`: each selected series'
/// labels, with `le` and `quantile` as the points in the window gave them.
pub async fn series_matching(
    engine: &Engine,
    selectors: &[Matchers],
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<Labels>, QueryError> {
    let mut all: Vec<Labels> = Vec::new();
    for m in selectors {
        let vs = VectorSelector {
            name: None,
            matchers: m.clone(),
            offset: None,
            at: None,
        };
        let expr = Expr::VectorSelector(vs);
        // Any sample in the window counts: read it as one range.
        let range = Range {
            start_ms: start_ms + LOOKBACK_MS,
            end_ms,
            step_ms: 1,
        };
        let loaded = load(engine, &expr, range).await?;
        for s in loaded.series.into_values().flatten() {
            if s.points.iter().any(|(_, v)| !is_stale(*v)) {
                all.push(s.labels);
            }
        }
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// Exemplars the whole query answers at most.
pub const MAX_EXEMPLARS: usize = 10_000;

/// The exemplars of the series `expr`'s selectors pick in `[start_ms, end_ms]`, per series:
/// its labels (a histogram's under its `_bucket` name, where Prometheus keeps them) and its
/// exemplars, oldest first. For `/api/v1/query_exemplars`.
pub async fn exemplars(
    engine: &Engine,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<(Labels, Vec<StoredExemplar>)>, QueryError> {
    let mut wanted = Vec::new();
    let range = Range {
        start_ms,
        end_ms,
        step_ms: 1,
    };
    selectors(expr, range, &mut wanted)?;
    let catalog = engine.store.metric_series().await?;
    let mut labels_of: HashMap<i64, Labels> = HashMap::new();
    for (vs, _, _) in wanted {
        let matchers = all_matchers(vs);
        for s in catalog.iter() {
            let Some(c) = components(s)
                .into_iter()
                .find(|c| matches_before_points(&matchers, s, c))
            else {
                continue;
            };
            labels_of.entry(s.id).or_insert_with(|| {
                let mut l = s.labels.clone();
                l.push(("__name__".into(), c.name.clone()));
                l.sort();
                l
            });
        }
    }
    if labels_of.len() > engine.limits.max_series {
        return Err(too_many_series(engine.limits.max_series));
    }
    let ids: Vec<i64> = labels_of.keys().copied().collect();
    let found = engine
        .store
        .metric_exemplars(&ids, start_ms, end_ms, MAX_EXEMPLARS)
        .await?;
    let mut per: BTreeMap<Labels, Vec<StoredExemplar>> = BTreeMap::new();
    for e in found {
        if let Some(l) = labels_of.get(&e.series_id) {
            per.entry(l.clone()).or_default().push(e);
        }
    }
    Ok(per.into_iter().collect())
}

/// Every selector of `expr` answered by the same few series (a counter with a reset, a
/// gauge going stale, histogram buckets), whatever it matches: what the fuzz target
/// evaluates queries against (see `crate::fuzzing::promql`).
pub fn synthetic(expr: &Expr) -> Result<Loaded, QueryError> {
    let mut wanted = Vec::new();
    let range = Range {
        start_ms: 0,
        end_ms: 600_000,
        step_ms: 1,
    };
    selectors(expr, range, &mut wanted)?;
    let label = |name: &str, extra: &[(&str, &str)]| {
        let mut l: Labels = vec![
            ("__name__".to_string(), name.to_string()),
            ("job".to_string(), "fuzz".to_string()),
        ];
        l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        l.sort();
        l
    };
    let points = |f: &dyn Fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..40).map(|i| (i * 15_000, f(i))).collect()
    };
    let mut series = vec![
        Series {
            labels: label("requests_total", &[("code", "200")]),
            points: points(&|i| if i < 20 { i as f64 } else { (i - 20) as f64 }),
        },
        Series {
            labels: label("queue", &[]),
            points: points(&|i| {
                if i == 30 {
                    f64::from_bits(STALE_NAN_BITS)
                } else {
                    (i % 7) as f64 - 2.5
                }
            }),
        },
    ];
    for le in ["0.1", "1", "+Inf"] {
        series.push(Series {
            labels: label("latency_bucket", &[("le", le)]),
            points: points(&|i| i as f64 * le.len() as f64),
        });
    }
    let mut loaded = Loaded::default();
    for (vs, _, _) in wanted {
        loaded.series.insert(key(vs), series.clone());
    }
    Ok(loaded)
}
