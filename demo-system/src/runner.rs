//! Runs one demo service in this process: opens its own database under the data
//! directory, serves on its port, announces itself to the registry (the registry excepted),
//! and runs its background work (saga resumption for orders, the orders-feed consumers
//! for notifications and order-history) until `shutdown` resolves.
//! `gauntlet demo-service NAME ...` calls [`run`]; the supervisor starts one such process
//! per instance.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::gateway::{self, Gateway};
use crate::inventory::{self, Inventory};
use crate::notifications::{self, Notifications};
use crate::order_history::{self, OrderHistory};
use crate::orders::{self, Orders};
use crate::outbox::OutboxError;
use crate::payments::{self, Payments};
use crate::registry::{self, Registration, Registry};
use crate::resilience::{ConfigError, Upstream};

/// The services a demo instance can be.
pub const SERVICES: [&str; 7] = [
    "registry",
    "gateway",
    "orders",
    "inventory",
    "payments",
    "notifications",
    "order-history",
];

/// Where one instance runs and what it talks to.
#[derive(Debug, Clone)]
pub struct Instance {
    pub service: String,
    pub listen: SocketAddr,
    /// The instance's database lives here (`<service>.sqlite`; inventory instances share one).
    pub data_dir: PathBuf,
    pub registry_url: String,
    /// Base URLs the orders saga calls.
    pub inventory_url: String,
    pub payments_url: String,
    /// Base URL of the orders feed, for the consumers.
    pub orders_url: String,
    /// The effective demo settings.
    pub config: crate::config::DemoConfig,
    /// OTLP/HTTP endpoint of the collector (e.g. `http://127.0.0.1:4318`); `None` keeps
    /// telemetry local (stderr only).
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("unknown service {0:?}: one of {list}", list = SERVICES.join(", "))]
    UnknownService(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] OutboxError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("server failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
}

/// Runs `instance` until `shutdown` resolves.
pub async fn run(
    instance: Instance,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    if !SERVICES.contains(&instance.service.as_str()) {
        return Err(RunError::UnknownService(instance.service));
    }
    let telemetry =
        crate::telemetry::Telemetry::init(&instance.service, instance.otlp_endpoint.as_deref())?;
    let result = serve_instance(instance, shutdown).await;
    // Flush what the exporters still hold: the last requests' spans and logs.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result
}

async fn serve_instance(
    instance: Instance,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    std::fs::create_dir_all(&instance.data_dir)?;
    let listener = tokio::net::TcpListener::bind(instance.listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: instance.listen,
            source,
        })?;
    let base = format!("http://{}", listener.local_addr()?);
    let db = |name: &str| instance.data_dir.join(format!("{name}.sqlite"));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut rx = stopped.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    if instance.service != "registry" {
        let reg = Registration {
            name: instance.service.clone(),
            address: base.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            health_url: format!("{base}/health/ready"),
        };
        let registry_url = instance.registry_url.clone();
        tokio::spawn(registry::announce(registry_url, reg, until_stopped()));
    }
    let http = reqwest::Client::new();
    let server = match instance.service.as_str() {
        "registry" => {
            let registry_config = instance.config.registry;
            let signal = until_stopped();
            tokio::spawn(async move {
                registry::run(Registry::new(registry_config), listener, signal).await
            })
        }
        "gateway" => {
            let g = Gateway::new(&instance.registry_url, instance.config.gateway.clone())?;
            let signal = until_stopped();
            tokio::spawn(async move { gateway::run(g, listener, signal).await })
        }
        "inventory" => {
            let inv = Inventory::open(&db("inventory"))?;
            publishing(inv.outbox(), &instance);
            tokio::spawn(serve(listener, inventory::app(inv), until_stopped()))
        }
        "payments" => {
            let pay = Payments::open(&db("payments"), instance.config.payments.clone())?;
            publishing(pay.outbox(), &instance);
            tokio::spawn(serve(listener, payments::app(pay), until_stopped()))
        }
        "orders" => {
            let r = instance.config.orders.clone();
            let o = Orders::open(
                &db("orders"),
                &instance.inventory_url,
                Upstream::new("inventory", http.clone(), &r)?,
                &instance.payments_url,
                Upstream::new("payments", http.clone(), &r)?,
            )?;
            publishing(o.outbox(), &instance);
            // Finish what a previous run left, then keep resuming sagas that wait on a dependency.
            let resumer = o.clone();
            let signal = until_stopped();
            tokio::spawn(async move {
                tokio::pin!(signal);
                loop {
                    if let Err(e) = resumer.resume_all().await {
                        tracing::warn!(error = %e, "resuming sagas failed");
                    }
                    tokio::select! {
                        _ = &mut signal => break,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            });
            tokio::spawn(serve(listener, orders::app(o), until_stopped()))
        }
        "notifications" => {
            let n = Notifications::open(&db("notifications"))?;
            tokio::spawn(n.consume(&instance.orders_url, until_stopped()));
            tokio::spawn(serve(listener, notifications::app(n), until_stopped()))
        }
        "order-history" => {
            let h = OrderHistory::open(&db("order-history"))?;
            tokio::spawn(h.consume(&instance.orders_url, until_stopped()));
            tokio::spawn(serve(listener, order_history::app(h), until_stopped()))
        }
        other => return Err(RunError::UnknownService(other.to_string())),
    };
    tracing::info!(service = %instance.service, address = %base, "demo service running");
    shutdown.await;
    let _ = stop.send(true);
    match server.await {
        Ok(result) => result.map_err(RunError::Serve),
        Err(e) => Err(RunError::Serve(std::io::Error::other(e.to_string()))),
    }
}

/// `--disable outbox`: the service publishes fire-and-forget instead.
fn publishing(outbox: &crate::outbox::Outbox, instance: &Instance) {
    if !instance.config.transactional_outbox {
        tracing::warn!(service = %instance.service, "outbox disabled: events are published fire-and-forget from memory");
        outbox.fire_and_forget();
    }
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
