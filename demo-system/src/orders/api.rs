//! The orders service's wire types, shared by its server, its client, the gateway, the
//! traffic generator, and the consumers of its events (an order event's payload is an
//! [`Order`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

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

impl Order {
    /// The order its stream's events make, in order; `None` unless the first is
    /// [`OrderChange::Placed`] (a stream always starts with it).
    pub fn replay<'a>(
        id: &str,
        changes: impl IntoIterator<Item = &'a OrderChange>,
    ) -> Option<Self> {
        let mut changes = changes.into_iter();
        let OrderChange::Placed {
            customer_id,
            items,
            total_cents,
        } = changes.next()?
        else {
            return None;
        };
        let mut order = Order {
            id: id.to_string(),
            customer_id: customer_id.clone(),
            items: items.clone(),
            total_cents: *total_cents,
            status: OrderStatus::Pending,
            payment_id: None,
            reason: None,
        };
        changes.for_each(|c| order.apply(c));
        Some(order)
    }

    /// The order after `change`: its status, and the payment ID and reason it brings (a
    /// later change without one keeps the earlier).
    pub fn apply(&mut self, change: &OrderChange) {
        self.status = change.status();
        let (payment_id, reason) = match change {
            OrderChange::PaymentAuthorized { payment_id } => (Some(payment_id), None),
            OrderChange::Compensating { payment_id, reason } => {
                (payment_id.as_ref(), reason.as_ref())
            }
            OrderChange::Rejected { reason } => (None, reason.as_ref()),
            _ => (None, None),
        };
        if let Some(p) = payment_id {
            self.payment_id = Some(p.clone());
        }
        if let Some(r) = reason {
            self.reason = Some(r.clone());
        }
    }
}

/// What happened to an order: one event of its stream, named as the feed names it
/// (`order.<the status it leads to>`). The stream is the order's truth; the [`Order`] every
/// answer shows is its projection ([`Order::replay`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum OrderChange {
    #[serde(rename = "order.pending")]
    Placed {
        customer_id: String,
        items: Vec<Item>,
        total_cents: i64,
    },
    #[serde(rename = "order.stock_reserved")]
    StockReserved,
    #[serde(rename = "order.payment_authorized")]
    PaymentAuthorized { payment_id: String },
    /// Payment declined or a later step refused: the earlier steps are being undone.
    #[serde(rename = "order.compensating")]
    Compensating {
        payment_id: Option<String>,
        reason: Option<String>,
    },
    #[serde(rename = "order.confirmed")]
    Confirmed,
    #[serde(rename = "order.cancelled")]
    Cancelled,
    /// Nothing was reserved (no such product, not enough stock).
    #[serde(rename = "order.rejected")]
    Rejected { reason: Option<String> },
}

impl OrderChange {
    /// The status the order has after this change.
    pub fn status(&self) -> OrderStatus {
        match self {
            Self::Placed { .. } => OrderStatus::Pending,
            Self::StockReserved => OrderStatus::StockReserved,
            Self::PaymentAuthorized { .. } => OrderStatus::PaymentAuthorized,
            Self::Compensating { .. } => OrderStatus::Compensating,
            Self::Confirmed => OrderStatus::Confirmed,
            Self::Cancelled => OrderStatus::Cancelled,
            Self::Rejected { .. } => OrderStatus::Rejected,
        }
    }
}

/// One event of an order's stream as stored: `GET /orders/{id}/events` lists them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderEvent {
    /// Position in the order's stream: 1 for `order.pending`, then one more per event.
    pub version: i64,
    /// Position in the orders feed (every order's events, in the order they were stored).
    pub seq: i64,
    pub id: Uuid,
    #[serde(flatten)]
    pub change: OrderChange,
    /// W3C trace context of the request or saga step that stored it.
    pub traceparent: Option<String>,
    pub created_unix_ms: i64,
}

/// `GET /orders/{id}/events`: the order's stream, oldest first, and the order it makes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderStream {
    pub order: Order,
    /// The stream's version: its newest event's, the one the next must follow.
    pub version: i64,
    pub events: Vec<OrderEvent>,
}
