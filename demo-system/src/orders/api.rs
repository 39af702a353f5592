//! The orders service's wire types, shared by its server, its client, the gateway, the
//! traffic generator, and the consumers of its events (an order event's payload is an
//! [`Order`]).

use serde::{Deserialize, Serialize};

use crate::platform::text_enum::text_enum;

pub use crate::inventory::api::Item;

/// `GET /orders?customer_id=`: a customer's orders, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    pub customer_id: String,
}

/// `POST /orders`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    pub customer_id: String,
    pub items: Vec<Item>,
}

text_enum! {
    /// Where an order's saga is: `pending → stock_reserved → payment_authorized →
    /// confirmed`, or `→ compensating → cancelled`, or `rejected` (nothing to undo).
    pub enum OrderStatus {
        Pending = "pending",
        StockReserved = "stock_reserved",
        PaymentAuthorized = "payment_authorized",
        Confirmed = "confirmed",
        Compensating = "compensating",
        Cancelled = "cancelled",
        Rejected = "rejected",
    }
}

impl OrderStatus {
    /// A terminal state: the saga has nothing left to do.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Confirmed | Self::Cancelled | Self::Rejected)
    }

    /// The event published when an order reaches this state (`order.confirmed`).
    pub fn event_kind(self) -> String {
        format!("{ORDER_EVENT_PREFIX}{}", self.as_str())
    }

    /// The state an order event of `kind` announces.
    pub fn of_event(kind: &str) -> Option<Self> {
        kind.strip_prefix(ORDER_EVENT_PREFIX).and_then(Self::parse)
    }
}

/// Order events are `order.<status>`, with the [`Order`] as it is after the step.
pub const ORDER_EVENT_PREFIX: &str = "order.";

/// An order (every answer about one, and the payload of its events).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Order {
    pub id: String,
    pub customer_id: String,
    pub items: Vec<Item>,
    pub total_cents: i64,
    pub status: OrderStatus,
    pub payment_id: Option<String>,
    pub reason: Option<String>,
}
