//! The registry's wire types, shared by its server and [`super::client::RegistryClient`].

use serde::{Deserialize, Serialize};

use crate::platform::sharding::Shard;
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
    /// The shard of its service's data it holds, for a sharded service: callers route a
    /// key's calls to the instance of its shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

/// What a caller needs to route to a service (`GET /services/{name}/routing`): its healthy
/// instances, and the share of calls each version gets (empty: every instance alike).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Routing {
    pub instances: Vec<InstanceView>,
    #[serde(default)]
    pub weights: Weights,
}

/// One key of the configuration store as `GET /v1/kv/{key}` answers it, in Consul's shape
/// (so Consul's tools and libraries read it): the value base64-encoded, with the indexes
/// of the change that created the key and of the last one that modified it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct KvEntry {
    pub key: String,
    /// Base64 of the stored bytes.
    pub value: Option<String>,
    pub create_index: u64,
    pub modify_index: u64,
    /// How many times the key's lock was acquired by a session: a fencing token that grows
    /// with each new holder.
    pub lock_index: u64,
    pub flags: u64,
    /// The session holding the key's lock, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

impl KvEntry {
    /// The value as text (`None`: not base64 of UTF-8, or no value).
    pub fn text(&self) -> Option<String> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.value.as_deref()?)
            .ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// The header a configuration read's index comes back in; send it back as `?index=` to
/// wait for the next change.
pub const KV_INDEX_HEADER: &str = "x-consul-index";

/// `PUT /v1/session/create`'s body, in Consul's shape (its field names in either case, as
/// Consul reads them: py-consul sends `ttl`, `lockdelay`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRequest {
    #[serde(
        rename = "Name",
        alias = "name",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<String>,
    /// `10s`, `500ms`, `1m`: the session ends unless renewed within it. None: until
    /// destroyed.
    #[serde(
        rename = "TTL",
        alias = "ttl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<String>,
    /// `release` (default): the locks it holds are released when it ends; `delete`: their
    /// keys are deleted.
    #[serde(
        rename = "Behavior",
        alias = "behavior",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub behavior: Option<String>,
    /// How long a lock its end released cannot be acquired (`15s`, Consul's default).
    #[serde(
        rename = "LockDelay",
        alias = "lockdelay",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub lock_delay: Option<String>,
    /// Consul's node the session belongs to; the registry is one node, whatever is named.
    #[serde(
        rename = "Node",
        alias = "node",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub node: Option<String>,
    /// Health checks that end the session when they fail: none are supported (use a TTL).
    #[serde(
        rename = "Checks",
        alias = "checks",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub checks: Vec<String>,
}

/// `PUT /v1/session/create`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionCreated {
    #[serde(rename = "ID")]
    pub id: String,
}

/// A session as `GET /v1/session/info/{id}`, `/v1/session/list` and a renewal answer it, in
/// Consul's shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SessionEntry {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub node: String,
    /// Nanoseconds, as Consul gives it.
    pub lock_delay: u64,
    pub behavior: String,
    /// `10s`; empty for a session without one.
    #[serde(rename = "TTL")]
    pub ttl: String,
    pub checks: Vec<String>,
    pub create_index: u64,
    pub modify_index: u64,
}
