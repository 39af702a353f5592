//! `gauntlet chaos proxy`: the fault-injecting proxy with Toxiproxy's HTTP API.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct ChaosArgs {
    #[command(subcommand)]
    command: ChaosCommand,
}

#[derive(Debug, Subcommand)]
enum ChaosCommand {
    /// A TCP proxy that injects faults, driven by Toxiproxy's HTTP API (its clients work
    /// unchanged): latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data.
    #[command(after_help = "Examples:
  gauntlet chaos proxy
  curl -s -XPOST 127.0.0.1:8474/proxies -d '{\"name\": \"orders_to_payments\", \"listen\": \"127.0.0.1:21300\", \"upstream\": \"127.0.0.1:8300\"}'
  curl -s -XPOST 127.0.0.1:8474/proxies/orders_to_payments/toxics -d '{\"type\": \"latency\", \"attributes\": {\"latency\": 3000}}'
  curl -s -XPOST 127.0.0.1:8474/reset        # every proxy enabled, every toxic gone

--config takes the body /populate takes: [{\"name\", \"listen\", \"upstream\", \"enabled\"}, ...].")]
    Proxy(ProxyArgs),
}

#[derive(Debug, Args)]
struct ProxyArgs {
    /// Where the HTTP API listens (Toxiproxy's default port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8474")]
    api: String,
    /// Proxies to create at start (JSON, as POST /populate takes).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    match args.command {
        ChaosCommand::Proxy(p) => {
            let initial = match &p.config {
                Some(f) => gauntlet_chaos::read_config(f)?,
                None => Vec::new(),
            };
            let listener = tokio::net::TcpListener::bind(&p.api)
                .await
                .with_context(|| format!("cannot listen for the API on {}", p.api))?;
            let addr = listener.local_addr()?;
            println!("chaos proxy API on http://{addr} (Toxiproxy-compatible); Ctrl-C stops it");
            gauntlet_chaos::serve(listener, initial, super::stop_signal()).await?;
            Ok(())
        }
    }
}
