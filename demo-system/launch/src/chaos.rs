//! Under `gauntlet demo --chaos`: one TCP fault proxy per edge of the topology and provider
//! instance (`orders_to_payments`, `orders_to_inventory_2`, `orders_to_inventory_v2`), and one per registered
//! instance for the registry's health checks (`registry_to_inventory_2`), behind the
//! Toxiproxy-compatible API, and the routes that send each consumer through them. Every
//! proxy binds its own port (port 0) and is listening before the services that go through
//! it start. Heartbeats go straight to the registry: a fault on every proxy in front of an
//! instance makes it a zombie, alive to the registry and useless to everyone else.

use std::collections::BTreeMap;

use gauntlet_chaos_proxy::NewProxy;
use gauntlet_demo_system::handle::{ChaosHandle, ProxyRoute};
use gauntlet_demo_system::supervisor::Plan;
use gauntlet_demo_system::topology::{EDGES, Edge, EdgeKind, Protocol, Service};

use crate::{Background, LaunchError, bind_local};

/// The chaos proxy API's documented port (Toxiproxy's).
pub const API_PORT: u16 = 8474;

/// Chaos routes per consumer service: instance URL → proxy URL.
pub type Routes = BTreeMap<String, BTreeMap<String, String>>;

/// One proxy to create: its name, the consumer it serves and the instance URL it reaches.
struct Wanted {
    name: String,
    consumer: &'static str,
    instance_url: String,
}

fn wanted(plan: &Plan) -> Vec<Wanted> {
    let mut out = Vec::new();
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
    auto: bool,
) -> Result<(ChaosHandle, Routes, Background), LaunchError> {
    let wanted = wanted(plan);
    let initial = wanted
        .iter()
        .map(|w| {
            let upstream = w.instance_url.trim_start_matches("http://");
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
        routes
            .entry(w.consumer.to_string())
            .or_default()
            .insert(w.instance_url, format!("http://{}", view.listen));
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
