//! A batch in one transaction: its spans (with the per-trace totals of this commit), the
//! trace summary rows, its logs, and the batch row that retention cuts by. Names are
//! interned into small IDs the writer keeps in memory.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};

use crate::model::{Batch, LogRecord, Resource, STATUS_ERROR, SpanRecord, TraceId, now_ns};
use crate::store::StoreError;

/// The writer connection and the IDs it has interned, so that a span insert needs no lookups.
pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) services: HashMap<String, i64>,
    pub(super) operations: HashMap<(i64, String, i32), i64>,
    pub(super) resources: HashMap<String, i64>,
    pub(super) scopes: HashMap<(String, String), i64>,
}

/// Per-trace totals of the spans of one commit.
struct TraceAgg {
    trace_id: TraceId,
    first: i64,
    last: i64,
    count: i64,
    start: i64,
    end: i64,
    error: bool,
    root: Option<(i64, i64)>,
    correlations: Vec<String>,
}

impl Writer {
    pub(super) fn write(&mut self, mut batch: Batch) -> Result<(), StoreError> {
        // Contiguous spans per trace let the trace summary point at rowid ranges.
        batch.spans.sort_unstable_by_key(|s| s.trace_id);
        let result = self.write_sorted(&batch);
        if result.is_err() {
            // IDs interned in the rolled-back transaction do not exist.
            self.services.clear();
            self.operations.clear();
            self.resources.clear();
            self.scopes.clear();
        }
        result
    }

    fn write_sorted(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let Writer {
            conn,
            services,
            operations,
            resources,
            scopes,
        } = self;
        let tx = conn.transaction()?;
        tx.execute("INSERT INTO batches (received_ns) VALUES (?1)", [now_ns()])?;
        let batch_id = tx.last_insert_rowid();
        let mut interner = Interner {
            tx: &tx,
            services,
            operations,
            resources,
            scopes,
        };
        let (traces, last_span) = insert_spans(&mut interner, &batch.spans)?;
        let last_part = insert_trace_parts(&tx, &traces)?;
        let last_log = insert_logs(&mut interner, &batch.logs)?;
        tx.execute(
            "UPDATE batches SET last_span = ?1, last_part = ?2, last_log = ?3 WHERE id = ?4",
            params![last_span, last_part, last_log, batch_id],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// Inserts the spans (sorted by trace); returns this commit's per-trace totals and the last
/// span row.
fn insert_spans(
    interner: &mut Interner<'_>,
    spans: &[SpanRecord],
) -> Result<(Vec<TraceAgg>, Option<i64>), StoreError> {
    let tx = interner.tx;
    let mut traces: Vec<TraceAgg> = Vec::new();
    let mut last_span = None;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO spans (trace_id, span_id, parent_span_id, service_id, op_id,
                resource_id, scope_id, kind, start_ns, duration_ns, status_code,
                status_message, attributes, events, links, correlation_id, trace_state, flags)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )?;
        for span in spans {
            let service_id = interner.service(&span.resource.service)?;
            let op_id = interner.operation(service_id, &span.name, span.kind as i32)?;
            let resource_id = interner.resource(service_id, &span.resource)?;
            let scope_id = interner.scope(&span.scope_name, &span.scope_version)?;
            insert.execute(params![
                &span.trace_id[..],
                &span.span_id[..],
                span.parent_span_id.as_ref().map(|p| &p[..]),
                service_id,
                op_id,
                resource_id,
                scope_id,
                span.kind as i32,
                span.start_ns,
                span.duration_ns(),
                span.status_code,
                non_empty(&span.status_message),
                span.attributes,
                non_empty_list(&span.events),
                non_empty_list(&span.links),
                span.correlation_id,
                non_empty(&span.trace_state),
                span.flags,
            ])?;
            let id = tx.last_insert_rowid();
            last_span = Some(id);
            let root = span.parent_span_id.is_none().then_some((service_id, op_id));
            match traces.last_mut() {
                Some(t) if t.trace_id == span.trace_id => {
                    t.last = id;
                    t.count += 1;
                    t.start = t.start.min(span.start_ns);
                    t.end = t.end.max(span.end_ns);
                    t.error |= span.status_code == STATUS_ERROR;
                    t.root = t.root.or(root);
                    if let Some(c) = &span.correlation_id
                        && !t.correlations.contains(c)
                    {
                        t.correlations.push(c.clone());
                    }
                }
                _ => traces.push(TraceAgg {
                    trace_id: span.trace_id,
                    first: id,
                    last: id,
                    count: 1,
                    start: span.start_ns,
                    end: span.end_ns,
                    error: span.status_code == STATUS_ERROR,
                    root,
                    correlations: span.correlation_id.iter().cloned().collect(),
                }),
            }
        }
    }
    Ok((traces, last_span))
}

/// One summary row per trace of this commit (plus one per extra correlation ID); returns the
/// last row.
fn insert_trace_parts(
    tx: &Transaction<'_>,
    traces: &[TraceAgg],
) -> Result<Option<i64>, StoreError> {
    let mut last_part = None;
    {
        let mut part = tx.prepare_cached(
            "INSERT INTO trace_parts (trace_id, first_span, last_span, span_count, start_ns,
                end_ns, error, root_service_id, root_op_id, correlation_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        for t in traces {
            part.execute(params![
                &t.trace_id[..],
                t.first,
                t.last,
                t.count,
                t.start,
                t.end,
                t.error,
                t.root.map(|r| r.0),
                t.root.map(|r| r.1),
                t.correlations.first(),
            ])?;
            // Rare: more than one correlation ID in one part; each gets an empty row.
            for c in t.correlations.iter().skip(1) {
                part.execute(params![
                    &t.trace_id[..],
                    0,
                    -1,
                    0,
                    t.start,
                    t.end,
                    false,
                    None::<i64>,
                    None::<i64>,
                    c
                ])?;
            }
            last_part = Some(tx.last_insert_rowid());
        }
    }
    Ok(last_part)
}

/// Inserts the logs; returns the last log row.
fn insert_logs(interner: &mut Interner<'_>, logs: &[LogRecord]) -> Result<Option<i64>, StoreError> {
    let tx = interner.tx;
    let mut last_log = None;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO logs (time_ns, observed_ns, service_id, resource_id, scope_id,
                severity_number, severity_text, body, attributes, trace_id, span_id,
                correlation_id, flags, event_name)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for log in logs {
            let service_id = interner.service(&log.resource.service)?;
            let resource_id = interner.resource(service_id, &log.resource)?;
            let scope_id = interner.scope(&log.scope_name, "")?;
            insert.execute(params![
                log.time_ns,
                log.observed_ns,
                service_id,
                resource_id,
                scope_id,
                log.severity_number,
                log.severity_text,
                log.body,
                log.attributes,
                log.trace_id.as_ref().map(|t| &t[..]),
                log.span_id.as_ref().map(|s| &s[..]),
                log.correlation_id,
                log.flags,
                log.event_name,
            ])?;
            last_log = Some(tx.last_insert_rowid());
        }
    }
    Ok(last_log)
}

/// Most spans have no status message, trace state, events or links: store NULL, not bytes.
fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn non_empty_list(json: &str) -> Option<&str> {
    (json != "[]").then_some(json)
}

/// Interns names into small integer IDs within the writer's transaction.
struct Interner<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    services: &'a mut HashMap<String, i64>,
    operations: &'a mut HashMap<(i64, String, i32), i64>,
    resources: &'a mut HashMap<String, i64>,
    scopes: &'a mut HashMap<(String, String), i64>,
}

impl Interner<'_> {
    fn service(&mut self, name: &str) -> Result<i64, StoreError> {
        if let Some(id) = self.services.get(name) {
            return Ok(*id);
        }
        self.tx
            .execute("INSERT OR IGNORE INTO services (name) VALUES (?1)", [name])?;
        let id = self
            .tx
            .query_row("SELECT id FROM services WHERE name = ?1", [name], |r| {
                r.get(0)
            })?;
        self.services.insert(name.to_string(), id);
        Ok(id)
    }

    fn operation(&mut self, service_id: i64, name: &str, kind: i32) -> Result<i64, StoreError> {
        let key = (service_id, name.to_string(), kind);
        if let Some(id) = self.operations.get(&key) {
            return Ok(*id);
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO operations (service_id, name, kind) VALUES (?1, ?2, ?3)",
            params![service_id, name, kind],
        )?;
        let id = self.tx.query_row(
            "SELECT id FROM operations WHERE service_id = ?1 AND name = ?2 AND kind = ?3",
            params![service_id, name, kind],
            |r| r.get(0),
        )?;
        self.operations.insert(key, id);
        Ok(id)
    }

    fn resource(&mut self, service_id: i64, resource: &Resource) -> Result<i64, StoreError> {
        if let Some(id) = self.resources.get(&resource.attributes) {
            return Ok(*id);
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO resources (service_id, attributes) VALUES (?1, ?2)",
            params![service_id, resource.attributes],
        )?;
        let id = self.tx.query_row(
            "SELECT id FROM resources WHERE attributes = ?1",
            [&resource.attributes],
            |r| r.get(0),
        )?;
        self.resources.insert(resource.attributes.clone(), id);
        Ok(id)
    }

    fn scope(&mut self, name: &str, version: &str) -> Result<i64, StoreError> {
        let key = (name.to_string(), version.to_string());
        if let Some(id) = self.scopes.get(&key) {
            return Ok(*id);
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO scopes (name, version) VALUES (?1, ?2)",
            params![name, version],
        )?;
        let id = self.tx.query_row(
            "SELECT id FROM scopes WHERE name = ?1 AND version = ?2",
            params![name, version],
            |r| r.get(0),
        )?;
        self.scopes.insert(key, id);
        Ok(id)
    }
}
