//! The RED rollups of a segment (`red_rollups`, format 5 on): a batch's cells are added to
//! the rows of their keys in the transaction that writes its spans, and RED reads them per
//! bucket instead of the spans. A segment of an older format has none: RED reads its spans.
//!
//! Sealing (format 6 on) merges them into rows of a minute, ten minutes and an hour
//! (`red_tiers`, [`TIER_BUCKETS`]), so that RED over a day in steps of whole minutes reads a
//! sixth of the rows, of whole 10 minutes a 60th, of whole hours a 360th. A sealed segment takes no more spans, so its tiers never need updating; the open
//! segment is always read per 10 s bucket.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Transaction, params, params_from_iter};

use super::encoding::SpanRow;
use super::packed::Correlation;
use super::write::RowIds;
use crate::model::{SpanKind, StatusCode};
use crate::rollup::{RedCell, RedCells, RedKey, Sketch, TIER_BUCKETS, bucket_of, http_class};
use crate::store::StoreError;

/// Buckets behind the newest whose cells [`RollupCache`] keeps: spans arrive within seconds
/// of their start, so a key comes back in the next commits and rarely after a minute.
const CACHED_BUCKETS: i64 = 6;

/// The open segment's recent cells as stored, so that a key seen again in the next commit is
/// merged in memory rather than read back and decoded. Emptied when the segment changes and
/// after a failed commit (it may hold what was rolled back).
#[derive(Default)]
pub(super) struct RollupCache {
    cells: foldhash::HashMap<RedKey, RedCell>,
    newest: i64,
}

impl RollupCache {
    /// Keeps only the last [`CACHED_BUCKETS`] buckets once a newer one is seen.
    fn advance(&mut self, bucket: i64) {
        if bucket > self.newest {
            self.newest = bucket;
            let oldest = bucket - CACHED_BUCKETS;
            self.cells.retain(|k, _| k.bucket >= oldest);
        }
    }
}

/// Adds the spans' cells to the segment's rollups, in the caller's transaction: per key, the
/// stored cell (from the cache, or read) plus the batch's, written back whole.
pub(super) fn add(
    tx: &Transaction<'_>,
    spans: &[SpanRow],
    ids: &[RowIds],
    cache: &mut RollupCache,
) -> Result<(), StoreError> {
    let mut cells = RedCells::default();
    for (row, ids) in spans.iter().zip(ids) {
        let span = &row.span;
        let key = RedKey {
            service: ids.service,
            bucket: bucket_of(span.start_ns),
            op: ids.op,
            kind: span.kind,
            resource: ids.resource,
            status: span.status_code,
            http_class: http_class(row.http_status),
        };
        cells.add(key, span.duration_ns(), row.http_status);
    }
    let mut read = tx.prepare_cached(
        "SELECT requests, errors, throttled, latency FROM red_rollups
         WHERE service_id = ?1 AND bucket = ?2 AND op_id = ?3 AND kind = ?4
           AND resource_id = ?5 AND status_code = ?6 AND http_class = ?7",
    )?;
    let mut write = tx.prepare_cached(
        "INSERT OR REPLACE INTO red_rollups (service_id, bucket, op_id, kind, resource_id,
            status_code, http_class, requests, errors, throttled, latency)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for (key, mut cell) in cells.0 {
        let k = key_values(&key);
        let stored = match cache.cells.remove(&key) {
            Some(cached) => Some(cached),
            None => read
                .query_row(params_from_iter(&k), |r| {
                    let latency = r.get_ref(3)?.as_blob()?.to_vec();
                    let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
                    Ok((n(0)?, n(1)?, n(2)?, latency))
                })
                .optional()?
                .map(|(requests, errors, throttled, latency)| {
                    Sketch::decode(&latency).map(|latency| RedCell {
                        requests,
                        errors,
                        throttled,
                        latency,
                    })
                })
                .transpose()?,
        };
        // The batch's few durations into the stored cell's many bins, not the other way
        // round: a merge walks the bins of the cell merged in.
        if let Some(mut stored) = stored {
            stored.merge(&cell);
            cell = stored;
        }
        let counts = [cell.requests, cell.errors, cell.throttled].map(|n| Value::Integer(n as i64));
        let latency = Value::Blob(cell.latency.encode());
        write.execute(params_from_iter(
            k.into_iter().chain(counts).chain([latency]),
        ))?;
        cache.advance(key.bucket);
        if key.bucket >= cache.newest - CACHED_BUCKETS {
            cache.cells.insert(key, cell);
        }
    }
    Ok(())
}

/// A key's columns, in the order of the table's primary key.
fn key_values(key: &RedKey) -> [Value; 7] {
    [
        key.service,
        key.bucket,
        key.op,
        key.kind as i64,
        key.resource,
        key.status as i64,
        i64::from(key.http_class),
    ]
    .map(Value::Integer)
}

/// Writes the segment's tiers from its 10 s rows, in the sealing transaction (replacing any
/// left by a seal that did not finish). A tier row's `bucket` is the first 10 s bucket it
/// covers, so it falls in the same RED step as its buckets whenever steps start and end on
/// whole tier widths.
pub(super) fn write_tiers(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("DELETE FROM red_tiers", [])?;
    let mut tiers: [HashMap<RedKey, RedCell>; TIER_BUCKETS.len()] = Default::default();
    {
        let mut stmt = tx.prepare(
            "SELECT service_id, bucket, op_id, kind, resource_id, status_code, http_class,
                    requests, errors, throttled, latency FROM red_rollups",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key = RedKey {
                service: r.get(0)?,
                bucket: r.get(1)?,
                op: r.get(2)?,
                kind: SpanKind::from_i32(r.get(3)?),
                resource: r.get(4)?,
                status: StatusCode::from_i32(r.get(5)?),
                http_class: r.get(6)?,
            };
            let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
            let cell = RedCell {
                requests: n(7)?,
                errors: n(8)?,
                throttled: n(9)?,
                latency: Sketch::decode(r.get_ref(10)?.as_blob()?)?,
            };
            for (tier, width) in tiers.iter_mut().zip(TIER_BUCKETS) {
                tier.entry(tier_key(&key, width)).or_default().merge(&cell);
            }
        }
    }
    let mut write = tx.prepare(
        "INSERT INTO red_tiers (width, service_id, bucket, op_id, kind, resource_id,
            status_code, http_class, requests, errors, throttled, latency)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for (tier, width) in tiers.iter().zip(TIER_BUCKETS) {
        for (key, cell) in tier {
            let counts =
                [cell.requests, cell.errors, cell.throttled].map(|n| Value::Integer(n as i64));
            let latency = Value::Blob(cell.latency.encode());
            write.execute(params_from_iter(
                [Value::Integer(width)]
                    .into_iter()
                    .chain(key_values(key))
                    .chain(counts)
                    .chain([latency]),
            ))?;
        }
    }
    Ok(())
}

/// Takes the spans with rowids up to `last` out of the segment's rollups, and out of its
/// tiers when its format has them, in the caller's transaction, before retention deletes
/// them: RED then counts what is stored. The HTTP status is read from the attributes by the
/// rule the writer used ([`crate::model::Attributes::http_status`]), so each span leaves the
/// cell it was added to.
pub(super) fn subtract_spans(
    tx: &Transaction<'_>,
    last: i64,
    tiers: bool,
    names: &super::dictionary::Names,
) -> Result<(), StoreError> {
    let mut cells = RedCells::default();
    {
        let mut stmt = tx.prepare(
            "SELECT service_id, op_id, kind, resource_id, status_code, start_ns, duration_ns,
                    attributes FROM spans WHERE id <= ?1",
        )?;
        let mut rows = stmt.query([last])?;
        while let Some(r) = rows.next()? {
            let http = super::packed::stored(r.get_ref(7)?, names, Correlation::Unread)
                .ok()
                .and_then(|a| a.http_status());
            let key = RedKey {
                service: r.get(0)?,
                bucket: bucket_of(r.get(5)?),
                op: r.get(1)?,
                kind: SpanKind::from_i32(r.get(2)?),
                resource: r.get(3)?,
                status: StatusCode::from_i32(r.get(4)?),
                http_class: http_class(http),
            };
            cells.add(key, r.get(6)?, http);
        }
    }
    subtract_cells(tx, None, &cells.0)?;
    if tiers {
        for width in TIER_BUCKETS {
            let mut tier = RedCells::default();
            for (key, cell) in &cells.0 {
                tier.0.entry(tier_key(key, width)).or_default().merge(cell);
            }
            subtract_cells(tx, Some(width), &tier.0)?;
        }
    }
    Ok(())
}

/// Subtracts each cell from its stored row in `red_rollups` (`width` `None`) or in
/// `red_tiers`; a row left without requests goes.
fn subtract_cells(
    tx: &Transaction<'_>,
    width: Option<i64>,
    cells: &foldhash::HashMap<RedKey, RedCell>,
) -> Result<(), StoreError> {
    let (table, tier) = match width {
        None => ("red_rollups", ""),
        Some(_) => ("red_tiers", " AND width = ?8"),
    };
    let key = format!(
        "service_id = ?1 AND bucket = ?2 AND op_id = ?3 AND kind = ?4 AND resource_id = ?5
         AND status_code = ?6 AND http_class = ?7{tier}"
    );
    let mut read = tx.prepare(&format!(
        "SELECT requests, errors, throttled, latency FROM {table} WHERE {key}"
    ))?;
    let mut update = tx.prepare(&format!(
        "UPDATE {table} SET requests = ?9, errors = ?10, throttled = ?11, latency = ?12
         WHERE {key}"
    ))?;
    let mut delete = tx.prepare(&format!("DELETE FROM {table} WHERE {key}"))?;
    for (k, gone) in cells {
        let mut params: Vec<Value> = key_values(k).into();
        if let Some(w) = width {
            params.push(Value::Integer(w));
        }
        let stored = read
            .query_row(params_from_iter(&params), |r| {
                let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
                Ok((n(0)?, n(1)?, n(2)?, r.get_ref(3)?.as_blob()?.to_vec()))
            })
            .optional()?;
        let Some((requests, errors, throttled, latency)) = stored else {
            continue;
        };
        let mut cell = RedCell {
            requests,
            errors,
            throttled,
            latency: Sketch::decode(&latency)?,
        };
        cell.subtract(gone);
        if cell.requests == 0 {
            delete.execute(params_from_iter(&params))?;
            continue;
        }
        // `?8` is the width: a `red_rollups` statement has none, so its values start at 9
        // all the same (SQLite numbers parameters as written, gaps allowed).
        if width.is_none() {
            params.push(Value::Null);
        }
        let counts = [cell.requests, cell.errors, cell.throttled].map(|n| Value::Integer(n as i64));
        params.extend(counts);
        params.push(Value::Blob(cell.latency.encode()));
        update.execute(params_from_iter(&params))?;
    }
    Ok(())
}

/// The key of the tier row of `width` buckets that a 10 s cell's key falls in.
fn tier_key(key: &RedKey, width: i64) -> RedKey {
    RedKey {
        bucket: key.bucket - key.bucket.rem_euclid(width),
        ..*key
    }
}

/// The tier a scan of a sealed segment with tiers reads: the widest whose rows each fall
/// inside one step (steps of whole widths from a whole width), else 1 (the 10 s rows).
pub(super) fn tier_for(first: i64, per_step: i64) -> i64 {
    TIER_BUCKETS
        .into_iter()
        .rev()
        .find(|w| first.rem_euclid(*w) == 0 && per_step % w == 0)
        .unwrap_or(1)
}

/// What RED reads of one segment's rollups.
pub(super) struct RollupScan<'a> {
    pub(super) service: i64,
    /// Buckets `first..end`.
    pub(super) buckets: (i64, i64),
    /// Buckets per row read: 1 (`red_rollups`), or one of [`TIER_BUCKETS`] (`red_tiers`).
    pub(super) width: i64,
    pub(super) kinds: &'a [SpanKind],
    pub(super) ops: Option<&'a [i64]>,
    pub(super) resources: Option<&'a [i64]>,
}

/// One stored row as read: its bucket, operation, counts (requests, errors, throttled) and
/// encoded sketch.
pub(super) struct StoredRow<'r> {
    pub(super) bucket: i64,
    pub(super) op: i64,
    pub(super) counts: (u64, u64, u64),
    pub(super) latency: &'r [u8],
}

impl RollupScan<'_> {
    /// Hands each of the segment's rows in the window, for the kinds, operations and
    /// resources asked, to `each` (the sketch as stored: merged without building it first).
    pub(super) fn read(
        &self,
        conn: &rusqlite::Connection,
        mut each: impl FnMut(StoredRow<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        const COLUMNS: &str =
            "bucket, op_id, kind, resource_id, requests, errors, throttled, latency";
        let mut stmt = if self.width == 1 {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM red_rollups
                 WHERE service_id = ?1 AND bucket >= ?2 AND bucket < ?3 AND ?4 = 1"
            ))?
        } else {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM red_tiers
                 WHERE width = ?4 AND service_id = ?1 AND bucket >= ?2 AND bucket < ?3"
            ))?
        };
        let (first, end) = self.buckets;
        let mut rows = stmt.query(params![self.service, first, end, self.width])?;
        while let Some(r) = rows.next()? {
            let (op, kind, resource): (i64, i32, i64) = (r.get(1)?, r.get(2)?, r.get(3)?);
            if !(self.kinds.is_empty() || self.kinds.iter().any(|k| *k as i32 == kind))
                || self.ops.is_some_and(|ops| !ops.contains(&op))
                || self.resources.is_some_and(|ids| !ids.contains(&resource))
            {
                continue;
            }
            let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
            each(StoredRow {
                bucket: r.get(0)?,
                op,
                counts: (n(4)?, n(5)?, n(6)?),
                latency: r.get_ref(7)?.as_blob()?,
            })?;
        }
        Ok(())
    }
}
