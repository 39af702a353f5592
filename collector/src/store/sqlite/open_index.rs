//! The trace-ID and correlation-ID lookups of a segment that is not sealed yet, in memory:
//! an index on random keys updated per row is what made ingest slow (every commit dirtied
//! hundreds of scattered B-tree pages). Rebuilt from the segment's rows on start; when the
//! segment is sealed, its pairs are written, sorted, into the segment's key tables.
//!
//! Each key is kept as a 64-bit hash under the segment's own secret key ([`Keys`]) mapping to
//! its newest reference (a span rowid where a run of the trace starts, or where a run first
//! carries the correlation ID; a `trace_parts` rowid in formats 1 and 2); older references
//! of the same key are chained through arrays indexed by rowid. About 60 bytes per reference
//! in all. Callers check every candidate row against the ID, so a hash collision or a stale
//! entry costs a probe, never a wrong answer.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use fastbloom::BloomFilter;
use foldhash::fast::RandomState as FastState;
use rusqlite::Connection;
use siphasher::sip::SipHasher13;

use super::dictionary::Names;
use super::key_blocks::{self, KeyTable};
use super::rollups::{self, PendingRed};
use super::segment::{Format, Lookup, Search};
use super::span_times::ServiceTimes;
use crate::model::TraceId;
use crate::store::StoreError;

/// How one segment turns trace and correlation IDs into 64-bit keys: SipHash-1-3 under a
/// random key kept in the segment's file. Keys outlive the process in a sealed segment's
/// key tables, so the hash must be one whose output a specification fixes (a faster hasher's
/// may change with its version); the secret key keeps senders from choosing IDs that collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Keys {
    k0: u64,
    k1: u64,
}

impl Keys {
    /// Fresh secret keys, from the standard library's randomly seeded hasher.
    pub(super) fn random() -> Self {
        let state = std::hash::RandomState::new();
        Self {
            k0: state.hash_one(0u8),
            k1: state.hash_one(1u8),
        }
    }

    /// The keys as a segment file stores them (SQLite integers are signed).
    pub(super) fn to_stored(self) -> (i64, i64) {
        (self.k0 as i64, self.k1 as i64)
    }

    pub(super) fn from_stored(k0: i64, k1: i64) -> Self {
        Self {
            k0: k0 as u64,
            k1: k1 as u64,
        }
    }

    pub(super) fn trace(&self, trace: &TraceId) -> u64 {
        self.hash(trace)
    }

    pub(super) fn correlation(&self, correlation: &str) -> u64 {
        self.hash(correlation.as_bytes())
    }

    fn hash(&self, bytes: &[u8]) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(bytes);
        h.finish()
    }
}

/// A sealed segment's key tables' rows: (key, rowid), sorted as SQLite orders them, so that
/// inserting them appends to each table's B-tree.
pub(super) type KeyRows = Vec<(i64, i64)>;

#[derive(Debug)]
pub(super) struct OpenIndex {
    keys: Keys,
    traces: HashMap<u64, u32, FastState>,
    correlations: HashMap<u64, u32, FastState>,
    /// `prev_trace[rowid]`: the previous reference of the same trace, 0 for none.
    prev_trace: Vec<u32>,
    prev_correlation: Vec<u32>,
    /// A reference whose rowid did not fit was left out: the pairs must be read from the file.
    incomplete: bool,
    /// The spans by service and start time (segment format 4; empty for older formats,
    /// whose files index them).
    times: ServiceTimes,
    /// The RED cells of committed spans not yet written to the file (format 9 on).
    red: PendingRed,
}

impl OpenIndex {
    pub(super) fn new(keys: Keys) -> Self {
        Self {
            keys,
            traces: HashMap::default(),
            correlations: HashMap::default(),
            prev_trace: Vec::new(),
            prev_correlation: Vec::new(),
            incomplete: false,
            times: ServiceTimes::default(),
            red: PendingRed::new(),
        }
    }

    /// Reads a segment's references back into memory (after a restart, or a seal cut short).
    pub(super) fn rebuild(
        conn: &Connection,
        format: Format,
        names: &Names,
    ) -> Result<Self, StoreError> {
        let mut index = Self::new(format.keys);
        for_each_reference(conn, format.lookup(), |row, trace, correlation| {
            index.add(row, trace, correlation)
        })?;
        if format.search() == Search::SpanTimes {
            index.times = ServiceTimes::rebuild(conn)?;
        }
        index.red = if format.defers_red() {
            rollups::rebuild_pending(conn, names)?
        } else {
            PendingRed::default()
        };
        Ok(index)
    }

    pub(super) fn red(&self) -> &PendingRed {
        &self.red
    }

    pub(super) fn red_mut(&mut self) -> &mut PendingRed {
        &mut self.red
    }

    pub(super) fn times(&self) -> &ServiceTimes {
        &self.times
    }

    pub(super) fn times_mut(&mut self) -> &mut ServiceTimes {
        &mut self.times
    }

    /// Records a committed reference: `row` is where a run of `trace` starts, and/or where a
    /// run first carries `correlation`.
    pub(super) fn add(&mut self, row: i64, trace: Option<&TraceId>, correlation: Option<&str>) {
        let Ok(row) = u32::try_from(row) else {
            // A segment is sealed long before 4 billion rows; a larger rowid is not indexed
            // here, and the seal reads the segment's pairs from its file instead.
            self.incomplete = true;
            return;
        };
        let slot = row as usize;
        if self.prev_trace.len() <= slot {
            let len = (slot + 1).max(self.prev_trace.len() * 2);
            self.prev_trace.resize(len, 0);
            self.prev_correlation.resize(len, 0);
        }
        if let Some(trace) = trace {
            let key = self.keys.trace(trace);
            self.prev_trace[slot] = self.traces.insert(key, row).unwrap_or(0);
        }
        if let Some(c) = correlation {
            let key = self.keys.correlation(c);
            self.prev_correlation[slot] = self.correlations.insert(key, row).unwrap_or(0);
        }
    }

    /// Rowids that may start a run of the trace, newest first.
    pub(super) fn trace_refs(&self, trace: &TraceId) -> Vec<i64> {
        let key = self.keys.trace(trace);
        chain(self.traces.get(&key).copied(), &self.prev_trace).collect()
    }

    /// Rowids that may carry the correlation ID, newest first.
    pub(super) fn correlation_refs(&self, correlation: &str) -> Vec<i64> {
        let key = self.keys.correlation(correlation);
        chain(self.correlations.get(&key).copied(), &self.prev_correlation).collect()
    }

    /// Every (key, part) pair of the trace and the correlation lookups, sorted: the rows of
    /// the sealed segment's key tables. `None` if a reference was left out.
    pub(super) fn key_rows(&self) -> Option<(KeyRows, KeyRows)> {
        (!self.incomplete).then(|| {
            (
                pairs(&self.traces, &self.prev_trace),
                pairs(&self.correlations, &self.prev_correlation),
            )
        })
    }

    /// Bloom filters of every key, for the segment once sealed.
    pub(super) fn filters(&self) -> SegmentFilters {
        SegmentFilters {
            keys: self.keys,
            traces: bloom(self.traces.keys().copied(), self.traces.len()),
            correlations: bloom(self.correlations.keys().copied(), self.correlations.len()),
        }
    }

    /// Forgets everything: the segment's rows were all deleted, and SQLite may hand out
    /// their rowids again.
    pub(super) fn clear(&mut self) {
        // The RED cells too: they were flushed first, and `red_flushed` went with the rows.
        *self = Self::new(self.keys);
    }
}

/// Which trace and correlation IDs a sealed segment may hold: a lookup skips a segment
/// whose filter says no, without opening it. About one byte per ID; 2% false positives.
#[derive(Debug)]
pub(super) struct SegmentFilters {
    keys: Keys,
    traces: BloomFilter,
    correlations: BloomFilter,
}

impl SegmentFilters {
    /// Builds the filters of a sealed segment from its key tables (after a restart).
    pub(super) fn from_key_tables(conn: &Connection, keys: Keys) -> Result<Self, StoreError> {
        let traces = key_blocks::all_keys(conn, KeyTable::Traces)?;
        let correlations = key_blocks::all_keys(conn, KeyTable::Correlations)?;
        Ok(Self {
            keys,
            traces: bloom(traces.iter().copied(), traces.len()),
            correlations: bloom(correlations.iter().copied(), correlations.len()),
        })
    }

    /// Builds the filters of a segment sealed with trace-part indexes (segment format 1),
    /// from its `trace_parts` rows.
    pub(super) fn from_parts(conn: &Connection, keys: Keys) -> Result<Self, StoreError> {
        let (traces, correlations) = key_rows_of_file(conn, keys, Lookup::PartIndexes)?;
        Ok(Self {
            keys,
            traces: bloom(traces.iter().map(|r| r.0 as u64), traces.len()),
            correlations: bloom(correlations.iter().map(|r| r.0 as u64), correlations.len()),
        })
    }

    pub(super) fn may_hold_trace(&self, trace: &TraceId) -> bool {
        self.traces.contains(&self.keys.trace(trace))
    }

    pub(super) fn may_hold_correlation(&self, correlation: &str) -> bool {
        self.correlations
            .contains(&self.keys.correlation(correlation))
    }
}

/// The key-table rows of a segment, read from its file: for a seal whose in-memory lookups
/// left a reference out, and for filters over a segment without key tables.
pub(super) fn key_rows_of_file(
    conn: &Connection,
    keys: Keys,
    lookup: Lookup,
) -> Result<(KeyRows, KeyRows), StoreError> {
    let mut traces = Vec::new();
    let mut correlations = Vec::new();
    for_each_reference(conn, lookup, |row, trace, correlation| {
        if let Some(t) = trace {
            traces.push((keys.trace(t) as i64, row));
        }
        if let Some(c) = correlation {
            correlations.push((keys.correlation(c) as i64, row));
        }
    })?;
    traces.sort_unstable();
    correlations.sort_unstable();
    Ok((traces, correlations))
}

/// Calls `f(rowid, trace, correlation)` for each reference a segment's rows make, in rowid
/// order. Format 3: each span that starts a run of its trace (a span whose predecessor
/// belongs to another trace), and each span that first carries a correlation ID in its
/// run. Formats 1 and 2: each `trace_parts` row.
fn for_each_reference(
    conn: &Connection,
    lookup: Lookup,
    mut f: impl FnMut(i64, Option<&TraceId>, Option<&str>),
) -> Result<(), StoreError> {
    let table = match lookup {
        Lookup::SpanKeys => "spans",
        Lookup::PartKeys | Lookup::PartIndexes => "trace_parts",
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT id, trace_id, correlation_id FROM {table} ORDER BY id"
    ))?;
    let mut rows = stmt.query([])?;
    let mut runs = Runs::<String>::default();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let trace = super::read::blob_id::<16>(row.get_ref(1)?.as_blob()?);
        let correlation = row.get_ref(2)?.as_str_or_null()?;
        if lookup != Lookup::SpanKeys {
            f(id, Some(&trace), correlation);
            continue;
        }
        let (starts, first_carrier) = runs.next(&trace, correlation, str::to_string);
        if starts || first_carrier.is_some() {
            f(id, starts.then_some(&trace), first_carrier);
        }
    }
    Ok(())
}

/// Follows span rows in rowid order to tell which of them the lookups reference: one that
/// starts a run of its trace (its predecessor belongs to another trace), one that is the
/// first of its run to carry its correlation ID. `C` keeps the run's correlation IDs.
pub(super) struct Runs<C> {
    trace: Option<TraceId>,
    /// Nearly always one or none.
    correlations: Vec<C>,
}

impl<C> Default for Runs<C> {
    fn default() -> Self {
        Self {
            trace: None,
            correlations: Vec::new(),
        }
    }
}

impl<C: AsRef<str>> Runs<C> {
    /// Whether the next row starts a run, and its correlation ID if the run had not carried
    /// it yet.
    pub(super) fn next<'c>(
        &mut self,
        trace: &TraceId,
        correlation: Option<&'c str>,
        keep: impl FnOnce(&'c str) -> C,
    ) -> (bool, Option<&'c str>) {
        let starts = self.trace.as_ref() != Some(trace);
        if starts {
            self.trace = Some(*trace);
            self.correlations.clear();
        }
        let first_carrier =
            correlation.filter(|c| !self.correlations.iter().any(|r| r.as_ref() == *c));
        if let Some(c) = first_carrier {
            self.correlations.push(keep(c));
        }
        (starts, first_carrier)
    }
}

/// What a sealed segment's logs hold: their trace and correlation IDs and their time range,
/// so that a log query opens only the segments that may answer it, newest first.
pub(super) struct LogFilters {
    keys: Keys,
    traces: BloomFilter,
    correlations: BloomFilter,
    range: Option<(i64, i64)>,
}

impl LogFilters {
    /// Reads a sealed segment's logs (on the sealer's thread).
    pub(super) fn read(conn: &Connection, keys: Keys) -> Result<Self, StoreError> {
        let mut traces = Vec::new();
        let mut correlations = Vec::new();
        let mut stmt = conn.prepare(
            "SELECT trace_id, correlation_id FROM logs
             WHERE trace_id IS NOT NULL OR correlation_id IS NOT NULL",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if let Some(t) = row.get_ref(0)?.as_blob_or_null()? {
                traces.push(keys.trace(&super::read::blob_id::<16>(t)));
            }
            if let Some(c) = row.get_ref(1)?.as_str_or_null()? {
                correlations.push(keys.correlation(c));
            }
        }
        Ok(Self {
            keys,
            traces: bloom(traces.iter().copied(), traces.len()),
            correlations: bloom(correlations.iter().copied(), correlations.len()),
            range: log_range(conn)?,
        })
    }

    pub(super) fn may_hold_trace(&self, trace: &TraceId) -> bool {
        self.traces.contains(&self.keys.trace(trace))
    }

    pub(super) fn may_hold_correlation(&self, correlation: &str) -> bool {
        self.correlations
            .contains(&self.keys.correlation(correlation))
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

/// Every (key, part) pair of one lookup, sorted as SQLite sorts signed integers.
fn pairs(heads: &HashMap<u64, u32, FastState>, prev: &[u32]) -> KeyRows {
    let mut rows = Vec::with_capacity(heads.len());
    for (&key, &head) in heads {
        rows.extend(chain(Some(head), prev).map(|part| (key as i64, part)));
    }
    rows.sort_unstable();
    rows
}

/// Follows a chain of strictly decreasing rowids, so that a stale link can never loop.
fn chain(head: Option<u32>, prev: &[u32]) -> impl Iterator<Item = i64> + '_ {
    let mut at = head.unwrap_or(0);
    std::iter::from_fn(move || {
        if at == 0 {
            return None;
        }
        let here = at;
        let next = prev.get(at as usize).copied().unwrap_or(0);
        at = if next < at { next } else { 0 };
        Some(i64::from(here))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_find_all_their_references_newest_first() {
        let mut index = OpenIndex::new(Keys::random());
        index.add(1, Some(&[1; 16]), Some("c-1"));
        index.add(2, Some(&[2; 16]), None);
        index.add(3, Some(&[1; 16]), Some("c-2"));
        // A correlation ID first carried by a span inside a run: no trace reference.
        index.add(5, None, Some("c-2"));
        index.add(7, Some(&[1; 16]), Some("c-1"));
        assert_eq!(index.trace_refs(&[1; 16]), vec![7, 3, 1]);
        assert_eq!(index.trace_refs(&[2; 16]), vec![2]);
        assert!(index.trace_refs(&[9; 16]).is_empty());
        assert_eq!(index.correlation_refs("c-1"), vec![7, 1]);
        assert_eq!(index.correlation_refs("c-2"), vec![5, 3]);
        assert!(index.correlation_refs("c-3").is_empty());
        index.clear();
        assert!(index.trace_refs(&[1; 16]).is_empty());
    }

    #[test]
    fn filters_hold_every_key_and_few_others() {
        let mut index = OpenIndex::new(Keys::random());
        for i in 1..=10_000u32 {
            let mut trace = [0u8; 16];
            trace[..4].copy_from_slice(&i.to_le_bytes());
            index.add(i64::from(i), Some(&trace), Some(&format!("c-{i}")));
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
        // The catalog's first tables: spans and trace_parts as segment formats 1 and 2 had.
        conn.execute_batch(crate::store::schema::MIGRATIONS[0])
            .expect("schema");
        for i in 1..=100u8 {
            conn.execute(
                "INSERT INTO trace_parts (trace_id, first_span, last_span, span_count, start_ns,
                    end_ns, error, correlation_id) VALUES (?1, 1, 1, 1, 0, 0, 0, ?2)",
                rusqlite::params![&[i; 16][..], (i % 2 == 0).then(|| format!("c-{i}"))],
            )
            .expect("insert");
        }
        let filters = SegmentFilters::from_parts(&conn, Keys::random()).expect("read");
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
        let mut index = OpenIndex::new(Keys::random());
        index.add(5, Some(&[1; 16]), None);
        // Rowid 2 handed out again after a delete, chained to the newer head 5.
        index.add(2, Some(&[1; 16]), None);
        assert_eq!(index.trace_refs(&[1; 16]), vec![2]);
    }

    #[test]
    fn span_rows_reference_where_runs_start_and_where_correlations_first_appear() {
        let conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(crate::store::schema::SEGMENT_SCHEMA)
            .expect("schema");
        // Rowids 1..=7: (trace, correlation ID). Rows 1-3 and 6 are two runs of trace 1.
        let rows: [(u8, Option<&str>); 7] = [
            (1, Some("a")),
            (1, Some("a")),
            (1, Some("b")),
            (2, None),
            (2, Some("a")),
            (1, Some("a")),
            (3, None),
        ];
        for (trace, correlation) in rows {
            conn.execute(
                "INSERT INTO spans (trace_id, span_id, service_id, op_id, resource_id, scope_id,
                    kind, start_ns, duration_ns, status_code, attributes, correlation_id, flags)
                 VALUES (?1, x'0102030405060708', 1, 1, 1, 1, 0, 0, 0, 0, '{}', ?2, 0)",
                rusqlite::params![&[trace; 16][..], correlation],
            )
            .expect("insert");
        }
        let keys = Keys::random();
        let format = Format { keys, version: 3 };
        let index = OpenIndex::rebuild(&conn, format, &Names::default()).expect("rebuild");
        assert_eq!(index.trace_refs(&[1; 16]), vec![6, 1]);
        assert_eq!(index.trace_refs(&[2; 16]), vec![4]);
        assert_eq!(index.trace_refs(&[3; 16]), vec![7]);
        assert_eq!(index.correlation_refs("a"), vec![6, 5, 1]);
        assert_eq!(index.correlation_refs("b"), vec![3]);
        // The seal's pairs read from the file are the ones the rebuilt maps hold.
        let (traces, correlations) =
            key_rows_of_file(&conn, keys, Lookup::SpanKeys).expect("from the file");
        assert_eq!(Some((traces, correlations)), index.key_rows());
    }
}
