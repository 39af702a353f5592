//! `gauntlet contracts`: `verify` (a running provider against its pacts, from files or a
//! broker, with `pact_verifier`), `drift` (the pacts against the traffic the collector
//! saw), `broker` (a Pact Broker), and the broker's clients: `publish`, `can-i-deploy`,
//! `create-environment`, `record-deployment`; `proto-check` (a gRPC API's `.proto` against a
//! consumer's pinned copy). Flags → the contracts crate, glue only.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use gauntlet_contracts::broker::client::{BrokerClient, BrokerLogin};
use gauntlet_contracts::broker::select::Selector;
use gauntlet_contracts::verify::{BrokerSource, Publish};
use gauntlet_contracts::{VerifyConfig, drift, junit, pacts, verify};

#[derive(Debug, Args)]
pub struct ContractsArgs {
    #[command(subcommand)]
    command: ContractsCommand,
}

#[derive(Debug, Subcommand)]
enum ContractsCommand {
    /// Verify a running provider against every pact that names it.
    ///
    /// Each interaction's provider states are set up through the provider's state-change URL, its request
    /// replayed (or, for a message pact, its message asked for), and the answer matched by
    /// pact_verifier. Exit 0 only if every interaction passed; 1 if any failed, or if
    /// nothing was verified (no pact names the provider, or they hold no interactions).
    #[command(after_help = "Examples:
  gauntlet demo --no-traffic --provider-states --data-dir /tmp/pact-demo &   # documented ports
  gauntlet contracts verify --provider payments --base-url http://127.0.0.1:8300
  gauntlet contracts verify --provider orders --base-url http://127.0.0.1:8200 --junit orders.xml
  gauntlet contracts verify --provider orders --base-url http://127.0.0.1:8200 \
      --broker http://127.0.0.1:9292 --provider-version 1.4.0 --branch main --publish

Pacts are written by the consumer tests (cargo test -p gauntlet-contracts --test consumers)
to contracts/pacts/. Message pacts are asked for at BASE_URL/_pact/messages.")]
    Verify(VerifyArgs),
    /// Set the pacts against what really ran, as the collector saw it.
    ///
    /// The interactions between demo services that the collector saw (client span → server span: method, route, status; events
    /// processed), listing those no contract covers and the contracted ones never seen.
    /// Exit 0 (1 with --strict if there is any drift).
    #[command(after_help = "Examples:
  gauntlet demo &                                   # its traffic reaches the collector on :16686
  gauntlet contracts drift --collector http://127.0.0.1:16686 --since 10m")]
    Drift(DriftArgs),
    /// Serve a Pact Broker (the part of its API the Pact tools use), stored in SQLite.
    ///
    /// Publish pacts, pacts for verification with selectors, pending and WIP pacts,
    /// verification results, environments, deployments, can-i-deploy.
    #[command(after_help = "Examples:
  gauntlet contracts broker --data-dir /var/lib/gauntlet-broker &
  gauntlet contracts publish --broker http://127.0.0.1:9292 --consumer-version 1.4.0 --branch main
  curl -s http://127.0.0.1:9292/ | python3 -m json.tool     # the HAL index

On a network, give it credentials (from the environment or --credentials-file, never flags):
  PACT_BROKER_BASIC_AUTH_USERNAME, PACT_BROKER_BASIC_AUTH_PASSWORD          read and write
  PACT_BROKER_BASIC_AUTH_READ_ONLY_USERNAME, ..._READ_ONLY_PASSWORD         read only
  GAUNTLET_BROKER_TOKEN, GAUNTLET_BROKER_READ_ONLY_TOKEN                    bearer tokens
A wrong or missing credential gets 401; the read-only account writing gets 403. Clients
log in with --broker-username/--broker-password or --broker-token (PACT_BROKER_USERNAME,
PACT_BROKER_PASSWORD, PACT_BROKER_TOKEN), as the Pact CLI does.")]
    Broker(BrokerArgs),
    /// Publish every pact of a directory to a broker as one consumer version (per consumer).
    Publish(PublishArgs),
    /// Ask a broker whether a version can be deployed; exit 0 yes, 1 no.
    ///
    /// Every pact the version has with a counterpart (deployed in the environment, if
    /// given) must have a successful verification. The table shows each, with the reasons.
    #[command(name = "can-i-deploy")]
    CanIDeploy(CanIDeployArgs),
    /// Create an environment on a broker (e.g. production).
    CreateEnvironment(CreateEnvironmentArgs),
    /// Record that a version is now deployed to an environment (replacing the one before).
    RecordDeployment(RecordDeploymentArgs),
    /// Check a gRPC API against a consumer's pinned copy of it: exit 0 if it keeps every
    /// promise, 1 on a breaking change, 2 if either side cannot be read.
    ///
    /// A gRPC API's contract is its .proto (Pact's gRPC support needs a plugin): the consumer
    /// pins a copy of the provider's, and the provider's CI checks its current one against
    /// it. Breaking, by buf's rules (WIRE_JSON, and its service rules): a service, method,
    /// message or enum gone; a method's request, response or streaming changed; a field
    /// gone (unless its number and name are reserved) or renumbered, or changed in name,
    /// JSON name, type, cardinality or oneof; an enum value gone (unless its name is
    /// reserved) or renamed. Additions never break. Each finding names its rule.
    #[command(after_help = "Examples:
  gauntlet contracts proto-check --pinned consumer/pinned/stock.proto --current proto/stock.proto
  gauntlet contracts proto-check --pinned pinned.binpb --current proto/stock.proto -I proto/vendor

Either side is a .proto file (compiled in-process: no protoc needed; imports are found beside it
and in each -I directory) or a descriptor set (.binpb, .pb, .desc), as `protoc -o` or
`buf build -o` write it. The full rules: docs/contracts.md.")]
    ProtoCheck(ProtoCheckArgs),
}

#[derive(Debug, Args)]
struct ProtoCheckArgs {
    /// The API as the consumer pinned it.
    #[arg(long, value_name = "PATH")]
    pinned: PathBuf,
    /// The API as the provider has it now.
    #[arg(long, value_name = "PATH")]
    current: PathBuf,
    /// Another directory to find imports in (repeatable).
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    includes: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct BrokerArgs {
    /// Where to listen. Off loopback it needs credentials (see below) or
    /// --public-unauthenticated.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9292")]
    listen: std::net::SocketAddr,
    /// Where the broker keeps its database.
    #[arg(long, value_name = "DIR", default_value = "gauntlet-broker")]
    data_dir: PathBuf,
    /// Read the credentials from this file of NAME=value lines (the variables' names)
    /// instead of the environment.
    #[arg(long, value_name = "FILE")]
    credentials_file: Option<PathBuf>,
    /// Serve off loopback with no credentials: anyone who reaches it may publish.
    #[arg(long)]
    public_unauthenticated: bool,
    /// The largest request body taken (a pact file, most often), in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    max_body: usize,
}

/// How a client logs in to a broker; the same variables as the Pact CLI.
#[derive(Debug, Args)]
struct BrokerLoginArgs {
    /// The broker's basic-auth username.
    #[arg(long, value_name = "NAME", env = "PACT_BROKER_USERNAME")]
    broker_username: Option<String>,
    /// Its password (better from the environment than the command line).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "PACT_BROKER_PASSWORD",
        hide_env_values = true
    )]
    broker_password: Option<String>,
    /// A bearer token instead (as PactFlow takes).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "PACT_BROKER_TOKEN",
        hide_env_values = true
    )]
    broker_token: Option<String>,
}

impl BrokerLoginArgs {
    fn login(&self) -> anyhow::Result<BrokerLogin> {
        Ok(BrokerLogin::from_parts(
            self.broker_username.clone(),
            self.broker_password.clone(),
            self.broker_token.clone(),
        )?)
    }

    fn client(&self, url: &str) -> anyhow::Result<BrokerClient> {
        Ok(BrokerClient::new(url).with_login(self.login()?))
    }
}

#[derive(Debug, Args)]
struct PublishArgs {
    #[arg(long, value_name = "URL")]
    broker: String,
    #[command(flatten)]
    login: BrokerLoginArgs,
    /// The consumers' version (e.g. a git SHA).
    #[arg(long, value_name = "VERSION")]
    consumer_version: String,
    /// The branch it was built from.
    #[arg(long)]
    branch: Option<String>,
    /// A tag for the version (repeatable).
    #[arg(long)]
    tag: Vec<String>,
    #[arg(long, value_name = "DIR", default_value = "contracts/pacts")]
    pacts: PathBuf,
}

#[derive(Debug, Args)]
struct CanIDeployArgs {
    #[arg(long, value_name = "URL")]
    broker: String,
    #[command(flatten)]
    login: BrokerLoginArgs,
    #[arg(long, value_name = "NAME")]
    pacticipant: String,
    #[arg(long, value_name = "VERSION")]
    version: String,
    /// Against what is deployed there; without it, against the latest of each counterpart.
    #[arg(long, value_name = "ENV")]
    to_environment: Option<String>,
}

#[derive(Debug, Args)]
struct CreateEnvironmentArgs {
    #[arg(long, value_name = "URL")]
    broker: String,
    #[command(flatten)]
    login: BrokerLoginArgs,
    #[arg(long)]
    name: String,
    #[arg(long)]
    production: bool,
}

#[derive(Debug, Args)]
struct RecordDeploymentArgs {
    #[arg(long, value_name = "URL")]
    broker: String,
    #[command(flatten)]
    login: BrokerLoginArgs,
    #[arg(long, value_name = "NAME")]
    pacticipant: String,
    #[arg(long, value_name = "VERSION")]
    version: String,
    #[arg(long, value_name = "ENV")]
    environment: String,
}

#[derive(Debug, Args)]
struct DriftArgs {
    /// The collector's query API.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:16686")]
    collector: String,
    /// The bearer token of a collector started with --auth-token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "GAUNTLET_AUTH_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
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
    /// Fetch the pacts from this Pact Broker ("pacts for verification") instead of --pacts.
    #[arg(long, value_name = "URL")]
    broker: Option<String>,
    /// Which consumer versions' pacts (repeatable): mainBranch, deployedOrReleased, latest,
    /// matchingBranch, branch=NAME, tag=NAME, environment=NAME, consumer=NAME, joined by
    /// commas [default: mainBranch and deployedOrReleased].
    #[arg(long, value_name = "SELECTOR", requires = "broker")]
    selector: Vec<Selector>,
    /// Pacts this provider has never verified are pending: reported, but not failing.
    #[arg(long, requires = "broker")]
    enable_pending: bool,
    /// Also verify work-in-progress pacts published since this date (2026-11-01).
    #[arg(long, value_name = "DATE", requires = "broker")]
    include_wip_pacts_since: Option<String>,
    /// This provider's version, for the published results.
    #[arg(long, value_name = "VERSION")]
    provider_version: Option<String>,
    /// This provider's branch (for pending and WIP pacts, and the published results).
    #[arg(long)]
    branch: Option<String>,
    /// Publish the results to the broker (needs --broker and --provider-version).
    #[arg(long, requires_all = ["broker", "provider_version"])]
    publish: bool,
    #[command(flatten)]
    login: BrokerLoginArgs,
}

pub async fn run(args: ContractsArgs) -> anyhow::Result<ExitCode> {
    if matches!(args.command, ContractsCommand::Verify(_))
        && let Some(exit) = super::untracked_pact().await?
    {
        return Ok(exit);
    }
    match args.command {
        ContractsCommand::Verify(a) => run_verify(a).await,
        ContractsCommand::Drift(a) => run_drift(a).await,
        ContractsCommand::Broker(a) => run_broker(a).await,
        ContractsCommand::Publish(a) => {
            let pacts = pacts::all(&pacts_dir(&a.pacts))?;
            if pacts.is_empty() {
                anyhow::bail!(
                    "{} holds no pact files: nothing to publish",
                    a.pacts.display()
                );
            }
            a.login
                .client(&a.broker)?
                .publish(&pacts, &a.consumer_version, a.branch.as_deref(), &a.tag)
                .await?;
            println!(
                "published {} pacts as version {}",
                pacts.len(),
                a.consumer_version
            );
            Ok(ExitCode::SUCCESS)
        }
        ContractsCommand::CanIDeploy(a) => {
            let answer = a
                .login
                .client(&a.broker)?
                .can_i_deploy(&a.pacticipant, &a.version, a.to_environment.as_deref())
                .await?;
            print!("{}", answer.render());
            Ok(if answer.summary.deployable {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        ContractsCommand::CreateEnvironment(a) => {
            a.login
                .client(&a.broker)?
                .create_environment(&a.name, a.production)
                .await?;
            println!("environment {} created", a.name);
            Ok(ExitCode::SUCCESS)
        }
        ContractsCommand::ProtoCheck(a) => run_proto_check(a),
        ContractsCommand::RecordDeployment(a) => {
            a.login
                .client(&a.broker)?
                .record_deployment(&a.pacticipant, &a.version, &a.environment)
                .await?;
            println!(
                "{} {} is deployed to {}",
                a.pacticipant, a.version, a.environment
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_proto_check(a: ProtoCheckArgs) -> anyhow::Result<ExitCode> {
    use gauntlet_contracts::proto;
    // Exit 2 when a side cannot be read: a check that did not run is not a pass, nor a
    // breaking change.
    let loaded = proto::load(&a.pinned, &a.includes)
        .and_then(|p| Ok((p, proto::load(&a.current, &a.includes)?)));
    let (pinned, current) = match loaded {
        Ok(both) => both,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let found = proto::breaking(&pinned, &current);
    for b in &found {
        println!("{b}");
    }
    if found.is_empty() {
        println!(
            "{} keeps every promise of {}: no breaking change",
            a.current.display(),
            a.pinned.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{} breaking change(s) against {}",
            found.len(),
            a.pinned.display()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// The pacts directory: as given, or, when the default `contracts/pacts` is not where the
/// command runs, the repository's own (this binary was built from it), so the tools work
/// from any directory.
fn pacts_dir(given: &std::path::Path) -> PathBuf {
    let default = std::path::Path::new("contracts/pacts");
    let repository = std::path::Path::new(gauntlet_contracts::PACTS_DIR);
    if given == default && !given.exists() && repository.is_dir() {
        return repository.to_path_buf();
    }
    given.to_path_buf()
}

async fn run_broker(a: BrokerArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    use gauntlet_contracts::broker::{Broker, Limits, auth::Credentials};
    let credentials = match &a.credentials_file {
        Some(path) => Credentials::from_file(path)?,
        None => Credentials::from_env()?,
    };
    // Refused before anything binds or opens.
    credentials.check_exposure(a.listen, a.public_unauthenticated)?;
    if !a.listen.ip().is_loopback() && credentials.is_empty() {
        tracing::warn!(listen = %a.listen, "the broker serves off loopback with no credentials: anyone who reaches it may publish pacts and record deployments");
    }
    let broker = Broker::open(&a.data_dir)?.with_limits(Limits {
        max_body: a.max_body,
        ..Limits::default()
    });
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    eprintln!(
        "pact broker on http://{} (data in {}; {})",
        listener.local_addr()?,
        a.data_dir.display(),
        if credentials.is_empty() {
            "open to anyone who reaches it"
        } else {
            "credentials required"
        }
    );
    axum::serve(
        listener,
        gauntlet_contracts::broker::guarded_router(broker, credentials),
    )
    .with_graceful_shutdown(super::stop_signal())
    .await?;
    Ok(ExitCode::SUCCESS)
}

async fn run_drift(a: DriftArgs) -> anyhow::Result<ExitCode> {
    let pacts = pacts::all(&pacts_dir(&a.pacts))?;
    let contracts = drift::contracted(&pacts)?;
    let (seen, traces) = drift::observe(&a.collector, a.token.as_deref(), a.since).await?;
    let d = drift::compare(contracts, seen, traces);
    print!("{}", d.render());
    Ok(if a.strict && d.any() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn run_verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let pacts = match a.broker {
        Some(_) => Vec::new(),
        None => pacts::for_provider(&pacts_dir(&a.pacts), &a.provider)?,
    };
    let mut config = VerifyConfig::new(&a.provider, &a.base_url, pacts);
    config.state_change_url = a.state_change_url;
    if let Some(url) = a.broker {
        let selectors = if a.selector.is_empty() {
            vec![
                Selector {
                    main_branch: Some(true),
                    ..Selector::default()
                },
                Selector {
                    deployed_or_released: Some(true),
                    ..Selector::default()
                },
            ]
        } else {
            a.selector
        };
        config.broker = Some(BrokerSource {
            url,
            selectors,
            enable_pending: a.enable_pending,
            include_wip_since: a.include_wip_pacts_since,
            provider_branch: a.branch.clone(),
            login: a.login.login()?,
        });
    }
    if a.publish {
        config.publish = a.provider_version.map(|v| Publish {
            provider_version: v,
            branch: a.branch,
        });
    }
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
