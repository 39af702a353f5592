//! `gauntlet run`: one command that puts a system through the gauntlet and answers with one
//! verdict. A suite file (`gauntlet.toml`) names the system (the bundled demo), its
//! contracts, load runs with thresholds, and an experiment per pattern; each pattern is
//! proven by its experiment against the system and its control against a second system
//! started without it.
//!
//! # Layout
//! - [`file`]: the suite file, checked whole before anything starts.
//! - [`run`]: the order of things, and the systems it starts and always stops.
//! - [`contracts`]: the pacts through a broker of the run's own, verified, and can-i-deploy.
//! - [`system`]: the system under test, started (the bundled demo) or named by its handle.
//! - [`report`]: the one report type (JSON schema `gauntlet.run.report/v1`), its verdict,
//!   terminal lines and JUnit; [`html`]: the self-contained page.
//! - [`assertions`]: trace-based assertions (`gauntlet assert`, a suite's `[[assert]]`).

pub mod assertions;
pub mod contracts;
pub mod file;
pub mod html;
pub mod report;
pub mod run;
pub mod system;

pub use file::{Suite, SuiteError};
pub use report::{RunVerdict, SuiteReport};
pub use run::{RunOptions, run};
