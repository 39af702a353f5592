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

/// A product with this many units on hand or fewer is low: the confirmed reservation that
/// takes it there publishes [`STOCK_LOW`] (once: the demo never restocks).
pub const LOW_STOCK_UNITS: i64 = 5;

/// The event inventory publishes when a product runs low; nobody asks for it: whoever
/// cares (notifications tells the stock team) reads inventory's feed.
pub const STOCK_LOW: &str = "stock.low";

/// The payload of a [`STOCK_LOW`] event, whose aggregate is the product's SKU.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StockLow {
    pub sku: String,
    pub name: String,
    /// Units on hand after the reservation that took the product low.
    pub on_hand: i64,
    /// [`LOW_STOCK_UNITS`] when it was published.
    pub threshold: i64,
    /// The reservation (for the saga: the order) that took it there.
    pub reservation_id: String,
}

impl StockLow {
    /// Whether taking `taken` units from `before` on hand crosses the threshold.
    pub fn crossed(before: i64, taken: i64) -> bool {
        before > LOW_STOCK_UNITS && before - taken <= LOW_STOCK_UNITS
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_is_low_once_it_crosses_the_threshold_from_above() {
        let t = LOW_STOCK_UNITS;
        assert!(StockLow::crossed(t + 1, 1));
        assert!(StockLow::crossed(40, 40));
        assert!(!StockLow::crossed(t + 2, 1), "still above");
        assert!(!StockLow::crossed(t, 1), "already low: published before");
    }
}
