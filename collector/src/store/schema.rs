//! The SQLite schemas: the catalog file's, as an ordered list of migrations
//! (`PRAGMA user_version` records how many have run; an older file is brought forward on
//! open, a newer one refused), and a segment file's, created whole.
//!
//! Layout, chosen for ingest speed (an index on a random key, trace ID or correlation ID,
//! updated per row is what makes SQLite ingest slow down as data grows):
//! - The catalog (`gauntlet.sqlite`) interns services, operations, resources and scopes into
//!   small integers and lists the segments. Its own data tables (migrations 1 and 2) hold what
//!   a store of schema version 2 wrote before segments existed; they are read as one more
//!   sealed segment and take no new rows.
//! - Rows go to the open segment (`segments/NNNNNN.sqlite`). `spans` has no trace-ID index:
//!   each commit writes a trace's spans contiguously (a run), so a trace is found from the
//!   rowid of the first span of each of its runs, and a correlation ID from the first span of
//!   a run that carries it. While the segment is open, those rowids are found through a map
//!   in memory from 64-bit keys (SipHash under the segment's own secret, `segment_keys`);
//!   sealing writes the (key, rowid) pairs, sorted, in blocks into the `trace_keys` and
//!   `correlation_keys` tables: a few thousand rows appended in order, nothing sorted by
//!   SQLite.
//!   Segment formats 1 and 2 also wrote a `trace_parts` row per run (where it starts and
//!   ends, its totals), and their keys point at those rows; format 1 indexed them with
//!   `CREATE INDEX` when sealed (an external sort of a million rows). Their sealed files are
//!   read as they are; an unsealed one is sealed in its own format on open.
//! - Search finds a service's spans by start time: in the open segment through an ordered
//!   map in memory, in a sealed one through `span_times`, blocks of (start, span rowid,
//!   operation, duration) written in order by the seal. Formats 1 to 3 kept a live index,
//!   `spans_by_service`, instead: an exporter's batch spans seconds of start times, so its
//!   inserts scattered over each service's recent pages and every commit rewrote hundreds.

/// Each entry is one migration; the schema version is the number applied.
pub const MIGRATIONS: &[&str] = &[
    // 1: traces and spans.
    r#"
    CREATE TABLE services (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
    CREATE TABLE operations (
        id INTEGER PRIMARY KEY,
        service_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        kind INTEGER NOT NULL,
        UNIQUE (service_id, name, kind)
    );
    CREATE TABLE resources (
        id INTEGER PRIMARY KEY,
        service_id INTEGER NOT NULL,
        attributes TEXT NOT NULL UNIQUE
    );
    CREATE TABLE scopes (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        UNIQUE (name, version)
    );
    -- One row per ingest commit: retention deletes whole batches, oldest first.
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        received_ns INTEGER NOT NULL,
        last_span INTEGER,
        last_part INTEGER,
        last_log INTEGER
    );
    CREATE TABLE spans (
        id INTEGER PRIMARY KEY,
        trace_id BLOB NOT NULL,
        span_id BLOB NOT NULL,
        parent_span_id BLOB,
        service_id INTEGER NOT NULL,
        op_id INTEGER NOT NULL,
        resource_id INTEGER NOT NULL,
        scope_id INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        start_ns INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        status_code INTEGER NOT NULL,
        -- NULL rather than '' or '[]', which most spans would carry.
        status_message TEXT,
        attributes TEXT NOT NULL,
        events TEXT,
        links TEXT,
        correlation_id TEXT,
        trace_state TEXT,
        flags INTEGER NOT NULL
    );
    CREATE INDEX spans_by_service ON spans (service_id, start_ns, op_id, duration_ns);
    -- The trace summary, kept append-only for ingest speed: one row per trace per commit
    -- (its spans are contiguous there), so a commit appends rows and adds one small entry per
    -- trace to the trace-ID index instead of rewriting a row in a randomly keyed table.
    -- Extra correlation IDs of a part get extra rows with span_count 0 and an empty range.
    CREATE TABLE trace_parts (
        id INTEGER PRIMARY KEY,
        trace_id BLOB NOT NULL,
        first_span INTEGER NOT NULL,
        last_span INTEGER NOT NULL,
        span_count INTEGER NOT NULL,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        error INTEGER NOT NULL,
        root_service_id INTEGER,
        root_op_id INTEGER,
        correlation_id TEXT
    );
    CREATE INDEX trace_parts_by_trace ON trace_parts (trace_id);
    CREATE INDEX trace_parts_by_correlation ON trace_parts (correlation_id)
        WHERE correlation_id IS NOT NULL;
    -- Trace ID → start, end, root service and operation, span count, error flag.
    CREATE VIEW traces AS
        SELECT trace_id,
               min(start_ns) AS start_ns,
               max(end_ns) AS end_ns,
               sum(span_count) AS span_count,
               max(error) AS error,
               max(root_service_id) AS root_service_id,
               max(root_op_id) AS root_op_id
        FROM trace_parts GROUP BY trace_id;
    "#,
    // 2: logs.
    r#"
    CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        time_ns INTEGER NOT NULL,
        observed_ns INTEGER NOT NULL,
        service_id INTEGER NOT NULL,
        resource_id INTEGER NOT NULL,
        scope_id INTEGER NOT NULL,
        severity_number INTEGER NOT NULL,
        severity_text TEXT NOT NULL,
        body TEXT NOT NULL,
        attributes TEXT NOT NULL,
        trace_id BLOB,
        span_id BLOB,
        correlation_id TEXT,
        flags INTEGER NOT NULL,
        event_name TEXT NOT NULL
    );
    CREATE INDEX logs_by_time ON logs (time_ns);
    CREATE INDEX logs_by_service ON logs (service_id, time_ns);
    CREATE INDEX logs_by_trace ON logs (trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX logs_by_correlation ON logs (correlation_id) WHERE correlation_id IS NOT NULL;
    "#,
    // 3: segment files (the data tables above keep what version 2 wrote).
    SEGMENTS_TABLE,
    // 4: attribute keys, numbered for the packed attributes of segment format 8.
    "CREATE TABLE attribute_keys (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);",
];

/// The schema version this build writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Catalog migration 3: the list of segment files. `state`: 0 open, 1 sealing, 2 sealed.
/// Start times are known once a segment is sealed and let a search skip it.
pub const SEGMENTS_TABLE: &str = r#"
    CREATE TABLE segments (
        id INTEGER PRIMARY KEY,
        state INTEGER NOT NULL,
        min_start_ns INTEGER,
        max_start_ns INTEGER
    );
"#;

/// The `user_version` of a segment file this build writes: 2 since the key tables, 3 since
/// the keys point at span rows (no `trace_parts`), 4 since search finds spans by service and
/// time through `span_times` (no live `spans_by_service` index), 5 since `red_rollups`, 6
/// since `red_tiers`, 7 since `edge_rollups` and `edge_tiers`, 8 since span attributes are
/// packed (`sqlite/packed.rs`: a BLOB, or JSON text when a key had no ID), 9 since the open
/// segment writes its RED rows about once a second rather than per commit (`red_flushed`).
pub const SEGMENT_VERSION: i64 = 9;

/// What segment format 2 added to format 1: the secret of the segment's ID keys (one row),
/// and the sealed segment's lookups, filled when it is sealed: its sorted (key, rowid)
/// pairs in blocks of about a page, each row keyed by its first key (so one rowid lookup
/// finds the block a key is in; equal keys never straddle two blocks). An unsealed file of
/// format 1 gets them on open.
pub const SEGMENT_KEY_TABLES: &str = r#"
    CREATE TABLE segment_keys (k0 INTEGER NOT NULL, k1 INTEGER NOT NULL);
    CREATE TABLE trace_keys (first_key INTEGER PRIMARY KEY, entries BLOB NOT NULL);
    CREATE TABLE correlation_keys (first_key INTEGER PRIMARY KEY, entries BLOB NOT NULL);
"#;

/// A segment file: the catalog's data tables, with only indexes whose entries arrive in
/// about the order they are kept (time) and the log lookups. `batches.last_part` stays NULL
/// from format 3 on. Formats 1 to 3 had a live covering index for search,
/// `spans_by_service (service_id, start_ns, op_id, duration_ns)`.
pub const SEGMENT_SCHEMA: &str = r#"
    CREATE TABLE batches (
        id INTEGER PRIMARY KEY,
        received_ns INTEGER NOT NULL,
        last_span INTEGER,
        last_part INTEGER,
        last_log INTEGER
    );
    CREATE TABLE spans (
        id INTEGER PRIMARY KEY,
        trace_id BLOB NOT NULL,
        span_id BLOB NOT NULL,
        parent_span_id BLOB,
        service_id INTEGER NOT NULL,
        op_id INTEGER NOT NULL,
        resource_id INTEGER NOT NULL,
        scope_id INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        start_ns INTEGER NOT NULL,
        duration_ns INTEGER NOT NULL,
        status_code INTEGER NOT NULL,
        status_message TEXT,
        attributes TEXT NOT NULL,
        events TEXT,
        links TEXT,
        correlation_id TEXT,
        trace_state TEXT,
        flags INTEGER NOT NULL
    );
    -- Filled when the segment is sealed (span_times.rs): its spans by service and start, in
    -- blocks of about a page; the open segment keeps them in memory.
    CREATE TABLE span_times (
        id INTEGER PRIMARY KEY,
        service_id INTEGER NOT NULL,
        first_start INTEGER NOT NULL,
        last_start INTEGER NOT NULL,
        entries BLOB NOT NULL
    );
    CREATE INDEX span_times_by_service ON span_times (service_id, last_start);
    -- Format 5: the RED rollups of the segment's spans (crate::rollup), written in the
    -- transaction that writes them (from format 9, about once a second: see red_flushed);
    -- one row per 10 s bucket and key. `latency` is the encoded DDSketch of the durations.
    CREATE TABLE red_rollups (
        service_id INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        op_id INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        resource_id INTEGER NOT NULL,
        status_code INTEGER NOT NULL,
        http_class INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        throttled INTEGER NOT NULL,
        latency BLOB NOT NULL,
        PRIMARY KEY (service_id, bucket, op_id, kind, resource_id, status_code, http_class)
    ) WITHOUT ROWID;
    -- Format 9: the last span row `red_rollups` counts. While the segment is open, the
    -- cells of later spans wait in memory and are written about once a second; on open they
    -- are counted again from the spans after it (sqlite/rollups.rs).
    CREATE TABLE red_flushed (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        last_span INTEGER NOT NULL
    );
    -- Format 6: `red_rollups` merged per minute (width 6), 10 minutes (60) and hour (360)
    -- when the segment is sealed; `bucket` is the first 10 s bucket a row covers.
    CREATE TABLE red_tiers (
        width INTEGER NOT NULL,
        service_id INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        op_id INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        resource_id INTEGER NOT NULL,
        status_code INTEGER NOT NULL,
        http_class INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        throttled INTEGER NOT NULL,
        latency BLOB NOT NULL,
        PRIMARY KEY (width, service_id, bucket, op_id, kind, resource_id, status_code,
            http_class)
    ) WITHOUT ROWID;
    -- Format 7: calls between services (crate::rollup::edges) per 10 s bucket of the called
    -- span's start, written in the transaction of the batch that completed the call (so a
    -- call may sit in a later segment than its spans); `protocol` is '' for none.
    CREATE TABLE edge_rollups (
        bucket INTEGER NOT NULL,
        caller_id INTEGER NOT NULL,
        callee_id INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        calls INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        latency BLOB NOT NULL,
        PRIMARY KEY (bucket, caller_id, callee_id, protocol)
    ) WITHOUT ROWID;
    -- Format 7: `edge_rollups` merged per minute, 10 minutes and hour when sealed.
    CREATE TABLE edge_tiers (
        width INTEGER NOT NULL,
        bucket INTEGER NOT NULL,
        caller_id INTEGER NOT NULL,
        callee_id INTEGER NOT NULL,
        protocol TEXT NOT NULL,
        calls INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        latency BLOB NOT NULL,
        PRIMARY KEY (width, bucket, caller_id, callee_id, protocol)
    ) WITHOUT ROWID;
    CREATE TABLE logs (
        id INTEGER PRIMARY KEY,
        time_ns INTEGER NOT NULL,
        observed_ns INTEGER NOT NULL,
        service_id INTEGER NOT NULL,
        resource_id INTEGER NOT NULL,
        scope_id INTEGER NOT NULL,
        severity_number INTEGER NOT NULL,
        severity_text TEXT NOT NULL,
        body TEXT NOT NULL,
        attributes TEXT NOT NULL,
        trace_id BLOB,
        span_id BLOB,
        correlation_id TEXT,
        flags INTEGER NOT NULL,
        event_name TEXT NOT NULL
    );
    CREATE INDEX logs_by_time ON logs (time_ns);
    CREATE INDEX logs_by_service ON logs (service_id, time_ns);
    CREATE INDEX logs_by_trace ON logs (trace_id) WHERE trace_id IS NOT NULL;
    CREATE INDEX logs_by_correlation ON logs (correlation_id) WHERE correlation_id IS NOT NULL;
"#;
