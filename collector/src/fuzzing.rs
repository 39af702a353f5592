//! The decoders' entry points as the fuzz targets (`fuzz/`, cargo fuzz on nightly) drive
//! them, and as `tests/fuzz_corpus.rs` replays their committed corpora on stable: the bytes
//! of a request body, through the same decoding and conversion the receivers run. Whatever
//! the input, each must answer (an error is an answer); a panic, a hang or unbounded memory
//! is the bug a fuzzer finds.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tower::{Layer, Service};

use crate::otlp::convert::Converted;
use crate::otlp::grpc::{BudgetLayer, ResourceExhaustedLayer};
use crate::otlp::grpc_traces::{ExportTraces, TraceServer};
use crate::otlp::{convert, http, status::Format};
use crate::payload::BodyBudget;
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

/// An OTLP traces export body, decoded to the model as the receiver decodes it; a protobuf
/// body also through prost's structs and `convert`, and the two answers must be the same
/// (accepted or refused, span for span, rejection for rejection).
pub fn otlp_traces(data: &[u8]) {
    let Some((format, body)) = split(data) else {
        return;
    };
    let direct = http::decode_traces(format, body);
    if format == Format::Protobuf {
        let prost = http::decode::<ExportTraceServiceRequest>(format, body).map(convert::traces);
        let answer = |r: &Result<convert::Converted, String>| {
            r.as_ref()
                .map(|c| format!("{:?} {:?}", c.batch.spans, c.rejected))
                .map_err(|_| ())
        };
        assert_eq!(
            answer(&direct),
            answer(&prost),
            "the bytes decoder and prost disagree"
        );
    }
    if let Ok(converted) = direct {
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

/// An OTLP metrics export body, decoded and converted to the model (names and labels
/// worked out, points checked).
pub fn otlp_metrics(data: &[u8]) {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    if let Some((format, body)) = split(data)
        && let Ok(req) = http::decode::<ExportMetricsServiceRequest>(format, body)
    {
        let converted = crate::otlp::metrics::metrics(req);
        let _ = converted.rejected.message("data points");
    }
}

/// A PromQL query, parsed and, when it parses, evaluated instant and over a few steps
/// against a small fixed set of series (every selector sees the same ones): whatever the
/// query, an answer or an error, never a panic.
pub fn promql(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The parser's work grows with the input; a query is short.
    if text.len() > 4096 {
        return;
    }
    if let Ok(expr) = crate::promql::parse(text)
        && let Ok(loaded) = crate::promql::select::synthetic(&expr)
    {
        let ev = crate::promql::eval::Evaluator::new(&loaded);
        let _ = ev.at(&expr, 600_000);
        let range = crate::promql::Range {
            start_ms: 300_000,
            end_ms: 600_000,
            step_ms: 60_000,
        };
        if matches!(
            expr.value_type(),
            promql_parser::parser::value::ValueType::Vector
                | promql_parser::parser::value::ValueType::Scalar
        ) {
            let _ = ev.over(&expr, range);
        }
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

/// The largest message the gRPC target lets tonic decode, and the budget it reserves from.
const GRPC_MAX_MESSAGE: usize = 1 << 20;
const GRPC_BUDGET: usize = 4 << 20;

/// A gRPC request body through the receiver's own stack: the budget layer that reads the
/// 5-byte length prefix, tonic's framing and gzip, the OTLP decoding and the conversion
/// (committing is left out: the store is not what this target is for). The first byte
/// picks the service (bit 0: logs), whether the request says `grpc-encoding: gzip` (bit 1)
/// and the size of the body's frames (the rest of it, so a prefix can arrive split); the
/// rest is the body. Every request must get a gRPC status, and give its reservation back.
pub fn grpc_framing(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let logs = first & 1 == 1;
    let gzip = first & 2 == 2;
    let frame = usize::from(first >> 2) * 16 + 1;
    let budget = BodyBudget::new(GRPC_BUDGET);
    let available = budget.available();
    let status = grpc_runtime().block_on(grpc_call(&budget, logs, gzip, frame, body));
    assert!(status.is_some(), "an answer without a grpc-status");
    assert_eq!(budget.available(), available, "the reservation was kept");
}

fn grpc_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime for the gRPC target")
    })
}

/// One call through the stack; the answer's `grpc-status`, from its headers (a
/// trailers-only answer) or its trailers.
async fn grpc_call(
    budget: &BodyBudget,
    logs: bool,
    gzip: bool,
    frame: usize,
    body: &[u8],
) -> Option<String> {
    let chunks = body.chunks(frame).map(Bytes::copy_from_slice).collect();
    let path = if logs {
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    } else {
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    };
    let mut request = ::http::Request::post(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if gzip {
        request = request.header("grpc-encoding", "gzip");
    }
    let request = request
        .body(tonic::body::Body::new(Chunks(chunks)))
        .expect("a well-formed request head");
    let layers = BudgetLayer {
        budget: budget.clone(),
        max_body: GRPC_MAX_MESSAGE,
    };
    let response = if logs {
        let server = LogsServiceServer::new(Discard)
            .max_decoding_message_size(GRPC_MAX_MESSAGE)
            .accept_compressed(CompressionEncoding::Gzip);
        ready_call(ResourceExhaustedLayer.layer(layers.layer(server)), request).await
    } else {
        let server = TraceServer::new(Discard, GRPC_MAX_MESSAGE);
        ready_call(ResourceExhaustedLayer.layer(layers.layer(server)), request).await
    };
    let response = response.ok()?;
    let status = |h: &::http::HeaderMap| {
        h.get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(s) = status(response.headers()) {
        return Some(s);
    }
    let collected = response.into_body().collect().await.ok()?;
    collected.trailers().and_then(status)
}

/// `call` after `poll_ready`, as tower's contract asks.
async fn ready_call<S: Service<R>, R>(mut service: S, request: R) -> Result<S::Response, S::Error> {
    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}

/// A request body in the frames the input chose.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        Poll::Ready(self.get_mut().0.pop_front().map(|b| Ok(Frame::data(b))))
    }
}

/// The services with the receiver's conversion and no store.
struct Discard;

impl ExportTraces for Discard {
    async fn export(
        &self,
        converted: Converted,
    ) -> Result<ExportTraceServiceResponse, tonic::Status> {
        let _ = converted.rejected.message("spans");
        Ok(ExportTraceServiceResponse::default())
    }
}

#[tonic::async_trait]
impl LogsService for Discard {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let converted = convert::logs(request.into_inner());
        let _ = converted.rejected.message("log records");
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(gzip: bool, frame: usize, body: &[u8]) -> Option<String> {
        let budget = BodyBudget::new(GRPC_BUDGET);
        grpc_runtime().block_on(grpc_call(&budget, false, gzip, frame, body))
    }

    /// The target reaches the service: a well-formed message is answered OK, whatever
    /// frames it arrives in, and the stack's own refusals come through.
    #[test]
    fn the_grpc_target_drives_the_receivers_stack() {
        let message = [0, 0, 0, 0, 0];
        assert_eq!(answer(false, 1, &message).as_deref(), Some("0"));
        assert_eq!(answer(false, 64, &message).as_deref(), Some("0"));
        // Announced past the limit: RESOURCE_EXHAUSTED, as the receiver answers it.
        let huge = [0, 0x7f, 0xff, 0xff, 0xff];
        assert_eq!(answer(false, 5, &huge).as_deref(), Some("8"));
        // Compressed flag with no grpc-encoding: tonic's INTERNAL.
        assert_eq!(answer(false, 5, &[1, 0, 0, 0, 0]).as_deref(), Some("13"));
    }
}
