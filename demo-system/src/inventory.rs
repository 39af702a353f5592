//! The inventory service: products, stock and reservations in its own SQLite database
//! (its instances share the file). The order saga reserves stock, then confirms the
//! reservation or releases it; each step is idempotent on the reservation ID, so a
//! retried or resumed saga step does no harm. Published events: `stock.reserved`,
//! `stock.confirmed`, `stock.released`.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::outbox::{NewEvent, Outbox, OutboxError, feed_router};
use crate::service::{ApiError, with_health};

/// The demo catalog, stocked on first start: (sku, name, price in cents, units on hand).
pub const CATALOG: [(&str, &str, i64, i64); 5] = [
    ("SKU-KEYBOARD", "Mechanical keyboard", 8900, 120),
    ("SKU-MOUSE", "Wireless mouse", 2900, 300),
    ("SKU-MONITOR", "27\" monitor", 24900, 40),
    ("SKU-CABLE", "USB-C cable", 1200, 1000),
    ("SKU-LAMP", "Desk lamp", 3413, 25),
];

const SCHEMA: &str = "
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

#[derive(Clone)]
pub struct Inventory {
    db: Outbox,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inventory")
    }
}

impl Inventory {
    pub fn outbox(&self) -> &Outbox {
        &self.db
    }

    /// Opens the shared inventory database, creating and stocking it the first time.
    pub fn open(db_path: &Path) -> Result<Self, OutboxError> {
        let db = Outbox::open_with_schema(db_path, SCHEMA)?;
        db.transaction(|tx| {
            for (sku, name, price, stock) in CATALOG {
                tx.execute(
                    "INSERT OR IGNORE INTO products (sku, name, price_cents, on_hand) VALUES (?1, ?2, ?3, ?4)",
                    params![sku, name, price, stock],
                )?;
            }
            Ok(())
        })?;
        Ok(Self { db })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    /// Units on hand that no open reservation holds.
    pub stock: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    pub quantity: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// Chosen by the caller (the saga uses the order ID): the idempotency key of the step.
    pub reservation_id: String,
    pub items: Vec<Item>,
}

pub fn app(inventory: Inventory) -> Router {
    let db = inventory.db.clone();
    let routes = Router::new()
        .route("/products", get(products))
        .route("/products/{sku}", get(product))
        .route("/reservations", post(reserve))
        .route("/reservations/{id}", get(get_reservation))
        .route("/reservations/{id}/confirm", post(confirm))
        .route("/reservations/{id}/release", post(release))
        .with_state(inventory)
        .merge(feed_router(db.clone()));
    let routes = crate::service::with_resilience_admin(routes, Vec::new());
    with_health(routes, db).layer(axum::middleware::from_fn(crate::telemetry::trace_request))
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

async fn products(State(inv): State<Inventory>) -> Result<Json<Vec<Product>>, ApiError> {
    let all = inv.db.transaction(|tx| {
        let mut stmt = tx.prepare(&format!("{AVAILABLE} ORDER BY p.sku"))?;
        let rows = stmt
            .query_map([], product_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    })?;
    Ok(Json(all))
}

fn find(tx: &Transaction<'_>, sku: &str) -> Result<Option<Product>, OutboxError> {
    Ok(tx
        .query_row(
            &format!("{AVAILABLE} WHERE p.sku = ?1"),
            [sku],
            product_from_row,
        )
        .optional()?)
}

async fn product(
    State(inv): State<Inventory>,
    UrlPath(sku): UrlPath<String>,
) -> Result<Json<Product>, ApiError> {
    inv.db
        .transaction(|tx| find(tx, &sku))?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no product {sku}")))
}

fn reservation(tx: &Transaction<'_>, id: &str) -> Result<Option<Value>, OutboxError> {
    let Some(status) = tx
        .query_row("SELECT status FROM reservations WHERE id = ?1", [id], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt = tx.prepare(
        "SELECT sku, quantity FROM reservation_items WHERE reservation_id = ?1 ORDER BY sku",
    )?;
    let items = stmt
        .query_map([id], |r| {
            Ok(json!({"sku": r.get::<_, String>(0)?, "quantity": r.get::<_, i64>(1)?}))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        json!({"reservation_id": id, "status": status, "items": items}),
    ))
}

async fn get_reservation(
    State(inv): State<Inventory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    inv.db
        .transaction(|tx| reservation(tx, &id))?
        .map(Json)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no reservation {id}")))
}

fn event(tx: &Transaction<'_>, kind: &str, id: &str, payload: &Value) -> Result<(), OutboxError> {
    Outbox::append(
        tx,
        &NewEvent {
            kind: kind.into(),
            aggregate_id: id.into(),
            payload: payload.clone(),
            traceparent: None,
            baggage: None,
        },
    )?;
    Ok(())
}

async fn reserve(
    State(inv): State<Inventory>,
    body: Result<Json<ReserveRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(req) = body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    if req.reservation_id.is_empty() || req.items.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "reservation_id and at least one item are required",
        ));
    }
    if let Some(bad) = req.items.iter().find(|i| i.quantity <= 0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("quantity of {} must be positive", bad.sku),
        ));
    }
    let outcome = inv.db.transaction(|tx| {
        // The same reservation again (a retried or resumed saga step): answer as before.
        if let Some(existing) = reservation(tx, &req.reservation_id)? {
            return Ok(Ok((StatusCode::OK, existing)));
        }
        for item in &req.items {
            match find(tx, &item.sku)? {
                None => return Ok(Err(ApiError::new(StatusCode::NOT_FOUND, format!("no product {}", item.sku)))),
                Some(p) if p.stock < item.quantity => {
                    return Ok(Err(ApiError::new(StatusCode::CONFLICT,
                        format!("not enough {}: {} asked, {} available", item.sku, item.quantity, p.stock),
                    )));
                }
                Some(_) => {}
            }
        }
        tx.execute("INSERT INTO reservations (id, status) VALUES (?1, 'reserved')", [&req.reservation_id])?;
        for item in &req.items {
            tx.execute(
                "INSERT INTO reservation_items (reservation_id, sku, quantity) VALUES (?1, ?2, ?3)
                 ON CONFLICT (reservation_id, sku) DO UPDATE SET quantity = quantity + excluded.quantity",
                params![req.reservation_id, item.sku, item.quantity],
            )?;
        }
        tracing::info!(reservation_id = %req.reservation_id, items = req.items.len(), "stock reserved");
        let created = reservation(tx, &req.reservation_id)?.unwrap_or(Value::Null);
        event(tx, "stock.reserved", &req.reservation_id, &created)?;
        Ok(Ok((StatusCode::CREATED, created)))
    })??;
    Ok((outcome.0, Json(outcome.1)))
}

/// Moves an open reservation to `to`; repeating a finished move is a no-op.
fn settle(inv: &Inventory, id: &str, to: &'static str) -> Result<Json<Value>, ApiError> {
    let outcome = inv.db.transaction(|tx| {
        let Some(current) = reservation(tx, id)? else {
            return Ok(Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no reservation {id}"),
            )));
        };
        match current["status"].as_str() {
            Some(s) if s == to => return Ok(Ok(current)),
            Some("reserved") => {}
            Some(other) => {
                return Ok(Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("reservation {id} is already {other}; it cannot become {to}"),
                )));
            }
            None => {}
        }
        if to == "confirmed" {
            tx.execute(
                "UPDATE products SET on_hand = on_hand - (SELECT quantity FROM reservation_items
                    WHERE reservation_id = ?1 AND sku = products.sku)
                 WHERE sku IN (SELECT sku FROM reservation_items WHERE reservation_id = ?1)",
                [id],
            )?;
        }
        tx.execute(
            "UPDATE reservations SET status = ?2 WHERE id = ?1",
            params![id, to],
        )?;
        tracing::info!(reservation_id = %id, to, "reservation settled");
        let settled = reservation(tx, id)?.unwrap_or(Value::Null);
        event(tx, &format!("stock.{to}"), id, &settled)?;
        Ok(Ok(settled))
    })??;
    Ok(Json(outcome))
}

async fn confirm(
    State(inv): State<Inventory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    settle(&inv, &id, "confirmed")
}

async fn release(
    State(inv): State<Inventory>,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<Value>, ApiError> {
    settle(&inv, &id, "released")
}
