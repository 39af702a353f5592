//! PromQL over the stored metrics, as Prometheus 2.42 evaluates it (the test suite checks
//! answers against a real Prometheus). [`naming`] turns OpenTelemetry names into
//! Prometheus ones at ingest; [`select`] matches selectors against the stored series and
//! expands them into Prometheus series (`_bucket{le}`, `_sum`, `_count`, quantiles);
//! [`eval`] walks the expression (parsed by `promql-parser`) at each step, with
//! [`functions`] and [`aggregate`].
//!
//! The subset: selectors with every matcher kind and `offset`, range vectors, `rate`,
//! `irate`, `increase`, `delta`, `idelta`, the `*_over_time` family, `histogram_quantile`,
//! math functions, `time`, `vector`, `scalar`, `sort`, `sort_desc`; the aggregations `sum`,
//! `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`, `topk`, `bottomk`, `quantile`
//! with `by`/`without`; every binary operator with `bool`, `on`/`ignoring` and
//! `group_left`/`group_right`. Anything else (subqueries, `@`, other functions) is refused
//! by name, never answered wrongly.

pub mod aggregate;
pub mod eval;
pub mod functions;
pub mod naming;
pub mod select;
pub mod span_metrics;

use std::sync::Arc;

use crate::store::{Store, StoreError};

/// Prometheus' default lookback: an instant selector sees a sample up to 5 minutes old.
pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// A label set, sorted by name; `__name__` included where a series has one.
pub type Labels = Vec<(String, String)>;

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// A series over time (a range vector's element, or a range query's answer).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    /// (milliseconds, value), in time order.
    pub points: Vec<(i64, f64)>,
}

/// What an expression evaluates to at one instant.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
    String(String),
}

/// Why a query has no answer; each maps to one of Prometheus' error types.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query cannot be run as written (syntax, types, outside the subset): `bad_data`.
    #[error("{0}")]
    BadData(String),
    /// It failed while running (many-to-many matching, duplicate label sets): `execution`.
    #[error("{0}")]
    Execution(String),
    /// It would read more than the limits allow: `execution`, with the limit named.
    #[error("{0}")]
    TooLarge(String),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// How much one query may read.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Series (as Prometheus counts them: each bucket its own) one query may select.
    pub max_series: usize,
    /// Stored points one query may read.
    pub max_points: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_series: 10_000,
            max_points: 5_000_000,
        }
    }
}

/// A range query's steps, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
}

/// Parses and evaluates queries against a store.
#[derive(Clone)]
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub limits: Limits,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.limits)
            .finish()
    }
}

/// The longest query taken, in bytes.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// How deep parentheses, brackets and braces may nest: the parser and the evaluator recurse
/// once per level, and a thread's stack is finite.
pub const MAX_NESTING: usize = 64;

/// Parses a query, with the parser's message as a `bad_data` error; a query too long or too
/// deeply nested is refused before the parser sees it.
pub fn parse(query: &str) -> Result<promql_parser::parser::Expr, QueryError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(QueryError::BadData(format!(
            "invalid parameter \"query\": longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    for c in query.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(QueryError::BadData(format!(
            "invalid parameter \"query\": nested more than {MAX_NESTING} deep"
        )));
    }
    durations_in_range(query)?;
    // promql-parser 0.11 panics on some input (a duration too long for `Duration`, found by
    // the fuzzer: `x[33333333333333333333333333m]`, refused above): should another input make
    // it panic, the query is refused like any other it cannot read.
    let parsed =
        std::panic::catch_unwind(|| promql_parser::parser::parse(query)).map_err(|_| {
            QueryError::BadData(
            "invalid parameter \"query\": it cannot be parsed (a number or duration out of range?)"
                .to_string(),
        )
        })?;
    let expr =
        parsed.map_err(|e| QueryError::BadData(format!("invalid parameter \"query\": {e}")))?;
    if !shallow(&expr, 0) {
        return Err(QueryError::BadData(format!(
            "invalid parameter \"query\": its expression is nested more than {MAX_NESTING} deep"
        )));
    }
    Ok(expr)
}

/// The longest duration (and the largest `@` time, in seconds) a query may name: promql-parser
/// turns them into `Duration`s, which panics past `u64::MAX` seconds.
const MAX_DURATION_SECS: f64 = 100.0 * 365.25 * 86_400.0;

/// Refuses a duration (`[5m]`, `offset 1h30m`, `[1d:1m]`) or an `@` time over
/// [`MAX_DURATION_SECS`], outside string literals.
fn durations_in_range(query: &str) -> Result<(), QueryError> {
    let b = query.as_bytes();
    let too_long = |what: &str| {
        QueryError::BadData(format!(
            "invalid parameter \"query\": {what} is over 100 years"
        ))
    };
    let (mut i, mut quote, mut brackets) = (0, None::<u8>, 0usize);
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            i += if c == b'\\' { 2 } else { 1 };
            if c == q {
                quote = None;
            }
            continue;
        }
        let word_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b"_.:".contains(&b[i - 1]));
        match c {
            b'"' | b'\'' | b'`' => quote = Some(c),
            b'@' => {
                let rest = query[i + 1..].trim_start();
                let end = rest
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || "+-.".contains(ch)))
                    .unwrap_or(rest.len());
                if rest[..end]
                    .parse::<f64>()
                    .is_ok_and(|t| t.abs() > MAX_DURATION_SECS)
                {
                    return Err(too_long("an @ time"));
                }
            }
            b'[' => brackets += 1,
            b']' => brackets = brackets.saturating_sub(1),
            b'0'..=b'9' if !word_before => {
                let (mut secs, next) = duration_at(b, i);
                // A bare number in a range or after `offset` is seconds too.
                let before = query[..i].trim_end().as_bytes();
                let offset =
                    before.len() >= 6 && before[before.len() - 6..].eq_ignore_ascii_case(b"offset");
                if secs == 0.0 && (brackets > 0 || offset) {
                    secs = query[i..next].parse::<f64>().unwrap_or(f64::INFINITY);
                }
                if secs > MAX_DURATION_SECS {
                    return Err(too_long("a duration"));
                }
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The seconds of the duration starting at `b[i]` (0 if digits there are a plain number) and
/// where it ends: groups of digits and a unit, as in `1h30m`.
fn duration_at(b: &[u8], mut i: usize) -> (f64, usize) {
    let mut secs = 0.0;
    loop {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let unit = match (b.get(i), b.get(i + 1)) {
            (Some(b'm'), Some(b's')) => Some((0.001, 2)),
            (Some(b's'), _) => Some((1.0, 1)),
            (Some(b'm'), _) => Some((60.0, 1)),
            (Some(b'h'), _) => Some((3_600.0, 1)),
            (Some(b'd'), _) => Some((86_400.0, 1)),
            (Some(b'w'), _) => Some((604_800.0, 1)),
            (Some(b'y'), _) => Some((31_536_000.0, 1)),
            _ => None,
        };
        let Some((per, len)) = unit.filter(|_| i > start) else {
            return (secs, i.max(start + 1));
        };
        let n: f64 = std::str::from_utf8(&b[start..i])
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(f64::INFINITY);
        secs += n * per;
        i += len;
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return (secs, i);
        }
    }
}

/// Whether `expr` is at most [`MAX_NESTING`] deep (a chain `a + b + c + ...` nests too);
/// the walk stops at the limit, so it recurses no deeper than that.
fn shallow(expr: &promql_parser::parser::Expr, depth: usize) -> bool {
    use promql_parser::parser::Expr;
    if depth > MAX_NESTING {
        return false;
    }
    let d = depth + 1;
    match expr {
        Expr::Aggregate(a) => a.param.as_ref().is_none_or(|p| shallow(p, d)) && shallow(&a.expr, d),
        Expr::Unary(u) => shallow(&u.expr, d),
        Expr::Binary(b) => shallow(&b.lhs, d) && shallow(&b.rhs, d),
        Expr::Paren(p) => shallow(&p.expr, d),
        Expr::Subquery(q) => shallow(&q.expr, d),
        Expr::Call(c) => c.args.args.iter().all(|a| shallow(a, d)),
        _ => true,
    }
}

impl Engine {
    /// The query's value at `time_ms`.
    pub async fn instant(&self, query: &str, time_ms: i64) -> Result<Value, QueryError> {
        let expr = parse(query)?;
        let range = Range {
            start_ms: time_ms,
            end_ms: time_ms,
            step_ms: 1,
        };
        let data = select::load(self, &expr, range).await?;
        // Evaluating is CPU work of its own (a long range, many series): off the runtime.
        tokio::task::spawn_blocking(move || eval::Evaluator::new(&data).at(&expr, time_ms))
            .await
            .map_err(|e| QueryError::Store(crate::store::StoreError::Task(e.to_string())))?
    }

    /// The query at each step: one series per label set (a scalar query: one without
    /// labels).
    pub async fn range(&self, query: &str, range: Range) -> Result<Vec<Series>, QueryError> {
        let expr = parse(query)?;
        use promql_parser::parser::value::ValueType;
        match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            other => {
                return Err(QueryError::BadData(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    type_name(other)
                )));
            }
        }
        let data = select::load(self, &expr, range).await?;
        tokio::task::spawn_blocking(move || eval::Evaluator::new(&data).over(&expr, range))
            .await
            .map_err(|e| QueryError::Store(crate::store::StoreError::Task(e.to_string())))?
    }
}

/// Prometheus' names for value types, as its errors say them.
pub fn type_name(t: promql_parser::parser::value::ValueType) -> &'static str {
    use promql_parser::parser::value::ValueType;
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Scalar => "scalar",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_or_long_queries_are_refused_before_they_recurse() {
        let chain = vec!["1"; 200].join(" + ");
        let refused = |q: &str| match parse(q) {
            Err(e) => e.to_string(),
            Ok(_) => "parsed".into(),
        };
        assert!(refused(&chain).contains("nested more than 64 deep"));
        let parens = format!("{}1{}", "(".repeat(100), ")".repeat(100));
        assert!(refused(&parens).contains("nested more than 64 deep"));
        let long = format!("up{{a=\"{}\"}}", "x".repeat(MAX_QUERY_BYTES));
        assert!(refused(&long).contains("longer than"));
        assert!(parse("sum by (job) (rate(x[5m])) / 2").is_ok());
    }

    #[test]
    fn durations_the_parser_would_panic_on_are_refused_first() {
        // Found by the fuzzer: promql-parser converts these to a `Duration` and panics.
        for q in [
            "min_over_time(queu[33333333333333333333333333:33333333333333333333333333334m])",
            "rate(x[1h33333333333333333333333m])",
            "x offset 99999999999999999999y",
            "x @ 1e300",
        ] {
            match parse(q) {
                Err(QueryError::BadData(msg)) => {
                    assert!(msg.contains("over 100 years"), "{q}: {msg}")
                }
                other => panic!("{q}: {other:?}"),
            }
        }
        // Numbers, label values and names with digits are not durations.
        for q in [
            "x > 33333333333333333333333333",
            "x{a=\"99999999999999999999999y\"}",
            "http_2xx_total offset 1h30m",
            "rate(x[5m:30s])",
        ] {
            assert!(durations_in_range(q).is_ok(), "{q}");
        }
    }
}
