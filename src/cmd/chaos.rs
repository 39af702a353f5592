//! `gauntlet chaos proxy` (the fault-injecting proxy with Toxiproxy's HTTP API) and
//! `gauntlet chaos run` (an experiment against a running demo).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use gauntlet_chaos::{self as experiment, Experiment, RunOptions, target::Demo};
use gauntlet_demo_system::handle::DemoHandle;

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
    /// Run a chaos experiment against a running `gauntlet demo --chaos`: the steady state
    /// before, the method (faults, probes, pauses), the steady state after, then the
    /// rollbacks, which always run (Ctrl-C too). Exit 0 only if the hypothesis held
    /// throughout; 1 if a probe's tolerance was not met; 2 if an action could not be
    /// carried out; 130 if interrupted.
    #[command(after_help = "Examples:
  gauntlet demo --chaos &                      # in another terminal, or in the background
  gauntlet chaos run chaos/experiments/payments-slow.toml
  gauntlet chaos run chaos/experiments/inventory-resets.toml --junit chaos.xml --json chaos.json

  # prove the experiment can fail: the same one against a demo without the pattern
  gauntlet demo --chaos --disable retries --ports auto --data-dir /tmp/no-retries &
  gauntlet chaos run chaos/experiments/inventory-resets.toml --demo /tmp/no-retries/demo.json

chaos/experiments/README.md documents the experiment file: steady_state, method, rollbacks,
and every action and probe type.")]
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The experiment (TOML).
    #[arg(value_name = "EXPERIMENT")]
    experiment: PathBuf,
    /// The demo to run it against: the demo.json that `gauntlet demo --chaos` wrote (its
    /// banner prints the path).
    #[arg(
        long,
        value_name = "FILE",
        env = "GAUNTLET_DEMO",
        default_value = "gauntlet-demo/demo.json"
    )]
    demo: PathBuf,
    /// Also write the report as JSON (schema gauntlet.chaos.report/v1).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the report as JUnit XML, each probe and action a test case.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ProxyArgs {
    /// Where the HTTP API listens (Toxiproxy's default port). Off loopback only with
    /// --insecure-api: the API has no credentials.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8474")]
    api: String,
    /// Serve the API off loopback anyway (anyone who reaches it can add faults and relay).
    #[arg(long)]
    insecure_api: bool,
    /// Let proxies listen on and connect to addresses off loopback.
    #[arg(long)]
    allow_remote: bool,
    /// Proxies to create at start (JSON, as POST /populate takes).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ChaosCommand::Run(r) => run_experiment(r).await,
        ChaosCommand::Proxy(p) => {
            let initial = match &p.config {
                Some(f) => gauntlet_chaos_proxy::read_config(f)?,
                None => Vec::new(),
            };
            gauntlet_chaos_proxy::check_api_address(&p.api, p.insecure_api).await?;
            let listener = tokio::net::TcpListener::bind(&p.api)
                .await
                .with_context(|| format!("cannot listen for the API on {}", p.api))?;
            let addr = listener.local_addr()?;
            if !addr.ip().is_loopback() {
                tracing::warn!(api = %addr, "the chaos proxy API serves off loopback with no credentials: anyone who reaches it can add faults to every proxy");
            }
            let policy = gauntlet_chaos_proxy::Policy {
                allow_remote: p.allow_remote,
                ..Default::default()
            };
            let server = gauntlet_chaos_proxy::bind_with(listener, initial, policy).await?;
            println!("chaos proxy API on http://{addr} (Toxiproxy-compatible); Ctrl-C stops it");
            server.run(super::stop_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run_experiment(r: RunArgs) -> anyhow::Result<ExitCode> {
    let exp = Experiment::load(&r.experiment)?;
    let handle = DemoHandle::load(&r.demo)?;
    if handle.chaos.is_none() && exp.activities().any(|a| a.kind.needs_proxies()) {
        anyhow::bail!(
            "{} was written by a demo started without --chaos, and this experiment puts faults on its proxies: start it with `gauntlet demo --chaos`",
            r.demo.display()
        );
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        super::stop_signal().await;
        eprintln!("stopping: rolling back...");
        let _ = stop.send(true);
    });
    let report = experiment::run(
        &exp,
        &r.experiment.display().to_string(),
        Demo::new(handle),
        RunOptions { live: true },
        stopped,
    )
    .await;
    ctrl_c.abort();
    if let Some(path) = &r.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write --json {}", path.display()))?;
    }
    if let Some(path) = &r.junit {
        std::fs::write(path, report.junit())
            .with_context(|| format!("cannot write --junit {}", path.display()))?;
    }
    Ok(ExitCode::from(report.status.exit_code()))
}
