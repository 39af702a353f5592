//! Every query's parameters, typed. The collector parses a query string into these once
//! (with a message naming the parameter and the form it wants on a bad value); clients write
//! the same types back into a query string, so a parameter's name and form are declared here
//! and nowhere else.

use serde::Deserialize;

use crate::SpanKind;
use crate::logs::LogCursor;

/// A query string as its pairs, in order, repeated keys kept (`tag=`, `traceID=`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Pairs(pub Vec<(String, String)>);

impl Pairs {
    /// The first non-empty value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.all(key).find(|v| !v.is_empty())
    }

    /// Every value of `key`, in order.
    pub fn all<'a, 'k>(&'a self, key: &'k str) -> impl Iterator<Item = &'a str> + use<'a, 'k> {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parameter that was missing or not of its form; the message says what to give.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParamError(pub String);

/// A query's parameters: read from a query string, written back into one.
pub trait QueryParams: Sized {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError>;
    fn to_pairs(&self) -> Vec<(&'static str, String)>;
}

fn required<'a>(pairs: &'a Pairs, key: &str, message: &str) -> Result<&'a str, ParamError> {
    pairs
        .get(key)
        .ok_or_else(|| ParamError(message.to_string()))
}

fn text(pairs: &Pairs, key: &str) -> Option<String> {
    pairs.get(key).map(str::to_string)
}

/// A time given as microseconds since the epoch (Jaeger's unit) or as RFC 3339; in ns.
pub fn time(pairs: &Pairs, key: &str) -> Result<Option<i64>, ParamError> {
    let Some(v) = pairs.get(key) else {
        return Ok(None);
    };
    if let Ok(us) = v.parse::<i64>() {
        return Ok(Some(us.saturating_mul(1000)));
    }
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| Some(d.as_nanos() as i64))
        .ok_or_else(|| {
            ParamError(format!(
                "{key}={v:?} is not a time: give microseconds since the epoch or RFC 3339 (2026-01-02T03:04:05Z)"
            ))
        })
}

/// A limit as given, or the route's default, and never more than its maximum.
fn capped(limit: Option<usize>, default: usize, max: usize) -> usize {
    limit.unwrap_or(default).min(max)
}

/// `limit` as given: `None` when absent or 0 (the route's default applies).
fn limit(pairs: &Pairs) -> Result<Option<usize>, ParamError> {
    match pairs.get("limit") {
        None => Ok(None),
        Some(v) => match v.parse::<usize>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(ParamError(format!("limit={v:?} is not a whole number"))),
        },
    }
}

fn go_duration(pairs: &Pairs, key: &str) -> Result<Option<i64>, ParamError> {
    pairs
        .get(key)
        .map(|v| {
            go_duration_ns(v).ok_or_else(|| {
                ParamError(format!(
                    "{key}={v:?} is not a duration: use forms like 250ms, 1.5s, 2m, 100us"
                ))
            })
        })
        .transpose()
}

/// Parses a Go duration (`1h2m`, `1.5s`, `300ms`, `10us`, `5µs`, `7ns`) into nanoseconds.
pub fn go_duration_ns(s: &str) -> Option<i64> {
    let mut rest = s.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    Some(total as i64)
}

/// Writes a duration in ns as a Go duration the parser above reads back.
fn go_duration_text(ns: i64) -> String {
    format!("{ns}ns")
}

fn push_time(out: &mut Vec<(&'static str, String)>, key: &'static str, ns: Option<i64>) {
    if let Some(ns) = ns {
        out.push((key, (ns / 1000).to_string()));
    }
}

fn push_text(out: &mut Vec<(&'static str, String)>, key: &'static str, v: &Option<String>) {
    if let Some(v) = v {
        out.push((key, v.clone()));
    }
}

/// `GET /api/traces`: several traces by ID (Jaeger's UI does this), or a search.
#[derive(Debug, Clone, PartialEq)]
pub enum TracesQuery {
    ByIds(Vec<String>),
    Search(TraceSearch),
}

impl QueryParams for TracesQuery {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError> {
        let ids: Vec<String> = pairs.all("traceID").map(str::to_string).collect();
        if ids.is_empty() {
            TraceSearch::from_pairs(pairs).map(Self::Search)
        } else {
            Ok(Self::ByIds(ids))
        }
    }
    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::ByIds(ids) => ids.iter().map(|id| ("traceID", id.clone())).collect(),
            Self::Search(s) => s.to_pairs(),
        }
    }
}

/// A trace search: traces with a span of `service` matching every condition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceSearch {
    pub service: String,
    pub operation: Option<String>,
    /// Attribute (or pseudo-tag: `error`, `span.kind`, `otel.status_code`) equals value;
    /// from the JSON object `tags` and each `tag=key:value`.
    pub tags: Vec<(String, String)>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    pub min_duration_ns: Option<i64>,
    pub max_duration_ns: Option<i64>,
    pub limit: Option<usize>,
}

impl TraceSearch {
    pub const DEFAULT_LIMIT: usize = 20;
    pub const MAX_LIMIT: usize = 1500;

    /// The traces to answer at most.
    pub fn limit(&self) -> usize {
        capped(self.limit, Self::DEFAULT_LIMIT, Self::MAX_LIMIT)
    }

    fn tags(pairs: &Pairs) -> Result<Vec<(String, String)>, ParamError> {
        let mut tags = Vec::new();
        if let Some(t) = pairs.get("tags") {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(t)
                .map_err(|e| {
                    ParamError(format!(
                        "tags={t:?} is not a JSON object of strings, like {{\"http.response.status_code\":\"500\"}}: {e}"
                    ))
                })?;
            for (k, v) in map {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                tags.push((k, v));
            }
        }
        for v in pairs.all("tag").filter(|v| !v.is_empty()) {
            let (key, value) = v
                .split_once(':')
                .ok_or_else(|| ParamError(format!("tag={v:?} must be key:value")))?;
            tags.push((key.to_string(), value.to_string()));
        }
        Ok(tags)
    }
}

impl QueryParams for TraceSearch {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError> {
        Ok(Self {
            service: required(pairs, "service", "parameter 'service' is required")?.to_string(),
            operation: text(pairs, "operation"),
            tags: Self::tags(pairs)?,
            start_ns: time(pairs, "start")?,
            end_ns: time(pairs, "end")?,
            min_duration_ns: go_duration(pairs, "minDuration")?,
            max_duration_ns: go_duration(pairs, "maxDuration")?,
            limit: limit(pairs)?,
        })
    }

    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("service", self.service.clone())];
        push_text(&mut out, "operation", &self.operation);
        for (k, v) in &self.tags {
            out.push(("tag", format!("{k}:{v}")));
        }
        push_time(&mut out, "start", self.start_ns);
        push_time(&mut out, "end", self.end_ns);
        if let Some(ns) = self.min_duration_ns {
            out.push(("minDuration", go_duration_text(ns)));
        }
        if let Some(ns) = self.max_duration_ns {
            out.push(("maxDuration", go_duration_text(ns)));
        }
        if let Some(n) = self.limit {
            out.push(("limit", n.to_string()));
        }
        out
    }
}

/// `GET /api/operations`: a service's operations, of one span kind or all.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationsQuery {
    pub service: String,
    pub span_kind: Option<SpanKind>,
}

impl QueryParams for OperationsQuery {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError> {
        let span_kind = pairs
            .get("spanKind")
            .map(|k| {
                SpanKind::from_jaeger_name(k).ok_or_else(|| {
                    ParamError(format!(
                        "spanKind={k:?} is not one of server, client, producer, consumer, internal"
                    ))
                })
            })
            .transpose()?;
        Ok(Self {
            service: required(pairs, "service", "parameter 'service' is required")?.to_string(),
            span_kind,
        })
    }
    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("service", self.service.clone())];
        if let Some(k) = self.span_kind {
            out.push(("spanKind", k.jaeger_name().to_string()));
        }
        out
    }
}

/// `GET /api/v1/logs`: logs newest first, every given condition holding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogsQuery {
    pub service: Option<String>,
    /// Hex, as the collector's other answers give it.
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub correlation_id: Option<String>,
    /// At least this severity number (1–24).
    pub severity_min: Option<i32>,
    /// Text the body contains.
    pub text: Option<String>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// The page after this `next_cursor`.
    pub cursor: Option<LogCursor>,
    pub limit: Option<usize>,
}

impl LogsQuery {
    pub const DEFAULT_LIMIT: usize = 100;
    pub const MAX_LIMIT: usize = 1000;

    pub fn limit(&self) -> usize {
        capped(self.limit, Self::DEFAULT_LIMIT, Self::MAX_LIMIT)
    }
}

/// A minimum severity as a number (1–24) or a name (trace, debug, info, warn, error, fatal).
pub fn severity(v: &str) -> Result<i32, ParamError> {
    if let Ok(n) = v.parse::<i32>()
        && (0..=24).contains(&n)
    {
        return Ok(n);
    }
    Ok(match v.to_ascii_lowercase().as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" | "warning" => 13,
        "error" => 17,
        "fatal" => 21,
        _ => {
            return Err(ParamError(format!(
                "severity_min={v:?}: give 1–24 or one of trace, debug, info, warn, error, fatal"
            )));
        }
    })
}

impl QueryParams for LogsQuery {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError> {
        Ok(Self {
            service: text(pairs, "service"),
            trace_id: text(pairs, "trace_id"),
            span_id: text(pairs, "span_id"),
            correlation_id: text(pairs, "correlation_id"),
            severity_min: pairs.get("severity_min").map(severity).transpose()?,
            text: text(pairs, "q"),
            start_ns: time(pairs, "start")?,
            end_ns: time(pairs, "end")?,
            cursor: pairs
                .get("cursor")
                .map(|c| {
                    c.parse::<LogCursor>()
                        .map_err(|e| ParamError(format!("cursor={e}")))
                })
                .transpose()?,
            limit: limit(pairs)?,
        })
    }
    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        push_text(&mut out, "service", &self.service);
        push_text(&mut out, "trace_id", &self.trace_id);
        push_text(&mut out, "span_id", &self.span_id);
        push_text(&mut out, "correlation_id", &self.correlation_id);
        if let Some(s) = self.severity_min {
            out.push(("severity_min", s.to_string()));
        }
        push_text(&mut out, "q", &self.text);
        push_time(&mut out, "start", self.start_ns);
        push_time(&mut out, "end", self.end_ns);
        if let Some(c) = self.cursor {
            out.push(("cursor", c.to_string()));
        }
        if let Some(n) = self.limit {
            out.push(("limit", n.to_string()));
        }
        out
    }
}

/// `GET /api/v1/red`: a service's (or one operation's) rate, errors and duration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedQuery {
    pub service: String,
    pub operation: Option<String>,
    /// Only the instances reporting this `service.version` (a canary's baseline or
    /// candidate).
    pub version: Option<String>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// At least one second; by default the window in sixty whole seconds.
    pub step_ns: Option<i64>,
}

impl QueryParams for RedQuery {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError> {
        let step_ns = pairs
            .get("step")
            .map(|v| {
                go_duration_ns(v)
                    .filter(|ns| *ns >= 1_000_000_000)
                    .ok_or_else(|| {
                        ParamError(format!(
                            "step={v:?} is not a duration of at least 1s (15s, 1m, 1h)"
                        ))
                    })
            })
            .transpose()?;
        Ok(Self {
            service: required(
                pairs,
                "service",
                "service is required (GET /api/services lists them)",
            )?
            .to_string(),
            operation: text(pairs, "operation"),
            version: text(pairs, "version"),
            start_ns: time(pairs, "start")?,
            end_ns: time(pairs, "end")?,
            step_ns,
        })
    }
    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("service", self.service.clone())];
        push_text(&mut out, "operation", &self.operation);
        push_text(&mut out, "version", &self.version);
        push_time(&mut out, "start", self.start_ns);
        push_time(&mut out, "end", self.end_ns);
        if let Some(ns) = self.step_ns {
            out.push(("step", go_duration_text(ns)));
        }
        out
    }
}

/// `GET /api/v1/requests`: each request one service (one version of it) served in a
/// window, for tests that need the requests themselves, not percentiles (a canary judge).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestsQuery {
    pub service: String,
    pub version: Option<String>,
    pub operation: Option<String>,
    /// Required: a window's requests, not "the latest".
    pub start_ns: i64,
    /// Default: now.
    pub end_ns: Option<i64>,
    pub limit: Option<usize>,
}

impl RequestsQuery {
    pub const DEFAULT_LIMIT: usize = 10_000;
    pub const MAX_LIMIT: usize = 100_000;

    pub fn limit(&self) -> usize {
        capped(self.limit, Self::DEFAULT_LIMIT, Self::MAX_LIMIT)
    }
}

impl QueryParams for RequestsQuery {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError> {
        let service = required(
            pairs,
            "service",
            "service is required (GET /api/services lists them)",
        )?;
        let start_ns = time(pairs, "start")?.ok_or_else(|| {
            ParamError("start is required: the window's start (microseconds or RFC 3339)".into())
        })?;
        Ok(Self {
            service: service.to_string(),
            version: text(pairs, "version"),
            operation: text(pairs, "operation"),
            start_ns,
            end_ns: time(pairs, "end")?,
            limit: limit(pairs)?,
        })
    }
    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![("service", self.service.clone())];
        push_text(&mut out, "version", &self.version);
        push_text(&mut out, "operation", &self.operation);
        push_time(&mut out, "start", Some(self.start_ns));
        push_time(&mut out, "end", self.end_ns);
        if let Some(n) = self.limit {
            out.push(("limit", n.to_string()));
        }
        out
    }
}

/// `GET /api/dependencies`: Jaeger's parameters, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DependenciesQuery {
    /// The window's end, milliseconds since the epoch (default: now).
    pub end_ts_ms: Option<i64>,
    /// The window's length in milliseconds (default: an hour).
    pub lookback_ms: Option<i64>,
}

impl QueryParams for DependenciesQuery {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError> {
        let millis = |key: &str, what: &str| {
            pairs
                .get(key)
                .map(|v| {
                    v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                        ParamError(format!("{key}={v:?} is not a whole number of {what}"))
                    })
                })
                .transpose()
        };
        Ok(Self {
            end_ts_ms: millis("endTs", "milliseconds since the epoch")?,
            lookback_ms: millis("lookback", "milliseconds")?,
        })
    }
    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(v) = self.end_ts_ms {
            out.push(("endTs", v.to_string()));
        }
        if let Some(v) = self.lookback_ms {
            out.push(("lookback", v.to_string()));
        }
        out
    }
}

/// `GET /api/v1/markers`: markers in a window (default: the last day).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MarkersQuery {
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    pub limit: Option<usize>,
}

impl MarkersQuery {
    pub const DEFAULT_LIMIT: usize = 200;
    pub const MAX_LIMIT: usize = 1500;

    pub fn limit(&self) -> usize {
        capped(self.limit, Self::DEFAULT_LIMIT, Self::MAX_LIMIT)
    }
}

impl QueryParams for MarkersQuery {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError> {
        Ok(Self {
            start_ns: time(pairs, "start")?,
            end_ns: time(pairs, "end")?,
            limit: limit(pairs)?,
        })
    }
    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        push_time(&mut out, "start", self.start_ns);
        push_time(&mut out, "end", self.end_ns);
        if let Some(n) = self.limit {
            out.push(("limit", n.to_string()));
        }
        out
    }
}

/// `GET /api/v1/correlations/{id}`: how many items the timeline holds at most.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimelineQuery {
    pub limit: Option<usize>,
}

impl TimelineQuery {
    pub const DEFAULT_LIMIT: usize = 5000;
    pub const MAX_LIMIT: usize = 50_000;

    pub fn limit(&self) -> usize {
        capped(self.limit, Self::DEFAULT_LIMIT, Self::MAX_LIMIT)
    }
}

impl QueryParams for TimelineQuery {
    fn from_pairs(pairs: &Pairs) -> Result<Self, ParamError> {
        Ok(Self {
            limit: limit(pairs)?,
        })
    }
    fn to_pairs(&self) -> Vec<(&'static str, String)> {
        self.limit
            .map(|n| vec![("limit", n.to_string())])
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Pairs {
        Pairs(
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// What a client writes, the server reads back as the same query.
    fn round_trips<Q: QueryParams + PartialEq + std::fmt::Debug>(q: Q) {
        let written = Pairs(
            q.to_pairs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        assert_eq!(Q::from_pairs(&written), Ok(q));
    }

    #[test]
    fn every_query_round_trips() {
        round_trips(TracesQuery::Search(TraceSearch {
            service: "orders".into(),
            operation: Some("POST /orders".into()),
            tags: vec![
                ("error".into(), "true".into()),
                ("a.b".into(), "x:y".into()),
            ],
            start_ns: Some(1_000_000),
            end_ns: Some(2_000_000),
            min_duration_ns: Some(1_500_000),
            max_duration_ns: Some(7),
            limit: Some(30),
        }));
        round_trips(TracesQuery::ByIds(vec!["ab".into(), "cd".into()]));
        round_trips(OperationsQuery {
            service: "s".into(),
            span_kind: Some(SpanKind::Consumer),
        });
        round_trips(LogsQuery {
            service: Some("s".into()),
            trace_id: Some("ab".into()),
            span_id: Some("cd".into()),
            correlation_id: Some("c-1".into()),
            severity_min: Some(13),
            text: Some("boom".into()),
            start_ns: Some(5_000),
            end_ns: Some(6_000),
            cursor: Some(LogCursor { time_ns: 9, id: 4 }),
            limit: Some(10),
        });
        round_trips(RedQuery {
            service: "s".into(),
            operation: None,
            version: Some("v2".into()),
            start_ns: Some(1_000),
            end_ns: None,
            step_ns: Some(15_000_000_000),
        });
        round_trips(DependenciesQuery {
            end_ts_ms: Some(1),
            lookback_ms: Some(2),
        });
        round_trips(MarkersQuery {
            start_ns: None,
            end_ns: Some(3_000),
            limit: Some(5),
        });
        round_trips(TimelineQuery { limit: Some(9) });
        round_trips(RequestsQuery {
            service: "inventory".into(),
            version: Some("v2".into()),
            operation: None,
            start_ns: 5_000,
            end_ns: Some(9_000),
            limit: Some(50),
        });
    }

    #[test]
    fn bad_values_name_the_parameter_and_the_form() {
        let err = |q: &[(&str, &str)]| {
            TraceSearch::from_pairs(&pairs(q))
                .map(drop)
                .map_err(|e| e.0)
        };
        assert_eq!(err(&[]), Err("parameter 'service' is required".to_string()));
        for (q, says) in [
            (("minDuration", "fast"), "not a duration"),
            (("tags", "notjson"), "JSON object"),
            (("start", "yesterday"), "not a time"),
            (("limit", "-1"), "whole number"),
            (("tag", "novalue"), "key:value"),
        ] {
            let got = err(&[("service", "x"), q]);
            assert!(
                got.as_ref().is_err_and(|m| m.contains(says)),
                "{q:?}: {got:?}"
            );
        }
        let logs = LogsQuery::from_pairs(&pairs(&[("cursor", "abc")]));
        assert!(logs.is_err_and(|e| e.0.contains("cursor=\"abc\" is not a next_cursor")));
        let red = RedQuery::from_pairs(&pairs(&[("service", "s"), ("step", "500ms")]));
        assert!(red.is_err_and(|e| e.0.contains("step=\"500ms\"")));
        let served = RequestsQuery::from_pairs(&pairs(&[("service", "s")]));
        assert!(served.is_err_and(|e| e.0.contains("start is required")));
    }

    #[test]
    fn limits_default_and_cap() {
        let q = |l: &str| TraceSearch::from_pairs(&pairs(&[("service", "s"), ("limit", l)]));
        assert_eq!(q("0").map(|q| q.limit()), Ok(20));
        assert_eq!(q("99999").map(|q| q.limit()), Ok(1500));
        assert_eq!(q("7").map(|q| q.limit()), Ok(7));
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(go_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration_ns("250ms"), Some(250_000_000));
        assert_eq!(go_duration_ns("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration_ns("100us"), Some(100_000));
        assert_eq!(go_duration_ns("7µs"), Some(7_000));
        assert_eq!(go_duration_ns("10"), None);
        assert_eq!(go_duration_ns("fast"), None);
    }

    #[test]
    fn severities_by_number_or_name() {
        assert_eq!(severity("warn"), Ok(13));
        assert_eq!(severity("ERROR"), Ok(17));
        assert_eq!(severity("9"), Ok(9));
        assert!(severity("loud").is_err());
        assert!(severity("99").is_err());
    }
}
