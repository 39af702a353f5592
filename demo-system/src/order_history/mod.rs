//! The order-history service: the CQRS read model built from the orders feed.
//!
//! [`api`] wire types · [`documents`] the read model, as documents in redb (the demo's
//! polyglot persistence) · [`server`] consumer and routes · [`client`] typed client.

pub mod api;
pub mod client;
pub mod documents;
pub mod provider_states;
pub mod server;

pub use api::{HistoryStep, OrderHistoryView, OrderView};
pub use client::OrderHistoryClient;
pub use server::{OrderHistory, app};
