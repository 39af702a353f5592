//! Pact's provider-state calls, made here rather than by the reference executor so that a
//! provider's refusal ("unknown provider state ...: this provider knows ...") reaches the
//! report: `pact_verifier` itself only says that a state change handler failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pact_models::provider_states::ProviderState;
use pact_verifier::callback_executors::ProviderStateExecutor;
use serde_json::Value;

/// Posts Pact's standard state-change body to one URL and remembers every refusal.
#[derive(Debug)]
pub struct StateChanges {
    url: String,
    timeout: Duration,
    refusals: Mutex<Vec<(String, String)>>,
}

impl StateChanges {
    pub fn new(url: &str, timeout: Duration) -> Self {
        Self {
            url: url.to_string(),
            timeout,
            refusals: Mutex::new(Vec::new()),
        }
    }

    /// What the provider said when it could not set `state` up, if it refused.
    pub fn refusal(&self, state: &str) -> Option<String> {
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|(s, _)| s == state)
            .map(|(_, m)| m.clone())
    }

    fn refuse(&self, state: &str, message: String) -> anyhow::Error {
        let e = anyhow::anyhow!("provider state {state:?}: {message}");
        self.refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((state.to_string(), message));
        e
    }
}

#[async_trait]
impl ProviderStateExecutor for StateChanges {
    async fn call(
        self: Arc<Self>,
        _interaction_id: Option<String>,
        state: &ProviderState,
        setup: bool,
        client: Option<&reqwest::Client>,
    ) -> anyhow::Result<HashMap<String, Value>> {
        // The verifier calls with an empty state before an interaction that names none:
        // there is nothing to set up, and a provider whose pacts name no state (the
        // legacy shop, or the gateway serving its moved routes) need not have the route.
        if state.name.is_empty() {
            return Ok(HashMap::new());
        }
        let body = serde_json::json!({
            "state": state.name,
            "params": state.params,
            "action": if setup { "setup" } else { "teardown" },
        });
        let client = client.cloned().unwrap_or_default();
        let sent = client
            .post(&self.url)
            .timeout(self.timeout)
            .json(&body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                return Err(self.refuse(&state.name, format!("{} unreachable: {e}", self.url)));
            }
        };
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::NOT_FOUND && text.trim().is_empty() {
            // No such route (a bare 404): the provider takes no state changes there at all.
            return Err(self.refuse(
                &state.name,
                format!(
                    "{status}: the provider has no state-change route at {}; a demo service \
                     has one only when the demo runs with --provider-states (or pass \
                     --state-change-url)",
                    self.url
                ),
            ));
        }
        if !status.is_success() {
            // The demo's services answer {"error": "..."}; others whatever they like.
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or(text);
            return Err(self.refuse(&state.name, format!("{status}: {message}")));
        }
        // Values the provider returns may be injected into the request (Pact generators).
        Ok(serde_json::from_str::<HashMap<String, Value>>(&text).unwrap_or_default())
    }

    fn teardown(&self) -> bool {
        false
    }
}
