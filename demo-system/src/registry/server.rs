//! The registry's state and routes. Instances register and heartbeat; one that stops
//! heartbeating is evicted after the TTL, and one whose health URL fails is kept but no
//! longer listed as healthy, so discovery (`GET /services/{name}`) only ever hands out
//! instances that answered recently. Eviction and health checks run in the background
//! until shutdown, and are joined before [`run`] returns. It also keeps each service's
//! version weights (canary releases, blue-green switches: [`super::weights`]) and hands
//! them out with the instances (`GET /services/{name}/routing`), and serves the services'
//! configuration from its key/value store ([`super::kv`], `/v1/kv/...`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api::{InstanceView, Registered, Registration, Routing};
use super::kv::{self, KvStore};
use super::weights::Weights;
use crate::platform::discovery::Routes;
use crate::platform::http::{ApiError, Body, body, live};
use crate::platform::live_config::{WEIGHTS_PREFIX, weights_of};
use crate::platform::resilience::ResilienceReport;
use crate::topology::Service;

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Poll every instance's health URL (`--disable health-checks` turns it off: then only
    /// missed heartbeats remove an instance).
    pub health_checks: bool,
    /// An instance that has not heartbeated for this long is evicted.
    #[serde(with = "millis")]
    pub ttl: Duration,
    /// How often every instance's health URL is polled.
    #[serde(with = "millis")]
    pub health_interval: Duration,
    /// How long one health check may take.
    #[serde(with = "millis")]
    pub health_timeout: Duration,
    /// Consecutive failed health checks before an instance stops being listed as healthy.
    pub unhealthy_after: u32,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            health_checks: true,
            ttl: Duration::from_secs(10),
            health_interval: Duration::from_secs(2),
            health_timeout: Duration::from_secs(1),
            unhealthy_after: 2,
        }
    }
}

/// Durations in the config file are whole milliseconds.
mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.as_millis() as u64)
    }
}

struct Instance {
    registration: Registration,
    last_heartbeat: Instant,
    healthy: bool,
    failed_checks: u32,
}

impl Instance {
    fn view(&self, id: Uuid) -> InstanceView {
        InstanceView {
            id,
            name: self.registration.name.clone(),
            address: self.registration.address.clone(),
            version: self.registration.version.clone(),
            health_url: self.registration.health_url.clone(),
            healthy: self.healthy,
            last_heartbeat_ms: self.last_heartbeat.elapsed().as_millis() as u64,
            shard: self.registration.shard,
        }
    }
}

/// The registry's state; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    instances: Arc<Mutex<HashMap<Uuid, Instance>>>,
    /// Service name → the share of its calls each version gets; absent: every instance alike.
    weights: Arc<Mutex<BTreeMap<String, Weights>>>,
    config: RegistryConfig,
    http: reqwest::Client,
    /// Under `--chaos`: instance base URL → the proxy its health checks go through, so a
    /// fault on every proxy in front of an instance reaches its health checks too.
    routes: Arc<Routes>,
    /// The configuration the services follow.
    kv: KvStore,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid registration: {0}")]
    Invalid(String),
    #[error("no instance {0}: it was evicted or never registered; register again")]
    UnknownInstance(Uuid),
    #[error("no service named {0:?} has ever registered")]
    UnknownService(String),
    #[error("{0}")]
    BadWeights(String),
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = match e {
            RegistryError::Invalid(_) | RegistryError::BadWeights(_) => StatusCode::BAD_REQUEST,
            RegistryError::UnknownInstance(_) | RegistryError::UnknownService(_) => {
                StatusCode::NOT_FOUND
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl Registry {
    pub fn new(config: RegistryConfig) -> Self {
        Self {
            instances: Arc::new(Mutex::new(HashMap::new())),
            weights: Arc::new(Mutex::new(BTreeMap::new())),
            config,
            http: reqwest::Client::builder()
                .timeout(config.health_timeout)
                .build()
                .unwrap_or_default(),
            routes: Arc::new(Routes::new()),
            kv: KvStore::in_memory().expect("an in-memory SQLite database opens"),
        }
    }

    /// A registry whose configuration lives in `kv` (the demo's: a file in its data
    /// directory, so a restarted registry serves the same settings).
    pub fn with_kv(mut self, kv: KvStore) -> Self {
        self.kv = kv;
        self
    }

    /// A registry whose health checks reach each instance through the proxy `routes` names
    /// for its base URL.
    pub fn routed(mut self, routes: Routes) -> Self {
        self.routes = Arc::new(routes);
        self
    }

    /// A registry that starts with these version weights (checked against the demo's
    /// topology before it starts: the instances have not registered yet).
    pub fn weighted(self, initial: BTreeMap<String, Weights>) -> Self {
        *crate::platform::lock(&self.weights) = initial;
        self
    }

    /// Sets the version weights of `name`, refused unless they add up to 100 and every
    /// version given calls is one a registered instance of it runs.
    pub fn set_weights(&self, name: &str, weights: Weights) -> Result<Weights, RegistryError> {
        let running: BTreeSet<String> = self
            .lock()
            .values()
            .filter(|i| i.registration.name == name)
            .map(|i| i.registration.version.clone())
            .collect();
        if running.is_empty() {
            return Err(RegistryError::UnknownService(name.to_string()));
        }
        weights
            .check(name, &running)
            .map_err(RegistryError::BadWeights)?;
        tracing::info!(service = %name, weights = %weights, "version weights set");
        crate::platform::lock(&self.weights).insert(name.to_string(), weights.clone());
        Ok(weights)
    }

    /// Drops the version weights of `name`: its calls spread over every instance again.
    pub fn clear_weights(&self, name: &str) {
        if crate::platform::lock(&self.weights).remove(name).is_some() {
            tracing::info!(service = %name, "version weights cleared");
        }
    }

    /// Takes the configuration store's version weights (`registry/weights/{service}`, as
    /// checked when they were written): a key set or changed since `seen` sets its service's
    /// weights, a key gone clears them; what it took is `seen` for the next call. A change
    /// through `PUT /admin/weights` stands until the service's key changes.
    pub fn follow_weights(&self, seen: &mut BTreeMap<String, Weights>) {
        let mut now = BTreeMap::new();
        for entry in self.kv.get(WEIGHTS_PREFIX, true) {
            let service = entry.key.trim_start_matches(WEIGHTS_PREFIX);
            let parsed = (service.parse::<Service>().map_err(|e| e.to_string()))
                .and_then(|s| weights_of(s, &entry.text().unwrap_or_default()));
            match parsed {
                Ok(w) => {
                    now.insert(service.to_string(), w);
                }
                Err(e) => tracing::warn!(key = %entry.key, error = %e, "config.ignored"),
            }
        }
        for (service, weights) in &now {
            if seen.get(service) != Some(weights) {
                tracing::info!(event.name = "config.applied", key = %format!("{WEIGHTS_PREFIX}{service}"), value = %weights, "config.applied");
                crate::platform::lock(&self.weights).insert(service.clone(), weights.clone());
            }
        }
        for service in seen.keys().filter(|s| !now.contains_key(*s)) {
            tracing::info!(event.name = "config.applied", key = %format!("{WEIGHTS_PREFIX}{service}"), value = "unset", "config.applied");
            self.clear_weights(service);
        }
        *seen = now;
    }

    /// Every service's version weights.
    pub fn weights(&self) -> BTreeMap<String, Weights> {
        crate::platform::lock(&self.weights).clone()
    }

    /// What a caller of `name` routes by: its healthy instances and its version weights.
    pub fn routing(&self, name: &str) -> Result<Routing, RegistryError> {
        Ok(Routing {
            instances: self.healthy(name)?,
            weights: crate::platform::lock(&self.weights)
                .get(name)
                .cloned()
                .unwrap_or_default(),
        })
    }

    /// Where the health check of `url` goes: through the instance's proxy, if it has one.
    fn health_target(&self, url: &str) -> String {
        self.routes
            .iter()
            .find_map(|(base, proxy)| {
                url.strip_prefix(base.as_str())
                    .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                    .map(|rest| format!("{proxy}{rest}"))
            })
            .unwrap_or_else(|| url.to_string())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Instance>> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, r: Registration) -> Result<Uuid, RegistryError> {
        validate(&r)?;
        let id = Uuid::now_v7();
        tracing::info!(%id, name = %r.name, address = %r.address, "instance registered");
        self.lock().insert(
            id,
            Instance {
                registration: r,
                last_heartbeat: Instant::now(),
                // Listed from the start: it just proved it is alive by registering.
                healthy: true,
                failed_checks: 0,
            },
        );
        Ok(id)
    }

    pub fn heartbeat(&self, id: Uuid) -> Result<(), RegistryError> {
        let mut all = self.lock();
        let i = all.get_mut(&id).ok_or(RegistryError::UnknownInstance(id))?;
        i.last_heartbeat = Instant::now();
        Ok(())
    }

    pub fn deregister(&self, id: Uuid) -> Result<(), RegistryError> {
        self.lock()
            .remove(&id)
            .map(|_| tracing::info!(%id, "instance deregistered"))
            .ok_or(RegistryError::UnknownInstance(id))
    }

    /// Healthy instances of `name`, oldest registration first (v7 IDs sort by time).
    pub fn healthy(&self, name: &str) -> Result<Vec<InstanceView>, RegistryError> {
        let all = self.lock();
        let mut of_service: Vec<InstanceView> = all
            .iter()
            .filter(|(_, i)| i.registration.name == name)
            .map(|(id, i)| i.view(*id))
            .collect();
        if of_service.is_empty() {
            return Err(RegistryError::UnknownService(name.to_string()));
        }
        of_service.retain(|i| i.healthy);
        of_service.sort_by_key(|i| i.id);
        Ok(of_service)
    }

    pub fn all(&self) -> Vec<InstanceView> {
        let mut v: Vec<InstanceView> = self.lock().iter().map(|(id, i)| i.view(*id)).collect();
        v.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        v
    }

    /// Evicts instances whose last heartbeat is older than the TTL; returns how many.
    pub fn evict_silent(&self) -> usize {
        let ttl = self.config.ttl;
        let mut all = self.lock();
        let before = all.len();
        all.retain(|id, i| {
            let alive = i.last_heartbeat.elapsed() <= ttl;
            if !alive {
                tracing::warn!(%id, name = %i.registration.name, "instance evicted: no heartbeat within the TTL");
            }
            alive
        });
        before - all.len()
    }

    /// Polls every instance's health URL once, concurrently.
    pub async fn check_health(&self) {
        let targets: Vec<(Uuid, String)> = self
            .lock()
            .iter()
            .map(|(id, i)| (*id, self.health_target(&i.registration.health_url)))
            .collect();
        let mut checks = tokio::task::JoinSet::new();
        for (id, url) in targets {
            let http = self.http.clone();
            checks.spawn(async move {
                let ok = matches!(http.get(&url).send().await, Ok(r) if r.status().is_success());
                (id, ok)
            });
        }
        let results = checks.join_all().await;
        let mut all = self.lock();
        for (id, ok) in results {
            let Some(i) = all.get_mut(&id) else { continue };
            if ok {
                if !i.healthy {
                    tracing::info!(%id, name = %i.registration.name, "instance healthy again");
                }
                i.failed_checks = 0;
                i.healthy = true;
            } else {
                i.failed_checks += 1;
                if i.healthy && i.failed_checks >= self.config.unhealthy_after {
                    tracing::warn!(%id, name = %i.registration.name, "instance unhealthy: health checks failing");
                    i.healthy = false;
                }
            }
        }
    }
}

fn validate(r: &Registration) -> Result<(), RegistryError> {
    let name_ok = !r.name.is_empty()
        && r.name.len() <= 64
        && r.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        return Err(RegistryError::Invalid(format!(
            "name {:?} must be 1-64 characters of a-z, 0-9 and -",
            r.name
        )));
    }
    for (field, url) in [("address", &r.address), ("health_url", &r.health_url)] {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| RegistryError::Invalid(format!("{field} {url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(RegistryError::Invalid(format!(
                "{field} {url:?} must be an http(s) URL with a host"
            )));
        }
    }
    Ok(())
}

pub fn app(registry: Registry) -> Router {
    let config = kv::router(registry.kv.clone()).merge(super::locks::router(registry.kv.clone()));
    Router::new()
        .route("/instances", post(register_handler))
        .route("/instances/{id}", axum::routing::delete(deregister_handler))
        .route("/instances/{id}/heartbeat", put(heartbeat_handler))
        .route(
            "/services",
            get(|State(r): State<Registry>| async move { Json(r.all()) }),
        )
        .route("/services/{name}", get(service_handler))
        .route(
            "/services/{name}/routing",
            get(
                |State(r): State<Registry>, Path(name): Path<String>| async move {
                    r.routing(&name).map(Json).map_err(ApiError::from)
                },
            ),
        )
        .route(
            "/admin/weights",
            get(|State(r): State<Registry>| async move { Json(r.weights()) }),
        )
        .route(
            "/admin/weights/{name}",
            put(set_weights_handler).delete(
                |State(r): State<Registry>, Path(name): Path<String>| async move {
                    r.clear_weights(&name);
                    StatusCode::NO_CONTENT
                },
            ),
        )
        .route("/health/live", get(live))
        // Its one database is opened before it serves: it is ready as soon as it answers.
        .route("/health/ready", get(live))
        .with_state(registry)
        .merge(config)
        // It calls no upstream: its resilience report is empty, in every service's format.
        .route(
            "/admin/resilience",
            get(|| async { Json(ResilienceReport::default()) }),
        )
}

async fn register_handler(
    State(r): State<Registry>,
    reg: Body<Registration>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let id = r.register(body(reg)?)?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            id,
            ttl_ms: r.config.ttl.as_millis() as u64,
            heartbeat_interval_ms: (r.config.ttl / 3).as_millis() as u64,
        }),
    ))
}

async fn heartbeat_handler(
    State(r): State<Registry>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    Ok(r.heartbeat(id).map(|()| StatusCode::NO_CONTENT)?)
}

async fn deregister_handler(
    State(r): State<Registry>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    Ok(r.deregister(id).map(|()| StatusCode::NO_CONTENT)?)
}

async fn set_weights_handler(
    State(r): State<Registry>,
    Path(name): Path<String>,
    weights: Body<Weights>,
) -> Result<Json<Weights>, ApiError> {
    Ok(r.set_weights(&name, body(weights)?).map(Json)?)
}

async fn service_handler(
    State(r): State<Registry>,
    Path(name): Path<String>,
) -> Result<Json<Vec<InstanceView>>, ApiError> {
    Ok(r.healthy(&name).map(Json)?)
}

/// Serves the registry on `listener`, evicting and health-checking in the background,
/// until `shutdown` resolves; the background work is stopped and joined before it returns.
pub async fn run(
    registry: Registry,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let background = {
        let r = registry.clone();
        tokio::spawn(async move {
            let mut evict =
                tokio::time::interval((r.config.ttl / 4).max(Duration::from_millis(10)));
            let mut health = tokio::time::interval(r.config.health_interval);
            // Sessions whose TTL passed end within this of it (Consul allows itself twice
            // the TTL).
            let mut sessions = tokio::time::interval(Duration::from_millis(250));
            // The weights in the configuration store, taken at start and on each change.
            let mut weights_seen = BTreeMap::new();
            let mut weights_index = 0;
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    changed = r.kv.changed_after(weights_index, Duration::from_secs(10)) => {
                        if changed || weights_index == 0 {
                            weights_index = r.kv.index();
                            r.follow_weights(&mut weights_seen);
                        }
                    }
                    _ = evict.tick() => { r.evict_silent(); }
                    _ = sessions.tick() => {
                        if let Err(e) = r.kv.end_expired_sessions().await {
                            tracing::warn!(error = %e, "ending expired sessions failed; trying again");
                        }
                    }
                    _ = health.tick(), if r.config.health_checks => r.check_health().await,
                }
            }
        })
    };
    let result = axum::serve(listener, app(registry))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop.send(true);
    let _ = background.await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str) -> Registration {
        Registration {
            name: name.into(),
            address: "http://127.0.0.1:9".into(),
            version: "1.0.0".into(),
            health_url: "http://127.0.0.1:9/health/ready".into(),
            shard: None,
        }
    }

    /// On tokio's paused clock: a silent instance goes at the TTL, not before, and a
    /// heartbeat starts its TTL again.
    #[tokio::test(start_paused = true)]
    async fn a_silent_instance_is_evicted_at_the_ttl_and_not_before() {
        let r = Registry::new(RegistryConfig {
            ttl: Duration::from_secs(30),
            ..RegistryConfig::default()
        });
        let quiet = r.register(reg("inventory")).expect("registers");
        let chatty = r.register(reg("inventory")).expect("registers");
        tokio::time::advance(Duration::from_secs(29)).await;
        r.heartbeat(chatty).expect("known");
        assert_eq!(r.evict_silent(), 0, "29 s of silence is within the TTL");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(r.evict_silent(), 1, "31 s of silence is past it");
        let left: Vec<Uuid> = r.all().iter().map(|i| i.id).collect();
        assert_eq!(left, [chatty]);
        assert!(
            r.heartbeat(quiet).is_err(),
            "an evicted instance is unknown"
        );
    }

    #[test]
    fn registrations_are_validated() {
        let r = Registry::new(RegistryConfig::default());
        assert!(r.register(reg("inventory")).is_ok());
        let err = r.register(reg("Inventory Service")).expect_err("bad name");
        assert!(err.to_string().contains("a-z, 0-9 and -"), "{err}");
        let mut bad = reg("orders");
        bad.address = "not a url".into();
        assert!(
            r.register(bad)
                .expect_err("bad address")
                .to_string()
                .contains("address")
        );
        let mut ftp = reg("orders");
        ftp.health_url = "ftp://127.0.0.1/health".into();
        assert!(r.register(ftp).is_err());
    }

    #[test]
    fn unknown_services_and_instances_are_errors_not_empty_answers() {
        let r = Registry::new(RegistryConfig::default());
        assert!(matches!(
            r.healthy("nobody"),
            Err(RegistryError::UnknownService(_))
        ));
        let id = Uuid::now_v7();
        assert!(matches!(
            r.heartbeat(id),
            Err(RegistryError::UnknownInstance(_))
        ));
    }

    /// The configuration store's weights key sets the service's weights; a change through
    /// the admin route stands until the key changes again; the key gone clears them.
    #[tokio::test]
    async fn the_weights_key_sets_and_clears_a_services_weights() {
        let r = Registry::new(RegistryConfig::default());
        r.register(reg("inventory")).expect("registered");
        let key = format!("{WEIGHTS_PREFIX}inventory");
        let w = |pairs: &[(&str, u32)]| {
            Weights(pairs.iter().map(|(v, n)| (v.to_string(), *n)).collect())
        };
        let mut seen = BTreeMap::new();
        r.kv.put(&key, br#"{"v1": 90, "v2": 10}"#.to_vec())
            .await
            .expect("put");
        r.follow_weights(&mut seen);
        let canary = w(&[("v1", 90), ("v2", 10)]);
        assert_eq!(r.routing("inventory").expect("known").weights, canary);
        r.set_weights("inventory", w(&[("1.0.0", 100)]))
            .expect("the admin route's change");
        r.follow_weights(&mut seen);
        assert_eq!(
            r.routing("inventory").expect("known").weights,
            w(&[("1.0.0", 100)]),
            "an unchanged key does not undo it"
        );
        r.kv.delete(&key).await.expect("delete");
        r.follow_weights(&mut seen);
        assert!(r.routing("inventory").expect("known").weights.is_empty());
    }

    #[test]
    fn weights_are_refused_unless_they_add_up_and_name_running_versions() {
        let r = Registry::new(RegistryConfig::default());
        let mut v2 = reg("inventory");
        v2.version = "2.0.0".into();
        r.register(reg("inventory")).expect("v1");
        r.register(v2).expect("v2");
        let w = |pairs: &[(&str, u32)]| {
            Weights(pairs.iter().map(|(v, n)| (v.to_string(), *n)).collect())
        };
        let set = r
            .set_weights("inventory", w(&[("1.0.0", 90), ("2.0.0", 10)]))
            .expect("valid");
        assert_eq!(r.routing("inventory").expect("known").weights, set);
        let err = r
            .set_weights("inventory", w(&[("1.0.0", 90), ("3.0.0", 10)]))
            .expect_err("3.0.0 runs nowhere");
        assert!(matches!(err, RegistryError::BadWeights(_)), "{err}");
        assert!(err.to_string().contains("(running: 1.0.0, 2.0.0)"), "{err}");
        assert_eq!(
            r.routing("inventory").expect("known").weights,
            set,
            "a refused change leaves the weights as they were"
        );
        assert!(matches!(
            r.set_weights("warehouse", w(&[("1.0.0", 100)])),
            Err(RegistryError::UnknownService(_))
        ));
        r.clear_weights("inventory");
        assert!(r.routing("inventory").expect("known").weights.is_empty());
    }

    #[test]
    fn silent_instances_are_evicted_after_the_ttl() {
        let r = Registry::new(RegistryConfig {
            ttl: Duration::ZERO,
            ..RegistryConfig::default()
        });
        r.register(reg("payments")).expect("registered");
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(r.evict_silent(), 1);
        assert!(r.all().is_empty());
    }
}
