//! The payments service: authorizations and refunds in its own SQLite database, a
//! configurable processing delay and a deterministic decline rule, so that failures can be
//! provoked on purpose. Published events: `payment.authorized`, `payment.declined`,
//! `payment.refunded`.
//!
//! [`api`] wire types · [`db`] schema and queries · [`server`] routes · [`client`] typed client.

pub mod api;
pub mod client;
pub mod db;
pub mod provider_states;
pub mod server;

pub use api::{Authorization, AuthorizationQuery, AuthorizationStatus, AuthorizeRequest};
pub use client::PaymentsClient;
pub use server::{Payments, PaymentsConfig, app};
