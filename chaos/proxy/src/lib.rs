//! Gauntlet's fault-injecting proxy: TCP (and HTTP) proxies that speak Toxiproxy's HTTP API,
//! so existing Toxiproxy clients drive them unchanged. It knows nothing of the demo, the
//! load generator or the experiments (`gauntlet-chaos`), which drive it like any client.
//!
//! # Layout
//! - [`model`]: Toxiproxy's JSON shapes (proxy, toxic and its attributes, error).
//! - [`proxy`]: the proxies: listeners, connections piped one task per direction, and the
//!   toxics (latency with jitter, bandwidth, slow_close, timeout, reset_peer, slicer,
//!   limit_data) applied per chunk, drawn per connection by toxicity.
//! - [`http_faults`]: proxies of kind `http`: a reverse proxy that aborts or delays a share
//!   of the requests matching a method, a path and a header (Chaos Mesh's HTTPChaos faults).
//! - [`api`]: the HTTP API.
//! - [`fuzzing`]: the entry point of the fuzz target in `fuzz/` for the API's bodies.
//!
//! [`serve`] runs the API on a listener until shutdown, then closes every proxy.

pub mod api;
pub mod fuzzing;
pub mod http_faults;
pub mod model;
pub mod proxy;

use std::future::Future;
use std::path::Path;

pub use model::{ApiError, NewProxy, ProxyView, Toxic};
pub use proxy::{Policy, Proxies};

#[derive(Debug, thiserror::Error)]
pub enum ChaosError {
    #[error("cannot read {path}: {source}")]
    Config {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a list of proxies ([{{\"name\", \"listen\", \"upstream\"}}, ...]): {message}"
    )]
    BadConfig { path: String, message: String },
    #[error("proxy {name}: {error}")]
    Proxy { name: String, error: ApiError },
    #[error("the API server failed: {0}")]
    Serve(#[from] std::io::Error),
    #[error(
        "the API would listen on {addr}, off loopback: Toxiproxy's API has no credentials, so \
         anyone who reaches it could relay through this machine and break every proxy. Keep it \
         on 127.0.0.1, or pass --insecure-api if that is really meant"
    )]
    ExposedApi { addr: String },
    #[error("cannot resolve the API address {addr}: {reason}")]
    BadApiAddress { addr: String, reason: String },
}

/// Refuses an API address off loopback (names are resolved) unless `insecure` says it is
/// meant; checked before anything binds.
pub async fn check_api_address(addr: &str, insecure: bool) -> Result<(), ChaosError> {
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| ChaosError::BadApiAddress {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?
        .collect();
    if insecure || (!resolved.is_empty() && resolved.iter().all(|a| a.ip().is_loopback())) {
        return Ok(());
    }
    Err(ChaosError::ExposedApi {
        addr: addr.to_string(),
    })
}

/// Reads a `--config` file: a JSON list of proxies, as `/populate` takes.
pub fn read_config(path: &Path) -> Result<Vec<NewProxy>, ChaosError> {
    let shown = path.display().to_string();
    let text = std::fs::read(path).map_err(|source| ChaosError::Config {
        path: shown.clone(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| ChaosError::BadConfig {
        path: shown,
        message: e.to_string(),
    })
}

/// The proxies and their API, bound and listening; [`Server::run`] serves the API.
#[derive(Debug)]
pub struct Server {
    proxies: Proxies,
    listener: tokio::net::TcpListener,
}

/// Creates the `initial` proxies (they listen when this returns) for an API on `listener`,
/// loopback only.
pub async fn bind(
    listener: tokio::net::TcpListener,
    initial: Vec<NewProxy>,
) -> Result<Server, ChaosError> {
    bind_with(listener, initial, Policy::default()).await
}

/// As [`bind`], under `policy`.
pub async fn bind_with(
    listener: tokio::net::TcpListener,
    initial: Vec<NewProxy>,
    policy: Policy,
) -> Result<Server, ChaosError> {
    let proxies = Proxies::new(policy);
    let (_, failed) = proxies.populate(initial).await;
    if let Some(e) = failed {
        proxies.shutdown().await;
        return Err(ChaosError::Proxy {
            name: "from --config".into(),
            error: e,
        });
    }
    Ok(Server { proxies, listener })
}

impl Server {
    /// The proxies, already listening (each with the port it got when asked for port 0).
    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    /// Serves the API until `shutdown`, then closes every proxy and its connections.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ChaosError> {
        let served = axum::serve(self.listener, api::router(self.proxies.clone()))
            .with_graceful_shutdown(shutdown)
            .await;
        self.proxies.shutdown().await;
        Ok(served?)
    }
}

/// Creates `initial` proxies, then serves the API on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    initial: Vec<NewProxy>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ChaosError> {
    bind(listener, initial).await?.run(shutdown).await
}
