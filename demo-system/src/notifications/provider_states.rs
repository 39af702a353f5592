//! Notifications' Pact provider states: the notifications its consumer's contract (the
//! gateway's order details) starts from. Served only with `--provider-states`.

use serde::Deserialize;

use super::api::Notification;
use super::db;
use super::server::Notifications;
use crate::platform::outbox::FeedConsumer;
use crate::platform::provider_states::{ProviderStates, StateChange, StateError};

/// A customer was told their order is confirmed (params: `order_id`, `customer_id`).
pub const ORDER_NOTIFIED: &str = "a customer was told their order is confirmed";

#[derive(Deserialize)]
struct Notified {
    order_id: String,
    customer_id: String,
}

impl ProviderStates for Notifications {
    const STATES: &'static [&'static str] = &[ORDER_NOTIFIED];

    async fn set_up(&self, change: StateChange) -> Result<(), StateError> {
        if change.state != ORDER_NOTIFIED {
            return Err(Self::unknown(&change));
        }
        let p: Notified = change.params()?;
        let n = Notification {
            message: format!("Your order {} is confirmed.", p.order_id),
            order_id: p.order_id,
            customer_id: p.customer_id,
            kind: "order_confirmed".into(),
            event_id: "0".into(),
        };
        self.db()
            .write(move |tx| {
                tx.execute(
                    "DELETE FROM notifications WHERE order_id = ?1",
                    [&n.order_id],
                )?;
                db::insert(tx, &n)?;
                Ok(())
            })
            .await?;
        Ok(())
    }
}
