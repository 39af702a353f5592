//! Rows into records (sharing one `Arc<Resource>` per resource row), a trace's spans by
//! its summary rows, and tag matching for trace search.

use std::collections::HashMap;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{LogRecord, Resource, STATUS_ERROR, SpanKind, SpanRecord, TraceId};
use crate::store::{SpanFilter, StoreError, StoredLog};

/// Builds records from rows, sharing one `Arc<Resource>` per resource row.
#[derive(Default)]
pub(super) struct ResourceCache(HashMap<i64, Arc<Resource>>);

impl ResourceCache {
    pub(super) fn get(&mut self, id: i64, service: String, attributes: String) -> Arc<Resource> {
        self.0
            .entry(id)
            .or_insert_with(|| {
                Arc::new(Resource {
                    service,
                    attributes,
                })
            })
            .clone()
    }
}

pub(super) const SPAN_SELECT: &str =
    "SELECT s.trace_id, s.span_id, s.parent_span_id, sv.name, s.resource_id,
        r.attributes, sc.name, sc.version, o.name, s.kind, s.start_ns, s.duration_ns,
        s.status_code, s.status_message, s.attributes, s.events, s.links, s.correlation_id,
        s.trace_state, s.flags
    FROM spans s
    JOIN services sv ON sv.id = s.service_id
    JOIN operations o ON o.id = s.op_id
    JOIN resources r ON r.id = s.resource_id
    JOIN scopes sc ON sc.id = s.scope_id";

pub(super) fn span_from_row(
    row: &rusqlite::Row<'_>,
    cache: &mut ResourceCache,
) -> rusqlite::Result<SpanRecord> {
    let start_ns: i64 = row.get(10)?;
    let duration_ns: i64 = row.get(11)?;
    Ok(SpanRecord {
        trace_id: blob_id(row.get_ref(0)?.as_blob()?),
        span_id: blob_id(row.get_ref(1)?.as_blob()?),
        parent_span_id: row.get::<_, Option<Vec<u8>>>(2)?.map(|b| blob_id::<8>(&b)),
        resource: cache.get(row.get(4)?, row.get(3)?, row.get(5)?),
        scope_name: row.get(6)?,
        scope_version: row.get(7)?,
        name: row.get(8)?,
        kind: SpanKind::from_i32(row.get(9)?),
        start_ns,
        end_ns: start_ns.saturating_add(duration_ns),
        status_code: row.get(12)?,
        status_message: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
        attributes: row.get(14)?,
        events: row
            .get::<_, Option<String>>(15)?
            .unwrap_or_else(|| "[]".into()),
        links: row
            .get::<_, Option<String>>(16)?
            .unwrap_or_else(|| "[]".into()),
        correlation_id: row.get(17)?,
        trace_state: row.get::<_, Option<String>>(18)?.unwrap_or_default(),
        flags: row.get(19)?,
    })
}

pub(super) const LOG_SELECT: &str = "SELECT l.id, l.time_ns, l.observed_ns, sv.name, l.resource_id,
        r.attributes, sc.name, l.severity_number, l.severity_text, l.body, l.attributes,
        l.trace_id, l.span_id, l.correlation_id, l.flags, l.event_name
    FROM logs l
    JOIN services sv ON sv.id = l.service_id
    JOIN resources r ON r.id = l.resource_id
    JOIN scopes sc ON sc.id = l.scope_id";

pub(super) fn log_from_row(
    row: &rusqlite::Row<'_>,
    cache: &mut ResourceCache,
) -> rusqlite::Result<StoredLog> {
    Ok(StoredLog {
        id: row.get(0)?,
        record: LogRecord {
            time_ns: row.get(1)?,
            observed_ns: row.get(2)?,
            resource: cache.get(row.get(4)?, row.get(3)?, row.get(5)?),
            scope_name: row.get(6)?,
            severity_number: row.get(7)?,
            severity_text: row.get(8)?,
            body: row.get(9)?,
            attributes: row.get(10)?,
            trace_id: row
                .get::<_, Option<Vec<u8>>>(11)?
                .map(|b| blob_id::<16>(&b)),
            span_id: row.get::<_, Option<Vec<u8>>>(12)?.map(|b| blob_id::<8>(&b)),
            correlation_id: row.get(13)?,
            flags: row.get(14)?,
            event_name: row.get(15)?,
        },
    })
}

/// Copies a stored ID blob into a fixed array (short blobs are zero-padded; we wrote them).
pub(super) fn blob_id<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut id = [0u8; N];
    let n = b.len().min(N);
    id[..n].copy_from_slice(&b[..n]);
    id
}

pub(super) fn service_id(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row("SELECT id FROM services WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

pub(super) fn read_traces(
    conn: &Connection,
    ids: &[TraceId],
) -> Result<Vec<(TraceId, Vec<SpanRecord>)>, StoreError> {
    let mut parts_stmt = conn.prepare_cached(
        "SELECT first_span, last_span FROM trace_parts WHERE trace_id = ?1 AND span_count > 0",
    )?;
    let mut spans_stmt = conn.prepare_cached(&format!(
        "{SPAN_SELECT} WHERE s.id BETWEEN ?1 AND ?2 AND s.trace_id = ?3"
    ))?;
    let mut cache = ResourceCache::default();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let ranges = parts_stmt
            .query_map([&id[..]], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut spans = Vec::new();
        for (first, last) in ranges {
            let rows = spans_stmt.query_map(params![first, last, &id[..]], |r| {
                span_from_row(r, &mut cache)
            })?;
            for span in rows {
                spans.push(span?);
            }
        }
        if spans.is_empty() {
            continue;
        }
        spans.sort_by_key(|s| (s.start_ns, s.span_id));
        out.push((*id, spans));
    }
    Ok(out)
}

/// Does a span row meet every filter? Attribute values compare as text.
pub(super) fn filters_match(
    filters: &[SpanFilter],
    attributes: &str,
    resource: &str,
    status_code: i32,
    kind: i32,
) -> bool {
    let parse = |s: &str| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).unwrap_or_default()
    };
    let (mut attrs, mut res) = (None, None);
    filters.iter().all(|f| match f {
        SpanFilter::Error(e) => (status_code == STATUS_ERROR) == *e,
        SpanFilter::Kind(k) => SpanKind::from_i32(kind) == *k,
        SpanFilter::StatusCode(c) => status_code == *c,
        SpanFilter::Attribute { key, value } => attrs
            .get_or_insert_with(|| parse(attributes))
            .get(key)
            .cloned()
            .or_else(|| res.get_or_insert_with(|| parse(resource)).get(key).cloned())
            .is_some_and(|v| match v {
                serde_json::Value::String(s) => s == *value,
                other => value.as_str() == other.to_string().as_str(),
            }),
    })
}
