//! JSON-RPC 2.0 over HTTP: one `POST /rpc` per service that speaks it, single calls,
//! notifications and batches, with the specification's error codes.
//!
//! The envelopes (request, notification, response, error object, ID) are `jsonrpsee-types`',
//! Parity's, which its servers and clients use. The server and client around them are ours:
//! jsonrpsee's bring their own HTTP stack, which would bypass the demo's discovery,
//! resilience layers (retry, breaker, bulkhead, timeout), chaos proxies and trace
//! propagation, all of which a JSON-RPC call goes through as an HTTP call does.
//!
//! HTTP status of an answer (JSON-RPC leaves it to the transport): 400 when the body is not
//! JSON-RPC at all (not JSON, not a request object, an empty or oversized batch), 500 when
//! every call in it failed inside the server (internal error: callers' breakers count it,
//! as any 5xx), 204 when it held only notifications, 200 otherwise, application errors
//! (unknown method, bad params) included.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::post;
use axum::{Json, Router};
use jsonrpsee_types::{
    ErrorCode, ErrorObjectOwned, Id, InvalidRequest, Notification, Request, Response,
    ResponsePayload,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::client::{ClientError, HttpClient};
use super::resilience::Call;

/// Where a service takes JSON-RPC calls.
pub const PATH: &str = "/rpc";
/// The most calls one batch may hold; a larger one is refused whole (`-32600`).
pub const MAX_BATCH: usize = 50;
/// `rpc.system` of JSON-RPC spans (OpenTelemetry's RPC semantic conventions).
pub const RPC_SYSTEM: &str = "jsonrpc";

/// The error of one call, as it travels.
pub type RpcError = ErrorObjectOwned;

/// A service's JSON-RPC methods.
pub trait Methods: Clone + Send + Sync + 'static {
    /// Runs `method` with `params` as sent (`None` when absent): its result, or an error
    /// object ([`method_not_found`] for a name it does not know, [`invalid_params`], ...).
    fn call(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> impl Future<Output = Result<Box<RawValue>, RpcError>> + Send;
}

/// `POST /rpc`, answered by `methods`.
pub fn routes<M: Methods>(methods: M) -> Router {
    Router::new()
        .route(PATH, post(serve::<M>))
        .with_state(methods)
}

/// Decodes `params` into `T`: by name, or by position in `T`'s field order (as serde reads
/// a struct from an array); absent params are `T::default()`.
pub fn params<T: DeserializeOwned + Default>(params: Option<&RawValue>) -> Result<T, RpcError> {
    match params {
        None => Ok(T::default()),
        Some(raw) => serde_json::from_str(raw.get()).map_err(|e| invalid_params(e.to_string())),
    }
}

/// Refuses params for a method that takes none.
pub fn no_params(params: Option<&RawValue>) -> Result<(), RpcError> {
    match params.map(|p| p.get().trim()) {
        None | Some("[]" | "{}") => Ok(()),
        Some(_) => Err(invalid_params("this method takes no params")),
    }
}

/// `value` as a call's result.
pub fn result<T: Serialize>(value: &T) -> Result<Box<RawValue>, RpcError> {
    serde_json::value::to_raw_value(value).map_err(internal)
}

pub fn method_not_found(method: &str) -> RpcError {
    RpcError::owned(
        ErrorCode::MethodNotFound.code(),
        format!("no method {method:?} here"),
        None::<()>,
    )
}

pub fn invalid_params(reason: impl Into<String>) -> RpcError {
    RpcError::owned(
        ErrorCode::InvalidParams.code(),
        format!("invalid params: {}", reason.into()),
        None::<()>,
    )
}

/// An internal error: its detail is logged, the caller is told only that it happened.
pub fn internal(detail: impl std::fmt::Display) -> RpcError {
    tracing::error!(error = %detail, "a JSON-RPC call failed inside the service");
    RpcError::from(ErrorCode::InternalError)
}

fn invalid_request(reason: impl Into<String>) -> RpcError {
    RpcError::owned(
        ErrorCode::InvalidRequest.code(),
        format!("invalid request: {}", reason.into()),
        None::<()>,
    )
}

type Answer = Response<'static, Box<RawValue>>;

fn answer(id: Id<'static>, r: Result<Box<RawValue>, RpcError>) -> Answer {
    let payload = match r {
        Ok(v) => ResponsePayload::success(v),
        Err(e) => ResponsePayload::error(e),
    };
    Response::new(payload, id)
}

fn is_internal(a: &Answer) -> bool {
    matches!(&a.payload, ResponsePayload::Error(e) if e.code() == ErrorCode::InternalError.code())
}

async fn serve<M: Methods>(State(methods): State<M>, body: Bytes) -> HttpResponse {
    // The HTTP server span says what it carried (the collector's map labels the edge).
    tracing::Span::current().record("rpc.system", RPC_SYSTEM);
    let raw: &RawValue = match serde_json::from_slice(&body) {
        Ok(raw) => raw,
        Err(e) => {
            let e = RpcError::owned(
                ErrorCode::ParseError.code(),
                format!("the body is not JSON: {e}"),
                None::<()>,
            );
            return refused(answer(Id::Null, Err(e)));
        }
    };
    if !raw.get().starts_with('[') {
        return match one(&methods, raw).await {
            None => StatusCode::NO_CONTENT.into_response(),
            Some(a) if is_internal(&a) => {
                (StatusCode::INTERNAL_SERVER_ERROR, Json(a)).into_response()
            }
            Some(a) if is_malformed(&a) => refused(a),
            Some(a) => Json(a).into_response(),
        };
    }
    let calls: Vec<&RawValue> = match serde_json::from_str(raw.get()) {
        Ok(calls) => calls,
        Err(e) => return refused(answer(Id::Null, Err(invalid_request(e.to_string())))),
    };
    if calls.is_empty() || calls.len() > MAX_BATCH {
        let e = invalid_request(format!(
            "a batch of {} calls: send 1 to {MAX_BATCH}",
            calls.len()
        ));
        return refused(answer(Id::Null, Err(e)));
    }
    let mut answers = Vec::with_capacity(calls.len());
    for call in calls {
        answers.extend(one(&methods, call).await);
    }
    if answers.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else if answers.iter().all(is_internal) {
        (StatusCode::INTERNAL_SERVER_ERROR, Json(answers)).into_response()
    } else {
        Json(answers).into_response()
    }
}

fn is_malformed(a: &Answer) -> bool {
    matches!(&a.payload, ResponsePayload::Error(e)
        if e.code() == ErrorCode::InvalidRequest.code() || e.code() == ErrorCode::ParseError.code())
}

fn refused(a: Answer) -> HttpResponse {
    (StatusCode::BAD_REQUEST, Json(a)).into_response()
}

/// Which request object a call is, told apart as the specification says: with an `id` it
/// is a request (answered), without one a notification (run, never answered).
#[derive(serde::Deserialize)]
struct HasId<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
}

/// Runs one request object; its answer, or `None` for a notification.
async fn one<M: Methods>(methods: &M, raw: &RawValue) -> Option<Answer> {
    if let Ok(req) = serde_json::from_str::<Request<'_>>(raw.get()) {
        let id = req.id.clone().into_owned();
        let result = invoke(methods, &req.method, req.params.as_deref(), Some(&id)).await;
        return Some(answer(id, result));
    }
    let has_id = serde_json::from_str::<HasId<'_>>(raw.get()).is_ok_and(|h| h.id.is_some());
    if !has_id && let Ok(n) = serde_json::from_str::<Notification<'_, Option<&RawValue>>>(raw.get())
    {
        let _ = invoke(methods, &n.method, n.params, None).await;
        return None;
    }
    let id = serde_json::from_str::<InvalidRequest<'_>>(raw.get())
        .map(|r| r.id.into_owned())
        .unwrap_or(Id::Null);
    Some(answer(
        id,
        Err(invalid_request(
            "a request object has \"jsonrpc\": \"2.0\", a \"method\" string, \
             optional \"params\" and an \"id\" (a number, a string or null)",
        )),
    ))
}

/// Runs one call in an RPC span (RPC semantic conventions; INTERNAL, inside the HTTP
/// server span, so the service's request counts stay one per HTTP request).
async fn invoke<M: Methods>(
    methods: &M,
    method: &str,
    params: Option<&RawValue>,
    id: Option<&Id<'_>>,
) -> Result<Box<RawValue>, RpcError> {
    use tracing::Instrument;
    let span = rpc_span("internal", method);
    if let Some(id) = id {
        span.record("rpc.jsonrpc.request_id", id.to_string());
    }
    let result = methods.call(method, params).instrument(span.clone()).await;
    if let Err(e) = &result {
        span.record("rpc.jsonrpc.error_code", i64::from(e.code()));
        span.record("otel.status_code", "ERROR");
    }
    result
}

/// The span of one call, on either side (OpenTelemetry's RPC conventions for JSON-RPC).
fn rpc_span(kind: &'static str, method: &str) -> tracing::Span {
    tracing::info_span!(
        "rpc",
        otel.name = %method,
        otel.kind = kind,
        otel.status_code = tracing::field::Empty,
        rpc.system = RPC_SYSTEM,
        rpc.method = %method,
        rpc.jsonrpc.version = "2.0",
        rpc.jsonrpc.request_id = tracing::field::Empty,
        rpc.jsonrpc.error_code = tracing::field::Empty,
        peer.service = tracing::field::Empty,
    )
}

/// A JSON-RPC client over a resilient [`HttpClient`]: each call is an HTTP call to
/// [`PATH`] through the upstream's discovery, retry, breaker, bulkhead and timeout.
#[derive(Clone, Debug)]
pub struct RpcClient {
    http: HttpClient,
    next_id: Arc<AtomicU64>,
}

impl RpcClient {
    pub fn new(http: HttpClient) -> Self {
        Self {
            http,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// Calls `method`, which changes nothing (so it is retried as a GET would be), with
    /// `params` by name.
    pub async fn read<P: Serialize, R: DeserializeOwned + Clone>(
        &self,
        method: &str,
        params: Option<&P>,
    ) -> Result<R, ClientError> {
        use tracing::Instrument;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let encode = |e: serde_json::Error| ClientError::Encode(e.to_string());
        let params = params
            .map(serde_json::value::to_raw_value)
            .transpose()
            .map_err(encode)?;
        let request = Request::borrowed(method, params.as_deref(), Id::Number(id));
        let mut call = Call::post(PATH, &request, None).map_err(encode)?;
        call.idempotent = true;
        let span = rpc_span("client", method);
        span.record("rpc.jsonrpc.request_id", id.to_string());
        span.record("peer.service", self.http.upstream().name());
        let result = self.exchange(call).instrument(span.clone()).await;
        if let Err(e) = &result {
            span.record("otel.status_code", "ERROR");
            if let ClientError::Rpc { code, .. } = e {
                span.record("rpc.jsonrpc.error_code", i64::from(*code));
            }
        }
        result
    }

    async fn exchange<R: DeserializeOwned + Clone>(&self, call: Call) -> Result<R, ClientError> {
        let reply = self.http.reply(call).await?;
        let upstream = self.http.upstream().name().to_string();
        let decoded: Response<'_, R> =
            serde_json::from_slice(&reply.body).map_err(|e| ClientError::Decode {
                upstream: upstream.clone(),
                status: reply.status,
                reason: format!("not a JSON-RPC response: {e}"),
            })?;
        match decoded.payload {
            ResponsePayload::Success(r) => Ok(r.into_owned()),
            ResponsePayload::Error(e) => Err(ClientError::Rpc {
                upstream,
                code: e.code(),
                message: e.message().to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tower::ServiceExt;

    /// `sum` of by-name numbers, `fail` (an internal error with a secret in it), and a
    /// count of every call run, notifications included.
    #[derive(Clone, Default)]
    struct Calc {
        runs: Arc<AtomicUsize>,
    }

    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Terms {
        a: i64,
        b: i64,
    }

    impl Methods for Calc {
        async fn call(
            &self,
            method: &str,
            raw: Option<&RawValue>,
        ) -> Result<Box<RawValue>, RpcError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            match method {
                "sum" => {
                    let t: Terms = params(raw)?;
                    result(&(t.a + t.b))
                }
                "zero" => {
                    no_params(raw)?;
                    result(&0)
                }
                "fail" => Err(internal("disk I/O error at /var/secret")),
                other => Err(method_not_found(other)),
            }
        }
    }

    async fn post_rpc(calc: &Calc, body: &str) -> (StatusCode, String) {
        let req = axum::http::Request::post(PATH)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .expect("request");
        let resp = routes(calc.clone()).oneshot(req).await.expect("answer");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The answer's `(id, result or error code)` pairs, in order.
    fn outcomes(body: &str) -> Vec<(Id<'static>, Result<i64, i32>)> {
        let one = |a: Response<'_, i64>| {
            let r = match a.payload {
                ResponsePayload::Success(v) => Ok(*v),
                ResponsePayload::Error(e) => Err(e.code()),
            };
            (a.id.into_owned(), r)
        };
        if body.starts_with('[') {
            let all: Vec<Response<'_, i64>> = serde_json::from_str(body).expect("a batch");
            all.into_iter().map(one).collect()
        } else {
            vec![one(serde_json::from_str(body).expect("a response"))]
        }
    }

    #[tokio::test]
    async fn a_call_is_answered_with_its_id() {
        let calc = Calc::default();
        let (status, body) = post_rpc(
            &calc,
            r#"{"jsonrpc":"2.0","id":"q-7","method":"sum","params":{"a":2,"b":3}}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(outcomes(&body), vec![(Id::Str("q-7".into()), Ok(5))]);
    }

    #[tokio::test]
    async fn a_notification_runs_and_gets_no_answer() {
        let calc = Calc::default();
        let (status, body) = post_rpc(
            &calc,
            r#"{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":1}}"#,
        )
        .await;
        assert_eq!((status, body.as_str()), (StatusCode::NO_CONTENT, ""));
        assert_eq!(calc.runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_batch_answers_each_request_in_order_and_no_notification() {
        let calc = Calc::default();
        let (status, body) = post_rpc(
            &calc,
            r#"[{"jsonrpc":"2.0","id":1,"method":"sum","params":{"a":1,"b":2}},
                {"jsonrpc":"2.0","method":"sum","params":{"a":0,"b":0}},
                {"jsonrpc":"2.0","id":2,"method":"divide"},
                {"jsonrpc":"2.0","id":3,"method":"sum","params":[1,"2"]},
                {"jsonrpc":"2.0","id":4,"method":"zero","params":{"x":1}},
                {"jsonrpc":"1.0","id":5,"method":"sum"},
                {"foo":"boo"},
                7]"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            outcomes(&body),
            vec![
                (Id::Number(1), Ok(3)),
                (Id::Number(2), Err(-32601)),
                (Id::Number(3), Err(-32602)),
                (Id::Number(4), Err(-32602)),
                (Id::Number(5), Err(-32600)),
                (Id::Null, Err(-32600)),
                (Id::Null, Err(-32600)),
            ]
        );
        // Five calls ran: the sum, the notification, the unknown method and the two with
        // bad params.
        assert_eq!(calc.runs.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn what_is_not_json_rpc_is_refused_with_400() {
        let calc = Calc::default();
        for (body, code) in [
            ("{not json", -32700),
            ("[]", -32600),
            (r#"{"jsonrpc":"2.0","id":1}"#, -32600),
            ("[1,", -32700),
        ] {
            let (status, answer) = post_rpc(&calc, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
            let got = outcomes(&answer);
            assert_eq!(got.len(), 1, "{body}: {answer}");
            assert_eq!(got[0].1, Err(code), "{body}: {answer}");
        }
        let big = format!(
            "[{}]",
            vec![r#"{"jsonrpc":"2.0","id":1,"method":"zero"}"#; MAX_BATCH + 1].join(",")
        );
        let (status, answer) = post_rpc(&calc, &big).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(answer.contains("a batch of 51 calls"), "{answer}");
        assert_eq!(calc.runs.load(Ordering::SeqCst), 0, "nothing refused ran");
    }

    #[tokio::test]
    async fn an_internal_error_is_a_500_that_keeps_its_detail_to_itself() {
        let calc = Calc::default();
        let (status, body) = post_rpc(&calc, r#"{"jsonrpc":"2.0","id":9,"method":"fail"}"#).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(outcomes(&body), vec![(Id::Number(9), Err(-32603))]);
        assert!(!body.contains("secret"), "{body}");
    }

    /// The client over a real socket: results decoded, an error object as
    /// [`ClientError::Rpc`], an internal error as the upstream's failure.
    #[tokio::test]
    async fn the_client_calls_over_http() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, routes(Calc::default())).await.ok();
        });
        let http = HttpClient::at(
            "calc",
            &format!("http://{addr}"),
            &crate::platform::resilience::ResilienceConfig::default(),
        )
        .expect("client");
        let rpc = RpcClient::new(http);
        let sum: i64 = rpc
            .read("sum", Some(&serde_json::json!({"a": 40, "b": 2})))
            .await
            .expect("a sum");
        assert_eq!(sum, 42);
        let unknown = rpc.read::<(), i64>("divide", None).await;
        assert!(
            matches!(&unknown, Err(ClientError::Rpc { code: -32601, message, .. })
                if message.contains("divide")),
            "{unknown:?}"
        );
        let failed = rpc.read::<(), i64>("fail", None).await;
        assert!(matches!(&failed, Err(ClientError::Call(_))), "{failed:?}");
        server.abort();
    }
}
