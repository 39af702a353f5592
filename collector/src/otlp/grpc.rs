//! OTLP/gRPC: TraceService/Export, LogsService/Export and MetricsService/Export over tonic,
//! gzip accepted (metrics answer UNIMPLEMENTED when the store keeps none). Traces are served
//! by [`super::grpc_traces`], which decodes them from the message's bytes.
//! Refusals are UNAVAILABLE with a google.rpc.RetryInfo; an oversized message is
//! RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE for it; [`ResourceExhaustedLayer`] fixes that).
//! [`BudgetLayer`] reserves each message from the body budget before tonic reads it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::convert::{self, Converted};
use super::grpc_traces::{ExportTraces, TraceServer};
use crate::ingest::{IngestError, Pipeline};
use crate::metrics::{Metrics, Outcome, Protocol, Signal};
use crate::payload::{BUDGET_RETRY_AFTER, BodyBudget};

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

impl ExportTraces for GrpcReceiver {
    async fn export(&self, converted: Converted) -> Result<ExportTraceServiceResponse, Status> {
        let message = converted.rejected.message("spans");
        let rejected = self.commit(Signal::Spans, converted).await?;
        Ok(ExportTraceServiceResponse {
            partial_success: (rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message,
            }),
        })
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

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        if !self.pipeline.keeps_metrics() {
            return Err(Status::unimplemented(super::http::METRICS_NOT_KEPT));
        }
        let converted = super::metrics::metrics(request.into_inner());
        let message = converted.rejected.message("data points");
        let rejected = self.commit(Signal::MetricPoints, converted).await?;
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: message,
            }),
        }))
    }
}

/// Serves the three services on `listener` until `shutdown` resolves.
pub async fn serve(
    receiver: GrpcReceiver,
    listener: tokio::net::TcpListener,
    max_body: usize,
    budget: BodyBudget,
    token: Option<crate::query::access::AuthToken>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let check = crate::intake_token::grpc(token);
    let traces = TraceServer::new(receiver.clone(), max_body);
    let logs = LogsServiceServer::new(receiver.clone())
        .max_decoding_message_size(max_body)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let metrics = MetricsServiceServer::new(receiver)
        .max_decoding_message_size(max_body)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    tonic::transport::Server::builder()
        .layer(ResourceExhaustedLayer)
        .layer(BudgetLayer { budget, max_body })
        .add_service(tonic::service::interceptor::InterceptedService::new(
            traces,
            check.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            logs,
            check.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            metrics, check,
        ))
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

/// Reserves each request's message from the body budget, by the size its gRPC length
/// prefix announces (compressed, for a gzip message), before tonic reads the rest; with no
/// room, answers UNAVAILABLE with a RetryInfo at once, as for a full queue. The reservation
/// is held until the export was answered (decoded and committed).
#[derive(Debug, Clone)]
pub struct BudgetLayer {
    pub budget: BodyBudget,
    pub max_body: usize,
}

impl<S> tower::Layer<S> for BudgetLayer {
    type Service = Budgeted<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Budgeted {
            inner,
            budget: self.budget.clone(),
            max_body: self.max_body,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Budgeted<S> {
    inner: S,
    budget: BodyBudget,
    max_body: usize,
}

impl<S, ResBody> tower::Service<http::Request<tonic::body::Body>> for Budgeted<S>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        // The clone that was polled ready is the one that is called.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let (budget, max_body) = (self.budget.clone(), self.max_body);
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            let mut peeked = VecDeque::new();
            let mut prefix = Vec::with_capacity(5);
            let mut error = None;
            while prefix.len() < 5 {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(d) = frame.data_ref() {
                            let take = d.len().min(5 - prefix.len());
                            prefix.extend_from_slice(&d[..take]);
                        }
                        peeked.push_back(frame);
                    }
                    Some(Err(e)) => {
                        error = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            let announced = match prefix[..] {
                [_, a, b, c, d] => u32::from_be_bytes([a, b, c, d]) as usize,
                _ => 0,
            };
            // Past max_body tonic refuses the message itself (RESOURCE_EXHAUSTED).
            let held = match budget.take(announced.min(max_body)) {
                Ok(held) => held,
                Err(e) => {
                    let status = Status::with_error_details(
                        tonic::Code::Unavailable,
                        e.to_string(),
                        ErrorDetails::with_retry_info(Some(BUDGET_RETRY_AFTER)),
                    );
                    return Ok(status.into_http());
                }
            };
            let body = tonic::body::Body::new(Prefixed {
                peeked,
                error,
                rest: body,
            });
            let answer = inner.call(http::Request::from_parts(parts, body)).await;
            drop(held);
            answer
        })
    }
}

/// A body whose first frames were already read: those, then the rest.
struct Prefixed {
    peeked: VecDeque<Frame<Bytes>>,
    error: Option<Status>,
    rest: tonic::body::Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if let Some(f) = this.peeked.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }
}
