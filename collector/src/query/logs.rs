//! `GET /api/v1/logs`: logs newest first, filtered by service, trace, span, correlation ID,
//! minimum severity, body text and time, with cursor pagination (`next_cursor` → `cursor`).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use gauntlet_query_api::logs::{LogCursor, LogEntry, LogPage, severity_name};
use gauntlet_query_api::params::{LogsQuery, Pairs};
use gauntlet_query_api::{AttributeValue, Attributes};

use super::{ApiError, QueryState, parse};
use crate::model::{self, LogRecord, hex, parse_span_id, parse_trace_id, rfc3339};
use crate::store::{self, LogQuery};

pub async fn logs(
    State(s): State<QueryState>,
    Query(pairs): Query<Pairs>,
) -> Result<Response, ApiError> {
    let q: LogsQuery = parse(&pairs)?;
    let limit = q.limit();
    let query = LogQuery {
        trace_id: q
            .trace_id
            .map(|v| {
                parse_trace_id(&v).ok_or_else(|| {
                    ApiError::bad_request(format!("trace_id={v:?} is not 32 hex digits"))
                })
            })
            .transpose()?,
        span_id: q
            .span_id
            .map(|v| {
                parse_span_id(&v).ok_or_else(|| {
                    ApiError::bad_request(format!("span_id={v:?} is not 16 hex digits"))
                })
            })
            .transpose()?,
        service: q.service,
        correlation_id: q.correlation_id,
        severity_min: q.severity_min,
        text: q.text,
        start_ns: q.start_ns,
        end_ns: q.end_ns,
        before: q.cursor.map(|c| store::LogCursor {
            time_ns: c.time_ns,
            id: c.id,
        }),
        limit,
    };
    let page = s.store.logs(&query).await?;
    Ok(axum::Json(LogPage {
        data: page.logs.iter().map(|l| log_entry(&l.record)).collect(),
        next_cursor: page.next.map(|c| LogCursor {
            time_ns: c.time_ns,
            id: c.id,
        }),
        errors: None,
    })
    .into_response())
}

/// The model's attributes as the API answers them: bytes as base64 text, a double JSON
/// cannot hold (NaN, ±Infinity) as its name, and empty values left out.
pub fn attributes(attrs: &model::Attributes) -> Attributes {
    attrs
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), attribute_value(v)?)))
        .collect()
}

fn attribute_value(v: &model::Value) -> Option<AttributeValue> {
    use model::Value as V;
    Some(match v {
        V::Empty => return None,
        V::String(s) => AttributeValue::String(s.clone()),
        V::Bool(b) => AttributeValue::Bool(*b),
        V::Int(i) => AttributeValue::Int(*i),
        V::Double(d) if d.is_finite() => AttributeValue::Double(*d),
        V::Double(_) | V::Bytes(_) => AttributeValue::String(v.text().into_owned()),
        V::Array(values) => {
            AttributeValue::Array(values.iter().filter_map(attribute_value).collect())
        }
        V::Map(map) => AttributeValue::Map(attributes(map)),
    })
}

pub fn log_entry(l: &LogRecord) -> LogEntry {
    let severity = if l.severity_text.is_empty() {
        severity_name(l.severity_number).to_string()
    } else {
        l.severity_text.clone()
    };
    LogEntry {
        time: rfc3339(l.time_ns),
        time_unix_nano: l.time_ns,
        service: l.resource.service.clone(),
        severity,
        severity_number: l.severity_number,
        body: l.body.clone(),
        attributes: attributes(&l.attributes),
        resource: attributes(&l.resource.attributes),
        scope: l.scope_name.clone(),
        event_name: l.event_name.clone(),
        trace_id: l.trace_id.map(|t| hex(&t)),
        span_id: l.span_id.map(|s| hex(&s)),
        correlation_id: l.correlation_id.clone(),
    }
}
