//! Rows into records (names from the shared dictionary, one `Arc<Resource>` per resource),
//! a trace's spans and totals in one segment (found through the open segment's maps in
//! memory, or the sealed segment's key tables or indexes), and tag matching for trace search.

use rusqlite::{Connection, params};

use super::dictionary::Names;
use super::encoding;
use super::key_blocks::{self, KeyTable};
use super::open_index::Keys;
use super::packed::{self, Correlation};
use super::segment::{Lookup, Segment};
use crate::model::{Attributes, LogRecord, SpanKind, SpanRecord, StatusCode, TraceId};
use crate::store::{SpanFilter, StoreError, StoredLog};

/// The columns [`span_from_row`] reads, in its order (a macro, so that SQL built from it
/// is a literal).
macro_rules! span_columns {
    () => {
        "s.trace_id, s.span_id, s.parent_span_id, s.service_id, s.resource_id, s.scope_id,
        s.op_id, s.kind, s.start_ns, s.duration_ns, s.status_code, s.status_message,
        s.attributes, s.events, s.links, s.correlation_id, s.trace_state, s.flags"
    };
}

pub(super) const SPAN_SELECT: &str = concat!("SELECT ", span_columns!(), " FROM spans s");

pub(super) fn span_from_row(
    row: &rusqlite::Row<'_>,
    names: &Names,
) -> rusqlite::Result<SpanRecord> {
    let start_ns: i64 = row.get(8)?;
    let duration_ns: i64 = row.get(9)?;
    let (scope_name, scope_version) = names.scope(row.get(5)?);
    let correlation = row.get_ref(15)?.as_str_or_null()?;
    Ok(SpanRecord {
        trace_id: blob_id(row.get_ref(0)?.as_blob()?),
        span_id: blob_id(row.get_ref(1)?.as_blob()?),
        parent_span_id: row.get::<_, Option<Vec<u8>>>(2)?.map(|b| blob_id::<8>(&b)),
        resource: names.resource(row.get(4)?),
        scope_name,
        scope_version,
        name: names.operation(row.get(6)?).to_string(),
        kind: SpanKind::from_i32(row.get(7)?),
        start_ns,
        end_ns: start_ns.saturating_add(duration_ns),
        status_code: StatusCode::from_i32(row.get(10)?),
        status_message: row.get::<_, Option<String>>(11)?.unwrap_or_default(),
        attributes: attributes_column(row, 12, names, Correlation::Column(correlation))?,
        events: encoding::events(row.get_ref(13)?.as_str_or_null()?)
            .map_err(|e| encoding::damaged(13, e))?,
        links: encoding::links(row.get_ref(14)?.as_str_or_null()?)
            .map_err(|e| encoding::damaged(14, e))?,
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
    let correlation = row.get_ref(12)?.as_str_or_null()?;
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
            attributes: attributes_column(row, 9, names, Correlation::Column(correlation))?,
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

/// An attributes column: a JSON object, or packed (`packed.rs`).
pub(super) fn attributes_column(
    row: &rusqlite::Row<'_>,
    column: usize,
    names: &Names,
    correlation: packed::Correlation<'_>,
) -> rusqlite::Result<Attributes> {
    let value = row.get_ref(column)?;
    packed::stored(value, names, correlation).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(column, value.data_type(), Box::new(e))
    })
}

/// Copies a stored ID blob into a fixed array (short blobs are zero-padded; we wrote them).
pub(super) fn blob_id<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut id = [0u8; N];
    let n = b.len().min(N);
    id[..n].copy_from_slice(&b[..n]);
    id
}

/// What a trace summary needs of a trace's spans in one segment (or in one part).
#[derive(Debug, Clone, Copy)]
pub(super) struct Totals {
    pub(super) span_count: i64,
    pub(super) start_ns: i64,
    pub(super) end_ns: i64,
    pub(super) error: bool,
    pub(super) root: Option<(i64, i64)>,
}

/// One `trace_parts` row (segment formats 1 and 2): a run's span rowids and totals.
#[derive(Debug, Clone, Copy)]
struct Part {
    first_span: i64,
    last_span: i64,
    totals: Totals,
}

const PART_COLUMNS: &str =
    "first_span, last_span, span_count, start_ns, end_ns, error, root_service_id, root_op_id";

fn part_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Part> {
    Ok(Part {
        first_span: r.get(0)?,
        last_span: r.get(1)?,
        totals: Totals {
            span_count: r.get(2)?,
            start_ns: r.get(3)?,
            end_ns: r.get(4)?,
            error: r.get(5)?,
            root: match (r.get::<_, Option<i64>>(6)?, r.get::<_, Option<i64>>(7)?) {
                (Some(s), Some(o)) => Some((s, o)),
                _ => None,
            },
        },
    })
}

/// The rowids that may hold an ID (span rows, or part rows in formats 1 and 2): from the
/// open segment's maps (`open`), or a sealed segment's key tables; `None` for a sealed
/// segment of format 1, whose indexes answer in SQL.
fn candidates(
    conn: &Connection,
    segment: &Segment,
    open: Option<Vec<i64>>,
    table: KeyTable,
    key: impl FnOnce(&Keys) -> u64,
) -> Result<Option<Vec<i64>>, StoreError> {
    Ok(match (open, segment.lookup) {
        (Some(parts), _) => Some(parts),
        (None, Lookup::SpanKeys | Lookup::PartKeys) => {
            Some(key_blocks::find(conn, table, key(&segment.keys) as i64)?)
        }
        (None, Lookup::PartIndexes) => None,
    })
}

/// The spans of a trace in one segment.
pub(super) fn trace_spans(
    conn: &Connection,
    segment: &Segment,
    trace: &TraceId,
    names: &Names,
    out: &mut Vec<SpanRecord>,
) -> Result<(), StoreError> {
    if segment.lookup.has_parts() {
        let parts = trace_parts(conn, segment, trace)?;
        return spans_of(conn, &parts, trace, names, out);
    }
    let starts = trace_candidates(conn, segment, trace)?.unwrap_or_default();
    const RUN: &str = concat!(
        "SELECT ",
        span_columns!(),
        ", s.id FROM spans s WHERE s.id >= ?1 ORDER BY s.id"
    );
    walk_runs(conn, RUN, starts, trace, |row| {
        out.push(span_from_row(row, names)?);
        Ok(())
    })
}

/// A trace's totals in one segment (none if it has no span there; one per part in formats
/// 1 and 2).
pub(super) fn trace_totals(
    conn: &Connection,
    segment: &Segment,
    trace: &TraceId,
) -> Result<Vec<Totals>, StoreError> {
    if segment.lookup.has_parts() {
        let parts = trace_parts(conn, segment, trace)?;
        return Ok(parts.into_iter().map(|p| p.totals).collect());
    }
    let starts = trace_candidates(conn, segment, trace)?.unwrap_or_default();
    let mut totals = Totals {
        span_count: 0,
        start_ns: i64::MAX,
        end_ns: i64::MIN,
        error: false,
        root: None,
    };
    const RUN: &str = "SELECT s.trace_id, s.start_ns, s.duration_ns, s.status_code,
            s.parent_span_id IS NULL, s.service_id, s.op_id, s.id
        FROM spans s WHERE s.id >= ?1 ORDER BY s.id";
    walk_runs(conn, RUN, starts, trace, |row| {
        let start: i64 = row.get(1)?;
        totals.span_count += 1;
        totals.start_ns = totals.start_ns.min(start);
        totals.end_ns = totals.end_ns.max(start.saturating_add(row.get(2)?));
        totals.error |= StatusCode::from_i32(row.get(3)?) == StatusCode::Error;
        if row.get(4)? && totals.root.is_none() {
            totals.root = Some((row.get(5)?, row.get(6)?));
        }
        Ok(())
    })?;
    Ok(if totals.span_count > 0 {
        vec![totals]
    } else {
        Vec::new()
    })
}

/// Reads a trace's runs from the rowids where they start (segment format 3): each walk goes
/// up from its start and stops at the first row of another trace, so a stale or colliding
/// start costs one row. `sql` takes the start as `?1` and selects `trace_id` first and the
/// rowid last. Runs of one trace written by consecutive commits touch: a start
/// inside what was read already is skipped.
fn walk_runs(
    conn: &Connection,
    sql: &str,
    mut starts: Vec<i64>,
    trace: &TraceId,
    mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    starts.sort_unstable();
    let mut stmt = conn.prepare_cached(sql)?;
    let id_column = stmt.column_count() - 1;
    let mut read_up_to = 0;
    for start in starts {
        if start <= read_up_to {
            continue;
        }
        let mut rows = stmt.query([start])?;
        while let Some(row) = rows.next()? {
            if row.get_ref(0)?.as_blob()? != &trace[..] {
                break;
            }
            read_up_to = row.get(id_column)?;
            each(row)?;
        }
    }
    Ok(())
}

/// The rowids that may hold the trace in one segment (see [`candidates`]).
fn trace_candidates(
    conn: &Connection,
    segment: &Segment,
    trace: &TraceId,
) -> Result<Option<Vec<i64>>, StoreError> {
    let open = segment.index().as_ref().map(|i| i.trace_refs(trace));
    candidates(conn, segment, open, KeyTable::Traces, |k| k.trace(trace))
}

/// The parts of a trace in one segment of format 1 or 2.
fn trace_parts(
    conn: &Connection,
    segment: &Segment,
    trace: &TraceId,
) -> Result<Vec<Part>, StoreError> {
    let mut parts = Vec::new();
    match trace_candidates(conn, segment, trace)? {
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

/// Traces carrying the correlation ID in one segment, with their earliest start there (in
/// format 3: the start of the first span of each run that carries it).
pub(super) fn correlated_traces(
    conn: &Connection,
    segment: &Segment,
    correlation: &str,
) -> Result<Vec<(TraceId, i64)>, StoreError> {
    let open = segment
        .index()
        .as_ref()
        .map(|i| i.correlation_refs(correlation));
    let candidates = candidates(conn, segment, open, KeyTable::Correlations, |k| {
        k.correlation(correlation)
    })?;
    let mut out: Vec<(TraceId, i64)> = Vec::new();
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(TraceId, i64)> {
        Ok((blob_id::<16>(r.get_ref(0)?.as_blob()?), r.get(1)?))
    };
    match candidates {
        Some(rowids) => {
            let table = if segment.lookup.has_parts() {
                "trace_parts"
            } else {
                "spans"
            };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT trace_id, start_ns FROM {table} WHERE id = ?1 AND correlation_id = ?2"
            ))?;
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
fn spans_of(
    conn: &Connection,
    parts: &[Part],
    trace: &TraceId,
    names: &Names,
    out: &mut Vec<SpanRecord>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "{SPAN_SELECT} WHERE s.id BETWEEN ?1 AND ?2 AND s.trace_id = ?3"
    ))?;
    for p in parts.iter().filter(|p| p.totals.span_count > 0) {
        for span in stmt.query_map(params![p.first_span, p.last_span, &trace[..]], |r| {
            span_from_row(r, names)
        })? {
            out.push(span?);
        }
    }
    Ok(())
}

/// Does a span row meet every filter? Attribute values compare as text; the span's
/// attributes (`attributes`: as stored, parsed; `None` when they do not parse) are read only
/// if a filter asks for one.
pub(super) fn filters_match(
    filters: &[SpanFilter],
    attributes: impl Fn() -> Option<Attributes>,
    resource: &Attributes,
    status_code: i32,
    kind: i32,
) -> bool {
    let status = StatusCode::from_i32(status_code);
    let mut attrs = None;
    filters.iter().all(|f| match f {
        SpanFilter::Error(e) => (status == StatusCode::Error) == *e,
        SpanFilter::Kind(k) => SpanKind::from_i32(kind) == *k,
        SpanFilter::StatusCode(c) => status == *c,
        SpanFilter::Attribute { key, value } => {
            // A row that does not parse matches no attribute filter (reading it says why).
            let attrs = attrs.get_or_insert_with(&attributes);
            attrs
                .as_ref()
                .and_then(|a| a.get(key))
                .or_else(|| resource.get(key))
                .is_some_and(|v| v.text() == value.as_str())
        }
    })
}
