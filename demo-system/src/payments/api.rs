//! The payments service's wire types, shared by its server, its client and the saga.

use serde::{Deserialize, Serialize};

use crate::platform::text_enum::text_enum;

/// `POST /payments/authorizations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    pub order_id: String,
    pub amount_cents: i64,
}

/// `GET /payments/authorizations?order_id=`: the authorizations of one order, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationQuery {
    pub order_id: String,
}

text_enum! {
    pub enum AuthorizationStatus {
        Authorized = "authorized",
        Declined = "declined",
        Refunded = "refunded",
    }
}

impl AuthorizationStatus {
    /// The event published when an authorization reaches this state (`payment.declined`).
    pub fn event_kind(self) -> String {
        format!("payment.{}", self.as_str())
    }
}

/// An authorization: the answer to an authorization request (`201` when authorized, `402`
/// when declined: a decline is an outcome, with the same body), to a refund, to a lookup,
/// and the payload of `payment.*` events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Authorization {
    pub id: String,
    pub order_id: String,
    pub amount_cents: i64,
    pub status: AuthorizationStatus,
    pub reason: Option<String>,
}
