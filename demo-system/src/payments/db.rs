//! The payments database: authorizations, and the first answer given to each idempotency key.

use rusqlite::{OptionalExtension, Transaction, params};

use super::api::{Authorization, AuthorizationStatus};
use crate::platform::db::{DbError, json_column, text_column};
use crate::platform::http::now_unix_ms;

pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS authorizations (
        id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('authorized', 'declined', 'refunded')),
        reason TEXT,
        created_unix_ms INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS authorizations_by_order ON authorizations (order_id, created_unix_ms);
    CREATE TABLE IF NOT EXISTS idempotency_keys (
        key TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        status INTEGER NOT NULL,
        response TEXT NOT NULL
    );
";

pub fn insert(tx: &Transaction<'_>, a: &Authorization) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO authorizations (id, order_id, amount_cents, status, reason, created_unix_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            a.id,
            a.order_id,
            a.amount_cents,
            a.status.as_str(),
            a.reason,
            now_unix_ms()
        ],
    )?;
    Ok(())
}

fn authorization(r: &rusqlite::Row<'_>) -> rusqlite::Result<Authorization> {
    Ok(Authorization {
        id: r.get(0)?,
        order_id: r.get(1)?,
        amount_cents: r.get(2)?,
        status: text_column(r, 3, AuthorizationStatus::parse)?,
        reason: r.get(4)?,
    })
}

pub fn load(tx: &Transaction<'_>, id: &str) -> Result<Option<Authorization>, DbError> {
    Ok(tx
        .query_row(
            "SELECT id, order_id, amount_cents, status, reason FROM authorizations WHERE id = ?1",
            [id],
            authorization,
        )
        .optional()?)
}

/// The authorizations of one order, oldest first.
pub fn of_order(tx: &Transaction<'_>, order_id: &str) -> Result<Vec<Authorization>, DbError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, order_id, amount_cents, status, reason FROM authorizations
         WHERE order_id = ?1 ORDER BY created_unix_ms, id",
    )?;
    let rows = stmt
        .query_map([order_id], authorization)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn mark_refunded(tx: &Transaction<'_>, id: &str) -> Result<(), DbError> {
    tx.execute(
        "UPDATE authorizations SET status = 'refunded' WHERE id = ?1",
        [id],
    )?;
    Ok(())
}

/// The first answer given to `key`: the request it was for, its status and body.
pub fn stored_answer(
    tx: &Transaction<'_>,
    key: &str,
) -> Result<Option<(String, u16, Authorization)>, DbError> {
    Ok(tx
        .query_row(
            "SELECT request, status, response FROM idempotency_keys WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?, json_column(r, 2)?)),
        )
        .optional()?)
}

pub fn remember(
    tx: &Transaction<'_>,
    key: &str,
    request: &str,
    status: u16,
    body: &Authorization,
) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO idempotency_keys (key, request, status, response) VALUES (?1, ?2, ?3, ?4)",
        params![key, request, status, serde_json::to_string(body)?],
    )?;
    Ok(())
}
