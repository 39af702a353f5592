//! The legacy shop's wire types: the old shapes its clients were written against, which the
//! strangler fig keeps serving whoever answers behind the gateway.

use serde::{Deserialize, Serialize};

/// `GET /shop/products`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShopCatalogue {
    pub products: Vec<ShopProduct>,
}

/// A product as the old shop lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShopProduct {
    /// The SKU, e.g. `SKU-KEYBOARD`.
    pub code: String,
    pub title: String,
    /// Formatted, e.g. `89.00`.
    pub price: String,
    /// Units on hand.
    pub available: i64,
}

/// `GET /shop/orders/{order_number}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShopOrder {
    pub order_number: String,
    pub customer: String,
    /// Formatted, e.g. `89.00`.
    pub total: String,
    /// Upper case, e.g. `CONFIRMED`.
    pub state: String,
}
