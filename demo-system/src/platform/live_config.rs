//! Externalized configuration, the services' side: the keys a service reads live from the
//! registry's key/value store (Consul's KV is the model: [`crate::registry::kv`]), what
//! each one may hold, and [`follow`], which blocks on the registry for changes under the
//! service's prefix and applies them to its upstream clients at once, no restart. A key
//! that is not set (or is deleted) gives the upstream back the setting it started with.
//!
//! The catalog ([`ConfigKey`]):
//! - `{consumer}/{provider}/retry/max_attempts` and `{consumer}/{provider}/timeout_ms` for
//!   the upstream clients of orders and the two BFFs (the gateway's clients are built
//!   inside it and read their settings from the file only);
//! - `gateway/shop_routes/{route}`, a feature flag: who answers one of the old shop's routes
//!   at the gateway (`legacy`, or the new service that replaces it: the strangler fig's
//!   switch, flipped and flipped back live);
//! - `registry/weights/{service}`, a service's version weights as JSON (`{"v1": 90, "v2":
//!   10}`: canary releases, blue-green switches), which the registry itself follows.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::gateway::strangler::ShopRoute;
use crate::registry::{RegistryClient, Weights};
use crate::topology::{EDGES, EdgeKind, Service};

use super::resilience::ResilienceConfig;

/// The services whose upstream clients follow the registry's keys.
pub const LIVE_SERVICES: [Service; 3] = [Service::Orders, Service::WebBff, Service::MobileBff];

/// What one key sets on an upstream client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Knob {
    /// Attempts per idempotent call, the first included: 1 to 10 (1: no retry).
    RetryMaxAttempts,
    /// The deadline of one attempt, in milliseconds: 1 to 600000.
    TimeoutMs,
}

impl Knob {
    const ALL: [Knob; 2] = [Knob::RetryMaxAttempts, Knob::TimeoutMs];

    fn path(self) -> &'static str {
        match self {
            Knob::RetryMaxAttempts => "retry/max_attempts",
            Knob::TimeoutMs => "timeout_ms",
        }
    }

    /// The value as the knob takes it, or why not.
    pub fn check(self, value: &str) -> Result<u64, String> {
        let (low, high) = match self {
            Knob::RetryMaxAttempts => (1, 10),
            Knob::TimeoutMs => (1, 600_000),
        };
        match value.trim().parse::<u64>() {
            Ok(n) if (low..=high).contains(&n) => Ok(n),
            _ => Err(format!(
                "{} takes a whole number from {low} to {high}, not {value:?}",
                self.path()
            )),
        }
    }
}

/// One key of the catalog: a knob of the client `consumer` calls `provider` with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveKey {
    pub consumer: Service,
    pub provider: Service,
    pub knob: Knob,
}

impl fmt::Display for LiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.consumer,
            self.provider,
            self.knob.path()
        )
    }
}

impl LiveKey {
    /// Every key a service follows, in a stable order.
    pub fn all() -> impl Iterator<Item = LiveKey> {
        EDGES
            .into_iter()
            .filter(|e| e.kind == EdgeKind::Http && LIVE_SERVICES.contains(&e.consumer))
            .flat_map(|e| {
                Knob::ALL.into_iter().map(move |knob| LiveKey {
                    consumer: e.consumer,
                    provider: e.provider,
                    knob,
                })
            })
    }
}

/// Any key of the catalog: what the registry accepts (a value checked as its reader would
/// take it) and `gauntlet demo config` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigKey {
    /// A knob of one upstream client.
    Upstream(LiveKey),
    /// Who answers one of the old shop's routes at the gateway.
    ShopRoute(ShopRoute),
    /// The version weights of a service that runs more than one version.
    Weights(Service),
}

/// Where the gateway's feature flags for the old shop's routes live.
pub const SHOP_ROUTES_PREFIX: &str = "gateway/shop_routes/";
/// Where the registry's version weights live.
pub const WEIGHTS_PREFIX: &str = "registry/weights/";

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigKey::Upstream(k) => k.fmt(f),
            ConfigKey::ShopRoute(r) => write!(f, "{SHOP_ROUTES_PREFIX}{}", r.name()),
            ConfigKey::Weights(s) => write!(f, "{WEIGHTS_PREFIX}{s}"),
        }
    }
}

impl ConfigKey {
    /// Every key of the catalog, in a stable order.
    pub fn all() -> impl Iterator<Item = ConfigKey> {
        let weighted = Service::ALL
            .into_iter()
            .filter(|s| Self::versions_of(*s).len() > 1);
        LiveKey::all()
            .map(ConfigKey::Upstream)
            .chain(ShopRoute::ALL.into_iter().map(ConfigKey::ShopRoute))
            .chain(weighted.map(ConfigKey::Weights))
    }

    /// The versions the instances registering as `service` run (from the topology).
    fn versions_of(service: Service) -> std::collections::BTreeSet<String> {
        Service::ALL
            .into_iter()
            .filter(|s| s.registers_as() == Some(service))
            .map(|s| s.version().to_string())
            .collect()
    }

    /// The catalog's key named `name`, or a message naming the keys there are.
    pub fn parse(name: &str) -> Result<ConfigKey, String> {
        Self::all().find(|k| k.to_string() == name).ok_or_else(|| {
            let known: Vec<String> = Self::all().map(|k| k.to_string()).collect();
            format!(
                "unknown configuration key {name:?}; the keys are: {}",
                known.join(", ")
            )
        })
    }

    /// Whether its reader would take `value`, and if not, why.
    pub fn check(&self, value: &str) -> Result<(), String> {
        match self {
            ConfigKey::Upstream(k) => k.knob.check(value).map(drop),
            ConfigKey::ShopRoute(route) => route_backend(*route, value).map(drop),
            ConfigKey::Weights(service) => weights_of(*service, value).map(drop),
        }
    }
}

/// Who answers `route`, as a value of its key says: `legacy` or the route's new owner.
pub fn route_backend(route: ShopRoute, value: &str) -> Result<Service, String> {
    let owner = route.new_owner();
    match value.trim() {
        v if v == Service::Legacy.name() => Ok(Service::Legacy),
        v if v == owner.name() => Ok(owner),
        other => Err(format!(
            "{SHOP_ROUTES_PREFIX}{} takes legacy or {owner}, not {other:?}",
            route.name()
        )),
    }
}

/// A service's weights as a value of its key gives them: JSON, version → percent, adding up
/// to 100, every version given calls one the service runs.
pub fn weights_of(service: Service, value: &str) -> Result<Weights, String> {
    let weights: Weights = serde_json::from_str(value).map_err(|e| {
        format!(
            "{WEIGHTS_PREFIX}{service} takes JSON, version to percent, e.g. {{\"v1\": 90, \"v2\": 10}}: {e}"
        )
    })?;
    weights.check(service.name(), &ConfigKey::versions_of(service))?;
    Ok(weights)
}

/// The live settings of one upstream client, read on every call; clones share them.
#[derive(Debug, Clone)]
pub struct Knobs {
    attempts: Arc<AtomicUsize>,
    /// 0: no deadline.
    timeout_ms: Arc<AtomicU64>,
    started_with: (usize, u64),
}

impl Knobs {
    /// The settings `config` gives (retries off: one attempt; timeouts off: none).
    pub fn from_config(config: &ResilienceConfig) -> Self {
        let attempts = if config.retry.enabled {
            config.retry.max_attempts.max(1)
        } else {
            1
        };
        let timeout_ms = if config.timeouts {
            config.timeout_ms
        } else {
            0
        };
        Self {
            attempts: Arc::new(AtomicUsize::new(attempts)),
            timeout_ms: Arc::new(AtomicU64::new(timeout_ms)),
            started_with: (attempts, timeout_ms),
        }
    }

    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::Relaxed)
    }

    pub fn timeout(&self) -> Option<Duration> {
        match self.timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// Sets `knob` to `value`, or back to what the client started with; whether it changed.
    fn set(&self, knob: Knob, value: Option<u64>) -> bool {
        match knob {
            Knob::RetryMaxAttempts => {
                let new = value.map_or(self.started_with.0, |v| v as usize);
                self.attempts.swap(new, Ordering::Relaxed) != new
            }
            Knob::TimeoutMs => {
                let new = value.unwrap_or(self.started_with.1);
                self.timeout_ms.swap(new, Ordering::Relaxed) != new
            }
        }
    }
}

/// A service's upstream clients, by provider, as [`follow`] tunes them.
pub type Tuned = Vec<(Service, Knobs)>;

/// Applies the registry's values under `service`'s prefix to `upstreams` (missing keys:
/// the started-with settings); each change logged.
fn apply(service: Service, upstreams: &Tuned, values: &[(String, String)]) {
    for (provider, knobs) in upstreams {
        for knob in Knob::ALL {
            let key = LiveKey {
                consumer: service,
                provider: *provider,
                knob,
            }
            .to_string();
            let raw = values.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
            let value = match raw.map(|v| knob.check(v)) {
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    tracing::warn!(%key, error = %e, "config.ignored: keeping the started-with setting");
                    None
                }
                None => None,
            };
            if knobs.set(knob, value) {
                let shown = value.map_or_else(|| "started-with".to_string(), |v| v.to_string());
                tracing::info!(event.name = "config.applied", %key, value = %shown, "config.applied");
            }
        }
    }
}

/// How long one blocking read of the registry waits for a change.
const WAIT: Duration = Duration::from_secs(10);

/// Follows `service`'s keys in the registry until `shutdown`, applying them to `upstreams`
/// (see [`watch`]).
pub async fn follow(
    registry: RegistryClient,
    service: Service,
    upstreams: Tuned,
    shutdown: impl Future<Output = ()>,
) {
    let prefix = format!("{service}/");
    watch(
        registry,
        &prefix,
        |values| apply(service, &upstreams, values),
        shutdown,
    )
    .await
}

/// Follows the keys under `prefix` until `shutdown`: a blocking read per change, each
/// answer (every key under the prefix, with its value) given to `apply`; backing off while
/// the registry is unreachable (what was applied stays).
pub async fn watch(
    registry: RegistryClient,
    prefix: &str,
    mut apply: impl FnMut(&[(String, String)]),
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut index = 0;
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            read = registry.kv_watch(prefix, index, WAIT) => match read {
                Ok((values, next)) => {
                    apply(&values);
                    // A registry that restarted counts from the beginning again.
                    index = if next < index { 0 } else { next };
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "configuration unavailable; retrying");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_values_are_checked() {
        let keys: Vec<String> = LiveKey::all().map(|k| k.to_string()).collect();
        assert!(keys.contains(&"orders/payments/retry/max_attempts".to_string()));
        assert!(keys.contains(&"web-bff/order-history/timeout_ms".to_string()));
        for k in ConfigKey::all() {
            assert_eq!(ConfigKey::parse(&k.to_string()), Ok(k));
        }
        let unknown = ConfigKey::parse("orders/payments/retry/tries").expect_err("unknown");
        assert!(
            unknown.contains("orders/payments/retry/max_attempts"),
            "{unknown}"
        );
        assert!(ConfigKey::parse("gateway/orders/timeout_ms").is_err());
        assert_eq!(Knob::RetryMaxAttempts.check("1"), Ok(1));
        assert!(Knob::RetryMaxAttempts.check("0").is_err());
        assert!(Knob::RetryMaxAttempts.check("three").is_err());
        assert!(Knob::TimeoutMs.check("600001").is_err());
    }

    /// The catalog's other keys: the gateway's route flags and the registry's weights,
    /// each value checked as its reader takes it.
    #[test]
    fn flags_and_weights_are_keys_with_checked_values() {
        let keys: Vec<String> = ConfigKey::all().map(|k| k.to_string()).collect();
        for k in [
            "gateway/shop_routes/order",
            "gateway/shop_routes/products",
            "registry/weights/inventory",
        ] {
            assert!(keys.contains(&k.to_string()), "{k} in {keys:?}");
        }
        assert!(
            !keys.contains(&"registry/weights/payments".to_string()),
            "one version only"
        );
        for k in ConfigKey::all() {
            assert_eq!(ConfigKey::parse(&k.to_string()), Ok(k));
        }
        let order = ConfigKey::parse("gateway/shop_routes/order").expect("a key");
        assert_eq!(order.check("orders"), Ok(()));
        assert_eq!(order.check("legacy"), Ok(()));
        let wrong = order.check("inventory").expect_err("not the route's owner");
        assert!(wrong.contains("legacy or orders"), "{wrong}");
        let weights = ConfigKey::Weights(Service::Inventory);
        assert_eq!(weights.check(r#"{"v1": 90, "v2": 10}"#), Ok(()));
        assert_eq!(weights.check(r#"{"v2": 100}"#), Ok(()));
        for bad in [r#"{"v1": 90}"#, r#"{"v3": 100}"#, "v1=90", "{}"] {
            assert!(weights.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_key_sets_its_knob_and_its_absence_gives_the_start_back() {
        let knobs = Knobs::from_config(&ResilienceConfig::default());
        let start = (knobs.attempts(), knobs.timeout());
        let tuned = vec![(Service::Payments, knobs.clone())];
        let set = |v: &str| {
            vec![(
                "orders/payments/retry/max_attempts".to_string(),
                v.to_string(),
            )]
        };
        apply(Service::Orders, &tuned, &set("1"));
        assert_eq!(knobs.attempts(), 1);
        apply(Service::Orders, &tuned, &set("not a number"));
        assert_eq!(knobs.attempts(), start.0, "a bad value keeps the start");
        apply(Service::Orders, &tuned, &set("1"));
        apply(Service::Orders, &tuned, &[]);
        assert_eq!((knobs.attempts(), knobs.timeout()), start);
    }
}
