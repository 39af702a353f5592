//! Gauntlet's chaos experiments, in Chaos Toolkit's model: a steady-state hypothesis (probes
//! with tolerances) checked before and after a method (actions, probes and pauses, some in
//! the background), then rollbacks that always run, against a `gauntlet demo --chaos`. The
//! faults go through the demo's proxies (`gauntlet-chaos-proxy`, which knows nothing of
//! experiments or the demo).
//!
//! # Layout
//! - this file: the TOML file's shape and its checks ([`Experiment`]).
//! - [`activity`]: actions and probes as the file writes them, typed when the file is read
//!   (services, instances, edges, durations, HTTP methods); `action.rs` carries actions out,
//!   `probe.rs` looks; [`error`] says why one could not.
//! - [`target`]: the demo an experiment acts on, through its `demo.json`.
//! - [`run`]: before → method with background activities → after → rollbacks; markers.
//! - [`report`]: terminal, JSON and JUnit.
//! - [`journal`]: a run as a Chaos Toolkit journal.
//! - [`proof`]: an experiment's run and its control's judged together: held and proven,
//!   broken, or unproven.
//! - [`judge`]: the canary judge: a candidate version's requests against the baseline's
//!   over one window (Mann–Whitney U with tolerances), pass, fail or inconclusive.
//! - [`canary`]: the automated canary: steps a candidate's share up through the registry
//!   while the judge passes each step, back to 0 when one fails.
//! - [`fuzzing`]: the entry point of the fuzz target in `fuzz/` for experiment files.

mod action;
pub mod activity;
pub mod canary;
pub mod error;
pub mod fuzzing;
pub mod journal;
pub mod judge;
mod probe;
pub mod proof;
pub mod report;
pub mod run;
pub mod target;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use activity::{Activity, Kind};
pub use report::{Mode, Outcome, Report, Status};
pub use run::{RunOptions, run};

/// The demo pattern an experiment proves, as `gauntlet demo --disable` names it.
pub use gauntlet_demo_system::config::Pattern;

/// An experiment file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// The pattern whose absence must make this experiment fail.
    pub validates: Pattern,
    pub steady_state: SteadyState,
    #[serde(default)]
    pub method: Vec<Activity>,
    /// Actions undoing the method's faults; run after the method however it ended (and on
    /// Ctrl-C). Removing what is already gone is not an error.
    #[serde(default)]
    pub rollbacks: Vec<Activity>,
    /// Where the file was read from: load scenarios are relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

/// What "working normally" means, as probes with tolerances.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteadyState {
    pub title: String,
    pub probes: Vec<Activity>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid experiment: {message}")]
    Invalid { path: String, message: String },
}

impl Experiment {
    /// Reads and checks an experiment file: every activity well-formed, the steady state
    /// made of probes, the rollbacks of actions, every toxic one the proxy accepts, every
    /// load scenario readable.
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read {
            path: shown.clone(),
            source,
        })?;
        let invalid = |message: String| ExperimentError::Invalid {
            path: shown.clone(),
            message,
        };
        let mut e: Experiment = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        e.dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        e.check().map_err(invalid)?;
        Ok(e)
    }

    fn check(&self) -> Result<(), String> {
        if self.steady_state.probes.is_empty() {
            return Err("the steady state has no probes: nothing would be checked".into());
        }
        for p in &self.steady_state.probes {
            if !p.kind.is_probe() {
                return Err(format!(
                    "steady_state: {:?} is an action; the steady state holds only probes",
                    p.name
                ));
            }
            if p.background {
                return Err(format!(
                    "steady_state: {:?} cannot run in the background",
                    p.name
                ));
            }
        }
        for r in &self.rollbacks {
            if r.kind.is_probe() {
                return Err(format!(
                    "rollbacks: {:?} is a probe; rollbacks are actions",
                    r.name
                ));
            }
        }
        for a in self
            .steady_state
            .probes
            .iter()
            .chain(&self.method)
            .chain(&self.rollbacks)
        {
            a.check(&self.dir)
                .map_err(|m| format!("activity {:?}: {m}", a.name))?;
        }
        if let Some(a) = self.activities().find(|a| a.evidence && !a.kind.is_probe()) {
            return Err(format!(
                "{:?} is an action; only probes can be evidence",
                a.name
            ));
        }
        if !self.activities().any(|a| a.evidence) {
            return Err(format!(
                "no probe is marked `evidence = true`: name the probes that measure what a caller feels \
                 (latency, success, work lost or done twice), so a run without {} can show it fails on them",
                self.validates
            ));
        }
        Ok(())
    }

    /// Every probe and action, for listing.
    pub fn activities(&self) -> impl Iterator<Item = &Activity> {
        self.steady_state
            .probes
            .iter()
            .chain(&self.method)
            .chain(&self.rollbacks)
    }
}

/// A duration in the file: `30s`, `500ms`, `2m`.
pub(crate) fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a duration (30s, 500ms, 2m)")))
}

pub(crate) fn de_opt_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Experiment, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.toml");
        std::fs::write(&path, text).expect("write");
        std::fs::write(
            dir.path().join("orders.load.toml"),
            "[[scenarios]]\nname = \"s\"\nexecutor = \"constant-vus\"\nduration = \"1s\"\n[[scenarios.flows]]\n[[scenarios.flows.steps]]\nurl = \"{{gateway}}/\"\n",
        )
        .expect("write");
        Experiment::load(&path).map_err(|e| e.to_string())
    }

    const HEAD: &str = "title = \"t\"\nvalidates = \"retries\"\n";

    #[test]
    fn every_bundled_experiment_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("experiments/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml")
                && !path.to_string_lossy().ends_with(".load.toml")
            {
                Experiment::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert_eq!(n, Pattern::ALL.len(), "one experiment per pattern");
        let mut proven: Vec<Pattern> = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("experiments/") {
            let path = entry.expect("entry").path();
            if let Ok(e) = Experiment::load(&path)
                && !path.to_string_lossy().ends_with(".load.toml")
            {
                proven.push(e.validates);
            }
        }
        proven.sort();
        assert_eq!(proven, Pattern::ALL, "each pattern has its experiment");
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            // A typo in a key.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"breaker\"\nservice = \"orders\"\nupstream = \"payments\"\nstat = \"closed\"\n",
                "unknown field `stat`",
            ),
            // An action in the steady state.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"k\"\ntype = \"kill\"\ninstance = \"inventory-2\"\n",
                "is an action",
            ),
            // A toxic the proxy would refuse.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"breaker\"\nservice = \"orders\"\nupstream = \"payments\"\nstate = \"closed\"\n[[method]]\nname = \"t\"\ntype = \"add-toxic\"\nedge = \"orders_to_payments\"\ntoxic = { type = \"latency\", attributes = { latency = -1 } }\n",
                "cannot be negative",
            ),
            // An instance the demo does not have.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"registry\"\ninstance = \"inventory-7\"\nlisted = true\n",
                "inventory has 2 instances",
            ),
            // A metric probe whose query is not PromQL, or has no bound.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"m\"\ntype = \"metric\"\nquery = \"rate(x[5m]\"\nmax = 1\n",
                "is not PromQL",
            ),
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"m\"\ntype = \"metric\"\nquery = \"up\"\n",
                "needs min, max or both",
            ),
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"m\"\ntype = \"metric\"\nquery = \"up\"\nmin = 2\nmax = 1\n",
                "min = 2 is above max = 1",
            ),
            // An edge the topology does not have.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"breaker\"\nservice = \"orders\"\nupstream = \"payments\"\nstate = \"closed\"\n[[method]]\nname = \"t\"\ntype = \"disable-proxy\"\nedge = \"payments_to_orders\"\n",
                "no edge payments_to_orders",
            ),
            // A load scenario that is not there.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"load\"\nscenario = \"missing.toml\"\n",
                "missing.toml",
            ),
            // A bad threshold.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"load\"\nscenario = \"orders.load.toml\"\nthresholds = { all = [\"p99 <\"] }\n",
                "p99 <",
            ),
            // Nothing to check.
            ("[steady_state]\ntitle = \"s\"\nprobes = []\n", "no probes"),
            // No evidence: a control could fail only on what the mechanism says of itself.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"registry\"\ninstance = \"inventory-2\"\nlisted = true\n",
                "no probe is marked `evidence = true`",
            ),
            // An action as evidence.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"registry\"\ninstance = \"inventory-2\"\nlisted = true\nevidence = true\n[[method]]\nname = \"k\"\ntype = \"kill\"\ninstance = \"inventory-2\"\nevidence = true\n",
                "only probes can be evidence",
            ),
            // A toxic on nothing in particular.
            (
                "[steady_state]\ntitle = \"s\"\n[[steady_state.probes]]\nname = \"p\"\ntype = \"registry\"\ninstance = \"inventory-2\"\nlisted = true\nevidence = true\n[[method]]\nname = \"t\"\ntype = \"remove-toxic\"\ntoxic = \"x\"\n",
                "name an `edge`, an `instance`",
            ),
        ];
        for (body, expected) in cases {
            let err = parse(&format!("{HEAD}{body}")).expect_err(body);
            assert!(err.contains(expected), "{body}\n→ {err}");
        }
        let err = parse(
            "title = \"t\"\nvalidates = \"gravity\"\n[steady_state]\ntitle = \"s\"\nprobes = []\n",
        )
        .expect_err("bad pattern");
        assert!(err.contains("circuit-breaker"), "{err}");
    }
}
