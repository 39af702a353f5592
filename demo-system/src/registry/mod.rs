//! Service registry and discovery: instances register (name, address, version, health
//! URL) and heartbeat; discovery lists only those that heartbeated within the TTL and
//! pass their health checks.
//!
//! - [`api`]: the wire types; [`server`]: the state, routes and background checks;
//!   [`client`]: the typed client and `announce`, which every other instance runs;
//!   [`weights`]: the share of calls each version of a service gets (canary, blue-green);
//!   [`kv`]: the configuration the services follow live, as keys with versions (Consul's KV);
//!   [`locks`]: Consul's sessions and the locks they take on keys (leader election, with
//!   `LockIndex` as the fencing token).

pub mod api;
pub mod client;
pub mod kv;
pub mod locks;
pub mod server;
pub mod weights;

pub use api::{InstanceView, KvEntry, Registered, Registration, Routing};
pub use client::{RegistryClient, RegistryClientError, announce};
pub use kv::KvStore;
pub use server::{Registry, RegistryConfig, RegistryError, app, run};
pub use weights::Weights;
