//! Consumer-driven contract testing for the demo system, on the Pact reference libraries.
//! The consumer tests (`tests/consumers.rs`) drive each service's own typed client against
//! Pact's mock server and write V4 pacts to `contracts/pacts/`; [`verify`] replays them
//! against a running provider with `pact_verifier` and says, per interaction, what broke.
//!
//! [`pacts`] finds the pact files that name a provider · [`verify`] runs the verification
//! and reports it · [`states`] sets provider states up · [`junit`] writes the report for CI ·
//! [`drift`] sets the interactions the collector saw against the pacts · [`broker`] is a
//! Pact Broker (publish, pacts for verification, results, deployments, can-i-deploy) ·
//! [`proto`] checks a gRPC API's `.proto` against a consumer's pinned copy (breaking changes).

pub mod broker;
pub mod drift;
pub mod junit;
pub mod pacts;
pub mod proto;
pub mod states;
pub mod verify;

pub use pacts::PactFile;
pub use verify::{InteractionOutcome, Report, VerifyConfig, verify};

/// Where the repository's pacts live, written by the consumer tests.
pub const PACTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/pacts");

#[derive(Debug, thiserror::Error)]
pub enum ContractsError {
    #[error("cannot read the pacts directory {dir}: {source}")]
    Dir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a pact file: {reason}")]
    BadPact { path: String, reason: String },
    #[error(
        "{dir} holds no pact files (*.json): run the consumer tests first (cargo test -p gauntlet-contracts)"
    )]
    NoPacts { dir: String },
    #[error("no pact in {dir} names the provider {provider:?}; the pacts there are for: {}", found.join(", "))]
    NoPactForProvider {
        dir: String,
        provider: String,
        found: Vec<String>,
    },
    #[error("the pacts for {provider:?} hold no interactions: nothing was verified")]
    NothingVerified { provider: String },
    #[error("verification could not run: {0}")]
    Verifier(String),
    #[error("the broker at {url} failed {reason}")]
    Broker { url: String, reason: String },
    #[error("cannot read traces from the collector ({url}): {reason}")]
    Collector { url: String, reason: String },
    #[error("cannot write the JUnit report {path}: {reason}")]
    Junit { path: String, reason: String },
    #[error("{0}")]
    Usage(String),
}
