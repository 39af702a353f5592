//! The notifications database: every notification recorded, once per order event, and
//! every stock alert, once per `stock.low` event.

use rusqlite::{Transaction, params};

use super::api::{Notification, NotificationQuery, StockAlert};
use crate::platform::db::DbError;

pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS notifications (
        id INTEGER PRIMARY KEY,
        order_id TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        event_id TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS notifications_by_order ON notifications (order_id);
    CREATE TABLE IF NOT EXISTS stock_alerts (
        id INTEGER PRIMARY KEY,
        sku TEXT NOT NULL,
        on_hand INTEGER NOT NULL,
        message TEXT NOT NULL,
        reservation_id TEXT NOT NULL,
        event_id TEXT NOT NULL
    );
";

pub fn insert(tx: &Transaction<'_>, n: &Notification) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO notifications (order_id, customer_id, kind, message, event_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![n.order_id, n.customer_id, n.kind, n.message, n.event_id],
    )
    .map(drop)
}

pub fn list(tx: &Transaction<'_>, q: &NotificationQuery) -> Result<Vec<Notification>, DbError> {
    let mut stmt = tx.prepare_cached(
        "SELECT order_id, customer_id, kind, message, event_id FROM notifications
         WHERE (?1 IS NULL OR order_id = ?1) AND (?2 IS NULL OR customer_id = ?2) ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![q.order_id, q.customer_id], |r| {
            Ok(Notification {
                order_id: r.get(0)?,
                customer_id: r.get(1)?,
                kind: r.get(2)?,
                message: r.get(3)?,
                event_id: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn insert_alert(tx: &Transaction<'_>, a: &StockAlert) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO stock_alerts (sku, on_hand, message, reservation_id, event_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![a.sku, a.on_hand, a.message, a.reservation_id, a.event_id],
    )
    .map(drop)
}

pub fn alerts(tx: &Transaction<'_>) -> Result<Vec<StockAlert>, DbError> {
    let mut stmt = tx.prepare_cached(
        "SELECT sku, on_hand, message, reservation_id, event_id FROM stock_alerts ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(StockAlert {
                sku: r.get(0)?,
                on_hand: r.get(1)?,
                message: r.get(2)?,
                reservation_id: r.get(3)?,
                event_id: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
