//! One step of an experiment: an action (a fault, a process signal, a pause) or a probe
//! (something measured, with the tolerance it must meet), plus what every step may say
//! (`name`, `background`, `within`, `pause_after`, and for probes `evidence`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gauntlet_demo_system::inventory::CandidateFaults;
use gauntlet_demo_system::registry::Weights;
use gauntlet_demo_system::topology::{EDGES, Edge, InstanceId, Service};
use gauntlet_loadgen::scenario::ScenarioFile;
use gauntlet_loadgen::threshold::Threshold;
use serde::Deserialize;

use crate::canary::RolloutPlan;
use crate::{de_duration, de_opt_duration};
use gauntlet_chaos_proxy::model::NewToxic;

/// An activity as the file writes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct Activity {
    pub name: String,
    /// Method only: start it and go on; the method waits for it before it ends.
    pub background: bool,
    /// Probes: keep probing (every 250 ms) until the tolerance is met or this long has
    /// passed; without it, one look.
    pub within: Option<Duration>,
    /// Wait this long after the activity.
    pub pause_after: Option<Duration>,
    /// Probes: this one measures what a user or caller feels (latency, success, work lost
    /// or done twice), not what the mechanism says of itself. A control run proves the
    /// pattern only when one of these fails.
    pub evidence: bool,
    pub kind: Kind,
}

impl TryFrom<toml::Table> for Activity {
    type Error = String;

    fn try_from(mut t: toml::Table) -> Result<Self, String> {
        let name = match t.remove("name") {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
            _ => return Err("every activity needs a `name` (a non-empty string)".into()),
        };
        let duration = |t: &mut toml::Table, key: &str| -> Result<Option<Duration>, String> {
            match t.remove(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) => humantime::parse_duration(&s)
                    .map(Some)
                    .map_err(|_| format!("{name:?}: {key} = {s:?} is not a duration (30s, 500ms)")),
                Some(other) => Err(format!(
                    "{name:?}: {key} must be a duration string such as \"5s\", not {other:?}"
                )),
            }
        };
        let within = duration(&mut t, "within")?;
        let pause_after = duration(&mut t, "pause_after")?;
        let flag = |t: &mut toml::Table, key: &str| match t.remove(key) {
            None => Ok(false),
            Some(toml::Value::Boolean(b)) => Ok(b),
            Some(other) => Err(format!(
                "{name:?}: {key} must be true or false, not {other:?}"
            )),
        };
        let background = flag(&mut t, "background")?;
        let evidence = flag(&mut t, "evidence")?;
        let kind: Kind = toml::Value::Table(t)
            .try_into()
            .map_err(|e| format!("{name:?}: {}", e.to_string().trim()))?;
        Ok(Self {
            name,
            background,
            within,
            pause_after,
            evidence,
            kind,
        })
    }
}

/// What an activity does, by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Kind {
    /// Adds a toxic to every proxy of a topology edge (`orders_to_payments`), or to the one
    /// in front of `instance`; with `instance` alone, to every proxy in front of it (its
    /// callers' and the registry's health checks): the instance hangs or fails for
    /// everyone while it still heartbeats.
    /// With `broker = true` instead, to every link between a service and the event broker
    /// (`orders_to_rabbitmq`, ...; a demo started with `--broker rabbitmq --chaos`).
    AddToxic {
        #[serde(default, deserialize_with = "de_opt_edge")]
        edge: Option<Edge>,
        #[serde(default, deserialize_with = "de_opt_instance")]
        instance: Option<InstanceId>,
        #[serde(default)]
        broker: bool,
        toxic: NewToxic,
    },
    /// Removes a toxic by name (already gone is fine).
    RemoveToxic {
        #[serde(default, deserialize_with = "de_opt_edge")]
        edge: Option<Edge>,
        #[serde(default, deserialize_with = "de_opt_instance")]
        instance: Option<InstanceId>,
        #[serde(default)]
        broker: bool,
        toxic: String,
    },
    /// Closes the edge's proxies: connections are refused, as if the provider were gone.
    DisableProxy {
        #[serde(default, deserialize_with = "de_opt_edge")]
        edge: Option<Edge>,
        #[serde(default, deserialize_with = "de_opt_instance")]
        instance: Option<InstanceId>,
    },
    EnableProxy {
        #[serde(default, deserialize_with = "de_opt_edge")]
        edge: Option<Edge>,
        #[serde(default, deserialize_with = "de_opt_instance")]
        instance: Option<InstanceId>,
    },
    /// SIGKILL to the instance's process from outside the supervisor (its PID from the
    /// supervisor's list): a crash the supervisor did not ask for, which self-healing
    /// answers; `kill` is an operator's and is left down.
    Crash {
        #[serde(deserialize_with = "de_instance")]
        instance: InstanceId,
    },
    /// SIGKILL through the demo's supervisor.
    Kill {
        #[serde(deserialize_with = "de_instance")]
        instance: InstanceId,
    },
    /// Kill through the supervisor and delete the instance's database files (the loss of
    /// its disk), leaving it down until a `start`. Refused for a database other instances
    /// share (inventory's).
    Wipe {
        #[serde(deserialize_with = "de_instance")]
        instance: InstanceId,
    },
    /// Kill (if running) and start again, waiting until it is ready.
    Restart {
        #[serde(deserialize_with = "de_instance")]
        instance: InstanceId,
    },
    /// Start a killed instance again, waiting until it is ready; a running one is left
    /// alone (what a rollback wants).
    Start {
        #[serde(deserialize_with = "de_instance")]
        instance: InstanceId,
    },
    /// SIGSTOP: the process is there but answers nothing.
    Pause {
        #[serde(deserialize_with = "de_instance")]
        instance: InstanceId,
    },
    /// SIGSTOP to whichever instance of `service` holds its leader lock in the registry
    /// (`service/{name}/leader`): the leader stops answering and renewing, without exiting.
    PauseLeader {
        service: Service,
    },
    /// SIGCONT.
    Resume {
        #[serde(deserialize_with = "de_instance")]
        instance: InstanceId,
    },
    Sleep {
        #[serde(deserialize_with = "de_duration")]
        duration: Duration,
    },
    /// Sets a service's version weights in the registry (`{ v1 = 90, v2 = 10 }`; a
    /// blue-green switch is `{ v1 = 0, v2 = 100 }`).
    SetWeights {
        service: Service,
        weights: Weights,
    },
    /// Replaces the faults of a candidate version's instance (`PUT /admin/candidate`):
    /// `faults = { latency_ms = 300 }`; `faults = {}` makes it well.
    CandidateFaults {
        #[serde(deserialize_with = "de_instance")]
        instance: InstanceId,
        faults: CandidateFaults,
    },
    /// The automated canary ([`crate::canary`]): steps the candidate's share up while the
    /// judge passes, back to 0 when it fails; unjudged when the demo runs without
    /// `canary-analysis`.
    Canary(RolloutPlan),

    /// An HTTP request to a part of the demo, with the answer it must get.
    Http(HttpProbe),
    /// A load run (a loadgen scenario file) that must meet its thresholds.
    Load(LoadProbe),
    Breaker(BreakerProbe),
    Calls(CallsProbe),
    Registry(RegistryProbe),
    /// Traces in the collector with a span of `service` (and `operation`, `tags`), counted
    /// if one of that service's spans carries `event` (with `event_attributes`), within
    /// `min`..=`max`.
    Traces(TracesProbe),
    ErrorRate(ErrorRateProbe),
    Metric(MetricProbe),
    Delivered(DeliveredProbe),
    Balance(BalanceProbe),
    Released(ReleasedProbe),
    ReadModel(ReadModelProbe),
    Orders(OrdersProbe),
}

/// Over `over`, each instance of `upstream` got an even share of `service`'s calls, give or
/// take `tolerance` of that share (0.1: 45–55 % each of two).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceProbe {
    pub service: Service,
    pub upstream: Service,
    #[serde(deserialize_with = "de_duration")]
    pub over: Duration,
    pub tolerance: f64,
}

/// Every cancelled order of `customer` left no stock held: its reservation in inventory
/// is released (or there never was one).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasedProbe {
    pub customer: String,
}

/// order-history's read model lists every order orders has for `customer`, each once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadModelProbe {
    pub customer: String,
}

/// Every order orders has for `customer` is in `status` (none stranded on the way).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersProbe {
    pub customer: String,
    pub status: gauntlet_demo_system::orders::OrderStatus,
}

/// The circuit breaker of `service` → `upstream` on every instance of `service`
/// (`/admin/resilience`) is in `state`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerProbe {
    pub service: Service,
    pub upstream: Service,
    pub state: BreakerState,
}

/// Calls `service` made to one `instance` of its upstream over `over`, counted from
/// `/admin/resilience`, within `min`..=`max`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallsProbe {
    pub service: Service,
    #[serde(deserialize_with = "de_instance")]
    pub instance: InstanceId,
    #[serde(deserialize_with = "de_duration")]
    pub over: Duration,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

/// Whether the registry lists `instance` as healthy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryProbe {
    #[serde(deserialize_with = "de_instance")]
    pub instance: InstanceId,
    pub listed: bool,
}

/// The share of `service`'s server spans with an error status is at most `max`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRateProbe {
    pub service: Service,
    #[serde(default)]
    pub window: Window,
    pub max: f64,
}

/// A PromQL expression, evaluated now by the collector (the demo's services export their
/// metrics to it): every sample it gives (or the scalar) is within `min`..=`max`; nothing
/// selected fails. Whether it is evidence depends on what it measures: a client's duration
/// histogram is what callers felt, a breaker's state gauge is the mechanism's own report.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricProbe {
    pub query: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// Every finished order of `customer` (`{{run}}` is this run's ID) has exactly one
/// notification of its outcome.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveredProbe {
    pub customer: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// `gateway`, `collector`, `supervisor`, or an instance (`inventory-2`, `orders`).
    pub target: Target,
    #[serde(default = "get", deserialize_with = "de_method")]
    pub method: reqwest::Method,
    #[serde(default = "root")]
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// The status it must answer (default: any 2xx).
    pub status: Option<u16>,
    pub body_contains: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub latency_under: Option<Duration>,
}

fn get() -> reqwest::Method {
    reqwest::Method::GET
}

/// What an HTTP probe asks: a part of the demo, or one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Gateway,
    Collector,
    Supervisor,
    Instance(InstanceId),
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "gateway" => Target::Gateway,
            "collector" => Target::Collector,
            "supervisor" => Target::Supervisor,
            other => Target::Instance(other.parse().map_err(|e| {
                serde::de::Error::custom(format!(
                    "target: gateway, collector, supervisor or an instance; {e}"
                ))
            })?),
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Gateway => f.write_str("gateway"),
            Target::Collector => f.write_str("collector"),
            Target::Supervisor => f.write_str("supervisor"),
            Target::Instance(id) => write!(f, "{id}"),
        }
    }
}

fn de_method<'de, D: serde::Deserializer<'de>>(d: D) -> Result<reqwest::Method, D::Error> {
    let s = String::deserialize(d)?;
    reqwest::Method::from_bytes(s.as_bytes())
        .map_err(|_| serde::de::Error::custom(format!("method {s:?} is not an HTTP method")))
}

fn de_instance<'de, D: serde::Deserializer<'de>>(d: D) -> Result<InstanceId, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn de_opt_instance<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<InstanceId>, D::Error> {
    de_instance(d).map(Some)
}

fn de_opt_edge<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Edge>, D::Error> {
    let s = String::deserialize(d)?;
    edge(&s).map(Some).map_err(serde::de::Error::custom)
}

fn root() -> String {
    "/".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadProbe {
    /// A loadgen scenario file, relative to the experiment. `{{gateway}}` is the demo's
    /// gateway and `{{run}}` this run's ID.
    pub scenario: PathBuf,
    /// Every scenario of the file runs this long instead.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub duration: Option<Duration>,
    /// Arrival-rate scenarios run at this rate instead.
    pub rate: Option<f64>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The tolerance, as loadgen thresholds by scope (`all`, `request:NAME`); replaces the
    /// file's.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesProbe {
    pub service: Service,
    pub operation: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// A span event name, e.g. `circuit_breaker.state_change`.
    pub event: Option<String>,
    #[serde(default)]
    pub event_attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub window: Window,
    /// Count per value of this tag of the operation's span (`settlement.period`), and hold
    /// `min`/`max` to the largest group: "at most one run per period".
    pub per: Option<String>,
    pub min: Option<usize>,
    pub max: Option<usize>,
}

/// Which time a collector probe looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Window {
    /// Since the experiment started.
    Experiment,
    /// Since the method started (before it, since the experiment started).
    #[default]
    Method,
    /// The last so long.
    Last(Duration),
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "experiment" => Ok(Window::Experiment),
            "method" => Ok(Window::Method),
            other => humantime::parse_duration(other).map(Window::Last).map_err(|_| {
                serde::de::Error::custom(format!(
                    "window {other:?}: use \"experiment\", \"method\" or a duration such as \"30s\""
                ))
            }),
        }
    }
}

impl Kind {
    pub fn is_probe(&self) -> bool {
        matches!(
            self,
            Kind::Http(_)
                | Kind::Load(_)
                | Kind::Breaker(_)
                | Kind::Calls(_)
                | Kind::Registry(_)
                | Kind::Traces(_)
                | Kind::ErrorRate(_)
                | Kind::Metric(_)
                | Kind::Delivered(_)
                | Kind::Balance(_)
                | Kind::Released(_)
                | Kind::ReadModel(_)
                | Kind::Orders(_)
        )
    }

    /// Acts on the chaos proxies, which only `gauntlet demo --chaos` has.
    pub fn needs_proxies(&self) -> bool {
        matches!(
            self,
            Kind::AddToxic { .. }
                | Kind::RemoveToxic { .. }
                | Kind::DisableProxy { .. }
                | Kind::EnableProxy { .. }
        )
    }

    /// The `type` as written.
    pub fn label(&self) -> &'static str {
        match self {
            Kind::AddToxic { .. } => "add-toxic",
            Kind::RemoveToxic { .. } => "remove-toxic",
            Kind::DisableProxy { .. } => "disable-proxy",
            Kind::EnableProxy { .. } => "enable-proxy",
            Kind::Crash { .. } => "crash",
            Kind::Kill { .. } => "kill",
            Kind::Wipe { .. } => "wipe",
            Kind::Restart { .. } => "restart",
            Kind::Start { .. } => "start",
            Kind::Pause { .. } => "pause",
            Kind::Resume { .. } => "resume",
            Kind::Sleep { .. } => "sleep",
            Kind::SetWeights { .. } => "set-weights",
            Kind::CandidateFaults { .. } => "candidate-faults",
            Kind::Canary(_) => "canary",
            Kind::Http(_) => "http",
            Kind::Load(_) => "load",
            Kind::Breaker(_) => "breaker",
            Kind::Calls(_) => "calls",
            Kind::Registry(_) => "registry",
            Kind::Traces(_) => "traces",
            Kind::ErrorRate(_) => "error-rate",
            Kind::Metric(_) => "metric",
            Kind::Delivered(_) => "delivered",
            Kind::Balance(_) => "balance",
            Kind::Released(_) => "released",
            Kind::ReadModel(_) => "read-model",
            Kind::Orders(_) => "orders",
            Kind::PauseLeader { .. } => "pause-leader",
        }
    }
}

/// An instance name of the demo's topology.
/// An edge of the demo's topology, by its proxy name.
pub fn edge(name: &str) -> Result<Edge, String> {
    EDGES.into_iter().find(|e| e.name() == name).ok_or_else(|| {
        format!(
            "no edge {name} in the demo's topology: one of {}",
            EDGES.iter().map(Edge::name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The broker's links stand alone: no edge or instance with them.
fn broker_alone(
    broker: bool,
    edge: &Option<Edge>,
    instance: &Option<InstanceId>,
) -> Result<(), String> {
    match (broker, edge.is_some() || instance.is_some()) {
        (true, true) => Err(
            "`broker = true` names every link to the broker: no `edge` or `instance` with it"
                .into(),
        ),
        (true, false) => Ok(()),
        (false, _) => edge_instance(edge, instance),
    }
}

/// The instance, when one is named, must be one of the edge's provider.
fn edge_instance(edge: &Option<Edge>, instance: &Option<InstanceId>) -> Result<(), String> {
    match (edge, instance) {
        (None, None) => Err(
            "name an `edge`, an `instance` (every proxy in front of it), or both (the edge's proxy in front of the instance)"
                .into(),
        ),
        (Some(edge), Some(id)) if id.service != edge.provider => Err(format!(
            "instance {id} is not a {} instance, so {} does not lead to it",
            edge.provider,
            edge.name()
        )),
        _ => Ok(()),
    }
}

impl Activity {
    /// Checks what can be checked before touching the demo.
    pub fn check(&self, dir: &Path) -> Result<(), String> {
        if self.within.is_some() && (!self.kind.is_probe() || matches!(self.kind, Kind::Load(_))) {
            return Err(
                "`within` is for probes that can be looked at again (not actions, not load runs)"
                    .into(),
            );
        }
        match &self.kind {
            Kind::AddToxic {
                edge,
                instance,
                broker,
                toxic,
            } => {
                broker_alone(*broker, edge, instance)?;
                toxic
                    .clone()
                    .into_toxic()
                    .map_err(|e| format!("the toxic: {}", e.error))?;
            }
            Kind::RemoveToxic {
                edge,
                instance,
                broker,
                ..
            } => broker_alone(*broker, edge, instance)?,
            Kind::DisableProxy { edge, instance } | Kind::EnableProxy { edge, instance } => {
                edge_instance(edge, instance)?
            }
            Kind::Kill { .. }
            | Kind::Wipe { .. }
            | Kind::Crash { .. }
            | Kind::Restart { .. }
            | Kind::Start { .. }
            | Kind::Pause { .. }
            | Kind::Resume { .. }
            | Kind::Registry(_)
            | Kind::Breaker(_)
            | Kind::Sleep { .. }
            | Kind::SetWeights { .. }
            | Kind::Delivered(_)
            | Kind::Released(_)
            | Kind::ReadModel(_)
            | Kind::Orders(_)
            | Kind::PauseLeader { .. } => {}
            Kind::CandidateFaults { faults, .. } => faults.check()?,
            Kind::Canary(plan) => plan.check()?,
            Kind::Balance(b) => {
                if !(0.0..1.0).contains(&b.tolerance) {
                    return Err(format!(
                        "tolerance = {}: a share of the even share, between 0 and 1 (0.1: ±10 %)",
                        b.tolerance
                    ));
                }
            }
            Kind::Http(h) => {
                if !h.path.starts_with('/') {
                    return Err(format!("path {:?} must start with /", h.path));
                }
            }
            Kind::Load(l) => {
                let path = dir.join(&l.scenario);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("scenario {}: {e}", path.display()))?;
                toml::from_str::<ScenarioFile>(&text)
                    .map_err(|e| format!("scenario {}: {e}", path.display()))?;
                for exprs in l.thresholds.values() {
                    for x in exprs {
                        Threshold::parse(x).map_err(|e| e.to_string())?;
                    }
                }
            }
            Kind::Calls(c) => {
                if c.min.is_none() && c.max.is_none() {
                    return Err("a calls probe needs min, max or both".into());
                }
            }
            Kind::Traces(t) => {
                if t.min.is_none() && t.max.is_none() {
                    return Err("a traces probe needs min, max or both".into());
                }
                if t.event.is_none() && !t.event_attributes.is_empty() {
                    return Err("event_attributes need an event".into());
                }
            }
            Kind::ErrorRate(e) => {
                if !(0.0..=1.0).contains(&e.max) {
                    return Err(format!("max = {}: an error rate is between 0 and 1", e.max));
                }
            }
            Kind::Metric(m) => {
                if m.min.is_none() && m.max.is_none() {
                    return Err("a metric probe needs min, max or both".into());
                }
                if let (Some(a), Some(b)) = (m.min, m.max)
                    && a > b
                {
                    return Err(format!("min = {a} is above max = {b}"));
                }
                promql_parser::parser::parse(&m.query)
                    .map_err(|e| format!("query {:?} is not PromQL: {e}", m.query))?;
            }
        }
        Ok(())
    }
}
