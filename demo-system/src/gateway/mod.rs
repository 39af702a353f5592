//! The API gateway and backend-for-frontend: JWT, per-client rate limit, discovery and
//! resilience per upstream, the product fallback cache, `/mobile` shapes, order details
//! composed from four services, correlation IDs.
//!
//! [`api`] wire types · [`server`] routes · [`composition`] order details · [`client`]
//! typed client.

pub mod api;
pub mod client;
pub mod composition;
pub mod server;

pub use api::{Credentials, MobileOrder, MobileProduct, OrderDetails, TokenResponse};
pub use client::GatewayClient;
pub use server::{Gateway, GatewayConfig, app, run};
