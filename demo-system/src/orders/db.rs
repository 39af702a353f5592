//! The orders database's projection and keys: the `orders` table, each order as its
//! stream of events makes it (see [`super::events`]), with the stream's version; and the
//! idempotency keys of `POST /orders`.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

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
        updated_unix_ms INTEGER NOT NULL,
        version INTEGER NOT NULL DEFAULT 0
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

/// Adds the stream version to an `orders` table from before the event store.
pub fn migrate(conn: &Connection) -> Result<(), DbError> {
    if !crate::platform::db::has_column(conn, "orders", "version")? {
        conn.execute(
            "ALTER TABLE orders ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            [],
        )?;
    }
    Ok(())
}

pub fn load(conn: &Connection, id: &str) -> Result<Option<Order>, DbError> {
    Ok(load_versioned(conn, id)?.map(|(o, _)| o))
}

/// The order and the version of its stream it reflects.
pub fn load_versioned(conn: &Connection, id: &str) -> Result<Option<(Order, i64)>, DbError> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS}, version FROM orders WHERE id = ?1"),
            [id],
            |r| Ok((order_row(r)?, r.get(7)?)),
        )
        .optional()?)
}

/// A customer's orders, oldest first.
pub fn of_customer(conn: &Connection, customer_id: &str) -> Result<Vec<Order>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM orders WHERE customer_id = ?1 ORDER BY created_unix_ms, id"
    ))?;
    let rows = stmt
        .query_map([customer_id], order_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Writes `order` as its stream's version `version` makes it (placed at `created_unix_ms`).
pub fn project(
    tx: &Transaction<'_>,
    order: &Order,
    version: i64,
    created_unix_ms: i64,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO orders (id, customer_id, items, total_cents, status, payment_id, reason,
             created_unix_ms, updated_unix_ms, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET status = excluded.status,
             payment_id = excluded.payment_id, reason = excluded.reason,
             updated_unix_ms = excluded.updated_unix_ms, version = excluded.version",
        params![
            order.id,
            order.customer_id,
            serde_json::to_string(&order.items)?,
            order.total_cents,
            order.status.as_str(),
            order.payment_id,
            order.reason,
            created_unix_ms,
            now_unix_ms(),
            version
        ],
    )?;
    Ok(())
}

/// Orders whose saga has not finished and that have not moved since `before` (parked,
/// rather than in the middle of a request's saga), oldest first.
pub fn unfinished(tx: &Transaction<'_>, before: i64) -> Result<Vec<String>, DbError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id FROM orders WHERE status NOT IN ('confirmed', 'cancelled', 'rejected')
             AND updated_unix_ms <= ?1 ORDER BY created_unix_ms",
    )?;
    let ids = stmt
        .query_map([before], |r| r.get(0))?
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
