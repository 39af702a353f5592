//! The order-history service: the CQRS read model built from the orders feed.
//!
//! [`api`] wire types · [`db`] schema and queries · [`server`] consumer and routes ·
//! [`client`] typed client.

pub mod api;
pub mod client;
pub mod db;
pub mod provider_states;
pub mod server;

pub use api::{HistoryStep, OrderHistoryView, OrderView};
pub use client::OrderHistoryClient;
pub use server::{OrderHistory, app};
