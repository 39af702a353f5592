//! The order-history service's wire types (the CQRS read model as it is queried).

use serde::{Deserialize, Serialize};

use crate::orders::api::{Item, OrderStatus};

/// One order as the read model knows it (`GET /customers/{id}/orders` lists these).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderView {
    pub order_id: String,
    pub customer_id: String,
    pub status: OrderStatus,
    pub total_cents: i64,
    pub items: Vec<Item>,
}

/// A state an order went through.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryStep {
    pub status: OrderStatus,
    pub reason: Option<String>,
    pub at_unix_ms: i64,
}

/// `GET /orders/{id}/history`: the order and every state it went through, in order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderHistoryView {
    #[serde(flatten)]
    pub order: OrderView,
    pub history: Vec<HistoryStep>,
}
