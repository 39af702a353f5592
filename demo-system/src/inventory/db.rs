//! The inventory database: products, stock and reservations (its instances share the file).

use rusqlite::{OptionalExtension, Transaction, params};

use super::api::{CATALOG, Item, Product, Reservation, ReservationStatus, StockLow};
use crate::platform::db::{Db, DbError, text_column};

pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS products (
        sku TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        price_cents INTEGER NOT NULL,
        on_hand INTEGER NOT NULL CHECK (on_hand >= 0)
    );
    CREATE TABLE IF NOT EXISTS reservations (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('reserved', 'confirmed', 'released'))
    );
    CREATE TABLE IF NOT EXISTS reservation_items (
        reservation_id TEXT NOT NULL,
        sku TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity > 0),
        PRIMARY KEY (reservation_id, sku)
    );
";

/// Stocks the catalog the first time (a no-op afterwards).
pub fn stock_catalog(db: &Db) -> Result<(), DbError> {
    db.blocking(rusqlite::TransactionBehavior::Immediate, |tx| {
        for (sku, name, price, stock) in CATALOG {
            tx.execute(
                "INSERT OR IGNORE INTO products (sku, name, price_cents, on_hand) VALUES (?1, ?2, ?3, ?4)",
                params![sku, name, price, stock],
            )?;
        }
        Ok(())
    })
}

const AVAILABLE: &str = "SELECT p.sku, p.name, p.price_cents,
        p.on_hand - coalesce((SELECT sum(i.quantity) FROM reservation_items i
                              JOIN reservations r ON r.id = i.reservation_id
                              WHERE i.sku = p.sku AND r.status = 'reserved'), 0)
    FROM products p";

fn product_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Product> {
    Ok(Product {
        sku: r.get(0)?,
        name: r.get(1)?,
        price_cents: r.get(2)?,
        stock: r.get(3)?,
    })
}

pub fn products(tx: &Transaction<'_>) -> Result<Vec<Product>, DbError> {
    let mut stmt = tx.prepare_cached(&format!("{AVAILABLE} ORDER BY p.sku"))?;
    let rows = stmt
        .query_map([], product_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn product(tx: &Transaction<'_>, sku: &str) -> Result<Option<Product>, DbError> {
    Ok(tx
        .query_row(
            &format!("{AVAILABLE} WHERE p.sku = ?1"),
            [sku],
            product_from_row,
        )
        .optional()?)
}

pub fn reservation(tx: &Transaction<'_>, id: &str) -> Result<Option<Reservation>, DbError> {
    let Some(status) = tx
        .query_row("SELECT status FROM reservations WHERE id = ?1", [id], |r| {
            text_column(r, 0, ReservationStatus::parse)
        })
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt = tx.prepare_cached(
        "SELECT sku, quantity FROM reservation_items WHERE reservation_id = ?1 ORDER BY sku",
    )?;
    let items = stmt
        .query_map([id], |r| {
            Ok(Item {
                sku: r.get(0)?,
                quantity: r.get(1)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Reservation {
        reservation_id: id.to_string(),
        status,
        items,
    }))
}

pub fn insert_reservation(tx: &Transaction<'_>, id: &str, items: &[Item]) -> Result<(), DbError> {
    tx.execute(
        "INSERT INTO reservations (id, status) VALUES (?1, 'reserved')",
        [id],
    )?;
    for item in items {
        tx.execute(
            "INSERT INTO reservation_items (reservation_id, sku, quantity) VALUES (?1, ?2, ?3)
             ON CONFLICT (reservation_id, sku) DO UPDATE SET quantity = quantity + excluded.quantity",
            params![id, item.sku, item.quantity],
        )?;
    }
    Ok(())
}

/// Moves a reservation to `to`; confirming takes its units off the shelf.
pub fn set_status(tx: &Transaction<'_>, id: &str, to: ReservationStatus) -> Result<(), DbError> {
    if to == ReservationStatus::Confirmed {
        tx.execute(
            "UPDATE products SET on_hand = on_hand - (SELECT quantity FROM reservation_items
                WHERE reservation_id = ?1 AND sku = products.sku)
             WHERE sku IN (SELECT sku FROM reservation_items WHERE reservation_id = ?1)",
            [id],
        )?;
    }
    tx.execute(
        "UPDATE reservations SET status = ?2 WHERE id = ?1",
        params![id, to.as_str()],
    )?;
    Ok(())
}

/// The products that confirming `r` (already done in `tx`) took low: on hand now at or
/// below the threshold, above it before.
pub fn taken_low(tx: &Transaction<'_>, r: &Reservation) -> Result<Vec<StockLow>, DbError> {
    let mut stmt = tx.prepare_cached("SELECT name, on_hand FROM products WHERE sku = ?1")?;
    let mut low = Vec::new();
    for item in &r.items {
        let (name, on_hand): (String, i64) =
            stmt.query_row([&item.sku], |row| Ok((row.get(0)?, row.get(1)?)))?;
        if StockLow::crossed(on_hand + item.quantity, item.quantity) {
            low.push(StockLow {
                sku: item.sku.clone(),
                name,
                on_hand,
                threshold: super::api::LOW_STOCK_UNITS,
                reservation_id: r.reservation_id.clone(),
            });
        }
    }
    Ok(low)
}
