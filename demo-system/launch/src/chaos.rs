//! Under `gauntlet demo --chaos`: one TCP fault proxy per edge of the topology and provider
//! instance (`orders_to_payments`, `orders_to_inventory_2`, `orders_to_inventory_v2`), one per registered
//! instance for the registry's health checks (`registry_to_inventory_2`), and with a broker
//! one per service that talks to it (`orders_to_rabbitmq`), behind the
//! Toxiproxy-compatible API, and the routes that send each consumer through them. Every
//! proxy binds its own port (port 0) and is listening before the services that go through
//! it start. Heartbeats go straight to the registry: a fault on every proxy in front of an
//! instance makes it a zombie, alive to the registry and useless to everyone else.

use std::collections::BTreeMap;

use gauntlet_chaos_proxy::NewProxy;
use gauntlet_demo_system::handle::{ChaosHandle, ProxyRoute};
use gauntlet_demo_system::runner::BROKER_ROUTE;
use gauntlet_demo_system::supervisor::Plan;
use gauntlet_demo_system::topology::{
    BROKER_CLIENTS, EDGES, Edge, EdgeKind, Protocol, Service, broker_proxy_name,
};

use crate::{Background, LaunchError, bind_local};

/// The chaos proxy API's documented port (Toxiproxy's).
pub const API_PORT: u16 = 8474;

/// How a wanted proxy to the broker names what it reaches.
const BROKER_SCHEME: &str = "amqp://";

/// Chaos routes per consumer service: instance URL → proxy URL.
pub type Routes = BTreeMap<String, BTreeMap<String, String>>;

/// One proxy to create: its name, the consumer it serves and the instance URL it reaches.
struct Wanted {
    name: String,
    consumer: &'static str,
    instance_url: String,
}

/// `host:port` of an AMQP URL.
pub(crate) fn broker_address(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    Some(host_port.to_string())
}

fn wanted(plan: &Plan, broker: Option<&str>) -> Vec<Wanted> {
    let mut out = Vec::new();
    // Every service that talks to the broker reaches it through a proxy of its own.
    if let Some(addr) = broker {
        for service in BROKER_CLIENTS {
            out.push(Wanted {
                name: broker_proxy_name(service),
                consumer: service.name(),
                instance_url: format!("{BROKER_SCHEME}{addr}"),
            });
        }
    }
    // The registry's health checks are an edge of their own to every discoverable service.
    let health_checks = Service::ALL
        .into_iter()
        .filter(|s| s.is_discoverable())
        .map(|s| Edge {
            consumer: Service::Registry,
            provider: s,
            kind: EdgeKind::Http,
            protocol: Protocol::Rest,
        });
    for edge in EDGES.into_iter().chain(health_checks) {
        // Callers and health checks reach what registered under the provider's name (the
        // legacy's sidecar, for the legacy; inventory's next version, for inventory).
        for id in edge.provider_instances() {
            let Some(spec) = plan.instances.iter().find(|i| i.id == id) else {
                continue;
            };
            out.push(Wanted {
                name: edge.proxy_name(id),
                consumer: edge.consumer.name(),
                instance_url: spec.url(),
            });
        }
    }
    out
}

/// Starts the proxy API with every proxy listening; says which proxy each consumer must use
/// for each instance.
pub(crate) async fn start(
    plan: &Plan,
    broker: Option<&str>,
    auto: bool,
) -> Result<(ChaosHandle, Routes, Background), LaunchError> {
    let wanted = wanted(plan, broker);
    let initial = wanted
        .iter()
        .map(|w| {
            let upstream = w
                .instance_url
                .trim_start_matches("http://")
                .trim_start_matches(BROKER_SCHEME);
            NewProxy::tcp(&w.name, "127.0.0.1:0", upstream)
        })
        .collect();
    let (listener, api) = bind_local("chaos proxy API", if auto { 0 } else { API_PORT }).await?;
    let server = gauntlet_chaos_proxy::bind(listener, initial).await?;
    let views = server.proxies().views();
    let mut proxies = BTreeMap::new();
    let mut routes = Routes::new();
    for w in wanted {
        let Some(view) = views.get(&w.name) else {
            continue;
        };
        // The broker's route is found under `amqp`, as an address; an instance's by its URL.
        let (key, via) = match w.instance_url.strip_prefix(BROKER_SCHEME) {
            Some(_) => (BROKER_ROUTE.to_string(), view.listen.clone()),
            None => (w.instance_url, format!("http://{}", view.listen)),
        };
        routes
            .entry(w.consumer.to_string())
            .or_default()
            .insert(key, via);
        proxies.insert(
            w.name,
            ProxyRoute {
                listen: view.listen.clone(),
                upstream: view.upstream.clone(),
            },
        );
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let served = server
            .run(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the chaos proxy API stopped");
        }
    });
    Ok((
        ChaosHandle { api, proxies },
        routes,
        Background { stop, task },
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_broker_url_gives_the_address_its_proxy_forwards_to() {
        let at = super::broker_address;
        assert_eq!(
            at("amqp://guest:guest@127.0.0.1:5672/%2f").as_deref(),
            Some("127.0.0.1:5672")
        );
        assert_eq!(at("amqp://10.0.0.1:5673").as_deref(), Some("10.0.0.1:5673"));
        assert_eq!(at("not a url"), None);
    }
}
