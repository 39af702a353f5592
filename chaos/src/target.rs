//! The running demo an experiment acts on, found through its `demo.json`: the typed calls
//! to its supervisor, proxies, registry, services and collector that actions and probes
//! are made of.

use std::time::Duration;

use gauntlet_demo_system::config::Pattern;
use gauntlet_demo_system::handle::DemoHandle;
use gauntlet_demo_system::inventory::{CandidateFaults, InventoryClient, Reservation};
use gauntlet_demo_system::notifications::{Notification, NotificationQuery, NotificationsClient};
use gauntlet_demo_system::order_history::{OrderHistoryClient, OrderView};
use gauntlet_demo_system::orders::{Order, OrdersClient};
use gauntlet_demo_system::platform::client::ClientError as DemoClientError;
use gauntlet_demo_system::platform::client::HttpClient;
use gauntlet_demo_system::platform::resilience::{ResilienceConfig, ResilienceReport};
use gauntlet_demo_system::registry::{InstanceView, RegistryClient, RegistryClientError, Weights};
use gauntlet_demo_system::supervisor::{ActionDone, InstanceInfo};
use gauntlet_demo_system::topology::{Edge, InstanceId, Service};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::activity::Target;
use crate::canary::Endpoints;
use gauntlet_chaos_proxy::model::NewToxic;
use gauntlet_query_api::client::{ClientError, QueryClient};
use gauntlet_query_api::jaeger::Trace;
use gauntlet_query_api::params::TraceSearch;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("cannot reach {what} at {url}: {reason}")]
    Unreachable {
        what: String,
        url: String,
        reason: String,
    },
    #[error("{what} at {url} answered {status}: {message}")]
    Refused {
        what: String,
        url: String,
        status: u16,
        message: String,
    },
    #[error(
        "the demo was started without --chaos, so it has no proxies to put faults on: run `gauntlet demo --chaos`"
    )]
    NoChaos,
    #[error(
        "the demo has no proxy for {0}: was it started with `gauntlet demo --chaos` by this version?"
    )]
    NoProxy(String),
    #[error(
        "the demo sends its telemetry to a collector whose query API it does not know (started with --collector?): collector probes need `gauntlet demo` to run its own"
    )]
    NoCollector,
    #[error("the demo has no {0} (see demo.json)")]
    NoInstance(String),
}

/// A demo, as `demo.json` describes it.
#[derive(Debug, Clone)]
pub struct Demo {
    pub handle: DemoHandle,
    http: reqwest::Client,
}

/// A call's answer: parsed, or the reason in words.
async fn answer<T: DeserializeOwned>(
    what: &str,
    url: &str,
    sent: reqwest::Result<reqwest::Response>,
) -> Result<T, TargetError> {
    let unreachable = |reason: String| TargetError::Unreachable {
        what: what.to_string(),
        url: url.to_string(),
        reason,
    };
    let r = sent.map_err(|e| unreachable(e.to_string()))?;
    let status = r.status();
    let body = r.bytes().await.map_err(|e| unreachable(e.to_string()))?;
    if !status.is_success() {
        return Err(TargetError::Refused {
            what: what.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
            message: gauntlet_demo_system::platform::client::error_message(&body),
        });
    }
    // An empty body (204) reads as null.
    let body: &[u8] = if body.is_empty() { b"null" } else { &body };
    serde_json::from_slice(body).map_err(|e| unreachable(format!("unexpected answer: {e}")))
}

impl Demo {
    pub fn new(handle: DemoHandle) -> Self {
        Self {
            handle,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The base URL of one instance.
    pub fn url_of(&self, id: InstanceId) -> Result<String, TargetError> {
        self.handle
            .services
            .get(id.service.name())
            .and_then(|urls| urls.get(usize::from(id.ordinal.saturating_sub(1))))
            .cloned()
            .ok_or_else(|| TargetError::NoInstance(id.to_string()))
    }

    /// Base URLs of every instance of a service.
    pub fn urls_of(&self, service: Service) -> Vec<String> {
        self.handle
            .services
            .get(service.name())
            .cloned()
            .unwrap_or_default()
    }

    /// `gateway`, `collector`, `supervisor`, or an instance.
    pub fn target_url(&self, target: &Target) -> Result<String, TargetError> {
        match target {
            Target::Gateway => Ok(self.handle.gateway.clone()),
            Target::Supervisor => Ok(self.handle.supervisor.clone()),
            Target::Collector => self.collector_api(),
            Target::Instance(id) => self.url_of(*id),
        }
    }

    fn collector_api(&self) -> Result<String, TargetError> {
        self.handle
            .collector
            .api
            .clone()
            .ok_or(TargetError::NoCollector)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `POST /instances/{id}/{action}` on the supervisor.
    pub async fn supervise(&self, id: InstanceId, action: &str) -> Result<ActionDone, TargetError> {
        let url = format!("{}/instances/{id}/{action}", self.handle.supervisor);
        // A restart waits for readiness, which may take a while.
        let sent = self
            .http
            .post(&url)
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        answer("the supervisor", &url, sent).await
    }

    /// SIGKILLs `id`'s process directly, as a crash would end it; its PID.
    pub async fn crash(&self, id: InstanceId) -> Result<u32, TargetError> {
        let url = format!("{}/instances", self.handle.supervisor);
        let sent = self.http.get(&url).send().await;
        let listed: Vec<InstanceInfo> = answer("the supervisor", &url, sent).await?;
        let name = id.to_string();
        let pid = listed
            .iter()
            .find(|i| i.id == name)
            .and_then(|i| i.pid)
            .ok_or_else(|| TargetError::NoInstance(format!("running process of {name}")))?;
        let signalled = i32::try_from(pid)
            .map_err(|e| e.to_string())
            .and_then(|p| kill(Pid::from_raw(p), Signal::SIGKILL).map_err(|e| e.to_string()));
        signalled.map_err(|reason| TargetError::Unreachable {
            what: format!("{name}'s process {pid}"),
            url,
            reason,
        })?;
        Ok(pid)
    }

    pub async fn resilience(&self, base: &str) -> Result<ResilienceReport, TargetError> {
        let url = format!("{base}/admin/resilience");
        answer("/admin/resilience", &url, self.http.get(&url).send().await).await
    }

    fn registry(&self) -> Result<RegistryClient, TargetError> {
        self.urls_of(Service::Registry)
            .into_iter()
            .next()
            .map(|base| RegistryClient::new(&base))
            .ok_or_else(|| TargetError::NoInstance("registry".into()))
    }

    /// Sets `service`'s version weights in the registry; the weights it now uses.
    pub async fn set_weights(
        &self,
        service: Service,
        weights: &Weights,
    ) -> Result<Weights, TargetError> {
        let registry = self.registry()?;
        registry
            .set_weights(service.name(), weights)
            .await
            .map_err(|e| TargetError::Unreachable {
                what: "the registry".into(),
                url: registry.base().to_string(),
                reason: e.to_string(),
            })
    }

    /// Replaces a candidate instance's faults (`PUT /admin/candidate`).
    pub async fn set_candidate_faults(
        &self,
        id: InstanceId,
        faults: &CandidateFaults,
    ) -> Result<CandidateFaults, TargetError> {
        let url = format!("{}/admin/candidate", self.url_of(id)?);
        let sent = self.http.put(&url).json(faults).send().await;
        answer(&format!("{id}'s /admin/candidate"), &url, sent).await
    }

    /// The registry and the collector, for the automated canary.
    pub fn canary_endpoints(&self) -> Result<Endpoints, TargetError> {
        Ok(Endpoints {
            registry: self.registry()?,
            collector: QueryClient::new(&self.collector_api()?, None, Duration::from_secs(10)),
        })
    }

    /// The instances the registry lists as healthy.
    pub async fn healthy(&self, service: Service) -> Result<Vec<InstanceView>, TargetError> {
        let base = self
            .urls_of(Service::Registry)
            .into_iter()
            .next()
            .ok_or_else(|| TargetError::NoInstance("registry".into()))?;
        RegistryClient::new(&base)
            .healthy(service.name())
            .await
            .or_else(|e| match e {
                // Never registered: none healthy.
                RegistryClientError::Refused { status: 404, .. } => Ok(Vec::new()),
                e => Err(TargetError::Unreachable {
                    what: "the registry".into(),
                    url: base.clone(),
                    reason: e.to_string(),
                }),
            })
    }

    /// The proxies on `edge` (all of them, or the one in front of `instance`); with no
    /// edge, every proxy in front of `instance`.
    pub fn proxies(
        &self,
        edge: Option<&Edge>,
        instance: Option<InstanceId>,
    ) -> Result<Vec<String>, TargetError> {
        let chaos = self.handle.chaos.as_ref().ok_or(TargetError::NoChaos)?;
        let (edge, instance) = match (edge, instance) {
            (Some(e), i) => (e, i),
            (None, Some(id)) => return self.proxies_in_front_of(id),
            (None, None) => return Err(TargetError::NoProxy("no edge or instance".into())),
        };
        let edge_name = edge.name();
        let names: Vec<String> = match instance {
            Some(id) => vec![edge.proxy_name(id)],
            None => edge
                .provider_instances()
                .map(|id| edge.proxy_name(id))
                .filter(|n| chaos.proxies.contains_key(n))
                .collect(),
        };
        if names.is_empty() || names.iter().any(|n| !chaos.proxies.contains_key(n)) {
            return Err(TargetError::NoProxy(edge_name));
        }
        Ok(names)
    }

    /// Every link between a service and the event broker (`orders_to_rabbitmq`, ...).
    pub fn broker_proxies(&self) -> Result<Vec<String>, TargetError> {
        let chaos = self.handle.chaos.as_ref().ok_or(TargetError::NoChaos)?;
        let names: Vec<String> = gauntlet_demo_system::topology::BROKER_CLIENTS
            .into_iter()
            .map(gauntlet_demo_system::topology::broker_proxy_name)
            .filter(|n| chaos.proxies.contains_key(n))
            .collect();
        if names.is_empty() {
            return Err(TargetError::NoProxy(
                "the links to the broker (start the demo with --broker rabbitmq --chaos)".into(),
            ));
        }
        Ok(names)
    }

    /// Every proxy whose upstream is `id`: its callers' and the registry's health checks.
    fn proxies_in_front_of(&self, id: InstanceId) -> Result<Vec<String>, TargetError> {
        let chaos = self.handle.chaos.as_ref().ok_or(TargetError::NoChaos)?;
        let url = self.url_of(id)?;
        let addr = url.trim_start_matches("http://").trim_end_matches('/');
        let names: Vec<String> = chaos
            .proxies
            .iter()
            .filter(|(_, route)| route.upstream == addr)
            .map(|(name, _)| name.clone())
            .collect();
        if names.is_empty() {
            return Err(TargetError::NoProxy(format!("any edge to {id}")));
        }
        Ok(names)
    }

    fn chaos_api(&self) -> Result<&str, TargetError> {
        self.handle
            .chaos
            .as_ref()
            .map(|c| c.api.as_str())
            .ok_or(TargetError::NoChaos)
    }

    pub async fn add_toxic(&self, proxy: &str, toxic: &NewToxic) -> Result<(), TargetError> {
        let url = format!("{}/proxies/{proxy}/toxics", self.chaos_api()?);
        let sent = self.http.post(&url).json(toxic).send().await;
        answer::<IgnoredAny>("the chaos proxy API", &url, sent)
            .await
            .map(drop)
    }

    /// Removes a toxic; `false` if it was not there.
    pub async fn remove_toxic(&self, proxy: &str, toxic: &str) -> Result<bool, TargetError> {
        let url = format!("{}/proxies/{proxy}/toxics/{toxic}", self.chaos_api()?);
        let sent = self.http.delete(&url).send().await;
        match answer::<IgnoredAny>("the chaos proxy API", &url, sent).await {
            Ok(_) => Ok(true),
            Err(TargetError::Refused { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn set_enabled(&self, proxy: &str, enabled: bool) -> Result<(), TargetError> {
        let url = format!("{}/proxies/{proxy}", self.chaos_api()?);
        let sent = self
            .http
            .post(&url)
            .json(&serde_json::json!({ "enabled": enabled }))
            .send()
            .await;
        answer::<IgnoredAny>("the chaos proxy API", &url, sent)
            .await
            .map(drop)
    }

    /// Traces with a span of `service` between `start_us` and `end_us` (microseconds),
    /// at most as many as the query API answers at once.
    pub async fn traces(
        &self,
        service: &str,
        operation: Option<&str>,
        tags: &std::collections::BTreeMap<String, String>,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<Trace>, TargetError> {
        let collector = QueryClient::new(&self.collector_api()?, None, Duration::from_secs(10));
        let search = TraceSearch {
            service: service.to_string(),
            operation: operation.map(str::to_string),
            tags: tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            start_ns: Some(start_us.saturating_mul(1000)),
            end_ns: Some(end_us.saturating_mul(1000)),
            limit: Some(TraceSearch::MAX_LIMIT),
            ..Default::default()
        };
        collector
            .traces(&search)
            .await
            .map_err(|e| collector_error(e, "the collector"))
    }

    /// A PromQL expression's value now, from the collector's Prometheus API.
    pub async fn promql(
        &self,
        query: &str,
    ) -> Result<gauntlet_query_api::prometheus::QueryData, TargetError> {
        let collector = QueryClient::new(&self.collector_api()?, None, Duration::from_secs(10));
        collector
            .promql(query, None)
            .await
            .map_err(|e| collector_error(e, "the collector's PromQL"))
    }

    fn client(&self, service: Service) -> Result<HttpClient, TargetError> {
        let base = self
            .urls_of(service)
            .into_iter()
            .next()
            .ok_or_else(|| TargetError::NoInstance(service.name().into()))?;
        Self::client_at(service, base, ResilienceConfig::default().timeout_ms)
    }

    /// A probe looks once: no retries, no breaker of its own.
    fn client_at(
        service: Service,
        base: String,
        timeout_ms: u64,
    ) -> Result<HttpClient, TargetError> {
        let mut config = ResilienceConfig::default();
        config.retry.enabled = false;
        config.circuit_breaker.enabled = false;
        config.timeout_ms = timeout_ms;
        HttpClient::at(service.name(), &base, &config).map_err(|e| TargetError::Unreachable {
            what: service.name().into(),
            url: base,
            reason: e.to_string(),
        })
    }

    /// The customer's orders, from the first orders instance that answers within 2 s (one
    /// may be paused by the experiment).
    pub async fn orders_of(&self, customer: &str) -> Result<Vec<Order>, TargetError> {
        let mut last = None;
        for base in self.urls_of(Service::Orders) {
            let client = OrdersClient::new(Self::client_at(Service::Orders, base.clone(), 2000)?);
            match client.of_customer(customer).await {
                Ok(orders) => return Ok(orders),
                Err(e) => last = Some((base, e)),
            }
        }
        let (url, reason) = last.map_or((String::new(), "no instance".to_string()), |(u, e)| {
            (u, e.to_string())
        });
        Err(TargetError::Unreachable {
            what: "orders".into(),
            url,
            reason,
        })
    }

    /// The instance holding `service`'s leader lock in the registry.
    pub async fn leader_of(&self, service: Service) -> Result<InstanceId, TargetError> {
        let registry = self.registry()?;
        let key = gauntlet_demo_system::platform::leadership::Campaign::key_of(service.name());
        let entry = registry
            .kv_get(&key)
            .await
            .map_err(|e| TargetError::Unreachable {
                what: "the registry".into(),
                url: registry.base().to_string(),
                reason: e.to_string(),
            })?;
        let holder = entry
            .filter(|e| e.session.is_some())
            .and_then(|e| e.text())
            .ok_or_else(|| {
                TargetError::NoInstance(format!("leader of {service} (nobody holds {key})"))
            })?;
        holder.parse().map_err(|_| {
            TargetError::NoInstance(format!("leader of {service}: {holder:?} is no instance"))
        })
    }

    /// What `service` answered, or why it could not be had.
    fn unreachable(&self, service: Service) -> impl Fn(DemoClientError) -> TargetError + '_ {
        move |e| TargetError::Unreachable {
            what: service.name().into(),
            url: self.urls_of(service).join(", "),
            reason: e.to_string(),
        }
    }

    /// Inventory's reservation `id` (the saga uses the order ID), `None` if there is none.
    pub async fn reservation(&self, id: &str) -> Result<Option<Reservation>, TargetError> {
        let client = InventoryClient::new(self.client(Service::Inventory)?);
        match client.reservation(id).await {
            Ok(r) => Ok(Some(r)),
            Err(DemoClientError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(self.unreachable(Service::Inventory)(e)),
        }
    }

    /// The orders of `customer` as order-history's read model lists them: from the shard
    /// that holds them (the first instance holds every customer under `--disable sharding`).
    pub async fn history_of(&self, customer: &str) -> Result<Vec<OrderView>, TargetError> {
        let timeout = ResilienceConfig::default().timeout_ms;
        let shards = if self.handle.disabled.contains(&Pattern::Sharding) {
            1
        } else {
            usize::MAX
        };
        let clients = (self.urls_of(Service::OrderHistory).into_iter())
            .take(shards)
            .map(|base| Self::client_at(Service::OrderHistory, base, timeout))
            .collect::<Result<Vec<_>, _>>()?;
        let client = OrderHistoryClient::sharded(clients)
            .ok_or_else(|| TargetError::NoInstance(Service::OrderHistory.name().into()))?;
        client
            .customer_orders(customer)
            .await
            .map_err(self.unreachable(Service::OrderHistory))
    }

    pub async fn notifications_of(&self, customer: &str) -> Result<Vec<Notification>, TargetError> {
        let client = NotificationsClient::new(self.client(Service::Notifications)?);
        client
            .list(&NotificationQuery {
                customer_id: Some(customer.to_string()),
                order_id: None,
            })
            .await
            .map_err(|e| TargetError::Unreachable {
                what: "notifications".into(),
                url: self.urls_of(Service::Notifications).join(", "),
                reason: e.to_string(),
            })
    }
}

/// A query API client's error as the target's: a refusal names what refused (`what`), the
/// rest is the collector being unreachable.
fn collector_error(e: ClientError, what: &str) -> TargetError {
    match e {
        ClientError::Refused {
            url,
            status,
            message,
        } => TargetError::Refused {
            what: what.into(),
            url,
            status,
            message,
        },
        ClientError::Unreachable { url, reason } | ClientError::Unexpected { url, reason } => {
            TargetError::Unreachable {
                what: "the collector".into(),
                url,
                reason,
            }
        }
    }
}
