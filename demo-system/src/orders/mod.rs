//! The orders service: order placement as an orchestrated saga over inventory and
//! payments, resumed after a restart. Event-sourced: each order is a stream of events
//! ([`events`]), the order callers see is their projection; the feed of those events
//! (`order.<status>`, payload the [`Order`] after it) feeds notifications and order-history.
//!
//! [`api`] wire types · [`events`] the event store · [`db`] the projection and idempotency
//! keys · [`saga`] the saga · [`settlement`] the leader's periodic job · [`server`] routes ·
//! [`client`] typed client.

pub mod api;
pub mod client;
pub mod db;
pub mod events;
pub mod provider_states;
pub mod saga;
pub mod server;
pub mod settlement;

pub use api::{
    Item, Order, OrderChange, OrderEvent, OrderQuery, OrderStatus, OrderStream, PlaceOrder,
};
pub use client::OrdersClient;
pub use saga::Orders;
pub use server::app;
