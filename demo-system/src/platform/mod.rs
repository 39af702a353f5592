//! What every demo service stands on, whatever it does:
//! - [`db`]: its own SQLite database, used only from blocking threads;
//! - [`outbox`]: the transactional outbox, the long-poll event feed and the idempotent consumer;
//!   [`dead_letters`]: where that consumer parks an event its handler keeps failing on;
//!   [`broker`]: RabbitMQ instead of the feed: the outbox relay and the queue consumers;
//! - [`http`]: the HTTP edge (the one error envelope, health and admin routes);
//! - [`discovery`] and [`resilience`]: where a call goes (registry, round-robin, ejection)
//!   and how it is protected (retry, circuit breaker, bulkhead, timeout); [`live_config`]:
//!   the attempts and deadlines a service follows from the registry's keys, live;
//!   [`leadership`]: leader election among a service's instances, with a fencing token;
//!   [`sharding`]: which shard of a sharded service holds a key;
//! - [`client`]: typed JSON calls over those, which every service client is built from;
//!   [`jsonrpc`]: JSON-RPC 2.0 over HTTP, its server route and client, over the same;
//!   [`grpc`]: unary gRPC calls through the same layers, and their typed client;
//! - [`telemetry`]: OTLP traces and logs, W3C propagation, the correlation ID everywhere;
//!   [`meters`]: the OTLP metrics (HTTP durations, breakers, bulkheads, retries, consumers);
//! - [`text_enum`]: states that travel and are stored as text; [`money`]: cents as people read them;
//! - [`provider_states`]: Pact provider states, for contract verification (off by default).

pub mod broker;
pub mod client;
pub mod db;
pub mod dead_letters;
pub mod discovery;
pub mod grpc;
pub mod http;
pub mod jsonrpc;
pub mod leadership;
pub mod live_config;
pub mod meters;
pub mod money;
pub mod outbox;
pub mod provider_states;
pub mod resilience;
pub mod sharding;
pub mod telemetry;
pub mod text_enum;

/// Locks `m`, and keeps using what it guards after a panic elsewhere: the demo's guarded
/// maps (discovery's caches, the gateway's catalogue) stay consistent across one, and a
/// service that stopped answering over a poisoned lock would hide the original panic.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
