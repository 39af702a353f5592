//! Service registry and discovery: instances register (name, address, version, health
//! URL) and heartbeat; discovery lists only those that heartbeated within the TTL and
//! pass their health checks.
//!
//! - [`api`]: the wire types; [`server`]: the state, routes and background checks;
//!   [`client`]: the typed client and `announce`, which every other instance runs.

pub mod api;
pub mod client;
pub mod server;

pub use api::{InstanceView, Registered, Registration};
pub use client::{RegistryClient, RegistryClientError, announce};
pub use server::{Registry, RegistryConfig, RegistryError, app, run};
