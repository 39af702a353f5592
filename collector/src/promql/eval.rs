//! The expression walked at one instant, as Prometheus 2.42 does it: instant selectors take
//! the newest sample within the lookback (none if it is a staleness marker), range
//! selectors every sample in `[t - range, t]` but markers; binary operators match vectors
//! by signature (every label but `__name__`, or `on`/`ignoring`'s), one-to-one unless
//! `group_left`/`group_right`; arithmetic drops the metric name, filtering comparisons keep
//! it. A range query is the same walk at every step.

use std::collections::HashMap;

use promql_parser::label::Labels as LabelList;
use promql_parser::parser::token::{
    T_ADD, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LSS, T_LTE, T_LUNLESS, T_MOD, T_MUL, T_NEQ,
    T_POW, T_SUB,
};
use promql_parser::parser::{
    BinModifier, BinaryExpr, Expr, LabelModifier, MatrixSelector, VectorMatchCardinality,
    VectorSelector,
};

use super::select::{Loaded, is_stale, key, offset_ms};
use super::{LOOKBACK_MS, Labels, QueryError, Range, Sample, Series, Value};

pub struct Evaluator<'a> {
    data: &'a Loaded,
}

impl<'a> Evaluator<'a> {
    pub fn new(data: &'a Loaded) -> Self {
        Self { data }
    }

    /// The value at `t`; a vector with two elements of one label set is an error, as in
    /// Prometheus.
    pub fn at(&self, expr: &Expr, t: i64) -> Result<Value, QueryError> {
        let v = self.eval(expr, t)?;
        if let Value::Vector(samples) = &v {
            check_unique(samples)?;
        }
        Ok(v)
    }

    /// Every step of `range`, gathered per label set.
    pub fn over(&self, expr: &Expr, range: Range) -> Result<Vec<Series>, QueryError> {
        let mut series: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
        let steps = (range.end_ms - range.start_ms) / range.step_ms.max(1) + 1;
        for i in 0..steps {
            let t = range.start_ms + i * range.step_ms;
            match self.at(expr, t)? {
                Value::Scalar(v) => series.entry(Vec::new()).or_default().push((t, v)),
                Value::Vector(samples) => {
                    for s in samples {
                        series.entry(s.labels).or_default().push((t, s.value));
                    }
                }
                _ => {
                    return Err(QueryError::BadData(
                        "a range query must be a scalar or an instant vector".into(),
                    ));
                }
            }
        }
        let mut out: Vec<Series> = series
            .into_iter()
            .map(|(labels, points)| Series { labels, points })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    pub fn eval(&self, expr: &Expr, t: i64) -> Result<Value, QueryError> {
        Ok(match expr {
            Expr::NumberLiteral(n) => Value::Scalar(n.val),
            Expr::StringLiteral(s) => Value::String(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr, t)?,
            Expr::Unary(u) => match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Value::Scalar(-v),
                Value::Vector(samples) => Value::Vector(
                    samples
                        .into_iter()
                        .map(|s| Sample {
                            labels: drop_name(s.labels),
                            value: -s.value,
                        })
                        .collect(),
                ),
                _ => {
                    return Err(QueryError::BadData(
                        "unary minus needs a scalar or an instant vector".into(),
                    ));
                }
            },
            Expr::VectorSelector(vs) => Value::Vector(self.instant(vs, t)),
            Expr::MatrixSelector(ms) => Value::Matrix(self.matrix(ms, t)),
            Expr::Aggregate(a) => super::aggregate::eval(self, a, t)?,
            Expr::Binary(b) => self.binary(b, t)?,
            Expr::Call(c) => super::functions::call(self, c, t)?,
            Expr::Subquery(_) | Expr::Extension(_) => {
                return Err(QueryError::BadData(
                    "subqueries are not supported by this collector's PromQL".into(),
                ));
            }
        })
    }

    /// An instant selector at `t`.
    pub fn instant(&self, vs: &VectorSelector, t: i64) -> Vec<Sample> {
        let reference = t.saturating_sub(offset_ms(vs));
        let Some(all) = self.data.series.get(&key(vs)) else {
            return Vec::new();
        };
        all.iter()
            .filter_map(|s| {
                let i = s.points.partition_point(|(pt, _)| *pt <= reference);
                let (pt, v) = *s.points.get(i.checked_sub(1)?)?;
                (pt >= reference.saturating_sub(LOOKBACK_MS) && !is_stale(v)).then(|| Sample {
                    labels: s.labels.clone(),
                    value: v,
                })
            })
            .collect()
    }

    /// A range selector at `t`: the samples in `[t - range, t]`, markers left out.
    pub fn matrix(&self, ms: &MatrixSelector, t: i64) -> Vec<Series> {
        let end = t.saturating_sub(offset_ms(&ms.vs));
        let start = end.saturating_sub(super::select::millis(&ms.range));
        let Some(all) = self.data.series.get(&key(&ms.vs)) else {
            return Vec::new();
        };
        all.iter()
            .filter_map(|s| {
                let lo = s.points.partition_point(|(pt, _)| *pt < start);
                let hi = s.points.partition_point(|(pt, _)| *pt <= end);
                let points: Vec<(i64, f64)> = s.points[lo..hi]
                    .iter()
                    .copied()
                    .filter(|(_, v)| !is_stale(*v))
                    .collect();
                (!points.is_empty()).then(|| Series {
                    labels: s.labels.clone(),
                    points,
                })
            })
            .collect()
    }

    fn binary(&self, b: &BinaryExpr, t: i64) -> Result<Value, QueryError> {
        let op = b.op.id();
        let lhs = self.eval(&b.lhs, t)?;
        let rhs = self.eval(&b.rhs, t)?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let comparison = b.op.is_comparison_operator();
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = elem(op, l, r)?;
                Ok(Value::Scalar(if comparison {
                    if keep { 1.0 } else { 0.0 }
                } else {
                    v
                }))
            }
            (Value::Vector(v), Value::Scalar(s)) => Ok(Value::Vector(vector_scalar(
                op,
                v,
                s,
                false,
                return_bool,
                comparison,
            )?)),
            (Value::Scalar(s), Value::Vector(v)) => Ok(Value::Vector(vector_scalar(
                op,
                v,
                s,
                true,
                return_bool,
                comparison,
            )?)),
            (Value::Vector(l), Value::Vector(r)) => {
                let modifier = b.modifier.clone().unwrap_or(BinModifier {
                    card: if b.op.is_set_operator() {
                        VectorMatchCardinality::ManyToMany
                    } else {
                        VectorMatchCardinality::OneToOne
                    },
                    matching: None,
                    return_bool: false,
                    fill_values: Default::default(),
                });
                if b.op.is_set_operator() {
                    return Ok(Value::Vector(set_op(op, l, r, &modifier)));
                }
                Ok(Value::Vector(vector_vector(
                    op, l, r, &modifier, comparison,
                )?))
            }
            _ => Err(QueryError::BadData(format!(
                "binary operator \"{}\" needs scalars or instant vectors on both sides",
                b.op
            ))),
        }
    }
}

/// Two elements of one label set in a vector: Prometheus refuses the answer.
fn check_unique(samples: &[Sample]) -> Result<(), QueryError> {
    let mut seen: std::collections::HashSet<&Labels> = std::collections::HashSet::new();
    for s in samples {
        if !seen.insert(&s.labels) {
            return Err(QueryError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

pub fn drop_name(mut labels: Labels) -> Labels {
    labels.retain(|(k, _)| k != "__name__");
    labels
}

/// `l op r`: the value, and for a comparison whether it holds (the value is then `l`).
fn elem(op: u16, l: f64, r: f64) -> Result<(f64, bool), QueryError> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        // Go's math.Mod: the sign of the dividend, NaN for a zero divisor.
        T_MOD => (l % r, true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => {
            return Err(QueryError::BadData(format!(
                "the operator {} is not supported by this collector's PromQL",
                promql_parser::parser::token::TokenType::new(op)
            )));
        }
    })
}

fn vector_scalar(
    op: u16,
    v: Vec<Sample>,
    s: f64,
    scalar_left: bool,
    return_bool: bool,
    comparison: bool,
) -> Result<Vec<Sample>, QueryError> {
    let mut out = Vec::with_capacity(v.len());
    for sample in v {
        let (l, r) = if scalar_left {
            (s, sample.value)
        } else {
            (sample.value, s)
        };
        let (mut value, mut keep) = elem(op, l, r)?;
        // A comparison keeps the vector's value whichever side it is on.
        if comparison && scalar_left {
            value = r;
        }
        if return_bool {
            value = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            let labels = if !comparison || return_bool {
                drop_name(sample.labels)
            } else {
                sample.labels
            };
            out.push(Sample { labels, value });
        }
    }
    Ok(out)
}

/// The matching signature of a label set.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels
            .iter()
            .filter(|(k, _)| on.labels.contains(k))
            .cloned()
            .collect(),
        Some(LabelModifier::Exclude(ignoring)) => labels
            .iter()
            .filter(|(k, _)| k != "__name__" && !ignoring.labels.contains(k))
            .cloned()
            .collect(),
        None => labels
            .iter()
            .filter(|(k, _)| k != "__name__")
            .cloned()
            .collect(),
    }
}

fn set_op(op: u16, l: Vec<Sample>, r: Vec<Sample>, m: &BinModifier) -> Vec<Sample> {
    let matching = m.matching.as_ref();
    let right: std::collections::HashSet<Labels> =
        r.iter().map(|s| signature(&s.labels, matching)).collect();
    match op {
        T_LAND => l
            .into_iter()
            .filter(|s| right.contains(&signature(&s.labels, matching)))
            .collect(),
        T_LUNLESS => l
            .into_iter()
            .filter(|s| !right.contains(&signature(&s.labels, matching)))
            .collect(),
        // T_LOR
        _ => {
            let left: std::collections::HashSet<Labels> =
                l.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = l;
            out.extend(
                r.into_iter()
                    .filter(|s| !left.contains(&signature(&s.labels, matching))),
            );
            out
        }
    }
}

fn vector_vector(
    op: u16,
    l: Vec<Sample>,
    r: Vec<Sample>,
    m: &BinModifier,
    comparison: bool,
) -> Result<Vec<Sample>, QueryError> {
    let matching = m.matching.as_ref();
    let (include, one_to_many) = match &m.card {
        VectorMatchCardinality::ManyToOne(ls) => (Some(ls), false),
        VectorMatchCardinality::OneToMany(ls) => (Some(ls), true),
        _ => (None, false),
    };
    // The "many" side on the left, the "one" side hashed.
    let (many, one) = if one_to_many { (r, l) } else { (l, r) };
    let mut ones: HashMap<Labels, &Sample> = HashMap::new();
    for s in &one {
        let sig = signature(&s.labels, matching);
        if let Some(dup) = ones.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return Err(QueryError::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                show(&sig),
                show(&s.labels),
                show(&dup.labels)
            )));
        }
        ones.insert(sig, s);
    }
    let mut matched: HashMap<Labels, std::collections::HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    for s in many {
        let sig = signature(&s.labels, matching);
        let Some(other) = ones.get(&sig) else {
            continue;
        };
        let (vl, vr) = if one_to_many {
            (other.value, s.value)
        } else {
            (s.value, other.value)
        };
        let (mut value, keep) = elem(op, vl, vr)?;
        if m.return_bool {
            value = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        let labels = result_labels(&s.labels, &other.labels, comparison, m, include);
        let seen = matched.entry(sig).or_default();
        if include.is_none() {
            if !seen.is_empty() {
                return Err(QueryError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                ));
            }
        } else if seen.contains(&labels) {
            return Err(QueryError::Execution(
                "multiple matches for labels: grouping labels must ensure unique matches".into(),
            ));
        }
        seen.insert(labels.clone());
        out.push(Sample { labels, value });
    }
    Ok(out)
}

fn result_labels(
    many: &Labels,
    one: &Labels,
    comparison: bool,
    m: &BinModifier,
    include: Option<&LabelList>,
) -> Labels {
    let mut labels = many.clone();
    if !comparison || m.return_bool {
        labels = drop_name(labels);
    }
    if include.is_none() {
        match &m.matching {
            Some(LabelModifier::Include(on)) => labels.retain(|(k, _)| on.labels.contains(k)),
            Some(LabelModifier::Exclude(ignoring)) => {
                labels.retain(|(k, _)| !ignoring.labels.contains(k))
            }
            None => {}
        }
    }
    if let Some(include) = include {
        for name in &include.labels {
            labels.retain(|(k, _)| k != name);
            if let Some((_, v)) = one.iter().find(|(k, _)| k == name)
                && !v.is_empty()
            {
                labels.push((name.clone(), v.clone()));
            }
        }
        labels.sort();
    }
    labels
}

/// A label set as Prometheus prints one in errors.
pub fn show(labels: &Labels) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", parts.join(", "))
}
