//! The registry's wire types, shared by its server and [`super::client::RegistryClient`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::weights::Weights;

/// What an instance says about itself when it registers (`POST /instances`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub name: String,
    /// Base URL, e.g. `http://127.0.0.1:8081`.
    pub address: String,
    pub version: String,
    /// Polled with GET; any 2xx is healthy.
    pub health_url: String,
}

/// The answer to a registration (`201`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Registered {
    pub id: Uuid,
    pub ttl_ms: u64,
    /// Heartbeat at least this often to stay listed.
    pub heartbeat_interval_ms: u64,
}

/// An instance as discovery reports it (`GET /services/{name}`, `GET /services`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceView {
    pub id: Uuid,
    pub name: String,
    pub address: String,
    pub version: String,
    pub health_url: String,
    pub healthy: bool,
    /// Milliseconds since the last heartbeat.
    pub last_heartbeat_ms: u64,
}

/// What a caller needs to route to a service (`GET /services/{name}/routing`): its healthy
/// instances, and the share of calls each version gets (empty: every instance alike).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Routing {
    pub instances: Vec<InstanceView>,
    #[serde(default)]
    pub weights: Weights,
}
