//! The gateway's own wire types (what it serves besides the services' shapes it relays).

use serde::{Deserialize, Serialize};

/// `POST /api/token`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The answer to `POST /api/token`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds.
    pub expires_in: u64,
}

/// A product as the mobile BFF serves it (`GET /mobile/products`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MobileProduct {
    pub sku: String,
    pub name: String,
    /// Formatted, e.g. `34.13`.
    pub price: String,
    pub in_stock: bool,
}

/// An order as the mobile BFF serves it (`GET /mobile/orders/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MobileOrder {
    pub id: String,
    pub status: crate::orders::OrderStatus,
    /// Formatted, e.g. `29.00`.
    pub total: String,
}

/// Cents as a decimal amount: 3413 → `34.13`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}
