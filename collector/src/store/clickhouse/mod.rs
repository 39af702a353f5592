//! The ClickHouse store, for when one machine is not enough: the OpenTelemetry Collector's
//! ClickHouse schema ([`schema`]), so data written by the OpenTelemetry Collector, rotel or
//! Gauntlet is interchangeable and Grafana's ClickHouse data source reads what Gauntlet wrote.
//! Spoken to with the official `clickhouse` crate (HTTP, RowBinary, LZ4); writes go through
//! the write-ahead [`spool`], which ClickHouse drains in large inserts.
//!
//! Differences from the SQLite store, declared by [`Store::capabilities`]: attribute values
//! are kept as text (as the exporter keeps them), and retention by age is ClickHouse's TTL on
//! the rows' own timestamps (`--retention`), not on when they were received.
//!
//! # Layout (as `sqlite/` is split)
//! - `config.rs`: [`ClickHouseConfig`]; `setup.rs`: creating the tables and checking the
//!   columns of those that exist; [`schema`]: the tables' DDL, single-node or `ON CLUSTER`.
//! - [`rows`]: rows of that schema to and from the model; [`spool`]: the durable local
//!   write-ahead spool; `drainer.rs`: the task that moves it into ClickHouse.
//! - `sql.rs`: WHERE clauses with bound parameters; this file: the [`Store`] implementation.

mod config;
mod drainer;
mod edges;
pub mod metrics;
mod rollups;
pub mod rows;
pub mod schema;
mod setup;
pub mod spool;
mod sql;

pub use config::ClickHouseConfig;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{Notify, watch};

use async_trait::async_trait;

use self::drainer::{Drainer, drain, insert};
use self::metrics::MetricRow;
use self::rows::{
    LOG_COLUMNS, LOG_ID, LogRow, ResourceCache, SPAN_COLUMNS, SpanRow, StoredLogRow, kind_names,
    parse_hex, parse_kind, parse_status, status_names,
};
use self::schema::{CORRELATIONS, LOGS, Layout, RED_ROLLUPS, TRACE_ID_TS, TRACES};
use self::setup::Schema;
use self::spool::{Spool, SpooledBatch};
use self::sql::{Param, Where, ids_hex};
use super::{
    Capabilities, LogCursor, LogPage, LogQuery, MetricSeriesInfo, Operation, PointQuery,
    PruneReport, RetentionPolicy, RollupQuery, SampleQuery, Samples, SeriesPoints, SpanFilter,
    SpanSample, Store, StoreError, StoredExemplar, StoredLog, TraceQuery, TraceSummary,
};
use crate::model::{Batch, LogRecord, SpanKind, SpanRecord, StatusCode, TraceId, hex};
use crate::query::dependencies::Links;
use crate::rollup::RedSteps;

/// Trace IDs one query reads at most (a query parameter of that many IDs stays small).
const MAX_IDS: usize = 2_000;

pub struct ClickHouseStore {
    client: ::clickhouse::Client,
    layout: Layout,
    location: String,
    spool: Option<Arc<Spool>>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    drainer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Counts the calls between services a minute at a time (`edges.rs`), and the task that
    /// does it.
    edges: Arc<edges::EdgePasses>,
    edge_passes: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Makes each write's deduplication token unique: this run's start, then a counter.
    run: i64,
    writes: AtomicU64,
    /// The metric series last listed, and when: PromQL asks for them per query, and listing
    /// groups every metrics table.
    series: tokio::sync::Mutex<Option<SeriesCache>>,
}

/// The series catalog read from the metrics tables.
struct SeriesCache {
    at: std::time::Instant,
    infos: Arc<Vec<MetricSeriesInfo>>,
    refs: Arc<std::collections::HashMap<i64, metrics::SeriesRef>>,
}

/// How long a listed series catalog serves queries before it is read again.
const SERIES_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

fn backend(e: ::clickhouse::error::Error) -> StoreError {
    match e {
        ::clickhouse::error::Error::Network(source) => StoreError::Unavailable {
            location: "ClickHouse".into(),
            reason: source.to_string(),
        },
        other => StoreError::Backend {
            backend: "ClickHouse",
            message: other.to_string(),
        },
    }
}

impl ClickHouseStore {
    /// Connects, creates what is missing (idempotent DDL) and checks that what exists has
    /// the columns Gauntlet reads and writes; an incompatible table is reported, not changed.
    /// With a spool, an unreachable ClickHouse is not fatal: writes are spooled and the
    /// schema is prepared once ClickHouse answers.
    pub async fn open(config: &ClickHouseConfig) -> Result<Self, StoreError> {
        let location = config.location();
        let mut client = ::clickhouse::Client::default().with_url(&config.url);
        if let Some(user) = &config.user {
            client = client.with_user(user);
        }
        if let Some(password) = &config.password {
            client = client.with_password(password);
        }
        let schema = Schema {
            client: client.clone(),
            layout: Layout {
                database: config.database.clone(),
                cluster: config.cluster.clone(),
                ttl: config.ttl,
            },
            location: location.clone(),
        };
        let ready = match schema.prepare().await {
            Ok(()) => true,
            Err(StoreError::Unavailable { reason, .. }) if config.spool_dir.is_some() => {
                tracing::warn!(%location, %reason, "ClickHouse is not reachable: spooling until it is");
                false
            }
            Err(e) => return Err(e),
        };
        let spool = match &config.spool_dir {
            Some(dir) => {
                let (dir, max) = (dir.clone(), config.spool_max_bytes);
                let spool = tokio::task::spawn_blocking(move || Spool::open(&dir, max))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))?
                    .map_err(|e| StoreError::Unavailable {
                        location: location.clone(),
                        reason: e.to_string(),
                    })?;
                Some(Arc::new(spool))
            }
            None => None,
        };
        let client = client.with_database(&config.database);
        let ready = Arc::new(AtomicBool::new(ready));
        let (stop, stopped) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let drainer = spool.as_ref().map(|spool| {
            tokio::spawn(drain(Drainer {
                client: client.clone(),
                schema: schema.clone(),
                ready: ready.clone(),
                spool: spool.clone(),
                wake: wake.clone(),
                stop: stopped.clone(),
            }))
        });
        let edges = Arc::new(edges::EdgePasses {
            client: client.clone(),
            layout: schema.layout.clone(),
            spool: spool.clone(),
        });
        let edge_passes = config
            .edge_passes
            .then(|| tokio::spawn(edges::run(edges.clone(), stopped)));
        Ok(Self {
            client,
            layout: schema.layout,
            location,
            spool,
            wake,
            stop,
            drainer: std::sync::Mutex::new(drainer),
            edges,
            edge_passes: std::sync::Mutex::new(edge_passes),
            run: crate::model::now_ns(),
            writes: AtomicU64::new(0),
            series: tokio::sync::Mutex::new(None),
        })
    }

    /// Inserts rows as the spool drainer does, token and all (a retry of the same batch
    /// stores nothing twice).
    pub async fn insert_batch(&self, rows: &SpooledBatch) -> Result<(), StoreError> {
        insert(&self.client, rows).await.map_err(backend)
    }

    /// Counts the calls of the minute `unit` (minutes since the epoch) into the edge
    /// rollups, as the background passes do; redoing one stores nothing twice.
    pub async fn count_edges(&self, unit: i64) -> Result<(), StoreError> {
        self.edges.pass(unit).await
    }

    /// Batches and bytes waiting in the spool for ClickHouse.
    pub fn spool_backlog(&self) -> (usize, u64) {
        self.spool.as_ref().map_or((0, 0), |s| s.backlog())
    }

    fn t(&self, table: &str) -> String {
        self.layout.table(table)
    }

    /// The metric series of every metrics table, listed at most every [`SERIES_CACHE`].
    async fn series_catalog(
        &self,
    ) -> Result<
        (
            Arc<Vec<MetricSeriesInfo>>,
            Arc<std::collections::HashMap<i64, metrics::SeriesRef>>,
        ),
        StoreError,
    > {
        let mut cache = self.series.lock().await;
        if let Some(c) = cache.as_ref()
            && c.at.elapsed() < SERIES_CACHE
        {
            return Ok((c.infos.clone(), c.refs.clone()));
        }
        let mut identities = Vec::new();
        for table in metrics::TABLES {
            let rows: Vec<metrics::IdentityRow> = self
                .client
                .query(&format!(
                    "SELECT {} FROM {} GROUP BY {}",
                    metrics::identity_select(table),
                    self.t(table),
                    metrics::identity_group_by(table)
                ))
                .fetch_all()
                .await
                .map_err(backend)?;
            identities.extend(rows.into_iter().map(|r| (table, r)));
        }
        let (infos, refs) = metrics::catalog(identities);
        let fresh = SeriesCache {
            at: std::time::Instant::now(),
            infos: Arc::new(infos),
            refs: Arc::new(refs),
        };
        let answer = (fresh.infos.clone(), fresh.refs.clone());
        *cache = Some(fresh);
        Ok(answer)
    }

    /// Each trace's time range from the trace-ID index, for reading only that range.
    async fn trace_ranges(&self, ids: &[String]) -> Result<Option<(u32, u32)>, StoreError> {
        #[derive(::clickhouse::Row, serde::Deserialize)]
        struct Range {
            lo: u32,
            hi: u32,
            n: u64,
        }
        let r: Range = self
            .client
            .query(&format!(
                "SELECT toUInt32(min(Start)) AS lo, toUInt32(max(End)) AS hi, count() AS n \
                 FROM {} WHERE TraceId IN {{ids:Array(String)}}",
                self.t(TRACE_ID_TS)
            ))
            .param("ids", ids)
            .fetch_one()
            .await
            .map_err(backend)?;
        Ok((r.n > 0).then_some((r.lo, r.hi)))
    }

    /// `SELECT {select} FROM otel_traces` over the traces' spans, reading only the seconds
    /// the trace-ID index gives for them, then `{tail}` (GROUP BY, ORDER BY); `None` when
    /// the index knows none of the traces.
    async fn trace_rows<T>(
        &self,
        ids: &[String],
        select: &str,
        tail: &str,
    ) -> Result<Option<Vec<T>>, StoreError>
    where
        T: ::clickhouse::RowOwned + ::clickhouse::RowRead,
    {
        let Some((lo, hi)) = self.trace_ranges(ids).await? else {
            return Ok(None);
        };
        self.client
            .query(&format!(
                "SELECT {select} FROM {} WHERE TraceId IN {{ids:Array(String)}} \
                 AND Timestamp >= toDateTime64({{lo:UInt32}}, 9) \
                 AND Timestamp < toDateTime64({{hi:UInt32}} + 1, 9) {tail}",
                self.t(TRACES)
            ))
            .param("ids", ids)
            .param("lo", lo)
            .param("hi", hi)
            .fetch_all()
            .await
            .map(Some)
            .map_err(backend)
    }

    async fn log_rows(&self, sql: String, w: Where) -> Result<Vec<StoredLogRow>, StoreError> {
        w.query(&self.client, &sql)
            .fetch_all()
            .await
            .map_err(backend)
    }
}

#[async_trait]
impl Store for ClickHouseStore {
    async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let rows = SpooledBatch {
            token: format!(
                "gauntlet-{:x}-{:x}",
                self.run,
                self.writes.fetch_add(1, Ordering::Relaxed)
            ),
            spans: batch.spans.iter().map(SpanRow::from_record).collect(),
            logs: batch.logs.iter().map(LogRow::from_record).collect(),
            metrics: batch.metrics.iter().map(MetricRow::from_point).collect(),
        };
        let Some(spool) = &self.spool else {
            return insert(&self.client, &rows).await.map_err(backend);
        };
        // The spool is the write-ahead log: the batch is durable there, and the drainer puts
        // it in ClickHouse with others in one large insert (ClickHouse pays per insert).
        let (to, location) = (spool.clone(), self.location.clone());
        tokio::task::spawn_blocking(move || to.append(&rows))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
            .map_err(|e| StoreError::Unavailable {
                location,
                reason: e.to_string(),
            })?;
        self.wake.notify_one();
        Ok(())
    }

    async fn services(&self) -> Result<Vec<String>, StoreError> {
        self.client
            .query(&format!(
                "SELECT DISTINCT toString(ServiceName) FROM {} ORDER BY 1",
                self.t(TRACES)
            ))
            .fetch_all()
            .await
            .map_err(backend)
    }

    async fn operations(
        &self,
        service: &str,
        kind: Option<SpanKind>,
    ) -> Result<Vec<Operation>, StoreError> {
        let rows: Vec<(String, String)> = self
            .client
            .query(&format!(
                "SELECT DISTINCT toString(SpanName), toString(SpanKind) FROM {} \
                 WHERE ServiceName = {{service:String}}",
                self.t(TRACES)
            ))
            .param("service", service)
            .fetch_all()
            .await
            .map_err(backend)?;
        let mut ops: Vec<Operation> = rows
            .into_iter()
            .map(|(name, k)| Operation {
                name,
                kind: parse_kind(&k),
            })
            .filter(|o| kind.is_none_or(|k| o.kind == k))
            .collect();
        ops.sort();
        ops.dedup();
        Ok(ops)
    }

    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceId>, StoreError> {
        let mut w = Where::default();
        w.with(
            "ServiceName = {service:String}",
            Param::Str("service", query.service.clone()),
        );
        if let Some(op) = &query.operation {
            w.with("SpanName = {op:String}", Param::Str("op", op.clone()));
        }
        w.window(query.start_ns, query.end_ns);
        if let Some(min) = query.min_duration_ns {
            w.with(
                "Duration >= {min:UInt64}",
                Param::U64("min", u64::try_from(min).unwrap_or(0)),
            );
        }
        if let Some(max) = query.max_duration_ns {
            w.with(
                "Duration <= {max:UInt64}",
                Param::U64("max", u64::try_from(max).unwrap_or(0)),
            );
        }
        // Parameter names must be static: a few slots for filters.
        const KEYS: [&str; 8] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
        const VALUES: [&str; 8] = ["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7"];
        if query.filters.len() > KEYS.len() {
            return Err(StoreError::Backend {
                backend: "ClickHouse",
                message: format!("at most {} search conditions at once", KEYS.len()),
            });
        }
        for (i, filter) in query.filters.iter().enumerate() {
            match filter {
                SpanFilter::Error(true) => w.raw(format!(
                    "StatusCode IN ('{}', '{}')",
                    status_names(StatusCode::Error)[0],
                    status_names(StatusCode::Error)[1]
                )),
                SpanFilter::Error(false) => w.raw(format!(
                    "StatusCode NOT IN ('{}', '{}')",
                    status_names(StatusCode::Error)[0],
                    status_names(StatusCode::Error)[1]
                )),
                SpanFilter::Kind(k) => {
                    let [a, b] = kind_names(*k);
                    w.raw(format!("SpanKind IN ('{a}', '{b}')"));
                }
                SpanFilter::StatusCode(code) => {
                    let [a, b] = status_names(*code);
                    w.raw(format!("StatusCode IN ('{a}', '{b}')"));
                }
                SpanFilter::Attribute { key, value } => {
                    let (k, v) = (KEYS[i], VALUES[i]);
                    w.with(
                        format!(
                            "(if(mapContains(SpanAttributes, {{{k}:String}}), \
                         SpanAttributes[{{{k}:String}}] = {{{v}:String}}, \
                         ResourceAttributes[{{{k}:String}}] = {{{v}:String}}))"
                        ),
                        Param::Str(k, key.clone()),
                    );
                    w.bind.push(Param::Str(v, value.clone()));
                }
            }
        }
        let sql = format!(
            "SELECT TraceId FROM {} WHERE {} GROUP BY TraceId ORDER BY max(Timestamp) DESC, TraceId LIMIT {}",
            self.t(TRACES),
            w.sql(),
            query.limit
        );
        let q = w.query(&self.client, &sql);
        let ids: Vec<String> = q.fetch_all().await.map_err(backend)?;
        Ok(ids.iter().filter_map(|s| parse_hex(s)).collect())
    }

    async fn traces(&self, ids: &[TraceId]) -> Result<Vec<(TraceId, Vec<SpanRecord>)>, StoreError> {
        let wanted = ids_hex(ids);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        // The trace-ID index first: then only the seconds the traces lie in are read.
        let Some(rows) = self
            .trace_rows::<SpanRow>(&wanted, SPAN_COLUMNS, "ORDER BY Timestamp, SpanId")
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut resources = ResourceCache::default();
        let mut by_trace: HashMap<TraceId, Vec<SpanRecord>> = HashMap::new();
        for row in rows {
            if let Some(span) = row.into_record(&mut resources) {
                by_trace.entry(span.trace_id).or_default().push(span);
            }
        }
        Ok(ids
            .iter()
            .filter_map(|id| by_trace.remove(id).map(|spans| (*id, spans)))
            .collect())
    }

    async fn trace_summaries(&self, ids: &[TraceId]) -> Result<Vec<TraceSummary>, StoreError> {
        let wanted = ids_hex(ids);
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        #[derive(::clickhouse::Row, serde::Deserialize)]
        struct Row {
            trace_id: String,
            start: i64,
            end: i64,
            roots: u64,
            root_service: String,
            root_operation: String,
            spans: u64,
            errors: u64,
        }
        let select = format!(
            "TraceId AS trace_id, min(toUnixTimestamp64Nano(Timestamp)) AS start, \
             max(toUnixTimestamp64Nano(Timestamp) + toInt64(Duration)) AS end, \
             countIf(ParentSpanId = '') AS roots, \
             toString(argMinIf(ServiceName, Timestamp, ParentSpanId = '')) AS root_service, \
             toString(argMinIf(SpanName, Timestamp, ParentSpanId = '')) AS root_operation, \
             count() AS spans, countIf(StatusCode IN ('{}', '{}')) AS errors",
            status_names(StatusCode::Error)[0],
            status_names(StatusCode::Error)[1],
        );
        let Some(rows) = self
            .trace_rows::<Row>(&wanted, &select, "GROUP BY TraceId")
            .await?
        else {
            return Ok(Vec::new());
        };
        let mut by_id: HashMap<TraceId, TraceSummary> = HashMap::new();
        for r in rows {
            let Some(trace_id) = parse_hex(&r.trace_id) else {
                continue;
            };
            by_id.insert(
                trace_id,
                TraceSummary {
                    trace_id,
                    start_ns: r.start,
                    end_ns: r.end,
                    root: (r.roots > 0).then_some((r.root_service, r.root_operation)),
                    span_count: i64::try_from(r.spans).unwrap_or(i64::MAX),
                    error: r.errors > 0,
                },
            );
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    async fn logs(&self, query: &LogQuery) -> Result<LogPage, StoreError> {
        let mut w = Where::default();
        if let Some(s) = &query.service {
            w.with(
                "ServiceName = {service:String}",
                Param::Str("service", s.clone()),
            );
        }
        if let Some(t) = &query.trace_id {
            w.with("TraceId = {trace:String}", Param::Str("trace", hex(t)));
        }
        if let Some(s) = &query.span_id {
            w.with("SpanId = {span:String}", Param::Str("span", hex(s)));
        }
        if let Some(c) = &query.correlation_id {
            // The correlation index narrows to the logs' moments; the attribute decides.
            w.with(
                format!(
                    "Timestamp IN (SELECT Timestamp FROM {} WHERE CorrelationId = {{corr:String}} \
                 AND Signal = 'log') AND {} = {{corr:String}}",
                    self.t(CORRELATIONS),
                    schema::correlation_expr("LogAttributes")
                ),
                Param::Str("corr", c.clone()),
            );
        }
        if let Some(min) = query.severity_min {
            w.with(
                "SeverityNumber >= {sev:UInt8}",
                Param::U64("sev", u64::try_from(min.clamp(0, 255)).unwrap_or(0)),
            );
        }
        if let Some(text) = &query.text {
            w.with(
                "positionCaseInsensitiveUTF8(Body, {text:String}) > 0",
                Param::Str("text", text.clone()),
            );
        }
        w.window(query.start_ns, query.end_ns);
        if let Some(c) = &query.before {
            w.with(
                format!(
                    "(toUnixTimestamp64Nano(Timestamp), {LOG_ID}) < ({{bt:Int64}}, {{bid:Int64}})"
                ),
                Param::I64("bt", c.time_ns),
            );
            w.bind.push(Param::I64("bid", c.id));
        }
        let sql = format!(
            "SELECT {LOG_COLUMNS}, {LOG_ID} AS LogId FROM {} WHERE {} \
             ORDER BY Timestamp DESC, LogId DESC LIMIT {}",
            self.t(LOGS),
            w.sql(),
            query.limit + 1
        );
        let mut rows = self.log_rows(sql, w).await?;
        let more = rows.len() > query.limit;
        rows.truncate(query.limit);
        let mut resources = ResourceCache::default();
        let logs: Vec<StoredLog> = rows
            .into_iter()
            .map(|r| {
                let (id, row) = r.split();
                StoredLog {
                    id,
                    record: row.into_record(&mut resources),
                }
            })
            .collect();
        let next = if more {
            logs.last().map(|l| LogCursor {
                time_ns: l.record.time_ns,
                id: l.id,
            })
        } else {
            None
        };
        Ok(LogPage { logs, next })
    }

    async fn correlated_trace_ids(
        &self,
        correlation_id: &str,
        limit: usize,
    ) -> Result<Vec<TraceId>, StoreError> {
        let ids: Vec<String> = self
            .client
            .query(&format!(
                "SELECT TraceId FROM {} WHERE CorrelationId = {{corr:String}} AND Signal = 'span' \
                 GROUP BY TraceId ORDER BY min(Timestamp), TraceId LIMIT {limit}",
                self.t(CORRELATIONS)
            ))
            .param("corr", correlation_id)
            .fetch_all()
            .await
            .map_err(backend)?;
        Ok(ids.iter().filter_map(|s| parse_hex(s)).collect())
    }

    async fn correlated_logs(
        &self,
        correlation_id: &str,
        traces: &[TraceId],
        limit: usize,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let sql = format!(
            "SELECT {LOG_COLUMNS}, {LOG_ID} AS LogId FROM {} WHERE TraceId IN {{ids:Array(String)}} \
             OR (Timestamp IN (SELECT Timestamp FROM {} WHERE CorrelationId = {{corr:String}} \
             AND Signal = 'log') AND {} = {{corr:String}}) \
             ORDER BY Timestamp, LogId LIMIT {limit}",
            self.t(LOGS),
            self.t(CORRELATIONS),
            schema::correlation_expr("LogAttributes")
        );
        let params = Where {
            cond: Vec::new(),
            bind: vec![
                Param::Strs("ids", ids_hex(traces)),
                Param::Str("corr", correlation_id.to_string()),
            ],
        };
        let rows = self.log_rows(sql, params).await?;
        let mut resources = ResourceCache::default();
        Ok(rows
            .into_iter()
            .map(|r| r.split().1.into_record(&mut resources))
            .collect())
    }

    async fn span_samples(&self, query: &SampleQuery) -> Result<Samples, StoreError> {
        let w = sample_where(query);
        let sql = format!(
            "SELECT TraceId AS trace_id, SpanId AS span_id, ParentSpanId AS parent_span_id, \
             `Links.TraceId`[1] AS link_trace_id, `Links.SpanId`[1] AS link_span_id, \
             toString(ServiceName) AS service, toString(SpanName) AS operation, \
             toString(SpanKind) AS kind, toUnixTimestamp64Nano(Timestamp) AS start, \
             Duration AS duration, toString(StatusCode) AS status, \
             if(mapContains(SpanAttributes, 'http.response.status_code'), \
                SpanAttributes['http.response.status_code'], \
                SpanAttributes['http.status_code']) AS http_status, \
             {} AS protocol \
             FROM {} WHERE {} ORDER BY Timestamp DESC LIMIT {}",
            if query.protocols {
                PROTOCOL_COLUMN
            } else {
                "''"
            },
            self.t(TRACES),
            w.sql(),
            query.limit + 1
        );
        let q = w.query(&self.client, &sql);
        let mut rows: Vec<SampleRow> = q.fetch_all().await.map_err(backend)?;
        let truncated = rows.len() > query.limit;
        rows.truncate(query.limit);
        let mut samples = samples(rows);
        samples.truncated = truncated;
        Ok(samples)
    }

    async fn red_steps(&self, query: &RollupQuery) -> Result<RedSteps, StoreError> {
        self.rollup_steps(query).await
    }

    async fn metric_series(&self) -> Result<Arc<Vec<MetricSeriesInfo>>, StoreError> {
        Ok(self.series_catalog().await?.0)
    }

    async fn metric_points(&self, query: &PointQuery) -> Result<SeriesPoints, StoreError> {
        let (_, refs) = self.series_catalog().await?;
        let wanted: std::collections::HashSet<i64> = query.series.iter().copied().collect();
        let mut out = std::collections::HashMap::new();
        let mut budget = query.max_points;
        for (table, (names, delta)) in metrics::by_table(query, &refs) {
            // Delta rows are summed from the oldest kept: read them from the start.
            let from = if delta {
                ""
            } else {
                " AND TimeUnix >= fromUnixTimestamp64Milli({lo:Int64})"
            };
            let rows: Vec<metrics::PointRow> = self
                .client
                .query(&format!(
                    "SELECT {} FROM {} WHERE MetricName IN {{names:Array(String)}} \
                     AND TimeUnix <= fromUnixTimestamp64Milli({{hi:Int64}}){from} ORDER BY TimeUnix",
                    metrics::point_select(table),
                    self.t(table)
                ))
                .param("names", names)
                .param("lo", query.start_ms)
                .param("hi", query.end_ms)
                .fetch_all()
                .await
                .map_err(backend)?;
            if !metrics::gather(table, rows, &wanted, query.start_ms, &mut out, &mut budget) {
                return Ok(SeriesPoints {
                    series: Vec::new(),
                    exceeded: true,
                });
            }
        }
        Ok(metrics::answer(out, false))
    }

    async fn metric_exemplars(
        &self,
        series: &[i64],
        start_ms: i64,
        end_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredExemplar>, StoreError> {
        let (_, refs) = self.series_catalog().await?;
        let wanted: std::collections::HashSet<i64> = series.iter().copied().collect();
        let query = PointQuery {
            series: series.to_vec(),
            start_ms,
            end_ms,
            max_points: limit,
            details: false,
        };
        let mut out = Vec::new();
        for (table, (names, _)) in metrics::by_table(&query, &refs) {
            if !metrics::WITH_EXEMPLARS.contains(&table) {
                continue;
            }
            let rows: Vec<metrics::ExemplarRow> = self
                .client
                .query(&format!(
                    "SELECT {} FROM {} ARRAY JOIN Exemplars WHERE MetricName IN {{names:Array(String)}} \
                     AND TimeUnix >= fromUnixTimestamp64Milli({{lo:Int64}}) \
                     AND TimeUnix <= fromUnixTimestamp64Milli({{hi:Int64}}) \
                     ORDER BY ExTime LIMIT {{limit:UInt64}}",
                    metrics::exemplar_select(table),
                    self.t(table)
                ))
                .param("names", names)
                .param("lo", start_ms)
                .param("hi", end_ms)
                .param("limit", limit as u64)
                .fetch_all()
                .await
                .map_err(backend)?;
            metrics::exemplars_of(table, rows, &wanted, &mut out);
        }
        out.sort_by_key(|e| e.time_ms);
        out.truncate(limit);
        Ok(out)
    }

    async fn prune(&self, policy: RetentionPolicy) -> Result<PruneReport, StoreError> {
        // By age: ClickHouse's TTL (from --retention) drops parts on its own.
        let Some(max) = policy.max_bytes else {
            return Ok(PruneReport::default());
        };
        if self.disk_usage().await? <= max {
            return Ok(PruneReport::default());
        }
        // By size: the oldest day of every table goes, one day per step (the rollups' days
        // are partitioned as the spans' are, so their counts go with them).
        #[derive(::clickhouse::Row, serde::Deserialize)]
        struct Part {
            table: String,
            partition_id: String,
            rows: u64,
        }
        let oldest: Vec<Part> = self
            .client
            .query(
                "SELECT table, partition_id, sum(rows) AS rows FROM system.parts \
                 WHERE database = ? AND active AND table IN (?, ?, ?, ?) \
                 AND partition_id = (SELECT min(partition_id) FROM system.parts \
                   WHERE database = ? AND active AND table = ?) \
                 GROUP BY table, partition_id",
            )
            .bind(&self.layout.database)
            .bind(TRACES)
            .bind(LOGS)
            .bind(CORRELATIONS)
            .bind(RED_ROLLUPS)
            .bind(&self.layout.database)
            .bind(TRACES)
            .fetch_all()
            .await
            .map_err(backend)?;
        let mut report = PruneReport::default();
        for part in &oldest {
            self.client
                .query(&format!(
                    "ALTER TABLE {} DROP PARTITION ID {{id:String}}",
                    self.layout.table(&part.table)
                ))
                .param("id", &part.partition_id)
                .execute()
                .await
                .map_err(backend)?;
            match part.table.as_str() {
                TRACES => report.spans += part.rows,
                LOGS => report.logs += part.rows,
                _ => {}
            }
        }
        report.more = !oldest.is_empty() && self.disk_usage().await? > max;
        Ok(report)
    }

    async fn disk_usage(&self) -> Result<u64, StoreError> {
        self.client
            .query("SELECT sum(bytes_on_disk) FROM system.parts WHERE database = ? AND active")
            .bind(&self.layout.database)
            .fetch_one::<u64>()
            .await
            .map_err(backend)
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        self.client
            .query(&format!("SELECT count() FROM {} WHERE 0", self.t(TRACES)))
            .execute()
            .await
            .map_err(backend)
    }

    async fn close(&self) {
        let _ = self.stop.send(true);
        for task in [&self.drainer, &self.edge_passes] {
            let handle = task.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(h) = handle {
                let _ = h.await;
            }
        }
    }

    async fn dependency_links(&self, start_ns: i64, end_ns: i64) -> Result<Links, StoreError> {
        self.edges.links(start_ns, end_ns).await
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            typed_attributes: false,
            retention_by_arrival: false,
            metrics: true,
        }
    }
}

/// The aggregates' conditions: the window, and the service, operation, version and kinds if
/// asked.
fn sample_where(query: &SampleQuery) -> Where {
    let mut w = Where::default();
    w.window(Some(query.start_ns), Some(query.end_ns));
    if let Some(s) = &query.service {
        w.with(
            "ServiceName = {service:String}",
            Param::Str("service", s.clone()),
        );
    }
    if let Some(op) = &query.operation {
        w.with("SpanName = {op:String}", Param::Str("op", op.clone()));
    }
    if let Some(v) = &query.version {
        w.with(
            "ResourceAttributes['service.version'] = {version:String}",
            Param::Str("version", v.clone()),
        );
    }
    w.kinds(&query.kinds);
    w
}

/// A span as the aggregates read it.
#[derive(::clickhouse::Row, serde::Deserialize)]
struct SampleRow {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    link_trace_id: String,
    link_span_id: String,
    service: String,
    operation: String,
    kind: String,
    start: i64,
    duration: u64,
    status: String,
    http_status: String,
    /// Empty when it has none or was not asked.
    protocol: String,
}

/// A span's protocol, by [`SpanSample::protocol`]'s rule ('' for none).
pub(super) const PROTOCOL_COLUMN: &str = "multiIf(mapContains(SpanAttributes, 'rpc.system'), \
    SpanAttributes['rpc.system'], mapContains(SpanAttributes, 'messaging.system'), \
    SpanAttributes['messaging.system'], mapContains(SpanAttributes, 'http.request.method') \
    OR mapContains(SpanAttributes, 'http.method'), 'http', '')";

/// The rows as samples, each service and operation name listed once; a row whose IDs are
/// not hex is left out.
fn samples(rows: Vec<SampleRow>) -> Samples {
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut intern = |s: String| -> u32 {
        if let Some(i) = index.get(&s) {
            return *i;
        }
        let i = u32::try_from(names.len()).unwrap_or(u32::MAX);
        names.push(s.clone());
        index.insert(s, i);
        i
    };
    let mut spans = Vec::with_capacity(rows.len());
    for r in rows {
        let (Some(trace_id), Some(span_id)) = (parse_hex(&r.trace_id), parse_hex(&r.span_id))
        else {
            continue;
        };
        let link = match (parse_hex(&r.link_trace_id), parse_hex(&r.link_span_id)) {
            (Some(t), Some(s)) => Some((t, s)),
            _ => None,
        };
        spans.push(SpanSample {
            trace_id,
            span_id,
            parent_span_id: parse_hex(&r.parent_span_id),
            link,
            service: intern(r.service),
            operation: intern(r.operation),
            kind: parse_kind(&r.kind),
            start_ns: r.start,
            duration_ns: i64::try_from(r.duration).unwrap_or(i64::MAX),
            error: parse_status(&r.status) == StatusCode::Error,
            status: parse_status(&r.status),
            http_status: r.http_status.parse().ok(),
            protocol: (!r.protocol.is_empty()).then(|| intern(r.protocol)),
        });
    }
    Samples {
        spans,
        names,
        truncated: false,
    }
}
