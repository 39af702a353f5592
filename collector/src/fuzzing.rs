//! The decoders' entry points as the fuzz targets (`fuzz/`, cargo fuzz on nightly) drive
//! them, and as `tests/fuzz_corpus.rs` replays their committed corpora on stable: the bytes
//! of a request body, through the same decoding and conversion the receivers run. Whatever
//! the input, each must answer (an error is an answer); a panic, a hang or unbounded memory
//! is the bug a fuzzer finds.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use crate::otlp::{convert, http, status::Format};
use crate::{payload, zipkin};

/// The first byte picks the encoding (even: protobuf, odd: OTLP/JSON), so one corpus holds
/// both and each mutation can cross over.
fn split(data: &[u8]) -> Option<(Format, &[u8])> {
    let (first, body) = data.split_first()?;
    let format = if first % 2 == 0 {
        Format::Protobuf
    } else {
        Format::Json
    };
    Some((format, body))
}

/// An OTLP traces export body, decoded and converted to the model.
pub fn otlp_traces(data: &[u8]) {
    if let Some((format, body)) = split(data)
        && let Ok(req) = http::decode::<ExportTraceServiceRequest>(format, body)
    {
        let converted = convert::traces(req);
        let _ = converted.rejected.message("spans");
    }
}

/// An OTLP logs export body, decoded and converted to the model.
pub fn otlp_logs(data: &[u8]) {
    if let Some((format, body)) = split(data)
        && let Ok(req) = http::decode::<ExportLogsServiceRequest>(format, body)
    {
        let converted = convert::logs(req);
        let _ = converted.rejected.message("log records");
    }
}

/// A Zipkin v2 JSON body, decoded and converted to the model.
pub fn zipkin_json(data: &[u8]) {
    if let Ok((_, rejected)) = zipkin::decode(data) {
        let _ = rejected.message("spans");
    }
}

/// A gzip body, inflated under a 1 MiB limit (a bomb must stop at the limit).
pub fn gzip(data: &[u8]) {
    if let Ok(inflated) = payload::gunzip(data, 1 << 20) {
        assert!(inflated.len() <= 1 << 20, "inflated past the limit");
    }
}
