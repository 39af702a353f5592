//! The token OTLP and Zipkin intake may require (`--ingest-token`, `GAUNTLET_INGEST_TOKEN`):
//! every export then carries `Authorization: Bearer TOKEN`, as the OpenTelemetry SDKs send
//! it from `OTEL_EXPORTER_OTLP_HEADERS`. A missing or wrong one is refused before the body
//! is read, so nothing of it is stored: HTTP `401` with a google.rpc.Status body (encoded
//! like the request), gRPC `UNAUTHENTICATED`.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::otlp::status::{Format, RpcError};
use crate::query::access::AuthToken;

const REFUSED: &str = "this collector takes telemetry only with its ingest token: send the \
     header \"Authorization: Bearer <token>\" (OTEL_EXPORTER_OTLP_HEADERS=\"Authorization=Bearer \
     <token>\" for the OpenTelemetry SDKs)";

/// The HTTP middleware: OTLP/HTTP and Zipkin requests without the token get 401.
pub async fn require_http(State(token): State<AuthToken>, req: Request, next: Next) -> Response {
    if token.admits_header(req.headers().get(header::AUTHORIZATION)) {
        return next.run(req).await;
    }
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let format = if json { Format::Json } else { Format::Protobuf };
    let mut response = RpcError::new(
        StatusCode::UNAUTHORIZED,
        tonic::Code::Unauthenticated,
        REFUSED,
    )
    .into_response(format);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gauntlet-ingest\""),
    );
    response
}

/// The gRPC interceptor: calls without the token end `UNAUTHENTICATED`.
pub fn grpc(
    token: Option<AuthToken>,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |req: tonic::Request<()>| {
        let Some(token) = &token else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| HeaderValue::from_str(v).ok());
        if token.admits_header(given.as_ref()) {
            Ok(req)
        } else {
            Err(tonic::Status::unauthenticated(REFUSED))
        }
    }
}
