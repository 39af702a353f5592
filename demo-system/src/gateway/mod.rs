//! The API gateway: JWT, per-client rate limit, discovery and resilience per upstream, the
//! product fallback cache, the backends for frontends' routes passed on (`/graphql`,
//! `/mobile/...`), order details composed from four services, the old shop's routes
//! (strangler fig), reads mirrored to a shadow, correlation IDs.
//!
//! [`api`] wire types · [`server`] routes · [`composition`] order details · [`strangler`]
//! the old shop's route table · [`shadow`] mirrored reads compared · [`client`] typed client.

pub mod api;
pub mod client;
pub mod composition;
pub mod server;
pub mod shadow;
pub mod strangler;

pub use api::{Credentials, OrderDetails, TokenResponse};
pub use client::GatewayClient;
pub use server::{Gateway, GatewayConfig, app, run};
