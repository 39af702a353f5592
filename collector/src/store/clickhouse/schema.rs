//! The ClickHouse tables: those the OpenTelemetry Collector's ClickHouse exporter creates
//! (`otel_traces`, `otel_logs`, `otel_traces_trace_id_ts` and its materialized view, same
//! columns, types, skip indexes, partitions and sort keys), plus Gauntlet's correlation index
//! (`otel_correlation_ids`, filled by materialized views over both tables, so rows other
//! writers insert are indexed too). On a cluster the tables are `Replicated*MergeTree`
//! created `ON CLUSTER`, with `Distributed` tables in front sharded by `cityHash64(TraceId)`.
//! The exporter's five metrics tables are declared in `metrics.rs` and created here with the
//! others (their distributed tables shard at random). Gauntlet's RED rollups
//! (`gauntlet_red_rollups`, an `AggregatingMergeTree`) are filled by a materialized view over
//! the spans, so rows other writers insert are counted too, from the view's creation on.

use std::time::Duration;

/// Where the tables go and how they are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub database: String,
    /// `Some(name)`: replicated local tables `ON CLUSTER name` behind distributed ones.
    pub cluster: Option<String>,
    /// Rows older than this (by their own timestamp) are dropped by ClickHouse's TTL.
    pub ttl: Option<Duration>,
}

pub const TRACES: &str = "otel_traces";
pub const LOGS: &str = "otel_logs";
pub const TRACE_ID_TS: &str = "otel_traces_trace_id_ts";
pub const CORRELATIONS: &str = "otel_correlation_ids";
/// RED per 10 s bucket (`crate::rollup`), filled by a materialized view over the spans.
pub const RED_ROLLUPS: &str = "gauntlet_red_rollups";

/// Calls between services per 10 s bucket (`edges.rs`), and the minutes counted into it.
pub const EDGE_ROLLUPS: &str = "gauntlet_edge_rollups";
pub const EDGE_PASSES: &str = "gauntlet_edge_passes";

/// The span attribute keys a correlation ID is read from, in order (as the collector's
/// ingest reads them).
pub use crate::model::CORRELATION_KEYS;

/// Columns every store table must have, with their types as `system.columns` reports them:
/// what Gauntlet reads and writes. Extra columns are fine; a missing or retyped one is not.
pub const REQUIRED_COLUMNS: &[(&str, &[(&str, &str)])] = &[
    (
        TRACES,
        &[
            ("Timestamp", "DateTime64(9)"),
            ("TraceId", "String"),
            ("SpanId", "String"),
            ("ParentSpanId", "String"),
            ("TraceState", "String"),
            ("SpanName", "LowCardinality(String)"),
            ("SpanKind", "LowCardinality(String)"),
            ("ServiceName", "LowCardinality(String)"),
            ("ResourceAttributes", "Map(LowCardinality(String), String)"),
            ("ScopeName", "String"),
            ("ScopeVersion", "String"),
            ("SpanAttributes", "Map(LowCardinality(String), String)"),
            ("Duration", "UInt64"),
            ("StatusCode", "LowCardinality(String)"),
            ("StatusMessage", "String"),
            ("Events.Timestamp", "Array(DateTime64(9))"),
            ("Events.Name", "Array(LowCardinality(String))"),
            (
                "Events.Attributes",
                "Array(Map(LowCardinality(String), String))",
            ),
            ("Links.TraceId", "Array(String)"),
            ("Links.SpanId", "Array(String)"),
            ("Links.TraceState", "Array(String)"),
            (
                "Links.Attributes",
                "Array(Map(LowCardinality(String), String))",
            ),
        ],
    ),
    (
        LOGS,
        &[
            ("Timestamp", "DateTime64(9)"),
            ("TraceId", "String"),
            ("SpanId", "String"),
            ("TraceFlags", "UInt8"),
            ("SeverityText", "LowCardinality(String)"),
            ("SeverityNumber", "UInt8"),
            ("ServiceName", "LowCardinality(String)"),
            ("Body", "String"),
            ("ResourceAttributes", "Map(LowCardinality(String), String)"),
            ("ScopeName", "String"),
            ("LogAttributes", "Map(LowCardinality(String), String)"),
            ("EventName", "String"),
        ],
    ),
    (
        TRACE_ID_TS,
        &[
            ("TraceId", "String"),
            ("Start", "SimpleAggregateFunction(min, DateTime)"),
            ("End", "SimpleAggregateFunction(max, DateTime)"),
        ],
    ),
    (
        CORRELATIONS,
        &[
            ("CorrelationId", "String"),
            ("Signal", "LowCardinality(String)"),
            ("TraceId", "String"),
            ("Timestamp", "DateTime64(9)"),
        ],
    ),
    (
        RED_ROLLUPS,
        &[
            ("Bucket", "Int64"),
            ("ServiceName", "LowCardinality(String)"),
            ("SpanName", "LowCardinality(String)"),
            ("SpanKind", "LowCardinality(String)"),
            ("ServiceVersion", "LowCardinality(String)"),
            ("StatusCode", "LowCardinality(String)"),
            ("HttpClass", "UInt8"),
            ("Requests", "SimpleAggregateFunction(sum, UInt64)"),
            ("Errors", "SimpleAggregateFunction(sum, UInt64)"),
            ("Throttled", "SimpleAggregateFunction(sum, UInt64)"),
            (
                "Latency",
                "SimpleAggregateFunction(sumMap, Tuple(Array(Int32), Array(UInt64)))",
            ),
        ],
    ),
    (
        EDGE_ROLLUPS,
        &[
            ("Bucket", "Int64"),
            ("Caller", "LowCardinality(String)"),
            ("Callee", "LowCardinality(String)"),
            ("Protocol", "LowCardinality(String)"),
            ("Calls", "SimpleAggregateFunction(sum, UInt64)"),
            ("Errors", "SimpleAggregateFunction(sum, UInt64)"),
            (
                "Latency",
                "SimpleAggregateFunction(sumMap, Tuple(Array(Int32), Array(UInt64)))",
            ),
        ],
    ),
    (EDGE_PASSES, &[("Unit", "Int64")]),
];

impl Layout {
    fn name(&self, table: &str) -> String {
        format!("{}.{}", ident(&self.database), ident(table))
    }

    /// The table rows are written to and read from: the distributed one on a cluster.
    pub fn table(&self, table: &str) -> String {
        self.name(table)
    }

    /// The table that stores rows on this node: `<name>_local` on a cluster.
    fn local(&self, table: &str) -> String {
        match self.cluster {
            Some(_) => self.name(&format!("{table}_local")),
            None => self.name(table),
        }
    }

    fn on_cluster(&self) -> String {
        match &self.cluster {
            Some(c) => format!(" ON CLUSTER {}", ident(c)),
            None => String::new(),
        }
    }

    fn engine(&self, engine: &str, table: &str) -> String {
        match self.cluster {
            Some(_) => format!(
                "Replicated{engine}('/clickhouse/tables/{{shard}}/{}/{table}', '{{replica}}')",
                self.database.replace('\'', "")
            ),
            None => engine.to_string(),
        }
    }

    fn ttl(&self, expr: &str) -> String {
        match self.ttl {
            Some(d) => format!("TTL {expr} + toIntervalSecond({})", d.as_secs().max(1)),
            None => String::new(),
        }
    }

    /// Every statement, in order; each is idempotent (`IF NOT EXISTS`).
    pub fn ddl(&self) -> Vec<String> {
        let (mut tables, views) = self.ddl_parts();
        tables.extend(views);
        tables
    }

    /// The database and tables, then the materialized views: the views need the tables to
    /// have the expected columns, which a store checks in between.
    pub fn ddl_parts(&self) -> (Vec<String>, Vec<String>) {
        let on = self.on_cluster();
        // Inserts carry deduplication tokens (a spooled batch may be inserted twice); a
        // replicated table keeps the tokens by itself, a plain MergeTree only when told to.
        let dedup = match self.cluster {
            None => ", non_replicated_deduplication_window = 1000",
            Some(_) => "",
        };
        let mut out = vec![format!(
            "CREATE DATABASE IF NOT EXISTS {}{on}",
            ident(&self.database)
        )];
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {}{on} (
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1)),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    ParentSpanId String CODEC(ZSTD(1)),
    TraceState String CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion String CODEC(ZSTD(1)),
    SpanAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    Duration UInt64 CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    StatusMessage String CODEC(ZSTD(1)),
    Events Nested (
        Timestamp DateTime64(9),
        Name LowCardinality(String),
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    Links Nested (
        TraceId String,
        SpanId String,
        TraceState String,
        Attributes Map(LowCardinality(String), String)
    ) CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_key mapKeys(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_span_attr_value mapValues(SpanAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_duration Duration TYPE minmax GRANULARITY 1
) ENGINE = {}
PARTITION BY toDate(Timestamp)
ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))
{}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}",
            self.local(TRACES),
            self.engine("MergeTree", TRACES),
            self.ttl("toDateTime(Timestamp)"),
        ));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {}{on} (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_key mapKeys(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_scope_attr_value mapValues(ScopeAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8
) ENGINE = {}
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (ServiceName, TimestampTime)
ORDER BY (ServiceName, TimestampTime, Timestamp)
{}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}",
            self.local(LOGS),
            self.engine("MergeTree", LOGS),
            self.ttl("TimestampTime"),
        ));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {}{on} (
    TraceId String CODEC(ZSTD(1)),
    Start SimpleAggregateFunction(min, DateTime) CODEC(ZSTD(1)),
    End SimpleAggregateFunction(max, DateTime) CODEC(ZSTD(1))
) ENGINE = {}
PARTITION BY toStartOfWeek(Start)
ORDER BY (TraceId)
{}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1",
            self.local(TRACE_ID_TS),
            self.engine("AggregatingMergeTree", TRACE_ID_TS),
            self.ttl("toDateTime(Start)"),
        ));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {}{on} (
    CorrelationId String CODEC(ZSTD(1)),
    Signal LowCardinality(String),
    TraceId String CODEC(ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta, ZSTD(1))
) ENGINE = {}
PARTITION BY toDate(Timestamp)
ORDER BY (CorrelationId, Signal, Timestamp)
{}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1",
            self.local(CORRELATIONS),
            self.engine("MergeTree", CORRELATIONS),
            self.ttl("toDateTime(Timestamp)"),
        ));
        for table in super::metrics::TABLES {
            out.push(format!(
                "CREATE TABLE IF NOT EXISTS {}{on} {}\nENGINE = {}\n{}\n{}\nSETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}",
                self.local(table),
                super::metrics::table_body(table),
                self.engine("MergeTree", table),
                super::metrics::ORDER_BY,
                self.ttl("toDateTime(TimeUnix)"),
            ));
        }
        // One row per key and bucket once merged: a day of one busy operation is 8,640
        // rows, whatever its spans. Buckets are numbered as `crate::rollup::bucket_of` does.
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {}{on} (
    Bucket Int64 CODEC(Delta, ZSTD(1)),
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    SpanName LowCardinality(String) CODEC(ZSTD(1)),
    SpanKind LowCardinality(String) CODEC(ZSTD(1)),
    ServiceVersion LowCardinality(String) CODEC(ZSTD(1)),
    StatusCode LowCardinality(String) CODEC(ZSTD(1)),
    HttpClass UInt8,
    Requests SimpleAggregateFunction(sum, UInt64),
    Errors SimpleAggregateFunction(sum, UInt64),
    Throttled SimpleAggregateFunction(sum, UInt64),
    Latency SimpleAggregateFunction(sumMap, Tuple(Array(Int32), Array(UInt64))) CODEC(ZSTD(1))
) ENGINE = {}
PARTITION BY toDate(toDateTime(Bucket * 10))
ORDER BY (ServiceName, Bucket, SpanName, SpanKind, ServiceVersion, StatusCode, HttpClass)
{}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1",
            self.local(RED_ROLLUPS),
            self.engine("AggregatingMergeTree", RED_ROLLUPS),
            self.ttl("toDateTime(Bucket * 10)"),
        ));
        // Calls between services once merged: one row per bucket and edge (`edges.rs`), and
        // the minutes counted (a pass is one insert, recorded after it).
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {}{on} (
    Bucket Int64 CODEC(Delta, ZSTD(1)),
    Caller LowCardinality(String) CODEC(ZSTD(1)),
    Callee LowCardinality(String) CODEC(ZSTD(1)),
    Protocol LowCardinality(String) CODEC(ZSTD(1)),
    Calls SimpleAggregateFunction(sum, UInt64),
    Errors SimpleAggregateFunction(sum, UInt64),
    Latency SimpleAggregateFunction(sumMap, Tuple(Array(Int32), Array(UInt64))) CODEC(ZSTD(1))
) ENGINE = {}
PARTITION BY toDate(toDateTime(Bucket * 10))
ORDER BY (Bucket, Caller, Callee, Protocol)
{}
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1{dedup}",
            self.local(EDGE_ROLLUPS),
            self.engine("AggregatingMergeTree", EDGE_ROLLUPS),
            self.ttl("toDateTime(Bucket * 10)"),
        ));
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {}{on} (
    Unit Int64,
    At DateTime DEFAULT now()
) ENGINE = {}
ORDER BY Unit
{}
SETTINGS index_granularity = 8192{dedup}",
            self.local(EDGE_PASSES),
            self.engine("MergeTree", EDGE_PASSES),
            self.ttl("At"),
        ));
        if let Some(cluster) = &self.cluster {
            // Metric rows and rollup rows go to any shard: a query reads (and sums) them all
            // through the distributed table.
            for table in
                super::metrics::TABLES
                    .iter()
                    .chain([&RED_ROLLUPS, &EDGE_ROLLUPS, &EDGE_PASSES])
            {
                out.push(format!(
                    "CREATE TABLE IF NOT EXISTS {}{on} AS {} ENGINE = Distributed({}, {}, {}, rand())",
                    self.name(table),
                    self.local(table),
                    ident(cluster),
                    ident(&self.database),
                    ident(&format!("{table}_local")),
                ));
            }
            // The distributed tables in front: a trace's spans (and its logs and index rows)
            // land on one shard.
            for table in [TRACES, LOGS, TRACE_ID_TS, CORRELATIONS] {
                out.push(format!(
                    "CREATE TABLE IF NOT EXISTS {}{on} AS {} ENGINE = Distributed({}, {}, {}, cityHash64(TraceId))",
                    self.name(table),
                    self.local(table),
                    ident(cluster),
                    ident(&self.database),
                    ident(&format!("{table}_local")),
                ));
            }
        }
        // Materialized views read the rows as they are inserted (into the local tables on a
        // cluster: each shard indexes its own rows) and write next to them.
        let mut views = Vec::new();
        views.push(format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {}{on} TO {}
AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End
FROM {} WHERE TraceId != '' GROUP BY TraceId",
            self.name(&format!("{TRACE_ID_TS}_mv")),
            self.local(TRACE_ID_TS),
            self.local(TRACES),
        ));
        for (source, attributes, signal) in [
            (TRACES, "SpanAttributes", "span"),
            (LOGS, "LogAttributes", "log"),
        ] {
            views.push(format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {}{on} TO {}
AS SELECT {} AS CorrelationId, '{signal}' AS Signal, TraceId, Timestamp
FROM {} WHERE CorrelationId != ''",
                self.name(&format!("{CORRELATIONS}_{signal}_mv")),
                self.local(CORRELATIONS),
                correlation_expr(attributes),
                self.local(source),
            ));
        }
        views.push(self.red_rollups_view());
        (out, views)
    }

    /// The view that counts each inserted block of spans into the rollups: the rules of
    /// `crate::rollup` in SQL (a span's bucket by its start; errors by status; the HTTP status
    /// by `http.response.status_code`, else `http.status_code`; durations binned as
    /// `Sketch::add` bins them).
    fn red_rollups_view(&self) -> String {
        let http = "toUInt16OrZero(if(mapContains(SpanAttributes, 'http.response.status_code'), \
            SpanAttributes['http.response.status_code'], SpanAttributes['http.status_code']))";
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {}{} TO {}
AS SELECT intDiv(toUnixTimestamp64Nano(Timestamp), {bucket}) AS Bucket, ServiceName, SpanName,
    SpanKind, ResourceAttributes['service.version'] AS ServiceVersion, StatusCode,
    toUInt8(if({http} BETWEEN 100 AND 599, intDiv({http}, 100), 0)) AS HttpClass,
    count() AS Requests, countIf(StatusCode IN ('Error', 'STATUS_CODE_ERROR')) AS Errors,
    countIf({http} = 429) AS Throttled,
    sumMap(tuple([{bin}], [toUInt64(1)])) AS Latency
FROM {} GROUP BY Bucket, ServiceName, SpanName, SpanKind, ServiceVersion, StatusCode, HttpClass",
            self.name(&format!("{RED_ROLLUPS}_mv")),
            self.on_cluster(),
            self.local(RED_ROLLUPS),
            self.local(TRACES),
            bucket = crate::rollup::BUCKET_NS,
            bin = crate::rollup::sketch::bin_sql("Duration"),
        )
    }
}

/// The first correlation attribute present in an attribute map column.
pub fn correlation_expr(column: &str) -> String {
    let keys: Vec<String> = CORRELATION_KEYS
        .iter()
        .map(|k| format!("{column}['{k}']"))
        .collect();
    // multiIf: the first non-empty one, as ingest picks the first key present.
    let mut expr = String::from("multiIf(");
    for key in &keys {
        expr += &format!("{key} != '', {key}, ");
    }
    expr += "'')";
    expr
}

/// A name as a ClickHouse identifier, quoted with backticks.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('\\', "\\\\").replace('`', "\\`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(cluster: Option<&str>, ttl: Option<u64>) -> Layout {
        Layout {
            database: "otel".into(),
            cluster: cluster.map(str::to_string),
            ttl: ttl.map(Duration::from_secs),
        }
    }

    #[test]
    fn a_single_node_gets_the_exporters_tables_and_the_correlation_index() {
        let ddl = layout(None, None).ddl();
        // The database, four tables, the exporter's five metrics tables, the RED rollups,
        // the edge rollups and their passes, four views.
        assert_eq!(ddl.len(), 17, "{ddl:#?}");
        assert!(ddl[1].starts_with("CREATE TABLE IF NOT EXISTS `otel`.`otel_traces` ("));
        assert!(ddl[1].contains("ENGINE = MergeTree\nPARTITION BY toDate(Timestamp)"));
        assert!(ddl[1].contains("ORDER BY (ServiceName, SpanName, toDateTime(Timestamp))"));
        assert!(ddl[2].contains("PRIMARY KEY (ServiceName, TimestampTime)"));
        assert!(ddl[3].contains("ENGINE = AggregatingMergeTree"));
        assert!(
            !ddl.iter().any(|s| s.contains("TTL ")),
            "no TTL without --retention"
        );
        assert!(
            !ddl.iter()
                .any(|s| s.contains("ON CLUSTER") || s.contains("Distributed"))
        );
        assert!(ddl[5].starts_with("CREATE TABLE IF NOT EXISTS `otel`.`otel_metrics_gauge` ("));
        assert!(ddl[5].contains(
            "ORDER BY (ServiceName, MetricName, Attributes, toUnixTimestamp64Nano(TimeUnix))"
        ));
        assert!(ddl[6].contains("IsMonotonic Boolean"));
        assert!(ddl[7].contains("ExplicitBounds Array(Float64)"));
        assert!(
            ddl[9].contains("`ValueAtQuantiles` Nested")
                || ddl[9].contains("ValueAtQuantiles Nested")
        );
        assert!(ddl[10].starts_with("CREATE TABLE IF NOT EXISTS `otel`.`gauntlet_red_rollups` ("));
        assert!(ddl[10].contains("ENGINE = AggregatingMergeTree"));
        assert!(ddl[11].starts_with("CREATE TABLE IF NOT EXISTS `otel`.`gauntlet_edge_rollups` ("));
        assert!(ddl[11].contains("ORDER BY (Bucket, Caller, Callee, Protocol)"));
        assert!(ddl[12].contains("`otel`.`gauntlet_edge_passes`"));
        assert!(ddl[14].contains("multiIf(SpanAttributes['correlation_id'] != ''"));
        assert!(ddl[15].contains("'log' AS Signal"));
        assert!(ddl[16].contains("TO `otel`.`gauntlet_red_rollups`"));
        assert!(
            ddl[16].contains("intDiv(toUnixTimestamp64Nano(Timestamp), 10000000000) AS Bucket")
        );
        assert!(
            ddl.iter().all(|s| s.contains("IF NOT EXISTS")),
            "idempotent"
        );
    }

    #[test]
    fn retention_is_a_ttl_on_every_table() {
        let ddl = layout(None, Some(7 * 86_400)).ddl();
        let ttls: Vec<&String> = ddl.iter().filter(|s| s.contains("TTL ")).collect();
        assert_eq!(
            ttls.len(),
            12,
            "four tables, five metrics tables, the RED and edge rollups, the edge passes"
        );
        assert!(ddl[11].contains("TTL toDateTime(Bucket * 10) + toIntervalSecond(604800)"));
        assert!(ddl[12].contains("TTL At + toIntervalSecond(604800)"));
        assert!(ddl[10].contains("TTL toDateTime(Bucket * 10) + toIntervalSecond(604800)"));
        assert!(ddl[5].contains("TTL toDateTime(TimeUnix) + toIntervalSecond(604800)"));
        assert!(ddl[1].contains("TTL toDateTime(Timestamp) + toIntervalSecond(604800)"));
        assert!(ddl[2].contains("TTL TimestampTime + toIntervalSecond(604800)"));
    }

    #[test]
    fn a_cluster_gets_replicated_local_tables_behind_distributed_ones() {
        let ddl = layout(Some("gauntlet"), None).ddl();
        // The database, 4 + 5 + 3 local tables, 5 + 3 + 4 distributed ones, four views.
        assert_eq!(ddl.len(), 29, "{ddl:#?}");
        assert!(ddl.iter().all(|s| s.contains(" ON CLUSTER `gauntlet`")));
        assert!(ddl[1].starts_with("CREATE TABLE IF NOT EXISTS `otel`.`otel_traces_local`"));
        assert!(ddl[1].contains(
            "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/otel/otel_traces', '{replica}')"
        ));
        assert!(ddl[3].contains("ReplicatedAggregatingMergeTree("));
        assert!(
            !ddl[1].contains("non_replicated"),
            "replicated tables deduplicate anyway"
        );
        assert!(
            ddl[13].contains("Distributed(`gauntlet`, `otel`, `otel_metrics_gauge_local`, rand())")
        );
        assert!(ddl[18].contains("`gauntlet_red_rollups_local`, rand())"));
        assert!(ddl[19].contains("`gauntlet_edge_rollups_local`, rand())"));
        assert!(ddl[20].contains("`gauntlet_edge_passes_local`, rand())"));
        assert_eq!(
            ddl[21],
            "CREATE TABLE IF NOT EXISTS `otel`.`otel_traces` ON CLUSTER `gauntlet` AS \
             `otel`.`otel_traces_local` ENGINE = Distributed(`gauntlet`, `otel`, \
             `otel_traces_local`, cityHash64(TraceId))"
        );
        // The views read each shard's local rows and write its local index.
        assert!(ddl[25].contains("TO `otel`.`otel_traces_trace_id_ts_local`"));
        assert!(ddl[25].contains("FROM `otel`.`otel_traces_local`"));
        assert!(ddl[28].contains("TO `otel`.`gauntlet_red_rollups_local`"));
    }

    #[test]
    fn names_are_quoted() {
        assert_eq!(ident("a`b"), "`a\\`b`");
        let ddl = Layout {
            database: "my db".into(),
            cluster: None,
            ttl: None,
        }
        .ddl();
        assert_eq!(ddl[0], "CREATE DATABASE IF NOT EXISTS `my db`");
    }
}
