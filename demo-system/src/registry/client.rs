//! The registry's typed client, and [`announce`]: what every other instance runs to stay
//! listed. Plain HTTP with a short timeout, and no spans: registration and heartbeats are
//! the platform's background chatter, not the requests people trace.

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::api::{
    InstanceView, KV_INDEX_HEADER, KvEntry, Registered, Registration, Routing, SessionCreated,
    SessionRequest,
};
use super::weights::Weights;
use crate::platform::client::error_message;

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryClientError {
    #[error("the registry at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the registry refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the registry's answer could not be read: {0}")]
    Decode(String),
}

/// A client of the registry at one base URL; cheap to clone.
#[derive(Clone, Debug)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
}

impl RegistryClient {
    pub fn new(base_url: &str) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The registry's answer to `req` as it came: status, headers, body.
    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, bytes::Bytes), RegistryClientError> {
        let unreachable = |e: reqwest::Error| RegistryClientError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.bytes().await.map_err(unreachable)?;
        Ok((status, headers, body))
    }

    /// `Refused` with the registry's message unless `status` is a success.
    fn accepted(status: StatusCode, body: &[u8]) -> Result<(), RegistryClientError> {
        if status.is_success() {
            return Ok(());
        }
        Err(RegistryClientError::Refused {
            status: status.as_u16(),
            message: error_message(body),
        })
    }

    async fn answer(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, bytes::Bytes), RegistryClientError> {
        let (status, _, body) = self.send(req).await?;
        Self::accepted(status, &body)?;
        Ok((status, body))
    }

    async fn json<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, RegistryClientError> {
        let (_, body) = self.answer(req).await?;
        serde_json::from_slice(&body).map_err(|e| RegistryClientError::Decode(e.to_string()))
    }

    /// `POST /instances`.
    pub async fn register(&self, r: &Registration) -> Result<Registered, RegistryClientError> {
        self.json(self.http.post(format!("{}/instances", self.base)).json(r))
            .await
    }

    /// `PUT /instances/{id}/heartbeat`; `Refused { status: 404 }` when the registry forgot it.
    pub async fn heartbeat(&self, id: Uuid) -> Result<(), RegistryClientError> {
        self.answer(
            self.http
                .put(format!("{}/instances/{id}/heartbeat", self.base)),
        )
        .await
        .map(drop)
    }

    /// `DELETE /instances/{id}`.
    pub async fn deregister(&self, id: Uuid) -> Result<(), RegistryClientError> {
        self.answer(self.http.delete(format!("{}/instances/{id}", self.base)))
            .await
            .map(drop)
    }

    /// Healthy instances of `name` (`Refused { status: 404 }` if none ever registered).
    pub async fn healthy(&self, name: &str) -> Result<Vec<InstanceView>, RegistryClientError> {
        self.json(self.http.get(format!("{}/services/{name}", self.base)))
            .await
    }

    /// Healthy instances of `name` and its version weights (`GET /services/{name}/routing`).
    pub async fn routing(&self, name: &str) -> Result<Routing, RegistryClientError> {
        self.json(
            self.http
                .get(format!("{}/services/{name}/routing", self.base)),
        )
        .await
    }

    /// Every service's version weights (`GET /admin/weights`).
    pub async fn weights(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Weights>, RegistryClientError> {
        self.json(self.http.get(format!("{}/admin/weights", self.base)))
            .await
    }

    /// Sets the share of `name`'s calls each version gets (`PUT /admin/weights/{name}`):
    /// a canary's step, or a blue-green switch (one version at 100). `Refused { status:
    /// 400 }` with the reason when they do not add up to 100 or name a version nobody runs.
    pub async fn set_weights(
        &self,
        name: &str,
        weights: &Weights,
    ) -> Result<Weights, RegistryClientError> {
        self.json(
            self.http
                .put(format!("{}/admin/weights/{name}", self.base))
                .json(weights),
        )
        .await
    }

    /// Drops `name`'s version weights: its calls spread over every instance again.
    pub async fn clear_weights(&self, name: &str) -> Result<(), RegistryClientError> {
        self.answer(
            self.http
                .delete(format!("{}/admin/weights/{name}", self.base)),
        )
        .await
        .map(drop)
    }

    /// Every registered instance, healthy or not.
    pub async fn all(&self) -> Result<Vec<InstanceView>, RegistryClientError> {
        self.json(self.http.get(format!("{}/services", self.base)))
            .await
    }

    /// The configuration under `prefix` once the store's index passes `index` (or `wait`
    /// ends): each key with its value as text, and the index to wait on next. `index` 0
    /// answers at once.
    pub async fn kv_watch(
        &self,
        prefix: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(Vec<(String, String)>, u64), RegistryClientError> {
        let req = self
            .http
            .get(format!(
                "{}/v1/kv/{prefix}?recurse&index={index}&wait={}ms",
                self.base,
                wait.as_millis()
            ))
            // The registry holds the read for `wait`: give it that long, and a margin.
            .timeout(wait + Duration::from_secs(5));
        let (entries, index) = self.kv_read(req).await?;
        let values = entries
            .into_iter()
            .filter_map(|e| Some((e.key.clone(), e.text()?)))
            .collect();
        Ok((values, index))
    }

    /// The entry at `key` (`None`: not set).
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>, RegistryClientError> {
        let req = self.http.get(format!("{}/v1/kv/{key}", self.base));
        Ok(self.kv_read(req).await?.0.into_iter().next())
    }

    /// Every entry under `prefix` (`""`: all of them).
    pub async fn kv_list(&self, prefix: &str) -> Result<Vec<KvEntry>, RegistryClientError> {
        let req = self
            .http
            .get(format!("{}/v1/kv/{prefix}?recurse", self.base));
        Ok(self.kv_read(req).await?.0)
    }

    /// A read's entries (none on `404`) and the store's index.
    async fn kv_read(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(Vec<KvEntry>, u64), RegistryClientError> {
        let (status, headers, body) = self.send(req).await?;
        let index = headers
            .get(KV_INDEX_HEADER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .ok_or_else(|| {
                RegistryClientError::Decode(format!("no {KV_INDEX_HEADER} header in the answer"))
            });
        if status == StatusCode::NOT_FOUND {
            return Ok((Vec::new(), index?));
        }
        Self::accepted(status, &body)?;
        let entries = serde_json::from_slice(&body)
            .map_err(|e| RegistryClientError::Decode(e.to_string()))?;
        Ok((entries, index?))
    }

    /// Sets `key` to `value`; `Refused { status: 400 }` with the reason when the services
    /// would not take it.
    pub async fn kv_put(&self, key: &str, value: &str) -> Result<(), RegistryClientError> {
        self.answer(
            self.http
                .put(format!("{}/v1/kv/{key}", self.base))
                .body(value.to_string()),
        )
        .await
        .map(drop)
    }

    /// Removes `key` (the services go back to the settings they started with).
    pub async fn kv_delete(&self, key: &str) -> Result<(), RegistryClientError> {
        self.answer(self.http.delete(format!("{}/v1/kv/{key}", self.base)))
            .await
            .map(drop)
    }

    /// Makes a session that ends unless renewed within `ttl`, releasing its locks with no
    /// lock delay (the holder's fencing token guards instead).
    pub async fn session_create(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Uuid, RegistryClientError> {
        let req = SessionRequest {
            name: Some(name.to_string()),
            ttl: Some(format!("{}ms", ttl.as_millis())),
            lock_delay: Some("0s".into()),
            ..SessionRequest::default()
        };
        let made: SessionCreated = self
            .json(
                self.http
                    .put(format!("{}/v1/session/create", self.base))
                    .json(&req),
            )
            .await?;
        Uuid::parse_str(&made.id).map_err(|e| RegistryClientError::Decode(e.to_string()))
    }

    /// Starts the session's TTL again; `false` once it has ended.
    pub async fn session_renew(&self, id: Uuid) -> Result<bool, RegistryClientError> {
        let req = self
            .http
            .put(format!("{}/v1/session/renew/{id}", self.base));
        let (status, _, body) = self.send(req).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        Self::accepted(status, &body).map(|()| true)
    }

    /// Ends the session now, releasing its locks.
    pub async fn session_destroy(&self, id: Uuid) -> Result<(), RegistryClientError> {
        let req = self
            .http
            .put(format!("{}/v1/session/destroy/{id}", self.base));
        self.answer(req).await.map(drop)
    }

    /// Takes `key`'s lock for `session`, setting its value: `false` while another holds it.
    pub async fn kv_acquire(
        &self,
        key: &str,
        session: Uuid,
        value: &str,
    ) -> Result<bool, RegistryClientError> {
        self.json(
            self.http
                .put(format!("{}/v1/kv/{key}?acquire={session}", self.base))
                .body(value.to_string()),
        )
        .await
    }

    /// Whether the registry answers its readiness check.
    pub async fn ready(&self) -> bool {
        self.answer(self.http.get(format!("{}/health/ready", self.base)))
            .await
            .is_ok()
    }
}

/// Registers an instance and heartbeats until `shutdown` resolves, registering again if the
/// registry forgot it (evicted, or restarted); deregisters on the way out, so callers stop
/// being sent to it before it is gone.
pub async fn announce(
    registry: RegistryClient,
    registration: Registration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut id: Option<Uuid> = None;
    let mut every = Duration::from_millis(500);
    loop {
        id = match id {
            None => match registry.register(&registration).await {
                Ok(r) => {
                    every = Duration::from_millis(r.heartbeat_interval_ms.max(10));
                    Some(r.id)
                }
                Err(e) => {
                    tracing::warn!(error = %e, name = %registration.name, "not registered yet; will try again");
                    None
                }
            },
            Some(id) => match registry.heartbeat(id).await {
                Err(RegistryClientError::Refused { status: 404, .. }) => None,
                _ => Some(id),
            },
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    if let Some(id) = id
        && let Err(e) = registry.deregister(id).await
    {
        tracing::warn!(error = %e, "could not deregister");
    }
}
