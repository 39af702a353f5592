//! The legacy shop: a monolith from before the microservices, with its own database, its
//! own shapes, no OpenTelemetry and no registry client. The gateway's strangler fig moves
//! its routes to the new services one at a time; its sidecar ([`crate::sidecar`]) gives it
//! traces, logs, health checks and a place in the registry.
//!
//! [`api`] wire types · [`db`] schema, seed and queries · [`server`] routes · [`client`]
//! typed client · [`provider_states`] Pact's (none needed: its data is seeded).

pub mod api;
pub mod client;
pub mod db;
pub mod provider_states;
pub mod server;

pub use api::{ShopCatalogue, ShopOrder, ShopProduct};
pub use client::LegacyClient;
pub use server::{Legacy, ROUTES, app};
