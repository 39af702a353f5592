//! The mobile app's backend for frontend, its own process behind the gateway: REST with
//! shapes trimmed for a small screen and a slow link (a price as text, in stock or not).
//!
//! [`api`] wire types · [`server`] routes · [`client`] typed client (what the gateway
//! forwards `/mobile/...` with).

pub mod api;
pub mod client;
pub mod server;

pub use api::{MobileOrder, MobileProduct};
pub use client::MobileBffClient;
pub use server::{MobileBff, app};
