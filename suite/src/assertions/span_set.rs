//! The spans an assertion looks at: one or more traces (a request's, or every trace of a
//! correlation ID across its asynchronous hops) flattened into one set in start order,
//! each span knowing its service and its parent, so selectors can walk descendants.

use std::collections::HashMap;
use std::fmt;

use gauntlet_query_api::jaeger::{RefType, Span, TagValue, Trace};

/// A span's value for a key, as selectors and assertions compare it.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Text(String),
    Number(f64),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => f.write_str(s),
            Self::Number(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Duration(ns) => f.write_str(&super::selector::show_duration(*ns)),
        }
    }
}

impl From<&TagValue> for Attr {
    fn from(v: &TagValue) -> Self {
        match v {
            TagValue::String(s) | TagValue::Binary(s) => Self::Text(s.clone()),
            TagValue::Bool(b) => Self::Bool(*b),
            TagValue::Int64(i) => Self::Number(*i as f64),
            TagValue::Float64(x) => Self::Number(*x),
        }
    }
}

/// One span with what selectors need beside it.
#[derive(Debug, Clone)]
pub struct Node {
    pub span: Span,
    pub service: String,
    /// Resource attributes (the process's tags).
    pub resource: Vec<gauntlet_query_api::jaeger::Tag>,
    parent: Option<usize>,
    children: usize,
}

/// Spans of one or more traces, in start order.
#[derive(Debug, Clone, Default)]
pub struct SpanSet {
    nodes: Vec<Node>,
}

impl SpanSet {
    pub fn new<'a>(traces: impl IntoIterator<Item = &'a Trace>) -> Self {
        let mut nodes: Vec<Node> = traces
            .into_iter()
            .flat_map(|t| {
                t.spans.iter().map(move |s| {
                    let process = t.processes.get(&s.process_id);
                    Node {
                        span: s.clone(),
                        service: process.map(|p| p.service_name.clone()).unwrap_or_default(),
                        resource: process.map(|p| p.tags.clone()).unwrap_or_default(),
                        parent: None,
                        children: 0,
                    }
                })
            })
            .collect();
        nodes.sort_by(|a, b| {
            (a.span.start_time, &a.span.span_id).cmp(&(b.span.start_time, &b.span.span_id))
        });
        nodes.dedup_by(|a, b| {
            a.span.span_id == b.span.span_id && a.span.trace_id == b.span.trace_id
        });
        let index: HashMap<(String, String), usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ((n.span.trace_id.clone(), n.span.span_id.clone()), i))
            .collect();
        for i in 0..nodes.len() {
            let n = &nodes[i];
            let parent = n
                .span
                .parent_span_id()
                .and_then(|p| index.get(&(n.span.trace_id.clone(), p.to_string())))
                .copied();
            nodes[i].parent = parent;
            if let Some(p) = parent {
                nodes[p].children += 1;
            }
        }
        Self { nodes }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// The parent, its parent, ... up to the root (within the span's trace).
    pub fn ancestors(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let mut at = self.nodes[i].parent;
        // A malformed trace could make a cycle; no chain is longer than the set.
        let mut left = self.nodes.len();
        std::iter::from_fn(move || {
            let here = at?;
            left = left.checked_sub(1)?;
            at = self.nodes[here].parent;
            Some(here)
        })
    }

    /// The span's values for `key` (several only for `event`, none when it lacks the key):
    /// `service.name`, `name`, `kind`, `status` (`ok`, `error`, `unset`), `duration`,
    /// `trace_id`, `span_id`, `event` (each event's name), `links` and `children` (how
    /// many), then the
    /// span's attributes, then its resource's.
    pub fn values(&self, i: usize, key: &str) -> Vec<Attr> {
        let n = &self.nodes[i];
        let s = &n.span;
        let text = |v: &str| vec![Attr::Text(v.to_string())];
        match key {
            "service.name" => text(&n.service),
            "name" => text(&s.operation_name),
            "kind" => text(s.kind().map_or("", |k| k.jaeger_name())),
            "status" => text(status(s)),
            "duration" => vec![Attr::Duration(s.duration.saturating_mul(1000))],
            "trace_id" => text(&s.trace_id),
            "span_id" => text(&s.span_id),
            "event" => s
                .logs
                .iter()
                .filter_map(|l| l.fields.iter().find(|f| f.key == "event"))
                .map(|f| Attr::from(&f.value))
                .collect(),
            "links" => vec![Attr::Number(links(s) as f64)],
            "children" => vec![Attr::Number(n.children as f64)],
            _ => s
                .tag(key)
                .or_else(|| n.resource.iter().find(|t| t.key == key).map(|t| &t.value))
                .map(|v| vec![Attr::from(v)])
                .unwrap_or_default(),
        }
    }

    /// How many of the span's events are called `name`.
    pub fn events_named(&self, i: usize, name: &str) -> usize {
        self.values(i, "event")
            .iter()
            .filter(|v| v.to_string() == name)
            .count()
    }

    /// The IDs of the traces the set's spans link to that it does not hold.
    pub fn linked_traces_missing(&self) -> Vec<String> {
        let held: std::collections::HashSet<&str> = self
            .nodes
            .iter()
            .map(|n| n.span.trace_id.as_str())
            .collect();
        let mut missing: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|n| n.span.references.iter())
            .filter(|r| r.ref_type == RefType::FollowsFrom && !held.contains(r.trace_id.as_str()))
            .map(|r| r.trace_id.clone())
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }
}

fn status(s: &Span) -> &'static str {
    if s.is_error() {
        "error"
    } else if s.text("otel.status_code") == Some("OK") {
        "ok"
    } else {
        "unset"
    }
}

fn links(s: &Span) -> usize {
    s.references
        .iter()
        .filter(|r| r.ref_type == RefType::FollowsFrom)
        .count()
}
