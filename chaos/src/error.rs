//! Why an activity could not be carried out or looked at. A probe that looked and found its
//! tolerance unmet is no error: it answers `false` with what it saw. An error is a probe or
//! action that could not do its work at all, and the report keeps them apart.

use gauntlet_demo_system::topology::Service;

use crate::target::TargetError;

#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("the toxic is not one the proxy takes: {0}")]
    Toxic(String),
    #[error("{0} is a probe, not an action")]
    NotAnAction(&'static str),
    #[error("{0} is an action, not a probe")]
    NotAProbe(&'static str),
    #[error("{service} at {url} does not call {upstream} (see its /admin/resilience)")]
    NotAnUpstream {
        service: Service,
        url: String,
        upstream: Service,
    },
    #[error("scenario {path}: {reason}")]
    Scenario { path: String, reason: String },
    #[error("the canary could not go on: {0}")]
    Canary(String),
    #[error("the load run could not start: {0}")]
    Load(#[from] gauntlet_loadgen::RunError),
}
