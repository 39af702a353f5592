//! Payments' Pact provider states: the authorizations and the decline rule its consumer's
//! contract (orders) starts from. Served only with `--provider-states`.

use serde::Deserialize;

use super::api::{Authorization, AuthorizationStatus};
use super::db;
use super::server::Payments;
use crate::platform::provider_states::{ProviderStates, StateChange, StateError};

/// An authorized payment (params: `authorization_id`, `order_id`, `amount_cents`).
pub const AUTHORIZED: &str = "a payment is authorized";
/// A declined payment (params as for [`AUTHORIZED`]).
pub const DECLINED: &str = "a payment was declined";
/// Amounts whose cents end in `cents` are declined (params: `cents`). A setting of the
/// running service, not data: the state checks it and says how to change it.
pub const DECLINES: &str = "amounts ending in these cents are declined";

#[derive(Deserialize)]
struct Authorized {
    authorization_id: String,
    order_id: String,
    amount_cents: i64,
}

#[derive(Deserialize)]
struct Declines {
    cents: u8,
}

impl ProviderStates for Payments {
    const STATES: &'static [&'static str] = &[AUTHORIZED, DECLINED, DECLINES];

    async fn set_up(&self, change: StateChange) -> Result<(), StateError> {
        match change.state.as_str() {
            AUTHORIZED | DECLINED => {
                let a: Authorized = change.params()?;
                let declined = change.state == DECLINED;
                let auth = Authorization {
                    id: a.authorization_id,
                    order_id: a.order_id,
                    amount_cents: a.amount_cents,
                    status: if declined {
                        AuthorizationStatus::Declined
                    } else {
                        AuthorizationStatus::Authorized
                    },
                    reason: declined.then(|| "declined for a contract test".to_string()),
                };
                self.outbox()
                    .db()
                    .write(move |tx| {
                        tx.execute("DELETE FROM authorizations WHERE id = ?1", [&auth.id])?;
                        db::insert(tx, &auth)
                    })
                    .await?;
            }
            DECLINES => {
                let Declines { cents } = change.params()?;
                let ours = self.config().decline_cents;
                if ours != cents {
                    return Err(StateError::BadParams {
                        state: change.state,
                        reason: format!(
                            "this payments service declines amounts ending in {ours:02} cents; \
                             start it with [payments] decline_cents = {cents}"
                        ),
                    });
                }
            }
            _ => return Err(Self::unknown(&change)),
        }
        Ok(())
    }
}
