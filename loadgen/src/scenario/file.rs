//! The scenario file as it is written (TOML): scenarios, executors, stages, flows, steps,
//! variables. Checked and compiled into a plan by [`super::compile`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::check::CheckSpec;

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
    /// The local address this scenario's connections come from (e.g. `127.0.0.2`), so a
    /// server that tells clients apart by address (a per-client rate limit) sees this
    /// scenario as a client of its own; or a range (`127.0.0.10-127.0.0.49`) its VUs take in
    /// turn, a crowd of clients. Loopback only unless remote targets are allowed.
    pub source_address: Option<String>,
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
