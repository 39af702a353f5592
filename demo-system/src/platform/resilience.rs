//! Resilience for a service's calls to one upstream, built from `tower-resilience` layers
//! with Resilience4j's semantics, in Resilience4j's order:
//! retry (exponential backoff with jitter; only idempotent calls or calls carrying an
//! idempotency key) → circuit breaker (count-based window, failure-rate and slow-call-rate
//! thresholds, wait in open, permitted calls in half-open) → bulkhead (at most N calls at
//! once; the next is rejected, not queued) → per-call timeout → HTTP.
//!
//! A 5xx answer, a timeout or a transport error is a failure; 4xx is the caller's problem
//! and counts as a success. Every breaker state change is logged as
//! `circuit_breaker.state_change` (inside a span, the OTel layer makes it a span event too).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceExt};
use tower_resilience::bulkhead::{BulkheadHandle, BulkheadLayer, BulkheadServiceError};
use tower_resilience::circuitbreaker::{
    CircuitBreakerError, CircuitBreakerHandle, CircuitBreakerLayer, CircuitState,
};
use tower_resilience::retry::{ExponentialRandomBackoff, RetryLayer};

use super::discovery::Endpoint;
use super::live_config::Knobs;

/// Settings of every upstream of a service; each switch lets an experiment show what the
/// pattern is worth by turning it off.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceConfig {
    pub circuit_breaker: BreakerConfig,
    pub retry: RetryConfig,
    pub bulkhead: BulkheadConfig,
    /// Longest one attempt may take, in milliseconds.
    pub timeout_ms: u64,
    /// Give every attempt that deadline; `false` (`--disable timeouts`): a call waits as
    /// long as the upstream takes.
    pub timeouts: bool,
}

impl ResilienceConfig {
    /// The orders saga's calls: idempotent on the order ID, so they can afford five
    /// attempts, which ride out an upstream that fails one call in five (0.2⁵ ≈ 0.03 % of
    /// calls still fail) where three would leave 0.8 %; the backoffs add up to under 1.2 s,
    /// inside the gateway's 2 s timeout.
    pub fn saga() -> Self {
        let mut c = Self::default();
        c.retry.max_attempts = 5;
        c
    }
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            circuit_breaker: BreakerConfig::default(),
            retry: RetryConfig::default(),
            bulkhead: BulkheadConfig::default(),
            timeout_ms: 2_000,
            timeouts: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    pub enabled: bool,
    /// Calls in the count-based sliding window.
    pub sliding_window_size: usize,
    /// Calls recorded before any rate is computed.
    pub minimum_number_of_calls: usize,
    /// Open at this share of failed calls (0.0-1.0).
    pub failure_rate_threshold: f64,
    /// A call slower than this is slow, in milliseconds.
    pub slow_call_duration_ms: u64,
    /// Open at this share of slow calls (0.0-1.0).
    pub slow_call_rate_threshold: f64,
    /// How long to stay open before letting trial calls through, in milliseconds.
    pub wait_duration_in_open_ms: u64,
    /// Trial calls in half-open that decide between closed and open.
    pub permitted_calls_in_half_open: usize,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sliding_window_size: 20,
            minimum_number_of_calls: 10,
            failure_rate_threshold: 0.5,
            slow_call_duration_ms: 1_000,
            slow_call_rate_threshold: 0.8,
            wait_duration_in_open_ms: 5_000,
            permitted_calls_in_half_open: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    /// Attempts in all, the first included.
    pub max_attempts: usize,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Jitter: each wait is drawn from ±this share of the exponential value.
    pub randomization_factor: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_attempts: 3,
            initial_backoff_ms: 50,
            max_backoff_ms: 1_000,
            randomization_factor: 0.5,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkheadConfig {
    /// `false` (`--disable bulkhead`): no per-upstream limit, so one slow upstream's calls
    /// can take every connection of the service's pool.
    pub enabled: bool,
    pub max_concurrent_calls: usize,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_concurrent_calls: 16,
        }
    }
}

/// A service's connections to all its upstreams together, as a real HTTP client's pool
/// bounds them: a call holds one while in flight and waits (within its deadline) for a
/// free one. Per-upstream bulkheads keep one slow upstream from holding them all. Cheap to
/// clone; clones share the pool.
#[derive(Debug, Clone, Default)]
pub struct ConnectionPool {
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl ConnectionPool {
    /// A pool of `max` connections.
    pub fn new(max: usize) -> Self {
        Self {
            slots: Some(Arc::new(tokio::sync::Semaphore::new(max))),
        }
    }

    /// Connections free now (`None`: the pool is unbounded).
    pub fn available(&self) -> Option<usize> {
        self.slots.as_ref().map(|s| s.available_permits())
    }

    /// A connection, once one is free (`None`: the pool is unbounded).
    async fn acquire(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        match &self.slots {
            // The semaphore is never closed, so acquiring fails only if it were.
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid circuit breaker settings: {0}")]
    Breaker(String),
    #[error("invalid bulkhead settings: {0}")]
    Bulkhead(String),
    #[error("invalid retry settings: {0}")]
    Retry(String),
}

/// One outgoing HTTP call, relative to the upstream's base URL (picked per attempt).
#[derive(Debug, Clone)]
pub struct Call {
    pub method: reqwest::Method,
    /// Path and query, e.g. `/products/SKU-LAMP`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// A JSON body, already encoded.
    pub body: Option<bytes::Bytes>,
    /// Safe to send again: GET/PUT/DELETE, or a POST with an idempotency key.
    pub idempotent: bool,
    /// Overrides the upstream's timeout for this call (a long poll needs longer).
    pub timeout: Option<Duration>,
    /// What carries it: JSON over HTTP, or a unary gRPC call (`path` the method's,
    /// `body` the encoded request message).
    pub wire: Wire,
}

/// How a [`Call`] travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wire {
    #[default]
    Http,
    /// A unary gRPC call over HTTP/2 (see [`super::grpc`]).
    Grpc,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: reqwest::Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: None,
            idempotent: true,
            timeout: None,
            wire: Wire::Http,
        }
    }

    /// A POST of `body` as JSON; retried only if `idempotency_key` is given (and then sent
    /// as `Idempotency-Key`).
    pub fn post(
        path: impl Into<String>,
        body: &impl Serialize,
        idempotency_key: Option<&str>,
    ) -> Result<Self, serde_json::Error> {
        let mut headers = Vec::new();
        if let Some(key) = idempotency_key {
            headers.push(("idempotency-key".to_string(), key.to_string()));
        }
        Ok(Self {
            method: reqwest::Method::POST,
            path: path.into(),
            headers,
            body: Some(serde_json::to_vec(body)?.into()),
            idempotent: idempotency_key.is_some(),
            timeout: None,
            wire: Wire::Http,
        })
    }

    /// A unary gRPC call of `method` (`/package.Service/Method`) with the encoded request
    /// `message`; retried only if `idempotent` (a read).
    pub fn grpc(method: impl Into<String>, message: Vec<u8>, idempotent: bool) -> Self {
        Self {
            method: reqwest::Method::POST,
            path: method.into(),
            headers: Vec::new(),
            body: Some(message.into()),
            idempotent,
            timeout: None,
            wire: Wire::Grpc,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

/// An answer below 500.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: bytes::Bytes,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{upstream} answered {status}: {message}")]
    Status {
        upstream: String,
        status: u16,
        message: String,
    },
    #[error("{upstream} did not answer within {timeout:?}")]
    Timeout { upstream: String, timeout: Duration },
    #[error("could not reach {upstream}: {reason}")]
    Transport { upstream: String, reason: String },
    #[error("no instance of {upstream} to call: {reason}")]
    NoInstance { upstream: String, reason: String },
    #[error("the circuit breaker for {upstream} is open")]
    CircuitOpen { upstream: String },
    #[error("{upstream} already has {max} calls in flight (bulkhead full)")]
    BulkheadFull { upstream: String, max: usize },
}

impl CallError {
    /// Worth another attempt: the upstream failed, not our own protection.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Status { .. } | Self::Timeout { .. } | Self::Transport { .. }
        )
    }
}

/// What `/admin/resilience` answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResilienceReport {
    pub upstreams: Vec<UpstreamSnapshot>,
    /// Requests the gateway refused for exceeding a client's rate (the gateway only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<u64>,
}

impl ResilienceReport {
    pub fn of(upstreams: &[Upstream]) -> Self {
        let mut snapshots: Vec<UpstreamSnapshot> =
            upstreams.iter().map(Upstream::snapshot).collect();
        snapshots.sort_by(|a, b| a.upstream.cmp(&b.upstream));
        Self {
            upstreams: snapshots,
            rate_limited: None,
        }
    }

    /// The snapshot of the upstream named `name`.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamSnapshot> {
        self.upstreams.iter().find(|u| u.upstream == name)
    }
}

/// `circuit_breaker` of an upstream whose breaker is off (`--disable circuit-breaker`): it
/// stays so for the process' life, so a probe waiting for another state need not wait.
pub const BREAKER_DISABLED: &str = "disabled";

/// What `/admin/resilience` shows for one upstream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UpstreamSnapshot {
    pub upstream: String,
    /// `closed`, `open`, `half_open`, or `disabled`.
    pub circuit_breaker: String,
    pub bulkhead_in_use: usize,
    /// `None`: no bulkhead (`--disable bulkhead`).
    pub bulkhead_max: Option<usize>,
    /// Retries made so far (attempts after the first).
    pub retries: u64,
    /// Breaker state changes so far.
    pub state_changes: u64,
    /// Calls sent to each instance (base URL) found through discovery.
    #[serde(default)]
    pub calls_per_instance: BTreeMap<String, u64>,
    /// Attempts an idempotent call gets now (the registry's configuration can change it).
    #[serde(default)]
    pub max_attempts: usize,
    /// One attempt's deadline now, in milliseconds (`None`: no deadline).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The shard this upstream reaches, for one of a sharded service's (each shard has its
    /// own breaker and bulkhead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u16>,
}

/// A resilient client for one upstream. Cheap to clone; clones share breaker and bulkhead.
#[derive(Clone)]
pub struct Upstream {
    name: String,
    endpoint: Endpoint,
    service: BoxCloneSyncService<Call, Reply, CallError>,
    breaker: Option<CircuitBreakerHandle>,
    bulkhead: Option<BulkheadHandle>,
    retries: Arc<AtomicU64>,
    state_changes: Arc<AtomicU64>,
    /// Attempts and deadline, read on every call: the registry's configuration can change
    /// them live ([`super::live_config`]).
    knobs: Knobs,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .finish()
    }
}

fn state_name(s: CircuitState) -> &'static str {
    match s {
        CircuitState::Closed => "closed",
        CircuitState::Open => "open",
        CircuitState::HalfOpen => "half_open",
    }
}

/// A call through some of the layers.
type CallService = BoxCloneSyncService<Call, Reply, CallError>;

/// The service behind a bulkhead of `max_concurrent_calls` that refuses when full, when
/// bulkheads are on.
fn with_bulkhead<S>(
    name: &str,
    config: &ResilienceConfig,
    inner: S,
) -> Result<(CallService, Option<BulkheadHandle>), ConfigError>
where
    S: tower::Service<Call, Response = Reply, Error = CallError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    if !config.bulkhead.enabled {
        return Ok((BoxCloneSyncService::new(inner), None));
    }
    let max = config.bulkhead.max_concurrent_calls;
    let (bulkhead, handle) = BulkheadLayer::builder()
        .name(format!("{name}-bulkhead"))
        .max_concurrent_calls(max)
        .reject_when_full()
        .build_with_handle()
        .map_err(|e| ConfigError::Bulkhead(e.to_string()))?;
    let upstream = name.to_string();
    let svc = bulkhead.layer(inner).map_err(move |e| match e {
        BulkheadServiceError::Inner(e) => e,
        BulkheadServiceError::Bulkhead(_) => CallError::BulkheadFull {
            upstream: upstream.clone(),
            max,
        },
    });
    Ok((BoxCloneSyncService::new(svc), Some(handle)))
}

/// The service behind a circuit breaker when one is enabled (each state change counted in
/// `changes` and logged as a `circuit_breaker.state_change` event).
fn with_breaker(
    name: &str,
    b: &BreakerConfig,
    inner: CallService,
    changes: Arc<AtomicU64>,
) -> Result<(CallService, Option<CircuitBreakerHandle>), ConfigError> {
    if !b.enabled {
        return Ok((inner, None));
    }
    let upstream = name.to_string();
    let (layer, handle) = CircuitBreakerLayer::builder()
        .name(format!("{name}-breaker"))
        .sliding_window_size(b.sliding_window_size)
        .minimum_number_of_calls(b.minimum_number_of_calls)
        .failure_rate_threshold(b.failure_rate_threshold)
        .slow_call_duration_threshold(Duration::from_millis(b.slow_call_duration_ms))
        .slow_call_rate_threshold(b.slow_call_rate_threshold)
        .wait_duration_in_open(Duration::from_millis(b.wait_duration_in_open_ms))
        .permitted_calls_in_half_open(b.permitted_calls_in_half_open)
        .on_state_transition({
            let upstream = upstream.clone();
            move |from, to| {
                changes.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    event.name = "circuit_breaker.state_change",
                    upstream = %upstream,
                    from = state_name(from),
                    to = state_name(to),
                    "circuit_breaker.state_change"
                );
            }
        })
        .build_with_handle()
        .map_err(|e| ConfigError::Breaker(e.to_string()))?;
    let svc = layer.layer(inner).map_err(move |e| match e {
        CircuitBreakerError::Inner(e) => e,
        CircuitBreakerError::OpenCircuit => CallError::CircuitOpen {
            upstream: upstream.clone(),
        },
    });
    Ok((BoxCloneSyncService::new(svc), Some(handle)))
}

/// Retries of idempotent calls on retryable errors, with exponential random backoff; each
/// retry counted in `retries` and logged as a `retry` event on the caller's span.
fn retry_layer(
    name: &str,
    r: &RetryConfig,
    knobs: Knobs,
    retries: Arc<AtomicU64>,
) -> Result<RetryLayer<Call, Reply, CallError>, ConfigError> {
    let backoff = ExponentialRandomBackoff::new(
        Duration::from_millis(r.initial_backoff_ms),
        r.randomization_factor,
    )
    .map_err(|e| ConfigError::Retry(e.to_string()))?
    .max_interval(Duration::from_millis(r.max_backoff_ms));
    let upstream = name.to_string();
    Ok(RetryLayer::<Call, Reply, CallError>::builder()
        .name(format!("{name}-retry"))
        .max_attempts_fn(
            move |call: &Call| {
                if call.idempotent { knobs.attempts() } else { 1 }
            },
        )
        .backoff(backoff)
        .retry_on(CallError::is_retryable)
        .on_retry(move |attempt, _| {
            retries.fetch_add(1, Ordering::Relaxed);
            // An event on the caller's span: a retried call shows in its trace.
            tracing::info!(
                event.name = "retry",
                upstream = %upstream,
                retry = attempt,
                "retry"
            );
        })
        .build())
}

impl Upstream {
    /// A client for the upstream `name` at `endpoint`: each attempt picks its instance
    /// there, so a retry after a failed instance can land on a healthy one.
    pub fn new(
        name: &str,
        endpoint: Endpoint,
        http: reqwest::Client,
        config: &ResilienceConfig,
    ) -> Result<Self, ConfigError> {
        Self::pooled(name, endpoint, http, config, ConnectionPool::default())
    }

    /// [`Upstream::new`], its calls holding a connection of `pool` while in flight.
    pub fn pooled(
        name: &str,
        endpoint: Endpoint,
        http: reqwest::Client,
        config: &ResilienceConfig,
        pool: ConnectionPool,
    ) -> Result<Self, ConfigError> {
        let upstream = name.to_string();
        let knobs = Knobs::from_config(config);
        let send = {
            let (upstream, endpoint, knobs) = (upstream.clone(), endpoint.clone(), knobs.clone());
            tower::service_fn(move |call: Call| {
                let (http, upstream, endpoint) = (http.clone(), upstream.clone(), endpoint.clone());
                let pool = pool.clone();
                let timeout = knobs.timeout();
                async move { send(&http, &upstream, &endpoint, &pool, call, timeout).await }
            })
        };

        let (bulkheaded, bulkhead_handle) = with_bulkhead(name, config, send)?;
        let state_changes = Arc::new(AtomicU64::new(0));
        let (guarded, breaker) = with_breaker(
            name,
            &config.circuit_breaker,
            bulkheaded,
            state_changes.clone(),
        )?;
        let retries = Arc::new(AtomicU64::new(0));
        let retry = retry_layer(name, &config.retry, knobs.clone(), retries.clone())?;
        let upstream = Self {
            name: upstream,
            endpoint,
            service: BoxCloneSyncService::new(retry.layer(guarded)),
            breaker,
            bulkhead: bulkhead_handle,
            retries,
            state_changes,
            knobs,
        };
        super::meters::watch(&upstream);
        Ok(upstream)
    }

    /// The client's live settings (attempts, deadline), for [`super::live_config::follow`].
    pub fn knobs(&self) -> Knobs {
        self.knobs.clone()
    }

    /// Sends `call` through retry, breaker, bulkhead and timeout.
    pub async fn call(&self, call: Call) -> Result<Reply, CallError> {
        self.service.clone().oneshot(call).await
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls made so far to each instance (empty for a fixed endpoint).
    pub fn calls_per_instance(&self) -> BTreeMap<String, u64> {
        self.endpoint.calls_per_instance()
    }

    pub fn snapshot(&self) -> UpstreamSnapshot {
        UpstreamSnapshot {
            upstream: self.name.clone(),
            circuit_breaker: self
                .breaker
                .as_ref()
                .map_or(BREAKER_DISABLED, |b| state_name(b.state()))
                .to_string(),
            bulkhead_in_use: self.bulkhead.as_ref().map_or(0, |b| b.active_calls()),
            bulkhead_max: self.bulkhead.as_ref().map(|b| b.max_concurrent()),
            retries: self.retries.load(Ordering::Relaxed),
            state_changes: self.state_changes.load(Ordering::Relaxed),
            calls_per_instance: self.calls_per_instance(),
            max_attempts: self.knobs.attempts(),
            timeout_ms: self.knobs.timeout().map(|t| t.as_millis() as u64),
            shard: self.endpoint.shard(),
        }
    }
}

async fn send(
    http: &reqwest::Client,
    upstream: &str,
    endpoint: &Endpoint,
    pool: &ConnectionPool,
    call: Call,
    timeout: Option<Duration>,
) -> Result<Reply, CallError> {
    use tracing::Instrument;
    let timeout = call.timeout.or(timeout);
    // Waiting for a connection spends the call's deadline, as a pool's checkout does.
    let started = tokio::time::Instant::now();
    let _connection = match timeout {
        None => pool.acquire().await,
        Some(t) => {
            tokio::time::timeout(t, pool.acquire())
                .await
                .map_err(|_| CallError::Timeout {
                    upstream: upstream.to_string(),
                    timeout: t,
                })?
        }
    };
    let timeout = timeout.map(|t| {
        t.saturating_sub(started.elapsed())
            .max(Duration::from_millis(1))
    });
    let base = endpoint
        .resolve()
        .await
        .map_err(|reason| CallError::NoInstance {
            upstream: upstream.to_string(),
            reason,
        })?;
    let url = format!("{base}{}", call.path);
    let span = call_span(upstream, &call, &url);
    // A sharded upstream's calls say which shard they went to (in the collector: which
    // customers a failing shard's errors belong to).
    if let Some(index) = endpoint.shard() {
        span.record("shard", i64::from(index));
    }
    let wire = call.wire;
    let method = call.method.to_string();
    let sent_at = std::time::Instant::now();
    let result = match wire {
        Wire::Http => {
            send_in_span(http, upstream, &url, call, timeout)
                .instrument(span.clone())
                .await
        }
        Wire::Grpc => {
            super::grpc::send(upstream, &base, call, timeout)
                .instrument(span.clone())
                .await
        }
    };
    // A gRPC attempt's status is its `rpc.grpc.status_code` (recorded by the transport);
    // the HTTP status it maps to is what the layers above read, not an attribute.
    let http = wire == Wire::Http;
    match &result {
        Ok(r) => {
            if http {
                span.record("http.response.status_code", i64::from(r.status));
            }
            // HTTP semantic conventions: a client span's 4xx is an error too (the caller did
            // not get what it asked for, e.g. a declined payment), unlike a server span's.
            if r.status >= 400 {
                span.record("otel.status_code", "ERROR");
            }
        }
        Err(e) => {
            span.record("otel.status_code", "ERROR");
            if let CallError::Status { status, .. } = e
                && http
            {
                span.record("http.response.status_code", i64::from(*status));
            }
            // An instance that cannot be reached is skipped for a while (outlier
            // ejection), so the retry and the next calls go to the others.
            if matches!(e, CallError::Transport { .. }) {
                endpoint.failed(&base);
            }
        }
    }
    let outcome = match &result {
        Ok(r) => super::meters::Outcome::Status(r.status),
        Err(CallError::Status { status, .. }) => super::meters::Outcome::Status(*status),
        Err(CallError::Timeout { .. }) => super::meters::Outcome::Error("timeout"),
        Err(_) => super::meters::Outcome::Error("transport"),
    };
    super::meters::sent(&method, upstream, outcome, sent_at.elapsed().as_secs_f64());
    result
}

/// The CLIENT span of one attempt: HTTP's semantic conventions, or RPC's for gRPC.
fn call_span(upstream: &str, call: &Call, url: &str) -> tracing::Span {
    let name = match call.wire {
        Wire::Http => format!("{} {upstream}", call.method),
        Wire::Grpc => call.path.trim_start_matches('/').to_string(),
    };
    let span = tracing::info_span!(
        "call",
        otel.name = %name,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = tracing::field::Empty,
        url.full = %url,
        peer.service = %upstream,
        http.response.status_code = tracing::field::Empty,
        shard = tracing::field::Empty,
        rpc.system = tracing::field::Empty,
        rpc.service = tracing::field::Empty,
        rpc.method = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
    );
    match call.wire {
        Wire::Http => {
            span.record("http.request.method", call.method.as_str());
        }
        Wire::Grpc => super::grpc::describe(&span, &call.path),
    }
    span
}

async fn send_in_span(
    http: &reqwest::Client,
    upstream: &str,
    url: &str,
    call: Call,
    timeout: Option<Duration>,
) -> Result<Reply, CallError> {
    let mut req = http.request(call.method, url);
    if let Some(t) = timeout {
        req = req.timeout(t);
    }
    // The span's context and baggage go along, so the callee continues the trace; the
    // correlation ID also travels as the plain header people grep for.
    let trace = super::telemetry::current_headers();
    let has_cid = call.headers.iter().any(|(k, _)| k == "x-correlation-id");
    if let Some(cid) = super::telemetry::current_correlation_id().filter(|_| !has_cid) {
        req = req.header("x-correlation-id", cid);
    }
    for (k, v) in trace {
        req = req.header(k, v);
    }
    for (k, v) in &call.headers {
        if k != "baggage" {
            req = req.header(k, v);
        }
    }
    if let Some(body) = call.body {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
    }
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            CallError::Timeout {
                upstream: upstream.to_string(),
                timeout: timeout.unwrap_or_default(),
            }
        } else {
            CallError::Transport {
                upstream: upstream.to_string(),
                reason: e.to_string(),
            }
        }
    };
    let resp = req.send().await.map_err(transport)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(transport)?;
    if status >= 500 {
        return Err(CallError::Status {
            upstream: upstream.to_string(),
            status,
            message: super::client::error_message(&body),
        });
    }
    Ok(Reply { status, body })
}
