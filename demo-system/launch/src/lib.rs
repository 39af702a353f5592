//! The whole demo as one library call: [`launch`] starts RabbitMQ when events travel through
//! it and no URL names one, the collector (or points the services at another one), the
//! chaos proxies under `chaos`, every service instance under the supervisor, the supervisor's API, and writes `demo.json`; the [`RunningDemo`] it returns
//! says where everything is and [`RunningDemo::stop`] stops all of it. `gauntlet demo` is
//! this plus flags, a banner and a burst of traffic; tests start demos through it too.
//!
//! # Layout
//! - this file: [`LaunchOptions`], [`launch`], [`RunningDemo`], [`LaunchError`].
//! - [`chaos`]: one fault proxy per edge and provider instance, and the routes through them.
//! - [`banner`]: what `gauntlet demo` prints once everything is up.
//!
//! The one design decision to know: this crate may depend on the collector and the chaos
//! proxy; `gauntlet-demo-system` may not (the demo's services know nothing of the tools
//! that watch them), so everything that joins them lives here.

pub mod banner;
pub mod chaos;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use gauntlet_collector::store::StoreConfig;
use gauntlet_collector::store::sqlite::SqliteConfig;
use gauntlet_collector::{Collector, CollectorError, Config};
use gauntlet_demo_system::broker_server::{BrokerPorts, BrokerServer, BrokerServerError};
use gauntlet_demo_system::config::{ConfigFileError, DemoConfig, EventTransport, Pattern};
use gauntlet_demo_system::handle::{CollectorHandle, DemoHandle, HandleError};
use gauntlet_demo_system::supervisor::{self, Plan, PortsInUse, Supervisor, SupervisorError};
use gauntlet_demo_system::topology::Service;

/// Which ports the demo listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// The documented ports: gateway 8080, registry 8500, supervisor 8700, collector
    /// 4317/4318/16686, chaos API 8474.
    Fixed,
    /// Free ports picked at start (`demo.json` says where everything is).
    Auto,
}

/// Everything a demo is started with.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The `gauntlet` binary: each instance runs as `EXE demo-service NAME`.
    pub exe: PathBuf,
    /// Where the demo keeps its databases, logs and `demo.json` (created if missing).
    pub data_dir: PathBuf,
    pub ports: Ports,
    /// Send the services' telemetry to this OTLP/HTTP endpoint instead of starting a
    /// collector.
    pub collector: Option<String>,
    /// The services' settings, with the patterns switched off already applied.
    pub config: DemoConfig,
    /// Route every service-to-service hop through a fault proxy.
    pub chaos: bool,
}

impl LaunchOptions {
    /// A demo on free ports with the default settings, its own collector and no proxies.
    pub fn new(exe: PathBuf, data_dir: PathBuf) -> Self {
        Self {
            exe,
            data_dir,
            ports: Ports::Auto,
            collector: None,
            config: DemoConfig::default(),
            chaos: false,
        }
    }

    /// Settings from `file` (or the defaults), then `disable`d patterns and provider states.
    pub fn settings(
        file: Option<&Path>,
        disable: &[Pattern],
        provider_states: bool,
    ) -> Result<DemoConfig, ConfigFileError> {
        let mut config = match file {
            Some(f) => DemoConfig::load(f)?,
            None => DemoConfig::default(),
        };
        config.contracts.provider_states |= provider_states;
        for pattern in disable {
            config.disable(*pattern);
        }
        Ok(config)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigFileError),
    #[error(transparent)]
    PortsInUse(#[from] PortsInUse),
    #[error("the collector did not start: {0}")]
    Collector(#[from] CollectorError),
    #[error("the chaos proxies did not start: {0}")]
    Chaos(#[from] gauntlet_chaos_proxy::ChaosError),
    #[error("RabbitMQ did not start: {0}")]
    Broker(#[from] BrokerServerError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error(transparent)]
    Handle(#[from] HandleError),
    #[error("cannot listen for the {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LaunchError + 'a {
    move |source| LaunchError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// The supervisor API's documented port.
pub const SUPERVISOR_PORT: u16 = supervisor::SUPERVISOR_PORT;

/// A demo that is up: every instance answered its readiness check.
#[derive(Debug)]
pub struct RunningDemo {
    /// Where everything listens; also written to [`RunningDemo::handle_path`].
    pub handle: DemoHandle,
    pub handle_path: PathBuf,
    pub data_dir: PathBuf,
    /// The binary the services run as (the one to print in commands).
    pub exe: PathBuf,
    /// The services answer the provider-state routes (`--provider-states`).
    pub provider_states: bool,
    supervisor: Supervisor,
    collector: Option<Collector>,
    api: Background,
    chaos: Option<Background>,
    /// The RabbitMQ this demo started (`--broker rabbitmq` without a URL).
    pub broker: Option<BrokerServer>,
}

/// A server task of ours and the way to stop it.
#[derive(Debug)]
struct Background {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "a demo server task ended badly");
        }
    }
}

/// Starts the demo. On any failure, what had started is stopped again before the error
/// returns.
pub async fn launch(mut opts: LaunchOptions) -> Result<RunningDemo, LaunchError> {
    tokio::fs::create_dir_all(&opts.data_dir)
        .await
        .map_err(io("create --data-dir", &opts.data_dir))?;
    let data_dir = tokio::fs::canonicalize(&opts.data_dir)
        .await
        .map_err(io("resolve --data-dir", &opts.data_dir))?;
    let broker = start_broker(&mut opts, &data_dir).await?;
    let launched = launch_with(opts, data_dir).await;
    match (launched, broker) {
        (Ok(mut running), broker) => {
            running.broker = broker;
            Ok(running)
        }
        (Err(e), Some(b)) => {
            b.stop().await;
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

/// Debian's RabbitMQ, when events travel through RabbitMQ and no URL names a broker; the
/// services are told its URL.
async fn start_broker(
    opts: &mut LaunchOptions,
    data_dir: &Path,
) -> Result<Option<BrokerServer>, LaunchError> {
    let events = &mut opts.config.events;
    if events.transport != EventTransport::Rabbitmq || events.url.is_some() {
        return Ok(None);
    }
    let fixed = (opts.ports == Ports::Fixed).then_some(BROKER_PORT);
    let ports = BrokerPorts::pick(fixed).map_err(io("pick ports for RabbitMQ in", data_dir))?;
    if fixed.is_some() {
        let addr = SocketAddr::from(([127, 0, 0, 1], BROKER_PORT));
        supervisor::check_ports_free(&[("RabbitMQ (AMQP)".into(), addr)])?;
    }
    let server = BrokerServer::start(&opts.exe, data_dir.join("rabbitmq"), ports).await?;
    tracing::info!(
        secs = server.started_in.as_secs_f64(),
        url = %server.url(),
        "RabbitMQ is up"
    );
    events.url = Some(server.url());
    Ok(Some(server))
}

/// RabbitMQ's documented AMQP port, the demo's broker's under fixed ports.
pub const BROKER_PORT: u16 = 5672;

/// The rest of [`launch`], once the broker (if any) is up.
async fn launch_with(opts: LaunchOptions, data_dir: PathBuf) -> Result<RunningDemo, LaunchError> {
    let auto = opts.ports == Ports::Auto;
    let config_file = data_dir.join("effective-config.json");
    let config_json = serde_json::to_vec_pretty(&opts.config).unwrap_or_default();
    tokio::fs::write(&config_file, config_json)
        .await
        .map_err(io("write", &config_file))?;

    let mut plan = Plan::local(opts.exe.clone(), data_dir.clone(), auto)
        .map_err(io("pick ports for", &data_dir))?;
    let collector_config = opts
        .collector
        .is_none()
        .then(|| collector_config(&data_dir, auto));
    if !auto {
        check_fixed_ports(&plan, collector_config.as_ref(), opts.chaos)?;
    }
    let collector = match collector_config {
        Some(config) => Some(Collector::start(config).await?),
        None => None,
    };
    let otlp_http = match (&collector, &opts.collector) {
        (Some(c), _) => format!("http://{}", c.addrs.otlp_http),
        (None, url) => url
            .as_deref()
            .unwrap_or_default()
            .trim_end_matches('/')
            .into(),
    };
    plan.otlp_endpoint = Some(otlp_http.clone());
    plan.config_file = Some(config_file);
    plan.healing = opts.config.supervisor;
    let broker_addr = (opts.config.events.transport == EventTransport::Rabbitmq)
        .then(|| {
            opts.config
                .events
                .url
                .as_deref()
                .and_then(chaos::broker_address)
        })
        .flatten();
    let started = start_parts(plan, opts.chaos, broker_addr, auto, &data_dir).await;
    let (supervisor, chaos, api, sup_url) = match started {
        Ok(parts) => parts,
        Err(e) => {
            if let Some(c) = collector {
                c.shutdown().await;
            }
            return Err(e);
        }
    };
    let handle = DemoHandle {
        gateway: supervisor
            .plan()
            .urls_of(Service::Gateway)
            .into_iter()
            .next()
            .unwrap_or_default(),
        collector: collector_handle(collector.as_ref(), otlp_http),
        supervisor: sup_url,
        services: Service::ALL
            .into_iter()
            .map(|s| (s.name().to_string(), supervisor.plan().urls_of(s)))
            .collect(),
        chaos: chaos.as_ref().map(|(h, _)| h.clone()),
        disabled: opts.config.disabled(),
        broker: (opts.config.events.transport == EventTransport::Rabbitmq)
            .then(|| opts.config.events.url.clone())
            .flatten(),
    };
    let running = RunningDemo {
        handle_path: data_dir.join("demo.json"),
        data_dir,
        exe: opts.exe.clone(),
        provider_states: opts.config.contracts.provider_states,
        handle,
        supervisor,
        collector,
        api,
        chaos: chaos.map(|(_, b)| b),
        broker: None,
    };
    if let Err(e) = running.handle.write(&running.handle_path) {
        running.stop().await;
        return Err(e.into());
    }
    Ok(running)
}

/// Where the services' telemetry goes, and the query API when the collector is ours.
fn collector_handle(collector: Option<&Collector>, otlp_http: String) -> CollectorHandle {
    CollectorHandle {
        api: collector.map(|c| format!("http://{}", c.addrs.http)),
        otlp_http,
        otlp_grpc: collector.map(|c| c.addrs.otlp_grpc.to_string()),
    }
}

/// The collector a demo runs: its store under the data directory, no Zipkin.
fn collector_config(data_dir: &Path, auto: bool) -> Config {
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
}

/// Before anything starts on the documented ports: a port held by an earlier demo would
/// otherwise surface as one service "not becoming ready".
fn check_fixed_ports(
    plan: &Plan,
    collector: Option<&Config>,
    chaos: bool,
) -> Result<(), PortsInUse> {
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let mut wanted = plan.addresses();
    wanted.push(("supervisor API".into(), local(SUPERVISOR_PORT)));
    if chaos {
        wanted.push(("chaos proxy API".into(), local(chaos::API_PORT)));
    }
    if let Some(c) = collector {
        wanted.push(("collector OTLP/gRPC".into(), c.otlp_grpc));
        wanted.push(("collector OTLP/HTTP".into(), c.otlp_http));
        wanted.push(("collector query API".into(), c.http));
    }
    supervisor::check_ports_free(&wanted)
}

type Parts = (
    Supervisor,
    Option<(gauntlet_demo_system::handle::ChaosHandle, Background)>,
    Background,
    String,
);

/// The proxies (before the services that go through them), the instances, the supervisor
/// API; on failure, stops what it started.
async fn start_parts(
    mut plan: Plan,
    with_chaos: bool,
    broker: Option<String>,
    auto: bool,
    data_dir: &Path,
) -> Result<Parts, LaunchError> {
    let chaos = if with_chaos {
        let (handle, routes, background) = chaos::start(&plan, broker.as_deref(), auto).await?;
        let routes_file = data_dir.join("chaos-routes.json");
        let written = tokio::fs::write(
            &routes_file,
            serde_json::to_vec_pretty(&routes).unwrap_or_default(),
        )
        .await;
        if let Err(e) = written {
            background.stop().await;
            return Err(io("write", &routes_file)(e));
        }
        plan.routes_file = Some(routes_file);
        Some((handle, background))
    } else {
        None
    };
    let stop_chaos = |chaos: Option<(_, Background)>| async move {
        if let Some((_, b)) = chaos {
            b.stop().await;
        }
    };
    let supervisor = match Supervisor::start(plan).await {
        Ok(s) => s,
        Err(e) => {
            stop_chaos(chaos).await;
            return Err(e.into());
        }
    };
    match serve_supervisor(&supervisor, auto).await {
        Ok((api, url)) => Ok((supervisor, chaos, api, url)),
        Err(e) => {
            supervisor.shutdown().await;
            stop_chaos(chaos).await;
            Err(e)
        }
    }
}

/// A listener on loopback at `port` (0: a free one), and its URL.
async fn bind_local(
    what: &'static str,
    port: u16,
) -> Result<(tokio::net::TcpListener, String), LaunchError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let bind_error = |source| LaunchError::Bind { what, addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    let url = format!("http://{}", listener.local_addr().map_err(bind_error)?);
    Ok((listener, url))
}

/// The supervisor's HTTP API, on its documented port or a free one.
async fn serve_supervisor(
    supervisor: &Supervisor,
    auto: bool,
) -> Result<(Background, String), LaunchError> {
    let (listener, url) =
        bind_local("supervisor API", if auto { 0 } else { SUPERVISOR_PORT }).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = supervisor::app(supervisor.clone());
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the supervisor API stopped");
        }
    });
    Ok((Background { stop, task }, url))
}

impl RunningDemo {
    /// The base URL of every instance of each service, by name.
    pub fn services(&self) -> &BTreeMap<String, Vec<String>> {
        &self.handle.services
    }

    /// The supervisor, for what its API offers (kill, restart, pause an instance).
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Stops every instance, the supervisor API, the collector (after it committed what it
    /// took), the proxies and the broker, and removes `demo.json`.
    pub async fn stop(self) {
        self.supervisor.shutdown().await;
        self.api.stop().await;
        if let Some(c) = self.collector {
            c.shutdown().await;
        }
        if let Some(chaos) = self.chaos {
            chaos.stop().await;
        }
        if let Some(b) = self.broker {
            b.stop().await;
        }
        if let Err(e) = tokio::fs::remove_file(&self.handle_path).await {
            tracing::warn!(error = %e, path = %self.handle_path.display(), "cannot remove the demo handle");
        }
    }
}

#[cfg(test)]
mod tests {
    use gauntlet_demo_system::topology::InstanceId;

    /// With `Ports::Fixed` every documented port is listened on at once: none may be two
    /// things' (a service once took the supervisor's 8700).
    #[test]
    fn the_documented_ports_are_all_different() {
        let collector = gauntlet_collector::Config::with_defaults();
        let mut ports: Vec<(u16, String)> = InstanceId::all()
            .map(|i| (i.fixed_port(), i.to_string()))
            .collect();
        ports.push((super::supervisor::SUPERVISOR_PORT, "supervisor".into()));
        ports.push((super::chaos::API_PORT, "chaos API".into()));
        for (addr, what) in [
            (collector.otlp_grpc, "OTLP gRPC"),
            (collector.otlp_http, "OTLP HTTP"),
            (collector.http, "query API"),
        ] {
            ports.push((addr.port(), what.into()));
        }
        ports.sort();
        for pair in ports.windows(2) {
            assert_ne!(pair[0].0, pair[1].0, "{} and {}", pair[0].1, pair[1].1);
        }
    }
}
