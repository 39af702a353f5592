//! Scenario files and quick command lines → a [`Plan`]: every name, duration, URL, template,
//! check and threshold checked before anything is sent; a mistake names its scenario and step.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::file::*;
use super::plan::*;
use super::schedule::*;
use super::{ScenarioError, invalid};
use crate::check::Check;
use crate::template::Template;
use crate::threshold::Threshold;

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
        let executor = executor(&spec)?;
        let csv = match &spec.data {
            Some(path) => Some(Arc::new(CsvData::read(path).map_err(&ctx)?)),
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
            source: spec
                .source_address
                .as_deref()
                .map(Sources::parse)
                .transpose()
                .map_err(|e| invalid(format!("scenario {name:?}: source_address {e}")))?,
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
        let name = self.request_name(&label, scenario).map_err(at)?;
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

    /// The index of a request's name: its scenario's own, or a new one; one scenario's
    /// names are not another's, so their thresholds cannot mix.
    fn request_name(&mut self, label: &str, scenario: usize) -> Result<usize, String> {
        if let Some(i) = self
            .names
            .iter()
            .position(|n| n == label)
            .filter(|i| self.name_scenario[*i] == scenario)
        {
            return Ok(i);
        }
        if self.names.iter().any(|n| n == label) {
            return Err("another scenario has a request of this name: name it differently".into());
        }
        self.names.push(label.to_string());
        self.name_scenario.push(scenario);
        Ok(self.names.len() - 1)
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
                source: None,
            }],
            names: vec![label],
            name_scenario: vec![0],
            vars: HashMap::new(),
            thresholds,
            timeout: q.timeout,
            http2: q.http2,
        })
    }
}

/// A scenario's executor from its file form, with its rates per second and every limit
/// checked.
fn executor(spec: &ScenarioSpec) -> Result<Executor, ScenarioError> {
    let name = &spec.name;
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
    check_executor(spec, &stages, &executor).map_err(ctx)?;
    Ok(executor)
}

/// What makes an executor unable to run: a ramp without stages, no VU ever, a rate of 0 or
/// less, a negative stage target.
fn check_executor(
    spec: &ScenarioSpec,
    stages: &[Stage],
    executor: &Executor,
) -> Result<(), String> {
    if matches!(
        spec.executor,
        ExecutorKind::RampingVus | ExecutorKind::RampingArrivalRate
    ) && stages.is_empty()
    {
        return Err("a ramping executor needs `stages`".into());
    }
    if executor.max_vus() == 0 {
        return Err("no VU would ever run: set `vus` (or stage targets) above 0".into());
    }
    if let Executor::ConstantArrivalRate { per_second, .. } = *executor
        && (per_second.is_nan() || per_second <= 0.0)
    {
        return Err("`rate` must be above 0".into());
    }
    if stages.iter().any(|s| s.target < 0.0 || s.target.is_nan()) {
        return Err("a stage target cannot be negative".into());
    }
    Ok(())
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
