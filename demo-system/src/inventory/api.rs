//! The inventory service's wire types, shared by its server, its client and the saga.

use serde::{Deserialize, Serialize};

use crate::platform::text_enum::text_enum;

/// A product as listed (`GET /products`, `GET /products/{sku}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub price_cents: i64,
    /// Units on hand that no open reservation holds.
    pub stock: i64,
}

/// A line of an order or a reservation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    pub quantity: i64,
}

/// `POST /reservations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    /// Chosen by the caller (the saga uses the order ID): the idempotency key of the step.
    pub reservation_id: String,
    pub items: Vec<Item>,
}

text_enum! {
    pub enum ReservationStatus {
        Reserved = "reserved",
        Confirmed = "confirmed",
        Released = "released",
    }
}

impl ReservationStatus {
    /// The event published when a reservation reaches this state (`stock.confirmed`).
    pub fn event_kind(self) -> String {
        format!("stock.{}", self.as_str())
    }
}

/// Why `items` cannot be ordered or reserved, if they cannot.
pub fn check_items(items: &[Item]) -> Result<(), String> {
    if items.is_empty() {
        return Err("at least one item is required".into());
    }
    match items.iter().find(|i| i.quantity <= 0) {
        Some(bad) => Err(format!("quantity of {} must be positive", bad.sku)),
        None => Ok(()),
    }
}

/// A reservation (every answer about one, and the payload of `stock.*` events).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reservation {
    pub reservation_id: String,
    pub status: ReservationStatus,
    pub items: Vec<Item>,
}

/// The demo catalog, stocked on first start: (sku, name, price in cents, units on hand).
/// Stickers are what load runs and chaos experiments order: thousands of orders do not run
/// them out, so an order is rejected for lack of stock only when a test means it.
pub const CATALOG: [(&str, &str, i64, i64); 6] = [
    ("SKU-KEYBOARD", "Mechanical keyboard", 8900, 120),
    ("SKU-MOUSE", "Wireless mouse", 2900, 300),
    ("SKU-MONITOR", "27\" monitor", 24900, 40),
    ("SKU-CABLE", "USB-C cable", 1200, 1000),
    ("SKU-LAMP", "Desk lamp", 3413, 25),
    ("SKU-STICKER", "Gauntlet sticker", 300, 10_000_000),
];
