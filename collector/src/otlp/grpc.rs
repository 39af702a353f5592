//! OTLP/gRPC: TraceService/Export and LogsService/Export over tonic, gzip accepted.
//! Refusals are UNAVAILABLE with a google.rpc.RetryInfo; an oversized message is
//! RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE for it; [`ResourceExhaustedLayer`] fixes that).

use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::convert::{self, Converted};
use crate::ingest::{IngestError, Pipeline};
use crate::metrics::{Metrics, Outcome, Protocol, Signal};

#[derive(Clone)]
pub struct GrpcReceiver {
    pub pipeline: Pipeline,
    pub metrics: Arc<Metrics>,
}

impl GrpcReceiver {
    async fn commit(&self, signal: Signal, converted: Converted) -> Result<i64, Status> {
        let Converted { batch, rejected } = converted;
        let n = batch.rows() as u64;
        let p = Protocol::OtlpGrpc;
        self.metrics
            .count(signal, p, Outcome::Rejected, rejected.count as u64);
        match self.pipeline.submit(batch).await {
            Ok(()) => {
                self.metrics.count(signal, p, Outcome::Accepted, n);
                Ok(rejected.count)
            }
            Err(e) => {
                self.metrics.count(signal, p, Outcome::Refused, n);
                Err(refusal(&e))
            }
        }
    }
}

fn refusal(e: &IngestError) -> Status {
    Status::with_error_details(
        tonic::Code::Unavailable,
        e.to_string(),
        ErrorDetails::with_retry_info(Some(e.retry_after())),
    )
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let converted = convert::traces(request.into_inner());
        let message = converted.rejected.message("spans");
        let rejected = self.commit(Signal::Spans, converted).await?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let converted = convert::logs(request.into_inner());
        let message = converted.rejected.message("log records");
        let rejected = self.commit(Signal::Logs, converted).await?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message,
            }),
        }))
    }
}

/// Serves both services on `listener` until `shutdown` resolves.
pub async fn serve(
    receiver: GrpcReceiver,
    listener: tokio::net::TcpListener,
    max_body: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let traces = TraceServiceServer::new(receiver.clone())
        .max_decoding_message_size(max_body)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let logs = LogsServiceServer::new(receiver)
        .max_decoding_message_size(max_body)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    tonic::transport::Server::builder()
        .layer(ResourceExhaustedLayer)
        .add_service(traces)
        .add_service(logs)
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            shutdown,
        )
        .await
}

/// Rewrites tonic's OUT_OF_RANGE for an over-limit message into RESOURCE_EXHAUSTED, the
/// code OTLP and gRPC use for "message larger than the server accepts".
#[derive(Debug, Clone, Copy)]
pub struct ResourceExhaustedLayer;

impl<S> tower::Layer<S> for ResourceExhaustedLayer {
    type Service = ResourceExhausted<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ResourceExhausted(inner)
    }
}

#[derive(Debug, Clone)]
pub struct ResourceExhausted<S>(S);

impl<S, B, Req> tower::Service<Req> for ResourceExhausted<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut resp = fut.await?;
            let out_of_range = resp
                .headers()
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() == b"11");
            let too_large = resp
                .headers()
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|m| m.contains("too%20large") || m.contains("too large"));
            if out_of_range && too_large {
                resp.headers_mut()
                    .insert("grpc-status", http::HeaderValue::from_static("8"));
            }
            Ok(resp)
        })
    }
}
