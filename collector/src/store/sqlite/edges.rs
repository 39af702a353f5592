//! The edge rollups of a segment (`edge_rollups`, format 7 on): the calls the writer's
//! [`EdgeMatcher`] counts for a batch are added to the rows of their keys in the
//! transaction that writes the batch, in the segment open then; sealing merges them into
//! rows of a minute, ten minutes and an hour (`edge_tiers`). The dependencies read the rows
//! covering their window, coarsest first ([`crate::rollup::tier_cover`]).
//!
//! After a restart (or a failed commit, whose cells the matcher counted but the store did
//! not keep), [`replay`] rebuilds the matcher from the batches of its last generations.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use super::dictionary::Names;
use super::query::{PACKED_COLUMN, PROTOCOL_COLUMN};
use super::segment::Segment;
use crate::model::{SpanId, StatusCode, TraceId};
use crate::rollup::edges::{
    EdgeCell, EdgeCells, EdgeMatcher, EdgeSpan, EdgeTotals, add_cell, replay_from,
};
use crate::rollup::{Sketch, TIER_BUCKETS, tier_cover};
use crate::store::StoreError;

/// Adds a batch's cells to the segment's rows, in the caller's transaction: per key, the
/// stored cell plus the batch's, written back whole.
pub(super) fn add(
    tx: &Transaction<'_>,
    cells: &EdgeCells<u32>,
    matcher: &EdgeMatcher<u32>,
) -> Result<(), StoreError> {
    if cells.is_empty() {
        return Ok(());
    }
    let mut read = tx.prepare_cached(
        "SELECT calls, errors, latency FROM edge_rollups
         WHERE bucket = ?1 AND caller_id = ?2 AND callee_id = ?3 AND protocol = ?4",
    )?;
    let mut write = tx.prepare_cached(
        "INSERT OR REPLACE INTO edge_rollups
            (bucket, caller_id, callee_id, protocol, calls, errors, latency)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (key, cell) in cells {
        let protocol = matcher.protocol(key.protocol);
        let k = params![key.bucket, key.caller, key.callee, protocol];
        let stored = read
            .query_row(k, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .optional()?;
        let mut total = cell.clone();
        if let Some((calls, errors, latency)) = stored {
            total.calls += calls as u64;
            total.errors += errors as u64;
            total.latency.merge_encoded(&latency)?;
        }
        write.execute(params![
            key.bucket,
            key.caller,
            key.callee,
            protocol,
            total.calls as i64,
            total.errors as i64,
            total.latency.encode()
        ])?;
    }
    Ok(())
}

/// One stored row's key, with its protocol as text.
type RowKey = (i64, i64, i64, String);

/// Writes the segment's edge tiers from its 10 s rows, in the sealing transaction (replacing
/// any left by a seal that did not finish); a tier row's `bucket` is the first it covers.
pub(super) fn write_tiers(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("DELETE FROM edge_tiers", [])?;
    let mut tiers: [BTreeMap<RowKey, EdgeCell>; TIER_BUCKETS.len()] = Default::default();
    {
        let mut stmt = tx.prepare(
            "SELECT bucket, caller_id, callee_id, protocol, calls, errors, latency
             FROM edge_rollups",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let bucket: i64 = r.get(0)?;
            let cell = EdgeCell {
                calls: r.get::<_, i64>(4)? as u64,
                errors: r.get::<_, i64>(5)? as u64,
                latency: Sketch::decode(r.get_ref(6)?.as_blob()?)?,
            };
            let (caller, callee, protocol): (i64, i64, String) = (r.get(1)?, r.get(2)?, r.get(3)?);
            for (tier, width) in tiers.iter_mut().zip(TIER_BUCKETS) {
                let key = (
                    bucket - bucket.rem_euclid(width),
                    caller,
                    callee,
                    protocol.clone(),
                );
                tier.entry(key).or_default().merge(&cell);
            }
        }
    }
    let mut write = tx.prepare(
        "INSERT INTO edge_tiers
            (width, bucket, caller_id, callee_id, protocol, calls, errors, latency)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (tier, width) in tiers.iter().zip(TIER_BUCKETS) {
        for ((bucket, caller, callee, protocol), cell) in tier {
            write.execute(params![
                width,
                bucket,
                caller,
                callee,
                protocol,
                cell.calls as i64,
                cell.errors as i64,
                cell.latency.encode()
            ])?;
        }
    }
    Ok(())
}

/// Adds the segment's rows of buckets `first..end` to `totals`: from its tiers where whole
/// tier rows fit (`tiers`: they are written), else its 10 s rows.
pub(super) fn read(
    conn: &Connection,
    (first, end): (i64, i64),
    tiers: bool,
    names: &Names,
    totals: &mut EdgeTotals,
) -> Result<(), StoreError> {
    let widths: &[i64] = if tiers { &TIER_BUCKETS } else { &[] };
    for (width, lo, hi) in tier_cover(first, end, widths) {
        let mut stmt = if width == 1 {
            conn.prepare_cached(
                "SELECT caller_id, callee_id, protocol, calls, errors, latency FROM edge_rollups
                 WHERE bucket >= ?1 AND bucket < ?2 AND ?3 = 1",
            )?
        } else {
            conn.prepare_cached(
                "SELECT caller_id, callee_id, protocol, calls, errors, latency FROM edge_tiers
                 WHERE width = ?3 AND bucket >= ?1 AND bucket < ?2",
            )?
        };
        let mut rows = stmt.query(params![lo, hi, width])?;
        while let Some(r) = rows.next()? {
            let cell = EdgeCell {
                calls: r.get::<_, i64>(3)? as u64,
                errors: r.get::<_, i64>(4)? as u64,
                latency: Sketch::decode(r.get_ref(5)?.as_blob()?)?,
            };
            let (caller, callee) = (names.service(r.get(0)?), names.service(r.get(1)?));
            add_cell(totals, (caller, callee, r.get_ref(2)?.as_str()?), &cell);
        }
    }
    Ok(())
}

/// A fresh matcher fed, without counting, the batches of the last generations
/// ([`replay_from`] the newest batch's arrival), from the newest segments of format 7 on
/// back to the one holding the first of them.
pub(super) fn replay(
    segments: &[Arc<Segment>],
    names: &Names,
) -> Result<EdgeMatcher<u32>, StoreError> {
    let mut matcher = EdgeMatcher::default();
    let mut files = Vec::new();
    let mut from = None;
    for segment in segments.iter().rev().filter(|s| !s.is_retired()) {
        if !segment.edges {
            break;
        }
        let conn = Connection::open_with_flags(
            &segment.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch("PRAGMA busy_timeout = 10000;")?;
        let (oldest, newest): (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT min(received_ns), max(received_ns) FROM batches",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (Some(oldest), Some(newest)) = (oldest, newest) else {
            continue;
        };
        let horizon = *from.get_or_insert(replay_from(newest));
        files.push(conn);
        if oldest < horizon {
            break;
        }
    }
    let Some(horizon) = from else {
        return Ok(matcher);
    };
    let mut cells = EdgeCells::default();
    for conn in files.iter().rev() {
        replay_segment(conn, (horizon, names), &mut matcher, &mut cells)?;
        cells.clear();
    }
    Ok(matcher)
}

/// Feeds the matcher the segment's batches from the first that arrived at `horizon` or
/// later.
fn replay_segment(
    conn: &Connection,
    (horizon, names): (i64, &Names),
    matcher: &mut EdgeMatcher<u32>,
    cells: &mut EdgeCells<u32>,
) -> Result<(), StoreError> {
    let mut batches = conn.prepare(
        "SELECT received_ns, last_span FROM batches
         WHERE id >= (SELECT min(id) FROM batches WHERE received_ns >= ?1) ORDER BY id",
    )?;
    let mut after: i64 = conn
        .query_row(
            "SELECT last_span FROM batches
             WHERE id < (SELECT min(id) FROM batches WHERE received_ns >= ?1)
               AND last_span IS NOT NULL ORDER BY id DESC LIMIT 1",
            [horizon],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    let mut spans = conn.prepare(&format!(
        "SELECT s.trace_id, s.span_id, s.parent_span_id, s.service_id, s.start_ns,
                s.duration_ns, s.status_code, s.links, {PROTOCOL_COLUMN}, {PACKED_COLUMN}
         FROM spans s WHERE s.id > ?1 AND s.id <= ?2 ORDER BY s.id"
    ))?;
    let list: Vec<(i64, Option<i64>)> = batches
        .query_map([horizon], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (received_ns, last_span) in list {
        let mut rows = Vec::new();
        if let Some(last) = last_span {
            let mut q = spans.query(params![after, last])?;
            while let Some(r) = q.next()? {
                rows.push(ReplayedSpan::read(r, names)?);
            }
            after = last;
        }
        let batch: Vec<EdgeSpan<'_, u32>> = rows.iter().filter_map(ReplayedSpan::edge).collect();
        matcher.observe(received_ns, &batch, cells);
    }
    Ok(())
}

/// A stored span as the matcher reads it.
struct ReplayedSpan {
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent: Option<Vec<u8>>,
    service: i64,
    start_ns: i64,
    duration_ns: i64,
    error: bool,
    link: Option<(TraceId, SpanId)>,
    protocol: Option<String>,
}

impl ReplayedSpan {
    fn read(r: &rusqlite::Row<'_>, names: &Names) -> rusqlite::Result<Self> {
        // Packed attributes (format 8) give the protocol by the writer's rule; JSON ones
        // gave it in SQL. Unreadable ones count as none, as `json_extract` reads damaged JSON.
        let protocol = match r.get_ref(9)?.as_blob_or_null()? {
            Some(packed) => {
                super::packed::unpack(packed, names, super::packed::Correlation::Unread)
                    .ok()
                    .and_then(|a| a.protocol().map(std::borrow::Cow::into_owned))
            }
            None => r.get(8)?,
        };
        Ok(Self {
            trace_id: r.get(0)?,
            span_id: r.get(1)?,
            parent: r.get(2)?,
            service: r.get(3)?,
            start_ns: r.get(4)?,
            duration_ns: r.get(5)?,
            error: r.get::<_, i32>(6)? == StatusCode::Error as i32,
            link: r
                .get_ref(7)?
                .as_str_or_null()?
                .and_then(super::query::first_link),
            protocol,
        })
    }

    /// `None` for a row whose IDs are not of their sizes (a damaged file).
    fn edge(&self) -> Option<EdgeSpan<'_, u32>> {
        Some(EdgeSpan {
            trace_id: self.trace_id.as_slice().try_into().ok()?,
            span_id: self.span_id.as_slice().try_into().ok()?,
            parent_span_id: match &self.parent {
                Some(p) => Some(p.as_slice().try_into().ok()?),
                None => None,
            },
            link: self.link,
            // A service beyond u32's IDs (never in practice) is left out, as by the writer.
            service: u32::try_from(self.service).ok()?,
            start_ns: self.start_ns,
            duration_ns: self.duration_ns,
            error: self.error,
            protocol: self.protocol.as_deref(),
        })
    }
}
