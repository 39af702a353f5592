//! The legacy shop's own database: its copy of the catalogue and the orders it took before
//! the new services existed (seeded on first start, as a monolith's data would be there).

use rusqlite::{OptionalExtension, Transaction, params};

use super::api::{ShopOrder, ShopProduct};
use crate::inventory::CATALOG;
use crate::platform::db::DbError;
use crate::platform::money::format_cents;

pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS shop_products (
        code TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        price_cents INTEGER NOT NULL,
        available INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS shop_orders (
        order_number TEXT PRIMARY KEY,
        customer TEXT NOT NULL,
        total_cents INTEGER NOT NULL,
        state TEXT NOT NULL
    );
";

/// Orders the old shop took: (number, customer, total in cents, state).
pub const OLD_ORDERS: [(&str, &str, i64, &str); 2] = [
    ("L-1001", "customer-1", 8900, "CONFIRMED"),
    ("L-1002", "customer-2", 2900, "SHIPPED"),
];

/// Fills an empty database with the catalogue and the old orders.
pub fn seed(tx: &Transaction<'_>) -> Result<(), DbError> {
    let have: i64 = tx.query_row("SELECT count(*) FROM shop_products", [], |r| r.get(0))?;
    if have > 0 {
        return Ok(());
    }
    for (code, title, price, available) in CATALOG {
        tx.execute(
            "INSERT INTO shop_products (code, title, price_cents, available) VALUES (?1, ?2, ?3, ?4)",
            params![code, title, price, available],
        )?;
    }
    for (number, customer, total, state) in OLD_ORDERS {
        tx.execute(
            "INSERT INTO shop_orders (order_number, customer, total_cents, state) VALUES (?1, ?2, ?3, ?4)",
            params![number, customer, total, state],
        )?;
    }
    Ok(())
}

pub fn products(tx: &Transaction<'_>) -> Result<Vec<ShopProduct>, DbError> {
    let mut stmt = tx.prepare_cached(
        "SELECT code, title, price_cents, available FROM shop_products ORDER BY code",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(ShopProduct {
                code: r.get(0)?,
                title: r.get(1)?,
                price: format_cents(r.get(2)?),
                available: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn order(tx: &Transaction<'_>, number: &str) -> Result<Option<ShopOrder>, DbError> {
    Ok(tx
        .query_row(
            "SELECT order_number, customer, total_cents, state FROM shop_orders WHERE order_number = ?1",
            [number],
            |r| {
                Ok(ShopOrder {
                    order_number: r.get(0)?,
                    customer: r.get(1)?,
                    total: format_cents(r.get(2)?),
                    state: r.get(3)?,
                })
            },
        )
        .optional()?)
}
