//! Each demo service's metrics, exported over OTLP beside its traces and logs (see
//! [`super::telemetry`]): what its callers see, by the semantic conventions, and what its
//! resilience mechanisms report about themselves.
//!
//! - `http.server.request.duration` (s): every request served, by method, route and status.
//! - `http.client.request.duration` (s): every attempt sent to an upstream, by method,
//!   upstream (`server.address`, the service's name) and status, or `error.type` when no
//!   answer came (timeout, refused, ...). What a caller feels: evidence a probe can use.
//! - `gauntlet.circuit_breaker.state` (0 closed, 1 half open, 2 open),
//!   `gauntlet.bulkhead.in_use` and `gauntlet.bulkhead.limit`, `gauntlet.client.retries`:
//!   each upstream's mechanisms, read from the [`Upstream`]s when the SDK collects. A
//!   mechanism's report of itself, never evidence that it works.
//! - `messaging.client.consumed.messages` and `gauntlet.consumer.event.age` (s, from the
//!   event's creation to its handler's commit): each event consumer, feed or queue.
//!
//! Instruments come from the global meter provider, so a process without an OTLP endpoint
//! (tests, `--no-telemetry`) records into a no-op meter.

use std::sync::{Mutex, OnceLock};

use opentelemetry::KeyValue;
use opentelemetry::global;
use opentelemetry::metrics::{Counter, Histogram};

use super::resilience::Upstream;

/// The semantic conventions' advice for HTTP durations, in seconds.
const DURATION_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Event ages: from milliseconds (a live feed) to minutes (a consumer catching up).
const AGE_BOUNDS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

struct Instruments {
    server: Histogram<f64>,
    client: Histogram<f64>,
    consumed: Counter<u64>,
    age: Histogram<f64>,
}

fn instruments() -> &'static Instruments {
    static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();
    INSTRUMENTS.get_or_init(|| {
        let meter = global::meter("gauntlet-demo");
        Instruments {
            server: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build(),
            client: meter
                .f64_histogram("http.client.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP client requests.")
                .with_boundaries(DURATION_BOUNDS.to_vec())
                .build(),
            consumed: meter
                .u64_counter("messaging.client.consumed.messages")
                .with_unit("{message}")
                .with_description("Events a consumer handled for the first time.")
                .build(),
            age: meter
                .f64_histogram("gauntlet.consumer.event.age")
                .with_unit("s")
                .with_description("From an event's creation to its handler's commit.")
                .with_boundaries(AGE_BOUNDS.to_vec())
                .build(),
        }
    })
}

/// The upstreams whose mechanisms are observed.
fn upstreams() -> &'static Mutex<Vec<Upstream>> {
    static UPSTREAMS: OnceLock<Mutex<Vec<Upstream>>> = OnceLock::new();
    UPSTREAMS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Observes `upstream`'s breaker, bulkhead and retries from now on.
pub fn watch(upstream: &Upstream) {
    super::lock(upstreams()).push(upstream.clone());
}

/// Registers the observable instruments; called once the meter provider is installed (the
/// callbacks run when the SDK collects, on its own thread: atomics only).
pub fn install() {
    let meter = global::meter("gauntlet-demo");
    let attrs = |s: &super::resilience::UpstreamSnapshot| {
        let mut a = vec![KeyValue::new("upstream", s.upstream.clone())];
        if let Some(shard) = s.shard {
            a.push(KeyValue::new("shard", i64::from(shard)));
        }
        a
    };
    meter
        .i64_observable_gauge("gauntlet.circuit_breaker.state")
        .with_description("Each upstream's circuit breaker: 0 closed, 1 half open, 2 open.")
        .with_callback(move |o| {
            for u in super::lock(upstreams()).iter() {
                let s = u.snapshot();
                let state = match s.circuit_breaker.as_str() {
                    "closed" => 0,
                    "half_open" => 1,
                    "open" => 2,
                    _ => continue,
                };
                o.observe(state, &attrs(&s));
            }
        })
        .build();
    meter
        .i64_observable_gauge("gauntlet.bulkhead.in_use")
        .with_unit("{call}")
        .with_description("Calls in each upstream's bulkhead.")
        .with_callback(move |o| {
            for u in super::lock(upstreams()).iter() {
                let s = u.snapshot();
                if s.bulkhead_max.is_some() {
                    o.observe(s.bulkhead_in_use as i64, &attrs(&s));
                }
            }
        })
        .build();
    meter
        .i64_observable_gauge("gauntlet.bulkhead.limit")
        .with_unit("{call}")
        .with_description("Calls each upstream's bulkhead admits at once.")
        .with_callback(move |o| {
            for u in super::lock(upstreams()).iter() {
                let s = u.snapshot();
                if let Some(max) = s.bulkhead_max {
                    o.observe(max as i64, &attrs(&s));
                }
            }
        })
        .build();
    meter
        .u64_observable_counter("gauntlet.client.retries")
        .with_unit("{retry}")
        .with_description("Attempts after the first, per upstream.")
        .with_callback(move |o| {
            for u in super::lock(upstreams()).iter() {
                let s = u.snapshot();
                o.observe(s.retries, &attrs(&s));
            }
        })
        .build();
}

/// A request this service served.
pub fn served(method: &str, route: &str, status: u16, seconds: f64) {
    instruments().server.record(
        seconds,
        &[
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("http.route", route.to_string()),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
}

/// How one attempt to an upstream ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Status(u16),
    /// No answer: `timeout`, `connection_refused`, ...
    Error(&'a str),
}

/// One attempt this service sent to `upstream`.
pub fn sent(method: &str, upstream: &str, outcome: Outcome<'_>, seconds: f64) {
    let mut attrs = vec![
        KeyValue::new("http.request.method", method.to_string()),
        KeyValue::new("server.address", upstream.to_string()),
    ];
    match outcome {
        Outcome::Status(s) => {
            attrs.push(KeyValue::new("http.response.status_code", i64::from(s)));
            if s >= 500 {
                attrs.push(KeyValue::new("error.type", s.to_string()));
            }
        }
        Outcome::Error(kind) => attrs.push(KeyValue::new("error.type", kind.to_string())),
    }
    instruments().client.record(seconds, &attrs);
}

/// Events a consumer of `feed` handled for the first time, by when each was created.
pub fn consumed(feed: &str, created_unix_ms: &[i64]) {
    if created_unix_ms.is_empty() {
        return;
    }
    let attrs = [KeyValue::new(
        "messaging.destination.name",
        feed.to_string(),
    )];
    let i = instruments();
    i.consumed.add(created_unix_ms.len() as u64, &attrs);
    let now = super::http::now_unix_ms();
    for created in created_unix_ms {
        i.age.record((now - created).max(0) as f64 / 1000.0, &attrs);
    }
}
