//! Gauntlet's demo system: small axum services that use the patterns people ask about, so
//! that load, contract and chaos experiments have something real to run against.
//!
//! # Layout
//! - [`topology`]: the one description of the demo: services, instances, ports, and the
//!   consumer → provider edges. Everything below derives from it.
//! - [`platform`]: what every service stands on: its database (on blocking threads), the
//!   outbox and feed, the HTTP edge and error envelope, discovery, resilience, the typed
//!   client layer, telemetry.
//! - One folder per service, each with `api.rs` (wire types, serde only), `db.rs` (schema
//!   and queries), `server.rs` (routes), `client.rs` (the typed client other services, the
//!   traffic and contract tests use): [`registry`], [`gateway`], [`orders`] (plus its
//!   `saga.rs`), [`inventory`], [`payments`], [`notifications`], [`order_history`], and
//!   [`legacy`] (the old shop the strangler fig replaces, without OpenTelemetry) with its
//!   [`sidecar`] (spans, logs, health and registration from outside); the backends for
//!   frontends [`web_bff`] (GraphQL) and [`mobile_bff`] (trimmed REST), which keep no data.
//! - Running it: [`runner`] (one instance in this process, `gauntlet demo-service`),
//!   [`supervisor`] (every instance as a child process; kill, restart, pause, resume;
//!   [`healing`]: crashed or unresponsive instances started again after a backoff),
//!   [`ports`] (free ports held for instances until they listen), [`broker_server`]
//!   (Debian's RabbitMQ as a child, for `--broker rabbitmq`),
//!   [`traffic`] (the demo's burst), [`config`] (`demo.toml` and `--disable`), [`handle`]
//!   (`demo.json`, where tools find a running demo).
//!
//! Each service is a library: `app(state) -> Router` for tests without sockets, and the
//! runner serves it on a port it was given. Every call from one service to another goes
//! through the provider's typed client, found through the registry, behind the consumer's
//! resilience layers for that edge.

pub mod broker_server;
pub mod config;
pub mod gateway;
pub mod handle;
pub mod healing;
pub mod inventory;
pub mod legacy;
pub mod mobile_bff;
pub mod notifications;
pub mod order_history;
pub mod orders;
pub mod payments;
pub mod platform;
pub mod ports;
pub mod registry;
pub mod runner;
pub mod sidecar;
pub mod supervisor;
pub mod topology;
pub mod traffic;
pub mod web_bff;
