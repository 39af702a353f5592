//! `gauntlet demo` and the hidden `gauntlet demo-service`: flags → the collector and the
//! demo system's supervisor, runner and traffic; glue only.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use gauntlet_collector::{Collector, Config};
use gauntlet_demo_system::config::DemoConfig;
use gauntlet_demo_system::runner::{self, Instance};
use gauntlet_demo_system::supervisor::{self, Plan, Supervisor};
use gauntlet_demo_system::traffic;

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
    /// Switch a pattern off, to show what it is worth (repeatable).
    #[arg(long, value_name = "PATTERN", value_parser = clap::builder::PossibleValuesParser::new(gauntlet_demo_system::config::PATTERNS))]
    disable: Vec<String>,
}

/// Flags of one demo instance; the supervisor sets them.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// One of: registry, gateway, orders, inventory, payments, notifications, order-history.
    name: String,
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    #[arg(long, value_name = "URL")]
    registry: String,
    #[arg(long, value_name = "URL")]
    inventory_url: String,
    #[arg(long, value_name = "URL")]
    payments_url: String,
    #[arg(long, value_name = "URL")]
    orders_url: String,
    /// Send traces and logs to this OTLP/HTTP endpoint.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// The effective settings (JSON, written by `gauntlet demo`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub async fn run_service(args: ServiceArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(f) => DemoConfig::load(f)?,
        None => DemoConfig::default(),
    };
    let instance = Instance {
        config,
        service: args.name,
        listen: args.listen,
        data_dir: args.data_dir,
        registry_url: args.registry,
        inventory_url: args.inventory_url,
        payments_url: args.payments_url,
        orders_url: args.orders_url,
        otlp_endpoint: args.otlp_endpoint,
    };
    runner::run(instance, super::stop_signal()).await?;
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
    for pattern in &args.disable {
        config.disable(pattern)?;
    }
    let config_file = data_dir.join("effective-config.json");
    std::fs::write(&config_file, serde_json::to_vec_pretty(&config)?)?;

    let (collector, collector_api, otlp_http) = match &args.collector {
        Some(url) => (None, None, url.trim_end_matches('/').to_string()),
        None => {
            let mut config = if auto {
                Config::ephemeral(data_dir.join("collector"))
            } else {
                Config {
                    data_dir: data_dir.join("collector"),
                    ..Config::with_defaults()
                }
            };
            config.zipkin = None;
            let c = Collector::start(config).await?;
            let api = format!("http://{}", c.addrs.http);
            let otlp = format!("http://{}", c.addrs.otlp_http);
            (Some(c), Some(api), otlp)
        }
    };

    let exe = std::env::current_exe()
        .context("cannot find the gauntlet binary to start services with")?;
    let mut plan = Plan::local(exe, data_dir.clone(), auto)?;
    plan.otlp_endpoint = Some(otlp_http.clone());
    plan.config_file = Some(config_file);
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
    let gateway = plan.url_of("gateway").unwrap_or_default();
    let mut services = serde_json::Map::new();
    for i in &plan.instances {
        let list = services
            .entry(i.service.clone())
            .or_insert_with(|| serde_json::json!([]));
        if let Some(a) = list.as_array_mut() {
            a.push(i.url().into());
        }
    }
    let collector_json = match &collector {
        Some(c) => serde_json::json!({
            "api": collector_api,
            "otlp_http": otlp_http,
            "otlp_grpc": c.addrs.otlp_grpc.to_string(),
        }),
        None => serde_json::json!({"otlp_http": otlp_http}),
    };
    let handle = serde_json::json!({
        "gateway": gateway,
        "collector": collector_json,
        "supervisor": sup_url,
        "services": services,
    });
    let demo_json = data_dir.join("demo.json");
    std::fs::write(&demo_json, serde_json::to_vec_pretty(&handle)?)?;

    let looking = match &collector_api {
        Some(api) => format!("{api}/api/services"),
        None => format!("the collector at {otlp_http}"),
    };
    let mut out = format!(
        "gauntlet demo is running\n  gateway      {gateway}/api/products\n  supervisor   {sup_url}/instances\n  telemetry    {looking}\n  handle       {}\n",
        demo_json.display()
    );
    if !args.no_traffic {
        match traffic::burst(&gateway).await {
            Ok(r) => {
                out += &format!(
                    "traffic: {} product views, orders {:?}\n",
                    r.product_views, r.orders
                );
                if let (Some(api), Some(cid)) = (&collector_api, r.correlation_ids.get(3)) {
                    out += &format!(
                        "  one request across services (a declined payment, compensated): {api}/api/v1/correlations/{cid}\n"
                    );
                }
            }
            Err(e) => out += &format!("traffic failed: {e}\n"),
        }
    }
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
    let _ = std::fs::remove_file(&demo_json);
    Ok(())
}
