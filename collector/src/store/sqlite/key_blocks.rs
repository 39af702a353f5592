//! A sealed segment's trace-ID and correlation-ID lookups: its sorted (key, part rowid) pairs
//! stored in blocks of about a page, one row per block keyed by the block's first key. A seal
//! writes a few thousand rows in key order (a million pairs per second and more), where an
//! index over a million rows meant an external sort; a lookup is one rowid descent and a
//! binary search in one block.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::open_index::KeyRows;
use crate::store::StoreError;

/// Bytes per stored pair: the key and the part rowid, little-endian.
const PAIR: usize = 16;

/// Pairs per block: 3,840 bytes, which with its row header still fits a 4 KiB page without
/// an overflow page. Equal keys may make a block longer.
const BLOCK_PAIRS: usize = 240;

/// The two key tables of a segment file.
#[derive(Debug, Clone, Copy)]
pub(super) enum KeyTable {
    Traces,
    Correlations,
}

impl KeyTable {
    fn name(self) -> &'static str {
        match self {
            Self::Traces => "trace_keys",
            Self::Correlations => "correlation_keys",
        }
    }
}

/// Replaces a table's blocks with `rows` (sorted by key, then part).
pub(super) fn write(
    tx: &Transaction<'_>,
    table: KeyTable,
    rows: &KeyRows,
) -> Result<(), StoreError> {
    let name = table.name();
    tx.execute(&format!("DELETE FROM {name}"), [])?;
    let mut insert = tx.prepare(&format!(
        "INSERT INTO {name} (first_key, entries) VALUES (?1, ?2)"
    ))?;
    let mut blob = Vec::with_capacity(BLOCK_PAIRS * PAIR);
    let mut start = 0;
    while start < rows.len() {
        let mut end = (start + BLOCK_PAIRS).min(rows.len());
        // A key's pairs stay in one block: the block holding a key is the one whose first key
        // is the greatest not above it.
        while end < rows.len() && rows[end].0 == rows[end - 1].0 {
            end += 1;
        }
        blob.clear();
        for (key, part) in &rows[start..end] {
            blob.extend_from_slice(&key.to_le_bytes());
            blob.extend_from_slice(&part.to_le_bytes());
        }
        insert.execute(params![rows[start].0, blob])?;
        start = end;
    }
    Ok(())
}

/// The part rowids stored under `key`.
pub(super) fn find(conn: &Connection, table: KeyTable, key: i64) -> Result<Vec<i64>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT entries FROM {} WHERE first_key <= ?1 ORDER BY first_key DESC LIMIT 1",
        table.name()
    ))?;
    let Some(block) = stmt
        .query_row([key], |r| r.get::<_, Vec<u8>>(0))
        .optional()?
    else {
        return Ok(Vec::new());
    };
    let pairs: Vec<(i64, i64)> = decode(&block).collect();
    let from = pairs.partition_point(|(k, _)| *k < key);
    Ok(pairs[from..]
        .iter()
        .take_while(|(k, _)| *k == key)
        .map(|(_, part)| *part)
        .collect())
}

/// Every key in the table, for the segment's filters.
pub(super) fn all_keys(conn: &Connection, table: KeyTable) -> Result<Vec<u64>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT entries FROM {}", table.name()))?;
    let mut rows = stmt.query([])?;
    let mut keys = Vec::new();
    while let Some(row) = rows.next()? {
        keys.extend(decode(row.get_ref(0)?.as_blob()?).map(|(k, _)| k as u64));
    }
    Ok(keys)
}

/// A block's pairs; a truncated tail (a damaged file) is ignored.
fn decode(block: &[u8]) -> impl Iterator<Item = (i64, i64)> + '_ {
    block.chunks_exact(PAIR).map(|pair| {
        let (key, part) = pair.split_at(8);
        (
            i64::from_le_bytes(key.try_into().unwrap_or_default()),
            i64::from_le_bytes(part.try_into().unwrap_or_default()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: &KeyRows) -> Connection {
        let mut conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(crate::store::schema::SEGMENT_KEY_TABLES)
            .expect("schema");
        let tx = conn.transaction().expect("tx");
        write(&tx, KeyTable::Traces, rows).expect("write");
        tx.commit().expect("commit");
        conn
    }

    #[test]
    fn every_key_finds_all_its_parts_across_many_blocks() {
        // Keys with one to seven parts each, negative and positive, many blocks.
        let mut rows: KeyRows = Vec::new();
        let mut part = 0;
        for k in -3_000i64..3_000 {
            for _ in 0..=(k.rem_euclid(7)) {
                part += 1;
                rows.push((k * 1_000_003, part));
            }
        }
        rows.sort_unstable();
        let conn = table(&rows);
        let blocks: i64 = conn
            .query_row("SELECT count(*) FROM trace_keys", [], |r| r.get(0))
            .expect("count");
        assert!(blocks > 50, "{blocks} blocks");
        for k in -3_000i64..3_000 {
            let want: Vec<i64> = rows
                .iter()
                .filter(|r| r.0 == k * 1_000_003)
                .map(|r| r.1)
                .collect();
            assert_eq!(
                find(&conn, KeyTable::Traces, k * 1_000_003).expect("find"),
                want
            );
            assert!(
                find(&conn, KeyTable::Traces, k * 1_000_003 + 1)
                    .expect("find")
                    .is_empty()
            );
        }
        assert!(
            find(&conn, KeyTable::Traces, i64::MIN)
                .expect("find")
                .is_empty()
        );
        assert!(
            find(&conn, KeyTable::Correlations, 0)
                .expect("find")
                .is_empty()
        );
        let mut keys = all_keys(&conn, KeyTable::Traces).expect("keys");
        keys.dedup();
        assert_eq!(keys.len(), 6_000);
    }

    #[test]
    fn a_key_with_more_parts_than_a_block_stays_in_one() {
        let mut rows: KeyRows = (1..=10).map(|p| (5, p)).collect();
        rows.extend((11..=1_000).map(|p| (7, p)));
        rows.extend((1_001..=1_010).map(|p| (9, p)));
        let conn = table(&rows);
        assert_eq!(find(&conn, KeyTable::Traces, 7).expect("find").len(), 990);
        assert_eq!(find(&conn, KeyTable::Traces, 9).expect("find").len(), 10);
        assert_eq!(find(&conn, KeyTable::Traces, 5).expect("find").len(), 10);
    }

    #[test]
    fn writing_again_replaces_the_blocks() {
        let mut conn = table(&vec![(1, 1), (2, 2)]);
        let tx = conn.transaction().expect("tx");
        write(&tx, KeyTable::Traces, &vec![(3, 3)]).expect("write");
        tx.commit().expect("commit");
        assert!(find(&conn, KeyTable::Traces, 1).expect("find").is_empty());
        assert_eq!(find(&conn, KeyTable::Traces, 3).expect("find"), vec![3]);
    }
}
