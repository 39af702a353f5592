//! `gauntlet demo config`: reads and changes the configuration a running demo's services
//! follow live (the registry's key/value store, Consul's KV API); glue only.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use gauntlet_demo_system::handle::DemoHandle;
use gauntlet_demo_system::platform::live_config::ConfigKey;
use gauntlet_demo_system::registry::RegistryClient;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  gauntlet demo config list
  gauntlet demo config set orders/payments/retry/max_attempts 1   # no more retries, at once
  gauntlet demo config get orders/payments/retry/max_attempts
  gauntlet demo config unset orders/payments/retry/max_attempts   # the file's value again
  gauntlet demo config set gateway/shop_routes/order orders       # the old shop's order lookups move
  gauntlet demo config set registry/weights/inventory '{\"v1\": 90, \"v2\": 10}'

The keys are {service}/{upstream}/retry/max_attempts (1 to 10) and {service}/{upstream}/timeout_ms
(1 to 600000) for the upstream clients of orders, web-bff and mobile-bff; gateway/shop_routes/{route}
(legacy, or the route's new owner: a feature flag of the strangler fig; unset: the file's route);
registry/weights/{service} (JSON, version to percent, adding up to 100; unset: calls spread over
every instance). Each reader holds a blocking read on the registry (GET
/v1/kv/{prefix}?recurse&index=N) and applies a change as it lands, logging config.applied; no
restart. The registry keeps the keys in its data
directory, so they survive its restart; a new `gauntlet demo` on the same directory keeps them.")]
pub struct ConfigArgs {
    #[command(subcommand)]
    action: Action,
    /// The demo whose registry to use (`gauntlet demo` prints the path).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "GAUNTLET_DEMO",
        default_value = "gauntlet-demo/demo.json"
    )]
    demo: PathBuf,
    /// The registry's URL, instead of the demo's.
    #[arg(long, global = true, value_name = "URL")]
    registry: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Every key the services follow, with its value or `-` (the settings file's).
    List,
    /// One key's value; exits 1 when it is not set.
    Get { key: String },
    /// Sets a key; the registry refuses a key or value the services would not take.
    Set { key: String, value: String },
    /// Removes a key: the services go back to the settings file's value.
    Unset { key: String },
}

impl ConfigArgs {
    fn registry(&self) -> anyhow::Result<RegistryClient> {
        let url = match &self.registry {
            Some(url) => url.clone(),
            None => DemoHandle::load(&self.demo)
                .with_context(|| {
                    format!(
                        "no --registry given, and the demo's handle {} cannot be read (start `gauntlet demo`, or name the registry)",
                        self.demo.display()
                    )
                })?
                .services
                .get("registry")
                .and_then(|urls| urls.first().cloned())
                .context("the demo's handle lists no registry")?,
        };
        Ok(RegistryClient::new(&url))
    }
}

/// A key of the catalog, or the error listing them (before anything is sent).
fn known(key: &str) -> anyhow::Result<ConfigKey> {
    ConfigKey::parse(key).map_err(anyhow::Error::msg)
}

pub async fn run(args: ConfigArgs) -> anyhow::Result<()> {
    // A key no service follows, or a value it would not take, is named before anything is
    // looked up or sent (the registry checks writes again: it takes them from anyone).
    match &args.action {
        Action::Get { key } | Action::Unset { key } => {
            known(key)?;
        }
        Action::Set { key, value } => {
            known(key)?.check(value).map_err(anyhow::Error::msg)?;
        }
        Action::List => {}
    }
    let registry = args.registry()?;
    match &args.action {
        Action::List => {
            let set = registry.kv_list("").await?;
            for key in ConfigKey::all().map(|k| k.to_string()) {
                let value = set
                    .iter()
                    .find(|e| e.key == key)
                    .and_then(|e| e.text())
                    .unwrap_or_else(|| "-".into());
                println!("{key:<48} {value}");
            }
        }
        Action::Get { key } => match registry.kv_get(key).await?.and_then(|e| e.text()) {
            Some(value) => println!("{value}"),
            None => bail!("{key} is not set: the services use the settings file's value"),
        },
        Action::Set { key, value } => {
            registry.kv_put(key, value).await?;
            println!("{key} = {value}: applied live by every instance that follows it");
        }
        Action::Unset { key } => {
            registry.kv_delete(key).await?;
            println!("{key} unset: back to the settings file's value");
        }
    }
    Ok(())
}
