//! Ingest benchmark (run by `scripts/bench-ingest.sh`, which starts the collector and reads
//! its CPU time and peak RSS from /proc). Phases:
//! - `limits`: decode only (prost-decode pre-encoded 512-span requests on one core) and store
//!   only (the same rows into a fresh SQLite store through the store's own write path).
//! - `blast URL`: several connections POST pre-encoded requests to OTLP/HTTP for a while;
//!   only acknowledged (committed) spans count.
//!
//! Requests are encoded once; each send patches its trace IDs in place so that every trace
//! is new, as in production, without paying for encoding in the blaster.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gauntlet_collector::model::Batch;
use gauntlet_collector::otlp::convert;
use gauntlet_collector::store::sqlite::{SqliteConfig, SqliteStore};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;

const SPANS_PER_REQUEST: usize = 512;
const SPANS_PER_TRACE: usize = 16;
const SERVICES: [&str; 8] = [
    "gateway",
    "orders",
    "inventory",
    "payments",
    "notifications",
    "order-history",
    "registry",
    "search",
];
const ROUTES: [&str; 6] = [
    "/api/orders",
    "/api/orders/{id}",
    "/api/products",
    "/api/customers/{id}/orders",
    "/reserve",
    "/authorize",
];

/// A deterministic generator, so every run sends the same shapes.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}
fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}
fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

/// One encoded request and where its trace IDs and timestamps sit in the bytes.
struct Encoded {
    bytes: Vec<u8>,
    trace_id_offsets: Vec<usize>,
    time_offsets: Vec<usize>,
}

fn build_request(rng: &mut SplitMix, service: &str) -> Encoded {
    let now = 1_763_000_000_000_000_000u64;
    let mut spans = Vec::with_capacity(SPANS_PER_REQUEST);
    let mut trace_ids = Vec::new();
    let mut times: Vec<(u8, u64)> = Vec::new();
    for t in 0..SPANS_PER_REQUEST / SPANS_PER_TRACE {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&rng.next().to_le_bytes());
        trace_id[8..].copy_from_slice(&rng.next().to_le_bytes());
        trace_ids.push(trace_id);
        let start = now + t as u64 * 1_000_000;
        for k in 0..SPANS_PER_TRACE {
            let span_start = start + k as u64 * 10_000;
            let span_end = span_start + 5_000 + rng.next() % 2_000_000;
            // fixed64 fields 7 and 8 of Span: tags 0x39 and 0x41.
            times.push((0x39, span_start));
            times.push((0x41, span_end));
            let route = ROUTES[(rng.next() % ROUTES.len() as u64) as usize];
            let status = if rng.next().is_multiple_of(50) {
                500
            } else {
                200
            };
            spans.push(Span {
                trace_id: trace_id.to_vec(),
                span_id: rng.next().to_le_bytes().to_vec(),
                parent_span_id: if k == 0 {
                    Vec::new()
                } else {
                    rng.next().to_le_bytes().to_vec()
                },
                name: format!(
                    "{} {route}",
                    if k.is_multiple_of(3) { "POST" } else { "GET" }
                ),
                kind: if k.is_multiple_of(2) { 2 } else { 3 },
                start_time_unix_nano: span_start,
                end_time_unix_nano: span_end,
                attributes: vec![
                    s(
                        "http.request.method",
                        if k.is_multiple_of(3) { "POST" } else { "GET" },
                    ),
                    s("http.route", route),
                    i("http.response.status_code", status),
                    s("server.address", "127.0.0.1"),
                    i("server.port", 8080),
                    s(
                        "correlation_id",
                        &format!("{:032x}", trace_id[0] as u64 * 7919 + t as u64),
                    ),
                ],
                status: (status == 500).then(|| Status {
                    code: 2,
                    message: "upstream failed".into(),
                }),
                events: if status == 500 {
                    vec![span::Event {
                        time_unix_nano: start,
                        name: "exception".into(),
                        attributes: vec![s("exception.message", "connection reset")],
                        ..Default::default()
                    }]
                } else {
                    Vec::new()
                },
                flags: 0x101,
                ..Default::default()
            });
        }
    }
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    s("service.name", service),
                    s("service.version", "1.4.2"),
                    s("host.name", "bench-host"),
                    s("telemetry.sdk.language", "rust"),
                    s("telemetry.sdk.name", "opentelemetry"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "gauntlet-bench".into(),
                    version: "0.1.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let bytes = req.encode_to_vec();
    // One pass over the bytes: a position is a trace ID if its 16 bytes are one of ours, a
    // span time if a fixed64 tag (0x39 start, 0x41 end) is followed by one of our times.
    let ids: std::collections::HashSet<[u8; 16]> = trace_ids.into_iter().collect();
    let times: std::collections::HashSet<(u8, u64)> = times.into_iter().collect();
    let mut offsets = Vec::new();
    let mut time_offsets = Vec::new();
    for pos in 0..bytes.len() {
        if let Some(w) = bytes
            .get(pos..pos + 16)
            .and_then(|w| <[u8; 16]>::try_from(w).ok())
            && ids.contains(&w)
        {
            offsets.push(pos);
        }
        if let Some(w) = bytes
            .get(pos + 1..pos + 9)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            && times.contains(&(bytes[pos], u64::from_le_bytes(w)))
        {
            time_offsets.push(pos + 1);
        }
    }
    Encoded {
        bytes,
        trace_id_offsets: offsets,
        time_offsets,
    }
}

fn requests(n: usize) -> Vec<Encoded> {
    let mut rng = SplitMix(42);
    (0..n)
        .map(|k| build_request(&mut rng, SERVICES[k % SERVICES.len()]))
        .collect()
}

/// A copy of `req` whose traces are all new (the first 8 bytes of each ID become
/// `seq`-derived) and whose span times are shifted by `shift_ns`, so time moves forward as
/// in production and time-ordered indexes see appends, not random inserts.
fn fresh(req: &Encoded, seq: u64, shift_ns: u64) -> Vec<u8> {
    let mut bytes = req.bytes.clone();
    for &off in &req.time_offsets {
        let mut t = [0u8; 8];
        t.copy_from_slice(&bytes[off..off + 8]);
        let shifted = u64::from_le_bytes(t).wrapping_add(shift_ns);
        bytes[off..off + 8].copy_from_slice(&shifted.to_le_bytes());
    }
    let stamp = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq).to_le_bytes();
    for &off in &req.trace_id_offsets {
        for (b, s) in bytes[off..off + 8].iter_mut().zip(stamp) {
            *b ^= s;
        }
    }
    bytes
}

fn decode_only(reqs: &[Encoded], seconds: f64) -> f64 {
    let started = Instant::now();
    let mut spans = 0usize;
    let mut k = 0usize;
    while started.elapsed().as_secs_f64() < seconds {
        let r = &reqs[k % reqs.len()];
        let decoded = ExportTraceServiceRequest::decode(r.bytes.as_slice()).expect("decodes");
        spans += decoded.resource_spans[0].scope_spans[0].spans.len();
        k += 1;
    }
    spans as f64 / started.elapsed().as_secs_f64()
}

fn store_only(reqs: &[Encoded], total_spans: usize, per_commit: usize) -> (f64, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&SqliteConfig::new(dir.path())).expect("store");
    // Rows are prepared outside the timed part: this measures the store alone.
    let mut batches = Vec::new();
    let mut seq = 1u64 << 40;
    let mut rows = 0;
    while rows < total_spans {
        let mut batch = Batch::default();
        for _ in 0..per_commit {
            let r = &reqs[seq as usize % reqs.len()];
            // As if requests arrived at 150k spans/s.
            let shift = seq * SPANS_PER_REQUEST as u64 * 6_667;
            let req = ExportTraceServiceRequest::decode(fresh(r, seq, shift).as_slice())
                .expect("decodes");
            batch.extend(convert::traces(req).batch);
            seq += 1;
        }
        rows += batch.rows();
        batches.push(batch);
    }
    let started = Instant::now();
    for b in batches {
        store.write_blocking(b).expect("write");
    }
    let secs = started.elapsed().as_secs_f64();
    (rows as f64 / secs, rows)
}

async fn blast(url: String, reqs: Vec<Encoded>, connections: usize, seconds: u64) {
    let reqs = Arc::new(reqs);
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(1));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (url, reqs, acked, refused, failed, seq) = (
            url.clone(),
            reqs.clone(),
            acked.clone(),
            refused.clone(),
            failed.clone(),
            seq.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            while Instant::now() < deadline {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let r = &reqs[n as usize % reqs.len()];
                let body = fresh(r, n, started.elapsed().as_nanos() as u64);
                let resp = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await;
                match resp.map(|r| r.status().as_u16()) {
                    Ok(200) => {
                        acked.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                    }
                    Ok(429) | Ok(503) => {
                        refused.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let acked = acked.load(Ordering::Relaxed);
    println!("blast_seconds={secs:.2}");
    println!("blast_connections={connections}");
    println!("acked_spans={acked}");
    println!("acked_spans_per_sec={:.0}", acked as f64 / secs);
    println!("refused_spans={}", refused.load(Ordering::Relaxed));
    println!("failed_requests={}", failed.load(Ordering::Relaxed));
}

/// Patched requests still decode, with new trace IDs and shifted span times.
fn self_check(reqs: &[Encoded]) {
    let r = &reqs[0];
    assert_eq!(
        r.trace_id_offsets.len(),
        SPANS_PER_REQUEST,
        "every trace ID found"
    );
    assert_eq!(
        r.time_offsets.len(),
        2 * SPANS_PER_REQUEST,
        "every span time found"
    );
    let spans = |bytes: Vec<u8>| {
        ExportTraceServiceRequest::decode(bytes.as_slice())
            .expect("patched request decodes")
            .resource_spans[0]
            .scope_spans[0]
            .spans
            .clone()
    };
    let (a, b) = (spans(fresh(r, 1, 0)), spans(fresh(r, 2, 1_000)));
    assert_eq!(a.len(), SPANS_PER_REQUEST);
    assert_ne!(a[0].trace_id, b[0].trace_id);
    assert_eq!(a[0].trace_id, a[1].trace_id, "spans of a trace keep one ID");
    assert_eq!(b[0].start_time_unix_nano, a[0].start_time_unix_nano + 1_000);
    println!(
        "ingest bench self-check: 1 passed, 0 failed (run scripts/bench-ingest.sh for figures)"
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        // `cargo test --all-targets` runs this with no arguments: check the request patching.
        self_check(&requests(2));
        return;
    }
    let reqs = requests(64);
    let bytes: usize = reqs.iter().map(|r| r.bytes.len()).sum::<usize>() / reqs.len();
    match args.first().map(String::as_str) {
        Some("limits") => {
            let spans: usize = args
                .get(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(2_000_000);
            println!("request_bytes={bytes}");
            println!("decode_only_spans_per_sec={:.0}", decode_only(&reqs, 3.0));
            // 8 requests a commit: what the group commit takes under several connections.
            let per_commit = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(8);
            let (rate, rows) = store_only(&reqs, spans, per_commit);
            println!("store_only_rows={rows}");
            println!("store_only_rows_per_sec={rate:.0}");
        }
        Some("blast") => {
            let url = args.get(1).cloned().expect("blast URL");
            let connections = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(4);
            let seconds = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(20);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(blast(url, reqs, connections, seconds));
        }
        _ => {
            eprintln!(
                "usage: ingest limits [SPANS] [REQUESTS_PER_COMMIT] | ingest blast URL [CONNECTIONS] [SECONDS]"
            );
            std::process::exit(2);
        }
    }
}
