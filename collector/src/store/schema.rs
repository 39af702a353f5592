//! The SQLite schema, as an ordered list of migrations; `PRAGMA user_version` records how
//! many have run. An older data directory is brought forward on open; a newer one is refused.
//!
//! Layout, chosen for ingest speed (see ../shared/FACTS.md: a per-span index on a random
//! trace ID is what makes SQLite ingest slow down as data grows):
//! - `spans` has no trace-ID index. Each commit writes a trace's spans contiguously, and the
//!   one-row-per-trace `traces` summary keeps the rowid ranges (`chunks`) where they are.
//! - `spans_by_service` is a covering index for search: (service, start, operation, duration).
//! - services, operations, resources and scopes are interned: spans carry small integers.

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
        status_message TEXT NOT NULL,
        attributes TEXT NOT NULL,
        events TEXT NOT NULL,
        links TEXT NOT NULL,
        correlation_id TEXT,
        trace_state TEXT NOT NULL,
        flags INTEGER NOT NULL
    );
    CREATE INDEX spans_by_service ON spans (service_id, start_ns, op_id, duration_ns);
    CREATE TABLE traces (
        trace_id BLOB PRIMARY KEY,
        start_ns INTEGER NOT NULL,
        end_ns INTEGER NOT NULL,
        span_count INTEGER NOT NULL,
        error INTEGER NOT NULL,
        root_service_id INTEGER,
        root_op_id INTEGER,
        last_batch INTEGER NOT NULL,
        -- (first span id, last span id) pairs, 16 bytes each, little-endian i64s.
        chunks BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX traces_by_batch ON traces (last_batch);
    CREATE TABLE trace_correlations (
        correlation_id TEXT NOT NULL,
        trace_id BLOB NOT NULL,
        PRIMARY KEY (correlation_id, trace_id)
    ) WITHOUT ROWID;
    CREATE INDEX trace_correlations_by_trace ON trace_correlations (trace_id);
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
];

/// The schema version this build writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}
