//! OTLP receivers: gRPC ([`grpc`], traces through [`grpc_traces`]) and HTTP with protobuf or
//! JSON ([`http`]), both turning requests into the model ([`convert`]; protobuf trace exports
//! straight from their bytes, [`trace_decode`] over [`wire`]) and committing them through the
//! ingest pipeline.
//! [`status`] holds the error contract shared by both: google.rpc.Status bodies and retry hints.

pub mod convert;
pub mod grpc;
pub mod grpc_traces;
pub mod http;
pub mod json;
pub mod metrics;
pub mod status;
pub mod trace_decode;
pub mod wire;
