//! The legacy shop's Pact provider states: none. Its contracts read the catalogue and the
//! old orders it was seeded with, which every start has; the route answers the empty state
//! verifiers send and refuses any other. Served only with `--provider-states`.

use super::server::Legacy;
use crate::platform::provider_states::{ProviderStates, StateChange, StateError};

impl ProviderStates for Legacy {
    const STATES: &'static [&'static str] = &[];

    async fn set_up(&self, change: StateChange) -> Result<(), StateError> {
        Err(Self::unknown(&change))
    }
}
