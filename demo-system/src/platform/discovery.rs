//! Client-side discovery and load balancing: where a call to an upstream goes. An
//! [`Endpoint`] is either a fixed base URL (tests, contract tests, tools) or a service
//! found through the registry: its healthy instances (cached briefly; a stale list beats
//! none while the registry is down), taken round-robin, skipping for a while an instance
//! that could not be reached (outlier ejection), so retries land elsewhere at once instead
//! of waiting for the registry to notice. When the registry holds version weights for the
//! service (a canary, a blue-green switch), each call first picks a version by its weight
//! (smooth weighted round-robin), then an instance of that version round-robin. Under `gauntlet demo --chaos`, an instance found
//! is reached through the chaos proxy of its edge ([`Routes`]), while the registry (and its
//! health checks) still see the instance itself, so a killed instance is still noticed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use crate::platform::lock;
use crate::platform::sharding::Shard;
use crate::registry::client::{RegistryClient, RegistryClientError};
use crate::registry::weights::{SmoothWeights, Weights};
use crate::topology::{InstanceId, Service};

/// Discovery settings, shared by every service that calls another.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// How long a registry answer is reused, in milliseconds.
    pub ttl_ms: u64,
    /// How long an instance that could not be reached is skipped, in milliseconds.
    pub eject_ms: u64,
    /// Spread calls round-robin over the instances; `false` (`--disable load-balancing`):
    /// every call goes to the first usable instance.
    pub load_balancing: bool,
    /// A sharded service's data is split over its instances, and a call for a key goes to
    /// the instance of its shard; `false` (`--disable sharding`): the first instance holds
    /// every key.
    pub sharding: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            ttl_ms: 1_000,
            eject_ms: 5_000,
            load_balancing: true,
            sharding: true,
        }
    }
}

/// Chaos routing: instance base URL → the base URL of the proxy on this consumer's edge to
/// it. Empty outside `--chaos`.
pub type Routes = HashMap<String, String>;

/// Where an upstream's calls go.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// Always this base URL.
    Fixed(String),
    /// The healthy instances of `service` that `discovery` finds.
    Discovered {
        service: Service,
        discovery: Discovery,
    },
    /// The instance of a sharded `service` that holds shard `index`: no other will do.
    Shard {
        service: Service,
        index: u16,
        discovery: Discovery,
    },
}

impl Endpoint {
    pub fn fixed(base_url: &str) -> Self {
        Self::Fixed(base_url.trim_end_matches('/').to_string())
    }

    /// The base URL for the next call.
    pub async fn resolve(&self) -> Result<String, String> {
        match self {
            Self::Fixed(url) => Ok(url.clone()),
            Self::Discovered { service, discovery } => discovery.pick(*service).await,
            Self::Shard {
                service,
                index,
                discovery,
            } => discovery.pick_shard(*service, *index).await,
        }
    }

    /// The shard this endpoint is bound to, if it is one.
    pub fn shard(&self) -> Option<u16> {
        match self {
            Self::Shard { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// Reports that `base` could not be reached.
    pub fn failed(&self, base: &str) {
        if let Self::Discovered { discovery, .. } = self {
            discovery.eject(base);
        }
    }

    /// Calls made so far to the instances of `service` (for a shard: to its instance).
    fn calls_of(
        discovery: &Discovery,
        service: Service,
        only: Option<&str>,
    ) -> BTreeMap<String, u64> {
        let mut calls = discovery.calls_of(service);
        if let Some(address) = only {
            calls.retain(|a, _| a == address);
        }
        calls
    }

    /// Calls made so far per instance (empty for a fixed endpoint).
    pub fn calls_per_instance(&self) -> BTreeMap<String, u64> {
        match self {
            Self::Fixed(_) => BTreeMap::new(),
            Self::Discovered { service, discovery } => Self::calls_of(discovery, *service, None),
            Self::Shard {
                service,
                index,
                discovery,
            } => {
                let address = discovery.shard_address(*service, *index);
                match address {
                    Some(a) => Self::calls_of(discovery, *service, Some(&a)),
                    None => BTreeMap::new(),
                }
            }
        }
    }
}

/// A service's view of the registry; cheap to clone (clones share the cache).
#[derive(Clone)]
pub struct Discovery {
    inner: Arc<Inner>,
}

/// An instance as discovery keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    /// Base URL, without a trailing slash.
    address: String,
    version: String,
    shard: Option<Shard>,
}

/// A service's routing, as the registry last gave it.
#[derive(Debug, Clone, Default)]
struct Known {
    instances: Vec<Found>,
    weights: Weights,
}

struct Inner {
    registry: RegistryClient,
    config: DiscoveryConfig,
    /// Service → when the registry was asked, and what it answered.
    cache: Mutex<HashMap<Service, (Instant, Known)>>,
    /// Round-robin position per service and version ("" without weights).
    next: Mutex<HashMap<(Service, String), usize>>,
    /// The weighted choice of a version, per service.
    versions: Mutex<HashMap<Service, SmoothWeights>>,
    /// Instance base URL → until when it is skipped.
    ejected: Mutex<HashMap<String, Instant>>,
    /// Calls per service and instance, for `/admin/resilience`.
    calls: Mutex<HashMap<Service, BTreeMap<String, u64>>>,
    /// Instance → proxy (chaos), and back.
    routes: Routes,
    unroutes: Routes,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("registry", &self.inner.registry.base())
            .finish()
    }
}

impl Discovery {
    pub fn new(registry: RegistryClient, config: DiscoveryConfig) -> Self {
        Self::routed(registry, config, Routes::new())
    }

    /// Discovery whose calls to an instance go through the proxy `routes` names for it.
    pub fn routed(registry: RegistryClient, config: DiscoveryConfig, routes: Routes) -> Self {
        let unroutes = routes.iter().map(|(k, v)| (v.clone(), k.clone())).collect();
        Self {
            inner: Arc::new(Inner {
                registry,
                config,
                cache: Mutex::new(HashMap::new()),
                next: Mutex::new(HashMap::new()),
                versions: Mutex::new(HashMap::new()),
                ejected: Mutex::new(HashMap::new()),
                calls: Mutex::new(HashMap::new()),
                routes,
                unroutes,
            }),
        }
    }

    /// The same registry, settings and routes, with a cache, round-robin positions,
    /// ejections and call counts of its own: for calls that must not be counted as the
    /// service's own (the gateway's mirrored reads).
    pub fn separate(&self) -> Self {
        let i = &self.inner;
        Self::routed(i.registry.clone(), i.config, i.routes.clone())
    }

    /// An endpoint for `service` through this discovery.
    pub fn endpoint(&self, service: Service) -> Endpoint {
        Endpoint::Discovered {
            service,
            discovery: self.clone(),
        }
    }

    pub fn registry(&self) -> &RegistryClient {
        &self.inner.registry
    }

    /// How many shards `service`'s data is split into, as this discovery routes (1 for a
    /// service not sharded, or with sharding off).
    pub fn shards(&self, service: Service) -> u16 {
        InstanceId::shards(service, self.inner.config.sharding)
    }

    /// One endpoint per shard of `service`, in shard order; one plain endpoint for a
    /// service that is not sharded.
    pub fn shard_endpoints(&self, service: Service) -> Vec<Endpoint> {
        if !service.sharded() {
            return vec![self.endpoint(service)];
        }
        (1..=self.shards(service))
            .map(|index| Endpoint::Shard {
                service,
                index,
                discovery: self.clone(),
            })
            .collect()
    }

    /// The base URL of the healthy instance that holds shard `index` of `service`: the
    /// one place its keys are, so an instance that is down is an error at once (never
    /// another shard, which would answer for keys it does not hold).
    pub async fn pick_shard(&self, service: Service, index: u16) -> Result<String, String> {
        let known = self.instances(service).await?;
        let of = self.shards(service);
        let chosen = known
            .instances
            .iter()
            .find(|f| f.shard == Some(Shard { index, of }))
            .map(|f| f.address.clone())
            .ok_or_else(|| {
                format!("no healthy instance of {service} holds shard {index} of {of}")
            })?;
        *lock(&self.inner.calls)
            .entry(service)
            .or_default()
            .entry(chosen.clone())
            .or_insert(0) += 1;
        Ok(self.inner.routes.get(&chosen).cloned().unwrap_or(chosen))
    }

    /// The instance last known to hold shard `index` of `service`.
    fn shard_address(&self, service: Service, index: u16) -> Option<String> {
        let of = self.shards(service);
        let cache = lock(&self.inner.cache);
        let (_, known) = cache.get(&service)?;
        known
            .instances
            .iter()
            .find(|f| f.shard == Some(Shard { index, of }))
            .map(|f| f.address.clone())
    }

    /// Healthy instances of `service` and its version weights, from the registry or its
    /// recent answer.
    async fn instances(&self, service: Service) -> Result<Known, String> {
        let ttl = Duration::from_millis(self.inner.config.ttl_ms);
        let cached = lock(&self.inner.cache).get(&service).cloned();
        if let Some((at, known)) = &cached
            && at.elapsed() < ttl
            && !known.instances.is_empty()
        {
            return Ok(known.clone());
        }
        match self.inner.registry.routing(service.name()).await {
            Ok(routing) => {
                let known = Known {
                    instances: routing
                        .instances
                        .into_iter()
                        .map(|i| Found {
                            address: i.address.trim_end_matches('/').to_string(),
                            version: i.version,
                            shard: i.shard,
                        })
                        .collect(),
                    weights: routing.weights,
                };
                lock(&self.inner.cache).insert(service, (Instant::now(), known.clone()));
                if known.instances.is_empty() {
                    return Err(format!("no healthy instance of {service} is registered"));
                }
                Ok(known)
            }
            Err(RegistryClientError::Refused { status: 404, .. }) => {
                lock(&self.inner.cache).insert(service, (Instant::now(), Known::default()));
                Err(format!("no instance of {service} has registered"))
            }
            // The registry is unreachable: a stale list beats no list.
            Err(e) => cached
                .map(|(_, k)| k)
                .filter(|k| !k.instances.is_empty())
                .ok_or_else(|| format!("no instance of {service} is known ({e})")),
        }
    }

    /// The base URL of the next instance of `service`: a version by its weight, if the
    /// service has weights, then round-robin over that version's instances not ejected
    /// (over all of them if every one is: better a doubtful instance than none).
    pub async fn pick(&self, service: Service) -> Result<String, String> {
        let known = self.instances(service).await?;
        let usable: Vec<&Found> = {
            let mut ejected = lock(&self.inner.ejected);
            let now = Instant::now();
            ejected.retain(|_, until| *until > now);
            known
                .instances
                .iter()
                .filter(|f| !ejected.contains_key(&f.address))
                .collect()
        };
        let usable = if usable.is_empty() {
            known.instances.iter().collect()
        } else {
            usable
        };
        let (version, list) = self.of_version(service, &known.weights, usable);
        let chosen = {
            let mut next = lock(&self.inner.next);
            let n = next.entry((service, version)).or_insert(0);
            let chosen = list[*n % list.len()].clone();
            if self.inner.config.load_balancing {
                *n = n.wrapping_add(1);
            }
            chosen
        };
        *lock(&self.inner.calls)
            .entry(service)
            .or_default()
            .entry(chosen.clone())
            .or_insert(0) += 1;
        Ok(self.inner.routes.get(&chosen).cloned().unwrap_or(chosen))
    }

    /// The version the next call goes to ("" without weights) and its usable instances'
    /// addresses; every usable instance when no version given calls has one.
    fn of_version(
        &self,
        service: Service,
        weights: &Weights,
        usable: Vec<&Found>,
    ) -> (String, Vec<String>) {
        let addresses = |only: Option<&str>| -> Vec<String> {
            usable
                .iter()
                .filter(|f| only.is_none_or(|v| f.version == v))
                .map(|f| f.address.clone())
                .collect()
        };
        if weights.is_empty() {
            return (String::new(), addresses(None));
        }
        let available: BTreeSet<&str> = usable.iter().map(|f| f.version.as_str()).collect();
        let picked = lock(&self.inner.versions)
            .entry(service)
            .or_default()
            .pick(weights, &available);
        match picked {
            Some(v) => {
                let list = addresses(Some(&v));
                (v, list)
            }
            None => {
                tracing::warn!(%service, %weights, "no instance of a version given calls is usable; calling any instance");
                (String::new(), addresses(None))
            }
        }
    }

    /// Skips `base` for the ejection period.
    pub fn eject(&self, base: &str) {
        let base = self.inner.unroutes.get(base).map_or(base, String::as_str);
        let until = Instant::now() + Duration::from_millis(self.inner.config.eject_ms);
        tracing::warn!(instance = %base, "instance unreachable; skipping it for a while");
        lock(&self.inner.ejected).insert(base.to_string(), until);
    }

    fn calls_of(&self, service: Service) -> BTreeMap<String, u64> {
        lock(&self.inner.calls)
            .get(&service)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A discovery whose registry answer for inventory is already cached (the registry's
    /// address is never called while the answer is fresh).
    fn with_inventory(instances: &[&str], config: DiscoveryConfig) -> Discovery {
        let versioned: Vec<(&str, &str)> = instances.iter().map(|a| (*a, "v1")).collect();
        with_versions(&versioned, Weights::default(), config)
    }

    /// As [`with_inventory`], with each instance's version and the service's weights.
    fn with_versions(
        instances: &[(&str, &str)],
        weights: Weights,
        config: DiscoveryConfig,
    ) -> Discovery {
        let d = Discovery::new(RegistryClient::new("http://127.0.0.1:9"), config);
        let instances = instances
            .iter()
            .map(|(a, v)| Found {
                address: a.to_string(),
                version: v.to_string(),
                shard: None,
            })
            .collect();
        let known = Known { instances, weights };
        lock(&d.inner.cache).insert(Service::Inventory, (Instant::now(), known));
        d
    }

    /// A discovery whose cached answer for order-history lists `instances` with their
    /// shards, with sharding on or off.
    fn with_shards(instances: &[(&str, Shard)], sharding: bool) -> Discovery {
        let config = DiscoveryConfig {
            ttl_ms: 3_600_000,
            sharding,
            ..DiscoveryConfig::default()
        };
        let d = Discovery::new(RegistryClient::new("http://127.0.0.1:9"), config);
        let instances = instances
            .iter()
            .map(|(a, shard)| Found {
                address: a.to_string(),
                version: "v1".into(),
                shard: Some(*shard),
            })
            .collect();
        let known = Known {
            instances,
            weights: Weights::default(),
        };
        lock(&d.inner.cache).insert(Service::OrderHistory, (Instant::now(), known));
        d
    }

    /// Each shard's calls go to the instance that holds it, and only there: a shard whose
    /// instance is gone is an error naming it, never another shard's instance. With
    /// sharding off there is one shard, held by the first instance.
    #[tokio::test(start_paused = true)]
    async fn a_shards_calls_go_to_its_instance_and_nowhere_else() {
        let (s1, s2) = (Shard { index: 1, of: 2 }, Shard { index: 2, of: 2 });
        let d = with_shards(&[("http://a", s1), ("http://b", s2)], true);
        let ends = d.shard_endpoints(Service::OrderHistory);
        assert_eq!(ends.len(), 2);
        for _ in 0..3 {
            assert_eq!(ends[0].resolve().await.as_deref(), Ok("http://a"));
            assert_eq!(ends[1].resolve().await.as_deref(), Ok("http://b"));
        }
        assert_eq!(ends[1].calls_per_instance().get("http://b"), Some(&3));
        assert_eq!(
            ends[1].calls_per_instance().len(),
            1,
            "only its own instance"
        );
        let one_left = with_shards(&[("http://a", s1)], true);
        let ends = one_left.shard_endpoints(Service::OrderHistory);
        assert_eq!(ends[0].resolve().await.as_deref(), Ok("http://a"));
        assert_eq!(
            ends[1].resolve().await,
            Err("no healthy instance of order-history holds shard 2 of 2".to_string())
        );
        let off = with_shards(
            &[
                ("http://a", Shard { index: 1, of: 1 }),
                ("http://b", Shard { index: 2, of: 1 }),
            ],
            false,
        );
        let ends = off.shard_endpoints(Service::OrderHistory);
        assert_eq!(ends.len(), 1);
        assert_eq!(ends[0].resolve().await.as_deref(), Ok("http://a"));
        assert_eq!(off.shard_endpoints(Service::Inventory).len(), 1);
    }

    fn count(picked: &[String], address: &str) -> usize {
        picked.iter().filter(|p| *p == address).count()
    }

    /// 90/10 over three instances: the candidate gets its tenth, the two baseline
    /// instances split the rest evenly; a blue-green switch moves every call at once.
    #[tokio::test(start_paused = true)]
    async fn calls_follow_the_version_weights_and_a_switch_moves_them_all() {
        let config = DiscoveryConfig {
            ttl_ms: 3_600_000,
            ..DiscoveryConfig::default()
        };
        let w = |pairs: &[(&str, u32)]| {
            Weights(pairs.iter().map(|(v, n)| (v.to_string(), *n)).collect())
        };
        let instances = [("http://a", "v1"), ("http://b", "v1"), ("http://c", "v2")];
        let d = with_versions(&instances, w(&[("v1", 90), ("v2", 10)]), config);
        let got = picks(&d, 100).await;
        assert_eq!(count(&got, "http://c"), 10, "{got:?}");
        assert_eq!(count(&got, "http://a"), 45);
        assert_eq!(count(&got, "http://b"), 45);
        let green = with_versions(&instances, w(&[("v1", 0), ("v2", 100)]), config);
        assert_eq!(picks(&green, 20).await, ["http://c"; 20]);
        // The candidate unreachable: its share goes to the baseline, not to errors.
        d.eject("http://c");
        let got = picks(&d, 20).await;
        assert_eq!(count(&got, "http://c"), 0, "{got:?}");
    }

    async fn picks(d: &Discovery, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(d.pick(Service::Inventory).await.expect("an instance"));
        }
        out
    }

    /// On tokio's paused clock: an ejected instance is skipped for exactly the ejection
    /// period, then gets its turn again, with no real time spent waiting.
    #[tokio::test(start_paused = true)]
    async fn an_ejected_instance_is_skipped_for_the_ejection_period() {
        let config = DiscoveryConfig {
            ttl_ms: 3_600_000,
            eject_ms: 5_000,
            load_balancing: true,
            sharding: true,
        };
        let d = with_inventory(&["http://a", "http://b"], config);
        assert_eq!(picks(&d, 2).await, ["http://a", "http://b"]);
        d.eject("http://a");
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert_eq!(picks(&d, 3).await, ["http://b"; 3], "still ejected");
        tokio::time::advance(Duration::from_millis(2)).await;
        let back = picks(&d, 2).await;
        assert!(back.contains(&"http://a".to_string()), "{back:?}");
    }

    /// `--disable load-balancing`: every call to the first instance, until it is ejected.
    #[tokio::test(start_paused = true)]
    async fn without_load_balancing_every_call_goes_to_the_first_instance() {
        let config = DiscoveryConfig {
            ttl_ms: 3_600_000,
            eject_ms: 5_000,
            load_balancing: false,
            sharding: true,
        };
        let d = with_inventory(&["http://a", "http://b"], config);
        assert_eq!(picks(&d, 3).await, ["http://a"; 3]);
        d.eject("http://a");
        assert_eq!(picks(&d, 2).await, ["http://b"; 2]);
    }
}
