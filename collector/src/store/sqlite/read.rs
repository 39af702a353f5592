//! Rows into records (names from the shared dictionary, one `Arc<Resource>` per resource),
//! a trace's parts in one segment (through the open segment's map in memory, or the sealed
//! segment's index), and tag matching for trace search.

use rusqlite::{Connection, params};

use super::dictionary::Names;
use super::key_blocks::{self, KeyTable};
use super::open_index::Keys;
use super::segment::{Lookup, Segment};
use crate::model::{LogRecord, STATUS_ERROR, SpanKind, SpanRecord, TraceId};
use crate::store::{SpanFilter, StoreError, StoredLog};

pub(super) const SPAN_SELECT: &str =
    "SELECT s.trace_id, s.span_id, s.parent_span_id, s.service_id, s.resource_id,
        s.scope_id, s.op_id, s.kind, s.start_ns, s.duration_ns, s.status_code,
        s.status_message, s.attributes, s.events, s.links, s.correlation_id, s.trace_state,
        s.flags
    FROM spans s";

pub(super) fn span_from_row(
    row: &rusqlite::Row<'_>,
    names: &Names,
) -> rusqlite::Result<SpanRecord> {
    let start_ns: i64 = row.get(8)?;
    let duration_ns: i64 = row.get(9)?;
    let (scope_name, scope_version) = names.scope(row.get(5)?);
    Ok(SpanRecord {
        trace_id: blob_id(row.get_ref(0)?.as_blob()?),
        span_id: blob_id(row.get_ref(1)?.as_blob()?),
        parent_span_id: row.get::<_, Option<Vec<u8>>>(2)?.map(|b| blob_id::<8>(&b)),
        resource: names.resource(row.get(4)?),
        scope_name: scope_name.to_string(),
        scope_version: scope_version.to_string(),
        name: names.operation(row.get(6)?).to_string(),
        kind: SpanKind::from_i32(row.get(7)?),
        start_ns,
        end_ns: start_ns.saturating_add(duration_ns),
        status_code: row.get(10)?,
        status_message: row.get::<_, Option<String>>(11)?.unwrap_or_default(),
        attributes: row.get(12)?,
        events: row
            .get::<_, Option<String>>(13)?
            .unwrap_or_else(|| "[]".into()),
        links: row
            .get::<_, Option<String>>(14)?
            .unwrap_or_else(|| "[]".into()),
        correlation_id: row.get(15)?,
        trace_state: row.get::<_, Option<String>>(16)?.unwrap_or_default(),
        flags: row.get(17)?,
    })
}

pub(super) const LOG_SELECT: &str = "SELECT l.id, l.time_ns, l.observed_ns, l.service_id,
        l.resource_id, l.scope_id, l.severity_number, l.severity_text, l.body, l.attributes,
        l.trace_id, l.span_id, l.correlation_id, l.flags, l.event_name
    FROM logs l";

/// A log's ID across segments: the segment in the high bits, its row in the low ones (the
/// catalog's own rows, segment 0, keep the IDs a version-2 store gave them).
pub(super) fn log_id(segment: i64, row: i64) -> i64 {
    (segment << 40) | row
}

pub(super) fn log_from_row(
    row: &rusqlite::Row<'_>,
    segment: i64,
    names: &Names,
) -> rusqlite::Result<StoredLog> {
    let (scope_name, _) = names.scope(row.get(5)?);
    Ok(StoredLog {
        id: log_id(segment, row.get(0)?),
        record: LogRecord {
            time_ns: row.get(1)?,
            observed_ns: row.get(2)?,
            resource: names.resource(row.get(4)?),
            scope_name: scope_name.to_string(),
            severity_number: row.get(6)?,
            severity_text: row.get(7)?,
            body: row.get(8)?,
            attributes: row.get(9)?,
            trace_id: row
                .get::<_, Option<Vec<u8>>>(10)?
                .map(|b| blob_id::<16>(&b)),
            span_id: row.get::<_, Option<Vec<u8>>>(11)?.map(|b| blob_id::<8>(&b)),
            correlation_id: row.get(12)?,
            flags: row.get(13)?,
            event_name: row.get(14)?,
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

/// One trace-part row as a summary needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Part {
    pub(super) first_span: i64,
    pub(super) last_span: i64,
    pub(super) span_count: i64,
    pub(super) start_ns: i64,
    pub(super) end_ns: i64,
    pub(super) error: bool,
    pub(super) root: Option<(i64, i64)>,
}

const PART_COLUMNS: &str =
    "first_span, last_span, span_count, start_ns, end_ns, error, root_service_id, root_op_id";

fn part_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Part> {
    Ok(Part {
        first_span: r.get(0)?,
        last_span: r.get(1)?,
        span_count: r.get(2)?,
        start_ns: r.get(3)?,
        end_ns: r.get(4)?,
        error: r.get(5)?,
        root: match (r.get::<_, Option<i64>>(6)?, r.get::<_, Option<i64>>(7)?) {
            (Some(s), Some(o)) => Some((s, o)),
            _ => None,
        },
    })
}

/// The part rowids that may hold an ID: from the open segment's maps (`open`), or a sealed
/// segment's key tables; `None` for a sealed segment of format 1, whose indexes answer in SQL.
fn candidates(
    conn: &Connection,
    segment: &Segment,
    open: Option<Vec<i64>>,
    table: KeyTable,
    key: impl FnOnce(&Keys) -> u64,
) -> Result<Option<Vec<i64>>, StoreError> {
    Ok(match (open, segment.lookup) {
        (Some(parts), _) => Some(parts),
        (None, Lookup::KeyTables) => {
            Some(key_blocks::find(conn, table, key(&segment.keys) as i64)?)
        }
        (None, Lookup::PartIndexes) => None,
    })
}

/// The parts of a trace in one segment.
pub(super) fn trace_parts(
    conn: &Connection,
    segment: &Segment,
    trace: &TraceId,
) -> Result<Vec<Part>, StoreError> {
    let open = segment.index().as_ref().map(|i| i.trace_parts(trace));
    let candidates = candidates(conn, segment, open, KeyTable::Traces, |k| k.trace(trace))?;
    let mut parts = Vec::new();
    match candidates {
        Some(rowids) => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {PART_COLUMNS} FROM trace_parts WHERE id = ?1 AND trace_id = ?2"
            ))?;
            for id in rowids {
                if let Some(p) = stmt
                    .query_map(params![id, &trace[..]], part_from_row)?
                    .next()
                {
                    parts.push(p?);
                }
            }
        }
        None => {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {PART_COLUMNS} FROM trace_parts WHERE trace_id = ?1"
            ))?;
            for p in stmt.query_map([&trace[..]], part_from_row)? {
                parts.push(p?);
            }
        }
    }
    Ok(parts)
}

/// Traces carrying the correlation ID in one segment, with their earliest start there.
pub(super) fn correlated_traces(
    conn: &Connection,
    segment: &Segment,
    correlation: &str,
) -> Result<Vec<(TraceId, i64)>, StoreError> {
    let open = segment
        .index()
        .as_ref()
        .map(|i| i.correlation_parts(correlation));
    let candidates = candidates(conn, segment, open, KeyTable::Correlations, |k| {
        k.correlation(correlation)
    })?;
    let mut out: Vec<(TraceId, i64)> = Vec::new();
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(TraceId, i64)> {
        Ok((blob_id::<16>(r.get_ref(0)?.as_blob()?), r.get(1)?))
    };
    match candidates {
        Some(rowids) => {
            let mut stmt = conn.prepare_cached(
                "SELECT trace_id, start_ns FROM trace_parts WHERE id = ?1 AND correlation_id = ?2",
            )?;
            for id in rowids {
                if let Some(found) = stmt.query_map(params![id, correlation], row)?.next() {
                    let (trace, start) = found?;
                    match out.iter_mut().find(|(t, _)| *t == trace) {
                        Some(seen) => seen.1 = seen.1.min(start),
                        None => out.push((trace, start)),
                    }
                }
            }
        }
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT trace_id, min(start_ns) FROM trace_parts WHERE correlation_id = ?1
                 GROUP BY trace_id",
            )?;
            for found in stmt.query_map([correlation], row)? {
                out.push(found?);
            }
        }
    }
    Ok(out)
}

/// The spans of a trace in one segment, from its parts' rowid ranges.
pub(super) fn spans_of(
    conn: &Connection,
    parts: &[Part],
    trace: &TraceId,
    names: &Names,
    out: &mut Vec<SpanRecord>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SPAN_SELECT} WHERE s.id BETWEEN ?1 AND ?2 AND s.trace_id = ?3"
    ))?;
    for p in parts.iter().filter(|p| p.span_count > 0) {
        for span in stmt.query_map(params![p.first_span, p.last_span, &trace[..]], |r| {
            span_from_row(r, names)
        })? {
            out.push(span?);
        }
    }
    Ok(())
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
