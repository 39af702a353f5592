//! What to run: a scenario file (`gauntlet load run FILE.toml`) or a quick command line
//! (`gauntlet load URL ...`), checked and compiled into a [`Plan`] before any request is
//! sent. Every mistake is reported with the scenario and step it is in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;

pub use http::Method as HttpMethod;

use crate::check::{Check, CheckSpec};
use crate::template::Template;
use crate::threshold::Threshold;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid scenario file: {message}")]
    Parse { path: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid(msg.into())
}

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Values templates can use as `{{name}}`.
    #[serde(default)]
    pub vars: BTreeMap<String, VarSpec>,
    /// Longest one request may take (default 10s).
    pub timeout: Option<String>,
    /// Speak HTTP/2 (prior knowledge, no TLS) instead of HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    /// `all`, `scenario:NAME` or `request:NAME` → criteria such as `p99 < 300ms`.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Vec<String>>,
    pub scenarios: Vec<ScenarioSpec>,
}

/// A variable: a literal, or a value read from a JSON file (such as the demo's demo.json).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum VarSpec {
    Literal(String),
    FromJson {
        /// Relative to the current directory.
        json_file: PathBuf,
        /// A JSON pointer, e.g. `/gateway`.
        pointer: String,
    },
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ExecutorKind {
    ConstantVus,
    RampingVus,
    ConstantArrivalRate,
    RampingArrivalRate,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    pub duration: String,
    /// VUs (ramping-vus) or iterations per time unit (ramping-arrival-rate) at the end.
    pub target: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    pub name: String,
    pub executor: ExecutorKind,
    /// constant-vus: how many; arrival-rate executors: the most at once (default 50).
    pub vus: Option<u32>,
    pub duration: Option<String>,
    /// constant-vus: stop after this many iterations in all instead of a duration.
    pub iterations: Option<u64>,
    /// constant-arrival-rate: iterations per `time_unit`.
    pub rate: Option<f64>,
    /// Default `1s`.
    pub time_unit: Option<String>,
    pub start_rate: Option<f64>,
    pub start_vus: Option<u32>,
    #[serde(default)]
    pub stages: Vec<StageSpec>,
    /// Wait this long after the run starts before starting (default 0).
    pub start_after: Option<String>,
    /// Closed-model executors: each VU pauses this long between iterations, as a person
    /// reading a page would.
    pub think_time: Option<String>,
    /// A CSV file with a header row; each iteration takes the next row as `{{csv.COLUMN}}`.
    pub data: Option<PathBuf>,
    /// Steps each VU runs once, before its first iteration (e.g. log in).
    #[serde(default)]
    pub setup: Vec<StepSpec>,
    /// Each iteration runs one flow, picked by weight.
    pub flows: Vec<FlowSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSpec {
    #[serde(default = "one")]
    pub weight: u32,
    pub steps: Vec<StepSpec>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The name its figures and thresholds go by (default: `METHOD URL`).
    pub name: Option<String>,
    #[serde(default = "get")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// Variable name → JSON pointer into the answer, kept for later steps and iterations.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
    #[serde(default)]
    pub checks: Vec<CheckSpec>,
    /// Statuses that are not failures (default: any below 400).
    pub expect_status: Option<Vec<u16>>,
}

fn get() -> String {
    "GET".into()
}

/// A ramp stage: reach `target` over `duration`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// How iterations are started.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// Closed model: `vus` loop as fast as answers come.
    ConstantVus { vus: u32, end: End },
    /// Closed model, the number of looping VUs following the stages.
    RampingVus { start_vus: u32, stages: Vec<Stage> },
    /// Open model: iterations start at `per_second`, whatever the answers do.
    ConstantArrivalRate {
        per_second: f64,
        duration: Duration,
        max_vus: u32,
    },
    /// Open model with a rate following the stages.
    RampingArrivalRate {
        start_per_second: f64,
        stages: Vec<Stage>,
        max_vus: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum End {
    After(Duration),
    Iterations(u64),
}

impl Executor {
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            Executor::ConstantArrivalRate { .. } | Executor::RampingArrivalRate { .. }
        )
    }

    /// How many VUs (connections) may run at once.
    pub fn max_vus(&self) -> u32 {
        match self {
            Executor::ConstantVus { vus, .. } => *vus,
            Executor::RampingVus { start_vus, stages } => stages
                .iter()
                .map(|s| s.target.ceil() as u32)
                .max()
                .unwrap_or(0)
                .max(*start_vus),
            Executor::ConstantArrivalRate { max_vus, .. }
            | Executor::RampingArrivalRate { max_vus, .. } => *max_vus,
        }
    }

    /// How long it runs, if bounded by time.
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Executor::ConstantVus {
                end: End::After(d), ..
            }
            | Executor::ConstantArrivalRate { duration: d, .. } => Some(*d),
            Executor::ConstantVus { .. } => None,
            Executor::RampingVus { stages, .. } | Executor::RampingArrivalRate { stages, .. } => {
                Some(stages.iter().map(|s| s.duration).sum())
            }
        }
    }

    /// Ramping VUs: how many should be looping `t` after the start.
    pub fn active_vus(&self, t: Duration) -> u32 {
        match self {
            Executor::RampingVus { start_vus, stages } => {
                ramp_value(f64::from(*start_vus), stages, t).round() as u32
            }
            other => other.max_vus(),
        }
    }

    /// Open model: when iteration `i` (from 0) should start, after the start; `None` once
    /// past the end. Constant rate: `i / rate`. Ramps: the time at which the integral of
    /// the (piecewise linear) rate reaches `i`.
    pub fn intended_start(&self, i: u64) -> Option<Duration> {
        let n = i as f64;
        match self {
            Executor::ConstantArrivalRate {
                per_second,
                duration,
                ..
            } => {
                let t = Duration::from_secs_f64(n / per_second);
                (t < *duration).then_some(t)
            }
            Executor::RampingArrivalRate {
                start_per_second,
                stages,
                ..
            } => {
                let (mut before, mut elapsed, mut r0) = (0.0, 0.0, *start_per_second);
                for s in stages {
                    let d = s.duration.as_secs_f64();
                    let r1 = s.target;
                    let here = (r0 + r1) / 2.0 * d;
                    if n < before + here {
                        // Solve r0 t + (r1 - r0) t² / 2d = n - before for t in [0, d].
                        let need = n - before;
                        let a = (r1 - r0) / (2.0 * d);
                        let t = if a.abs() < 1e-12 {
                            need / r0
                        } else {
                            (-r0 + (r0 * r0 + 4.0 * a * need).max(0.0).sqrt()) / (2.0 * a)
                        };
                        return Some(Duration::from_secs_f64(elapsed + t.clamp(0.0, d)));
                    }
                    before += here;
                    elapsed += d;
                    r0 = r1;
                }
                None
            }
            _ => None,
        }
    }

    /// The intended rate `t` after the start (open model), for reporting.
    pub fn target_rate(&self) -> Option<f64> {
        match self {
            Executor::ConstantArrivalRate { per_second, .. } => Some(*per_second),
            Executor::RampingArrivalRate {
                start_per_second,
                stages,
                ..
            } => {
                let total: f64 = stages.iter().map(|s| s.duration.as_secs_f64()).sum();
                let mut sum = 0.0;
                let mut r0 = *start_per_second;
                for s in stages {
                    sum += (r0 + s.target) / 2.0 * s.duration.as_secs_f64();
                    r0 = s.target;
                }
                (total > 0.0).then(|| sum / total)
            }
            _ => None,
        }
    }
}

/// A piecewise linear ramp's value `t` after its start.
fn ramp_value(start: f64, stages: &[Stage], t: Duration) -> f64 {
    let mut from = start;
    let mut left = t;
    for s in stages {
        if left < s.duration {
            let f = left.as_secs_f64() / s.duration.as_secs_f64().max(1e-9);
            return from + (s.target - from) * f;
        }
        left -= s.duration;
        from = s.target;
    }
    from
}

/// A URL known when the plan is made, parsed once.
#[derive(Debug, Clone)]
pub struct FixedUrl {
    pub text: String,
    pub uri: http::Uri,
    pub authority: String,
}

impl FixedUrl {
    pub fn parse(text: &str) -> Option<Self> {
        let uri: http::Uri = text.parse().ok()?;
        let authority = uri.authority()?.as_str().to_string();
        Some(Self {
            text: text.to_string(),
            uri,
            authority,
        })
    }
}

/// One request of a flow.
#[derive(Debug, Clone)]
pub struct Step {
    /// Index into [`Plan::names`].
    pub name: usize,
    pub method: http::Method,
    pub url: Template,
    /// The URL, when it has no placeholders.
    pub fixed_url: Option<FixedUrl>,
    pub headers: Vec<(http::HeaderName, Template)>,
    pub body: Option<Template>,
    pub captures: Vec<(String, String)>,
    pub checks: Vec<Check>,
    pub expect_status: Option<Vec<u16>>,
}

impl Step {
    /// Whether the answer must be parsed as JSON (for a check or a capture).
    pub fn needs_json(&self) -> bool {
        !self.captures.is_empty() || self.checks.iter().any(Check::needs_json)
    }

    pub fn status_ok(&self, status: u16) -> bool {
        match &self.expect_status {
            Some(list) => list.contains(&status),
            None => status < 400,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub weight: u32,
    pub steps: Vec<Step>,
}

/// CSV rows handed out round-robin, one per iteration.
#[derive(Debug)]
pub struct CsvData {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    next: AtomicUsize,
}

impl CsvData {
    pub fn next_row(&self) -> Option<&[String]> {
        if self.rows.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.rows.len();
        Some(&self.rows[i])
    }
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub executor: Executor,
    pub start_after: Duration,
    /// Pause between a VU's iterations (closed model).
    pub think_time: Duration,
    pub setup: Vec<Step>,
    pub flows: Vec<Flow>,
    pub csv: Option<Arc<CsvData>>,
}

impl Scenario {
    /// A flow picked by weight.
    pub fn pick_flow(&self) -> Option<&Flow> {
        let total: u32 = self.flows.iter().map(|f| f.weight).sum();
        if total == 0 {
            return None;
        }
        let mut at = fastrand::u32(0..total);
        for f in &self.flows {
            if at < f.weight {
                return Some(f);
            }
            at -= f.weight;
        }
        self.flows.last()
    }
}

/// A checked, compiled run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenarios: Vec<Scenario>,
    /// Request names, indexed by [`Step::name`].
    pub names: Vec<String>,
    /// For each name, the scenario it belongs to.
    pub name_scenario: Vec<usize>,
    pub vars: HashMap<String, String>,
    /// (scope, threshold): scope is `all`, `scenario:NAME` or `request:NAME`.
    pub thresholds: Vec<(String, Threshold)>,
    pub timeout: Duration,
    pub http2: bool,
}

fn duration(what: &str, s: &str) -> Result<Duration, ScenarioError> {
    humantime::parse_duration(s).map_err(|_| {
        invalid(format!(
            "{what}: {s:?} is not a duration (write 30s, 2m, 500ms)"
        ))
    })
}

impl Plan {
    /// Reads and checks a scenario file. `overrides` (`--var k=v`) win over `[vars]`.
    pub fn from_file(path: &Path, overrides: &[(String, String)]) -> Result<Self, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: ScenarioFile = toml::from_str(&text).map_err(|e| ScenarioError::Parse {
            path: shown,
            message: e.to_string(),
        })?;
        Self::compile(file, overrides)
    }

    pub fn compile(
        file: ScenarioFile,
        overrides: &[(String, String)],
    ) -> Result<Self, ScenarioError> {
        let mut vars = HashMap::new();
        let overridden: HashSet<&str> = overrides.iter().map(|(k, _)| k.as_str()).collect();
        for (name, spec) in file.vars {
            if overridden.contains(name.as_str()) {
                continue;
            }
            vars.insert(name.clone(), resolve_var(&name, spec)?);
        }
        for (k, v) in overrides {
            vars.insert(k.clone(), v.clone());
        }
        if file.scenarios.is_empty() {
            return Err(invalid("the file has no [[scenarios]]"));
        }
        let mut plan = Plan {
            scenarios: Vec::new(),
            names: Vec::new(),
            name_scenario: Vec::new(),
            vars,
            thresholds: Vec::new(),
            timeout: match &file.timeout {
                Some(t) => duration("timeout", t)?,
                None => Duration::from_secs(10),
            },
            http2: file.http2,
        };
        let mut seen = HashSet::new();
        for spec in file.scenarios {
            if !seen.insert(spec.name.clone()) {
                return Err(invalid(format!("two scenarios are named {:?}", spec.name)));
            }
            let index = plan.scenarios.len();
            let scenario = plan.scenario(spec, index)?;
            plan.scenarios.push(scenario);
        }
        for (scope, list) in file.thresholds {
            plan.check_scope(&scope)?;
            for expr in list {
                let t = Threshold::parse(&expr).map_err(|e| invalid(e.to_string()))?;
                plan.thresholds.push((scope.clone(), t));
            }
        }
        Ok(plan)
    }

    fn check_scope(&self, scope: &str) -> Result<(), ScenarioError> {
        let known = match scope.split_once(':') {
            None => scope == "all",
            Some(("scenario", name)) => self.scenarios.iter().any(|s| s.name == name),
            Some(("request", name)) => self.names.iter().any(|n| n == name),
            _ => false,
        };
        if known {
            Ok(())
        } else {
            Err(invalid(format!(
                "[thresholds] {scope:?}: write `all`, `\"scenario:NAME\"` or `\"request:NAME\"` with a scenario or request name of this file (requests: {})",
                self.names.join(", ")
            )))
        }
    }

    fn scenario(&mut self, spec: ScenarioSpec, index: usize) -> Result<Scenario, ScenarioError> {
        let name = spec.name.clone();
        let ctx = |msg: String| invalid(format!("scenario {name:?}: {msg}"));
        let need = |v: Option<&String>, key: &str| {
            v.cloned().ok_or_else(|| {
                ctx(format!(
                    "executor {:?} needs `{key}`",
                    format!("{:?}", spec.executor)
                ))
            })
        };
        let time_unit = match &spec.time_unit {
            Some(t) => duration(&format!("scenario {name:?} time_unit"), t)?,
            None => Duration::from_secs(1),
        };
        let per_second = |v: f64| v / time_unit.as_secs_f64();
        let stages = spec
            .stages
            .iter()
            .map(|s| {
                Ok(Stage {
                    duration: duration(&format!("scenario {name:?} stage"), &s.duration)?,
                    target: s.target,
                })
            })
            .collect::<Result<Vec<_>, ScenarioError>>()?;
        let max_vus = spec.vus.unwrap_or(50);
        let executor = match spec.executor {
            ExecutorKind::ConstantVus => {
                let vus = spec
                    .vus
                    .ok_or_else(|| ctx("constant-vus needs `vus`".into()))?;
                let end = match (&spec.duration, spec.iterations) {
                    (Some(d), None) => End::After(duration(&format!("scenario {name:?}"), d)?),
                    (None, Some(n)) => End::Iterations(n),
                    _ => {
                        return Err(ctx(
                            "constant-vus needs either `duration` or `iterations`".into()
                        ));
                    }
                };
                Executor::ConstantVus { vus, end }
            }
            ExecutorKind::RampingVus => Executor::RampingVus {
                start_vus: spec.start_vus.unwrap_or(0),
                stages: stages.clone(),
            },
            ExecutorKind::ConstantArrivalRate => {
                let rate = spec
                    .rate
                    .ok_or_else(|| ctx("constant-arrival-rate needs `rate`".into()))?;
                let d = need(spec.duration.as_ref(), "duration")?;
                Executor::ConstantArrivalRate {
                    per_second: per_second(rate),
                    duration: duration(&format!("scenario {name:?}"), &d)?,
                    max_vus,
                }
            }
            ExecutorKind::RampingArrivalRate => Executor::RampingArrivalRate {
                start_per_second: per_second(spec.start_rate.unwrap_or(0.0)),
                stages: stages
                    .iter()
                    .map(|s| Stage {
                        target: per_second(s.target),
                        ..*s
                    })
                    .collect(),
                max_vus,
            },
        };
        if matches!(
            spec.executor,
            ExecutorKind::RampingVus | ExecutorKind::RampingArrivalRate
        ) && stages.is_empty()
        {
            return Err(ctx("a ramping executor needs `stages`".into()));
        }
        if executor.max_vus() == 0 {
            return Err(ctx(
                "no VU would ever run: set `vus` (or stage targets) above 0".into(),
            ));
        }
        if let Executor::ConstantArrivalRate { per_second, .. } = executor
            && (per_second.is_nan() || per_second <= 0.0)
        {
            return Err(ctx("`rate` must be above 0".into()));
        }
        if stages.iter().any(|s| s.target < 0.0 || s.target.is_nan()) {
            return Err(ctx("a stage target cannot be negative".into()));
        }
        let csv = match &spec.data {
            Some(path) => Some(Arc::new(read_csv(path).map_err(&ctx)?)),
            None => None,
        };
        // Every name a template may use: [vars], CSV columns, and anything captured.
        let mut known: HashSet<String> = self.vars.keys().cloned().collect();
        if let Some(c) = &csv {
            known.extend(c.columns.iter().map(|col| format!("csv.{col}")));
        }
        for step in spec
            .setup
            .iter()
            .chain(spec.flows.iter().flat_map(|f| f.steps.iter()))
        {
            known.extend(step.capture.keys().cloned());
        }
        let mut steps = |list: Vec<StepSpec>| -> Result<Vec<Step>, ScenarioError> {
            list.into_iter()
                .map(|s| self.step(s, index, &known).map_err(&ctx))
                .collect()
        };
        let setup = steps(spec.setup)?;
        let mut flows = Vec::new();
        for f in spec.flows {
            if f.steps.is_empty() {
                return Err(ctx("a flow has no steps".into()));
            }
            flows.push(Flow {
                weight: f.weight,
                steps: steps(f.steps)?,
            });
        }
        if flows.iter().all(|f| f.weight == 0) {
            return Err(ctx(
                "needs at least one [[scenarios.flows]] with a weight above 0".into(),
            ));
        }
        let think_time = match &spec.think_time {
            Some(_) if executor.is_open() => {
                return Err(ctx(
                    "think_time is for closed-model executors: an arrival-rate executor already paces iterations".into(),
                ));
            }
            Some(d) => duration(&format!("scenario {name:?} think_time"), d)?,
            None => Duration::ZERO,
        };
        Ok(Scenario {
            name: name.clone(),
            executor,
            think_time,
            start_after: match &spec.start_after {
                Some(d) => duration(&format!("scenario {name:?} start_after"), d)?,
                None => Duration::ZERO,
            },
            setup,
            flows,
            csv,
        })
    }

    fn step(
        &mut self,
        s: StepSpec,
        scenario: usize,
        known: &HashSet<String>,
    ) -> Result<Step, String> {
        let label = s
            .name
            .clone()
            .unwrap_or_else(|| format!("{} {}", s.method, s.url));
        let at = |m: String| format!("step {label:?}: {m}");
        let method = http::Method::from_bytes(s.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| at(format!("{:?} is not an HTTP method", s.method)))?;
        let template = |t: &str| -> Result<Template, String> {
            let t = Template::parse(t).map_err(|e| at(e.to_string()))?;
            for v in t.vars() {
                if !known.contains(v) {
                    let mut names: Vec<&String> = known.iter().collect();
                    names.sort();
                    return Err(at(format!(
                        "{{{{{v}}}}} is not a var, a CSV column (csv.NAME) or a capture; known: {names:?}"
                    )));
                }
            }
            Ok(t)
        };
        let url = template(&s.url)?;
        if let Some(u) = url.as_static() {
            check_url(u).map_err(at)?;
        }
        if s.url.trim_start().starts_with("https:") {
            return Err(at(
                "https is not supported: targets are local (http://...)".into()
            ));
        }
        let mut headers = Vec::new();
        for (k, v) in &s.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| at(format!("{k:?} is not a header name")))?;
            headers.push((name, template(v)?));
        }
        let body = s.body.as_deref().map(template).transpose()?;
        let checks = s
            .checks
            .into_iter()
            .map(|c| Check::try_from(c).map_err(|e| at(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        for (var, pointer) in &s.capture {
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                return Err(at(format!(
                    "capture {var}: {pointer:?} is not a JSON pointer (write /field/0/name)"
                )));
            }
        }
        let name = match self
            .names
            .iter()
            .position(|n| *n == label)
            .filter(|i| self.name_scenario[*i] == scenario)
        {
            Some(i) => i,
            None => {
                if self.names.contains(&label) {
                    return Err(at(
                        "another scenario has a request of this name: name it differently".into(),
                    ));
                }
                self.names.push(label.clone());
                self.name_scenario.push(scenario);
                self.names.len() - 1
            }
        };
        Ok(Step {
            name,
            method,
            fixed_url: url.as_static().and_then(FixedUrl::parse),
            url,
            headers,
            body,
            captures: s.capture.into_iter().collect(),
            checks,
            expect_status: s.expect_status,
        })
    }

    /// A one-request plan for `gauntlet load URL`.
    pub fn quick(q: Quick) -> Result<Self, ScenarioError> {
        check_url(&q.url).map_err(invalid)?;
        let executor = match (q.rate, q.requests) {
            (Some(r), _) if r.is_nan() || r <= 0.0 => return Err(invalid("-r must be above 0")),
            (Some(per_second), None) => Executor::ConstantArrivalRate {
                per_second,
                duration: q.duration,
                max_vus: q.connections,
            },
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "-n (a request count) goes with the closed model: drop -r, or use -d with -r",
                ));
            }
            (None, Some(n)) => Executor::ConstantVus {
                vus: q.connections,
                end: End::Iterations(n),
            },
            (None, None) => Executor::ConstantVus {
                vus: q.connections,
                end: End::After(q.duration),
            },
        };
        if q.connections == 0 {
            return Err(invalid("-c must be at least 1"));
        }
        let mut headers = Vec::new();
        for (k, v) in q.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| invalid(format!("-H {k:?}: not a header name")))?;
            headers.push((name, Template::literal(v)));
        }
        let label = format!("{} {}", q.method, q.url);
        let step = Step {
            name: 0,
            method: q.method,
            fixed_url: FixedUrl::parse(&q.url),
            url: Template::literal(q.url),
            headers,
            body: q.body.map(Template::literal),
            captures: Vec::new(),
            checks: Vec::new(),
            expect_status: None,
        };
        let mut thresholds = Vec::new();
        for expr in q.thresholds {
            thresholds.push((
                "all".to_string(),
                Threshold::parse(&expr).map_err(|e| invalid(e.to_string()))?,
            ));
        }
        Ok(Plan {
            scenarios: vec![Scenario {
                name: "default".into(),
                executor,
                start_after: Duration::ZERO,
                think_time: Duration::ZERO,
                setup: Vec::new(),
                flows: vec![Flow {
                    weight: 1,
                    steps: vec![step],
                }],
                csv: None,
            }],
            names: vec![label],
            name_scenario: vec![0],
            vars: HashMap::new(),
            thresholds,
            timeout: q.timeout,
            http2: q.http2,
        })
    }

    /// How long the run lasts at most (start offsets included), if bounded by time.
    pub fn duration(&self) -> Option<Duration> {
        self.scenarios
            .iter()
            .map(|s| s.executor.duration().map(|d| d + s.start_after))
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.into_iter().max())
    }

    /// The total request count, when every scenario is bounded by a count.
    pub fn request_budget(&self) -> Option<u64> {
        self.scenarios
            .iter()
            .map(|s| match s.executor {
                Executor::ConstantVus {
                    end: End::Iterations(n),
                    ..
                } => Some(n),
                _ => None,
            })
            .sum()
    }
}

/// `gauntlet load URL` flags.
#[derive(Debug, Clone)]
pub struct Quick {
    pub url: String,
    pub method: http::Method,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub connections: u32,
    pub rate: Option<f64>,
    pub duration: Duration,
    pub requests: Option<u64>,
    pub timeout: Duration,
    pub http2: bool,
    pub thresholds: Vec<String>,
}

/// An absolute `http://` URL with a host.
pub fn check_url(u: &str) -> Result<(), String> {
    let uri: http::Uri = u.parse().map_err(|e| {
        format!("{u:?} is not a URL ({e}): write an absolute http:// URL, e.g. http://127.0.0.1:8080/path")
    })?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http"), Some(_)) => Ok(()),
        (Some("https"), _) => Err(format!(
            "{u:?}: https is not supported: targets are local (http://...)"
        )),
        _ => Err(format!(
            "{u:?} must be an absolute http:// URL, e.g. http://127.0.0.1:8080/path"
        )),
    }
}

fn resolve_var(name: &str, spec: VarSpec) -> Result<String, ScenarioError> {
    match spec {
        VarSpec::Literal(s) => Ok(s),
        VarSpec::FromJson { json_file, pointer } => {
            let shown = json_file.display().to_string();
            let text = std::fs::read_to_string(&json_file).map_err(|e| {
                invalid(format!(
                    "var {name}: cannot read {shown}: {e} (for the demo: is `gauntlet demo` running from this directory? or pass --var {name}=VALUE)"
                ))
            })?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| invalid(format!("var {name}: {shown} is not JSON: {e}")))?;
            crate::check::capture(&json, &pointer)
                .ok_or_else(|| invalid(format!("var {name}: {shown} has nothing at {pointer:?}")))
        }
    }
}

fn read_csv(path: &Path) -> Result<CsvData, String> {
    let shown = path.display().to_string();
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| format!("{shown}: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| format!("{shown} row {}: {e}", i + 2))?;
        rows.push(rec.iter().map(str::to_string).collect());
    }
    if rows.is_empty() {
        return Err(format!("{shown} has a header but no rows"));
    }
    Ok(CsvData {
        columns,
        rows,
        next: AtomicUsize::new(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(toml_text: &str) -> Result<Plan, ScenarioError> {
        Plan::compile(
            toml::from_str(toml_text).map_err(|e| invalid(e.to_string()))?,
            &[],
        )
    }

    #[test]
    fn open_model_schedules_follow_the_rate_and_the_ramp() {
        let c = Executor::ConstantArrivalRate {
            per_second: 200.0,
            duration: Duration::from_secs(1),
            max_vus: 4,
        };
        assert_eq!(c.intended_start(100), Some(Duration::from_millis(500)));
        assert_eq!(c.intended_start(200), None, "past the end");
        // 0 → 100/s over 10 s: 500 iterations in all; the 125th starts at 5 s.
        let r = Executor::RampingArrivalRate {
            start_per_second: 0.0,
            stages: vec![Stage {
                duration: Duration::from_secs(10),
                target: 100.0,
            }],
            max_vus: 10,
        };
        let t = r.intended_start(125).expect("within").as_secs_f64();
        assert!((t - 5.0).abs() < 1e-6, "{t}");
        assert_eq!(r.intended_start(500), None);
        let ramp = Executor::RampingVus {
            start_vus: 0,
            stages: vec![
                Stage {
                    duration: Duration::from_secs(10),
                    target: 10.0,
                },
                Stage {
                    duration: Duration::from_secs(10),
                    target: 0.0,
                },
            ],
        };
        assert_eq!(ramp.active_vus(Duration::from_secs(5)), 5);
        assert_eq!(ramp.active_vus(Duration::from_secs(15)), 5);
        assert_eq!(ramp.max_vus(), 10);
    }

    #[test]
    fn a_scenario_file_compiles_and_mistakes_name_their_place() {
        let good = r#"
            [vars]
            base = "http://127.0.0.1:9"
            [thresholds]
            all = ["p99 < 300ms"]
            "request:login" = ["error_rate < 0.01"]
            [[scenarios]]
            name = "shop"
            executor = "constant-arrival-rate"
            rate = 10
            duration = "2s"
            [[scenarios.setup]]
            name = "login"
            method = "POST"
            url = "{{base}}/token"
            capture = { token = "/access_token" }
            [[scenarios.flows]]
            weight = 3
            [[scenarios.flows.steps]]
            url = "{{base}}/products"
            headers = { authorization = "Bearer {{token}}" }
            checks = [{ status = 200 }, { json = "/0/sku", exists = true }]
        "#;
        let p = plan(good).expect("compiles");
        assert_eq!(p.names, ["login", "GET {{base}}/products"]);
        assert_eq!(p.thresholds.len(), 2);
        assert!(p.scenarios[0].executor.is_open());
        assert_eq!(p.duration(), Some(Duration::from_secs(2)));

        let cases = [
            (good.replace("{{token}}", "{{tokn}}"), "tokn"),
            (good.replace("rate = 10\n", ""), "needs `rate`"),
            (good.replace("\"2s\"", "\"two seconds\""), "not a duration"),
            (
                good.replace("\"request:login\"", "\"request:logout\""),
                "request:NAME",
            ),
            (good.replace("p99 < 300ms", "p99 300ms"), "METRIC OP VALUE"),
            (
                good.replace("status = 200", "status = 200, body_contains = \"x\""),
                "exactly one",
            ),
            (
                good.replace("\"/access_token\"", "\"access_token\""),
                "JSON pointer",
            ),
            (
                good.replace("{{base}}/token", "https://example.com/token"),
                "https",
            ),
        ];
        for (text, needle) in cases {
            let err = plan(&text).expect_err(needle).to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn quick_mode_refuses_what_cannot_be_run() {
        let q = Quick {
            url: "http://127.0.0.1:1/".into(),
            method: http::Method::GET,
            headers: vec![],
            body: None,
            connections: 2,
            rate: None,
            duration: Duration::from_secs(1),
            requests: None,
            timeout: Duration::from_secs(1),
            http2: false,
            thresholds: vec![],
        };
        assert!(Plan::quick(q.clone()).is_ok());
        let bad = |q: Quick| Plan::quick(q).expect_err("refused").to_string();
        assert!(
            bad(Quick {
                url: "127.0.0.1:1".into(),
                ..q.clone()
            })
            .contains("http://")
        );
        assert!(
            bad(Quick {
                rate: Some(0.0),
                ..q.clone()
            })
            .contains("-r")
        );
        assert!(
            bad(Quick {
                rate: Some(5.0),
                requests: Some(3),
                ..q.clone()
            })
            .contains("-n")
        );
        assert!(
            bad(Quick {
                connections: 0,
                ..q
            })
            .contains("-c")
        );
    }
}
