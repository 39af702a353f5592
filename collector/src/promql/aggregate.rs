//! Aggregation operators over an instant vector, grouped `by` the listed labels or
//! `without` them (and the metric name), as Prometheus 2.42 computes each: `sum`, `avg`
//! (a running mean), `min`/`max` (NaN only when nothing else), `count`, `group`,
//! `stddev`/`stdvar` (population), `quantile`, and `topk`/`bottomk`, which keep the
//! chosen elements whole.

use std::collections::BTreeMap;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_GROUP, T_MAX, T_MIN, T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::Evaluator;
use super::{Labels, QueryError, Sample, Value};

/// The aggregations [`eval`] computes; others are refused before anything is read.
pub fn supported(op: &promql_parser::parser::token::TokenType) -> bool {
    matches!(
        op.id(),
        T_SUM
            | T_AVG
            | T_COUNT
            | T_GROUP
            | T_MIN
            | T_MAX
            | T_STDDEV
            | T_STDVAR
            | T_QUANTILE
            | T_TOPK
            | T_BOTTOMK
    )
}

pub fn eval(ev: &Evaluator<'_>, a: &AggregateExpr, t: i64) -> Result<Value, QueryError> {
    let Value::Vector(input) = ev.eval(&a.expr, t)? else {
        return Err(QueryError::BadData(format!(
            "{}() needs an instant vector",
            a.op
        )));
    };
    let param = match &a.param {
        Some(p) => match ev.eval(p, t)? {
            Value::Scalar(v) => Some(v),
            _ => {
                return Err(QueryError::BadData(format!(
                    "{}()'s parameter must be a scalar",
                    a.op
                )));
            }
        },
        None => None,
    };
    let op = a.op.id();
    let mut groups: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for s in input {
        groups
            .entry(grouping(&s.labels, a.modifier.as_ref()))
            .or_default()
            .push(s);
    }
    let mut out = Vec::new();
    for (labels, members) in groups {
        match op {
            T_TOPK | T_BOTTOMK => {
                let k = param.unwrap_or(0.0);
                if k.is_nan() || k < 1.0 {
                    continue;
                }
                let mut members = members;
                // NaN ranks below every number, either way.
                members.sort_by(|x, y| {
                    let (x, y) = (x.value, y.value);
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if op == T_TOPK => y.total_cmp(&x),
                        _ => x.total_cmp(&y),
                    }
                });
                out.extend(members.into_iter().take(k.min(1e9) as usize));
            }
            _ => {
                let values: Vec<f64> = members.iter().map(|s| s.value).collect();
                let value = fold(op, &values, param, &a.op)?;
                out.push(Sample { labels, value });
            }
        }
    }
    Ok(Value::Vector(out))
}

/// The group an element belongs to.
fn grouping(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(by)) => labels
            .iter()
            .filter(|(k, _)| by.labels.contains(k))
            .cloned()
            .collect(),
        Some(LabelModifier::Exclude(without)) => labels
            .iter()
            .filter(|(k, _)| k != "__name__" && !without.labels.contains(k))
            .cloned()
            .collect(),
        None => Vec::new(),
    }
}

fn fold(
    op: u16,
    values: &[f64],
    param: Option<f64>,
    name: &promql_parser::parser::token::TokenType,
) -> Result<f64, QueryError> {
    let n = values.len() as f64;
    Ok(match op {
        T_SUM => values.iter().sum(),
        T_AVG => super::functions::mean(values),
        T_COUNT => n,
        T_GROUP => 1.0,
        T_MIN => values
            .iter()
            .copied()
            .fold(f64::NAN, |m, v| if m > v || m.is_nan() { v } else { m }),
        T_MAX => values
            .iter()
            .copied()
            .fold(f64::NAN, |m, v| if m < v || m.is_nan() { v } else { m }),
        T_STDDEV | T_STDVAR => {
            let var = super::functions::variance(values);
            if op == T_STDDEV { var.sqrt() } else { var }
        }
        T_QUANTILE => super::functions::quantile(param.unwrap_or(f64::NAN), values.to_vec()),
        _ => {
            return Err(QueryError::BadData(format!(
                "the aggregation {name} is not supported by this collector's PromQL"
            )));
        }
    })
}
