//! Inventory's Pact provider states: the stock and reservations its consumers' contracts
//! (gateway, orders) start from. Served only with `--provider-states`.

use rusqlite::params;
use serde::Deserialize;

use super::api::{CATALOG, Item};
use super::db;
use super::server::Inventory;
use crate::platform::db::DbError;
use crate::platform::provider_states::{ProviderStates, StateChange, StateError};

/// Every catalog product has its catalog stock free (params: none).
pub const IN_STOCK: &str = "products are in stock";
/// No unit of one product is free (params: `sku`).
pub const OUT_OF_STOCK: &str = "a product is out of stock";
/// An open reservation (params: `reservation_id`, `sku`, `quantity`).
pub const RESERVATION_HELD: &str = "a reservation is held";
/// Nothing was ever reserved under an ID, so reserving under it is new (params:
/// `reservation_id`).
pub const NO_RESERVATION: &str = "no reservation exists under an ID";

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
struct Held {
    reservation_id: String,
    sku: String,
    quantity: i64,
}

impl ProviderStates for Inventory {
    const STATES: &'static [&'static str] =
        &[IN_STOCK, OUT_OF_STOCK, RESERVATION_HELD, NO_RESERVATION];

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
            _ => return Err(Self::unknown(&change)),
        }
        Ok(())
    }
}

fn forget_reservation(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<(), DbError> {
    tx.execute(
        "DELETE FROM reservation_items WHERE reservation_id = ?1",
        [id],
    )?;
    tx.execute("DELETE FROM reservations WHERE id = ?1", [id])?;
    Ok(())
}
