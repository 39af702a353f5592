//! The orders service: order placement as an orchestrated saga over inventory and
//! payments, resumed after a restart; its events (`order.<status>`, payload an [`Order`])
//! feed notifications and order-history.
//!
//! [`api`] wire types · [`db`] schema and queries · [`saga`] the saga · [`server`] routes ·
//! [`client`] typed client.

pub mod api;
pub mod client;
pub mod db;
pub mod provider_states;
pub mod saga;
pub mod server;

pub use api::{Item, Order, OrderQuery, OrderStatus, PlaceOrder};
pub use client::OrdersClient;
pub use saga::Orders;
pub use server::app;
