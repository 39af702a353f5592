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
use std::hash::{BuildHasher, Hash};
use std::sync::LazyLock;

use fastbloom::BloomFilter;
use foldhash::fast::RandomState as FastState;
use foldhash::quality::RandomState as KeyState;
use rusqlite::Connection;

use crate::model::TraceId;
use crate::store::StoreError;

/// One seed per process for every key hash, so that a sealed segment's filters, built from
/// its open index's keys, answer for IDs hashed later.
static KEYS: LazyLock<KeyState> = LazyLock::new(KeyState::default);

/// The 64-bit key of a trace ID or a correlation ID.
pub(super) fn key_of<T: Hash + ?Sized>(id: &T) -> u64 {
    KEYS.hash_one(id)
}

#[derive(Debug, Default)]
pub(super) struct OpenIndex {
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
        let key = key_of(trace);
        self.prev_trace[slot] = self.traces.insert(key, part).unwrap_or(0);
        self.prev_correlation[slot] = match correlation {
            Some(c) => {
                let key = key_of(c);
                self.correlations.insert(key, part).unwrap_or(0)
            }
            None => 0,
        };
    }

    /// Part rowids that may belong to the trace, newest first.
    pub(super) fn trace_parts(&self, trace: &TraceId) -> Vec<i64> {
        let key = key_of(trace);
        chain(self.traces.get(&key).copied(), &self.prev_trace)
    }

    /// Part rowids that may carry the correlation ID, newest first.
    pub(super) fn correlation_parts(&self, correlation: &str) -> Vec<i64> {
        let key = key_of(correlation);
        chain(self.correlations.get(&key).copied(), &self.prev_correlation)
    }

    /// Bloom filters of every key, for the segment once sealed.
    pub(super) fn filters(&self) -> SegmentFilters {
        SegmentFilters {
            traces: bloom(self.traces.keys().copied(), self.traces.len()),
            correlations: bloom(self.correlations.keys().copied(), self.correlations.len()),
        }
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

/// Which trace and correlation IDs a sealed segment may hold: a lookup skips a segment
/// whose filter says no, without opening it. About one byte per ID; 2% false positives.
#[derive(Debug)]
pub(super) struct SegmentFilters {
    traces: BloomFilter,
    correlations: BloomFilter,
}

impl SegmentFilters {
    /// Builds the filters of a sealed segment from its trace parts (after a restart).
    pub(super) fn read(conn: &Connection) -> Result<Self, StoreError> {
        let mut traces = Vec::new();
        let mut correlations = Vec::new();
        let mut stmt = conn.prepare("SELECT trace_id, correlation_id FROM trace_parts")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            traces.push(key_of(&super::read::blob_id::<16>(
                row.get_ref(0)?.as_blob()?,
            )));
            if let Some(c) = row.get_ref(1)?.as_str_or_null()? {
                correlations.push(key_of(c));
            }
        }
        Ok(Self {
            traces: bloom(traces.iter().copied(), traces.len()),
            correlations: bloom(correlations.iter().copied(), correlations.len()),
        })
    }

    pub(super) fn may_hold_trace(&self, trace: &TraceId) -> bool {
        self.traces.contains(&key_of(trace))
    }

    pub(super) fn may_hold_correlation(&self, correlation: &str) -> bool {
        self.correlations.contains(&key_of(correlation))
    }
}

/// What a sealed segment's logs hold: their trace and correlation IDs and their time range,
/// so that a log query opens only the segments that may answer it, newest first.
pub(super) struct LogFilters {
    traces: BloomFilter,
    correlations: BloomFilter,
    range: Option<(i64, i64)>,
}

impl LogFilters {
    /// Reads a sealed segment's logs (on the sealer's thread).
    pub(super) fn read(conn: &Connection) -> Result<Self, StoreError> {
        let mut traces = Vec::new();
        let mut correlations = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT trace_id, correlation_id FROM logs
             WHERE trace_id IS NOT NULL OR correlation_id IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if let Some(t) = row.get_ref(0)?.as_blob_or_null()? {
                traces.push(key_of(&super::read::blob_id::<16>(t)));
            }
            if let Some(c) = row.get_ref(1)?.as_str_or_null()? {
                correlations.push(key_of(c));
            }
        }
        Ok(Self {
            traces: bloom(traces.iter().copied(), traces.len()),
            correlations: bloom(correlations.iter().copied(), correlations.len()),
            range: log_range(conn)?,
        })
    }

    pub(super) fn may_hold_trace(&self, trace: &TraceId) -> bool {
        self.traces.contains(&key_of(trace))
    }

    pub(super) fn may_hold_correlation(&self, correlation: &str) -> bool {
        self.correlations.contains(&key_of(correlation))
    }

    /// The oldest and newest log times (`None`: no logs).
    pub(super) fn range(&self) -> Option<(i64, i64)> {
        self.range
    }
}

/// The oldest and newest log times of a segment, through its time index (two lookups: a
/// query asking for both at once would scan the table).
pub(super) fn log_range(conn: &Connection) -> Result<Option<(i64, i64)>, StoreError> {
    let (lo, hi): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT (SELECT min(time_ns) FROM logs), (SELECT max(time_ns) FROM logs)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(lo.zip(hi))
}

fn bloom(keys: impl Iterator<Item = u64>, count: usize) -> BloomFilter {
    let mut filter = BloomFilter::with_false_pos(0.02).expected_items(count.max(1));
    for k in keys {
        filter.insert(&k);
    }
    filter
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
    fn filters_hold_every_key_and_few_others() {
        let mut index = OpenIndex::default();
        for i in 1..=10_000u32 {
            let mut trace = [0u8; 16];
            trace[..4].copy_from_slice(&i.to_le_bytes());
            index.add(i64::from(i), &trace, Some(&format!("c-{i}")));
        }
        let filters = index.filters();
        let mut wrong = 0;
        for i in 1..=20_000u32 {
            let mut trace = [0u8; 16];
            trace[..4].copy_from_slice(&i.to_le_bytes());
            let held = i <= 10_000;
            let (t, c) = (
                filters.may_hold_trace(&trace),
                filters.may_hold_correlation(&format!("c-{i}")),
            );
            if held {
                assert!(t && c, "key {i} must be held");
            } else {
                wrong += usize::from(t) + usize::from(c);
            }
        }
        // 2% false positives expected over 20,000 absent keys: about 400.
        assert!(wrong < 1_000, "{wrong} false positives");
    }

    #[test]
    fn filters_read_from_a_sealed_file_hold_its_ids() {
        let conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(crate::store::schema::SEGMENT_SCHEMA)
            .expect("schema");
        for i in 1..=100u8 {
            conn.execute(
                "INSERT INTO trace_parts (trace_id, first_span, last_span, span_count, start_ns,
                    end_ns, error, correlation_id) VALUES (?1, 1, 1, 1, 0, 0, 0, ?2)",
                rusqlite::params![&[i; 16][..], (i % 2 == 0).then(|| format!("c-{i}"))],
            )
            .expect("insert");
        }
        let filters = SegmentFilters::read(&conn).expect("read");
        for i in 1..=100u8 {
            assert!(filters.may_hold_trace(&[i; 16]), "trace {i}");
            if i % 2 == 0 {
                assert!(filters.may_hold_correlation(&format!("c-{i}")), "c-{i}");
            }
        }
        let absent = (101..=255u8)
            .filter(|i| filters.may_hold_trace(&[*i; 16]))
            .count();
        assert!(absent < 20, "{absent} of 155 absent traces let through");
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
