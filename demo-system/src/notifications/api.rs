//! The notifications service's wire types.

use serde::{Deserialize, Serialize};

/// A notification the service recorded (`GET /notifications?order_id=`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    pub order_id: String,
    pub customer_id: String,
    /// `order_confirmed`, `order_cancelled` or `order_rejected`.
    pub kind: String,
    pub message: String,
    /// The order event that caused it.
    pub event_id: String,
}

/// `GET /notifications` query: every notification, or those of one order or customer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    pub order_id: Option<String>,
    pub customer_id: Option<String>,
}

/// What the stock team is told when inventory says a product ran low (`GET /stock-alerts`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StockAlert {
    pub sku: String,
    /// Units on hand when it ran low.
    pub on_hand: i64,
    pub message: String,
    /// The reservation (the order) whose confirmation took it low.
    pub reservation_id: String,
    /// The `stock.low` event that caused it.
    pub event_id: String,
}
