//! Orders' periodic settlement: once per period, the leader (see
//! [`crate::platform::leadership`]) sums the orders confirmed in the period that just ended
//! and records it, as a payout to the shop would be; `GET /settlements` lists them. It is
//! singleton work: each run is a trace of its own (`settlement run`, with
//! `settlement.period`), so a period run twice (two leaders, or none elected) shows there.
//! Every write carries the leader's fencing token, and is refused when a larger one was
//! seen already: a leader that was paused in the middle of a run and resumes after another
//! took over cannot record what the new one may have recorded.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use crate::platform::db::DbError;

pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS settlements (
        period_start_unix_ms INTEGER PRIMARY KEY,
        period_ms INTEGER NOT NULL,
        orders INTEGER NOT NULL,
        total_cents INTEGER NOT NULL,
        token INTEGER NOT NULL,
        holder TEXT NOT NULL,
        settled_unix_ms INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS fences (
        name TEXT PRIMARY KEY,
        token INTEGER NOT NULL
    );
";

/// One settled period (`GET /settlements` lists them, newest first).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settlement {
    pub period_start_unix_ms: i64,
    pub period_ms: i64,
    /// Orders confirmed in the period, and their total.
    pub orders: i64,
    pub total_cents: i64,
    /// The fencing token of the leader that recorded it, and which instance that was.
    pub token: i64,
    pub holder: String,
    pub settled_unix_ms: i64,
}

/// What recording a settlement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Settled(Settlement),
    /// The period was settled before (by this leader, or one before it).
    AlreadySettled,
    /// A leader with a larger token wrote already: this one's term is over.
    Fenced {
        token: i64,
        newest: i64,
    },
}

/// Raises the fence `name` to `token`; `Err(newest)` when a larger token was seen.
pub fn fence(tx: &Transaction<'_>, name: &str, token: i64) -> Result<Result<(), i64>, DbError> {
    let newest: Option<i64> = tx
        .query_row("SELECT token FROM fences WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(newest) = newest.filter(|n| *n > token) {
        return Ok(Err(newest));
    }
    tx.execute(
        "INSERT INTO fences (name, token) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET token = excluded.token",
        params![name, token],
    )?;
    Ok(Ok(()))
}

/// Settles the period starting at `start`: behind the fence, unless settled already.
pub fn record(
    tx: &Transaction<'_>,
    start: i64,
    period_ms: i64,
    token: i64,
    holder: &str,
) -> Result<Recorded, DbError> {
    if let Err(newest) = fence(tx, "settlement", token)? {
        return Ok(Recorded::Fenced { token, newest });
    }
    let settled: bool = tx.query_row(
        "SELECT count(*) > 0 FROM settlements WHERE period_start_unix_ms = ?1",
        [start],
        |r| r.get(0),
    )?;
    if settled {
        return Ok(Recorded::AlreadySettled);
    }
    let (orders, total_cents): (i64, i64) = tx.query_row(
        "SELECT count(*), coalesce(sum(total_cents), 0) FROM orders
         WHERE status = 'confirmed' AND updated_unix_ms >= ?1 AND updated_unix_ms < ?2",
        params![start, start + period_ms],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let s = Settlement {
        period_start_unix_ms: start,
        period_ms,
        orders,
        total_cents,
        token,
        holder: holder.to_string(),
        settled_unix_ms: crate::platform::http::now_unix_ms(),
    };
    tx.execute(
        "INSERT INTO settlements (period_start_unix_ms, period_ms, orders, total_cents, token, holder, settled_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![s.period_start_unix_ms, s.period_ms, s.orders, s.total_cents, s.token, s.holder, s.settled_unix_ms],
    )?;
    Ok(Recorded::Settled(s))
}

/// The settlements, newest first, at most `limit`.
pub fn list(tx: &Transaction<'_>, limit: usize) -> Result<Vec<Settlement>, DbError> {
    let mut stmt = tx.prepare_cached(
        "SELECT period_start_unix_ms, period_ms, orders, total_cents, token, holder, settled_unix_ms
         FROM settlements ORDER BY period_start_unix_ms DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
            Ok(Settlement {
                period_start_unix_ms: r.get(0)?,
                period_ms: r.get(1)?,
                orders: r.get(2)?,
                total_cents: r.get(3)?,
                token: r.get(4)?,
                holder: r.get(5)?,
                settled_unix_ms: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use rusqlite::TransactionBehavior::Immediate;

    use super::*;
    use crate::platform::outbox::open_db;

    #[test]
    fn a_stale_leaders_write_is_refused_and_a_period_is_settled_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let schema = format!("{}\n{SCHEMA}", crate::orders::db::SCHEMA);
        let db = open_db(&dir.path().join("orders.sqlite"), &schema).expect("db");
        db.blocking(Immediate, |tx| {
            tx.execute(
                "INSERT INTO orders (id, customer_id, items, total_cents, status, created_unix_ms, updated_unix_ms)
                 VALUES ('o-1', 'c', '[]', 500, 'confirmed', 1000, 1500), ('o-2', 'c', '[]', 700, 'confirmed', 1000, 2500)",
                [],
            )?;
            let first = record(tx, 1000, 1000, 1, "orders-1")?;
            assert!(
                matches!(&first, Recorded::Settled(s) if (s.orders, s.total_cents) == (1, 500)),
                "{first:?}"
            );
            assert_eq!(record(tx, 1000, 1000, 1, "orders-1")?, Recorded::AlreadySettled);
            // orders-2 takes over with token 2 and settles the next period.
            assert!(matches!(record(tx, 2000, 1000, 2, "orders-2")?, Recorded::Settled(_)));
            // orders-1 resumes from a pause and finishes the run it had started.
            assert_eq!(
                record(tx, 3000, 1000, 1, "orders-1")?,
                Recorded::Fenced { token: 1, newest: 2 }
            );
            let periods: Vec<(i64, i64)> = list(tx, 10)?
                .iter()
                .map(|s| (s.period_start_unix_ms, s.token))
                .collect();
            assert_eq!(periods, [(2000, 2), (1000, 1)], "nothing from the stale leader");
            Ok(())
        })
        .expect("tx");
    }
}
