//! The subcommands and their flags.

mod assert;
mod canary;
mod chaos;
mod collector;
mod contracts;
mod demo;
mod demo_config;
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
    /// Release a new version step by step (10 → 25 → 50 → 100 % of a service's calls through
    /// the registry) while a statistical judge finds it no worse than the current one; roll
    /// it back the moment it does not.
    #[command(after_help = "Examples:
  gauntlet demo &                                    # inventory v1 and v2 run, v2 gets 10 %
  gauntlet canary --service inventory --baseline v1 --candidate v2
  curl -X PUT localhost:8104/admin/candidate -d '{\"latency_ms\": 300}' -H 'content-type: application/json'
  gauntlet canary --service inventory --baseline v1 --candidate v2 --window 10s --min-requests 30

Each step is judged once, after --window, on the requests each version served (read from the
collector): latency by a one-sided Mann-Whitney U test against the baseline's latencies scaled
by --latency-tolerance, failures by Fisher's exact test against the baseline's rate plus
--error-tolerance. docs/demo.md has the figures (false alarms on identical versions, catches).
Exit 0 promoted, 1 rolled back, 130 interrupted.")]
    Canary(canary::CanaryArgs),
    /// Consumer-driven contracts (Pact): verify providers, drift against traces, a broker.
    Contracts(contracts::ContractsArgs),
    /// Put a system through the whole gauntlet (contracts, load, every pattern's experiment
    /// and control) from a suite file, and answer with one verdict and one report.
    Run(run::RunArgs),
    /// Check trace-based assertions (Tracetest's selectors) on the traces a request, a
    /// correlation ID or a load run left in the collector.
    Assert(assert::AssertArgs),
    /// Run one demo service instance (the demo's supervisor starts these).
    #[command(hide = true)]
    DemoService(demo::ServiceArgs),
    /// Run the demo's RabbitMQ and stop it when the demo goes (the demo starts this).
    #[command(hide = true)]
    DemoBroker(demo::BrokerArgs),
}

impl Cli {
    pub fn exports_own_telemetry(&self) -> bool {
        matches!(self.command, Command::DemoService(_))
    }

    /// The log filter when RUST_LOG is unset: our INFO lines, and the libraries' too only
    /// with --verbose (the Pact verifier alone prints dozens of INFO lines per provider).
    pub fn default_log_filter(&self) -> &'static str {
        // `gauntlet run` prints its own progress; the parts it runs in-process (collector,
        // proxies, verifier) speak up only when something is wrong.
        if matches!(self.command, Command::Run(_)) && !self.verbose {
            return "warn,pact_matching=error";
        }
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
            Command::DemoBroker(args) => demo::run_broker(args).await.map(|()| ExitCode::SUCCESS),
            Command::Load(args) => load::run(*args).await,
            Command::Chaos(args) => chaos::run(args).await,
            Command::Contracts(args) => contracts::run(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Assert(args) => assert::run(args).await,
            Command::Canary(args) => canary::run(args).await,
        }
    }
}

/// The Pact verifier sends usage data off the machine unless told not to, and a CLI cannot
/// set its own environment safely once threads run: unless `PACT_DO_NOT_TRACK=true` is set
/// already, runs this command again with it set and gives its exit (`None`: it is set, go on).
pub async fn untracked_pact() -> anyhow::Result<Option<ExitCode>> {
    if std::env::var("PACT_DO_NOT_TRACK").as_deref() == Ok("true") {
        return Ok(None);
    }
    let status = tokio::process::Command::new(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env("PACT_DO_NOT_TRACK", "true")
        .kill_on_drop(true)
        .status()
        .await?;
    Ok(Some(ExitCode::from(
        status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1),
    )))
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
