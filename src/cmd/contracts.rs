//! `gauntlet contracts verify` (a running provider against every pact that names it, with
//! `pact_verifier`) and `gauntlet contracts drift` (the pacts against the traffic the
//! collector saw); flags → the contracts crate, glue only.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use gauntlet_contracts::{VerifyConfig, drift, junit, pacts, verify};

#[derive(Debug, Args)]
pub struct ContractsArgs {
    #[command(subcommand)]
    command: ContractsCommand,
}

#[derive(Debug, Subcommand)]
enum ContractsCommand {
    /// Verify a running provider against every pact that names it: each interaction's
    /// provider states are set up through the provider's state-change URL, its request
    /// replayed (or, for a message pact, its message asked for), and the answer matched by
    /// pact_verifier. Exit 0 only if every interaction passed; 1 if any failed, or if
    /// nothing was verified (no pact names the provider, or they hold no interactions).
    #[command(after_help = "Examples:
  gauntlet demo --no-traffic --provider-states --data-dir /tmp/pact-demo &   # documented ports
  gauntlet contracts verify --provider payments --base-url http://127.0.0.1:8300
  gauntlet contracts verify --provider orders --base-url http://127.0.0.1:8200 --junit orders.xml

Pacts are written by the consumer tests (cargo test -p gauntlet-contracts --test consumers)
to contracts/pacts/. Message pacts are asked for at BASE_URL/_pact/messages.")]
    Verify(VerifyArgs),
    /// Set the pacts against what really ran: the interactions between demo services that
    /// the collector saw (client span → server span: method, route, status; events
    /// processed), listing those no contract covers and the contracted ones never seen.
    /// Exit 0 (1 with --strict if there is any drift).
    #[command(after_help = "Examples:
  gauntlet demo &                                   # its traffic reaches the collector on :16686
  gauntlet contracts drift --collector http://127.0.0.1:16686 --since 10m")]
    Drift(DriftArgs),
}

#[derive(Debug, Args)]
struct DriftArgs {
    /// The collector's query API.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:16686")]
    collector: String,
    /// How far back to look.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    since: std::time::Duration,
    /// The directory of pact files.
    #[arg(long, value_name = "DIR", default_value = "contracts/pacts")]
    pacts: PathBuf,
    /// Exit 1 if anything seen is uncontracted or anything contracted was never seen.
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The provider's name, as the pacts write it (inventory, orders, payments, order-history).
    #[arg(long)]
    provider: String,
    /// Where the provider runs, e.g. http://127.0.0.1:8300.
    #[arg(long, value_name = "URL")]
    base_url: String,
    /// The directory of pact files.
    #[arg(long, value_name = "DIR", default_value = "contracts/pacts")]
    pacts: PathBuf,
    /// Where provider states are set up [default: BASE_URL/_pact/provider-states].
    #[arg(long, value_name = "URL")]
    state_change_url: Option<String>,
    /// Also write the result as JUnit XML, each interaction a test case.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

pub async fn run(args: ContractsArgs) -> anyhow::Result<ExitCode> {
    // The Pact libraries send usage data unless told not to, and a CLI cannot set its own
    // environment safely once threads run: run again with it set.
    if std::env::var("PACT_DO_NOT_TRACK").as_deref() != Ok("true") {
        let status = tokio::process::Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env("PACT_DO_NOT_TRACK", "true")
            .status()
            .await?;
        return Ok(ExitCode::from(
            status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1),
        ));
    }
    match args.command {
        ContractsCommand::Verify(a) => run_verify(a).await,
        ContractsCommand::Drift(a) => run_drift(a).await,
    }
}

async fn run_drift(a: DriftArgs) -> anyhow::Result<ExitCode> {
    let pacts = pacts::all(&a.pacts)?;
    let contracts = drift::contracted(&pacts)?;
    let (seen, traces) = drift::observe(&a.collector, a.since).await?;
    let d = drift::compare(contracts, seen, traces);
    print!("{}", d.render());
    Ok(if a.strict && d.any() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn run_verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let pacts = pacts::for_provider(&a.pacts, &a.provider)?;
    let mut config = VerifyConfig::new(&a.provider, &a.base_url, pacts);
    config.state_change_url = a.state_change_url;
    config.coloured = std::io::stdout().is_terminal();
    let report = verify(&config).await?;
    print!("{}", report.render());
    if let Some(path) = &a.junit {
        junit::write(&report, path)?;
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
