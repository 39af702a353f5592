//! `DIR/demo.json`: the handle through which tools (tests, load, contracts, chaos) find a
//! running demo. One type, written by `gauntlet demo` and read by everyone else.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Pattern;

/// Where a running demo's parts listen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DemoHandle {
    /// The gateway's base URL: where outside traffic goes.
    pub gateway: String,
    pub collector: CollectorHandle,
    /// The supervisor API (`GET /instances`, `POST /instances/{id}/kill|restart|start|pause|resume`).
    pub supervisor: String,
    /// Base URLs of every instance, by service name.
    pub services: BTreeMap<String, Vec<String>>,
    /// Under `gauntlet demo --chaos`: the proxy API and the proxy on each edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chaos: Option<ChaosHandle>,
    /// The patterns this demo runs without (`--disable`, or its config file): a chaos
    /// experiment validating one of them runs as that pattern's control.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled: Vec<Pattern>,
    /// Under `--broker rabbitmq`: the broker's AMQP URL (events travel through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<String>,
}

/// The chaos proxies of a demo run with `--chaos`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChaosHandle {
    /// The Toxiproxy-compatible API.
    pub api: String,
    /// Proxy name (`orders_to_payments`, `orders_to_inventory_2`) → where it listens and
    /// what it forwards to.
    pub proxies: BTreeMap<String, ProxyRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProxyRoute {
    pub listen: String,
    pub upstream: String,
}

/// Where the demo's telemetry goes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CollectorHandle {
    /// The query API (and UI), when the demo runs its own collector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    pub otlp_http: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_grpc: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("cannot read {path}: {source} (is `gauntlet demo` running with that --data-dir?)")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a demo handle: {reason}")]
    Invalid { path: String, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl DemoHandle {
    pub fn load(path: &Path) -> Result<Self, HandleError> {
        let shown = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| HandleError::Read {
            path: shown.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| HandleError::Invalid {
            path: shown,
            reason: e.to_string(),
        })
    }

    pub fn write(&self, path: &Path) -> Result<(), HandleError> {
        let write_err = |source| HandleError::Write {
            path: path.display().to_string(),
            source,
        };
        let text = serde_json::to_vec_pretty(self).map_err(|e| write_err(e.into()))?;
        std::fs::write(path, text).map_err(write_err)
    }
}
