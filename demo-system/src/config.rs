//! The demo's settings: one TOML file (`demo-system/demo.toml` documents every key and its
//! default), plus `--disable PATTERN` switches that turn one pattern off so an experiment
//! can show what it is worth. The supervisor hands each child the effective settings.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::gateway::GatewayConfig;
use crate::payments::PaymentsConfig;
use crate::platform::discovery::DiscoveryConfig;
use crate::platform::resilience::ResilienceConfig;
use crate::registry::RegistryConfig;

/// Patterns `--disable` can switch off.
pub const PATTERNS: [&str; 4] = ["circuit-breaker", "retries", "health-checks", "outbox"];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Publish events through each service's transactional outbox; `false` (`--disable
    /// outbox`) publishes fire-and-forget from memory instead.
    pub transactional_outbox: bool,
    /// How every service finds the instances of the services it calls.
    pub discovery: DiscoveryConfig,
    pub registry: RegistryConfig,
    pub gateway: GatewayConfig,
    pub payments: PaymentsConfig,
    /// Resilience of the orders service's calls to inventory and payments.
    pub orders: ResilienceConfig,
    pub contracts: ContractsConfig,
}

/// What contract verification needs from the services.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContractsConfig {
    /// Serve Pact's `POST /_pact/provider-states` on every provider (and orders' `POST
    /// /_pact/messages`), so `gauntlet contracts verify` can set each one up. Never in
    /// production: it writes to the services' databases on request.
    pub provider_states: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid demo config: {message}")]
    Invalid { path: String, message: String },
    #[error(
        "--disable {0:?} is not a pattern that can be switched off: use one of circuit-breaker, retries, health-checks, outbox"
    )]
    UnknownPattern(String),
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            transactional_outbox: true,
            discovery: DiscoveryConfig::default(),
            registry: RegistryConfig::default(),
            gateway: GatewayConfig::default(),
            payments: PaymentsConfig::default(),
            orders: ResilienceConfig::saga(),
            contracts: ContractsConfig::default(),
        }
    }
}

impl DemoConfig {
    /// Reads a TOML (or, for the file the supervisor writes, JSON) config; missing keys
    /// take their defaults, unknown keys are an error.
    pub fn load(path: &Path) -> Result<Self, ConfigFileError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            toml::from_str(&text).map_err(|e| e.to_string())
        };
        parsed.map_err(|message| ConfigFileError::Invalid {
            path: shown,
            message,
        })
    }

    /// Switches one pattern off everywhere it is used.
    pub fn disable(&mut self, pattern: &str) -> Result<(), ConfigFileError> {
        match pattern {
            "circuit-breaker" => {
                self.gateway.resilience.circuit_breaker.enabled = false;
                self.orders.circuit_breaker.enabled = false;
            }
            "retries" => {
                self.gateway.resilience.retry.enabled = false;
                self.orders.retry.enabled = false;
            }
            "health-checks" => self.registry.health_checks = false,
            "outbox" => self.transactional_outbox = false,
            other => return Err(ConfigFileError::UnknownPattern(other.to_string())),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_file_is_the_defaults() {
        let shipped = DemoConfig::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("demo.toml"))
            .expect("demo.toml parses");
        let as_json = |c: &DemoConfig| serde_json::to_value(c).expect("serializes");
        assert_eq!(as_json(&shipped), as_json(&DemoConfig::default()));
    }

    #[test]
    fn bad_files_and_patterns_say_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[gateway]\nrate_limit_per_secnd = 5\n").expect("write");
        let err = DemoConfig::load(&file)
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("rate_limit_per_secnd"), "{err}");
        let mut c = DemoConfig::default();
        c.disable("retries").expect("known");
        assert!(!c.gateway.resilience.retry.enabled && !c.orders.retry.enabled);
        c.disable("circuit-breaker").expect("known");
        assert!(!c.orders.circuit_breaker.enabled);
        assert!(
            c.disable("gravity")
                .expect_err("unknown")
                .to_string()
                .contains("circuit-breaker")
        );
    }
}
