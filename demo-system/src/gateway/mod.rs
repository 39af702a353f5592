//! The API gateway and backend-for-frontend: JWT, per-client rate limit, discovery and
//! resilience per upstream, the product fallback cache, `/mobile` shapes, correlation IDs.
//!
//! [`api`] wire types · [`server`] routes · [`client`] typed client.

pub mod api;
pub mod client;
pub mod server;

pub use api::{Credentials, MobileOrder, MobileProduct, TokenResponse};
pub use client::GatewayClient;
pub use server::{Gateway, GatewayConfig, app, run};
