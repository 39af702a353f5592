//! The suite file (`gauntlet.toml`) as it is written, and [`Suite`]: the file checked whole
//! before anything touches a system. Every experiment is read and checked, every load
//! scenario compiled, the pacts read, and `--only` must name a pattern an experiment of the
//! suite validates; any mistake is an error naming the file and, for TOML, the line and
//! column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gauntlet_chaos::{Experiment, Pattern};
use gauntlet_contracts::PactFile;
use gauntlet_demo_system::config::DemoConfig;
use gauntlet_demo_system::handle::DemoHandle;
use gauntlet_loadgen::scenario::{Plan, ScenarioFile};

use crate::assertions::Assertions;
use serde::Deserialize;

/// `gauntlet.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    title: String,
    #[serde(default)]
    system: SystemSpec,
    contracts: Option<ContractsSpec>,
    #[serde(default)]
    load: Vec<LoadSpec>,
    /// Experiment files; each validates one pattern, proven against a control system.
    #[serde(default)]
    experiments: Vec<PathBuf>,
    /// Trace-based assertion files, checked after the load runs.
    #[serde(default, rename = "assert")]
    asserts: Vec<AssertSpec>,
}

/// `[[assert]]`: an assertion file, on the trace sets its trigger request makes, or on every
/// set of a load run's window.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssertSpec {
    pub file: PathBuf,
    /// A `[[load]]` of the suite, by name: its window's trace sets instead of the trigger's.
    pub load: Option<String>,
}

/// An assertion file of a checked suite.
#[derive(Debug, Clone)]
pub struct AssertRun {
    pub spec: AssertSpec,
    pub assertions: Assertions,
}

/// The system put through the gauntlet: the bundled demo, started with its chaos proxies;
/// or a running system named by its handle (and its controls by theirs).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemSpec {
    /// The demo's settings (as `gauntlet demo --config` takes them).
    config: Option<PathBuf>,
    /// A running system's handle (`demo.json`): it is used, not started or stopped.
    handle: Option<PathBuf>,
    /// With `handle`: pattern → the handle of a running system without it, its control.
    #[serde(default)]
    controls: BTreeMap<String, PathBuf>,
}

/// A running system named by its handle, and the controls named for its patterns.
#[derive(Debug, Clone)]
pub struct External {
    pub handle_path: PathBuf,
    pub handle: DemoHandle,
    pub controls: BTreeMap<Pattern, (PathBuf, DemoHandle)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractsSpec {
    /// Every provider these pacts name is verified against the system.
    pacts: PathBuf,
    /// Compare the calls the run caused with the contracts (reported, not judged).
    #[serde(default = "yes")]
    drift: bool,
}

fn yes() -> bool {
    true
}

/// A load run against the system, with thresholds that must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    pub name: String,
    /// A loadgen scenario file; `{{gateway}}` is the system's gateway.
    pub scenario: PathBuf,
    /// Overrides every scenario's duration (`10s`).
    pub duration: Option<String>,
    /// Replaces the file's thresholds.
    #[serde(default)]
    pub thresholds: BTreeMap<String, Vec<String>>,
}

/// The contracts part of a checked suite.
#[derive(Debug, Clone)]
pub struct Contracts {
    pub dir: PathBuf,
    pub pacts: Vec<PactFile>,
    pub drift: bool,
}

/// A load run of a checked suite: its file read and compiled once already.
#[derive(Debug, Clone)]
pub struct Load {
    pub spec: LoadSpec,
    /// The scenario file's path, relative to the suite.
    pub path: PathBuf,
    pub file_text: String,
}

/// A suite checked whole.
#[derive(Debug, Clone)]
pub struct Suite {
    pub title: String,
    pub path: PathBuf,
    /// The demo's settings, before any pattern is switched off.
    pub config: DemoConfig,
    /// A running system instead of the bundled demo.
    pub external: Option<External>,
    pub contracts: Option<Contracts>,
    pub loads: Vec<Load>,
    /// Each experiment's file (as written in the suite) and its checked contents.
    pub experiments: Vec<(PathBuf, Experiment)>,
    pub asserts: Vec<AssertRun>,
    /// `--only`: just these patterns' experiments (contracts and load skipped).
    pub only: Vec<Pattern>,
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} is not a valid suite: {message}")]
    Invalid { path: String, message: String },
}

impl Suite {
    /// Reads `path` and checks everything it names; `only` selects patterns.
    pub fn load(path: &Path, only: &[Pattern]) -> Result<Self, SuiteError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SuiteError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let invalid = |message: String| SuiteError::Invalid {
            path: shown.clone(),
            message,
        };
        let file: SuiteFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let config = match &file.system.config {
            Some(c) => DemoConfig::load(&dir.join(c)).map_err(|e| invalid(e.to_string()))?,
            None => DemoConfig::default(),
        };
        let external = external(&dir, &file.system).map_err(invalid)?;
        let asserts = file
            .asserts
            .into_iter()
            .map(|a| assert_run(&dir, a, &file.load))
            .collect::<Result<_, _>>()
            .map_err(invalid)?;
        let suite = Suite {
            title: file.title,
            path: path.to_path_buf(),
            config,
            external,
            contracts: file
                .contracts
                .map(|c| contracts(&dir, c))
                .transpose()
                .map_err(invalid)?,
            loads: file
                .load
                .into_iter()
                .map(|l| load(&dir, l))
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
            experiments: experiments(&dir, &file.experiments).map_err(invalid)?,
            asserts,
            only: only.to_vec(),
        };
        suite.check_only().map_err(invalid)?;
        Ok(suite)
    }

    fn check_only(&self) -> Result<(), String> {
        if self.experiments.is_empty()
            && self.loads.is_empty()
            && self.contracts.is_none()
            && self.asserts.is_empty()
        {
            return Err(
                "it names no experiments, load runs, assertions or contracts: nothing to run"
                    .into(),
            );
        }
        let mut seen = Vec::new();
        for (path, e) in &self.experiments {
            if seen.contains(&e.validates) {
                return Err(format!(
                    "two experiments validate {} ({} is the second)",
                    e.validates,
                    path.display()
                ));
            }
            seen.push(e.validates);
        }
        if let Some(p) = self.only.iter().find(|p| !seen.contains(p)) {
            let names: Vec<&str> = seen.iter().map(|p| p.name()).collect();
            return Err(format!(
                "--only {p}: no experiment of the suite validates it (they validate: {})",
                names.join(", ")
            ));
        }
        Ok(())
    }

    /// The experiments to run: all, or those `--only` selects.
    pub fn selected(&self) -> impl Iterator<Item = &(PathBuf, Experiment)> {
        self.experiments
            .iter()
            .filter(|(_, e)| self.only.is_empty() || self.only.contains(&e.validates))
    }

    /// The directory the suite's paths are relative to.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

fn contracts(dir: &Path, c: ContractsSpec) -> Result<Contracts, String> {
    let pacts_dir = dir.join(&c.pacts);
    let pacts = gauntlet_contracts::pacts::all(&pacts_dir)
        .map_err(|e| format!("contracts.pacts {}: {e}", c.pacts.display()))?;
    if pacts.is_empty() {
        return Err(format!(
            "contracts.pacts {}: no pact files there",
            c.pacts.display()
        ));
    }
    Ok(Contracts {
        dir: pacts_dir,
        pacts,
        drift: c.drift,
    })
}

fn load(dir: &Path, spec: LoadSpec) -> Result<Load, String> {
    let path = dir.join(&spec.scenario);
    let what = format!("load {:?} ({})", spec.name, spec.scenario.display());
    let file_text = std::fs::read_to_string(&path).map_err(|e| format!("{what}: {e}"))?;
    let load = Load {
        spec,
        path,
        file_text,
    };
    // Compiled once with stand-in addresses: every mistake shows now, not mid-run.
    load.plan("http://127.0.0.1:9", "check")
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(load)
}

impl Load {
    /// The run's plan against `gateway`, `run` naming its orders' customer.
    pub fn plan(&self, gateway: &str, run: &str) -> Result<Plan, String> {
        let mut file: ScenarioFile = toml::from_str(&self.file_text).map_err(|e| e.to_string())?;
        if let Some(d) = &self.spec.duration {
            humantime::parse_duration(d)
                .map_err(|_| format!("duration {d:?} is not a duration (10s, 1m)"))?;
            for s in &mut file.scenarios {
                if s.stages.is_empty() {
                    s.duration = Some(d.clone());
                    s.iterations = None;
                }
            }
        }
        if !self.spec.thresholds.is_empty() {
            file.thresholds = self.spec.thresholds.clone();
        }
        let vars = [
            ("gateway".to_string(), gateway.to_string()),
            ("run".to_string(), run.to_string()),
        ];
        Plan::compile(file, &vars).map_err(|e| e.to_string())
    }
}

/// `[system] handle` and its `controls`, each read and checked: a control must run without
/// its pattern (its handle's `disabled` says so), or it would prove nothing.
fn external(dir: &Path, spec: &SystemSpec) -> Result<Option<External>, String> {
    let Some(path) = &spec.handle else {
        if !spec.controls.is_empty() {
            return Err("system.controls needs system.handle: the bundled demo's controls are started by the run".into());
        }
        return Ok(None);
    };
    if spec.config.is_some() {
        return Err(
            "system.config and system.handle: give one (a config is for the demo the run starts)"
                .into(),
        );
    }
    let read = |p: &Path| {
        let full = dir.join(p);
        DemoHandle::load(&full)
            .map(|h| (full.clone(), h))
            .map_err(|e| format!("system handle {}: {e}", p.display()))
    };
    let (handle_path, handle) = read(path)?;
    let mut controls = BTreeMap::new();
    for (name, p) in &spec.controls {
        let pattern: Pattern = name.parse().map_err(|e| format!("system.controls: {e}"))?;
        let (full, h) = read(p)?;
        if !h.disabled.contains(&pattern) {
            return Err(format!(
                "system.controls.{name}: {} runs with {name} on (its handle does not list it as disabled), so it cannot be its control",
                p.display()
            ));
        }
        controls.insert(pattern, (full, h));
    }
    Ok(Some(External {
        handle_path,
        handle,
        controls,
    }))
}

fn assert_run(dir: &Path, spec: AssertSpec, loads: &[LoadSpec]) -> Result<AssertRun, String> {
    let assertions = Assertions::load(&dir.join(&spec.file)).map_err(|e| e.to_string())?;
    let what = format!("assert {}", spec.file.display());
    match &spec.load {
        Some(name) if !loads.iter().any(|l| &l.name == name) => {
            let names: Vec<&str> = loads.iter().map(|l| l.name.as_str()).collect();
            return Err(format!(
                "{what}: load = {name:?} names no [[load]] of the suite (it has: {})",
                names.join(", ")
            ));
        }
        None if assertions.trigger.is_none() => {
            return Err(format!(
                "{what}: the file has no [trigger]: give it one, or name a load run (load = \"...\") whose traces it checks"
            ));
        }
        _ => {}
    }
    Ok(AssertRun { spec, assertions })
}

fn experiments(dir: &Path, files: &[PathBuf]) -> Result<Vec<(PathBuf, Experiment)>, String> {
    files
        .iter()
        .map(|f| {
            Experiment::load(&dir.join(f))
                .map(|e| (f.clone(), e))
                .map_err(|e| e.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

    fn suite_at(text: &str, only: &[Pattern]) -> Result<Suite, String> {
        let path = Path::new(ROOT).join(format!("suite-test-{:08x}.toml", fastrand::u32(..)));
        std::fs::write(&path, text).expect("write");
        let r = Suite::load(&path, only).map_err(|e| e.to_string());
        let _ = std::fs::remove_file(&path);
        r
    }

    #[test]
    fn the_repositorys_suites_are_valid_and_name_every_pattern() {
        let s = Suite::load(&Path::new(ROOT).join("gauntlet.toml"), &[]).expect("gauntlet.toml");
        // The broker's patterns are proven on the demo that runs on RabbitMQ.
        let b = Suite::load(&Path::new(ROOT).join("gauntlet-broker.toml"), &[])
            .expect("gauntlet-broker.toml");
        let mut patterns: Vec<Pattern> = s
            .experiments
            .iter()
            .chain(&b.experiments)
            .map(|(_, e)| e.validates)
            .collect();
        patterns.sort();
        assert_eq!(patterns, Pattern::ALL);
        assert!(s.contracts.is_some() && !s.loads.is_empty());
    }

    #[test]
    fn mistakes_are_named_before_anything_runs() {
        let cases = [
            (
                "title = \"t\"\nexperiment = []\n",
                "unknown field `experiment`",
            ),
            (
                "title = \"t\"\nexperiments = [\"chaos/experiments/nope.toml\"]\n",
                "nope.toml",
            ),
            (
                "title = \"t\"\n[[load]]\nname = \"l\"\nscenario = \"chaos/experiments/shop.load.toml\"\nthresholds = { all = [\"p99 < 5\"] }\n",
                "p99 < 5",
            ),
            ("title = \"t\"\n", "nothing to run"),
            (
                "title = \"t\"\n[contracts]\npacts = \"no/such/dir\"\n",
                "contracts.pacts no/such/dir",
            ),
            ("title = \"t\"\n[system\n", "line 2"),
            (
                "title = \"t\"\n[[assert]]\nfile = \"demo-system/assertions/orders.toml\"\nload = \"nope\"\n",
                "load = \"nope\" names no [[load]]",
            ),
            (
                "title = \"t\"\n[[assert]]\nfile = \"demo-system/assertions/nope.toml\"\n",
                "assertions/nope.toml: No such file",
            ),
        ];
        for (text, want) in cases {
            let err = suite_at(text, &[]).expect_err(text);
            assert!(err.contains(want), "{text}\n→ {err}");
        }
        let err = suite_at(
            "title = \"t\"\nexperiments = [\"chaos/experiments/payments-slow.toml\"]\n",
            &[Pattern::Retries],
        )
        .expect_err("--only a pattern the suite lacks");
        assert!(
            err.contains("--only retries") && err.contains("circuit-breaker"),
            "{err}"
        );
    }
}
