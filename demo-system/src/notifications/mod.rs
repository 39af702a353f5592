//! The notifications service: a consumer of the orders feed that records the message it
//! would send for each order outcome, and of inventory's feed that records an alert for
//! the stock team when a product runs low; once per event however often it is delivered.
//!
//! [`api`] wire types · [`db`] schema and queries · [`server`] consumer and routes ·
//! [`client`] typed client · [`provider_states`] Pact's states.

pub mod api;
pub mod client;
pub mod db;
pub mod provider_states;
pub mod server;

pub use api::{Notification, NotificationQuery, StockAlert};
pub use client::NotificationsClient;
pub use server::{INVENTORY_FEED, MAX_RECIPIENT, Notifications, app};
