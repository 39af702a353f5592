//! The order-history database: one row per order with its latest state, and every state
//! each order went through.

use rusqlite::{OptionalExtension, Transaction, params};

use super::api::{HistoryStep, OrderView};
use crate::orders::api::{Order, OrderStatus};
use crate::platform::db::{DbError, json_column, text_column};

pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS order_views (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        status TEXT NOT NULL,
        total_cents INTEGER NOT NULL,
        items TEXT NOT NULL,
        last_seq INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS order_views_by_customer ON order_views (customer_id);
    CREATE TABLE IF NOT EXISTS order_history (
        order_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        at_unix_ms INTEGER NOT NULL,
        PRIMARY KEY (order_id, seq)
    );
";

/// Records `order` as of feed position `seq`. Events arrive in feed order; the view keeps
/// the latest even if one is replayed.
pub fn apply(
    tx: &Transaction<'_>,
    order: &Order,
    seq: i64,
    at_unix_ms: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO order_views (order_id, customer_id, status, total_cents, items, last_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, last_seq = excluded.last_seq
         WHERE excluded.last_seq > order_views.last_seq",
        params![
            order.id,
            order.customer_id,
            order.status.as_str(),
            order.total_cents,
            serde_json::to_string(&order.items)?,
            seq
        ],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO order_history (order_id, seq, status, reason, at_unix_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![order.id, seq, order.status.as_str(), order.reason, at_unix_ms],
    )?;
    Ok(())
}

pub fn view(tx: &Transaction<'_>, order_id: &str) -> Result<Option<OrderView>, DbError> {
    Ok(tx
        .query_row(
            "SELECT order_id, customer_id, status, total_cents, items FROM order_views WHERE order_id = ?1",
            [order_id],
            |r| {
                Ok(OrderView {
                    order_id: r.get(0)?,
                    customer_id: r.get(1)?,
                    status: text_column(r, 2, OrderStatus::parse)?,
                    total_cents: r.get(3)?,
                    items: json_column(r, 4)?,
                })
            },
        )
        .optional()?)
}

pub fn steps(tx: &Transaction<'_>, order_id: &str) -> Result<Vec<HistoryStep>, DbError> {
    let mut stmt = tx.prepare_cached(
        "SELECT status, reason, at_unix_ms FROM order_history WHERE order_id = ?1 ORDER BY seq",
    )?;
    let steps = stmt
        .query_map([order_id], |r| {
            Ok(HistoryStep {
                status: text_column(r, 0, OrderStatus::parse)?,
                reason: r.get(1)?,
                at_unix_ms: r.get(2)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(steps)
}

pub fn of_customer(tx: &Transaction<'_>, customer_id: &str) -> Result<Vec<OrderView>, DbError> {
    let mut stmt = tx.prepare_cached(
        "SELECT order_id FROM order_views WHERE customer_id = ?1 ORDER BY last_seq",
    )?;
    let ids = stmt
        .query_map([customer_id], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for id in ids {
        out.extend(view(tx, &id)?);
    }
    Ok(out)
}
