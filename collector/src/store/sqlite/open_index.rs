//! The trace-ID and correlation-ID lookups of a segment that is not sealed yet, in memory:
//! an index on random keys updated per row is what made ingest slow (every commit dirtied
//! hundreds of scattered B-tree pages). Rebuilt from the segment's `trace_parts` on start;
//! dropped once the sealed segment's own indexes exist.
//!
//! Each key is kept as a 64-bit hash (seeded at random per process, so that no sender can
//! choose IDs that collide) mapping to its newest part; older parts of the same key are
//! chained through arrays indexed by part rowid. About 60 bytes per part in all. Callers
//! check every candidate row against the key in SQL, so a hash collision or a stale entry
//! costs a probe, never a wrong answer.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::fast::RandomState as FastState;
use foldhash::quality::RandomState as KeyState;
use rusqlite::Connection;

use crate::model::TraceId;
use crate::store::StoreError;

#[derive(Debug, Default)]
pub(super) struct OpenIndex {
    keys: KeyState,
    traces: HashMap<u64, u32, FastState>,
    correlations: HashMap<u64, u32, FastState>,
    /// `prev_trace[rowid]`: the previous part of the same trace, 0 for none.
    prev_trace: Vec<u32>,
    prev_correlation: Vec<u32>,
}

impl OpenIndex {
    /// Reads a segment's parts back into memory (after a restart, or a seal cut short).
    pub(super) fn rebuild(conn: &Connection) -> Result<Self, StoreError> {
        let mut index = Self::default();
        let mut stmt =
            conn.prepare("SELECT id, trace_id, correlation_id FROM trace_parts ORDER BY id")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let trace = super::read::blob_id::<16>(row.get_ref(1)?.as_blob()?);
            index.add(row.get(0)?, &trace, row.get_ref(2)?.as_str_or_null()?);
        }
        Ok(index)
    }

    /// Records a committed part row.
    pub(super) fn add(&mut self, part: i64, trace: &TraceId, correlation: Option<&str>) {
        let Ok(part) = u32::try_from(part) else {
            // A segment is sealed long before 4 billion parts; a larger rowid is not indexed
            // here, and its segment's sealed index will find it.
            return;
        };
        let slot = part as usize;
        if self.prev_trace.len() <= slot {
            let len = (slot + 1).max(self.prev_trace.len() * 2);
            self.prev_trace.resize(len, 0);
            self.prev_correlation.resize(len, 0);
        }
        let key = self.keys.hash_one(trace);
        self.prev_trace[slot] = self.traces.insert(key, part).unwrap_or(0);
        self.prev_correlation[slot] = match correlation {
            Some(c) => {
                let key = self.keys.hash_one(c);
                self.correlations.insert(key, part).unwrap_or(0)
            }
            None => 0,
        };
    }

    /// Part rowids that may belong to the trace, newest first.
    pub(super) fn trace_parts(&self, trace: &TraceId) -> Vec<i64> {
        let key = self.keys.hash_one(trace);
        chain(self.traces.get(&key).copied(), &self.prev_trace)
    }

    /// Part rowids that may carry the correlation ID, newest first.
    pub(super) fn correlation_parts(&self, correlation: &str) -> Vec<i64> {
        let key = self.keys.hash_one(correlation);
        chain(self.correlations.get(&key).copied(), &self.prev_correlation)
    }

    /// Forgets everything: the segment's parts were all deleted, and SQLite may hand out
    /// their rowids again.
    pub(super) fn clear(&mut self) {
        self.traces = HashMap::default();
        self.correlations = HashMap::default();
        self.prev_trace = Vec::new();
        self.prev_correlation = Vec::new();
    }
}

/// Follows a chain of strictly decreasing rowids, so that a stale link can never loop.
fn chain(head: Option<u32>, prev: &[u32]) -> Vec<i64> {
    let mut out = Vec::new();
    let mut at = head.unwrap_or(0);
    while at != 0 {
        out.push(i64::from(at));
        let next = prev.get(at as usize).copied().unwrap_or(0);
        if next >= at {
            break;
        }
        at = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_find_all_their_parts_newest_first() {
        let mut index = OpenIndex::default();
        index.add(1, &[1; 16], Some("c-1"));
        index.add(2, &[2; 16], None);
        index.add(3, &[1; 16], Some("c-2"));
        index.add(7, &[1; 16], Some("c-1"));
        assert_eq!(index.trace_parts(&[1; 16]), vec![7, 3, 1]);
        assert_eq!(index.trace_parts(&[2; 16]), vec![2]);
        assert!(index.trace_parts(&[9; 16]).is_empty());
        assert_eq!(index.correlation_parts("c-1"), vec![7, 1]);
        assert_eq!(index.correlation_parts("c-2"), vec![3]);
        assert!(index.correlation_parts("c-3").is_empty());
        index.clear();
        assert!(index.trace_parts(&[1; 16]).is_empty());
    }

    #[test]
    fn a_reused_rowid_cannot_make_a_chain_loop() {
        let mut index = OpenIndex::default();
        index.add(5, &[1; 16], None);
        // Rowid 2 handed out again after a delete, chained to the newer head 5.
        index.add(2, &[1; 16], None);
        assert_eq!(index.trace_parts(&[1; 16]), vec![2]);
    }
}
