//! The mobile BFF's wire types: what the app reads, trimmed from the services' shapes.

use serde::{Deserialize, Serialize};

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
