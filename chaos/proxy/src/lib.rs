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
//!
//! [`serve`] runs the API on a listener until shutdown, then closes every proxy.

pub mod api;
pub mod http_faults;
pub mod model;
pub mod proxy;

use std::future::Future;
use std::path::Path;

pub use model::{ApiError, NewProxy, ProxyView, Toxic};
pub use proxy::Proxies;

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

/// Creates the `initial` proxies (they listen when this returns) for an API on `listener`.
pub async fn bind(
    listener: tokio::net::TcpListener,
    initial: Vec<NewProxy>,
) -> Result<Server, ChaosError> {
    let proxies = Proxies::default();
    let (_, failed) = proxies.populate(initial).await;
    if let Some(e) = failed {
        proxies.shutdown();
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
        self.proxies.shutdown();
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
