//! Gauntlet's collector: receives OpenTelemetry traces and logs (OTLP over gRPC and HTTP,
//! protobuf and JSON; Zipkin v2 JSON), keeps the correlation ID that ties one user request
//! together, commits everything to an embedded store, and answers queries over HTTP.
//!
//! # Layout
//! - [`otlp`]: OTLP receivers ([`otlp::grpc`], [`otlp::http`]) and the proto → model conversion.
//! - [`zipkin`]: Zipkin v2 JSON receiver.
//! - [`payload`]: size-limited body reading and gzip.
//! - [`ingest`]: the group-commit pipeline with backpressure that every receiver goes through.
//! - [`store`]: the [`store::Store`] trait, the embedded SQLite store and the ClickHouse store.
//! - [`query`]: the Jaeger-compatible query API, logs, correlation timelines, RED, markers,
//!   health, metrics; its answers and parameters are the types of `gauntlet-query-api`.
//! - [`retention`]: background deletion by age and by disk use.
//! - [`rollup`]: the RED rollups written at ingest (counts and a latency sketch per 10 s).
//! - [`fuzzing`]: the decoders' entry points the fuzz targets (`fuzz/`) and their corpus
//!   replay share.
//!
//! The one design decision to know: an export is answered only after its data is committed
//! ([`ingest::Pipeline::submit`] waits for the commit), so a success means durable.

pub mod fuzzing;
pub mod ingest;
pub mod intake_token;
pub mod metrics;
pub mod model;
pub mod otlp;
pub mod payload;
pub mod promql;
pub mod query;
pub mod retention;
pub mod rollup;
pub mod store;
pub mod zipkin;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::ingest::{Pipeline, PipelineConfig};
use crate::metrics::Metrics;
use crate::retention::RetentionConfig;
use crate::store::sqlite::SqliteConfig;
use crate::store::{Store, StoreConfig, StoreError};

/// Everything `gauntlet collector` can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// OTLP/gRPC listen address.
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP listen address (protobuf and JSON).
    pub otlp_http: SocketAddr,
    /// Zipkin v2 listen address; `None` turns Zipkin intake off.
    pub zipkin: Option<SocketAddr>,
    /// Query API listen address.
    pub http: SocketAddr,
    /// Which store keeps the data, and where.
    pub store: StoreConfig,
    /// Largest request accepted, in bytes, before and after decompression.
    pub max_body: usize,
    /// Bytes of request bodies held in memory at once, over every receiver; past it,
    /// exports are refused with a retry hint (HTTP 429, gRPC UNAVAILABLE).
    pub max_inflight: usize,
    /// Browser origins allowed to export to OTLP/HTTP (CORS); none by default.
    pub cors_origins: Vec<otlp::http::CorsOrigin>,
    /// The bearer token the query API requires; none by default.
    pub auth_token: Option<query::access::AuthToken>,
    /// The bearer token OTLP and Zipkin intake require; none by default.
    pub ingest_token: Option<query::access::AuthToken>,
    /// Serve the query API on a non-loopback address without a token.
    pub insecure_ui: bool,
    /// Delete data received longer ago than this.
    pub retention: Option<Duration>,
    /// Delete the oldest data while the store uses more than this many bytes.
    pub max_disk: Option<u64>,
    /// How often retention runs.
    pub retention_interval: Duration,
    pub pipeline: PipelineConfig,
    /// What one PromQL query may read (series, stored points).
    pub promql: promql::Limits,
}

impl Config {
    /// The documented defaults: loopback only, `./gauntlet-data`, 64 MiB bodies, 72 h, 10 GiB.
    pub fn with_defaults() -> Self {
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        Self {
            otlp_grpc: local(4317),
            otlp_http: local(4318),
            zipkin: Some(local(9411)),
            http: local(16686),
            store: StoreConfig::Sqlite(SqliteConfig::new("gauntlet-data")),
            max_body: 64 << 20,
            max_inflight: 256 << 20,
            cors_origins: Vec::new(),
            auth_token: None,
            ingest_token: None,
            insecure_ui: false,
            retention: Some(Duration::from_secs(72 * 3600)),
            max_disk: Some(10 << 30),
            promql: promql::Limits::default(),
            retention_interval: Duration::from_secs(60),
            pipeline: PipelineConfig::default(),
        }
    }

    /// Defaults, but every listener on an ephemeral loopback port: for tests and embedding.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            otlp_grpc: any,
            otlp_http: any,
            zipkin: Some(any),
            http: any,
            store: StoreConfig::Sqlite(SqliteConfig::new(data_dir)),
            ..Self::with_defaults()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("cannot listen for {what} on {addr}: {source}; pass {flag} with another address")]
    Bind {
        what: &'static str,
        flag: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the query API would listen on {addr}, which is not loopback, without a token: anyone \
         who reaches it could read every trace and log. Set a token with --auth-token (or the \
         environment variable GAUNTLET_AUTH_TOKEN), or pass --insecure-ui to serve it anyway"
    )]
    Unprotected { addr: SocketAddr },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where a running collector listens (the real ports, when asked for port 0).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub zipkin: Option<SocketAddr>,
    pub http: SocketAddr,
}

/// Every listener the collector serves, bound before anything else starts.
struct Listeners {
    grpc: TcpListener,
    otlp_http: TcpListener,
    zipkin: Option<TcpListener>,
    http: TcpListener,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Self, CollectorError> {
        Ok(Self {
            grpc: bind(config.otlp_grpc, "OTLP/gRPC", "--otlp-grpc").await?,
            otlp_http: bind(config.otlp_http, "OTLP/HTTP", "--otlp-http").await?,
            zipkin: match config.zipkin {
                Some(a) => Some(bind(a, "Zipkin", "--zipkin").await?),
                None => None,
            },
            http: bind(config.http, "the query API", "--http").await?,
        })
    }

    /// Where each listens (the port it got, when asked for port 0).
    fn addresses(&self, config: &Config) -> Addresses {
        Addresses {
            otlp_grpc: self.grpc.local_addr().unwrap_or(config.otlp_grpc),
            otlp_http: self.otlp_http.local_addr().unwrap_or(config.otlp_http),
            zipkin: self
                .zipkin
                .as_ref()
                .map(|l| l.local_addr().ok())
                .and_then(|a| a.or(config.zipkin)),
            http: self.http.local_addr().unwrap_or(config.http),
        }
    }

    /// Serves OTLP/gRPC, OTLP/HTTP and Zipkin into `pipeline`; gives back the query API's
    /// listener.
    fn serve_receivers(
        self,
        servers: &mut JoinSet<()>,
        config: &Config,
        pipeline: Pipeline,
        metrics: &Arc<Metrics>,
        budget: payload::BodyBudget,
        stopped: &watch::Receiver<bool>,
    ) -> TcpListener {
        let receiver = otlp::http::HttpReceiver {
            pipeline: pipeline.clone(),
            metrics: metrics.clone(),
            max_body: config.max_body,
            budget: budget.clone(),
        };
        let grpc_receiver = otlp::grpc::GrpcReceiver {
            pipeline,
            metrics: metrics.clone(),
        };
        let (grpc, max_body) = (self.grpc, config.max_body);
        let signal = until_stopped(stopped.clone());
        let token = config.ingest_token.clone();
        servers.spawn(async move {
            let served = otlp::grpc::serve(grpc_receiver, grpc, max_body, budget, token, signal);
            if let Err(e) = served.await {
                tracing::error!(error = %e, "OTLP/gRPC server failed");
            }
        });
        let guard = |router: axum::Router| match &config.ingest_token {
            Some(token) => router.layer(axum::middleware::from_fn_with_state(
                token.clone(),
                intake_token::require_http,
            )),
            None => router,
        };
        let otlp_router = guard(otlp::http::router(receiver.clone(), &config.cors_origins));
        serve_http(servers, self.otlp_http, otlp_router, stopped);
        if let Some(listener) = self.zipkin {
            serve_http(servers, listener, guard(zipkin::router(receiver)), stopped);
        }
        self.http
    }
}

/// A started collector; [`Collector::shutdown`] stops it after committing what it accepted.
pub struct Collector {
    pub addrs: Addresses,
    pub store: Arc<dyn Store>,
    stop: watch::Sender<bool>,
    servers: JoinSet<()>,
    committer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("addrs", &self.addrs)
            .finish()
    }
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<TcpListener, CollectorError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| CollectorError::Bind {
            what,
            flag,
            addr,
            source,
        })
}

impl Collector {
    /// Opens the store, binds every listener and starts serving.
    pub async fn start(config: Config) -> Result<Self, CollectorError> {
        if !config.http.ip().is_loopback() && config.auth_token.is_none() && !config.insecure_ui {
            return Err(CollectorError::Unprotected { addr: config.http });
        }
        let exposed = [
            Some(config.otlp_grpc),
            Some(config.otlp_http),
            config.zipkin,
        ]
        .into_iter()
        .flatten()
        .filter(|a| !a.ip().is_loopback())
        .collect::<Vec<_>>();
        if !exposed.is_empty() && config.ingest_token.is_none() {
            tracing::warn!(addresses = ?exposed, "telemetry intake off loopback without --ingest-token: anyone who reaches it can send data");
        }
        let listeners = Listeners::bind(&config).await?;
        let store: Arc<dyn Store> = config.store.clone().open().await?;
        let addrs = listeners.addresses(&config);
        let budget = payload::BodyBudget::new(config.max_inflight);
        let mut metrics = Metrics::default();
        metrics.register_body_budget(budget.held_gauge());
        let metrics = Arc::new(metrics);
        let (pipeline, committer) =
            Pipeline::start(store.clone(), config.pipeline, metrics.clone());
        let (stop, stopped) = watch::channel(false);
        let mut servers = JoinSet::new();
        let http =
            listeners.serve_receivers(&mut servers, &config, pipeline, &metrics, budget, &stopped);
        let query = query::access::protect(
            query::router(query::QueryState {
                store: store.clone(),
                metrics,
                promql: config.promql,
            }),
            gauntlet_dashboards::router(),
            config.auth_token.clone(),
        );
        serve_http(&mut servers, http, query, &stopped);
        let retention = RetentionConfig {
            max_age: config.retention,
            max_bytes: config.max_disk,
            interval: config.retention_interval,
        };
        servers.spawn(retention::run(store.clone(), retention, stopped));
        tracing::info!(
            otlp_grpc = %addrs.otlp_grpc,
            otlp_http = %addrs.otlp_http,
            zipkin = ?addrs.zipkin,
            query = %addrs.http,
            store = %config.store.location(),
            "collector listening"
        );
        Ok(Self {
            addrs,
            store,
            stop,
            servers,
            committer,
        })
    }

    /// Stops accepting, finishes in-flight requests and commits everything accepted.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.servers.join_next().await.is_some() {}
        // The servers held the last pipeline handles: the committer drains and ends.
        let _ = self.committer.await;
        self.store.close().await;
    }

    /// Runs until `signal` resolves, then shuts down cleanly.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down: committing what was accepted");
        self.shutdown().await;
    }
}

async fn until_stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn serve_http(
    servers: &mut JoinSet<()>,
    listener: TcpListener,
    app: axum::Router,
    stopped: &watch::Receiver<bool>,
) {
    let signal = until_stopped(stopped.clone());
    servers.spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
}
