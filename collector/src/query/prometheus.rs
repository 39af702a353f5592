//! Prometheus' HTTP API over the stored metrics, on the query address: `/api/v1/query`,
//! `/api/v1/query_range`, `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/{name}/values`
//! (GET, or POST with a form body, as Prometheus' clients send long queries),
//! `/api/v1/metadata` and `/api/v1/query_exemplars` (exemplars with their trace). Parameters and errors as Prometheus has them: times as RFC 3339 or
//! Unix seconds, steps as durations or seconds, `bad_data` (400) for what cannot run,
//! `execution` (422) for what failed while running or would read past the limits.

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gauntlet_query_api::prometheus::{
    ExemplarData, ExemplarSeries, MatrixSeries, MetadataData, Metric, MetricMetadata,
    PromErrorType, PromResponse, QueryData, SamplePair, VectorSample,
};
use serde::Serialize;

use super::QueryState;
use crate::model::now_ns;
use crate::promql::naming::format_float;
use crate::promql::{self, Engine, Labels, QueryError, Range, Value};

/// Prometheus refuses range queries of more points per series than this.
const MAX_POINTS_PER_SERIES: i64 = 11_000;

pub fn routes() -> Router<QueryState> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/metadata", get(metadata))
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
}

/// A failed request in Prometheus' shape.
struct PromError(PromErrorType, String);

impl IntoResponse for PromError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self.1, "PromQL query failed");
        }
        let body: PromResponse<()> = PromResponse::Error {
            error_type: self.0,
            error: if status.is_server_error() {
                "the store failed to answer; see the collector's log".into()
            } else {
                self.1
            },
        };
        json(status, &body)
    }
}

impl From<QueryError> for PromError {
    fn from(e: QueryError) -> Self {
        let kind = match &e {
            QueryError::BadData(_) => PromErrorType::BadData,
            QueryError::Execution(_) | QueryError::TooLarge(_) => PromErrorType::Execution,
            QueryError::Store(_) => PromErrorType::Unavailable,
        };
        Self(kind, e.to_string())
    }
}

fn bad(message: impl Into<String>) -> PromError {
    PromError(PromErrorType::BadData, message.into())
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

fn success<T: Serialize>(data: T) -> Response {
    json(
        StatusCode::OK,
        &PromResponse::Success {
            data,
            warnings: Vec::new(),
        },
    )
}

/// The query string's and the form body's parameters together, as Go's `ParseForm`.
struct Params(Vec<(String, String)>);

impl Params {
    fn read(query: Option<String>, body: &[u8]) -> Self {
        let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Self(pairs)
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time in milliseconds: Unix seconds (with decimals) or RFC 3339.
    fn time(&self, key: &str, default: i64) -> Result<i64, PromError> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        if let Ok(seconds) = v.parse::<f64>()
            && seconds.is_finite()
        {
            return Ok((seconds * 1000.0).round() as i64);
        }
        humantime::parse_rfc3339_weak(v)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .ok_or_else(|| {
                bad(format!(
                    "invalid parameter \"{key}\": cannot parse \"{v}\" to a valid timestamp (give Unix seconds or RFC 3339)"
                ))
            })
    }

    /// A duration in milliseconds: seconds (with decimals) or a Prometheus duration (`15s`).
    fn duration(&self, key: &str) -> Result<Option<i64>, PromError> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        if let Ok(seconds) = v.parse::<f64>()
            && seconds.is_finite()
        {
            return Ok(Some((seconds * 1000.0).round() as i64));
        }
        promql_parser::util::parse_duration(v)
            .map(|d| Some(d.as_millis() as i64))
            .map_err(|_| {
                bad(format!(
                    "invalid parameter \"{key}\": cannot parse \"{v}\" to a valid duration (give seconds or e.g. 15s, 1m)"
                ))
            })
    }
}

fn engine(s: &QueryState) -> Engine {
    Engine {
        store: s.store.clone(),
        limits: s.promql,
    }
}

fn now_ms() -> i64 {
    now_ns() / 1_000_000
}

fn metric(labels: Labels) -> Metric {
    labels.into_iter().collect()
}

fn pair(t_ms: i64, v: f64) -> SamplePair {
    SamplePair(t_ms as f64 / 1000.0, format_float(v))
}

async fn query(State(s): State<QueryState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    match run_query(&s, Params::read(q, &body)).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run_query(s: &QueryState, p: Params) -> Result<Response, PromError> {
    let text = p
        .get("query")
        .ok_or_else(|| bad("invalid parameter \"query\": give a PromQL expression"))?;
    let t = p.time("time", now_ms())?;
    let data = match engine(s).instant(text, t).await? {
        Value::Scalar(v) => QueryData::Scalar(pair(t, v)),
        Value::String(text) => QueryData::String(SamplePair(t as f64 / 1000.0, text)),
        Value::Vector(samples) => QueryData::Vector(
            samples
                .into_iter()
                .map(|x| VectorSample {
                    metric: metric(x.labels),
                    value: pair(t, x.value),
                })
                .collect(),
        ),
        Value::Matrix(series) => QueryData::Matrix(
            series
                .into_iter()
                .map(|x| MatrixSeries {
                    metric: metric(x.labels),
                    values: x.points.into_iter().map(|(pt, v)| pair(pt, v)).collect(),
                })
                .collect(),
        ),
    };
    Ok(success(data))
}

async fn query_range(State(s): State<QueryState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    match run_range(&s, Params::read(q, &body)).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn run_range(s: &QueryState, p: Params) -> Result<Response, PromError> {
    let text = p
        .get("query")
        .ok_or_else(|| bad("invalid parameter \"query\": give a PromQL expression"))?;
    let start = p
        .get("start")
        .ok_or_else(|| bad("invalid parameter \"start\": give a time"))
        .and_then(|_| p.time("start", 0))?;
    let end = p
        .get("end")
        .ok_or_else(|| bad("invalid parameter \"end\": give a time"))
        .and_then(|_| p.time("end", 0))?;
    if end < start {
        return Err(bad(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = p
        .duration("step")?
        .ok_or_else(|| bad("invalid parameter \"step\": give a duration, e.g. 15s"))?;
    if step <= 0 {
        return Err(bad(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(bad(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let series = engine(s)
        .range(
            text,
            Range {
                start_ms: start,
                end_ms: end,
                step_ms: step,
            },
        )
        .await?;
    Ok(success(QueryData::Matrix(
        series
            .into_iter()
            .map(|x| MatrixSeries {
                metric: metric(x.labels),
                values: x.points.into_iter().map(|(t, v)| pair(t, v)).collect(),
            })
            .collect(),
    )))
}

/// The label sets `match[]` selects between `start` and `end` (all time by default).
async fn matched(s: &QueryState, p: &Params) -> Result<Option<Vec<Labels>>, PromError> {
    let selectors = p.all("match[]");
    if selectors.is_empty() {
        return Ok(None);
    }
    let mut all = Vec::new();
    for text in selectors {
        let expr =
            promql::parse(text).map_err(|e| bad(format!("invalid parameter \"match[]\": {e}")))?;
        let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
            return Err(bad(format!(
                "invalid parameter \"match[]\": {text:?} is not a series selector"
            )));
        };
        let mut matchers = vs.matchers.matchers.clone();
        if let Some(name) = &vs.name {
            matchers.push(promql_parser::label::Matcher::new(
                promql_parser::label::MatchOp::Equal,
                "__name__",
                name,
            ));
        }
        all.push(promql_parser::label::Matchers::new(matchers));
    }
    let start = p.time("start", 0)?;
    let end = p.time("end", now_ms())?;
    Ok(Some(
        promql::select::series_matching(&engine(s), &all, start, end).await?,
    ))
}

async fn series(State(s): State<QueryState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::read(q, &body);
    match matched(&s, &p).await {
        Ok(Some(sets)) => success(sets.into_iter().map(metric).collect::<Vec<_>>()),
        Ok(None) => bad("no match[] parameter provided").into_response(),
        Err(e) => e.into_response(),
    }
}

/// Every label set the store has, without reading points: the series' labels and names,
/// `le` and `quantile` by name only.
async fn catalog_labels(s: &QueryState) -> Result<Vec<Labels>, PromError> {
    let catalog = s.store.metric_series().await.map_err(QueryError::from)?;
    let mut out = Vec::new();
    for info in catalog.iter() {
        use crate::model::MetricKind as K;
        let base = &info.prometheus_name;
        let names: Vec<(String, Option<&str>)> = match info.kind {
            K::Gauge | K::Counter | K::UpDownSum => vec![(base.clone(), None)],
            K::Histogram => vec![
                (format!("{base}_bucket"), Some("le")),
                (format!("{base}_sum"), None),
                (format!("{base}_count"), None),
            ],
            K::ExponentialHistogram => {
                vec![
                    (format!("{base}_sum"), None),
                    (format!("{base}_count"), None),
                ]
            }
            K::Summary => vec![
                (base.clone(), Some("quantile")),
                (format!("{base}_sum"), None),
                (format!("{base}_count"), None),
            ],
        };
        for (name, added) in names {
            let mut labels = info.labels.clone();
            labels.push(("__name__".into(), name));
            if let Some(added) = added {
                labels.push((added.into(), String::new()));
            }
            out.push(labels);
        }
    }
    // Span metrics exist wherever spans do.
    for service in s.store.services().await.map_err(QueryError::from)? {
        for name in promql::span_metrics::names() {
            let mut labels = vec![
                ("__name__".to_string(), name.clone()),
                ("service_name".to_string(), service.clone()),
                ("span_kind".to_string(), String::new()),
                ("span_name".to_string(), String::new()),
                ("status_code".to_string(), String::new()),
            ];
            if name.ends_with("_bucket") {
                labels.push(("le".into(), String::new()));
            }
            out.push(labels);
        }
    }
    Ok(out)
}

async fn labels(State(s): State<QueryState>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let p = Params::read(q, &body);
    let sets = match matched(&s, &p).await {
        Ok(Some(sets)) => sets,
        Ok(None) => match catalog_labels(&s).await {
            Ok(sets) => sets,
            Err(e) => return e.into_response(),
        },
        Err(e) => return e.into_response(),
    };
    let names: BTreeSet<String> = sets.into_iter().flatten().map(|(k, _)| k).collect();
    success(names.into_iter().collect::<Vec<_>>())
}

async fn label_values(
    State(s): State<QueryState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let p = Params::read(q, &[]);
    let needs_points = name == "le" || name == "quantile";
    let sets = match matched(&s, &p).await {
        Ok(Some(sets)) => sets,
        Ok(None) if needs_points => {
            // Bucket bounds and quantiles live in the points: read those of the window.
            let p = Params(
                p.0.into_iter()
                    .chain([("match[]".to_string(), format!("{{{name}=~\".+\"}}"))])
                    .collect(),
            );
            match matched(&s, &p).await {
                Ok(sets) => sets.unwrap_or_default(),
                Err(e) => return e.into_response(),
            }
        }
        Ok(None) => match catalog_labels(&s).await {
            Ok(sets) => sets,
            Err(e) => return e.into_response(),
        },
        Err(e) => return e.into_response(),
    };
    let values: BTreeSet<String> = sets
        .into_iter()
        .flatten()
        .filter(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
        .collect();
    success(values.into_iter().collect::<Vec<_>>())
}

async fn metadata(State(s): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::read(q, &[]);
    let catalog = match s.store.metric_series().await {
        Ok(c) => c,
        Err(e) => return PromError::from(QueryError::from(e)).into_response(),
    };
    let limit = match p.get("limit").map(str::parse::<i64>) {
        None => i64::MAX,
        Some(Ok(n)) if n < 0 => i64::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return bad("invalid parameter \"limit\": give a whole number").into_response();
        }
    };
    let only = p.get("metric");
    let mut data: MetadataData = BTreeMap::new();
    let span_metrics = [
        (
            promql::span_metrics::CALLS.trim_end_matches("_total"),
            "counter",
            "Spans, from the stored traces",
            "",
        ),
        (
            promql::span_metrics::DURATION,
            "histogram",
            "Span durations, from the stored traces",
            "s",
        ),
    ];
    for (name, kind, help, unit) in span_metrics {
        if only.is_none_or(|m| m == name) {
            data.entry(name.to_string())
                .or_default()
                .push(MetricMetadata {
                    kind: kind.into(),
                    help: help.into(),
                    unit: unit.into(),
                });
        }
    }
    for info in catalog.iter() {
        if only.is_some_and(|m| m != info.prometheus_name) {
            continue;
        }
        let entry = MetricMetadata {
            kind: info.kind.prometheus_type().into(),
            help: info.description.clone(),
            unit: info.unit.clone(),
        };
        let list = data.entry(info.prometheus_name.clone()).or_default();
        if !list.contains(&entry) {
            list.push(entry);
        }
    }
    let data: MetadataData = data
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(usize::MAX))
        .collect();
    success(data)
}

async fn query_exemplars(
    State(s): State<QueryState>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    match run_exemplars(&s, Params::read(q, &body)).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// `/api/v1/query_exemplars?query=&start=&end=`: the exemplars of the series the query's
/// selectors pick, each with its `trace_id` and `span_id` labels.
async fn run_exemplars(s: &QueryState, p: Params) -> Result<Response, PromError> {
    let text = p
        .get("query")
        .ok_or_else(|| bad("invalid parameter \"query\": give a PromQL expression"))?;
    let expr = promql::parse(text)?;
    let end = p.time("end", now_ms())?;
    let start = p.time("start", end - 3_600_000)?;
    if end < start {
        return Err(bad(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let found = promql::select::exemplars(&engine(s), &expr, start, end).await?;
    let data: Vec<ExemplarSeries> = found
        .into_iter()
        .map(|(labels, exemplars)| ExemplarSeries {
            series_labels: metric(labels),
            exemplars: exemplars
                .into_iter()
                .map(|e| {
                    let mut labels = Metric::new();
                    if let Some(t) = e.trace_id {
                        labels.insert("trace_id".into(), crate::model::hex(&t));
                    }
                    if let Some(sp) = e.span_id {
                        labels.insert("span_id".into(), crate::model::hex(&sp));
                    }
                    ExemplarData {
                        labels,
                        value: format_float(e.value),
                        timestamp: e.time_ms as f64 / 1000.0,
                    }
                })
                .collect(),
        })
        .collect();
    Ok(success(data))
}
