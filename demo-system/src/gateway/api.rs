//! The gateway's own wire types (what it serves besides the services' shapes it relays).

use serde::{Deserialize, Serialize};

/// `POST /api/token`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The answer to `POST /api/token`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds.
    pub expires_in: u64,
}

/// The answer to `GET /api/orders/{id}/details`: the order, composed with what inventory,
/// payments and notifications hold about it. A part whose service failed or missed its
/// deadline is left empty and named in `missing` (a partial answer, still `200`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderDetails {
    pub order: crate::orders::Order,
    /// The order's stock reservation; `None` when inventory holds none (an order rejected
    /// before reserving) or inventory is missing.
    pub reservation: Option<crate::inventory::Reservation>,
    /// The order's payment authorizations, oldest first.
    pub payments: Vec<crate::payments::Authorization>,
    /// What the customer was told about the order.
    pub notifications: Vec<crate::notifications::Notification>,
    /// The services that did not answer in time: their parts are empty, not known empty.
    pub missing: Vec<crate::topology::Service>,
}
