//! Gauntlet's HTTP load generator: quick runs like wrk and oha, scenario files with k6's
//! executors, latency measured without coordinated omission, thresholds that fail CI.
//!
//! # Layout
//! - [`scenario`]: the scenario file and the quick command line, checked and compiled into
//!   a [`scenario::Plan`]; [`template`] (`{{uuid}}`, `{{seq}}`, captures...), [`check`]
//!   (checks and captures) and [`threshold`] are its parts.
//! - [`engine`]: virtual users in the closed or open model; [`http`] their connections
//!   (HTTP/1.1 written and parsed in place with `httparse`, HTTP/2 through hyper;
//!   keep-alive; loopback only unless allowed); [`metrics`] what they record.
//! - [`report`] (the `--out` JSON and the summary table), [`html`] (`--html`),
//!   [`progress`] (live progress), [`otlp`] (the generator's own spans and run markers).
//! - [`fuzzing`]: the entry points of the fuzz targets in `fuzz/`.
//!
//! The one design decision to know: in the open model every VU takes the next ticket of a
//! shared schedule and latency counts from the ticket's intended time, so a stalled server
//! is measured as its users would feel it, not hidden by the generator waiting politely.

pub mod check;
pub mod engine;
pub mod fuzzing;
pub mod html;
pub mod http;
pub mod metrics;
pub mod otlp;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod template;
pub mod threshold;

pub use engine::{Options, RunError, RunResult, run};
pub use progress::ProgressMode;
pub use report::Report;
pub use scenario::{Plan, Quick, ScenarioError};
