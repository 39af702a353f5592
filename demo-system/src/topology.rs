//! The one description of what the demo is: its services, how many instances each runs, their
//! documented ports, and the consumer → provider edges between them. The supervisor, the
//! runner, `demo.json`, the traffic and the tools built on the demo (contracts, chaos) all
//! derive from this module; nothing else names a service by a string literal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::platform::sharding::Shard;

/// A demo service. [`Service::ALL`] is the start order: every provider before its consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    Registry,
    Payments,
    Inventory,
    /// A candidate version of inventory that only gets copies of the gateway's reads
    /// (shadow deployment): its answers are compared, never used.
    InventoryShadow,
    /// Inventory's next version (`v2`): same code and database, registered under
    /// `inventory` with its own version, so discovery's version weights decide how many of
    /// inventory's calls it gets (canary releases, blue-green switches).
    InventoryV2,
    Orders,
    Notifications,
    OrderHistory,
    /// The old shop: a monolith with its own database, no OpenTelemetry and no registry
    /// client (the strangler fig's legacy side).
    Legacy,
    /// The sidecar beside the legacy monolith: its server spans, request logs, health
    /// checks and registration, registered under `legacy`.
    LegacySidecar,
    /// The web page's backend for frontend: one GraphQL query for what a page shows.
    WebBff,
    /// The mobile app's backend for frontend: REST with trimmed shapes.
    MobileBff,
    Gateway,
}

impl Service {
    /// Every service, providers before consumers (the order the supervisor starts them in).
    pub const ALL: [Service; 13] = [
        Service::Registry,
        Service::Payments,
        Service::Inventory,
        Service::InventoryShadow,
        Service::InventoryV2,
        Service::Orders,
        Service::Notifications,
        Service::OrderHistory,
        Service::Legacy,
        Service::LegacySidecar,
        Service::WebBff,
        Service::MobileBff,
        Service::Gateway,
    ];

    /// The name the service registers under and appears as in telemetry.
    pub const fn name(self) -> &'static str {
        match self {
            Service::Registry => "registry",
            Service::Payments => "payments",
            Service::Inventory => "inventory",
            Service::InventoryShadow => "inventory-shadow",
            Service::InventoryV2 => "inventory-v2",
            Service::Orders => "orders",
            Service::Notifications => "notifications",
            Service::OrderHistory => "order-history",
            Service::Legacy => "legacy",
            Service::LegacySidecar => "legacy-sidecar",
            Service::WebBff => "web-bff",
            Service::MobileBff => "mobile-bff",
            Service::Gateway => "gateway",
        }
    }

    /// The documented port of each instance (inventory and orders run two each, each
    /// service's sharing one database; order-history two shards, each its own).
    pub const fn fixed_ports(self) -> &'static [u16] {
        match self {
            Service::Registry => &[8500],
            Service::Payments => &[8300],
            Service::Inventory => &[8101, 8102],
            Service::InventoryShadow => &[8103],
            Service::InventoryV2 => &[8104],
            Service::Orders => &[8200, 8201],
            Service::Notifications => &[8400],
            Service::OrderHistory => &[8600, 8601],
            Service::Legacy => &[8900],
            Service::LegacySidecar => &[8901],
            Service::WebBff => &[8081],
            Service::MobileBff => &[8082],
            Service::Gateway => &[8080],
        }
    }

    /// The edges on which this service is the consumer.
    pub fn upstreams(self) -> impl Iterator<Item = Edge> {
        EDGES.into_iter().filter(move |e| e.consumer == self)
    }

    /// The name an instance of this service announces itself under in the registry: its
    /// own, but none for the registry itself and for the legacy monolith (which knows
    /// nothing of it), `legacy` for the legacy's sidecar, which stands in for it, and
    /// `inventory` for inventory's next version.
    pub fn registers_as(self) -> Option<Service> {
        match self {
            Service::Registry | Service::Legacy => None,
            Service::LegacySidecar => Some(Service::Legacy),
            Service::InventoryV2 => Some(Service::Inventory),
            other => Some(other),
        }
    }

    /// The version its instances register and report (`service.version`): `v2` for
    /// inventory's next version, `v1` for everything else.
    pub const fn version(self) -> &'static str {
        match self {
            Service::InventoryV2 => "v2",
            _ => "v1",
        }
    }

    /// Whether callers find this service through the registry: some instance registers
    /// under its name.
    pub fn is_discoverable(self) -> bool {
        Service::ALL.iter().any(|s| s.registers_as() == Some(self))
    }

    /// Whose database an instance of this service opens: inventory's next version and
    /// its shadow read inventory's own; the others their own (`<name>.sqlite`, and beside
    /// it whatever else the service keeps under that name, e.g. `order-history.redb`).
    pub const fn database(self) -> Service {
        match self {
            Service::InventoryV2 | Service::InventoryShadow => Service::Inventory,
            other => other,
        }
    }

    /// Whether the service's data is partitioned by key over its instances, one shard
    /// each with its own database ([`crate::platform::sharding`]): order-history's read
    /// model, by customer.
    pub const fn sharded(self) -> bool {
        matches!(self, Service::OrderHistory)
    }

    /// The app a sidecar stands beside, for the sidecar.
    pub fn sidecar_of(self) -> Option<Service> {
        match self {
            Service::LegacySidecar => Some(Service::Legacy),
            _ => None,
        }
    }

    /// Whether the service has OpenTelemetry in it (the legacy monolith has none: its
    /// sidecar reports for it).
    pub fn instrumented(self) -> bool {
        self != Service::Legacy
    }

    /// The `service.name` its telemetry carries: a sidecar's is the app's, and a next
    /// version's is its service's (its `service.version` tells them apart).
    pub fn reports_as(self) -> Service {
        match self {
            Service::InventoryV2 => Service::Inventory,
            other => other.sidecar_of().unwrap_or(other),
        }
    }

    /// Where the supervisor asks whether an instance is ready: the health route, except
    /// for the legacy monolith, which has none and is ready when it serves its catalogue.
    /// Where the supervisor checks that the process still answers at all (the legacy shop
    /// has no health routes of its own).
    pub fn live_path(self) -> &'static str {
        match self {
            Service::Legacy => "/shop/products",
            _ => "/health/live",
        }
    }

    pub fn ready_path(self) -> &'static str {
        match self {
            Service::Legacy => "/shop/products",
            _ => "/health/ready",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown service {0:?}: one of {list}", list = Service::ALL.map(Service::name).join(", "))]
pub struct UnknownService(pub String);

impl FromStr for Service {
    type Err = UnknownService;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|svc| svc.name() == s)
            .ok_or_else(|| UnknownService(s.to_string()))
    }
}

/// How a consumer talks to its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// Request/response over HTTP.
    Http,
    /// The consumer reads the provider's outbox feed (`GET /events`) and applies its events.
    Events,
    /// The consumer sends the provider copies of requests it has already answered and
    /// compares the answers, never using them (shadow deployment): its contract is the
    /// primary's.
    Mirror,
}

/// What the calls on an edge travel as. The collector tells the RPC protocols apart by their
/// spans' `rpc.system` (see [`Protocol::rpc_system`]); the others all read as HTTP there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// JSON resources over HTTP.
    Rest,
    /// GraphQL over HTTP (`POST /graphql`).
    Graphql,
    /// JSON-RPC 2.0 over HTTP (`POST /rpc`).
    JsonRpc,
    /// gRPC (HTTP/2, protobuf): its contract is the provider's `.proto`, not a pact.
    Grpc,
    /// The provider's outbox read as an HTTP long-poll feed (`GET /events`).
    HttpFeed,
    /// The provider's outbox relayed through RabbitMQ (AMQP 0-9-1) to the consumer's queue:
    /// an event edge under `[events] transport = "rabbitmq"` ([`Edge::carried_by`]).
    Rabbitmq,
}

/// The services that talk to the broker when events travel through RabbitMQ: the
/// publishers' relays and the consumers.
pub const BROKER_CLIENTS: [Service; 6] = [
    Service::Payments,
    Service::Inventory,
    Service::InventoryV2,
    Service::Orders,
    Service::Notifications,
    Service::OrderHistory,
];

/// The chaos proxy between `service` and the broker (`orders_to_rabbitmq`).
pub fn broker_proxy_name(service: Service) -> String {
    format!("{}_to_rabbitmq", service.name().replace('-', "_"))
}

impl Protocol {
    /// The `messaging.system` its consumer spans carry, for a broker.
    pub const fn messaging_system(self) -> Option<&'static str> {
        match self {
            Protocol::Rabbitmq => Some(crate::platform::broker::SYSTEM),
            _ => None,
        }
    }

    /// The `rpc.system` its spans carry, for an RPC protocol.
    pub const fn rpc_system(self) -> Option<&'static str> {
        match self {
            Protocol::JsonRpc => Some(crate::platform::jsonrpc::RPC_SYSTEM),
            Protocol::Grpc => Some(crate::platform::grpc::RPC_SYSTEM),
            _ => None,
        }
    }
}

/// A consumer → provider dependency. Its [`Edge::name`] is stable (`orders_to_payments`):
/// contract files and chaos proxies are named after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edge {
    pub consumer: Service,
    pub provider: Service,
    pub kind: EdgeKind,
    pub protocol: Protocol,
}

impl Edge {
    pub fn name(&self) -> String {
        format!(
            "{}_to_{}",
            self.consumer.name().replace('-', "_"),
            self.provider.name().replace('-', "_")
        )
    }
}

impl Edge {
    /// The chaos proxy on this edge in front of `instance` (one that registers as the
    /// provider): the edge's name when one instance does, else the consumer's and the
    /// instance's (`orders_to_inventory_2`, `orders_to_inventory_v2`).
    pub fn proxy_name(&self, instance: InstanceId) -> String {
        let several = Service::ALL
            .into_iter()
            .filter(|s| s.registers_as() == Some(self.provider))
            .map(|s| s.fixed_ports().len())
            .sum::<usize>()
            > 1;
        if several {
            format!(
                "{}_to_{}",
                self.consumer.name().replace('-', "_"),
                instance.to_string().replace('-', "_")
            )
        } else {
            self.name()
        }
    }

    /// What carries this edge's calls when events travel by `transport`: an event edge
    /// goes through the broker under RabbitMQ; every other edge is as the topology says.
    pub const fn carried_by(&self, transport: crate::config::EventTransport) -> Protocol {
        match (self.kind, transport) {
            (EdgeKind::Events, crate::config::EventTransport::Rabbitmq) => Protocol::Rabbitmq,
            _ => self.protocol,
        }
    }

    /// Every instance callers on this edge reach: those registering as the provider.
    pub fn provider_instances(&self) -> impl Iterator<Item = InstanceId> {
        let provider = self.provider;
        InstanceId::all().filter(move |i| i.service.registers_as() == Some(provider))
    }
}

impl Serialize for Edge {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Edge", 5)?;
        st.serialize_field("name", &self.name())?;
        st.serialize_field("consumer", &self.consumer)?;
        st.serialize_field("provider", &self.provider)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("protocol", &self.protocol)?;
        st.end()
    }
}

/// An edge of `kind`: an event feed's over [`Protocol::HttpFeed`], the others REST until
/// [`Edge::over`] says otherwise.
const fn of_kind(consumer: Service, provider: Service, kind: EdgeKind) -> Edge {
    Edge {
        consumer,
        provider,
        kind,
        protocol: match kind {
            EdgeKind::Events => Protocol::HttpFeed,
            EdgeKind::Http | EdgeKind::Mirror => Protocol::Rest,
        },
    }
}

impl Edge {
    /// The same edge over `protocol`.
    const fn over(self, protocol: Protocol) -> Edge {
        Edge { protocol, ..self }
    }
}

const fn http(consumer: Service, provider: Service) -> Edge {
    of_kind(consumer, provider, EdgeKind::Http)
}

/// Every service-to-service dependency of the demo. Calls to the registry (registration,
/// heartbeats, discovery) are the platform's, not an edge: every service makes them.
pub const EDGES: [Edge; 19] = [
    http(Service::Gateway, Service::Inventory),
    http(Service::Gateway, Service::Orders),
    http(Service::Gateway, Service::OrderHistory),
    // The order details the gateway composes: the order's payments and notifications.
    http(Service::Gateway, Service::Payments),
    http(Service::Gateway, Service::Notifications).over(Protocol::JsonRpc),
    // The strangler fig: shop routes not yet moved to the new services reach the legacy
    // monolith (through its sidecar, which registers as `legacy`).
    http(Service::Gateway, Service::Legacy),
    // Shadow deployment: the gateway mirrors product reads to inventory's candidate.
    of_kind(Service::Gateway, Service::InventoryShadow, EdgeKind::Mirror),
    // Backends for frontends: the gateway passes the web page's GraphQL and the mobile
    // app's routes to their own services, which ask the services that hold the data.
    http(Service::Gateway, Service::WebBff).over(Protocol::Graphql),
    http(Service::Gateway, Service::MobileBff),
    http(Service::WebBff, Service::Inventory),
    http(Service::WebBff, Service::OrderHistory),
    http(Service::WebBff, Service::Payments),
    http(Service::MobileBff, Service::Inventory).over(Protocol::Grpc),
    http(Service::MobileBff, Service::Orders),
    http(Service::Orders, Service::Inventory),
    http(Service::Orders, Service::Payments),
    of_kind(Service::Notifications, Service::Orders, EdgeKind::Events),
    of_kind(Service::OrderHistory, Service::Orders, EdgeKind::Events),
    // Choreography: notifications reacts to inventory's `stock.low`; nobody asks it to.
    of_kind(Service::Notifications, Service::Inventory, EdgeKind::Events),
];

/// The edge from `consumer` to `provider`, if the demo has one.
pub fn edge(consumer: Service, provider: Service) -> Option<Edge> {
    EDGES
        .into_iter()
        .find(|e| e.consumer == consumer && e.provider == provider)
}

/// One running copy of a service: `inventory-2`, or just `orders` for a single instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId {
    pub service: Service,
    /// 1-based.
    pub ordinal: u16,
}

impl InstanceId {
    /// Every instance of the demo, in start order.
    pub fn all() -> impl Iterator<Item = InstanceId> {
        Service::ALL.into_iter().flat_map(|service| {
            (1..=service.fixed_ports().len() as u16)
                .map(move |ordinal| InstanceId { service, ordinal })
        })
    }

    /// The documented port of this instance.
    pub fn fixed_port(self) -> u16 {
        let ports = self.service.fixed_ports();
        ports[usize::from(self.ordinal.saturating_sub(1)).min(ports.len() - 1)]
    }
}

impl InstanceId {
    /// The shard this instance holds, for a sharded service: its ordinal, of as many shards
    /// as the service has instances, or of one when `sharding` is off (every key on the
    /// first instance; the others hold none).
    pub fn shard(self, sharding: bool) -> Option<Shard> {
        self.service.sharded().then(|| Shard {
            index: self.ordinal,
            of: Self::shards(self.service, sharding),
        })
    }

    /// How many shards `service`'s data is split into (1 for a service not sharded).
    pub fn shards(service: Service, sharding: bool) -> u16 {
        if service.sharded() && sharding {
            service.fixed_ports().len() as u16
        } else {
            1
        }
    }

    /// The name of the database this instance opens (`<name>.sqlite` and its companions):
    /// its service's (see [`Service::database`]), or its own for a shard.
    pub fn database(self) -> String {
        if self.service.sharded() {
            self.to_string()
        } else {
            self.service.database().name().to_string()
        }
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.service.fixed_ports().len() > 1 {
            write!(f, "{}-{}", self.service, self.ordinal)
        } else {
            f.write_str(self.service.name())
        }
    }
}

/// `inventory-2`, `orders` (a single instance), or `orders-1`.
impl FromStr for InstanceId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (service, ordinal) = match s.rsplit_once('-') {
            Some((name, n)) if n.parse::<u16>().is_ok() => {
                (name, n.parse::<u16>().unwrap_or_default())
            }
            _ => (s, 1),
        };
        let service: Service = service.parse().map_err(|e| format!("{s:?}: {e}"))?;
        let count = service.fixed_ports().len() as u16;
        if ordinal == 0 || ordinal > count {
            return Err(format!(
                "{s:?}: {service} has {count} instance{} (1-{count})",
                if count == 1 { "" } else { "s" }
            ));
        }
        Ok(InstanceId { service, ordinal })
    }
}

impl Serialize for InstanceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_start_before_their_consumers() {
        let position = |s: Service| Service::ALL.iter().position(|x| *x == s);
        for e in EDGES {
            assert!(
                position(e.provider) < position(e.consumer),
                "{} starts before its provider",
                e.name()
            );
        }
        assert_eq!(Service::ALL[0], Service::Registry, "everyone registers");
        for e in EDGES {
            assert!(
                e.provider.is_discoverable(),
                "{} is found through the registry",
                e.name()
            );
        }
        // A sidecar starts after the app it stands beside.
        for s in Service::ALL {
            if let Some(app) = s.sidecar_of() {
                assert!(position(app) < position(s), "{s}");
            }
        }
    }

    #[test]
    fn names_round_trip_and_edges_have_stable_names() {
        for s in Service::ALL {
            assert_eq!(s.name().parse::<Service>().ok(), Some(s));
        }
        assert!(
            "gravity"
                .parse::<Service>()
                .expect_err("unknown")
                .to_string()
                .contains("order-history")
        );
        for id in InstanceId::all() {
            assert_eq!(id.to_string().parse::<InstanceId>(), Ok(id));
        }
        assert_eq!(
            "payments-1".parse::<InstanceId>().map(|i| i.to_string()),
            Ok("payments".to_string())
        );
        for bad in ["inventory-3", "inventory-0", "gravity-1"] {
            assert!(bad.parse::<InstanceId>().is_err(), "{bad}");
        }
        let names: Vec<String> = EDGES.iter().map(Edge::name).collect();
        assert!(names.contains(&"orders_to_payments".to_string()));
        assert!(names.contains(&"order_history_to_orders".to_string()));
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }

    #[test]
    fn instances_are_named_by_ordinal_only_when_there_are_several() {
        let ids: Vec<String> = InstanceId::all().map(|i| i.to_string()).collect();
        assert_eq!(
            ids,
            [
                "registry",
                "payments",
                "inventory-1",
                "inventory-2",
                "inventory-shadow",
                "inventory-v2",
                "orders-1",
                "orders-2",
                "notifications",
                "order-history-1",
                "order-history-2",
                "legacy",
                "legacy-sidecar",
                "web-bff",
                "mobile-bff",
                "gateway"
            ]
        );
        let ports: Vec<u16> = InstanceId::all().map(InstanceId::fixed_port).collect();
        assert_eq!(
            ports,
            [
                8500, 8300, 8101, 8102, 8103, 8104, 8200, 8201, 8400, 8600, 8601, 8900, 8901, 8081,
                8082, 8080
            ]
        );
    }

    /// Each shard has a database of its own; instances of an unsharded service share
    /// their service's. With sharding off, the first instance holds every key.
    #[test]
    fn shards_have_their_own_databases() {
        let id = |s: &str| s.parse::<InstanceId>().expect("an instance");
        assert_eq!(id("order-history-2").database(), "order-history-2");
        assert_eq!(id("inventory-2").database(), "inventory");
        assert_eq!(id("inventory-v2").database(), "inventory");
        assert_eq!(
            id("order-history-2").shard(true),
            Some(Shard { index: 2, of: 2 })
        );
        assert_eq!(
            id("order-history-2").shard(false),
            Some(Shard { index: 2, of: 1 })
        );
        assert_eq!(id("inventory-2").shard(true), None);
        assert_eq!(InstanceId::shards(Service::OrderHistory, false), 1);
    }
}
