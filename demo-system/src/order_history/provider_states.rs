//! Order-history's Pact provider states: the read model its consumer's contract (gateway)
//! starts from. Served only with `--provider-states`.

use serde::Deserialize;

use super::server::OrderHistory;
use crate::orders::{Item, Order, OrderStatus};
use crate::platform::http::now_unix_ms;
use crate::platform::provider_states::{ProviderStates, StateChange, StateError};

/// A customer with one confirmed order of one keyboard (params: `customer_id`, `order_id`).
pub const CUSTOMER_HAS_ORDER: &str = "a customer has a confirmed order";

#[derive(Deserialize)]
struct HasOrder {
    customer_id: String,
    order_id: String,
}

impl ProviderStates for OrderHistory {
    const STATES: &'static [&'static str] = &[CUSTOMER_HAS_ORDER];

    async fn set_up(&self, change: StateChange) -> Result<(), StateError> {
        if change.state != CUSTOMER_HAS_ORDER {
            return Err(Self::unknown(&change));
        }
        let p: HasOrder = change.params()?;
        let order = Order {
            id: p.order_id,
            customer_id: p.customer_id,
            items: vec![Item {
                sku: "SKU-KEYBOARD".into(),
                quantity: 1,
            }],
            total_cents: 8900,
            status: OrderStatus::Confirmed,
            payment_id: None,
            reason: None,
        };
        // As if the order's event were the first of the feed: the view takes it.
        self.replace(order, now_unix_ms())
            .await
            .map_err(|e| StateError::Store(e.to_string()))
    }
}
