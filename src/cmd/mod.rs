//! The subcommands and their flags.

mod chaos;
mod collector;
mod contracts;
mod demo;
mod load;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gauntlet",
    version,
    about = "Puts microservices through the gauntlet and watches what happens",
    long_about = "Puts microservices through the gauntlet and watches what happens.\n\n\
        Start the collector, point your services' OpenTelemetry SDKs at it with\n\
        OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318, then read traces, logs and\n\
        correlation timelines from http://127.0.0.1:16686/api/...",
    after_help = "Run `gauntlet <COMMAND> --help` for the flags of each command."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Also log what the libraries underneath say (the Pact verifier's INFO lines, ...).
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive OTLP (gRPC and HTTP) and Zipkin telemetry, store it, and serve queries.
    Collector(collector::CollectorArgs),
    /// Start the demo microservices (and a collector), send a little traffic, print where to look.
    Demo(demo::DemoArgs),
    /// Put an HTTP service under load and tell the truth about its latency.
    Load(Box<load::LoadArgs>),
    /// Inject faults (a Toxiproxy-compatible proxy) and run chaos experiments on the demo.
    Chaos(chaos::ChaosArgs),
    /// Consumer-driven contracts (Pact): verify providers, drift against traces, a broker.
    Contracts(contracts::ContractsArgs),
    /// Put a system through the whole gauntlet (contracts, load, every pattern's experiment
    /// and control) from a suite file, and answer with one verdict and one report.
    Run(run::RunArgs),
    /// Run one demo service instance (the demo's supervisor starts these).
    #[command(hide = true)]
    DemoService(demo::ServiceArgs),
}

impl Cli {
    pub fn exports_own_telemetry(&self) -> bool {
        matches!(self.command, Command::DemoService(_))
    }

    /// The log filter when RUST_LOG is unset: our INFO lines, and the libraries' too only
    /// with --verbose (the Pact verifier alone prints dozens of INFO lines per provider).
    pub fn default_log_filter(&self) -> &'static str {
        if self.verbose {
            "info"
        } else {
            "info,h2=warn,hyper=warn,tower=warn,pact_verifier=warn,pact_matching=warn,\
             pact_models=warn,pact_mock_server=warn"
        }
    }

    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Collector(args) => collector::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Demo(args) => demo::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::DemoService(args) => demo::run_service(args).await.map(|()| ExitCode::SUCCESS),
            Command::Load(args) => load::run(*args).await,
            Command::Chaos(args) => chaos::run(args).await,
            Command::Contracts(args) => contracts::run(args).await,
            Command::Run(args) => run::run(args).await,
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
