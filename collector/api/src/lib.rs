//! The collector's query API as types, declared once: the collector serialises them, the
//! tools (chaos, contracts, loadgen's markers) deserialise the same types, and the UI's
//! TypeScript declarations (`dashboards/web/src/api-types.ts`) are generated from them.
//!
//! # Layout
//! - [`envelope`]: Jaeger's `{data, total, limit, offset, errors}` envelope and the error body.
//! - [`health`]: `/health` and `/ready`.
//! - [`attributes`]: attribute values with OpenTelemetry's value kinds.
//! - [`jaeger`]: Jaeger's trace, span, process and tag JSON; operations; span kinds.
//! - [`logs`], [`correlation`], [`red`], [`requests`], [`dependencies`], [`markers`]: the
//!   other answers.
//! - [`prometheus`]: Prometheus' HTTP API answers (query, series, labels, metadata) in its
//!   own `{status, data}` envelope.
//! - [`params`]: every query's parameters, parsed from the query string once (with the
//!   messages a caller sees on a bad value) and written back by clients.
//! - `client` (feature `client`): a typed client over reqwest.
//! - `typescript` (feature `typescript`): the UI's declarations.
//!
//! The one design decision to know: times in answers are microseconds since the epoch where
//! Jaeger's API uses them (trace JSON, RED, markers) and nanoseconds where the field says so
//! (`time_unix_nano`, `duration_ns`); each field documents its unit.

pub mod attributes;
#[cfg(feature = "client")]
pub mod client;
pub mod correlation;
pub mod dependencies;
pub mod envelope;
pub mod health;
pub mod jaeger;
pub mod logs;
pub mod markers;
pub mod params;
pub mod prometheus;
pub mod red;
pub mod requests;
#[cfg(feature = "typescript")]
pub mod typescript;

pub use attributes::{AttributeValue, Attributes, CORRELATION_KEYS};
pub use envelope::{Envelope, ErrorBody, ErrorItem};
pub use jaeger::SpanKind;
