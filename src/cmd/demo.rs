//! `gauntlet demo` and the hidden `gauntlet demo-service`: flags → the collector and the
//! demo system's supervisor, runner and traffic; glue only.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use gauntlet_chaos::NewProxy;
use gauntlet_collector::store::StoreConfig;
use gauntlet_collector::store::sqlite::SqliteConfig;
use gauntlet_collector::{Collector, Config};
use gauntlet_dashboards::links;
use gauntlet_demo_system::config::DemoConfig;
use gauntlet_demo_system::handle::{ChaosHandle, CollectorHandle, DemoHandle, ProxyRoute};
use gauntlet_demo_system::runner::{self, Instance};
use gauntlet_demo_system::supervisor::{self, Plan, Supervisor};
use gauntlet_demo_system::topology::{EDGES, InstanceId, Service};
use gauntlet_demo_system::traffic::{self, Intent};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Ports {
    /// The documented ports: gateway 8080, registry 8500, supervisor 8700, collector 4317/4318/16686.
    Fixed,
    /// Free ports picked at start (see DIR/demo.json for where everything is).
    Auto,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  gauntlet demo                          # everything on its documented port, then a burst of traffic
  gauntlet demo --ports auto --no-traffic --data-dir /tmp/demo
  gauntlet demo --disable circuit-breaker --disable retries   # see what they were worth
  gauntlet demo --ports auto --no-traffic --provider-states   # for `gauntlet contracts verify`

DIR/demo.json says where everything listens; tests, load and chaos tools read it.
Ctrl-C (or SIGTERM) stops every process the demo started.")]
pub struct DemoArgs {
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
    #[arg(long, value_name = "PATTERN", value_parser = clap::builder::PossibleValuesParser::new(gauntlet_demo_system::config::PATTERNS))]
    disable: Vec<String>,
    /// Serve Pact's provider-state routes on every provider, so `gauntlet contracts verify`
    /// can set each one up (they write to the databases on request: never in production).
    #[arg(long)]
    provider_states: bool,
}

/// Flags of one demo instance; the supervisor sets them.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// One of: registry, payments, inventory, orders, notifications, order-history, gateway.
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
    let auto = matches!(args.ports, Ports::Auto);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create --data-dir {}", args.data_dir.display()))?;
    let data_dir = args.data_dir.canonicalize()?;
    let mut config = match &args.config {
        Some(f) => DemoConfig::load(f)?,
        None => DemoConfig::default(),
    };
    config.contracts.provider_states |= args.provider_states;
    for pattern in &args.disable {
        config.disable(pattern)?;
    }
    let config_file = data_dir.join("effective-config.json");
    std::fs::write(&config_file, serde_json::to_vec_pretty(&config)?)?;

    let exe = std::env::current_exe()
        .context("cannot find the gauntlet binary to start services with")?;
    let mut plan = Plan::local(exe, data_dir.clone(), auto)?;
    let collector_config = args.collector.is_none().then(|| {
        let mut config = if auto {
            Config::ephemeral(data_dir.join("collector"))
        } else {
            Config {
                store: StoreConfig::Sqlite(SqliteConfig::new(data_dir.join("collector"))),
                ..Config::with_defaults()
            }
        };
        config.zipkin = None;
        config
    });
    if !auto {
        // Before anything starts: a port held by an earlier demo would otherwise surface
        // as one service "not becoming ready".
        let mut wanted = plan.addresses();
        wanted.push((
            "supervisor API".into(),
            SocketAddr::from(([127, 0, 0, 1], supervisor::SUPERVISOR_PORT)),
        ));
        if args.chaos {
            wanted.push((
                "chaos proxy API".into(),
                SocketAddr::from(([127, 0, 0, 1], CHAOS_API_PORT)),
            ));
        }
        if let Some(c) = &collector_config {
            wanted.push(("collector OTLP/gRPC".into(), c.otlp_grpc));
            wanted.push(("collector OTLP/HTTP".into(), c.otlp_http));
            wanted.push(("collector query API".into(), c.http));
        }
        supervisor::check_ports_free(&wanted)?;
    }

    let (collector, collector_api, otlp_http) = match collector_config {
        // --collector: the services export there; nothing of ours to start.
        None => (
            None,
            None,
            args.collector
                .as_deref()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_string(),
        ),
        Some(config) => {
            let c = Collector::start(config).await?;
            let api = format!("http://{}", c.addrs.http);
            let otlp = format!("http://{}", c.addrs.otlp_http);
            (Some(c), Some(api), otlp)
        }
    };

    plan.otlp_endpoint = Some(otlp_http.clone());
    plan.config_file = Some(config_file);
    let chaos = if args.chaos {
        let (handle, routes, task) = start_chaos(&plan, auto).await?;
        let routes_file = data_dir.join("chaos-routes.json");
        std::fs::write(&routes_file, serde_json::to_vec_pretty(&routes)?)?;
        plan.routes_file = Some(routes_file);
        Some((handle, task))
    } else {
        None
    };
    eprintln!("starting {} demo instances...", plan.instances.len());
    let sup = match Supervisor::start(plan).await {
        Ok(s) => s,
        Err(e) => {
            if let Some(c) = collector {
                c.shutdown().await;
            }
            return Err(e.into());
        }
    };
    let sup_port = if auto {
        supervisor::free_port()?
    } else {
        supervisor::SUPERVISOR_PORT
    };
    let sup_listener = tokio::net::TcpListener::bind(("127.0.0.1", sup_port))
        .await
        .with_context(|| format!("cannot listen for the supervisor API on 127.0.0.1:{sup_port}"))?;
    let sup_url = format!("http://{}", sup_listener.local_addr()?);
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn({
        let app = supervisor::app(sup.clone());
        async move {
            let _ = axum::serve(sup_listener, app)
                .with_graceful_shutdown(async move {
                    let _ = api_stopped.await;
                })
                .await;
        }
    });

    let plan = sup.plan().clone();
    let gateway = plan
        .urls_of(Service::Gateway)
        .into_iter()
        .next()
        .unwrap_or_default();
    let services: BTreeMap<String, Vec<String>> = Service::ALL
        .into_iter()
        .map(|s| (s.name().to_string(), plan.urls_of(s)))
        .collect();
    let handle = DemoHandle {
        gateway: gateway.clone(),
        collector: CollectorHandle {
            api: collector_api.clone(),
            otlp_http: otlp_http.clone(),
            otlp_grpc: collector.as_ref().map(|c| c.addrs.otlp_grpc.to_string()),
        },
        supervisor: sup_url.clone(),
        services,
        chaos: chaos.as_ref().map(|(h, _)| h.clone()),
    };
    let demo_json = data_dir.join("demo.json");
    handle.write(&demo_json)?;

    let looking = match &collector_api {
        Some(api) => format!(
            "{}   (the UI; map: {})",
            links::search(api),
            links::map(api)
        ),
        None => format!("the collector at {otlp_http}"),
    };
    let mut out = format!(
        "gauntlet demo is running\n  gateway      {gateway}/api/products\n  supervisor   {sup_url}/instances\n  telemetry    {looking}\n  handle       {}\n",
        demo_json.display()
    );
    if let Some((c, _)) = &chaos {
        out += &format!(
            "  chaos        {}/proxies ({} proxies, Toxiproxy's API)\n",
            c.api,
            c.proxies.len()
        );
    }
    if !args.no_traffic {
        match traffic::burst(&gateway).await {
            Ok(r) => {
                out += &format!(
                    "traffic: {} product views, orders {}\n",
                    r.product_views,
                    r.summary()
                );
                if let (Some(api), Some(cid)) = (&collector_api, r.correlation_of(Intent::Declined))
                {
                    out += &format!(
                        "  one request across services (a declined payment, compensated): {}\n",
                        links::correlation(api, cid)
                    );
                }
            }
            Err(e) => out += &format!("traffic failed: {e}\n"),
        }
    }
    // The scenario reads the gateway from <data-dir>/demo.json; from elsewhere, say where.
    out += &format!(
        "load it:  gauntlet load run loadgen/scenarios/demo.toml --var gateway={gateway}\n"
    );
    out += "Press Ctrl-C to stop everything.\n";
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush());
    drop(stdout);

    super::stop_signal().await;
    eprintln!("stopping the demo...");
    sup.shutdown().await;
    let _ = stop_api.send(());
    let _ = api.await;
    if let Some(c) = collector {
        c.shutdown().await;
    }
    if let Some((_, (stop_chaos, task))) = chaos {
        let _ = stop_chaos.send(());
        let _ = task.await;
    }
    let _ = std::fs::remove_file(&demo_json);
    Ok(())
}

/// The chaos proxy API's documented port (Toxiproxy's).
const CHAOS_API_PORT: u16 = 8474;

/// Chaos routes per consumer service: instance URL → proxy URL.
type ChaosRoutes = BTreeMap<String, BTreeMap<String, String>>;

/// Stops the in-process chaos API, and its task.
type ChaosTask = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), gauntlet_chaos::ChaosError>>,
);

/// Starts the chaos proxy API with one TCP proxy per edge and provider instance of the
/// topology, and says which proxy each consumer must use for each instance.
async fn start_chaos(
    plan: &Plan,
    auto: bool,
) -> anyhow::Result<(ChaosHandle, ChaosRoutes, ChaosTask)> {
    let mut proxies = BTreeMap::new();
    let mut initial = Vec::new();
    let mut routes: ChaosRoutes = BTreeMap::new();
    for edge in EDGES {
        let instances = plan.urls_of(edge.provider);
        for (i, url) in instances.iter().enumerate() {
            let name = if instances.len() > 1 {
                format!("{}_{}", edge.name(), i + 1)
            } else {
                edge.name()
            };
            let upstream = url.trim_start_matches("http://").to_string();
            let listen = format!("127.0.0.1:{}", supervisor::free_port()?);
            initial.push(NewProxy::tcp(&name, &listen, &upstream));
            routes
                .entry(edge.consumer.name().to_string())
                .or_default()
                .insert(url.clone(), format!("http://{listen}"));
            proxies.insert(name, ProxyRoute { listen, upstream });
        }
    }
    let port = if auto {
        supervisor::free_port()?
    } else {
        CHAOS_API_PORT
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen for the chaos proxy API on 127.0.0.1:{port}"))?;
    let api = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Every proxy listens before the services that go through them start.
    let server = gauntlet_chaos::bind(listener, initial).await?;
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Ok((ChaosHandle { api, proxies }, routes, (stop, task)))
}
