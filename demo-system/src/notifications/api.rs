//! The notifications service's wire types: its JSON-RPC methods (`POST /rpc`, see
//! [`crate::platform::jsonrpc`]), their params and results.

use serde::{Deserialize, Serialize};

/// `notifications.list`: the notifications recorded ([`NotificationQuery`] by name, or none
/// for all) → `[Notification]`.
pub const LIST_NOTIFICATIONS: &str = "notifications.list";
/// `stock_alerts.list`: the alerts the stock team was sent, oldest first (no params) →
/// `[StockAlert]`.
pub const LIST_STOCK_ALERTS: &str = "stock_alerts.list";

/// A notification the service recorded.
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

/// `notifications.list`'s params: every notification, or those of one order or customer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// What the stock team is told when inventory says a product ran low (`stock_alerts.list`).
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
