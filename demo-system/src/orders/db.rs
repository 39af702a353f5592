//! The orders database: each order with its saga state, and the idempotency keys of
//! `POST /orders`.

use rusqlite::{OptionalExtension, Transaction, params};

use super::api::{Order, OrderStatus};
use crate::platform::db::{DbError, json_column, text_column};
use crate::platform::http::now_unix_ms;

pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS orders (
        id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        items TEXT NOT NULL,
        total_cents INTEGER NOT NULL,
        status TEXT NOT NULL,
        payment_id TEXT,
        reason TEXT,
        created_unix_ms INTEGER NOT NULL,
        updated_unix_ms INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, created_unix_ms);
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        order_id TEXT NOT NULL
    );
";

const COLUMNS: &str = "id, customer_id, items, total_cents, status, payment_id, reason";

fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    Ok(Order {
        id: r.get(0)?,
        customer_id: r.get(1)?,
        items: json_column(r, 2)?,
        total_cents: r.get(3)?,
        status: text_column(r, 4, OrderStatus::parse)?,
        payment_id: r.get(5)?,
        reason: r.get(6)?,
    })
}

pub fn load(tx: &Transaction<'_>, id: &str) -> Result<Option<Order>, DbError> {
    Ok(tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM orders WHERE id = ?1"),
            [id],
            order_row,
        )
        .optional()?)
}

/// A customer's orders, oldest first.
pub fn of_customer(tx: &Transaction<'_>, customer_id: &str) -> Result<Vec<Order>, DbError> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM orders WHERE customer_id = ?1 ORDER BY created_unix_ms, id"
    ))?;
    let rows = stmt
        .query_map([customer_id], order_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn insert(tx: &Transaction<'_>, o: &Order) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO orders (id, customer_id, items, total_cents, status, created_unix_ms, updated_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![
            o.id,
            o.customer_id,
            serde_json::to_string(&o.items)?,
            o.total_cents,
            o.status.as_str(),
            now_unix_ms()
        ],
    )?;
    Ok(())
}

/// Moves an order from `from` to `status`, setting its payment ID and reason when given;
/// `false` if it was no longer in `from` (another run of its saga moved it first).
pub fn update(
    tx: &Transaction<'_>,
    id: &str,
    from: OrderStatus,
    status: OrderStatus,
    payment_id: Option<&str>,
    reason: Option<&str>,
) -> Result<bool, DbError> {
    let changed = tx.execute(
        "UPDATE orders SET status = ?2, payment_id = coalesce(?3, payment_id),
            reason = coalesce(?4, reason), updated_unix_ms = ?5 WHERE id = ?1 AND status = ?6",
        params![
            id,
            status.as_str(),
            payment_id,
            reason,
            now_unix_ms(),
            from.as_str()
        ],
    )?;
    Ok(changed == 1)
}

/// Orders whose saga has not finished, oldest first.
pub fn unfinished(tx: &Transaction<'_>) -> Result<Vec<String>, DbError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id FROM orders WHERE status NOT IN ('confirmed', 'cancelled', 'rejected') ORDER BY created_unix_ms",
    )?;
    let ids = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(ids)
}

/// The order an idempotency key already made, or why the key cannot be used again.
pub fn known_key(
    tx: &Transaction<'_>,
    key: &str,
    request: &str,
) -> Result<Option<Result<String, String>>, DbError> {
    let row: Option<(String, String)> = tx
        .query_row(
            "SELECT request, order_id FROM idempotency_keys WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(row.map(|(req, order_id)| {
        if req == request {
            Ok(order_id)
        } else {
            Err(format!(
                "Idempotency-Key {key:?} was already used for a different order"
            ))
        }
    }))
}

pub fn remember_key(
    tx: &Transaction<'_>,
    key: &str,
    request: &str,
    order_id: &str,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO idempotency_keys (key, request, order_id) VALUES (?1, ?2, ?3)",
        params![key, request, order_id],
    )?;
    Ok(())
}
