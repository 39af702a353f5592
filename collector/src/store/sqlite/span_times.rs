//! A segment's search lookup from segment format 4: its spans by service and start time.
//! A live SQLite index on (service, start) took each commit's inserts scattered over the last
//! seconds of every service, so a commit dirtied hundreds of index pages and wrote each whole
//! into the WAL (with one-span traces, half the WAL and a quarter of the collector's CPU). So
//! the open segment keeps these entries in memory (sorted runs, rebuilt from `spans` on
//! start), and sealing writes them, sorted, into `span_times` as blocks of about a page, one
//! row per block with its service and start range.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};

use crate::store::StoreError;

/// One span as search sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SpanTime {
    pub(super) start_ns: i64,
    pub(super) span: i64,
    pub(super) op: i64,
    pub(super) duration_ns: i64,
}

/// Which spans of one service a search wants, besides their start window.
#[derive(Debug, Clone, Default)]
pub(super) struct Wanted {
    pub(super) ops: Option<Vec<i64>>,
    pub(super) min_duration_ns: Option<i64>,
    pub(super) max_duration_ns: Option<i64>,
}

impl Wanted {
    fn admits(&self, t: &SpanTime) -> bool {
        self.ops.as_ref().is_none_or(|ops| ops.contains(&t.op))
            && self.min_duration_ns.is_none_or(|d| t.duration_ns >= d)
            && self.max_duration_ns.is_none_or(|d| t.duration_ns <= d)
    }
}

/// The open segment's entries, per service: sorted runs, and the newest entries not sorted
/// yet. About 32 bytes a span. An ordered map took a tree descent and a node shift for each
/// span the writer added (4% of ingest's CPU); appending, then sorting a run of `RUN`
/// entries and merging runs of like sizes (each entry is moved about log2(n / RUN) times,
/// sequentially) costs a fraction of that, and a search merges a few sorted slices.
#[derive(Debug, Default)]
pub(super) struct ServiceTimes {
    services: HashMap<i64, Runs>,
}

/// Entries made a sorted run at a time.
const RUN: usize = 1024;

#[derive(Debug, Default)]
struct Runs {
    /// Sorted by (start, span); each run at least twice as long as the next.
    sorted: Vec<Vec<SpanTime>>,
    /// Fewer than `RUN`, in the order added.
    tail: Vec<SpanTime>,
}

fn order(t: &SpanTime) -> (i64, i64) {
    (t.start_ns, t.span)
}

/// Two sorted runs as one.
fn merge(a: &[SpanTime], b: &[SpanTime]) -> Vec<SpanTime> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if order(&a[i]) <= order(&b[j]) {
            out.push(a[i]);
            i += 1;
        } else {
            out.push(b[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

impl Runs {
    fn add(&mut self, t: SpanTime) {
        self.tail.push(t);
        if self.tail.len() < RUN {
            return;
        }
        let mut run = std::mem::replace(&mut self.tail, Vec::with_capacity(RUN));
        run.sort_unstable_by_key(order);
        self.sorted.push(run);
        while let [.., older, newer] = &self.sorted[..]
            && older.len() <= 2 * newer.len()
        {
            let merged = merge(older, newer);
            self.sorted.truncate(self.sorted.len() - 2);
            self.sorted.push(merged);
        }
    }

    /// Every entry, sorted.
    fn all(&self) -> Vec<SpanTime> {
        let mut tail = self.tail.clone();
        tail.sort_unstable_by_key(order);
        self.sorted.iter().fold(tail, |all, run| merge(&all, run))
    }
}

impl ServiceTimes {
    pub(super) fn add(&mut self, service: i64, t: SpanTime) {
        self.services.entry(service).or_default().add(t);
    }

    /// Reads a segment's spans back into memory (after a restart, or a seal cut short).
    pub(super) fn rebuild(conn: &Connection) -> Result<Self, StoreError> {
        let mut times = Self::default();
        let mut stmt =
            conn.prepare("SELECT service_id, start_ns, id, op_id, duration_ns FROM spans")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            times.add(
                r.get(0)?,
                SpanTime {
                    start_ns: r.get(1)?,
                    span: r.get(2)?,
                    op: r.get(3)?,
                    duration_ns: r.get(4)?,
                },
            );
        }
        Ok(times)
    }

    /// Up to `n` wanted entries of `service` that started in `[lo, hi]`, newest first,
    /// strictly older than `before` (the last entry of the previous page) if given.
    pub(super) fn page(
        &self,
        service: i64,
        (lo, hi): (i64, i64),
        wanted: &Wanted,
        before: Option<SpanTime>,
        n: usize,
    ) -> Vec<SpanTime> {
        let Some(runs) = self.services.get(&service) else {
            return Vec::new();
        };
        let below = |t: &SpanTime| match before {
            Some(b) => order(t) < order(&b),
            None => t.start_ns <= hi,
        };
        let in_window = |t: &SpanTime| t.start_ns >= lo && below(t);
        let mut tail: Vec<SpanTime> = runs.tail.iter().copied().filter(in_window).collect();
        tail.sort_unstable_by_key(order);
        // Each run's part in the window; the newest of them all is taken, one at a time.
        let mut parts: Vec<&[SpanTime]> = runs
            .sorted
            .iter()
            .map(|r| &r[r.partition_point(|t| t.start_ns < lo)..r.partition_point(below)])
            .collect();
        parts.push(&tail);
        let mut out = Vec::new();
        while out.len() < n {
            let newest = parts
                .iter()
                .enumerate()
                .filter_map(|(i, p)| p.last().map(|t| (order(t), i)))
                .max();
            let Some((_, i)) = newest else { break };
            let (rest, last) = parts[i].split_at(parts[i].len() - 1);
            parts[i] = rest;
            if wanted.admits(&last[0]) {
                out.push(last[0]);
            }
        }
        out
    }
}

/// Bytes per stored entry: start, span rowid, operation, duration, little-endian.
const ENTRY: usize = 32;

/// Entries per block: 3,840 bytes, which with its row header fits a 4 KiB page (four fit
/// the 16 KiB pages new segment files have).
const BLOCK_ENTRIES: usize = 120;

/// Writes the sealed segment's blocks, in (service, start, span) order.
pub(super) fn write(tx: &Transaction<'_>, times: &ServiceTimes) -> Result<(), StoreError> {
    tx.execute("DELETE FROM span_times", [])?;
    let mut insert = tx.prepare(
        "INSERT INTO span_times (service_id, first_start, last_start, entries)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut blob = Vec::with_capacity(BLOCK_ENTRIES * ENTRY);
    let mut block: Option<(i64, i64, i64)> = None;
    let mut flush = |block: (i64, i64, i64), blob: &mut Vec<u8>| -> Result<(), StoreError> {
        insert.execute(params![block.0, block.1, block.2, &blob[..]])?;
        blob.clear();
        Ok(())
    };
    let mut services: Vec<(&i64, &Runs)> = times.services.iter().collect();
    services.sort_unstable_by_key(|(service, _)| **service);
    for (&service, runs) in services {
        for t in runs.all() {
            if let Some(b) = block
                && (b.0 != service || blob.len() >= BLOCK_ENTRIES * ENTRY)
            {
                flush(b, &mut blob)?;
                block = None;
            }
            let b = block.get_or_insert((service, t.start_ns, t.start_ns));
            b.2 = t.start_ns;
            for v in [t.start_ns, t.span, t.op, t.duration_ns] {
                blob.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    if let Some(b) = block {
        flush(b, &mut blob)?;
    }
    Ok(())
}

/// Calls `each` with the wanted entries of `service` in a sealed segment's blocks that
/// started in `[lo, hi]`, newest first, until it returns false.
pub(super) fn read(
    conn: &Connection,
    service: i64,
    (lo, hi): (i64, i64),
    wanted: &Wanted,
    mut each: impl FnMut(SpanTime) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT entries FROM span_times
         WHERE service_id = ?1 AND last_start >= ?2 AND first_start <= ?3
         ORDER BY last_start DESC, id DESC",
    )?;
    let mut rows = stmt.query(params![service, lo, hi])?;
    while let Some(row) = rows.next()? {
        for t in decode(row.get_ref(0)?.as_blob()?).rev() {
            if t.start_ns < lo || t.start_ns > hi || !wanted.admits(&t) {
                continue;
            }
            if !each(t)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A block's entries; a truncated tail (a damaged file) is ignored.
fn decode(block: &[u8]) -> impl DoubleEndedIterator<Item = SpanTime> + '_ {
    block.chunks_exact(ENTRY).map(|e| {
        let v = |i: usize| i64::from_le_bytes(e[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        SpanTime {
            start_ns: v(0),
            span: v(1),
            op: v(2),
            duration_ns: v(3),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(entries: &[(i64, i64, i64, i64, i64)]) -> ServiceTimes {
        let mut times = ServiceTimes::default();
        for &(service, start_ns, span, op, duration_ns) in entries {
            times.add(
                service,
                SpanTime {
                    start_ns,
                    span,
                    op,
                    duration_ns,
                },
            );
        }
        times
    }

    /// The sealed blocks answer every window exactly as the in-memory runs do.
    #[test]
    fn blocks_answer_as_the_runs_newest_first() {
        let mut entries = Vec::new();
        let mut x: u64 = 7;
        // Enough per service for runs of several sizes, merged.
        for span in 1..=20_000i64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let service = (x >> 60) as i64 % 3 + 1;
            // Many equal start times, so that blocks start and end inside a run of them.
            let start = ((x >> 20) % 1_000) as i64;
            entries.push((
                service,
                start,
                span,
                (x >> 40) as i64 % 4,
                (x >> 8) as i64 % 100,
            ));
        }
        let times = times(&entries);
        let conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(crate::store::schema::SEGMENT_SCHEMA)
            .expect("schema");
        let tx = conn.unchecked_transaction().expect("tx");
        write(&tx, &times).expect("write");
        tx.commit().expect("commit");
        let blocks: i64 = conn
            .query_row("SELECT count(*) FROM span_times", [], |r| r.get(0))
            .expect("count");
        assert!(blocks > 40, "{blocks} blocks");
        let cases = [
            ((0, 999), Wanted::default()),
            ((250, 260), Wanted::default()),
            (
                (100, 900),
                Wanted {
                    ops: Some(vec![1, 3]),
                    min_duration_ns: Some(20),
                    max_duration_ns: Some(70),
                },
            ),
            ((2_000, 3_000), Wanted::default()),
        ];
        for service in 1..=4 {
            for (window, wanted) in &cases {
                let mut expected: Vec<SpanTime> = entries
                    .iter()
                    .filter(|e| e.0 == service && e.1 >= window.0 && e.1 <= window.1)
                    .map(|&(_, start_ns, span, op, duration_ns)| SpanTime {
                        start_ns,
                        span,
                        op,
                        duration_ns,
                    })
                    .filter(|t| wanted.admits(t))
                    .collect();
                expected.sort_by_key(|t| std::cmp::Reverse((t.start_ns, t.span)));
                let mut sealed = Vec::new();
                read(&conn, service, *window, wanted, |t| {
                    sealed.push(t);
                    Ok(true)
                })
                .expect("read");
                assert_eq!(sealed, expected, "service {service}, {window:?}");
                // The runs, paged 7 at a time.
                let mut open = Vec::new();
                loop {
                    let page = times.page(service, *window, wanted, open.last().copied(), 7);
                    if page.is_empty() {
                        break;
                    }
                    open.extend(page);
                }
                assert_eq!(open, expected, "service {service}, {window:?}");
            }
        }
        // Stopping early stops.
        let mut seen = 0;
        read(&conn, 1, (0, 999), &Wanted::default(), |_| {
            seen += 1;
            Ok(seen < 3)
        })
        .expect("read");
        assert_eq!(seen, 3);
    }
}
