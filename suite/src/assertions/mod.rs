//! Trace-based assertions (`gauntlet assert FILE`, and `[[assert]]` in a suite): after a
//! trigger, wait until its trace set is complete, then check specs on it. A spec is a
//! selector (Tracetest's language: [`selector`]) and assertions on the spans it chose
//! ([`check`]); the set is a correlation ID's traces across asynchronous hops or one trace
//! ([`span_set`], [`gather`]), or every set of a window (a load run's), where a spec holds
//! for all of them or a share (`for = "99%"`).
//!
//! - [`file`]: the assertion file, checked whole (line and column on a bad selector).
//! - [`gather`]: the trigger (a request, an ID, a window) and waiting for quiet.
//! - [`report`]: the specs judged; text, JSON, JUnit.

pub mod check;
pub mod file;
pub mod gather;
pub mod report;
pub mod selector;
pub mod span_set;

pub use file::{AssertFileError, Assertions, Scope};
pub use gather::{GatherError, System, Target, gather};
pub use report::{AssertReport, judge};
