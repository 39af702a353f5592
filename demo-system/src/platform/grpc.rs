//! Unary gRPC between the demo's services, through the same discovery, retry, breaker,
//! bulkhead, timeout and chaos proxies as their HTTP calls: a gRPC call is a
//! [`Call`] with [`Wire::Grpc`], its request message already encoded, and the innermost
//! layer ([`send`]) carries it with tonic over a fresh HTTP/2 connection (one per call, as
//! the HTTP calls: a fault on a share of connections is a fault on that share of calls).
//!
//! Its outcome is told to the layers above in their terms: a gRPC status maps to the HTTP
//! status gRPC-gateway gives it (`NOT_FOUND` → 404, `UNAVAILABLE` → 503, ...), so a
//! server-side failure (≥ 500) counts against the breaker and is retried when the call is
//! safe to repeat, and a refusal (< 500) is passed to the caller as one. Spans follow
//! OpenTelemetry's RPC conventions (`rpc.system = grpc`, `rpc.service`, `rpc.method`,
//! `rpc.grpc.status_code`); trace context and baggage travel in the metadata.

use std::str::FromStr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::{Code, Status};

use super::client::{ClientError, HttpClient, error_message};
use super::resilience::{Call, CallError, Reply};

/// `rpc.system` of gRPC spans.
pub const RPC_SYSTEM: &str = "grpc";

/// Names the RPC on `span` (a CLIENT or SERVER span declaring the `rpc.*` fields) from its
/// path, `/package.Service/Method`.
pub fn describe(span: &tracing::Span, path: &str) {
    span.record("rpc.system", RPC_SYSTEM);
    if let Some((service, method)) = path.trim_start_matches('/').split_once('/') {
        span.record("rpc.service", service);
        span.record("rpc.method", method);
    }
}

/// Records a unary answer's gRPC status on its SERVER span: tonic sends a failure as
/// headers only (`grpc-status` among them), so a response without one in its headers is a
/// success, whose status travels in the trailers. The codes that are the server's failure
/// (RPC conventions: `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`,
/// `UNAVAILABLE`, `DATA_LOSS`) mark the span an error.
pub fn record_server_status(span: &tracing::Span, headers: &http::HeaderMap) {
    let code = headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32);
    span.record("rpc.grpc.status_code", code as i64);
    if matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    ) {
        span.record("otel.status_code", "ERROR");
    }
}

/// The HTTP status a gRPC code maps to (gRPC-gateway's table).
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
    }
}

/// Sends one unary gRPC call to the instance at `base`: the answer's message bytes as a
/// 200 [`Reply`], a refusal (< 500) as a reply with its message, a failure as the
/// [`CallError`] an HTTP call would have had.
pub async fn send(
    upstream: &str,
    base: &str,
    call: Call,
    timeout: Option<Duration>,
) -> Result<Reply, CallError> {
    let exchange = exchange(upstream, base, call);
    let result = match timeout {
        None => exchange.await?,
        Some(t) => tokio::time::timeout(t, exchange)
            .await
            .map_err(|_| CallError::Timeout {
                upstream: upstream.to_string(),
                timeout: t,
            })??,
    };
    let status = match result {
        Ok(body) => {
            tracing::Span::current().record("rpc.grpc.status_code", Code::Ok as i64);
            return Ok(Reply { status: 200, body });
        }
        Err(status) => status,
    };
    tracing::Span::current().record("rpc.grpc.status_code", status.code() as i64);
    let http = http_status(status.code());
    if http >= 500 {
        return Err(CallError::Status {
            upstream: upstream.to_string(),
            status: http,
            message: format!("{:?}: {}", status.code(), status.message()),
        });
    }
    Ok(Reply {
        status: http,
        body: Bytes::from(status.message().to_string()),
    })
}

/// Connects, then calls; a connection that cannot be made is a transport failure (so the
/// instance is ejected for a while), everything after it a gRPC status.
async fn exchange(
    upstream: &str,
    base: &str,
    call: Call,
) -> Result<Result<Bytes, Status>, CallError> {
    let transport = |reason: String| CallError::Transport {
        upstream: upstream.to_string(),
        reason,
    };
    let endpoint = tonic::transport::Endpoint::from_shared(base.to_string())
        .map_err(|e| transport(format!("{base} is not a gRPC address: {e}")))?;
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| transport(format!("cannot connect: {e}")))?;
    let path = http::uri::PathAndQuery::from_str(&call.path)
        .map_err(|e| transport(format!("{} is not a method path: {e}", call.path)))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Err(e) = grpc.ready().await {
        return Err(transport(format!("the connection is not ready: {e}")));
    }
    let mut request = tonic::Request::new(call.body.unwrap_or_default());
    let trace = super::telemetry::current_headers();
    let correlation = super::telemetry::current_correlation_id()
        .filter(|_| !call.headers.iter().any(|(k, _)| k == "x-correlation-id"))
        .map(|c| ("x-correlation-id".to_string(), c));
    let metadata = request.metadata_mut();
    for (k, v) in trace.into_iter().chain(call.headers).chain(correlation) {
        if let (Ok(k), Ok(v)) = (
            MetadataKey::from_bytes(k.as_bytes()),
            MetadataValue::try_from(v.as_str()),
        ) {
            metadata.insert(k, v);
        }
    }
    Ok(grpc
        .unary(request, path, RawCodec)
        .await
        .map(tonic::Response::into_inner))
}

/// Messages as the bytes they already are: the typed client encodes and decodes them.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A typed unary gRPC client over a resilient [`HttpClient`]'s upstream.
#[derive(Clone, Debug)]
pub struct GrpcClient {
    http: HttpClient,
}

impl GrpcClient {
    pub fn new(http: HttpClient) -> Self {
        Self { http }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Calls `method` (`/package.Service/Method`) with `request`; `idempotent` for a read
    /// (retried as a GET is). A refusal is [`ClientError::Refused`] with the status gRPC's
    /// code maps to.
    pub async fn unary<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        method: &str,
        request: &Req,
        idempotent: bool,
    ) -> Result<Resp, ClientError> {
        let call = Call::grpc(method, request.encode_to_vec(), idempotent);
        let reply = self.http.reply(call).await?;
        let upstream = self.http.upstream().name().to_string();
        if reply.status != 200 {
            return Err(ClientError::Refused {
                upstream,
                status: reply.status,
                message: error_message(&reply.body),
            });
        }
        Resp::decode(reply.body).map_err(|e| ClientError::Decode {
            upstream,
            status: reply.status,
            reason: format!("not a {}: {e}", std::any::type_name::<Resp>()),
        })
    }
}
