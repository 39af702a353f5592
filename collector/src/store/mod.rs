//! Where spans and logs live. [`Store`] is what ingest writes to and the query API reads
//! from; [`sqlite::SqliteStore`] is the embedded implementation and
//! [`clickhouse::ClickHouseStore`] the one for more than a machine; both pass the
//! conformance cases in `tests/conformance/`. The store is chosen by a [`StoreConfig`].
//!
//! A successful [`Store::write`] means the batch is committed: the ingest pipeline only
//! answers an export after it returns.

pub mod clickhouse;
pub mod schema;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::rollup::{RedSteps, StepMerger};

use crate::model::{
    Batch, LogRecord, MetricKind, PointValue, SpanKind, SpanRecord, StatusCode, TraceId,
};

/// What went wrong in a store, in terms any backend can use: the query API and the CLI
/// never see a backend's own error type.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stored data is in a form this build cannot use (a newer schema, a table of
    /// another shape); nothing was changed.
    #[error("{location}: {reason}")]
    Incompatible { location: String, reason: String },
    /// The store cannot be opened or reached.
    #[error("cannot open the store at {location}: {reason}")]
    Unavailable { location: String, reason: String },
    /// The backend failed a read or a write.
    #[error("{backend} failed: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("store task failed: {0}")]
    Task(String),
}

impl From<crate::rollup::sketch::SketchError> for StoreError {
    fn from(e: crate::rollup::sketch::SketchError) -> Self {
        StoreError::Backend {
            backend: "rollups",
            message: e.to_string(),
        }
    }
}

/// Which store keeps the data, and its settings.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded SQLite store in a directory.
    Sqlite(sqlite::SqliteConfig),
    /// A ClickHouse server (or cluster), through its HTTP interface.
    ClickHouse(clickhouse::ClickHouseConfig),
}

impl StoreConfig {
    /// Opens (creating or migrating) the store, off the async workers.
    pub async fn open(self) -> Result<Arc<dyn Store>, StoreError> {
        match self {
            StoreConfig::Sqlite(c) => {
                let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&c))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??;
                Ok(Arc::new(store))
            }
            StoreConfig::ClickHouse(c) => {
                Ok(Arc::new(clickhouse::ClickHouseStore::open(&c).await?))
            }
        }
    }

    /// Where the data lives, for people.
    pub fn location(&self) -> String {
        match self {
            StoreConfig::Sqlite(c) => c.dir.display().to_string(),
            StoreConfig::ClickHouse(c) => c.location(),
        }
    }
}

/// A Jaeger-style trace search: traces with at least one span matching every condition.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    pub service: String,
    pub operation: Option<String>,
    /// Conditions one span must all meet.
    pub filters: Vec<SpanFilter>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    pub min_duration_ns: Option<i64>,
    pub max_duration_ns: Option<i64>,
    pub limit: usize,
}

/// One condition on a span in a trace search. The query layer turns Jaeger's tags, its
/// pseudo-tags (`error`, `span.kind`, `otel.status_code`) included, into these, so that a
/// store knows nothing of Jaeger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanFilter {
    /// The span's status is ERROR (`true`) or is not (`false`).
    Error(bool),
    Kind(SpanKind),
    StatusCode(StatusCode),
    /// A span attribute, or else a resource attribute, whose value written as text (a string
    /// as itself, any other JSON value as its JSON) equals `value`.
    Attribute {
        key: String,
        value: String,
    },
}

/// One row of the trace summary: what a trace is, without reading its spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub start_ns: i64,
    pub end_ns: i64,
    /// Service and operation of the span without a parent, once it has arrived.
    pub root: Option<(String, String)>,
    pub span_count: i64,
    pub error: bool,
}

/// An operation of a service: a span name and kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Operation {
    pub name: String,
    pub kind: SpanKind,
}

#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub service: Option<String>,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<[u8; 8]>,
    pub correlation_id: Option<String>,
    pub severity_min: Option<i32>,
    /// Case-insensitive substring of the body.
    pub text: Option<String>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    /// Continue after this (time, id) position, newest first.
    pub before: Option<LogCursor>,
    pub limit: usize,
}

/// A position in the newest-first log order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCursor {
    pub time_ns: i64,
    pub id: i64,
}

#[derive(Debug, Clone)]
pub struct StoredLog {
    pub id: i64,
    pub record: LogRecord,
}

#[derive(Debug, Clone, Default)]
pub struct LogPage {
    pub logs: Vec<StoredLog>,
    pub next: Option<LogCursor>,
}

/// How much data to keep; enforced by [`crate::retention`] through [`Store::prune`].
#[derive(Debug, Clone, Copy)]
pub struct RetentionPolicy {
    /// Delete what was received before this time (nanoseconds since the epoch).
    pub older_than_ns: Option<i64>,
    /// Delete the oldest data while the store uses more than this many bytes.
    pub max_bytes: Option<u64>,
}

/// What one [`Store::prune`] step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub spans: u64,
    pub logs: u64,
    /// Trace summary rows (one per trace per commit), where a store keeps them (SQLite
    /// segments of formats 1 and 2).
    pub traces: u64,
    /// Metric points (SQLite's `metrics.sqlite`).
    pub metric_points: u64,
    /// More is due: call again (after letting ingest in).
    pub more: bool,
}

/// Which spans the aggregates (RED, dependencies, served requests) read: those that started
/// in a window, optionally of one service, operation, version and some kinds.
#[derive(Debug, Clone, Default)]
pub struct SampleQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Only spans whose resource says `service.version` is this (a canary's versions).
    pub version: Option<String>,
    /// Any kind when empty.
    pub kinds: Vec<SpanKind>,
    pub start_ns: i64,
    pub end_ns: i64,
    /// At most this many spans, the newest first.
    pub limit: usize,
    /// Read each span's [`SpanSample::protocol`] (one more look into its attributes per
    /// span: the service map asks, RED does not).
    pub protocols: bool,
}

/// What RED asks of the rollups: one service's spans of some kinds in steps of whole
/// buckets ([`crate::rollup::BUCKET_NS`]), optionally of one operation and version.
#[derive(Debug, Clone, Default)]
pub struct RollupQuery {
    pub service: String,
    pub operation: Option<String>,
    pub version: Option<String>,
    pub kinds: Vec<SpanKind>,
    /// Buckets `first..end` (as [`crate::rollup::bucket_of`] numbers them).
    pub buckets: (i64, i64),
    /// Buckets per step (at least 1).
    pub buckets_per_step: i64,
}

impl RollupQuery {
    /// The same spans as samples: for a store (or a segment) without rollups.
    pub fn samples(&self, limit: usize) -> SampleQuery {
        use crate::rollup::BUCKET_NS;
        SampleQuery {
            service: Some(self.service.clone()),
            operation: self.operation.clone(),
            version: self.version.clone(),
            kinds: self.kinds.clone(),
            start_ns: self.buckets.0.saturating_mul(BUCKET_NS),
            end_ns: self.buckets.1.saturating_mul(BUCKET_NS).saturating_sub(1),
            limit,
            protocols: false,
        }
    }
}

/// What an aggregate needs of a span. Names are indexes into [`Samples::names`], so that a
/// million samples do not carry a million strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanSample {
    pub trace_id: TraceId,
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    /// The first span it links to: for a consumer, the producer of the message it handled.
    pub link: Option<(TraceId, [u8; 8])>,
    pub service: u32,
    pub operation: u32,
    pub kind: SpanKind,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub error: bool,
    /// The span's status (`error` is `status == Error`): span metrics label by it.
    pub status: StatusCode,
    /// `http.response.status_code` (or the older `http.status_code`), when the span has one.
    pub http_status: Option<u16>,
    /// What carried it, when [`SampleQuery::protocols`] asked (an index into
    /// [`Samples::names`]). Both stores read it from the span's attributes by one rule: its
    /// `rpc.system` (`grpc`, `jsonrpc`, ...), else its `messaging.system` (`rabbitmq`,
    /// `kafka`, ...), else `http` when it has an HTTP method (`http.request.method`, or the
    /// older `http.method`), else none.
    pub protocol: Option<u32>,
}

/// The answer to a [`SampleQuery`].
#[derive(Debug, Clone, Default)]
pub struct Samples {
    pub spans: Vec<SpanSample>,
    pub names: Vec<String>,
    /// More spans matched than the limit: `spans` are the newest.
    pub truncated: bool,
}

impl Samples {
    pub fn name(&self, index: u32) -> &str {
        self.names.get(index as usize).map_or("", String::as_str)
    }
}

/// What a store keeps beyond the common contract (the conformance suite reads these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Attribute values keep their JSON types (numbers, booleans, arrays); without it every
    /// value reads back as text, as the OpenTelemetry ClickHouse schema keeps them.
    pub typed_attributes: bool,
    /// [`RetentionPolicy::older_than_ns`] deletes by when data arrived; without it, age is
    /// the backend's own TTL on the data's timestamps.
    pub retention_by_arrival: bool,
    /// Metric points are kept ([`Store::metric_series`], [`Store::metric_points`]); without
    /// it, the receivers refuse metrics exports with a message saying so.
    pub metrics: bool,
}

/// A metric series as a query matches it: its Prometheus name and labels, and its ID in the
/// store.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeriesInfo {
    pub id: i64,
    pub kind: MetricKind,
    /// The OpenTelemetry name.
    pub name: String,
    pub prometheus_name: String,
    /// Without `__name__`, sorted.
    pub labels: Vec<(String, String)>,
    pub unit: String,
    pub description: String,
}

/// The points of some series in a window (milliseconds since the epoch, both ends in).
#[derive(Debug, Clone)]
pub struct PointQuery {
    pub series: Vec<i64>,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Read at most this many; past it the answer says `exceeded` and holds nothing.
    pub max_points: usize,
    /// Histograms' buckets and summaries' quantiles are wanted; without, a store may answer
    /// their count and sum only (what `_count` and `_sum` selectors read), skipping the rest.
    pub details: bool,
}

/// A stored point, cumulative (delta points were summed when stored).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPoint {
    pub time_ms: i64,
    pub value: PointValue,
    /// The series ended here (Prometheus' staleness marker).
    pub stale: bool,
}

/// An exemplar kept with a point: a measurement and the span it was made in.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredExemplar {
    pub series_id: i64,
    pub time_ms: i64,
    pub value: f64,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<[u8; 8]>,
}

/// The answer to a [`PointQuery`]: per series ID, its points in time order.
#[derive(Debug, Clone, Default)]
pub struct SeriesPoints {
    pub series: Vec<(i64, Vec<StoredPoint>)>,
    pub exceeded: bool,
}

/// A batch on its way to a store: the model's records, or a store's own encoding of them,
/// made by [`Store::encode`] on the submitting task.
#[derive(Debug)]
pub enum Encoded {
    Model(Batch),
    Sqlite(sqlite::Rows),
}

impl Encoded {
    /// Rows it will write.
    pub fn rows(&self) -> usize {
        match self {
            Self::Model(b) => b.rows(),
            Self::Sqlite(r) => r.rows(),
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commits the batch durably; on error nothing of it is visible.
    async fn write(&self, batch: Batch) -> Result<(), StoreError>;

    /// Readies a batch for [`Store::write_encoded`]. The ingest pipeline calls it on each
    /// request's own task, so what a store can do before its commit (encoding columns)
    /// runs on every core instead of inside the one commit at a time. By default, nothing.
    fn encode(&self, batch: Batch) -> Encoded {
        Encoded::Model(batch)
    }

    /// Commits batches [`Store::encode`] readied, together, durably; on error nothing of
    /// them is visible.
    async fn write_encoded(&self, batches: Vec<Encoded>) -> Result<(), StoreError> {
        let mut all = Batch::default();
        for b in batches {
            match b {
                Encoded::Model(b) => all.extend(b),
                Encoded::Sqlite(_) => {
                    return Err(StoreError::Task(
                        "a batch encoded for the SQLite store reached another store".into(),
                    ));
                }
            }
        }
        self.write(all).await
    }

    /// Service names, sorted.
    async fn services(&self) -> Result<Vec<String>, StoreError>;

    /// Operations of a service, optionally of one span kind, sorted.
    async fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError>;

    /// Trace IDs matching the query, most recent first, at most `limit`.
    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceId>, StoreError>;

    /// The spans of each trace that exists, in the order asked; unknown IDs are left out.
    async fn traces(&self, ids: &[TraceId]) -> Result<Vec<(TraceId, Vec<SpanRecord>)>, StoreError>;

    /// Summaries of the traces that exist, in the order asked.
    async fn trace_summaries(&self, ids: &[TraceId]) -> Result<Vec<TraceSummary>, StoreError>;

    /// One page of logs, newest first.
    async fn logs(&self, query: &LogQuery) -> Result<LogPage, StoreError>;

    /// Traces with at least one span carrying this correlation ID (at most `limit`).
    async fn correlated_trace_ids(
        &self,
        correlation_id: &str,
        limit: usize,
    ) -> Result<Vec<TraceId>, StoreError>;

    /// Logs carrying the correlation ID or belonging to one of the traces (at most `limit`).
    async fn correlated_logs(
        &self,
        correlation_id: &str,
        traces: &[TraceId],
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError>;

    /// The spans that started in the window, for aggregates computed by the query layer
    /// (the same computation over every store, so every store gives the same answer).
    async fn span_samples(&self, query: &SampleQuery) -> Result<Samples, StoreError>;

    /// RED's steps, per operation and for the whole service. By default computed from the
    /// spans (at most [`crate::query::red::MAX_SPANS`], the newest; `truncated` says when
    /// more were in the window); a store that keeps rollups reads them.
    async fn red_steps(&self, query: &RollupQuery) -> Result<RedSteps, StoreError> {
        let samples = self
            .span_samples(&query.samples(crate::query::red::MAX_SPANS))
            .await?;
        let (first, end) = query.buckets;
        let mut merger = StepMerger::new(first, end, query.buckets_per_step);
        for s in &samples.spans {
            let op = merger.name(samples.name(s.operation));
            merger.add_span(op, s.start_ns, s.duration_ns, s.error, s.http_status);
        }
        let mut steps = merger.finish();
        steps.truncated = samples.truncated;
        Ok(steps)
    }

    /// The calls between services among the spans that started in the window, by
    /// [`crate::query::dependencies::links`]' rule. By default computed from the spans (at
    /// most [`crate::query::dependencies::MAX_SPANS`], the newest; `truncated` says when more
    /// were in the window); a store that keeps edge rollups reads them.
    async fn dependency_links(
        &self,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<crate::query::dependencies::Links, StoreError> {
        crate::query::dependencies::from_spans(self, start_ns, end_ns).await
    }

    /// Every metric series kept, in the order they were first seen.
    async fn metric_series(&self) -> Result<Arc<Vec<MetricSeriesInfo>>, StoreError> {
        Ok(Arc::new(Vec::new()))
    }

    /// Points of some series in a window.
    async fn metric_points(&self, _query: &PointQuery) -> Result<SeriesPoints, StoreError> {
        Ok(SeriesPoints::default())
    }

    /// Exemplars of some series in a window (milliseconds, both ends in), oldest first, at
    /// most `limit`.
    async fn metric_exemplars(
        &self,
        _series: &[i64],
        _start_ms: i64,
        _end_ms: i64,
        _limit: usize,
    ) -> Result<Vec<StoredExemplar>, StoreError> {
        Ok(Vec::new())
    }

    /// One bounded step of retention, so ingest is never stalled for long.
    async fn prune(&self, policy: RetentionPolicy) -> Result<PruneReport, StoreError>;

    /// Bytes the store uses on disk.
    async fn disk_usage(&self) -> Result<u64, StoreError>;

    /// Fails unless the store can be read and written.
    async fn check_ready(&self) -> Result<(), StoreError>;

    /// Ends the store's background work (joined); called once the last write returned.
    async fn close(&self) {}

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            typed_attributes: true,
            retention_by_arrival: true,
            metrics: false,
        }
    }
}
