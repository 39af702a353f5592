//! Retention, one bounded step per call. A segment whose every batch is past the cut, or
//! the oldest one while the store is over its disk budget, is dropped whole: its files are
//! deleted, which costs the same at 50M spans as at 5. The segment that straddles the cut,
//! and the open one when it alone is over the budget, are cut by batch instead: rows are
//! appended in batch order, so "everything up to the cut" is a rowid range per table.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::rollups;
use super::segment::{self, Job, LEGACY, Segment, trash_dir};
use super::write::Writer;
use crate::store::{PruneReport, RetentionPolicy, StoreError};

/// Rows one retention step deletes at most from a segment it cuts, so that ingest waits
/// little for the writer.
const PRUNE_STEP: i64 = 20_000;

/// How a segment's batches relate to the cut.
enum Cut {
    /// No batch: nothing to delete.
    Empty,
    /// Every batch is at or after the cut.
    Kept,
    /// Every batch is before the cut.
    Whole,
    /// The batches up to this one are before the cut.
    UpTo(i64),
}

impl Writer {
    pub(super) fn prune(&mut self, policy: RetentionPolicy) -> Result<PruneReport, StoreError> {
        let segments = self
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let metric_points = self.prune_metrics(policy, &segments)?;
        if metric_points > 0 {
            return Ok(PruneReport {
                metric_points,
                more: true,
                ..PruneReport::default()
            });
        }
        if let Some(cut) = policy.older_than_ns {
            for segment in &segments {
                let cut = self.with_conn(segment, |conn| cut_by_age(conn, cut))?;
                match cut {
                    // Emptied by earlier cuts: only its file is left to go.
                    Cut::Empty if self.droppable(segment) => return self.drop_segment(segment),
                    Cut::Empty => continue,
                    // Later segments hold later batches.
                    Cut::Kept => break,
                    Cut::Whole if self.droppable(segment) => return self.drop_segment(segment),
                    Cut::Whole => {
                        let last = self.with_conn(segment, last_batch)?;
                        return self.cut_segment(segment, last);
                    }
                    Cut::UpTo(batch) => return self.cut_segment(segment, Some(batch)),
                }
            }
        }
        if let Some(max) = policy.max_bytes
            && self.used_bytes(&segments) > max
        {
            for segment in &segments {
                let empty = self.with_conn(segment, last_batch)?.is_none();
                if empty && !self.droppable(segment) {
                    continue;
                }
                if self.droppable(segment) {
                    return self.drop_segment(segment);
                }
                // The catalog's own rows, or the open segment alone: its oldest 5% of batches.
                let batch = self.with_conn(segment, |conn| {
                    Ok(conn
                        .query_row(
                            "SELECT id FROM batches ORDER BY id
                             LIMIT 1 OFFSET (SELECT count(*) / 20 FROM batches)",
                            [],
                            |r| r.get(0),
                        )
                        .optional()?)
                })?;
                return self.cut_segment(segment, batch);
            }
        }
        Ok(PruneReport::default())
    }

    /// One step of retention in `metrics.sqlite`: points older than the age cut, or, while
    /// the store is over its disk budget, the oldest twentieth of the points' time span
    /// (points are small beside spans: they give up a share as segments do). How many went.
    fn prune_metrics(
        &mut self,
        policy: RetentionPolicy,
        segments: &[std::sync::Arc<Segment>],
    ) -> Result<u64, StoreError> {
        if let Some(cut) = policy.older_than_ns {
            let n = self.metrics.prune_before(cut.div_euclid(1_000_000))?;
            if n > 0 {
                return Ok(n);
            }
        }
        if let Some(max) = policy.max_bytes
            && self.used_bytes(segments) > max
            && let Some(cut) = self.metrics.oldest_twentieth()?
        {
            // Segments go first while there are older ones to drop.
            if segments.iter().filter(|s| self.droppable(s)).count() == 0 {
                return self.metrics.prune_before(cut);
            }
        }
        Ok(0)
    }

    /// A segment is dropped whole unless it is open or is the catalog itself.
    fn droppable(&self, segment: &Segment) -> bool {
        segment.id != LEGACY && segment.id != self.segment.id
    }

    /// Runs `f` on a writing connection to the segment: the writer's own for the open
    /// segment and the catalog, a short-lived one for a sealed segment.
    fn with_conn<T>(
        &mut self,
        segment: &Segment,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if segment.id == self.segment.id {
            return f(&mut self.conn);
        }
        if segment.id == LEGACY {
            return f(&mut self.catalog);
        }
        let mut conn = Connection::open(&segment.path)?;
        conn.execute_batch("PRAGMA busy_timeout = 10000;")?;
        f(&mut conn)
    }

    fn drop_segment(&mut self, segment: &Segment) -> Result<PruneReport, StoreError> {
        let started = std::time::Instant::now();
        let has_parts = segment.lookup.has_parts();
        let (spans, traces, logs) = self.with_conn(segment, |conn| {
            // Rows are only ever deleted oldest first (a prefix of rowids), so each table's
            // rowids are contiguous and two rowid lookups count it; count(*) would read every
            // page of an index while the writer waits (~120 ms for a 1M-span segment). Each
            // min and max is its own subquery: only a lone min() or max() is a lookup.
            let rows = |table: &str| {
                format!(
                    "coalesce((SELECT max(id) FROM {table}) - (SELECT min(id) FROM {table}) + 1, 0)"
                )
            };
            let parts = if has_parts {
                rows("trace_parts")
            } else {
                "0".to_string()
            };
            Ok(conn.query_row(
                &format!("SELECT {}, {parts}, {}", rows("spans"), rows("logs")),
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )?)
        })?;
        self.catalog
            .execute("DELETE FROM segments WHERE id = ?1", [segment.id])?;
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| s.id != segment.id);
        segment.retire_files()?;
        self.sealer
            .submit(Job::EmptyTrash(trash_dir(&segment.path)));
        tracing::debug!(segment = segment.id, spans, logs, elapsed = ?started.elapsed(),
            "segment dropped by retention");
        Ok(PruneReport {
            spans: spans as u64,
            logs: logs as u64,
            traces: traces as u64,
            metric_points: 0,
            more: true,
        })
    }

    /// Deletes one bounded step of the batches up to `last` in a segment kept in place.
    fn cut_segment(
        &mut self,
        segment: &Segment,
        last: Option<i64>,
    ) -> Result<PruneReport, StoreError> {
        let Some(last) = last else {
            return Ok(PruneReport::default());
        };
        let open = segment.id == self.segment.id;
        // The rows must count what is taken out of them.
        if open {
            self.flush_red()?;
        } else {
            self.flush_sealing(segment)?;
        }
        let rollups = segment.rollups.then_some(segment.has_tiers());
        let dictionary = self.dictionary.clone();
        let (mut report, batches) = self.with_conn(segment, |conn| {
            delete_up_to(conn, last, (rollups, open), &dictionary)
        })?;
        if open && report.spans > 0 {
            // Its cached cells may hold what was just taken out of the rollups.
            self.rollups = Default::default();
        }
        if open && report.spans > 0 {
            // The open segment is of the current format: its lookups point at span rows.
            let empty: bool =
                self.conn
                    .query_row("SELECT NOT EXISTS (SELECT 1 FROM spans)", [], |r| r.get(0))?;
            if empty && let Some(index) = segment.index_mut().as_mut() {
                index.clear();
            }
        }
        if batches > 0 {
            // The rows of the cut are gone: give freed pages back to the file system
            // (auto_vacuum = INCREMENTAL).
            self.with_conn(segment, |conn| {
                conn.execute_batch("PRAGMA incremental_vacuum;")?;
                Ok(())
            })?;
        }
        report.more = report.spans + report.logs + report.traces + batches > 0;
        Ok(report)
    }

    /// Writes the RED cells a segment that is still sealing holds in memory (the seal writes
    /// them too; whichever commits second writes nothing: `rollups::flush`).
    fn flush_sealing(&mut self, segment: &Segment) -> Result<(), StoreError> {
        {
            let index = segment.index();
            let Some(pending) = index.as_ref().map(|open| open.red()) else {
                return Ok(());
            };
            if pending.len() == 0 {
                return Ok(());
            }
            self.with_conn(segment, |conn| {
                // Immediate: the sealer may write the file too, and a deferred transaction
                // that read before its commit could not write after it (busy, no retry).
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                rollups::flush(&tx, pending, &rollups::RollupCache::default())?;
                Ok(tx.commit()?)
            })?;
        }
        if let Some(index) = segment.index_mut().as_mut() {
            index.red_mut().flushed();
        }
        Ok(())
    }

    /// Bytes in use: the catalog, the metrics file and every segment file with its WAL.
    fn used_bytes(&self, segments: &[std::sync::Arc<Segment>]) -> u64 {
        let metrics = self.dir.join(super::metrics::FILE);
        let catalog = segment::file_len(&self.catalog_path())
            + segment::file_len(&segment::wal_path(&self.catalog_path()))
            + segment::file_len(&metrics)
            + segment::file_len(&segment::wal_path(&metrics));
        catalog
            + segments
                .iter()
                .filter(|s| s.id != LEGACY)
                .map(|s| s.disk_bytes())
                .sum::<u64>()
    }

    fn catalog_path(&self) -> std::path::PathBuf {
        self.dir.join(super::DB_FILE)
    }
}

fn last_batch(conn: &mut Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row("SELECT max(id) FROM batches", [], |r| r.get(0))?)
}

fn cut_by_age(conn: &mut Connection, older_than: i64) -> Result<Cut, StoreError> {
    let (oldest, newest, upto): (Option<i64>, Option<i64>, Option<i64>) = conn.query_row(
        "SELECT min(received_ns), max(received_ns),
                (SELECT max(id) FROM batches WHERE received_ns < ?1)
         FROM batches",
        [older_than],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(match (oldest, newest, upto) {
        (None, _, _) => Cut::Empty,
        (_, Some(n), _) if n < older_than => Cut::Whole,
        (_, _, Some(batch)) => Cut::UpTo(batch),
        _ => Cut::Kept,
    })
}

/// One step of deleting every row of the batches up to `cutoff`; the batch rows go once
/// their rows have (the second number: how many went). With `rollups` (`Some(tiers)`, the
/// segment's format has them), the spans deleted are first taken out of its RED rollups.
/// `open`: the writer's segment, whose RED cells it has just flushed.
fn delete_up_to(
    conn: &mut Connection,
    cutoff: i64,
    (rollups, open): (Option<bool>, bool),
    dictionary: &super::dictionary::Dictionary,
) -> Result<(PruneReport, u64), StoreError> {
    // Immediate, as `flush_sealing`'s: a segment still sealing has another writer.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (last_span, last_part, last_log): (Option<i64>, Option<i64>, Option<i64>) = tx.query_row(
        "SELECT max(last_span), max(last_part), max(last_log) FROM batches WHERE id <= ?1",
        [cutoff],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let mut report = PruneReport::default();
    let delete = |table: &str, last: Option<i64>| -> Result<u64, StoreError> {
        let Some(last) = last else { return Ok(0) };
        Ok(tx.execute(
            &format!("DELETE FROM {table} WHERE id <= min(?1, (SELECT min(id) FROM {table}) + ?2)"),
            params![last, PRUNE_STEP - 1],
        )? as u64)
    };
    if let (Some(tiers), Some(last)) = (rollups, last_span) {
        let upto: Option<i64> = tx.query_row(
            "SELECT min(?1, (SELECT min(id) FROM spans) + ?2)",
            params![last, PRUNE_STEP - 1],
            |r| r.get(0),
        )?;
        if let Some(upto) = upto {
            super::rollups::subtract_spans(&tx, upto, tiers, &dictionary.read())?;
        }
    }
    report.spans = delete("spans", last_span)?;
    if open && report.spans > 0 {
        // An empty table hands out its row IDs again from 1: `red_flushed` must not say
        // that rows to come are counted.
        tx.execute(
            "DELETE FROM red_flushed WHERE NOT EXISTS (SELECT 1 FROM spans)",
            [],
        )?;
    }
    // NULL from segment format 3 on, which has no trace_parts.
    report.traces = delete("trace_parts", last_part)?;
    report.logs = delete("logs", last_log)?;
    let mut batches = 0;
    if report.spans + report.traces + report.logs == 0 {
        batches = tx.execute("DELETE FROM batches WHERE id <= ?1", [cutoff])? as u64;
    }
    tx.commit()?;
    Ok((report, batches))
}
