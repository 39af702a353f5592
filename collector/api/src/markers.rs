//! `GET /api/v1/markers`: when load runs, chaos experiments and `gauntlet run` suites started
//! and stopped, and their verdicts. The tools
//! export marker spans with these names and service names; the collector finds them by the
//! same constants.

use serde::{Deserialize, Serialize};

use crate::Attributes;

/// The attribute that ties a run's markers (and its other spans) together.
pub const RUN_ID_KEY: &str = "gauntlet.run_id";

/// The service name `gauntlet load` exports its spans and markers under.
pub const LOADGEN_SERVICE: &str = "gauntlet-loadgen";
pub const LOAD_START: &str = "load.start";
pub const LOAD_STOP: &str = "load.stop";
/// A threshold judged at the end of a run (failed when breached).
pub const LOAD_THRESHOLD: &str = "load.threshold";

/// The service name `gauntlet chaos run` exports its markers under.
pub const CHAOS_SERVICE: &str = "gauntlet-chaos";
pub const CHAOS_START: &str = "chaos.start";
pub const CHAOS_STOP: &str = "chaos.stop";
/// From the first fault to the end of the method.
pub const CHAOS_FAULT_WINDOW: &str = "chaos.fault_window";

/// The service name `gauntlet run` exports its markers under (to the system's collector).
pub const RUN_SERVICE: &str = "gauntlet-run";
pub const RUN_START: &str = "run.start";
/// The suite's end, with its verdict ([`RUN_VERDICT_KEY`]); failed unless it passed.
pub const RUN_STOP: &str = "run.stop";
/// `passed`, `failed` or `aborted`.
pub const RUN_VERDICT_KEY: &str = "gauntlet.verdict";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub enum MarkerKind {
    Load,
    Chaos,
    /// A `gauntlet run` suite.
    Run,
}

/// A tool that exports markers: its service name, the marker kind, and the span names that
/// are markers (the tool's other spans are not).
#[derive(Debug)]
pub struct Source {
    pub service: &'static str,
    pub kind: MarkerKind,
    pub names: &'static [&'static str],
}

/// Every marker source; a new kind of marker is one row here.
pub const SOURCES: &[Source] = &[
    Source {
        service: LOADGEN_SERVICE,
        kind: MarkerKind::Load,
        names: &[LOAD_START, LOAD_STOP, LOAD_THRESHOLD],
    },
    Source {
        service: CHAOS_SERVICE,
        kind: MarkerKind::Chaos,
        names: &[CHAOS_START, CHAOS_STOP, CHAOS_FAULT_WINDOW],
    },
    Source {
        service: RUN_SERVICE,
        kind: MarkerKind::Run,
        names: &[RUN_START, RUN_STOP],
    },
];

/// One marker: a moment (or, when `end` is later than `time`, a span of time) in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Marker {
    pub kind: MarkerKind,
    pub name: String,
    /// The run it belongs to ([`RUN_ID_KEY`]), shared by its start and stop.
    pub run_id: Option<String>,
    /// Microseconds since the epoch.
    pub time: i64,
    pub end: i64,
    /// A breached threshold, a deviated experiment.
    pub failed: bool,
    pub trace_id: String,
    /// The marker's attributes (the experiment's title, the threshold, ...).
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Markers {
    pub data: Vec<Marker>,
    pub total: usize,
}
