//! Pact provider states, for contract verification. Started with `[contracts]
//! provider_states = true` (`gauntlet demo --provider-states`), a provider serves `POST
//! /_pact/provider-states`: it takes Pact's state-change body and sets its own database so
//! that an interaction's precondition holds. In normal runs the route does not exist.

use std::future::Future;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::db::DbError;
use super::http::{ApiError, Body, body};

/// Where a provider takes state changes.
pub const STATE_CHANGE_PATH: &str = "/_pact/provider-states";
/// Where a producer of events answers Pact's message requests with a real event.
pub const MESSAGES_PATH: &str = "/_pact/messages";

/// Pact's state-change request, as the verifiers send it (`state_change_body` mode).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateChange {
    pub state: String,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub action: StateAction,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StateAction {
    #[default]
    Setup,
    Teardown,
}

impl StateChange {
    /// The params as the state's own type: each state declares the fields it needs.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, StateError> {
        serde_json::from_value(serde_json::Value::Object(self.params.clone())).map_err(|e| {
            StateError::BadParams {
                state: self.state.clone(),
                reason: e.to_string(),
            }
        })
    }
}

/// Pact's message request: which interaction, and the states it was set up with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageRequest {
    pub description: String,
    #[serde(default)]
    pub provider_states: Vec<MessageState>,
}

/// One provider state of a message request (Pact sends `name`, not `state`, here).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageState {
    pub name: String,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("unknown provider state {state:?}: {}", known_states(known))]
    Unknown {
        state: String,
        known: &'static [&'static str],
    },
    #[error("provider state {state:?} needs other params: {reason}")]
    BadParams { state: String, reason: String },
    #[error(transparent)]
    Db(#[from] DbError),
    /// A store other than the service's SQLite database (order-history's documents).
    #[error("the provider's store failed: {0}")]
    Store(String),
}

fn known_states(known: &[&str]) -> String {
    if known.is_empty() {
        "this provider keeps no data and knows no states; its pacts name none".into()
    } else {
        format!("this provider knows {}", known.join(", "))
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Db(db) => db.into(),
            StateError::Store(e) => {
                tracing::error!(error = %e, "a provider state could not be set up");
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "the provider could not write its store; try again",
                )
            }
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// The states one provider can be put in.
pub trait ProviderStates: Clone + Send + Sync + 'static {
    /// Every state it knows, as pacts name them.
    const STATES: &'static [&'static str];

    /// Makes `change.state` hold. Each setup resets what it touches, so running it again
    /// (a re-run verification, on the same database) gives the same starting point; that
    /// is also why a teardown has nothing to undo.
    fn set_up(&self, change: StateChange) -> impl Future<Output = Result<(), StateError>> + Send;

    /// The error for a state not in [`Self::STATES`].
    fn unknown(change: &StateChange) -> StateError {
        StateError::Unknown {
            state: change.state.clone(),
            known: Self::STATES,
        }
    }
}

/// A provider that keeps no data of its own (the BFFs): it knows no states, but still takes
/// the empty setup verifiers send before every interaction, so the official Pact CLI's
/// `--state-change-url` works against it as against every other provider.
#[derive(Debug, Clone, Copy)]
pub struct Stateless;

impl ProviderStates for Stateless {
    const STATES: &'static [&'static str] = &[];

    async fn set_up(&self, change: StateChange) -> Result<(), StateError> {
        Err(Self::unknown(&change))
    }
}

/// `POST /_pact/provider-states` for `states`.
pub fn router<P: ProviderStates>(states: P) -> Router {
    Router::new()
        .route(STATE_CHANGE_PATH, post(change::<P>))
        .with_state(states)
}

async fn change<P: ProviderStates>(
    State(states): State<P>,
    req: Body<StateChange>,
) -> Result<(StatusCode, Json<serde_json::Map<String, serde_json::Value>>), ApiError> {
    let change = body(req)?;
    match change.action {
        // Verifiers call with an empty state before an interaction that names none.
        _ if change.state.is_empty() => {}
        StateAction::Setup => {
            tracing::info!(state = %change.state, "provider state set up");
            states.set_up(change).await?;
        }
        StateAction::Teardown if !P::STATES.contains(&change.state.as_str()) => {
            return Err(P::unknown(&change).into());
        }
        StateAction::Teardown => {}
    }
    // No values for the verifier to inject into the request.
    Ok((StatusCode::OK, Json(serde_json::Map::new())))
}

/// A test-only provider variant: every JSON answer of `router` with the object key `from`
/// renamed to `to`. Contract tests use it to prove that verification fails, and names the
/// field, when a provider breaks a contract.
pub fn with_renamed_field(router: Router, from: &'static str, to: &'static str) -> Router {
    router.layer(axum::middleware::map_response(
        move |resp: axum::response::Response| async move {
            let (mut parts, body) = resp.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let renamed = serde_json::from_slice::<serde_json::Value>(&bytes)
                .map(|mut v| {
                    rename_key(&mut v, from, to);
                    serde_json::to_vec(&v).unwrap_or_default()
                })
                .unwrap_or_else(|_| bytes.to_vec());
            parts.headers.remove(axum::http::header::CONTENT_LENGTH);
            axum::response::Response::from_parts(parts, axum::body::Body::from(renamed))
        },
    ))
}

fn rename_key(v: &mut serde_json::Value, from: &str, to: &str) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(x) = map.remove(from) {
                map.insert(to.to_string(), x);
            }
            map.values_mut().for_each(|x| rename_key(x, from, to));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|x| rename_key(x, from, to)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changes_read_as_the_verifiers_send_them() {
        let c: StateChange = serde_json::from_str(
            r#"{"state":"order exists","params":{"order_id":"o-1"},"action":"teardown"}"#,
        )
        .expect("parses");
        assert_eq!(c.action, StateAction::Teardown);
        #[derive(Deserialize)]
        struct P {
            order_id: String,
        }
        assert_eq!(c.params::<P>().expect("params").order_id, "o-1");
        let bare: StateChange = serde_json::from_str(r#"{"state":"x"}"#).expect("parses");
        assert_eq!(bare.action, StateAction::Setup);
        let err = bare.params::<P>().err().expect("missing order_id");
        assert!(err.to_string().contains("order_id"), "{err}");
    }

    async fn post_change(app: Router, body: &str) -> (StatusCode, String) {
        use tower::ServiceExt;
        let req = axum::http::Request::post(STATE_CHANGE_PATH)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        let resp = app.oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn a_stateless_provider_takes_the_empty_setup_and_refuses_a_named_state() {
        // What the official Pact CLI sends before an interaction that names no state.
        let empty = r#"{"state":"","params":{},"action":"setup"}"#;
        let (status, body) = post_change(router(Stateless), empty).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let named = r#"{"state":"an order exists","action":"setup"}"#;
        let (status, body) = post_change(router(Stateless), named).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("knows no states"), "{body}");
    }

    #[test]
    fn renaming_reaches_nested_objects() {
        let mut v = serde_json::json!([{"stock": 1, "inner": {"stock": 2}}, {"sku": "a"}]);
        rename_key(&mut v, "stock", "units");
        assert_eq!(
            v,
            serde_json::json!([{"units": 1, "inner": {"units": 2}}, {"sku": "a"}])
        );
    }
}
