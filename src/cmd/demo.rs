//! `gauntlet demo` and the hidden `gauntlet demo-service`: flags → `gauntlet-demo-launch`'s
//! options (and the runner's, for one instance); glue only.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use gauntlet_demo_launch::{self as launch, LaunchOptions, banner};
use gauntlet_demo_system::config::{DemoConfig, EventTransport, Pattern};
use gauntlet_demo_system::runner::{self, Instance};
use gauntlet_demo_system::topology::{InstanceId, Service};
use gauntlet_demo_system::traffic;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Ports {
    /// The documented ports: gateway 8080, registry 8500, supervisor 8700, collector 4317/4318/16686.
    Fixed,
    /// Free ports picked at start (see DIR/demo.json for where everything is).
    Auto,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
#[command(after_help = "Examples:
  gauntlet demo                          # everything on its documented port, then a burst of traffic
  gauntlet demo --ports auto --no-traffic --data-dir /tmp/demo
  gauntlet demo --disable circuit-breaker --disable retries   # see what they were worth
  gauntlet demo --ports auto --no-traffic --provider-states   # for `gauntlet contracts verify`
  gauntlet demo --broker rabbitmq        # events through Debian's RabbitMQ instead of HTTP feeds

DIR/demo.json says where everything listens; tests, load and chaos tools read it.
Ctrl-C (or SIGTERM) stops every process the demo started.
`gauntlet demo config --help`: the settings a running demo's services follow live.")]
pub struct DemoArgs {
    #[command(subcommand)]
    command: Option<DemoCommand>,
    /// Where the demo keeps its databases, logs and demo.json.
    #[arg(long, value_name = "DIR", default_value = "gauntlet-demo")]
    data_dir: PathBuf,
    /// Fixed documented ports, or free ones picked at start.
    #[arg(long, value_enum, default_value_t = Ports::Fixed)]
    ports: Ports,
    /// Send the services' telemetry to this OTLP/HTTP endpoint (e.g. http://127.0.0.1:4318)
    /// instead of starting a collector.
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// Start everything but send no traffic.
    #[arg(long)]
    no_traffic: bool,
    /// Settings file (TOML; demo-system/demo.toml documents every key and its default).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Route every service-to-service hop through a fault-injecting proxy, one per edge and
    /// provider instance (`orders_to_payments`, `orders_to_inventory_2`), driven by a
    /// Toxiproxy-compatible API (its address is in DIR/demo.json under "chaos").
    #[arg(long)]
    chaos: bool,
    /// Switch a pattern off, to show what it is worth (repeatable).
    #[arg(long, value_name = "PATTERN", value_parser = pattern_parser())]
    disable: Vec<Pattern>,
    /// Serve Pact's provider-state routes on every provider, so `gauntlet contracts verify`
    /// can set each one up (they write to the databases on request: never in production).
    #[arg(long)]
    provider_states: bool,
    /// What carries events from publishers to consumers: each publisher's HTTP feed, or
    /// RabbitMQ (Debian's rabbitmq-server, started by the demo unless --broker-url names
    /// one). Overrides [events] transport of --config.
    #[arg(long, value_enum, value_name = "TRANSPORT")]
    broker: Option<BrokerKind>,
    /// A RabbitMQ of your own for --broker rabbitmq (amqp://user:password@host:port/vhost).
    #[arg(long, value_name = "URL", requires = "broker")]
    broker_url: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BrokerKind {
    /// Consumers long-poll each publisher's `GET /events` (the default).
    Feed,
    /// The outbox relays to RabbitMQ with publisher confirms; consumers read durable
    /// quorum queues and acknowledge after their handler commits.
    Rabbitmq,
}

/// Flags of the broker watcher; the demo sets them.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// The broker's directory (data, logs, HOME).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    #[arg(long)]
    amqp_port: u16,
    #[arg(long)]
    dist_port: u16,
    #[arg(long)]
    epmd_port: u16,
}

/// Runs RabbitMQ until standard input closes (the demo holds the other end).
pub async fn run_broker(args: BrokerArgs) -> anyhow::Result<()> {
    let ports = gauntlet_demo_system::broker_server::BrokerPorts {
        amqp: args.amqp_port,
        dist: args.dist_port,
        epmd: args.epmd_port,
    };
    gauntlet_demo_system::broker_server::watch(&args.dir, ports).await?;
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
enum DemoCommand {
    /// Read and change the settings a running demo's services follow live (retry attempts,
    /// deadlines), without a restart.
    Config(super::demo_config::ConfigArgs),
}

/// Flags of one demo instance; the supervisor sets them.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// One of: registry, payments, inventory, orders, notifications, order-history, legacy,
    /// legacy-sidecar, gateway.
    name: Service,
    /// Which instance of the service this is (1-based).
    #[arg(long, default_value_t = 1)]
    instance: u16,
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// The registry: where the instance announces itself and finds its upstreams.
    #[arg(long, value_name = "URL")]
    registry: String,
    /// Send traces and logs to this OTLP/HTTP endpoint.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// The effective settings (JSON, written by `gauntlet demo`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Stop when standard input closes: the supervisor holds the other end, so the
    /// instance stops with it even if it is killed.
    #[arg(long)]
    exit_with_parent: bool,
    /// Under --chaos: per consumer service, which proxy reaches each instance (JSON).
    #[arg(long, value_name = "FILE")]
    routes: Option<PathBuf>,
    /// For a sidecar (legacy-sidecar): the app it stands beside, e.g. http://127.0.0.1:8900.
    #[arg(long, value_name = "URL")]
    app: Option<String>,
}

pub async fn run_service(args: ServiceArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(f) => DemoConfig::load(f)?,
        None => DemoConfig::default(),
    };
    let routes = match &args.routes {
        Some(f) => {
            let text = std::fs::read(f)
                .with_context(|| format!("cannot read --routes {}", f.display()))?;
            let mut all: BTreeMap<String, gauntlet_demo_system::platform::discovery::Routes> =
                serde_json::from_slice(&text)
                    .with_context(|| format!("{} is not a routes file", f.display()))?;
            all.remove(args.name.name()).unwrap_or_default()
        }
        None => Default::default(),
    };
    let instance = Instance {
        routes,
        id: InstanceId {
            service: args.name,
            ordinal: args.instance,
        },
        listen: args.listen,
        data_dir: args.data_dir,
        registry_url: args.registry,
        config,
        otlp_endpoint: args.otlp_endpoint,
        app: args.app,
    };
    let parent = args.exit_with_parent.then(runner::parent_gone);
    let shutdown = async move {
        match parent {
            Some(gone) => {
                tokio::select! {
                    _ = super::stop_signal() => {}
                    _ = gone => tracing::warn!("the demo that started this instance is gone; stopping"),
                }
            }
            None => super::stop_signal().await,
        }
    };
    runner::run(instance, shutdown).await?;
    Ok(())
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if let Some(DemoCommand::Config(config)) = args.command {
        return super::demo_config::run(config).await;
    }
    let mut config =
        LaunchOptions::settings(args.config.as_deref(), &args.disable, args.provider_states)?;
    match args.broker {
        Some(BrokerKind::Rabbitmq) => {
            config.events.transport = EventTransport::Rabbitmq;
            config.events.url = args.broker_url.or(config.events.url);
        }
        Some(BrokerKind::Feed) if args.broker_url.is_some() => {
            anyhow::bail!("--broker-url is for --broker rabbitmq");
        }
        Some(BrokerKind::Feed) => config.events.transport = EventTransport::Feed,
        None => {}
    }
    config
        .events
        .check()
        .map_err(|e| anyhow::anyhow!("--broker-url: {e}"))?;
    let options = LaunchOptions {
        exe: std::env::current_exe()
            .context("cannot find the gauntlet binary to start services with")?,
        data_dir: args.data_dir,
        ports: match args.ports {
            Ports::Fixed => launch::Ports::Fixed,
            Ports::Auto => launch::Ports::Auto,
        },
        collector: args.collector,
        config,
        chaos: args.chaos,
    };
    eprintln!("starting the demo...");
    let demo = launch::launch(options).await?;
    let mut out = banner::running(&demo);
    if !args.no_traffic {
        out += &banner::traffic(&demo, &traffic::burst(&demo.handle.gateway).await);
    }
    out += &banner::next_steps(&demo);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);

    super::stop_signal().await;
    eprintln!("stopping the demo...");
    demo.stop().await;
    Ok(())
}

/// `--disable`'s values: the demo's patterns, listed in `--help` and checked by clap.
pub(crate) fn pattern_parser() -> impl clap::builder::TypedValueParser<Value = Pattern> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(Pattern::ALL.map(Pattern::name))
        .try_map(|s| s.parse::<Pattern>())
}
