//! Drift: the contracts against what really happens. The interactions the collector saw
//! between demo services (a consumer's client span → the provider's server span: method,
//! route, status; an event a consumer processed) are set against the pacts' interactions:
//! what ran that no contract covers, and what is contracted that no traffic exercised.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gauntlet_demo_system::topology::{EdgeKind, Protocol, Service, edge};
use gauntlet_query_api::SpanKind;
use gauntlet_query_api::client::{ClientError, QueryClient};
use gauntlet_query_api::jaeger::{Span, Trace};
use gauntlet_query_api::params::TraceSearch;
use serde::Deserialize;

use crate::{ContractsError, PactFile};

/// What one interaction is, as far as drift compares them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Shape {
    /// `path` is a route template (`/orders/{id}`) when observed, a concrete path in a pact.
    Http {
        method: String,
        path: String,
        status: u16,
    },
    /// An event of this type (`order.confirmed`), published by the provider.
    Message { kind: String },
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Http {
                method,
                path,
                status,
            } => write!(f, "{method} {path} → {status}"),
            Shape::Message { kind } => write!(f, "event {kind}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interaction {
    pub consumer: String,
    pub provider: String,
    pub shape: Shape,
}

impl fmt::Display for Interaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}: {}", self.consumer, self.provider, self.shape)
    }
}

/// An interaction of a pact.
#[derive(Debug, Clone, PartialEq)]
pub struct Contracted {
    pub interaction: Interaction,
    pub description: String,
}

/// An interaction the collector saw, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub interaction: Interaction,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    /// Contracted and seen (how often).
    pub covered: Vec<(Contracted, usize)>,
    /// Seen, but no contract covers it.
    pub uncovered: Vec<Seen>,
    /// Contracted, never seen.
    pub unseen: Vec<Contracted>,
    /// Traces read.
    pub traces: usize,
}

impl Drift {
    pub fn any(&self) -> bool {
        !self.uncovered.is_empty() || !self.unseen.is_empty()
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "{} traces read; {} contracted interactions seen, {} seen without a contract, {} contracted but never seen\n",
            self.traces,
            self.covered.len(),
            self.uncovered.len(),
            self.unseen.len()
        );
        out.push_str("\nseen, no contract covers it:\n");
        for s in &self.uncovered {
            out.push_str(&format!("  {}  ({}×)\n", s.interaction, s.count));
        }
        out.push_str("\ncontracted, never seen:\n");
        for c in &self.unseen {
            out.push_str(&format!("  {}  \"{}\"\n", c.interaction, c.description));
        }
        out.push_str("\ncontracted and seen:\n");
        for (c, n) in &self.covered {
            out.push_str(&format!(
                "  {}  \"{}\"  ({n}×)\n",
                c.interaction, c.description
            ));
        }
        out
    }
}

/// The interactions of `pacts`.
pub fn contracted(pacts: &[PactFile]) -> Result<Vec<Contracted>, ContractsError> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        interactions: Vec<PactInteraction>,
    }
    #[derive(Deserialize)]
    struct PactInteraction {
        description: String,
        request: Option<Request>,
        response: Option<Response>,
        contents: Option<Contents>,
    }
    #[derive(Deserialize)]
    struct Request {
        method: String,
        path: String,
    }
    #[derive(Deserialize)]
    struct Response {
        status: u16,
    }
    #[derive(Deserialize)]
    struct Contents {
        content: Option<MessageBody>,
    }
    /// The demo's events carry their type; another message is known by its description.
    #[derive(Deserialize)]
    struct MessageBody {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let mut all = Vec::new();
    for pact in pacts {
        let bad = |reason: String| ContractsError::BadPact {
            path: pact.path.display().to_string(),
            reason,
        };
        let text = std::fs::read(&pact.path).map_err(|e| bad(e.to_string()))?;
        let file: File = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        for i in file.interactions {
            let shape = match (i.request, i.response, i.contents) {
                (Some(req), Some(resp), _) => Shape::Http {
                    method: req.method.to_ascii_uppercase(),
                    path: req.path,
                    status: resp.status,
                },
                (_, _, Some(c)) => Shape::Message {
                    kind: c
                        .content
                        .and_then(|b| b.kind)
                        .unwrap_or_else(|| i.description.clone()),
                },
                _ => continue,
            };
            all.push(Contracted {
                interaction: Interaction {
                    consumer: pact.consumer.clone(),
                    provider: pact.provider.clone(),
                    shape,
                },
                description: i.description,
            });
        }
    }
    Ok(all)
}

/// Traces asked for per service: enough for the demo's traffic, bounded for a busy one.
const TRACES_PER_SERVICE: usize = 1500;

/// What the collector at `collector` (its query API) saw in the last `since`; `token` is
/// the bearer token a collector started with `--auth-token` wants.
pub async fn observe(
    collector: &str,
    token: Option<&str>,
    since: Duration,
) -> Result<(Vec<Seen>, usize), ContractsError> {
    let client = QueryClient::new(
        collector,
        token.map(str::to_string),
        Duration::from_secs(30),
    );
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let start = end.saturating_sub(since);
    let mut traces: BTreeMap<String, Trace> = BTreeMap::new();
    for service in Service::ALL {
        let search = TraceSearch {
            service: service.name().to_string(),
            start_ns: Some(start.as_nanos() as i64),
            end_ns: Some(end.as_nanos() as i64),
            limit: Some(TRACES_PER_SERVICE),
            ..Default::default()
        };
        let found = client.traces(&search).await.map_err(|e| match e {
            ClientError::Unreachable { url, reason } | ClientError::Unexpected { url, reason } => {
                ContractsError::Collector { url, reason }
            }
            ClientError::Refused {
                url,
                status,
                message,
            } => ContractsError::Collector {
                url,
                reason: format!("{status}: {message}"),
            },
        })?;
        for t in found {
            traces.insert(t.trace_id.clone(), t);
        }
    }
    let mut counts: HashMap<Interaction, usize> = HashMap::new();
    for t in traces.values() {
        let service_of = |s: &Span| Some(t.service_of(s)).filter(|name| !name.is_empty());
        let by_id: HashMap<&str, &Span> = t.spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
        for span in &t.spans {
            let Some(here) = service_of(span).and_then(|s| s.parse::<Service>().ok()) else {
                continue;
            };
            let seen = match span.kind() {
                Some(SpanKind::Server) => http_interaction(span, here, &by_id, service_of),
                Some(SpanKind::Consumer) => message_interaction(span, here),
                _ => None,
            };
            if let Some(i) = seen {
                *counts.entry(i).or_default() += 1;
            }
        }
    }
    let mut seen: Vec<Seen> = counts
        .into_iter()
        .map(|(interaction, count)| Seen { interaction, count })
        .collect();
    seen.sort_by(|a, b| a.interaction.cmp(&b.interaction));
    Ok((seen, traces.len()))
}

/// A server span whose parent is a client span of another demo service, on an HTTP edge
/// of the topology (the registry's calls are the platform's, and an events edge's feed
/// polling is what its message pacts cover).
fn http_interaction<'a>(
    span: &Span,
    provider: Service,
    by_id: &HashMap<&str, &'a Span>,
    service_of: impl Fn(&Span) -> Option<&'a str>,
) -> Option<Interaction> {
    let parent = by_id.get(span.parent_span_id()?)?;
    let consumer: Service = service_of(parent)?.parse().ok()?;
    // A gRPC edge's contract is its pinned .proto, which proto-check holds it to.
    let e = edge(consumer, provider)?;
    if e.kind != EdgeKind::Http || e.protocol == Protocol::Grpc {
        return None;
    }
    Some(Interaction {
        consumer: consumer.name().into(),
        provider: provider.name().into(),
        shape: Shape::Http {
            method: span.text("http.request.method")?.to_ascii_uppercase(),
            path: span.text("http.route")?.to_string(),
            status: u16::try_from(span.int("http.response.status_code")?).ok()?,
        },
    })
}

/// An event a demo service processed, from the provider it reads events from.
fn message_interaction(span: &Span, consumer: Service) -> Option<Interaction> {
    let kind = span.text("messaging.message.type")?;
    // The producer's span is in another trace (a consumer starts a new one, linked to it);
    // which provider's feed a consumer reads is the topology's events edge.
    let provider = consumer
        .upstreams()
        .find(|e| e.kind == EdgeKind::Events)?
        .provider;
    Some(Interaction {
        consumer: consumer.name().into(),
        provider: provider.name().into(),
        shape: Shape::Message {
            kind: kind.to_string(),
        },
    })
}

/// Whether an observed shape is the contracted one: same method and status on a path the
/// route template matches, or the same event type.
fn covers(contract: &Shape, seen: &Shape) -> bool {
    match (contract, seen) {
        (
            Shape::Http {
                method: m1,
                path,
                status: s1,
            },
            Shape::Http {
                method: m2,
                path: route,
                status: s2,
            },
        ) => m1 == m2 && s1 == s2 && route_matches(route, path),
        (Shape::Message { kind: k1 }, Shape::Message { kind: k2 }) => k1 == k2,
        _ => false,
    }
}

fn route_matches(route: &str, path: &str) -> bool {
    let (r, p): (Vec<_>, Vec<_>) = (route.split('/').collect(), path.split('/').collect());
    r.len() == p.len()
        && r.iter()
            .zip(&p)
            .all(|(r, p)| r == p || (r.starts_with('{') && r.ends_with('}') && !p.is_empty()))
}

/// Sets what was seen against what is contracted.
pub fn compare(contracts: Vec<Contracted>, seen: Vec<Seen>, traces: usize) -> Drift {
    let same_edge =
        |a: &Interaction, b: &Interaction| a.consumer == b.consumer && a.provider == b.provider;
    let mut covered = Vec::new();
    let mut unseen = Vec::new();
    // As the pacts write them: what the seen interactions are checked against below.
    let mut contracted_covering = Vec::new();
    for mut c in contracts {
        let matching: Vec<&Seen> = seen
            .iter()
            .filter(|s| {
                same_edge(&c.interaction, &s.interaction)
                    && covers(&c.interaction.shape, &s.interaction.shape)
            })
            .collect();
        let n: usize = matching.iter().map(|s| s.count).sum();
        if let Some(first) = matching.first() {
            contracted_covering.push(c.interaction.clone());
            // Shown as the route it was seen on (`/orders/{id}`), as the uncovered ones are,
            // not as the pact's example (`/orders/ord-pact-1`).
            c.interaction.shape = first.interaction.shape.clone();
            covered.push((c, n));
        } else {
            unseen.push(c);
        }
    }
    // A contract that covers nothing seen is unseen, so the covered ones are all to check.
    let uncovered = seen
        .into_iter()
        .filter(|s| {
            !contracted_covering
                .iter()
                .any(|c| same_edge(c, &s.interaction) && covers(&c.shape, &s.interaction.shape))
        })
        .collect();
    Drift {
        covered,
        uncovered,
        unseen,
        traces,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(consumer: &str, provider: &str, method: &str, path: &str, status: u16) -> Interaction {
        Interaction {
            consumer: consumer.into(),
            provider: provider.into(),
            shape: Shape::Http {
                method: method.into(),
                path: path.into(),
                status,
            },
        }
    }

    #[test]
    fn routes_match_concrete_paths_segment_by_segment() {
        assert!(route_matches("/orders/{id}", "/orders/ord-1"));
        assert!(route_matches("/orders", "/orders"));
        assert!(!route_matches("/orders/{id}", "/orders"));
        assert!(!route_matches("/orders/{id}", "/orders/"));
        assert!(!route_matches("/orders/{id}/history", "/orders/1/refund"));
    }

    #[test]
    fn what_was_seen_is_set_against_what_is_contracted() {
        let contracts = vec![
            Contracted {
                interaction: http("gateway", "orders", "GET", "/orders/ord-1", 200),
                description: "an order".into(),
            },
            Contracted {
                interaction: http("gateway", "orders", "GET", "/orders/ord-x", 404),
                description: "an unknown order".into(),
            },
            Contracted {
                interaction: Interaction {
                    consumer: "notifications".into(),
                    provider: "orders".into(),
                    shape: Shape::Message {
                        kind: "order.confirmed".into(),
                    },
                },
                description: "an order.confirmed event".into(),
            },
        ];
        let seen = vec![
            Seen {
                interaction: http("gateway", "orders", "GET", "/orders/{id}", 200),
                count: 7,
            },
            // Same route, a status no contract has.
            Seen {
                interaction: http("gateway", "orders", "GET", "/orders/{id}", 503),
                count: 1,
            },
            // The contracted route, but another consumer.
            Seen {
                interaction: http("orders", "inventory", "GET", "/orders/{id}", 200),
                count: 2,
            },
        ];
        let d = compare(contracts, seen, 9);
        assert_eq!(d.covered.len(), 1);
        assert_eq!(d.covered[0].1, 7);
        assert_eq!(
            d.unseen
                .iter()
                .map(|c| c.description.as_str())
                .collect::<Vec<_>>(),
            ["an unknown order", "an order.confirmed event"]
        );
        assert_eq!(d.uncovered.len(), 2);
        assert!(d.any());
        let text = d.render();
        assert!(
            text.contains("gateway → orders: GET /orders/{id} → 503  (1×)"),
            "{text}"
        );
    }
}
