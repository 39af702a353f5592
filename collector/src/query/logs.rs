//! `GET /api/v1/logs`: logs newest first, filtered by service, trace, span, correlation ID,
//! minimum severity, body text and time, with cursor pagination (`next_cursor` → `cursor`).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ApiError, Params, QueryState, limit_param, param, time_param};
use crate::model::{LogRecord, hex, parse_span_id, parse_trace_id, rfc3339};
use crate::store::{LogCursor, LogQuery};

pub async fn logs(
    State(s): State<QueryState>,
    Query(params): Query<Params>,
) -> Result<Response, ApiError> {
    let query = LogQuery {
        service: param(&params, "service").map(str::to_string),
        trace_id: param(&params, "trace_id")
            .map(|v| {
                parse_trace_id(v).ok_or_else(|| {
                    ApiError::bad_request(format!("trace_id={v:?} is not 32 hex digits"))
                })
            })
            .transpose()?,
        span_id: param(&params, "span_id")
            .map(|v| {
                parse_span_id(v).ok_or_else(|| {
                    ApiError::bad_request(format!("span_id={v:?} is not 16 hex digits"))
                })
            })
            .transpose()?,
        correlation_id: param(&params, "correlation_id").map(str::to_string),
        severity_min: param(&params, "severity_min").map(severity).transpose()?,
        text: param(&params, "q").map(str::to_string),
        start_ns: time_param(&params, "start")?,
        end_ns: time_param(&params, "end")?,
        before: param(&params, "cursor").map(parse_cursor).transpose()?,
        limit: limit_param(&params, 100, 1000)?,
    };
    let page = s.store.logs(&query).await?;
    let data: Vec<Value> = page.logs.iter().map(|l| log_json(&l.record)).collect();
    Ok(axum::Json(json!({
        "data": data,
        "next_cursor": page.next.map(|c| format!("{}.{}", c.time_ns, c.id)),
        "errors": null,
    }))
    .into_response())
}

/// A minimum severity as a number (1–24) or a name (trace, debug, info, warn, error, fatal).
fn severity(v: &str) -> Result<i32, ApiError> {
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
            return Err(ApiError::bad_request(format!(
                "severity_min={v:?}: give 1–24 or one of trace, debug, info, warn, error, fatal"
            )));
        }
    })
}

fn parse_cursor(v: &str) -> Result<LogCursor, ApiError> {
    v.split_once('.')
        .and_then(|(t, id)| {
            Some(LogCursor {
                time_ns: t.parse().ok()?,
                id: id.parse().ok()?,
            })
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!("cursor={v:?} is not a next_cursor this API gave"))
        })
}

/// The severity name OTel gives a severity number.
pub fn severity_name(n: i32) -> &'static str {
    match n {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "UNSPECIFIED",
    }
}

pub fn log_json(l: &LogRecord) -> Value {
    let severity = if l.severity_text.is_empty() {
        severity_name(l.severity_number).to_string()
    } else {
        l.severity_text.clone()
    };
    json!({
        "time": rfc3339(l.time_ns),
        "time_unix_nano": l.time_ns,
        "service": l.resource.service,
        "severity": severity,
        "severity_number": l.severity_number,
        "body": l.body,
        "attributes": serde_json::from_str::<Value>(&l.attributes).unwrap_or(Value::Null),
        "resource": serde_json::from_str::<Value>(&l.resource.attributes).unwrap_or(Value::Null),
        "scope": l.scope_name,
        "event_name": l.event_name,
        "trace_id": l.trace_id.map(|t| hex(&t)),
        "span_id": l.span_id.map(|s| hex(&s)),
        "correlation_id": l.correlation_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_by_number_or_name() {
        assert_eq!(severity("warn").ok(), Some(13));
        assert_eq!(severity("ERROR").ok(), Some(17));
        assert_eq!(severity("9").ok(), Some(9));
        assert!(severity("loud").is_err());
        assert!(severity("99").is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let c = parse_cursor("1700000000000000000.42").ok();
        assert_eq!(
            c,
            Some(LogCursor {
                time_ns: 1_700_000_000_000_000_000,
                id: 42
            })
        );
        assert!(parse_cursor("garbage").is_err());
    }
}
