//! TraceService/Export served without the generated `TraceServiceServer`, whose codec is
//! fixed to prost's: here tonic's framing, gzip and message-size limit hand each message's
//! bytes to [`super::trace_decode`], as the HTTP receiver does, so both receivers decode a
//! trace export one way and no owned `opentelemetry-proto` request is built.
//!
//! A message that does not decode is INTERNAL, as tonic's prost codec (and gRPC's status
//! code guide) has it; the answer is prost's `ExportTraceServiceResponse`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Buf;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::convert::Converted;
use super::trace_decode;

/// The full path of the one method.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What answers a decoded export: the receiver commits it; the fuzz target drops it.
pub trait ExportTraces: Send + Sync + 'static {
    fn export(
        &self,
        converted: Converted,
    ) -> impl Future<Output = Result<ExportTraceServiceResponse, Status>> + Send;
}

/// The TraceService, gzip accepted and sent, messages over `max_decoding` bytes refused.
pub struct TraceServer<E> {
    inner: Arc<E>,
    max_decoding: usize,
}

impl<E> Clone for TraceServer<E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            max_decoding: self.max_decoding,
        }
    }
}

impl<E: ExportTraces> TraceServer<E> {
    pub fn new(inner: E, max_decoding: usize) -> Self {
        Self {
            inner: Arc::new(inner),
            max_decoding,
        }
    }
}

impl<E> NamedService for TraceServer<E> {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl<E, B> tower::Service<http::Request<B>> for TraceServer<E>
where
    E: ExportTraces,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!("no method {}", req.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let (inner, max_decoding) = (self.inner.clone(), self.max_decoding);
        Box::pin(async move {
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(ExportCodec)
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(max_decoding), None);
            Ok(grpc.unary(Export(inner), req).await)
        })
    }
}

/// The method, over the decoded export.
struct Export<E>(Arc<E>);

impl<E: ExportTraces> UnaryService<Converted> for Export<E> {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Result<Response<ExportTraceServiceResponse>, Status>>;

    fn call(&mut self, request: Request<Converted>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.export(request.into_inner()).await.map(Response::new) })
    }
}

/// Decodes a request's message with [`trace_decode::traces`], encodes the answer with prost.
#[derive(Debug, Clone, Copy, Default)]
struct ExportCodec;

impl Codec for ExportCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Converted;
    type Encoder = ExportCodec;
    type Decoder = ExportCodec;

    fn encoder(&mut self) -> Self::Encoder {
        ExportCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        ExportCodec
    }
}

impl Encoder for ExportCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the answer: {e}")))
    }
}

impl Decoder for ExportCodec {
    type Item = Converted;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Converted>, Status> {
        // One message's bytes, contiguous (a copy only when tonic holds them in pieces).
        let bytes = src.copy_to_bytes(src.remaining());
        trace_decode::traces(&bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("failed to decode Protobuf message: {e}")))
    }
}
