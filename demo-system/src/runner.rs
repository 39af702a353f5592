//! Runs one demo instance in this process: opens its own database under the data
//! directory, serves on its port, announces itself to the registry (the registry excepted),
//! finds its upstreams through the registry, and runs its background work (saga
//! resumption for orders, the feed consumers of notifications and order-history).
//! When `shutdown` resolves every task is stopped and joined, deregistration included.
//! `gauntlet demo-service NAME ...` calls [`run`]; the supervisor starts one per instance.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::config::{DemoConfig, EventTransport, LeadershipConfig};
use crate::gateway::{self, Gateway};
use crate::inventory::{self, CatalogClient, Inventory, InventoryClient};
use crate::legacy::{self, Legacy};
use crate::mobile_bff::{self, MobileBff};
use crate::notifications::server::INVENTORY_FEED;
use crate::notifications::{self, Notifications};
use crate::order_history::{self, OrderHistory, OrderHistoryClient};
use crate::orders::{self, Orders, OrdersClient};
use crate::payments::{self, Payments, PaymentsClient};
use crate::platform::broker::{self, Broker};
use crate::platform::client::{HttpClient, service_http};
use crate::platform::db::DbError;
use crate::platform::discovery::{Discovery, Endpoint, Routes};
use crate::platform::leadership::{self, Campaign, Leadership};
use crate::platform::live_config::{self, LIVE_SERVICES, Tuned};
use crate::platform::outbox::{FeedConsumer, Outbox, QueueConsumer, feed_client};
use crate::platform::resilience::{ConfigError, ResilienceConfig, Upstream};
use crate::platform::{dead_letters, provider_states};
use crate::registry::{self, KvStore, Registration, Registry, RegistryClient};
use crate::sidecar::{self, Sidecar};
use crate::topology::{InstanceId, Service};
use crate::web_bff::{self, WebBff};

/// Where one instance runs and what it talks to.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: InstanceId,
    pub listen: SocketAddr,
    /// The instance's database lives here (`<service>.sqlite`; inventory instances share one).
    pub data_dir: PathBuf,
    /// The registry, through which it announces itself and finds its upstreams.
    pub registry_url: String,
    /// The effective demo settings.
    pub config: DemoConfig,
    /// OTLP/HTTP endpoint of the collector (e.g. `http://127.0.0.1:4318`); `None` keeps
    /// telemetry local (stderr only).
    pub otlp_endpoint: Option<String>,
    /// Under `--chaos`: the proxy through which each upstream instance is reached.
    pub routes: Routes,
    /// For a sidecar: the base URL of the app it stands beside.
    pub app: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    OrderHistory(#[from] crate::order_history::server::OpenError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("server failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    Telemetry(#[from] crate::platform::telemetry::TelemetryError),
    #[error("{0} is a sidecar: start it with --app URL, the app it stands beside")]
    NoApp(Service),
    #[error(
        "[events] transport = \"rabbitmq\" needs [events] url (amqp://user:password@host:port/vhost), or start the demo with --broker rabbitmq"
    )]
    NoBrokerUrl,
}

/// Runs `instance` until `shutdown` resolves.
pub async fn run(
    instance: Instance,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let service = instance.id.service;
    let telemetry = crate::platform::telemetry::Telemetry::init(
        service.reports_as().name(),
        service.version(),
        &instance.id.to_string(),
        instance
            .otlp_endpoint
            .as_deref()
            .filter(|_| service.instrumented()),
    )?;
    let result = serve_instance(instance, shutdown).await;
    // Flush what the exporters still hold: the last requests' spans and logs.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result
}

/// Resolves when the process that started this one is gone: its end of our standard input
/// closes, whether it exited cleanly or was SIGKILLed. For children started with a pipe
/// on stdin (the supervisor does); a plain thread, so a read that never ends cannot hold
/// up the runtime's shutdown.
pub fn parent_gone() -> impl Future<Output = ()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
    async move {
        match spawned {
            Ok(_) => {
                let _ = rx.await;
            }
            // Without a watcher, never report the parent gone.
            Err(_) => std::future::pending().await,
        }
    }
}

async fn serve_instance(
    instance: Instance,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    std::fs::create_dir_all(&instance.data_dir)?;
    // The supervisor may hold the port until this instance listens on it.
    let listener = crate::ports::listen(instance.listen).map_err(|source| RunError::Bind {
        addr: instance.listen,
        source,
    })?;
    let base = format!("http://{}", listener.local_addr()?);
    let service = instance.id.service;
    let config = &instance.config;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let registry = RegistryClient::new(&instance.registry_url);
    let discovery = Discovery::routed(registry.clone(), config.discovery, instance.routes.clone());
    let mut tasks: JoinSet<std::io::Result<()>> = JoinSet::new();
    spawn_service(&instance, listener, &discovery, &mut tasks, &until_stopped)?;
    if let Some(name) = service.registers_as() {
        let mut reg = registration(name, service.version(), &base);
        reg.shard = instance.id.shard(config.discovery.sharding);
        background(
            &mut tasks,
            registry::announce(registry, reg, until_stopped()),
        );
    }
    tracing::info!(instance = %instance.id, address = %base, "demo service running");
    shutdown.await;
    tracing::info!(instance = %instance.id, "stopping");
    let _ = stop.send(true);
    join_all(tasks).await
}

/// Opens the instance's service (its database, its clients through discovery) and spawns
/// its server and background work into `tasks`.
fn spawn_service<S, F>(
    instance: &Instance,
    listener: tokio::net::TcpListener,
    discovery: &Discovery,
    tasks: &mut JoinSet<std::io::Result<()>>,
    until_stopped: &S,
) -> Result<(), RunError>
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let service = instance.id.service;
    let config = &instance.config;
    let db = || database_path(&instance.data_dir, instance.id);
    let http = service_http();
    // The live settings of every upstream client built here, for the registry's keys.
    let tuned = std::cell::RefCell::new(Tuned::new());
    let client_at = |provider: Service,
                     endpoint: Endpoint,
                     r: &ResilienceConfig|
     -> Result<HttpClient, ConfigError> {
        let upstream = Upstream::new(provider.name(), endpoint, http.clone(), r)?;
        tuned.borrow_mut().push((provider, upstream.knobs()));
        Ok(HttpClient::new(upstream))
    };
    let client = |provider: Service, r: &ResilienceConfig| {
        client_at(provider, discovery.endpoint(provider), r)
    };
    let orders_feed = || feed_client("orders", discovery.endpoint(Service::Orders));
    let with_states = |app, states_router| with_provider_states(config, app, states_router);
    match service {
        Service::Registry => {
            let kv = KvStore::open(&db())?;
            let r = Registry::new(config.registry)
                .with_kv(kv)
                .routed(instance.routes.clone())
                .weighted(config.canary.registry_weights());
            tasks.spawn(registry::run(r, listener, until_stopped()));
        }
        Service::Gateway => {
            let g = Gateway::new(discovery.clone(), config.gateway.clone())?;
            tasks.spawn(gateway::run(g, listener, until_stopped()));
        }
        Service::Inventory => {
            let inv = Inventory::open(&db())?;
            relaying(inv.outbox(), INVENTORY_FEED, instance, tasks, until_stopped)?;
            let states_router = provider_states::router(inv.clone())
                .merge(inventory::provider_states::messages_router(inv.clone()));
            let app = with_states(inventory::app(inv), states_router);
            tasks.spawn(serve(listener, app, until_stopped()));
        }
        Service::InventoryShadow => {
            // A candidate version reading inventory's own data, serving reads only.
            let inv = Inventory::open(&db())?
                .with_price_offset(config.shadow.candidate_price_offset_cents);
            tasks.spawn(serve(listener, inventory::shadow_app(inv), until_stopped()));
        }
        Service::InventoryV2 => {
            // Inventory's next version: the same code and database, made slower or failing
            // by `[canary.candidate]` when an experiment needs a bad release.
            let inv = Inventory::open(&db())?;
            relaying(inv.outbox(), INVENTORY_FEED, instance, tasks, until_stopped)?;
            let app = inventory::candidate_app(inv, config.canary.candidate);
            tasks.spawn(serve(listener, app, until_stopped()));
        }
        Service::Payments => {
            let pay = Payments::open(&db(), config.payments.clone())?;
            relaying(pay.outbox(), "payments", instance, tasks, until_stopped)?;
            let app = with_states(payments::app(pay.clone()), provider_states::router(pay));
            tasks.spawn(serve(listener, app, until_stopped()));
        }
        Service::Orders => {
            let o = Orders::open(
                &db(),
                InventoryClient::new(client(Service::Inventory, &config.orders)?),
                PaymentsClient::new(client(Service::Payments, &config.orders)?),
            )?;
            let o = if config.saga_compensation {
                o
            } else {
                o.without_compensation()
            };
            relaying(o.outbox(), "orders", instance, tasks, until_stopped)?;
            let o = o.led_by(
                leadership(instance, discovery, tasks, &until_stopped),
                &instance.id.to_string(),
            );
            let lead = config.leadership;
            tasks.spawn(resume_sagas(o.clone(), lead, until_stopped()));
            background(tasks, settle_periods(o.clone(), lead, until_stopped()));
            let states_router = provider_states::router(o.clone())
                .merge(orders::provider_states::messages_router(o.clone()));
            let app = with_states(orders::app(o), states_router);
            tasks.spawn(serve(listener, app, until_stopped()));
        }
        Service::Notifications => {
            let n = Notifications::open(&db())?;
            let options = config.consume_options();
            let inventory_feed = feed_client("inventory", discovery.endpoint(Service::Inventory))?;
            if let Some(broker) = broker_of(instance)? {
                for (feed, client) in [
                    (Notifications::FEED, orders_feed()?),
                    (INVENTORY_FEED, inventory_feed),
                ] {
                    let queue = format!("notifications.{feed}");
                    let reading = n.consume_queue(
                        feed,
                        client,
                        queue,
                        broker.clone(),
                        options,
                        until_stopped(),
                    );
                    background(tasks, reading);
                }
            } else {
                background(
                    tasks,
                    n.clone().consume(orders_feed()?, options, until_stopped()),
                );
                background(
                    tasks,
                    n.consume_inventory(inventory_feed, options, until_stopped()),
                );
            }
            let parked = dead_letters::router(n.db().clone(), Notifications::apply);
            let app = with_states(notifications::app(n.clone()), provider_states::router(n));
            let app = app.merge(parked);
            tasks.spawn(serve(listener, app, until_stopped()));
        }
        Service::Legacy => {
            let l = Legacy::open(&db())?;
            let app = with_states(legacy::app(l.clone()), provider_states::router(l.clone()));
            let serving = serve(listener, app, until_stopped());
            tasks.spawn(async move {
                l.seed().await.map_err(std::io::Error::other)?;
                serving.await
            });
        }
        Service::LegacySidecar => {
            let app = instance.app.as_deref().ok_or(RunError::NoApp(service))?;
            let app_service = service.sidecar_of().unwrap_or(Service::Legacy);
            let sc = Sidecar::new(app, app_service.ready_path());
            let routes = sidecar::app(sc, &legacy::ROUTES);
            tasks.spawn(serve(listener, routes, until_stopped()));
        }
        Service::WebBff => {
            // The BFFs are the gateway's extension for one kind of client: they call with
            // its resilience settings.
            let r = &config.gateway.resilience;
            let upstreams = web_bff::Upstreams {
                inventory: InventoryClient::new(client(Service::Inventory, r)?),
                history: OrderHistoryClient::discovered(discovery, |endpoint| {
                    client_at(Service::OrderHistory, endpoint, r)
                })?,
                payments: PaymentsClient::new(client(Service::Payments, r)?),
            };
            let bff = WebBff::new(upstreams, &config.web_bff);
            let app = web_bff::app(bff, discovery.registry().clone());
            let app = with_states(app, provider_states::router(provider_states::Stateless));
            tasks.spawn(serve(listener, app, until_stopped()));
        }
        Service::MobileBff => {
            let r = &config.gateway.resilience;
            let bff = MobileBff {
                inventory: CatalogClient::new(client(Service::Inventory, r)?),
                orders: OrdersClient::new(client(Service::Orders, r)?),
            };
            let app = mobile_bff::app(bff, discovery.registry().clone());
            let app = with_states(app, provider_states::router(provider_states::Stateless));
            tasks.spawn(serve(listener, app, until_stopped()));
        }
        Service::OrderHistory => {
            let h = OrderHistory::open(&db())?;
            let h = match instance.id.shard(config.discovery.sharding) {
                Some(shard) => h.holding(shard),
                None => h,
            };
            let options = h.consume_options(config.consume_options(), config.event_replay);
            match broker_of(instance)? {
                // Each shard keeps its own queue: every shard reads every order event.
                Some(broker) => {
                    let queue = format!("{}.orders", instance.id);
                    let feed = OrderHistory::FEED;
                    let reading = h.consume_queue(
                        feed,
                        orders_feed()?,
                        queue,
                        broker,
                        options,
                        until_stopped(),
                    );
                    background(tasks, reading);
                }
                None => background(tasks, h.consume(orders_feed()?, options, until_stopped())),
            }
            let parked = dead_letters::router(h.db().clone(), h.durable_handler());
            let app = with_states(order_history::app(h.clone()), provider_states::router(h));
            let app = app.merge(parked);
            tasks.spawn(serve(listener, app, until_stopped()));
        }
    }
    if LIVE_SERVICES.contains(&service) {
        let registry = discovery.registry().clone();
        let tuned = tuned.into_inner();
        background(
            tasks,
            live_config::follow(registry, service, tuned, until_stopped()),
        );
    }
    Ok(())
}

/// Pact's state-change routes, on providers only, only when asked for.
fn with_provider_states(
    config: &DemoConfig,
    app: axum::Router,
    states_router: axum::Router,
) -> axum::Router {
    if config.contracts.provider_states {
        app.merge(states_router)
    } else {
        app
    }
}

/// Finishes what a previous run left, then keeps resuming sagas that wait on a dependency,
/// every 2 s on tokio's clock, until `stopped`.
/// Orders' leadership: a campaign through the registry (joined on shutdown), or every
/// instance leading under `--disable leader-election`.
fn leadership<S, F>(
    instance: &Instance,
    discovery: &Discovery,
    tasks: &mut JoinSet<std::io::Result<()>>,
    until_stopped: &S,
) -> Leadership
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    if !instance.config.leader_election {
        tracing::warn!(instance = %instance.id, "leader election disabled: this instance runs the singleton work whatever the others do");
        return Leadership::everyone();
    }
    let leadership = Leadership::candidate();
    let campaign = Campaign {
        registry: discovery.registry().clone(),
        key: Campaign::key_of(instance.id.service.name()),
        holder: instance.id.to_string(),
        ttl: Duration::from_millis(instance.config.leadership.ttl_ms),
    };
    background(
        tasks,
        leadership::campaign(leadership.clone(), campaign, until_stopped()),
    );
    leadership
}

/// Resumes parked sagas while this instance leads.
async fn resume_sagas(
    orders: Orders,
    lead: LeadershipConfig,
    stopped: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    tokio::pin!(stopped);
    let parked = Duration::from_millis(lead.parked_after_ms);
    loop {
        if let Err(e) = orders.resume_all(parked).await {
            tracing::warn!(error = %e, "resuming sagas failed");
        }
        tokio::select! {
            _ = &mut stopped => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(lead.resume_every_ms)) => {}
        }
    }
}

/// Settles each period just after it ends, while this instance leads. Every instance
/// wakes at the same moments (the periods are aligned to the clock), so two that both
/// lead settle the same period.
async fn settle_periods(orders: Orders, lead: LeadershipConfig, stopped: impl Future<Output = ()>) {
    tokio::pin!(stopped);
    let period = lead.settlement_period_ms as i64;
    loop {
        let now = crate::platform::http::now_unix_ms();
        let next = (now / period + 1) * period;
        // A little after the boundary, so the period's last orders are in.
        let wait = Duration::from_millis((next - now) as u64 + 200);
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = orders.settle(next - period, period).await {
            tracing::warn!(error = %e, "settling the period failed");
        }
    }
}

/// How an instance announces itself to the registry.
fn registration(service: Service, version: &str, base: &str) -> Registration {
    Registration {
        name: service.name().to_string(),
        address: base.to_string(),
        version: version.into(),
        health_url: format!("{base}/health/ready"),
        shard: None,
    }
}

/// The SQLite file instance `id` opens under `data_dir` (see [`InstanceId::database`]).
pub fn database_path(data_dir: &std::path::Path, id: InstanceId) -> PathBuf {
    data_dir.join(format!("{}.sqlite", id.database()))
}

/// Joins every task of the instance; the first failure is the instance's.
async fn join_all(mut tasks: JoinSet<std::io::Result<()>>) -> Result<(), RunError> {
    let mut result = Ok(());
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
        if let Err(e) = outcome
            && result.is_ok()
        {
            result = Err(RunError::Serve(e));
        }
    }
    result
}

/// Runs `work` with the instance's other tasks, joined on shutdown like them.
fn background(
    tasks: &mut JoinSet<std::io::Result<()>>,
    work: impl Future<Output = ()> + Send + 'static,
) {
    tasks.spawn(async move {
        work.await;
        Ok(())
    });
}

/// `--disable outbox`: the service publishes fire-and-forget instead.
fn publishing(outbox: &Outbox, instance: &Instance) -> Result<(), DbError> {
    if !instance.config.transactional_outbox {
        tracing::warn!(instance = %instance.id, "outbox disabled: events are published fire-and-forget (lost when a publisher restarts before they are read)");
        outbox.fire_and_forget()?;
    }
    Ok(())
}

/// The broker this instance's events travel through (`[events] transport = "rabbitmq"`),
/// reached through its chaos proxy when the routes name one (under the key `amqp`).
fn broker_of(instance: &Instance) -> Result<Option<Broker>, RunError> {
    let events = &instance.config.events;
    if events.transport != EventTransport::Rabbitmq {
        return Ok(None);
    }
    let url = events.url.clone().ok_or(RunError::NoBrokerUrl)?;
    let url = match instance.routes.get(BROKER_ROUTE) {
        Some(proxy) => through(&url, proxy),
        None => url,
    };
    Ok(Some(Broker::new(url, events)))
}

/// The routes' key for the chaos proxy in front of the broker.
pub const BROKER_ROUTE: &str = "amqp";

/// `url` with its `host:port` replaced by `addr`.
fn through(url: &str, addr: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let credentials = authority.rsplit_once('@').map(|(c, _)| format!("{c}@"));
    format!(
        "{scheme}://{}{addr}/{path}",
        credentials.unwrap_or_default()
    )
}

/// Publishes `outbox` as `feed`: through the feed it serves, and, with a broker, by its
/// relay too.
fn relaying<S, F>(
    outbox: &Outbox,
    feed: &'static str,
    instance: &Instance,
    tasks: &mut JoinSet<std::io::Result<()>>,
    until_stopped: &S,
) -> Result<(), RunError>
where
    S: Fn() -> F,
    F: Future<Output = ()> + Send + 'static,
{
    publishing(outbox, instance)?;
    if let Some(broker) = broker_of(instance)? {
        background(
            tasks,
            broker::relay(outbox.clone(), feed, broker, until_stopped()),
        );
    }
    Ok(())
}

async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .await
}

#[cfg(test)]
mod tests {
    use super::through;

    #[test]
    fn the_broker_url_goes_through_the_proxy_and_keeps_its_credentials_and_vhost() {
        assert_eq!(
            through("amqp://guest:guest@127.0.0.1:5672/%2f", "127.0.0.1:40001"),
            "amqp://guest:guest@127.0.0.1:40001/%2f"
        );
        assert_eq!(
            through("amqp://broker.local:5672", "127.0.0.1:40001"),
            "amqp://127.0.0.1:40001/"
        );
    }
}
