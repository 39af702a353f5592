//! The inventory service: products, stock and reservations in its own SQLite database (its
//! instances share the file). The order saga reserves stock, then confirms the reservation
//! or releases it. Published events: `stock.reserved`, `stock.confirmed`, `stock.released`,
//! and `stock.low` when a confirmation leaves a product with few units (notifications
//! reacts to it: a choreographed flow, no coordinator).
//!
//! [`api`] wire types · [`db`] schema and queries · [`server`] routes · [`client`] typed
//! client · [`grpc`] the catalogue over gRPC, server and client · [`candidate`] its next
//! version (`inventory-v2`), which can be made worse.

pub mod api;
pub mod candidate;
pub mod client;
pub mod db;
pub mod grpc;
pub mod provider_states;
pub mod server;

pub use api::{
    CATALOG, Item, LOW_STOCK_UNITS, Product, Reservation, ReservationStatus, ReserveRequest,
    STOCK_LOW, StockLow,
};
pub use candidate::{CandidateFaults, candidate_app};
pub use client::InventoryClient;
pub use grpc::CatalogClient;
pub use server::{Inventory, app, shadow_app};
