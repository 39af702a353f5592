//! The bad-input table: each malformed, oversized or invalid request gets its documented
//! answer (status, google.rpc.Status body in the request's encoding), and the collector
//! keeps serving and keeps what it had already accepted.

mod common;

use std::io::Write;

use common::{TestCollector, json_span, json_traces};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::{Value, json};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const NOW: u64 = 1_700_000_000_000_000_000;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).expect("gzip in memory");
    e.finish().expect("gzip finish")
}

fn proto_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(opentelemetry_proto::tonic::resource::v1::Resource {
                attributes: vec![kv("service.name", "bad-input")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn span(trace: [u8; 16], id: u8, start: u64, end: u64) -> Span {
    Span {
        trace_id: trace.to_vec(),
        span_id: vec![id; 8],
        name: format!("op-{id}"),
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    }
}

struct Reply {
    status: u16,
    content_type: String,
    retry_after: Option<String>,
    body: Vec<u8>,
}

async fn post(c: &TestCollector, ct: &str, encoding: Option<&str>, body: Vec<u8>) -> Reply {
    let mut req = c
        .client
        .post(c.otlp_http("/v1/traces"))
        .header("content-type", ct)
        .body(body);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await.expect("collector answers");
    Reply {
        status: resp.status().as_u16(),
        content_type: resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        retry_after: resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: resp.bytes().await.expect("body").to_vec(),
    }
}

/// The google.rpc.Status of a JSON error reply: (code, message).
fn json_status(r: &Reply) -> (i64, String) {
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    let v: Value = serde_json::from_slice(&r.body).expect("JSON Status body");
    (
        v["code"].as_i64().expect("code"),
        v["message"].as_str().expect("message").to_string(),
    )
}

/// The google.rpc.Status of a protobuf error reply.
fn proto_status(r: &Reply) -> tonic_types::pb::Status {
    assert_eq!(r.content_type, "application/x-protobuf");
    tonic_types::pb::Status::decode(r.body.as_slice()).expect("protobuf Status body")
}

/// A valid export still works and the data of `trace` is still readable.
async fn still_serving(c: &TestCollector, spans_before: usize) {
    let (status, _) = c
        .post_json(
            "/v1/traces",
            &json_traces(
                "canary",
                vec![json_span(
                    TRACE,
                    "00f067aa0ba902b7",
                    "",
                    "canary",
                    NOW,
                    NOW + 1,
                )],
            ),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = c.get(&format!("/api/traces/{TRACE}")).await;
    assert_eq!(status, 200);
    assert!(
        body["data"][0]["spans"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
            >= spans_before.max(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unsupported_requests_get_their_documented_answers() {
    let c = TestCollector::start().await;
    still_serving(&c, 1).await;

    // Truncated protobuf → 400, protobuf Status.
    let full = proto_request(vec![span([7; 16], 1, NOW, NOW + 10)]).encode_to_vec();
    let r = post(
        &c,
        "application/x-protobuf",
        None,
        full[..full.len() - 7].to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    let s = proto_status(&r);
    assert_eq!(s.code, tonic::Code::InvalidArgument as i32);
    assert!(s.message.contains("invalid OTLP protobuf"), "{}", s.message);
    still_serving(&c, 1).await;

    // Wrong content type → 415.
    let r = post(&c, "text/plain", None, b"hello".to_vec()).await;
    assert_eq!(r.status, 415);
    let (_, msg) = json_status(&r);
    assert!(
        msg.contains("application/x-protobuf or application/json"),
        "{msg}"
    );

    // Unknown Content-Encoding → 415.
    let r = post(&c, "application/json", Some("br"), b"{}".to_vec()).await;
    assert_eq!(r.status, 415);

    // Broken gzip → 400.
    let mut broken = gzip(br#"{"resourceSpans":[]}"#);
    broken.truncate(broken.len() / 2);
    let r = post(&c, "application/json", Some("gzip"), broken).await;
    assert_eq!(r.status, 400);
    assert!(json_status(&r).1.contains("gzip"));

    // Invalid JSON → 400 with where it broke.
    let r = post(
        &c,
        "application/json",
        None,
        br#"{"resourceSpans": [{"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(json_status(&r).1.contains("invalid JSON"));
    still_serving(&c, 2).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_and_gzip_bombs_are_refused_without_exhausting_memory() {
    let c = TestCollector::start().await;
    still_serving(&c, 1).await;

    // A 70 MiB body (the default limit is 64 MiB) → 413.
    let big = vec![b' '; 70 << 20];
    let r = post(&c, "application/json", None, big).await;
    assert_eq!(r.status, 413);
    let (code, msg) = json_status(&r);
    assert_eq!(code, tonic::Code::ResourceExhausted as i64);
    assert!(msg.contains("--max-body"), "{msg}");

    // A gzip bomb: 100 KiB that inflates to 100 MiB → 413, in protobuf for a protobuf request.
    let bomb = gzip(&vec![0u8; 100 << 20]);
    assert!(bomb.len() < 200 << 10);
    let r = post(&c, "application/x-protobuf", Some("gzip"), bomb.clone()).await;
    assert_eq!(r.status, 413);
    assert_eq!(proto_status(&r).code, tonic::Code::ResourceExhausted as i32);
    still_serving(&c, 1).await;

    // The same over gRPC: an oversized message and a bomb are RESOURCE_EXHAUSTED.
    let mut client = TraceServiceClient::connect(c.otlp_grpc())
        .await
        .expect("gRPC connects")
        .max_encoding_message_size(usize::MAX);
    let mut huge = span([9; 16], 1, NOW, NOW + 1);
    huge.attributes = vec![kv("blob", &"x".repeat(70 << 20))];
    let err = client
        .export(proto_request(vec![huge.clone()]))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    let mut gz_client = TraceServiceClient::connect(c.otlp_grpc())
        .await
        .expect("gRPC connects")
        .send_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_encoding_message_size(usize::MAX);
    let err = gz_client
        .export(proto_request(vec![huge]))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    let ok: tonic::Response<ExportTraceServiceResponse> = gz_client
        .export(proto_request(vec![span([9; 16], 2, NOW, NOW + 1)]))
        .await
        .expect("a normal gRPC export still works");
    assert!(ok.get_ref().partial_success.is_none());
    still_serving(&c, 1).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_items_are_counted_and_the_valid_rest_stored() {
    let c = TestCollector::start().await;
    let valid = "1111111111111111";
    let spans = vec![
        json_span(TRACE, valid, "", "kept", NOW, NOW + 5),
        json_span(
            "00000000000000000000000000000000",
            "2222222222222222",
            "",
            "zero trace",
            NOW,
            NOW + 5,
        ),
        json_span(TRACE, "0000000000000000", "", "zero span", NOW, NOW + 5),
        json_span(TRACE, "3333333333333333", "", "backwards", NOW + 5, NOW),
        json_span("abcd", "4444444444444444", "", "short trace", NOW, NOW + 5),
    ];
    let (status, body) = c
        .post_json("/v1/traces", &json_traces("partial", spans))
        .await;
    assert_eq!(status, 200, "{body}");
    let partial = &body["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], json!(4), "{body}");
    let msg = partial["errorMessage"].as_str().expect("message");
    for part in [
        "all-zero trace_id",
        "all-zero span_id",
        "ending before they start",
        "not 16 bytes",
    ] {
        assert!(msg.contains(part), "{msg}");
    }
    let (_, trace) = c.get(&format!("/api/traces/{TRACE}")).await;
    let names: Vec<&str> = trace["data"][0]["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter_map(|s| s["operationName"].as_str())
        .collect();
    assert_eq!(names, ["kept"]);

    // Protobuf: the partial success comes back as protobuf.
    let req = proto_request(vec![
        span([5; 16], 1, NOW, NOW + 1),
        span([0; 16], 2, NOW, NOW + 1),
    ]);
    let r = post(&c, "application/x-protobuf", None, req.encode_to_vec()).await;
    assert_eq!(r.status, 200);
    let resp = ExportTraceServiceResponse::decode(r.body.as_slice()).expect("protobuf response");
    assert_eq!(resp.partial_success.map(|p| p.rejected_spans), Some(1));

    // gRPC: the same partial success, and a message that does not decode is INTERNAL with
    // the reason; the spans before it are kept and the receiver goes on serving.
    let mut client = TraceServiceClient::connect(c.otlp_grpc())
        .await
        .expect("gRPC connects");
    let resp = client
        .export(proto_request(vec![
            span([6; 16], 1, NOW, NOW + 1),
            span([0; 16], 2, NOW, NOW + 1),
        ]))
        .await
        .expect("a partial success")
        .into_inner()
        .partial_success
        .expect("the rejected span is said");
    assert_eq!(resp.rejected_spans, 1);
    assert!(
        resp.error_message.contains("all-zero trace_id"),
        "{}",
        resp.error_message
    );
    let err = grpc_raw_export(&c, vec![0x0a, 0xff]).await;
    assert_eq!(err.code(), tonic::Code::Internal, "{err}");
    assert!(err.message().contains("failed to decode"), "{err}");
    let (status, _) = c.get(&format!("/api/traces/{}", "06".repeat(16))).await;
    assert_eq!(status, 200, "the partial success's valid span is kept");
    still_serving(&c, 1).await;

    // Unknown JSON fields are ignored; a 1 MiB attribute value is kept whole.
    let big = "v".repeat(1 << 20);
    let mut s = json_span(
        "22222222222222222222222222222222",
        "5555555555555555",
        "",
        "big",
        NOW,
        NOW + 1,
    );
    s["attributes"] = json!([{"key": "big", "value": {"stringValue": big}}]);
    s["aFieldFromTheFuture"] = json!({"x": [1, 2, 3]});
    let mut req = json_traces("big-attrs", vec![s]);
    req["unknownTopLevel"] = json!(true);
    let (status, body) = c.post_json("/v1/traces", &req).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["partialSuccess"].is_null(), "{body}");
    let (_, trace) = c.get("/api/traces/22222222222222222222222222222222").await;
    let value = common::tag(&trace["data"][0]["spans"][0], "big")
        .and_then(|v| v.as_str())
        .map(str::len);
    assert_eq!(value, Some(1 << 20));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_api_rejects_bad_parameters_clearly() {
    let c = TestCollector::start().await;
    for (path, status, needle) in [
        ("/api/traces/not-hex", 400, "not a trace ID"),
        (
            "/api/traces/00000000000000000000000000000000",
            400,
            "not a trace ID",
        ),
        (
            "/api/traces/0af7651916cd43dd8448eb211c80319d",
            404,
            "not found",
        ),
        ("/api/traces", 400, "'service' is required"),
        (
            "/api/traces?service=x&minDuration=fast",
            400,
            "not a duration",
        ),
        ("/api/traces?service=x&tags=notjson", 400, "JSON object"),
        ("/api/traces?service=x&start=yesterday", 400, "not a time"),
        ("/api/traces?service=x&limit=-1", 400, "whole number"),
        (
            "/api/operations?service=x&spanKind=sideways",
            400,
            "spanKind",
        ),
        ("/api/v1/logs?trace_id=xyz", 400, "32 hex digits"),
        ("/api/v1/logs?severity_min=loud", 400, "severity_min"),
        ("/api/v1/logs?cursor=abc", 400, "cursor"),
        ("/api/nothing-here", 404, "unknown path"),
    ] {
        let (got, body) = c.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        let msg = body["errors"][0]["msg"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    c.shutdown().await;
}

/// Reads the collector's queue depth from `/metrics`.
async fn queued_rows(c: &TestCollector) -> i64 {
    let text = c.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("gauntlet_collector_queue_rows "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_means_backpressure_with_retry_after_and_no_loss() {
    let c = TestCollector::start_with(|cfg| {
        cfg.pipeline.queue_rows = 4;
        cfg.pipeline.admission_wait = std::time::Duration::from_millis(100);
    })
    .await;
    // Another process holding the write lock of the segment that takes rows, as a backup or
    // a stuck disk would.
    let mut segments: Vec<_> = std::fs::read_dir(c.dir.path().join("data").join("segments"))
        .expect("segments")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sqlite"))
        .collect();
    segments.sort();
    let db = segments.pop().expect("an open segment");
    let locker = rusqlite::Connection::open(&db).expect("open the store file");
    locker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");

    let trace = "33333333333333333333333333333333";
    let spans: Vec<Value> = (1..=4)
        .map(|i| {
            json_span(
                trace,
                &format!("{i:016x}"),
                "",
                &format!("held-{i}"),
                NOW,
                NOW + 1,
            )
        })
        .collect();
    let first_body = json_traces("held", spans);
    let client = c.client.clone();
    let url = c.otlp_http("/v1/traces");
    let first = tokio::spawn(async move {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(first_body.to_string())
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while queued_rows(&c).await < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the first export never queued"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // The queue is full: refused at once with a retry hint, as OTLP asks.
    let second = json_traces(
        "refused",
        vec![json_span(
            trace,
            "00000000000000aa",
            "",
            "later",
            NOW,
            NOW + 1,
        )],
    );
    let r = post(
        &c,
        "application/json",
        None,
        second.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    let (code, msg) = json_status(&r);
    assert_eq!(code, tonic::Code::ResourceExhausted as i64);
    assert!(msg.contains("busy"), "{msg}");

    // Over gRPC the same refusal is UNAVAILABLE with a google.rpc.RetryInfo.
    let mut grpc = TraceServiceClient::connect(c.otlp_grpc())
        .await
        .expect("gRPC connects");
    let err = grpc
        .export(proto_request(vec![span([4; 16], 1, NOW, NOW + 1)]))
        .await
        .expect_err("refused while the queue is full");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    let retry = tonic_types::StatusExt::get_details_retry_info(&err).expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(std::time::Duration::from_secs(1)));

    // The store frees up: the first export is committed and answered, nothing lost.
    locker.execute_batch("COMMIT").expect("release the lock");
    let status = first.await.expect("task").expect("first export answered");
    assert_eq!(status, 200);
    let (_, body) = c.get(&format!("/api/traces/{trace}")).await;
    assert_eq!(
        body["data"][0]["spans"].as_array().map(Vec::len),
        Some(4),
        "{body}"
    );
    let r = post(
        &c,
        "application/json",
        None,
        second.to_string().into_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "the retry is accepted");
    c.shutdown().await;
}

/// `n` spans of one new trace, each with a 1 KiB attribute.
fn big_spans(trace: [u8; 16], n: u8) -> Vec<Span> {
    let filler = "x".repeat(1024);
    (1..=n)
        .map(|i| {
            let mut s = span(trace, i, NOW, NOW + 1);
            s.attributes = vec![kv("filler", &filler)];
            s
        })
        .collect()
}

/// The collector's `body_bytes_held` gauge, from `/metrics`.
async fn body_bytes_held(c: &TestCollector) -> u64 {
    let text = c.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("gauntlet_collector_body_bytes_held "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no body_bytes_held gauge in {text}"))
}

/// An OTLP/HTTP protobuf export of [`big_spans`], sent with `post`.
async fn post_big(c: &TestCollector, trace: [u8; 16], n: u8) -> Reply {
    let body = proto_request(big_spans(trace, n)).encode_to_vec();
    post(c, "application/x-protobuf", None, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_in_flight_stay_within_the_budget_and_what_was_held_still_commits() {
    use tokio::io::AsyncWriteExt;
    let c = TestCollector::start_with(|cfg| {
        cfg.max_body = 1 << 20;
        cfg.max_inflight = 256 << 10;
    })
    .await;
    // A client sends 200 KiB of a valid export, then pauses: those bytes are held.
    let held_trace = [0x51; 16];
    let body = proto_request(big_spans(held_trace, 200)).encode_to_vec();
    let addr = c.collector.addrs.otlp_http;
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    slow.write_all(head.as_bytes()).await.expect("head");
    let split = body.len() - 4096;
    slow.write_all(&body[..split])
        .await
        .expect("most of the body");
    // Wait until the collector has read what arrived: its gauge shows the bytes held. (An
    // export sent earlier could take the budget first and get the slow one refused.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let held = body_bytes_held(&c).await;
        if held >= split as u64 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the collector holds {held} of the {split} bytes sent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Another 100 KiB export cannot fit beside it: 429 with a retry hint, at once.
    let r = post_big(&c, [0x52; 16], 100).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    let s = proto_status(&r);
    assert_eq!(s.code, tonic::Code::Unavailable as i32);
    assert!(s.message.contains("--max-inflight"), "{}", s.message);
    // Over gRPC too: UNAVAILABLE with a RetryInfo, before the message is read.
    let mut client = TraceServiceClient::connect(c.otlp_grpc())
        .await
        .expect("grpc connects");
    let err = client
        .export(proto_request(big_spans([0x53; 16], 100)))
        .await
        .expect_err("no room");
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
    let retry = tonic_types::StatusExt::get_details_retry_info(&err).expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(std::time::Duration::from_secs(1)));

    // The held export finishes and commits: nothing it sent was lost.
    slow.write_all(&body[split..])
        .await
        .expect("rest of the body");
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        use tokio::io::AsyncReadExt;
        let n = slow.read(&mut buf).await.expect("answer");
        assert!(n > 0, "closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (status, trace) = c
        .get(&format!("/api/traces/{}", const_hex::encode(held_trace)))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        trace["data"][0]["spans"].as_array().map(Vec::len),
        Some(200)
    );
    // With the budget free again, the refused exports go through on retry.
    let r = post_big(&c, [0x52; 16], 100).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        body_bytes_held(&c).await,
        0,
        "every reservation was released"
    );
    still_serving(&c, 1).await;
    c.shutdown().await;
}

/// A TraceService export whose field 1 (`resource_spans`) holds `resource_spans` as they are:
/// whatever the test wants the receiver to decode. Its answer's status.
async fn grpc_raw_export(c: &TestCollector, resource_spans: Vec<u8>) -> tonic::Status {
    #[derive(Clone, PartialEq, prost::Message)]
    struct Raw {
        #[prost(bytes = "vec", tag = "1")]
        resource_spans: Vec<u8>,
    }
    let channel = tonic::transport::Endpoint::from_shared(c.otlp_grpc())
        .expect("an endpoint")
        .connect()
        .await
        .expect("gRPC connects");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<Raw, ExportTraceServiceResponse>::default();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(tonic::Request::new(Raw { resource_spans }), path, codec)
        .await
        .expect_err("refused")
}
