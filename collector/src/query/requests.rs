//! `GET /api/v1/requests?service=&version=&operation=&start=&end=&limit=`: each request a
//! service (or one version of it) served in a window, from its SERVER spans, newest first.
//! RED's percentiles cannot be compared with a rank test; these can (the canary judge).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use gauntlet_query_api::params::{Pairs, RequestsQuery};
use gauntlet_query_api::requests::{ServedRequest, ServedRequests};

use super::{ApiError, QueryState, parse};
use crate::model::{SpanKind, now_ns};
use crate::store::SampleQuery;

pub async fn requests(
    State(s): State<QueryState>,
    Query(pairs): Query<Pairs>,
) -> Result<Response, ApiError> {
    let q: RequestsQuery = parse(&pairs)?;
    let end = q.end_ns.unwrap_or_else(now_ns);
    if q.start_ns >= end {
        return Err(ApiError::bad_request(format!(
            "start ({} ns) must be before end ({end} ns)",
            q.start_ns
        )));
    }
    let samples = s
        .store
        .span_samples(&SampleQuery {
            service: Some(q.service.clone()),
            operation: q.operation.clone(),
            version: q.version.clone(),
            kinds: vec![SpanKind::Server],
            start_ns: q.start_ns,
            end_ns: end,
            limit: q.limit(),
            protocols: false,
        })
        .await?;
    let requests = samples
        .spans
        .iter()
        .map(|s| ServedRequest {
            start: s.start_ns / 1000,
            duration_us: s.duration_ns / 1000,
            error: s.error,
        })
        .collect();
    Ok(axum::Json(ServedRequests {
        service: q.service,
        version: q.version,
        start: q.start_ns / 1000,
        end: end / 1000,
        requests,
        truncated: samples.truncated,
    })
    .into_response())
}
