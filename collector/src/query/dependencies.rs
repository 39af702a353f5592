//! Jaeger's `GET /api/dependencies?endTs=&lookback=`: which service calls which, counted from
//! the spans that started in the window. A span whose parent is a span of another service is
//! one call from the parent's service to its own; so is a span without such a parent that
//! links to one (a consumer and the producer of its message: an asynchronous hop). Beside
//! Jaeger's `callCount` each link says how many of those calls failed, their p99 and the
//! protocols the called spans say they were carried by (see
//! [`crate::store::SpanSample::protocol`]), for the service map.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use gauntlet_query_api::dependencies::{Dependencies, DependencyLink};
use gauntlet_query_api::params::{DependenciesQuery, Pairs};

use super::red::percentile_ms;
use super::{ApiError, QueryState, parse};
use crate::model::now_ns;
use crate::store::{SampleQuery, Samples, SpanSample, Store, StoreError};

/// Spans one answer reads at most (the newest in the window); past it, `truncated` is true.
pub const MAX_SPANS: usize = 2_000_000;
const DEFAULT_LOOKBACK_MS: i64 = 3_600_000;

pub async fn dependencies(
    State(s): State<QueryState>,
    Query(pairs): Query<Pairs>,
) -> Result<Response, ApiError> {
    let q: DependenciesQuery = parse(&pairs)?;
    let end_ms = q.end_ts_ms.unwrap_or(now_ns() / 1_000_000);
    let lookback_ms = q.lookback_ms.unwrap_or(DEFAULT_LOOKBACK_MS);
    let end_ns = end_ms.saturating_mul(1_000_000);
    let start_ns = end_ns.saturating_sub(lookback_ms.saturating_mul(1_000_000));
    let Links {
        links: data,
        truncated,
    } = s.store.dependency_links(start_ns, end_ns).await?;
    Ok(axum::Json(Dependencies {
        total: data.len(),
        data,
        limit: 0,
        offset: 0,
        errors: None,
        truncated,
    })
    .into_response())
}

/// A store's answer: the links, sorted by parent then child, and whether they were counted
/// from only the newest [`MAX_SPANS`] spans of the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Links {
    pub links: Vec<DependencyLink>,
    pub truncated: bool,
}

/// The links counted from the spans that started in `start_ns..=end_ns`, as a store without
/// edge rollups answers.
pub async fn from_spans<S: Store + ?Sized>(
    store: &S,
    start_ns: i64,
    end_ns: i64,
) -> Result<Links, StoreError> {
    let samples = store
        .span_samples(&SampleQuery {
            start_ns,
            end_ns,
            limit: MAX_SPANS,
            protocols: true,
            ..Default::default()
        })
        .await?;
    Ok(Links {
        links: links(&samples),
        truncated: samples.truncated,
    })
}

/// The calls between services among the samples, sorted by parent then child.
pub fn links(samples: &Samples) -> Vec<DependencyLink> {
    let owner: HashMap<(&[u8; 16], &[u8; 8]), u32> = samples
        .spans
        .iter()
        .map(|s| ((&s.trace_id, &s.span_id), s.service))
        .collect();
    let mut edges: BTreeMap<(&str, &str), Edge> = BTreeMap::new();
    let other_service = |span: &SpanSample, key: (&[u8; 16], &[u8; 8])| {
        owner.get(&key).copied().filter(|s| *s != span.service)
    };
    for span in &samples.spans {
        let by_parent = span
            .parent_span_id
            .as_ref()
            .and_then(|p| other_service(span, (&span.trace_id, p)));
        let by_link = || {
            span.link
                .as_ref()
                .and_then(|(t, s)| other_service(span, (t, s)))
        };
        let Some(caller) = by_parent.or_else(by_link) else {
            continue;
        };
        let edge = edges
            .entry((samples.name(caller), samples.name(span.service)))
            .or_default();
        edge.errors += u64::from(span.error);
        edge.durations.push(span.duration_ns);
        if let Some(p) = span.protocol {
            edge.protocols.insert(samples.name(p));
        }
    }
    edges
        .into_iter()
        .map(|((parent, child), mut e)| DependencyLink {
            parent: parent.to_string(),
            child: child.to_string(),
            call_count: e.durations.len() as u64,
            error_count: e.errors,
            p99_ms: percentile_ms(&mut e.durations, 0.99).unwrap_or_default(),
            protocols: e.protocols.into_iter().map(str::to_string).collect(),
        })
        .collect()
}

/// One caller → callee pair's calls so far.
#[derive(Default)]
struct Edge<'a> {
    errors: u64,
    durations: Vec<i64>,
    protocols: BTreeSet<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SpanKind;

    fn sample(trace: u8, span: u8, parent: Option<u8>, service: u32, ms: i64) -> SpanSample {
        SpanSample {
            trace_id: [trace; 16],
            span_id: [span; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            link: None,
            service,
            operation: 0,
            kind: SpanKind::Server,
            start_ns: 0,
            duration_ns: ms * 1_000_000,
            error: false,
            status: crate::model::StatusCode::Unset,
            http_status: None,
            protocol: None,
        }
    }

    #[test]
    fn a_call_is_a_span_whose_parent_belongs_to_another_service() {
        let names = vec![
            "gateway".into(),
            "orders".into(),
            "payments".into(),
            "http".into(),
            "jsonrpc".into(),
        ];
        let mut spans = vec![
            // Trace 1: gateway → gateway (internal) → orders → payments (failed).
            sample(1, 1, None, 0, 50),
            sample(1, 2, Some(1), 0, 45),
            sample(1, 3, Some(2), 1, 40),
            sample(1, 4, Some(3), 2, 30),
            // Trace 2: gateway → orders twice; span 9's parent never arrived.
            sample(2, 1, None, 0, 20),
            sample(2, 2, Some(1), 1, 10),
            sample(2, 3, Some(1), 1, 12),
            sample(2, 9, Some(7), 2, 5),
            // Same span IDs in another trace do not join across traces.
            sample(3, 4, Some(3), 2, 1),
            // A consumer in payments, a new trace linked to orders' span 3 of trace 1: an
            // asynchronous hop. One linked to its own service's span is not a call.
            sample(4, 1, None, 2, 7),
            sample(5, 1, None, 1, 9),
        ];
        spans[3].error = true;
        // gateway → orders over HTTP twice and JSON-RPC once; orders → payments unsaid.
        spans[2].protocol = Some(3);
        spans[5].protocol = Some(4);
        spans[6].protocol = Some(3);
        spans[9].link = Some(([1; 16], [3; 8]));
        spans[10].link = Some(([1; 16], [3; 8]));
        let got = links(&Samples {
            spans,
            names,
            truncated: false,
        });
        assert_eq!(
            got,
            vec![
                DependencyLink {
                    parent: "gateway".into(),
                    child: "orders".into(),
                    call_count: 3,
                    error_count: 0,
                    p99_ms: 40.0,
                    protocols: vec!["http".into(), "jsonrpc".into()],
                },
                DependencyLink {
                    parent: "orders".into(),
                    child: "payments".into(),
                    call_count: 2,
                    error_count: 1,
                    p99_ms: 30.0,
                    protocols: vec![],
                },
            ]
        );
    }
}
