//! The typed-call layer under every service client: a call goes through the upstream's
//! resilience layers, a 2xx answer is decoded into the caller's type, and a 4xx answer
//! becomes [`ClientError::Refused`] carrying the status and the service's own message (the
//! shared [`ErrorBody`]), so a caller can relay it or decide on it.

use std::sync::Arc;

use axum::http::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::discovery::Endpoint;
use super::http::{ApiError, ErrorBody};
use super::resilience::{Call, CallError, ConfigError, Reply, ResilienceConfig, Upstream};

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The call failed: unreachable, too slow, 5xx, or our own breaker or bulkhead.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The provider answered 4xx with this message.
    #[error("{upstream} refused ({status}): {message}")]
    Refused {
        upstream: String,
        status: u16,
        message: String,
    },
    /// The provider answered, but not in the shape this client knows.
    #[error("{upstream} answered {status} with a body this client cannot read: {reason}")]
    Decode {
        upstream: String,
        status: u16,
        reason: String,
    },
    #[error("cannot encode the request: {0}")]
    Encode(String),
    /// The provider answered a JSON-RPC call with an error object (unknown method, bad
    /// params: a call it could not take, as a 4xx is).
    #[error("{upstream} refused the call (JSON-RPC error {code}): {message}")]
    Rpc {
        upstream: String,
        code: i32,
        message: String,
    },
}

impl ClientError {
    /// The status of a refusal, if this is one.
    pub fn refused_status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// What an upstream's failure means to our own caller: the upstream's own refusal is
/// passed on as it was; its failures become 502/503/504, with `Retry-After` when our own
/// protection (breaker, bulkhead) is what refused.
impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused {
                status, message, ..
            } => ApiError::new(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                message,
            ),
            ClientError::Call(call) => {
                let status = match call {
                    CallError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                    CallError::Status { .. } => StatusCode::BAD_GATEWAY,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                let retry = matches!(
                    call,
                    CallError::CircuitOpen { .. } | CallError::BulkheadFull { .. }
                );
                ApiError {
                    status,
                    message: call.to_string(),
                    retry_after: retry.then_some(1),
                }
            }
            other => ApiError::new(StatusCode::BAD_GATEWAY, other.to_string()),
        }
    }
}

/// The message of an error answer: the `error` of an [`ErrorBody`], or the start of the body.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// The HTTP client the services call each other with: one connection per call, no idle
/// pool. A fault on a share of connections (a chaos proxy resetting one in five) is then a
/// fault on that share of calls, as behind a load balancer that balances connections; a
/// pooled client would carry on over the connections that happened to survive and hide it.
/// On loopback a connect costs about 0.1 ms against the demo's tens of milliseconds.
pub fn service_http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        // Building fails only if the TLS backend cannot start, and this client has none.
        .unwrap_or_default()
}

/// A decoded answer with its status, for calls whose status means something (201 or 200).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub status: u16,
    pub body: T,
}

/// A resilient JSON client for one upstream; cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    upstream: Upstream,
    /// Sent on every call (e.g. a correlation ID or a bearer token).
    headers: Arc<Vec<(String, String)>>,
}

impl HttpClient {
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            headers: Arc::new(Vec::new()),
        }
    }

    /// A client for `name` at a fixed `base_url`, with `config`'s resilience.
    pub fn at(name: &str, base_url: &str, config: &ResilienceConfig) -> Result<Self, ConfigError> {
        Ok(Self::new(Upstream::new(
            name,
            Endpoint::fixed(base_url),
            reqwest::Client::new(),
            config,
        )?))
    }

    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The same client, sending `name: value` on every call too.
    pub fn with_header(&self, name: &str, value: &str) -> Self {
        let mut headers = (*self.headers).clone();
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        headers.push((name.to_ascii_lowercase(), value.to_string()));
        Self {
            upstream: self.upstream.clone(),
            headers: Arc::new(headers),
        }
    }

    /// `GET path`, decoded.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Ok(self.send(Call::get(path)).await?.body)
    }

    /// `POST path` with `body`; retried only with an idempotency key.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        idempotency_key: Option<&str>,
    ) -> Result<Answer<T>, ClientError> {
        let call = Call::post(path, body, idempotency_key)
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        self.send(call).await
    }

    /// Sends `call` and decodes a 2xx answer.
    pub async fn send<T: DeserializeOwned>(&self, call: Call) -> Result<Answer<T>, ClientError> {
        let reply = self.reply(call).await?;
        self.answer(&reply)
    }

    /// A 2xx `reply` decoded, or the refusal it carries.
    pub fn answer<T: DeserializeOwned>(&self, reply: &Reply) -> Result<Answer<T>, ClientError> {
        if !(200..300).contains(&reply.status) {
            return Err(ClientError::Refused {
                upstream: self.upstream.name().to_string(),
                status: reply.status,
                message: error_message(&reply.body),
            });
        }
        self.decode(reply)
    }

    /// Sends `call`; any answer below 500 is returned as it came.
    pub async fn reply(&self, mut call: Call) -> Result<Reply, ClientError> {
        call.headers.extend(self.headers.iter().cloned());
        Ok(self.upstream.call(call).await?)
    }

    /// Decodes `reply`'s body, whatever its status.
    pub fn decode<T: DeserializeOwned>(&self, reply: &Reply) -> Result<Answer<T>, ClientError> {
        serde_json::from_slice(&reply.body)
            .map(|body| Answer {
                status: reply.status,
                body,
            })
            .map_err(|e| ClientError::Decode {
                upstream: self.upstream.name().to_string(),
                status: reply.status,
                reason: e.to_string(),
            })
    }
}

/// Characters left as they are in a path segment or query value; all else is escaped.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `s` escaped for use as one path segment or query value (an ID with `/` or `?` in it
/// stays one segment).
pub fn escape(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}
