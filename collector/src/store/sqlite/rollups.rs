//! The RED rollups of a segment (`red_rollups`, format 5 on): one row per key and 10 s
//! bucket, which RED reads instead of the spans. A segment of an older format has none: RED
//! reads its spans.
//!
//! Formats 5 to 8 rewrote every key a batch touched in the transaction that wrote its spans:
//! some hundred rows and their sketches per commit, and the pages they sit on in the WAL.
//! From format 9 the open segment's new cells wait in memory ([`PendingRed`], in its
//! `OpenIndex`) and are written about once a second ([`flush`]), with the last span row
//! they count in `red_flushed`; RED reads the file's rows and the waiting cells together
//! ([`PendingRed::matching`], checked against `red_flushed` so that a flush in between
//! is neither missed nor counted twice). A stop (even `kill -9`) loses no count: on open
//! the cells of the spans after `red_flushed` are counted again from the spans
//! ([`rebuild_pending`]). Sealing writes what still waits, then the tiers; retention flushes
//! before it takes spans out.
//!
//! Sealing (format 6 on) merges the rows into rows of a minute, ten minutes and an hour
//! (`red_tiers`, [`TIER_BUCKETS`]), so that RED over a day in steps of whole minutes reads a
//! sixth of the rows, of whole 10 minutes a 60th, of whole hours a 360th. A sealed segment
//! takes no more spans, so its tiers never need updating; the open segment is always read
//! per 10 s bucket.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, params, params_from_iter};

use super::dictionary::Names;
use super::encoding::SpanRow;
use super::packed::Correlation;
use super::write::RowIds;
use crate::model::{SpanKind, StatusCode};
use crate::rollup::{RedCell, RedCells, RedKey, Sketch, TIER_BUCKETS, bucket_of, http_class};
use crate::store::StoreError;

/// Buckets behind the newest whose cells [`RollupCache`] keeps: spans arrive within seconds
/// of their start, so a key comes back in the next flushes and rarely after a minute.
const CACHED_BUCKETS: i64 = 6;

/// The open segment's recent rows as stored, so that a key flushed again is merged in
/// memory rather than read back and decoded. Emptied when the segment changes and after
/// retention took spans out (it may hold what they counted).
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

    /// Remembers the rows a committed flush wrote.
    pub(super) fn flushed(&mut self, rows: Vec<(RedKey, RedCell)>) {
        for (key, cell) in rows {
            self.advance(key.bucket);
            if key.bucket >= self.newest - CACHED_BUCKETS {
                self.cells.insert(key, cell);
            }
        }
    }
}

/// The cells of the open segment's committed spans that `red_rollups` does not hold yet.
#[derive(Debug, Default)]
pub(super) struct PendingRed {
    cells: RedCells,
    /// The last span row `red_rollups` counts, as `red_flushed` says; `None` in a segment of
    /// a format before 9, whose rows hold every commit's cells (none wait).
    flushed: Option<i64>,
    /// The last span row counted, here or there.
    counted: i64,
}

impl PendingRed {
    /// A new segment's: nothing counted yet.
    pub(super) fn new() -> Self {
        Self {
            flushed: Some(0),
            ..Self::default()
        }
    }

    /// A committed batch's cells; `last_span` is its last span row.
    pub(super) fn add(&mut self, cells: RedCells, last_span: i64) {
        if self.cells.0.is_empty() {
            self.cells = cells;
        } else {
            for (key, cell) in cells.0 {
                self.cells.0.entry(key).or_default().merge(&cell);
            }
        }
        self.counted = self.counted.max(last_span);
    }

    /// Cells waiting.
    pub(super) fn len(&self) -> usize {
        self.cells.0.len()
    }

    /// After a flush of these cells committed: the file holds them.
    pub(super) fn flushed(&mut self) {
        self.cells.0.clear();
        self.flushed = Some(self.counted);
    }

    /// The waiting cells `scan` asks for (its service, buckets, kinds, operations and
    /// resources), and the flush they follow: what the file's `red_flushed` must say for its
    /// rows and these to count each span once.
    pub(super) fn matching(&self, scan: &RollupScan<'_>) -> (Vec<(RedKey, RedCell)>, Option<i64>) {
        let (first, end) = scan.buckets;
        let cells = self
            .cells
            .0
            .iter()
            .filter(|(k, _)| {
                k.service == scan.service
                    && (first..end).contains(&k.bucket)
                    && scan.admits(k.op, k.kind as i32, k.resource)
            })
            .map(|(k, c)| (*k, c.clone()))
            .collect();
        (cells, self.flushed)
    }
}

/// One batch's cells, keyed by the IDs the writer interned.
pub(super) fn cells_of(spans: &[SpanRow], ids: &[RowIds]) -> RedCells {
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
    cells
}

/// Adds the waiting cells to their rows of `red_rollups`, in the caller's transaction, and
/// records the last span they count in `red_flushed`; returns the rows written, for the
/// cache once the transaction commits (per key, the stored cell (from the cache, or read)
/// plus the waiting one, written back whole).
///
/// Only if `red_flushed` still says the flush the cells follow: a sealing segment's cells
/// may be flushed by the sealer and by a retention cut, each in its own transaction, and
/// the second must not add them again (it then writes nothing and returns nothing).
pub(super) fn flush(
    tx: &Transaction<'_>,
    pending: &PendingRed,
    cache: &RollupCache,
) -> Result<Vec<(RedKey, RedCell)>, StoreError> {
    if let Some(after) = pending.flushed
        && flushed_upto(tx)? != after
    {
        return Ok(Vec::new());
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
    let mut written = Vec::with_capacity(pending.cells.0.len());
    for (key, waiting) in &pending.cells.0 {
        let k = key_values(key);
        let stored = match cache.cells.get(key) {
            Some(cached) => Some(cached.clone()),
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
        // The waiting durations into the stored cell's bins, not the other way round: a
        // merge walks the bins of the cell merged in.
        let cell = match stored {
            Some(mut stored) => {
                stored.merge(waiting);
                stored
            }
            None => waiting.clone(),
        };
        let counts = [cell.requests, cell.errors, cell.throttled].map(|n| Value::Integer(n as i64));
        let latency = Value::Blob(cell.latency.encode());
        write.execute(params_from_iter(
            k.into_iter().chain(counts).chain([latency]),
        ))?;
        written.push((*key, cell));
    }
    tx.execute(
        "INSERT OR REPLACE INTO red_flushed (id, last_span) VALUES (1, ?1)",
        [pending.counted],
    )?;
    Ok(written)
}

/// The last span row a format-9 file's `red_rollups` counts.
pub(super) fn flushed_upto(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row("SELECT last_span FROM red_flushed WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or(0))
}

/// The cells of an open segment's spans that its `red_rollups` does not count (format 9
/// on; after a restart, or a seal cut short), counted again from the spans.
pub(super) fn rebuild_pending(conn: &Connection, names: &Names) -> Result<PendingRed, StoreError> {
    let flushed = flushed_upto(conn)?;
    let counted: i64 =
        conn.query_row("SELECT coalesce(max(id), 0) FROM spans", [], |r| r.get(0))?;
    Ok(PendingRed {
        cells: stored_cells(conn, "id > ?1", flushed, names)?,
        flushed: Some(flushed),
        counted: counted.max(flushed),
    })
}

/// The cells of the stored spans `filter` (on `id`, with `?1` = `bound`) selects. The HTTP
/// status is read from the attributes by the rule the writer used
/// ([`crate::model::Attributes::http_status`]), so each span falls in the cell it was
/// added to.
fn stored_cells(
    conn: &Connection,
    filter: &str,
    bound: i64,
    names: &Names,
) -> Result<RedCells, StoreError> {
    let mut cells = RedCells::default();
    let mut stmt = conn.prepare(&format!(
        "SELECT service_id, op_id, kind, resource_id, status_code, start_ns, duration_ns,
                attributes FROM spans WHERE {filter}"
    ))?;
    let mut rows = stmt.query([bound])?;
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
    Ok(cells)
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
/// them: RED then counts what is stored. (The open segment's waiting cells are flushed
/// first: the rows must hold what is taken out.)
pub(super) fn subtract_spans(
    tx: &Transaction<'_>,
    last: i64,
    tiers: bool,
    names: &Names,
) -> Result<(), StoreError> {
    let cells = stored_cells(tx, "id <= ?1", last, names)?;
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

/// Tries of [`RollupScan::read_with_pending`] before it gives up: a flush commits about once
/// a second, so a second race in a row is already rare. Between a commit and the writer's
/// note of it in memory (a flush, or retention emptying the segment) the two disagree for
/// a moment: from the fourth try on, each waits a millisecond.
const MAX_FLUSH_RACES: usize = 100;

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
    /// Whether a row of this operation, kind and resource is asked for.
    fn admits(&self, op: i64, kind: i32, resource: i64) -> bool {
        (self.kinds.is_empty() || self.kinds.iter().any(|k| *k as i32 == kind))
            && self.ops.is_none_or(|ops| ops.contains(&op))
            && self.resources.is_none_or(|ids| ids.contains(&resource))
    }

    /// Hands the segment's rows in the window to `stored` and returns, while it is open,
    /// the cells its writer holds for them, each span counted once. The waiting cells are copied
    /// first, with the flush they follow; the rows are read in one read transaction that
    /// first checks `red_flushed` says the same. A flush committed in between (or a seal)
    /// changes it: then the copy is taken again. Neither side waits for the other.
    pub(super) fn read_with_pending(
        &self,
        segment: &super::segment::Segment,
        conn: &Connection,
        stored: impl FnMut(StoredRow<'_>) -> Result<(), StoreError>,
    ) -> Result<Vec<(RedKey, RedCell)>, StoreError> {
        self.read_consistent(
            conn,
            || {
                segment
                    .index()
                    .as_ref()
                    .map(|open| open.red().matching(self))
            },
            stored,
        )
    }

    /// [`Self::read_with_pending`] with the copy of the waiting cells taken by `waiting`
    /// (`None`: the segment is sealed, its rows hold everything).
    fn read_consistent(
        &self,
        conn: &Connection,
        waiting: impl Fn() -> Option<(Vec<(RedKey, RedCell)>, Option<i64>)>,
        mut stored: impl FnMut(StoredRow<'_>) -> Result<(), StoreError>,
    ) -> Result<Vec<(RedKey, RedCell)>, StoreError> {
        for attempt in 0..MAX_FLUSH_RACES {
            if attempt >= 3 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let pending = waiting();
            let tx = conn.unchecked_transaction()?;
            if let Some((_, Some(flushed))) = &pending
                && flushed_upto(&tx)? != *flushed
            {
                continue;
            }
            self.read(&tx, &mut stored)?;
            tx.finish()?;
            return Ok(pending.map(|(cells, _)| cells).unwrap_or_default());
        }
        Err(StoreError::Backend {
            backend: "sqlite",
            message: "RED kept racing the writer's flushes of the open segment; try again".into(),
        })
    }

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
            if !self.admits(op, kind, resource) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::SEGMENT_SCHEMA;

    fn key(bucket: i64) -> RedKey {
        RedKey {
            service: 1,
            bucket,
            op: 2,
            kind: SpanKind::Server,
            resource: 3,
            status: StatusCode::Unset,
            http_class: 0,
        }
    }

    /// Requests the read counts: the rows it hands over plus the waiting cells it returns.
    fn counted(
        scan: &RollupScan<'_>,
        conn: &Connection,
        waiting: impl Fn() -> Option<(Vec<(RedKey, RedCell)>, Option<i64>)>,
    ) -> Result<u64, StoreError> {
        let mut requests = 0;
        let cells = scan.read_consistent(conn, waiting, |row| {
            requests += row.counts.0;
            Ok(())
        })?;
        Ok(requests + cells.iter().map(|(_, c)| c.requests).sum::<u64>())
    }

    /// A read that copied the waiting cells before a flush committed, and opened its read
    /// transaction after, would count them twice (in the rows and in its copy): `red_flushed`
    /// tells, and the copy is taken again. A copy that never agrees with the file is an
    /// error, not a wrong count.
    #[test]
    fn a_flush_between_the_copy_and_the_read_counts_each_span_once() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(SEGMENT_SCHEMA).expect("schema");
        let scan = RollupScan {
            service: 1,
            buckets: (0, 100),
            width: 1,
            kinds: &[],
            ops: None,
            resources: None,
        };
        let mut pending = PendingRed::new();
        let mut cells = RedCells::default();
        for i in 0..10 {
            cells.add(key(i % 3), 1_000 * (i + 1), None);
        }
        pending.add(cells, 10);
        assert_eq!(
            counted(&scan, &conn, || Some(pending.matching(&scan))).expect("read"),
            10
        );

        // The writer's flush commits; the copy taken before it is stale.
        let stale = pending.matching(&scan);
        let tx = conn.transaction().expect("tx");
        flush(&tx, &pending, &RollupCache::default()).expect("flush");
        tx.commit().expect("commit");
        assert!(
            counted(&scan, &conn, || Some(stale.clone())).is_err(),
            "a copy that never matches the file is refused"
        );
        pending.flushed();
        let copies = std::cell::Cell::new(0);
        let racing = || {
            copies.set(copies.get() + 1);
            Some(if copies.get() == 1 {
                stale.clone()
            } else {
                pending.matching(&scan)
            })
        };
        assert_eq!(counted(&scan, &conn, racing).expect("read"), 10);
        assert_eq!(copies.get(), 2, "the stale copy was taken again");
    }

    /// The sealer and a retention cut may both flush a sealing segment's cells: the one
    /// that commits second finds `red_flushed` moved and writes nothing.
    #[test]
    fn cells_flushed_twice_are_written_once() {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(SEGMENT_SCHEMA).expect("schema");
        let mut pending = PendingRed::new();
        let mut cells = RedCells::default();
        for i in 0..7 {
            cells.add(key(i % 2), 1_000 * (i + 1), None);
        }
        pending.add(cells, 7);
        for round in 0..2 {
            let tx = conn.transaction().expect("tx");
            let written = flush(&tx, &pending, &RollupCache::default()).expect("flush");
            tx.commit().expect("commit");
            assert_eq!(
                written.len(),
                if round == 0 { 2 } else { 0 },
                "round {round}"
            );
        }
        let requests: i64 = conn
            .query_row("SELECT sum(requests) FROM red_rollups", [], |r| r.get(0))
            .expect("sum");
        assert_eq!(requests, 7);
        assert_eq!(flushed_upto(&conn).expect("mark"), 7);
    }
}
