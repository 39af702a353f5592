//! Retention: one bounded step at a time, cutting by batch (rows are appended in batch
//! order, so "everything up to the cut" is a rowid range per table).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::write::Writer;
use crate::store::{PruneReport, RetentionPolicy, StoreError};

/// Rows one retention step deletes at most, so that ingest waits little for the writer.
const PRUNE_STEP: i64 = 20_000;

impl Writer {
    pub(super) fn prune(&mut self, policy: RetentionPolicy) -> Result<PruneReport, StoreError> {
        let conn = &mut self.conn;
        let mut cutoff: Option<i64> = None;
        if let Some(older_than) = policy.older_than_ns {
            cutoff = conn.query_row(
                "SELECT max(id) FROM batches WHERE received_ns < ?1",
                [older_than],
                |r| r.get(0),
            )?;
        }
        let over_size = match policy.max_bytes {
            Some(max) => used_bytes(conn)? > max,
            None => false,
        };
        if over_size {
            // Drop about the oldest 5% of batches per round, at least one.
            let by_size: Option<i64> = conn
                .query_row(
                    "SELECT id FROM batches ORDER BY id
                 LIMIT 1 OFFSET (SELECT count(*) / 20 FROM batches)",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            cutoff = cutoff.max(by_size);
        }
        let Some(cutoff) = cutoff else {
            return Ok(PruneReport::default());
        };
        let tx = conn.transaction()?;
        let (last_span, last_part, last_log): (Option<i64>, Option<i64>, Option<i64>) = tx
            .query_row(
                "SELECT max(last_span), max(last_part), max(last_log) FROM batches WHERE id <= ?1",
                [cutoff],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
        let mut report = PruneReport::default();
        // Rows are appended in batch order, so "everything up to the cut" is a rowid range.
        let delete_up_to = |table: &str, last: Option<i64>| -> Result<u64, StoreError> {
            let Some(last) = last else { return Ok(0) };
            Ok(tx.execute(
                &format!(
                    "DELETE FROM {table} WHERE id <= min(?1, (SELECT min(id) FROM {table}) + ?2)"
                ),
                params![last, PRUNE_STEP - 1],
            )? as u64)
        };
        report.spans = delete_up_to("spans", last_span)?;
        report.traces = delete_up_to("trace_parts", last_part)?;
        report.logs = delete_up_to("logs", last_log)?;
        if report.spans + report.traces + report.logs == 0 {
            tx.execute("DELETE FROM batches WHERE id <= ?1", [cutoff])?;
        }
        tx.commit()?;
        report.more = report.spans + report.logs + report.traces > 0;
        if !report.more {
            // Give freed pages back to the file system (auto_vacuum = INCREMENTAL).
            conn.execute_batch("PRAGMA incremental_vacuum;")?;
            report.more = policy
                .max_bytes
                .map(|max| used_bytes(conn).map(|u| u > max))
                .transpose()?
                .unwrap_or(false)
                && conn.query_row("SELECT count(*) FROM batches", [], |r| r.get::<_, i64>(0))? > 0;
        }
        Ok(report)
    }
}

/// Bytes in use: pages holding data (free pages excluded) plus the WAL.
pub(super) fn used_bytes(conn: &Connection) -> Result<u64, StoreError> {
    let (pages, free, size): (i64, i64, i64) = conn.query_row(
        "SELECT (SELECT page_count FROM pragma_page_count),
                (SELECT freelist_count FROM pragma_freelist_count),
                (SELECT page_size FROM pragma_page_size)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(((pages - free).max(0) * size) as u64)
}

pub(super) fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
