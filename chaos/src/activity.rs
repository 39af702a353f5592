//! One step of an experiment: an action (a fault, a process signal, a pause) or a probe
//! (something measured, with the tolerance it must meet), plus what every step may say
//! (`name`, `background`, `within`, `pause_after`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gauntlet_demo_system::topology::{EDGES, Edge, InstanceId, Service};
use gauntlet_loadgen::scenario::ScenarioFile;
use gauntlet_loadgen::threshold::Threshold;
use serde::Deserialize;

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
        let background = match t.remove("background") {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
            Some(other) => {
                return Err(format!(
                    "{name:?}: background must be true or false, not {other:?}"
                ));
            }
        };
        let kind: Kind = toml::Value::Table(t)
            .try_into()
            .map_err(|e| format!("{name:?}: {}", e.to_string().trim()))?;
        Ok(Self {
            name,
            background,
            within,
            pause_after,
            kind,
        })
    }
}

/// What an activity does, by its `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Kind {
    /// Adds a toxic to every proxy of a topology edge (`orders_to_payments`), or to the one
    /// in front of `instance`.
    AddToxic {
        edge: String,
        instance: Option<String>,
        toxic: NewToxic,
    },
    /// Removes a toxic by name (already gone is fine).
    RemoveToxic {
        edge: String,
        instance: Option<String>,
        toxic: String,
    },
    /// Closes the edge's proxies: connections are refused, as if the provider were gone.
    DisableProxy {
        edge: String,
        instance: Option<String>,
    },
    EnableProxy {
        edge: String,
        instance: Option<String>,
    },
    /// SIGKILL through the demo's supervisor.
    Kill { instance: String },
    /// Kill (if running) and start again, waiting until it is ready.
    Restart { instance: String },
    /// Start a killed instance again, waiting until it is ready; a running one is left
    /// alone (what a rollback wants).
    Start { instance: String },
    /// SIGSTOP: the process is there but answers nothing.
    Pause { instance: String },
    /// SIGCONT.
    Resume { instance: String },
    Sleep {
        #[serde(deserialize_with = "de_duration")]
        duration: Duration,
    },

    /// An HTTP request to a part of the demo, with the answer it must get.
    Http(HttpProbe),
    /// A load run (a loadgen scenario file) that must meet its thresholds.
    Load(LoadProbe),
    /// The circuit breaker of `service` → `upstream` on every instance of `service`
    /// (`/admin/resilience`) is in `state`.
    Breaker {
        service: String,
        upstream: String,
        state: BreakerState,
    },
    /// Calls `service` made to one `instance` of its upstream over `over`, counted from
    /// `/admin/resilience`, within `min`..=`max`.
    Calls {
        service: String,
        instance: String,
        #[serde(deserialize_with = "de_duration")]
        over: Duration,
        min: Option<u64>,
        max: Option<u64>,
    },
    /// Whether the registry lists `instance` as healthy.
    Registry { instance: String, listed: bool },
    /// Traces in the collector with a span of `service` (and `operation`, `tags`), counted
    /// if one of that service's spans carries `event` (with `event_attributes`), within
    /// `min`..=`max`.
    Traces(TracesProbe),
    /// The share of `service`'s server spans with an error status is at most `max`.
    ErrorRate {
        service: String,
        #[serde(default)]
        window: Window,
        max: f64,
    },
    /// Every finished order of `customer` has exactly one notification of its outcome.
    Delivered { customer: String },
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
    pub target: String,
    #[serde(default = "get")]
    pub method: String,
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

fn get() -> String {
    "GET".into()
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
    pub duration: Option<String>,
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
    pub service: String,
    pub operation: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// A span event name, e.g. `circuit_breaker.state_change`.
    pub event: Option<String>,
    #[serde(default)]
    pub event_attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub window: Window,
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
                | Kind::Breaker { .. }
                | Kind::Calls { .. }
                | Kind::Registry { .. }
                | Kind::Traces(_)
                | Kind::ErrorRate { .. }
                | Kind::Delivered { .. }
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
            Kind::Kill { .. } => "kill",
            Kind::Restart { .. } => "restart",
            Kind::Start { .. } => "start",
            Kind::Pause { .. } => "pause",
            Kind::Resume { .. } => "resume",
            Kind::Sleep { .. } => "sleep",
            Kind::Http(_) => "http",
            Kind::Load(_) => "load",
            Kind::Breaker { .. } => "breaker",
            Kind::Calls { .. } => "calls",
            Kind::Registry { .. } => "registry",
            Kind::Traces(_) => "traces",
            Kind::ErrorRate { .. } => "error-rate",
            Kind::Delivered { .. } => "delivered",
        }
    }
}

/// An instance name of the demo's topology.
pub fn instance(name: &str) -> Result<InstanceId, String> {
    name.parse()
}

pub fn service(name: &str) -> Result<Service, String> {
    name.parse()
        .map_err(|e: <Service as std::str::FromStr>::Err| e.to_string())
}

/// An edge of the demo's topology, by its proxy name.
pub fn edge(name: &str) -> Result<Edge, String> {
    EDGES.into_iter().find(|e| e.name() == name).ok_or_else(|| {
        format!(
            "no edge {name} in the demo's topology: one of {}",
            EDGES.iter().map(Edge::name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The instance of the edge's provider, when one is named.
fn edge_instance(e: &str, i: &Option<String>) -> Result<(), String> {
    let edge = edge(e)?;
    if let Some(i) = i {
        let id = instance(i)?;
        if id.service != edge.provider {
            return Err(format!(
                "instance {i} is not a {} instance, so {e} does not lead to it",
                edge.provider
            ));
        }
    }
    Ok(())
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
                toxic,
            } => {
                edge_instance(edge, instance)?;
                toxic
                    .clone()
                    .into_toxic()
                    .map_err(|e| format!("the toxic: {}", e.error))?;
            }
            Kind::RemoveToxic { edge, instance, .. }
            | Kind::DisableProxy { edge, instance }
            | Kind::EnableProxy { edge, instance } => edge_instance(edge, instance)?,
            Kind::Kill { instance: i }
            | Kind::Restart { instance: i }
            | Kind::Start { instance: i }
            | Kind::Pause { instance: i }
            | Kind::Resume { instance: i }
            | Kind::Registry { instance: i, .. } => {
                instance(i)?;
            }
            Kind::Sleep { .. } | Kind::Delivered { .. } => {}
            Kind::Http(h) => {
                if !["gateway", "collector", "supervisor"].contains(&h.target.as_str()) {
                    instance(&h.target).map_err(|e| {
                        format!("target: gateway, collector, supervisor or an instance; {e}")
                    })?;
                }
                reqwest::Method::from_bytes(h.method.as_bytes())
                    .map_err(|_| format!("method {:?} is not an HTTP method", h.method))?;
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
                if let Some(d) = &l.duration {
                    humantime::parse_duration(d)
                        .map_err(|_| format!("duration {d:?} is not a duration"))?;
                }
                for exprs in l.thresholds.values() {
                    for x in exprs {
                        Threshold::parse(x).map_err(|e| e.to_string())?;
                    }
                }
            }
            Kind::Breaker {
                service: s,
                upstream,
                ..
            } => {
                service(s)?;
                service(upstream)?;
            }
            Kind::Calls {
                service: s,
                instance: i,
                min,
                max,
                ..
            } => {
                service(s)?;
                instance(i)?;
                if min.is_none() && max.is_none() {
                    return Err("a calls probe needs min, max or both".into());
                }
            }
            Kind::Traces(t) => {
                service(&t.service)?;
                if t.min.is_none() && t.max.is_none() {
                    return Err("a traces probe needs min, max or both".into());
                }
                if t.event.is_none() && !t.event_attributes.is_empty() {
                    return Err("event_attributes need an event".into());
                }
            }
            Kind::ErrorRate {
                service: s, max, ..
            } => {
                service(s)?;
                if !(0.0..=1.0).contains(max) {
                    return Err(format!("max = {max}: an error rate is between 0 and 1"));
                }
            }
        }
        Ok(())
    }
}
