//! Gauntlet's demo system: small axum services that use the patterns people ask about, so
//! that load, contract and chaos experiments have something real to run against.
//!
//! # Layout
//! - [`registry`]: service registry and discovery (register, heartbeat, TTL eviction,
//!   health polling, healthy instances by service name).
//! - [`notifications`]: consumes order events, records the notifications it would send.
//! - [`order_history`]: the CQRS read model built from order events.
//! - [`orders`]: the orders service, an orchestrated saga that resumes after a restart.
//! - [`outbox`]: transactional outbox, the long-poll event feed, and the idempotent consumer.
//! - [`config`]: the demo's settings (`demo.toml`) and `--disable` switches.
//! - [`gateway`]: the API gateway and BFF (JWT, rate limit, discovery, resilience, fallback).
//! - [`inventory`]: the inventory service (products, stock, reservations confirmed or released).
//! - [`payments`]: the payments service (authorizations, refunds, the decline rule).
//! - [`runner`]: runs one named service in this process (what `gauntlet demo-service` calls).
//! - [`supervisor`]: runs instances as child processes; kill, restart, pause, resume.
//! - [`telemetry`]: OTLP traces and logs, W3C propagation, the correlation ID everywhere.
//! - [`traffic`]: the short burst of realistic traffic `gauntlet demo` sends.
//! - [`service`]: what every service shares at its HTTP edge (errors, health routes).
//! - [`resilience`]: retry, circuit breaker, bulkhead and timeout for calls to one upstream.
//!
//! Each service is a library: `app(state) -> Router` for tests without sockets, and
//! `run(listener, shutdown)` for a real process on a port it was given.

pub mod config;
pub mod gateway;
pub mod inventory;
pub mod notifications;
pub mod order_history;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod registry;
pub mod resilience;
pub mod runner;
pub mod service;
pub mod supervisor;
pub mod telemetry;
pub mod traffic;
