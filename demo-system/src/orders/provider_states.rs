//! Orders' Pact provider states and message endpoint. Its HTTP consumer (gateway) starts
//! from stored orders; its event consumers (notifications, order-history) get real events:
//! the state stages an order through the saga's own storage and publishing, and `POST
//! /_pact/messages` answers with the event as the feed serves it. Served only with
//! `--provider-states`.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::api::{Item, Order, OrderChange, OrderStatus};
use super::saga::Orders;
use crate::platform::http::{ApiError, Body, body};
use crate::platform::outbox::Event;
use crate::platform::provider_states::{
    MESSAGES_PATH, MessageRequest, ProviderStates, StateChange, StateError,
};

/// An order of one keyboard that reached `status` (params: `order_id`, `customer_id`,
/// `status`, and `reason` for cancelled or rejected orders), its events published.
pub const ORDER_REACHED: &str = "an order has reached a status";

#[derive(Debug, Deserialize)]
struct Reached {
    order_id: String,
    customer_id: String,
    status: OrderStatus,
    #[serde(default)]
    reason: Option<String>,
}

impl ProviderStates for Orders {
    const STATES: &'static [&'static str] = &[ORDER_REACHED];

    async fn set_up(&self, change: StateChange) -> Result<(), StateError> {
        if change.state != ORDER_REACHED {
            return Err(Self::unknown(&change));
        }
        let r: Reached = change.params()?;
        let pending = Order {
            id: r.order_id.clone(),
            customer_id: r.customer_id,
            items: vec![Item {
                sku: "SKU-KEYBOARD".into(),
                quantity: 1,
            }],
            total_cents: 8900,
            status: OrderStatus::Pending,
            payment_id: None,
            reason: None,
        };
        let changes = path_to(r.status, &format!("pay-{}", r.order_id), r.reason);
        self.stage(pending, changes).await?;
        Ok(())
    }
}

/// The events that take a placed order to `status` the way the saga does.
fn path_to(status: OrderStatus, payment_id: &str, reason: Option<String>) -> Vec<OrderChange> {
    let authorized = OrderChange::PaymentAuthorized {
        payment_id: payment_id.to_string(),
    };
    let compensating = OrderChange::Compensating {
        payment_id: None,
        reason: reason.clone(),
    };
    match status {
        OrderStatus::Pending => vec![],
        OrderStatus::StockReserved => vec![OrderChange::StockReserved],
        OrderStatus::PaymentAuthorized => vec![OrderChange::StockReserved, authorized],
        OrderStatus::Confirmed => vec![
            OrderChange::StockReserved,
            authorized,
            OrderChange::Confirmed,
        ],
        OrderStatus::Compensating => vec![OrderChange::StockReserved, compensating],
        OrderStatus::Cancelled => {
            vec![
                OrderChange::StockReserved,
                compensating,
                OrderChange::Cancelled,
            ]
        }
        OrderStatus::Rejected => vec![OrderChange::Rejected { reason }],
    }
}

/// `POST /_pact/messages`: the newest event of the order and status named by the message's
/// provider state, exactly as `GET /events` serves it.
pub fn messages_router(orders: Orders) -> Router {
    Router::new()
        .route(MESSAGES_PATH, post(message))
        .with_state(orders)
}

async fn message(
    State(orders): State<Orders>,
    req: Body<MessageRequest>,
) -> Result<Json<Event>, ApiError> {
    let req = body(req)?;
    let staged = req
        .provider_states
        .iter()
        .find(|s| s.name == ORDER_REACHED)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "message {:?} names no provider state {ORDER_REACHED:?}: orders publishes \
                 events only about orders it has",
                req.description
            ))
        })?;
    let r: Reached = serde_json::from_value(serde_json::Value::Object(staged.params.clone()))
        .map_err(|e| ApiError::bad_request(format!("{ORDER_REACHED:?} params: {e}")))?;
    let kind = r.status.event_kind();
    orders
        .outbox()
        .latest(&r.order_id, &kind)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no {kind} event for order {}: set up the state {ORDER_REACHED:?} first",
                r.order_id
            ))
        })
}
