//! Inventory's Pact provider states and message endpoint: the stock and reservations its
//! HTTP consumers' contracts (gateway, orders, the BFFs) start from, and for its event
//! consumer (notifications) a product taken low through the real confirmation, whose
//! `stock.low` event `POST /_pact/messages` answers with as the feed serves it. Served
//! only with `--provider-states`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use rusqlite::params;
use serde::Deserialize;

use super::api::{CATALOG, Item, LOW_STOCK_UNITS, ReservationStatus, STOCK_LOW};
use super::db;
use super::server::{Inventory, settle};
use crate::platform::db::DbError;
use crate::platform::http::{ApiError, Body, body};
use crate::platform::outbox::Event;
use crate::platform::provider_states::{
    MESSAGES_PATH, MessageRequest, ProviderStates, StateChange, StateError,
};

/// Every catalog product has its catalog stock free (params: none).
pub const IN_STOCK: &str = "products are in stock";
/// No unit of one product is free (params: `sku`).
pub const OUT_OF_STOCK: &str = "a product is out of stock";
/// An open reservation (params: `reservation_id`, `sku`, `quantity`).
pub const RESERVATION_HELD: &str = "a reservation is held";
/// Nothing was ever reserved under an ID, so reserving under it is new (params:
/// `reservation_id`).
pub const NO_RESERVATION: &str = "no reservation exists under an ID";
/// A confirmed reservation took a product low, so inventory published `stock.low`
/// (params: `sku`, `reservation_id`, `quantity`).
pub const RAN_LOW: &str = "a product ran low";

/// Units of `sku` that open reservations hold.
const RESERVED: &str = "coalesce((SELECT sum(i.quantity) FROM reservation_items i
    JOIN reservations r ON r.id = i.reservation_id
    WHERE i.sku = ?1 AND r.status = 'reserved'), 0)";

#[derive(Deserialize)]
struct Sku {
    sku: String,
}

#[derive(Deserialize)]
struct ReservationId {
    reservation_id: String,
}

#[derive(Deserialize)]
struct RanLow {
    sku: String,
    reservation_id: String,
    quantity: i64,
}

#[derive(Deserialize)]
struct Held {
    reservation_id: String,
    sku: String,
    quantity: i64,
}

impl ProviderStates for Inventory {
    const STATES: &'static [&'static str] = &[
        IN_STOCK,
        OUT_OF_STOCK,
        RESERVATION_HELD,
        NO_RESERVATION,
        RAN_LOW,
    ];

    async fn set_up(&self, change: StateChange) -> Result<(), StateError> {
        let db = self.outbox().db();
        match change.state.as_str() {
            IN_STOCK => {
                db.write(|tx| {
                    for (sku, name, price, stock) in CATALOG {
                        tx.execute(
                            &format!(
                                "INSERT INTO products (sku, name, price_cents, on_hand)
                                 VALUES (?1, ?2, ?3, ?4 + {RESERVED})
                                 ON CONFLICT (sku) DO UPDATE SET on_hand = excluded.on_hand"
                            ),
                            params![sku, name, price, stock],
                        )?;
                    }
                    Ok(())
                })
                .await?
            }
            OUT_OF_STOCK => {
                let Sku { sku } = change.params()?;
                let shown = sku.clone();
                let found = db
                    .write(move |tx| {
                        Ok(tx.execute(
                            &format!("UPDATE products SET on_hand = {RESERVED} WHERE sku = ?1"),
                            [&sku],
                        )? == 1)
                    })
                    .await?;
                if !found {
                    return Err(StateError::BadParams {
                        state: change.state,
                        reason: format!("no product {shown} in the catalog"),
                    });
                }
            }
            NO_RESERVATION => {
                let ReservationId { reservation_id } = change.params()?;
                db.write(move |tx| forget_reservation(tx, &reservation_id))
                    .await?;
            }
            RESERVATION_HELD => {
                let h: Held = change.params()?;
                db.write(move |tx| {
                    forget_reservation(tx, &h.reservation_id)?;
                    let items = [Item {
                        sku: h.sku,
                        quantity: h.quantity,
                    }];
                    db::insert_reservation(tx, &h.reservation_id, &items)
                })
                .await
                .map_err(|e| match e {
                    DbError::Sql(e) => StateError::BadParams {
                        state: RESERVATION_HELD.into(),
                        reason: e.to_string(),
                    },
                    other => other.into(),
                })?
            }
            RAN_LOW => {
                let r: RanLow = change.params()?;
                self.run_low(r)
                    .await
                    .map_err(|reason| StateError::BadParams {
                        state: RAN_LOW.into(),
                        reason,
                    })?
            }
            _ => return Err(Self::unknown(&change)),
        }
        Ok(())
    }
}

impl Inventory {
    /// Holds `quantity` of `sku` (on hand: just above the threshold by that much) under a
    /// fresh reservation and confirms it as the saga would, so the real code publishes.
    async fn run_low(&self, r: RanLow) -> Result<(), String> {
        if r.quantity <= 0 {
            return Err(format!("quantity {} must be positive", r.quantity));
        }
        let (sku, id, quantity) = (r.sku.clone(), r.reservation_id.clone(), r.quantity);
        let found = self
            .outbox()
            .db()
            .write(move |tx| {
                forget_reservation(tx, &id)?;
                let n = tx.execute(
                    "UPDATE products SET on_hand = ?2 WHERE sku = ?1",
                    params![sku, LOW_STOCK_UNITS + quantity],
                )?;
                if n == 1 {
                    db::insert_reservation(tx, &id, &[Item { sku, quantity }])?;
                }
                Ok(n == 1)
            })
            .await
            .map_err(|e| e.to_string())?;
        if !found {
            return Err(format!("no product {} in the catalog", r.sku));
        }
        settle(self, r.reservation_id, ReservationStatus::Confirmed)
            .await
            .map(drop)
            .map_err(|e| e.message)
    }
}

/// `POST /_pact/messages`: the newest `stock.low` event of the product named by the
/// message's provider state, exactly as `GET /events` serves it.
pub fn messages_router(inventory: Inventory) -> Router {
    Router::new()
        .route(MESSAGES_PATH, post(message))
        .with_state(inventory)
}

async fn message(
    State(inventory): State<Inventory>,
    req: Body<MessageRequest>,
) -> Result<Json<Event>, ApiError> {
    let req = body(req)?;
    let staged = req
        .provider_states
        .iter()
        .find(|s| s.name == RAN_LOW)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "message {:?} names no provider state {RAN_LOW:?}: inventory publishes \
                 stock.low only about a product that ran low",
                req.description
            ))
        })?;
    let r: RanLow = serde_json::from_value(serde_json::Value::Object(staged.params.clone()))
        .map_err(|e| ApiError::bad_request(format!("{RAN_LOW:?} params: {e}")))?;
    inventory
        .outbox()
        .latest(&r.sku, STOCK_LOW)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no {STOCK_LOW} event for {}: set up the state {RAN_LOW:?} first",
                r.sku
            ))
        })
}

fn forget_reservation(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<(), DbError> {
    tx.execute(
        "DELETE FROM reservation_items WHERE reservation_id = ?1",
        [id],
    )?;
    tx.execute("DELETE FROM reservations WHERE id = ?1", [id])?;
    Ok(())
}
