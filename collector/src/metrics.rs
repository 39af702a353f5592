//! The collector's own metrics, served as Prometheus text on `/metrics`: items accepted,
//! rejected (invalid) and refused (backpressure or store failure) per signal and protocol,
//! commit latency, queue depth and store size.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Signal {
    Spans,
    Logs,
    MetricPoints,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Protocol {
    OtlpGrpc,
    OtlpHttpProtobuf,
    OtlpHttpJson,
    ZipkinJson,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Committed to the store.
    Accepted,
    /// Invalid items, reported back in `partial_success`.
    Rejected,
    /// Valid items not taken: backpressure or a failing store; the client should retry.
    Refused,
}

/// Label values in Prometheus's snake_case (`otlp_http_protobuf`), not Rust's variant names.
trait LabelText {
    fn text(&self) -> &'static str;
}

impl LabelText for Signal {
    fn text(&self) -> &'static str {
        match self {
            Signal::Spans => "spans",
            Signal::Logs => "logs",
            Signal::MetricPoints => "metric_points",
        }
    }
}

impl LabelText for Protocol {
    fn text(&self) -> &'static str {
        match self {
            Protocol::OtlpGrpc => "otlp_grpc",
            Protocol::OtlpHttpProtobuf => "otlp_http_protobuf",
            Protocol::OtlpHttpJson => "otlp_http_json",
            Protocol::ZipkinJson => "zipkin_json",
        }
    }
}

impl LabelText for Outcome {
    fn text(&self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Refused => "refused",
        }
    }
}

/// One wrapper encodes any of them, so each enum needs only its names.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
struct Label<T>(T);

impl<T: LabelText> EncodeLabelValue for Label<T> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(self.0.text())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    signal: Label<Signal>,
    protocol: Label<Protocol>,
    outcome: Label<Outcome>,
}

pub struct Metrics {
    registry: Registry,
    items: Family<ItemLabels, Counter>,
    pub commit_seconds: Histogram,
    pub commit_rows: Histogram,
    pub queue_rows: Gauge,
    pub store_bytes: Gauge<u64, AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("gauntlet_collector");
        let items = Family::<ItemLabels, Counter>::default();
        registry.register(
            "items",
            "Spans and logs received, by signal, protocol and outcome",
            items.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "commit_seconds",
            "Time to commit one group of ingest requests to the store",
            commit_seconds.clone(),
        );
        let commit_rows = Histogram::new(exponential_buckets(1.0, 4.0, 10));
        registry.register(
            "commit_rows",
            "Rows written by one group commit",
            commit_rows.clone(),
        );
        let queue_rows = Gauge::default();
        registry.register(
            "queue_rows",
            "Rows accepted for writing but not yet committed",
            queue_rows.clone(),
        );
        let store_bytes = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "store_bytes",
            "Bytes the store uses on disk",
            store_bytes.clone(),
        );
        Self {
            registry,
            items,
            commit_seconds,
            commit_rows,
            queue_rows,
            store_bytes,
        }
    }
}

impl Metrics {
    pub fn count(&self, signal: Signal, protocol: Protocol, outcome: Outcome, n: u64) {
        if n > 0 {
            self.items
                .get_or_create(&ItemLabels {
                    signal: Label(signal),
                    protocol: Label(protocol),
                    outcome: Label(outcome),
                })
                .inc_by(n);
        }
    }

    /// Serves the body budget's gauge of bytes held.
    pub fn register_body_budget(&mut self, held: Gauge) {
        self.registry.register(
            "body_bytes_held",
            "Bytes of request bodies held in memory now (the limit is --max-inflight)",
            held,
        );
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_appear_with_their_labels() {
        let m = Metrics::default();
        m.count(Signal::Spans, Protocol::OtlpGrpc, Outcome::Accepted, 3);
        let text = m.encode();
        assert!(
            text.contains(
                r#"gauntlet_collector_items_total{signal="spans",protocol="otlp_grpc",outcome="accepted"} 3"#
            ),
            "{text}"
        );
        assert!(text.contains("gauntlet_collector_commit_seconds_bucket"));
    }
}
