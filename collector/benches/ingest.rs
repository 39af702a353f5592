//! Ingest benchmark (run by `scripts/bench-ingest.sh`, which starts the collector and reads
//! its CPU time and peak RSS from /proc). Phases, each for one request shape:
//! - `limits SHAPE`: decode only (prost-decode pre-encoded 512-span requests on one core) and
//!   store only (the same rows into a fresh SQLite store through the store's own write path).
//! - `blast SHAPE URL`: several connections POST pre-encoded requests to OTLP/HTTP for a
//!   while; only acknowledged (committed) spans count.
//! - `grow SHAPE URL API TARGET`: the same until TARGET spans are acknowledged, printing the
//!   rate per interval, then trace-by-ID and correlation-timeline latencies at that size.
//!   With `SPREAD_SECONDS` (after CONNECTIONS and EVERY), the spans' start times cover that
//!   many seconds instead of moving with the clock.
//! - `red SHAPE API SPREAD_SECONDS`: RED over the last 1, 6 and 24 hours of such a store, from the
//!   rollups and from the spans; then the dependencies over the same windows.
//! - `logs SHAPE URL API TARGET`: the same with log exports (512 records, the shape's records
//!   per trace) to /v1/logs, then log queries at that size (by trace, correlation, service,
//!   body text, severity).
//!
//! Shapes (512 spans a request): `friendly` 32 traces × 16 spans; `realistic` 128 traces × 4
//! spans, what a service's batch processor sends; `worst` 512 traces of one span. Every
//! trace has its own 32-hex correlation ID; each span is the child of the one before it.
//! Requests come in pairs, two services' halves of the same traces (the second's first span
//! called by the first's last), so the dependencies have calls to count. Requests are
//! encoded once; each send patches its trace IDs and correlation IDs in place (the two
//! sends of a pair alike), so every trace and correlation ID is new, as in production,
//! without paying for encoding in the blaster.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gauntlet_collector::model::Batch;
use gauntlet_collector::otlp::convert;
use gauntlet_collector::store::sqlite::{SqliteConfig, SqliteStore};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;

/// The correlation ID ingest reads from these attributes.
fn correlation_id(attributes: &[KeyValue]) -> Option<String> {
    convert::attributes(attributes.to_vec()).correlation_id()
}

const SPANS_PER_REQUEST: usize = 512;

/// How a request's spans group into traces.
#[derive(Debug, Clone, Copy)]
struct Shape {
    name: &'static str,
    spans_per_trace: usize,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "friendly",
        spans_per_trace: 16,
    },
    Shape {
        name: "realistic",
        spans_per_trace: 4,
    },
    Shape {
        name: "worst",
        spans_per_trace: 1,
    },
];

fn shape(name: &str) -> Shape {
    SHAPES
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| {
            eprintln!("unknown shape {name:?}: friendly, realistic or worst");
            std::process::exit(2)
        })
}
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

/// One encoded request and where its trace IDs, correlation IDs and timestamps sit.
struct Encoded {
    bytes: Vec<u8>,
    trace_id_offsets: Vec<usize>,
    correlation_offsets: Vec<usize>,
    time_offsets: Vec<usize>,
}

/// The start time of the first request's spans; sends shift it.
const BASE_NS: u64 = 1_763_000_000_000_000_000;

/// A trace as the first request of a pair sent it: the second continues it.
struct TraceHalf {
    trace_id: [u8; 16],
    correlation: String,
    /// Its last span (a client span when the trace has more than one): the parent of the
    /// second half's first span.
    last_span: Vec<u8>,
}

/// A request of `service`'s spans: traces of `shape.spans_per_trace` spans, each the child
/// of the one before; with `caller`, the second halves of the caller's traces (same trace
/// and correlation IDs, the first span a child of the caller's last). Returns the request
/// and its traces.
fn build_request(
    rng: &mut SplitMix,
    service: &str,
    shape: Shape,
    caller: Option<&[TraceHalf]>,
) -> (Encoded, Vec<TraceHalf>) {
    let now = BASE_NS;
    let mut spans: Vec<Span> = Vec::with_capacity(SPANS_PER_REQUEST);
    let mut trace_ids = Vec::new();
    let mut correlations = Vec::new();
    let mut halves = Vec::new();
    let mut times: Vec<(u8, u64)> = Vec::new();
    for t in 0..SPANS_PER_REQUEST / shape.spans_per_trace {
        let (trace_id, correlation) = match caller {
            Some(c) => (c[t].trace_id, c[t].correlation.clone()),
            None => {
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&rng.next().to_le_bytes());
                trace_id[8..].copy_from_slice(&rng.next().to_le_bytes());
                (trace_id, format!("{:016x}{:016x}", rng.next(), rng.next()))
            }
        };
        trace_ids.push(trace_id);
        correlations.push(correlation.clone());
        let start = now + t as u64 * 1_000_000;
        for k in 0..shape.spans_per_trace {
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
                parent_span_id: match (k, caller) {
                    (0, None) => Vec::new(),
                    (0, Some(c)) => c[t].last_span.clone(),
                    _ => spans.last().map(|p| p.span_id.clone()).unwrap_or_default(),
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
                    s("correlation.id", &correlation),
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
        halves.push(TraceHalf {
            trace_id,
            correlation,
            last_span: spans.last().map(|s| s.span_id.clone()).unwrap_or_default(),
        });
    }
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(service)),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (
        locate(req.encode_to_vec(), trace_ids, &correlations, times),
        halves,
    )
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            s("service.name", service),
            s("service.version", "1.4.2"),
            s("host.name", "bench-host"),
            s("telemetry.sdk.language", "rust"),
            s("telemetry.sdk.name", "opentelemetry"),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "gauntlet-bench".into(),
        version: "0.1.0".into(),
        ..Default::default()
    }
}

/// Words a log body is made of; [`RARE_WORD`] is in one body in 64, what a text search for
/// a specific failure looks for.
const LOG_WORDS: [&str; 8] = [
    "order",
    "reserved",
    "payment",
    "authorized",
    "customer",
    "shipped",
    "retrying",
    "cache",
];
const RARE_WORD: &str = "deadlock";

/// A log export as a service's batch processor sends it: 512 records of `shape.spans_per_trace`
/// records per request (trace), each with the trace's ID, a span ID and its correlation ID.
fn build_logs_request(rng: &mut SplitMix, service: &str, shape: Shape) -> Encoded {
    let now = 1_763_000_000_000_000_000u64;
    let mut records = Vec::with_capacity(SPANS_PER_REQUEST);
    let (mut trace_ids, mut correlations, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for t in 0..SPANS_PER_REQUEST / shape.spans_per_trace {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&rng.next().to_le_bytes());
        trace_id[8..].copy_from_slice(&rng.next().to_le_bytes());
        trace_ids.push(trace_id);
        let correlation = format!("{:016x}{:016x}", rng.next(), rng.next());
        correlations.push(correlation.clone());
        for k in 0..shape.spans_per_trace {
            let time = now + t as u64 * 1_000_000 + k as u64 * 10_000;
            // fixed64 fields 1 and 11 of LogRecord: tags 0x09 and 0x59.
            times.push((0x09, time));
            times.push((0x59, time + 1_000));
            let severity = match rng.next() % 20 {
                0 => 17,
                1..=2 => 13,
                _ => 9,
            };
            let mut words: Vec<&str> = (0..6)
                .map(|_| LOG_WORDS[(rng.next() % LOG_WORDS.len() as u64) as usize])
                .collect();
            if rng.next().is_multiple_of(64) {
                words.push(RARE_WORD);
            }
            records.push(LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: time + 1_000,
                severity_number: severity,
                severity_text: match severity {
                    17 => "ERROR",
                    13 => "WARN",
                    _ => "INFO",
                }
                .into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(format!(
                        "{} {}",
                        words.join(" "),
                        rng.next() % 100_000
                    ))),
                }),
                attributes: vec![
                    s("correlation.id", &correlation),
                    s("code.function", "place_order"),
                ],
                trace_id: trace_id.to_vec(),
                span_id: rng.next().to_le_bytes().to_vec(),
                flags: 1,
                ..Default::default()
            });
        }
    }
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(service)),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    locate(req.encode_to_vec(), trace_ids, &correlations, times)
}

/// Where the trace IDs, correlation IDs and times sit in an encoded request. One pass over the
/// bytes: a position is a trace ID if its 16 bytes are one of ours, a time if a fixed64 tag
/// (spans: 0x39 start, 0x41 end; logs: 0x09 time, 0x59 observed) is followed by one of ours.
fn locate(
    bytes: Vec<u8>,
    trace_ids: Vec<[u8; 16]>,
    correlations: &[String],
    times: Vec<(u8, u64)>,
) -> Encoded {
    let ids: std::collections::HashSet<[u8; 16]> = trace_ids.into_iter().collect();
    let cids: std::collections::HashSet<[u8; 32]> = correlations
        .iter()
        .filter_map(|c| <[u8; 32]>::try_from(c.as_bytes()).ok())
        .collect();
    let times: std::collections::HashSet<(u8, u64)> = times.into_iter().collect();
    let mut offsets = Vec::new();
    let mut correlation_offsets = Vec::new();
    let mut time_offsets = Vec::new();
    for pos in 0..bytes.len() {
        if let Some(w) = bytes
            .get(pos..pos + 32)
            .and_then(|w| <[u8; 32]>::try_from(w).ok())
            && cids.contains(&w)
        {
            correlation_offsets.push(pos);
        }
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
        correlation_offsets,
        time_offsets,
    }
}

/// `n` requests (even) in pairs: the second of each pair holds the second halves of the
/// first's traces, from the next service (its first span a server span called by the
/// first's last), as two services export one trace; [`fresh`] gives both of a pair the
/// same new trace IDs.
fn requests(n: usize, shape: Shape) -> Vec<Encoded> {
    let mut rng = SplitMix(42);
    let mut out = Vec::with_capacity(n);
    for k in (0..n).step_by(2) {
        let (first, halves) = build_request(&mut rng, SERVICES[k % SERVICES.len()], shape, None);
        let service = SERVICES[(k + 1) % SERVICES.len()];
        out.push(first);
        out.push(build_request(&mut rng, service, shape, Some(&halves)).0);
    }
    out
}

fn logs_requests(n: usize, shape: Shape) -> Vec<Encoded> {
    let mut rng = SplitMix(43);
    (0..n)
        .map(|k| build_logs_request(&mut rng, SERVICES[k % SERVICES.len()], shape))
        .collect()
}

/// A copy of `req` whose traces and correlation IDs are all new (each is mixed with a
/// stamp derived from `seq / 2`; the spans of a trace keep sharing theirs) and whose span times are
/// shifted by `shift_ns`, so time moves forward as in production and time-ordered indexes
/// see appends, not random inserts.
fn fresh(req: &Encoded, seq: u64, shift_ns: u64) -> Vec<u8> {
    let mut bytes = req.bytes.clone();
    for &off in &req.time_offsets {
        let mut t = [0u8; 8];
        t.copy_from_slice(&bytes[off..off + 8]);
        let shifted = u64::from_le_bytes(t).wrapping_add(shift_ns);
        bytes[off..off + 8].copy_from_slice(&shifted.to_le_bytes());
    }
    // Sends 2m and 2m + 1 (the two requests of a pair, see `requests`) share a stamp: the
    // two halves of the same traces.
    let pair = seq / 2;
    let stamp = (pair.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ pair).to_le_bytes();
    for &off in &req.trace_id_offsets {
        for (b, s) in bytes[off..off + 8].iter_mut().zip(stamp) {
            *b ^= s;
        }
    }
    // Hex digits stay hex digits: each of the first 16 is XORed with a nibble of the stamp.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &off in &req.correlation_offsets {
        for (j, c) in bytes[off..off + 16].iter_mut().enumerate() {
            let v = (*c as char).to_digit(16).unwrap_or(0) as u8;
            let nibble = (stamp[j / 2] >> (4 * (j % 2))) & 0xf;
            *c = HEX[usize::from(v ^ nibble)];
        }
    }
    bytes
}

/// Requests decoded to the model as the receiver decodes them (straight from the bytes), and,
/// in the same run, as prost's structs then converted (what the receiver did before): spans/s
/// of each.
fn decode_only(reqs: &[Encoded], seconds: f64) -> (f64, f64) {
    use gauntlet_collector::otlp::{http, status::Format};
    let direct = decode_loop(reqs, seconds, |bytes| {
        http::decode_traces(Format::Protobuf, bytes)
            .expect("decodes")
            .batch
            .spans
            .len()
    });
    let prost = decode_loop(reqs, seconds, |bytes| {
        let req = ExportTraceServiceRequest::decode(bytes).expect("decodes");
        convert::traces(req).batch.spans.len()
    });
    (direct, prost)
}

fn decode_loop(reqs: &[Encoded], seconds: f64, decode: impl Fn(&[u8]) -> usize) -> f64 {
    let started = Instant::now();
    let mut spans = 0usize;
    let mut k = 0usize;
    while started.elapsed().as_secs_f64() < seconds {
        spans += decode(reqs[k % reqs.len()].bytes.as_slice());
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

/// The limit for the ClickHouse store: the same rows (converted as the collector converts
/// them, prepared outside the timed part) inserted straight through the `clickhouse` crate's
/// inserter, `per_insert` rows an INSERT, into the tables the store created.
fn clickhouse_raw(
    reqs: &[Encoded],
    url: &str,
    database: &str,
    total: usize,
    per_insert: u64,
) -> f64 {
    use gauntlet_collector::store::clickhouse::rows::SpanRow;
    use gauntlet_collector::store::clickhouse::{ClickHouseConfig, ClickHouseStore};
    let mut rows = Vec::with_capacity(total);
    let mut seq = 1u64 << 41;
    while rows.len() < total {
        let r = &reqs[seq as usize % reqs.len()];
        let shift = seq * SPANS_PER_REQUEST as u64 * 6_667;
        let req =
            ExportTraceServiceRequest::decode(fresh(r, seq, shift).as_slice()).expect("decodes");
        rows.extend(
            convert::traces(req)
                .batch
                .spans
                .iter()
                .map(SpanRow::from_record),
        );
        seq += 1;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        // Creates the tables if this is the first run on the database.
        ClickHouseStore::open(&ClickHouseConfig::new(url, database))
            .await
            .expect("ClickHouse reachable");
        let client = clickhouse::Client::default()
            .with_url(url)
            .with_database(database);
        let mut inserter = client
            .inserter::<SpanRow>("otel_traces")
            .with_max_rows(per_insert);
        let started = Instant::now();
        for row in &rows {
            inserter.write(row).await.expect("write");
            inserter.commit().await.expect("commit");
        }
        inserter.end().await.expect("end");
        rows.len() as f64 / started.elapsed().as_secs_f64()
    })
}

/// When a send phase stops.
#[derive(Clone, Copy)]
enum Until {
    Elapsed(Duration),
    /// This many acknowledged spans; progress every `every` spans.
    Acked {
        spans: u64,
        every: u64,
    },
}

/// What a send phase did; `acked_seqs` are the requests the collector committed.
struct Sent {
    secs: f64,
    acked: u64,
    refused: u64,
    failed: u64,
    acked_seqs: Vec<u64>,
}

/// Sends until `until`; `unit` names what a request's 512 items are (`spans`, `logs`). Span
/// times move with the clock, or by `spread_ns` per request (to lay a store's spans over a
/// day in minutes).
async fn send(
    url: &str,
    reqs: Arc<Vec<Encoded>>,
    connections: usize,
    until: Until,
    unit: &str,
    spread_ns: Option<u64>,
) -> Sent {
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(1));
    let seqs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Instant::now();
    let done = move |acked: u64| match until {
        Until::Elapsed(d) => started.elapsed() >= d,
        Until::Acked { spans, .. } => acked >= spans,
    };
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (url, reqs, acked, refused, failed, seq, seqs) = (
            url.to_string(),
            reqs.clone(),
            acked.clone(),
            refused.clone(),
            failed.clone(),
            seq.clone(),
            seqs.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            while !done(acked.load(Ordering::Relaxed)) {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let r = &reqs[n as usize % reqs.len()];
                let shift = spread_ns.map_or(started.elapsed().as_nanos() as u64, |s| n * s);
                let body = fresh(r, n, shift);
                let resp = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await;
                match resp.map(|r| r.status().as_u16()) {
                    Ok(200) => {
                        acked.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                        seqs.lock().unwrap_or_else(|p| p.into_inner()).push(n);
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
    if let Until::Acked { every, .. } = until {
        // Progress: the rate over each interval of `every` spans, as the store grows.
        let (mut last_spans, mut last_t) = (0u64, Instant::now());
        while !tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = acked.load(Ordering::Relaxed);
            if now >= last_spans + every {
                let secs = last_t.elapsed().as_secs_f64();
                println!(
                    "grow_point stored_{unit}={now} interval_{unit}_per_sec={:.0} elapsed_s={:.0}",
                    (now - last_spans) as f64 / secs,
                    started.elapsed().as_secs_f64()
                );
                (last_spans, last_t) = (now, Instant::now());
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let acked_seqs = std::mem::take(&mut *seqs.lock().unwrap_or_else(|p| p.into_inner()));
    Sent {
        secs: started.elapsed().as_secs_f64(),
        acked: acked.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        acked_seqs,
    }
}

fn print_sent(sent: &Sent, connections: usize, unit: &str) {
    println!("blast_seconds={:.2}", sent.secs);
    println!("blast_connections={connections}");
    println!("acked_{unit}={}", sent.acked);
    println!("acked_{unit}_per_sec={:.0}", sent.acked as f64 / sent.secs);
    println!("refused_{unit}={}", sent.refused);
    println!("failed_requests={}", sent.failed);
}

/// Seconds until the newest acknowledged trace can be read back: none for a store that
/// commits before it acknowledges (SQLite), the drain of the spool for ClickHouse.
async fn settle(api: &str, reqs: &[Encoded], acked_seqs: &[u64]) -> f64 {
    let started = Instant::now();
    let Some(&seq) = acked_seqs.iter().max() else {
        return 0.0;
    };
    let req = &reqs[seq as usize % reqs.len()];
    let decoded =
        ExportTraceServiceRequest::decode(fresh(req, seq, 0).as_slice()).expect("decodes");
    let trace = const_hex::encode(&decoded.resource_spans[0].scope_spans[0].spans[0].trace_id);
    let client = reqwest::Client::new();
    while started.elapsed() < Duration::from_secs(600) {
        let ok = client
            .get(format!("{api}/api/traces/{trace}"))
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        if ok {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed().as_secs_f64()
}

/// p50 and p99 of `ms`, in milliseconds.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    (at(0.50), at(0.99))
}

/// Trace-by-ID, correlation-timeline and search latencies for `n` traces picked at random
/// among those the collector acknowledged: the reads a user makes once the store is full.
/// A search asks for the 20 newest traces of the picked span's service and operation.
async fn lookups(api: &str, reqs: &[Encoded], acked_seqs: &[u64], n: usize) {
    let client = reqwest::Client::new();
    let mut rng = SplitMix(7);
    let (mut by_id, mut by_corr, mut missing) = (Vec::new(), Vec::new(), 0usize);
    let mut search = Vec::new();
    for _ in 0..n {
        let seq = acked_seqs[(rng.next() % acked_seqs.len() as u64) as usize];
        let req = &reqs[seq as usize % reqs.len()];
        let decoded =
            ExportTraceServiceRequest::decode(fresh(req, seq, 0).as_slice()).expect("decodes");
        let spans = &decoded.resource_spans[0].scope_spans[0].spans;
        let span = &spans[(rng.next() % spans.len() as u64) as usize];
        let trace: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
        let correlation = correlation_id(&span.attributes).expect("correlation ID");
        for (url, into) in [
            (format!("{api}/api/traces/{trace}"), &mut by_id),
            (
                format!("{api}/api/v1/correlations/{correlation}"),
                &mut by_corr,
            ),
        ] {
            let t = Instant::now();
            let ok = client
                .get(&url)
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            into.push(t.elapsed().as_secs_f64() * 1000.0);
            missing += usize::from(!ok);
        }
        let service = decoded.resource_spans[0]
            .resource
            .as_ref()
            .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
            .and_then(|a| a.value.as_ref())
            .and_then(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                _ => None,
            })
            .expect("service.name");
        let t = Instant::now();
        let url = reqwest::Url::parse_with_params(
            &format!("{api}/api/traces"),
            [
                ("service", service.as_str()),
                ("operation", span.name.as_str()),
                ("limit", "20"),
            ],
        )
        .expect("search URL");
        let found = client
            .get(url)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        search.push(t.elapsed().as_secs_f64() * 1000.0);
        missing += usize::from(!found);
    }
    let (p50, p99) = percentiles(by_id);
    println!("trace_by_id_p50_ms={p50:.2}");
    println!("trace_by_id_p99_ms={p99:.2}");
    let (p50, p99) = percentiles(by_corr);
    println!("correlation_p50_ms={p50:.2}");
    println!("correlation_p99_ms={p99:.2}");
    let (p50, p99) = percentiles(search);
    println!("search_p50_ms={p50:.2}");
    println!("search_p99_ms={p99:.2}");
    println!("lookups_not_found={missing}");
}

/// The part of a `/api/v1/logs` answer the bench reads.
#[derive(serde::Deserialize)]
struct LogsPage {
    data: Vec<serde::de::IgnoredAny>,
}

/// Log queries at size, for `n` picks among the acknowledged requests: by trace ID, by
/// correlation ID, a service's newest page, a service's newest with a rare word in the body
/// (`q`), and the newest errors of all services. Pages of 50, newest first.
async fn log_lookups(api: &str, reqs: &[Encoded], acked_seqs: &[u64], n: usize) {
    let client = reqwest::Client::new();
    let mut rng = SplitMix(7);
    let names = ["trace", "correlation", "service", "text", "errors"];
    let mut ms: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut empty = 0usize;
    for _ in 0..n {
        let seq = acked_seqs[(rng.next() % acked_seqs.len() as u64) as usize];
        let req = &reqs[seq as usize % reqs.len()];
        let decoded =
            ExportLogsServiceRequest::decode(fresh(req, seq, 0).as_slice()).expect("decodes");
        let logs = &decoded.resource_logs[0];
        let record = &logs.scope_logs[0].log_records
            [(rng.next() % logs.scope_logs[0].log_records.len() as u64) as usize];
        let trace: String = record.trace_id.iter().map(|b| format!("{b:02x}")).collect();
        let correlation = correlation_id(&record.attributes).expect("correlation ID");
        let service = SERVICES[(rng.next() % SERVICES.len() as u64) as usize];
        let queries: [&[(&str, &str)]; 5] = [
            &[("trace_id", &trace)],
            &[("correlation_id", &correlation)],
            &[("service", service)],
            &[("service", service), ("q", RARE_WORD)],
            &[("severity_min", "error")],
        ];
        for (k, params) in queries.into_iter().enumerate() {
            let mut params = params.to_vec();
            params.push(("limit", "50"));
            let url = reqwest::Url::parse_with_params(&format!("{api}/api/v1/logs"), params)
                .expect("logs URL");
            let t = Instant::now();
            let found = match client.get(url).send().await {
                Ok(r) if r.status().is_success() => r
                    .json::<LogsPage>()
                    .await
                    .is_ok_and(|page| !page.data.is_empty()),
                _ => false,
            };
            ms[k].push(t.elapsed().as_secs_f64() * 1000.0);
            empty += usize::from(!found);
        }
    }
    for (name, ms) in names.into_iter().zip(ms) {
        let (p50, p99) = percentiles(ms);
        println!("logs_by_{name}_p50_ms={p50:.2}");
        println!("logs_by_{name}_p99_ms={p99:.2}");
    }
    println!("log_lookups_empty={empty}");
}

/// Patched requests still decode, with new trace IDs and shifted span times.
/// Every trace ID, correlation ID and time of a request was located for patching.
fn every_field_located(r: &Encoded, shape: Shape) {
    for (found, want, what) in [
        (r.trace_id_offsets.len(), SPANS_PER_REQUEST, "trace ID"),
        (
            r.correlation_offsets.len(),
            SPANS_PER_REQUEST,
            "correlation ID",
        ),
        (r.time_offsets.len(), 2 * SPANS_PER_REQUEST, "time"),
    ] {
        assert_eq!(found, want, "{}: every {what} found", shape.name);
    }
}

fn self_check(reqs: &[Encoded], shape: Shape) {
    let r = &reqs[0];
    every_field_located(r, shape);
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
    // The second request of a pair, sent next, continues the first's traces.
    let callee = spans(fresh(&reqs[1], 3, 0));
    assert_eq!(callee[0].trace_id, b[0].trace_id);
    let last = &b[shape.spans_per_trace - 1];
    assert_eq!(
        callee[0].parent_span_id, last.span_id,
        "called by the caller's last span"
    );
    assert_eq!(callee[0].trace_id, last.trace_id);
    assert_ne!(a[0].trace_id, b[0].trace_id);
    let cid = |s: &Span| correlation_id(&s.attributes).expect("correlation ID");
    let traces: std::collections::HashSet<&Vec<u8>> = a.iter().map(|s| &s.trace_id).collect();
    let cids: std::collections::HashSet<String> = a.iter().map(cid).collect();
    assert_eq!(
        traces.len(),
        SPANS_PER_REQUEST / shape.spans_per_trace,
        "{}",
        shape.name
    );
    assert_eq!(cids.len(), traces.len(), "one correlation ID per trace");
    if shape.spans_per_trace > 1 {
        assert_eq!(a[0].trace_id, a[1].trace_id, "spans of a trace keep one ID");
        assert_eq!(
            cid(&a[0]),
            cid(&a[1]),
            "spans of a trace keep one correlation ID"
        );
    }
    assert_ne!(
        cid(&a[0]),
        cid(&b[0]),
        "every request has new correlation IDs"
    );
    assert!(cid(&b[0]).chars().all(|c| c.is_ascii_hexdigit()) && cid(&b[0]).len() == 32);
    assert_eq!(b[0].start_time_unix_nano, a[0].start_time_unix_nano + 1_000);
    println!(
        "ingest bench self-check ({}): passed (run scripts/bench-ingest.sh for figures)",
        shape.name
    );
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.is_empty() {
        // `cargo test --all-targets` runs this with no arguments: check the request patching.
        for s in SHAPES {
            self_check(&requests(2, s), s);
            self_check_logs(&logs_requests(2, s), s);
        }
        return;
    }
    let usage = || -> ! {
        eprintln!(
            "usage: ingest limits SHAPE [SPANS] [REQUESTS_PER_COMMIT]\n       ingest blast SHAPE URL [CONNECTIONS] [SECONDS]\n       ingest grow SHAPE URL API TARGET_SPANS [CONNECTIONS] [EVERY_SPANS] [SPREAD_SECONDS]\n       ingest red SHAPE API SPREAD_SECONDS\n       ingest logs SHAPE URL API TARGET_LOGS [CONNECTIONS] [EVERY_LOGS]\n       ingest clickhouse-raw SHAPE CLICKHOUSE_URL DATABASE [SPANS] [ROWS_PER_INSERT]\nSHAPE: friendly, realistic or worst"
        );
        std::process::exit(2)
    };
    let arg = |k: usize| args.get(k).cloned();
    let num = |k: usize, default: u64| arg(k).and_then(|v| v.parse().ok()).unwrap_or(default);
    let shape = shape(&arg(1).unwrap_or_else(|| usage()));
    let reqs = requests(64, shape);
    let bytes: usize = reqs.iter().map(|r| r.bytes.len()).sum::<usize>() / reqs.len();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    };
    match args.first().map(String::as_str) {
        Some("limits") => {
            println!(
                "shape={} spans_per_trace={}",
                shape.name, shape.spans_per_trace
            );
            println!("request_bytes={bytes}");
            let (direct, prost) = decode_only(&reqs, 3.0);
            println!("decode_only_spans_per_sec={direct:.0}");
            println!("decode_prost_spans_per_sec={prost:.0}");
            // 8 requests a commit: what the group commit takes under several connections.
            let (rate, rows) = store_only(&reqs, num(2, 2_000_000) as usize, num(3, 8) as usize);
            println!("store_only_rows={rows}");
            println!("store_only_rows_per_sec={rate:.0}");
        }
        Some("clickhouse-raw") => {
            let (url, database) = (
                arg(2).unwrap_or_else(|| usage()),
                arg(3).unwrap_or_else(|| usage()),
            );
            let total = num(4, 1_000_000) as usize;
            let per_insert = num(5, 4096);
            let rate = clickhouse_raw(&reqs, &url, &database, total, per_insert);
            println!("raw_insert_rows={total}");
            println!("raw_insert_rows_per_insert={per_insert}");
            println!("raw_insert_rows_per_sec={rate:.0}");
        }
        Some("blast") => {
            let url = arg(2).unwrap_or_else(|| usage());
            let connections = num(3, 4) as usize;
            let until = Until::Elapsed(Duration::from_secs(num(4, 20)));
            let sent = runtime().block_on(send(
                &url,
                Arc::new(reqs),
                connections,
                until,
                "spans",
                None,
            ));
            print_sent(&sent, connections, "spans");
        }
        Some(mode @ ("grow" | "logs")) => {
            let (url, api) = (
                arg(2).unwrap_or_else(|| usage()),
                arg(3).unwrap_or_else(|| usage()),
            );
            let target: u64 = arg(4)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage());
            let connections = num(5, 4) as usize;
            let every = num(6, (target / 10).max(SPANS_PER_REQUEST as u64));
            // Seconds the spans' start times cover (the rollups benchmark lays them over a
            // day); without it they move with the clock.
            let spread = arg(7)
                .and_then(|v| v.parse::<u64>().ok())
                .map(|secs| secs * 1_000_000_000 / (target / SPANS_PER_REQUEST as u64).max(1));
            let logs = mode == "logs";
            let unit = if logs { "logs" } else { "spans" };
            let reqs = Arc::new(if logs { logs_requests(64, shape) } else { reqs });
            runtime().block_on(async {
                let until = Until::Acked {
                    spans: target,
                    every,
                };
                let sent = send(&url, reqs.clone(), connections, until, unit, spread).await;
                print_sent(&sent, connections, unit);
                if logs {
                    log_lookups(&api, &reqs, &sent.acked_seqs, 1000).await;
                } else {
                    let settled = settle(&api, &reqs, &sent.acked_seqs).await;
                    println!("settle_seconds={settled:.2}");
                    println!(
                        "readable_spans_per_sec={:.0}",
                        sent.acked as f64 / (sent.secs + settled)
                    );
                    lookups(&api, &reqs, &sent.acked_seqs, 200).await;
                }
            });
        }
        Some("red") => {
            let api = arg(2).unwrap_or_else(|| usage());
            let spread: i64 = arg(3)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage());
            runtime().block_on(async {
                red_latencies(&api, spread, 20).await;
                dependency_latencies(&api, spread, 20).await;
            });
        }
        _ => usage(),
    }
}

/// RED of the busiest service over the last 1, 6 and 24 hours of a store whose spans cover
/// `spread_s` seconds from [`BASE_NS`]: with the default step, as the UI asks (whole rollup
/// rows), and with that step one second longer (the spans), `n` times each; p50 and p99 in
/// ms, the step, and what the last answer counted.
async fn red_latencies(api: &str, spread_s: i64, n: usize) {
    let client = reqwest::Client::new();
    let end_ns = BASE_NS as i64 + spread_s * 1_000_000_000;
    for hours in [1i64, 6, 24] {
        let window = format!(
            "{api}/api/v1/red?service={}&start={}&end={}",
            SERVICES[0],
            (end_ns - hours * 3_600 * 1_000_000_000) / 1000,
            end_ns / 1000,
        );
        let (rollups, step_us) = red_timed(&client, &window, n).await;
        print_red(hours, "rollups", &rollups, step_us);
        let url = format!("{window}&step={}s", step_us / 1_000_000 + 1);
        let (spans, step_us) = red_timed(&client, &url, n).await;
        print_red(hours, "spans", &spans, step_us);
    }
}

/// `/api/dependencies` (what the service map draws) over the last 1, 6 and 24 hours of a
/// store whose spans cover `spread_s` seconds from [`BASE_NS`], `n` times each: p50 and p99
/// in ms, and what the last answer counted.
async fn dependency_latencies(api: &str, spread_s: i64, n: usize) {
    let client = reqwest::Client::new();
    let end_ms = (BASE_NS as i64 + spread_s * 1_000_000_000) / 1_000_000;
    for hours in [1i64, 6, 24] {
        let url = format!(
            "{api}/api/dependencies?endTs={end_ms}&lookback={}",
            hours * 3_600_000
        );
        let mut ms = Vec::with_capacity(n);
        let mut last: Option<gauntlet_query_api::dependencies::Dependencies> = None;
        for _ in 0..n {
            let t = Instant::now();
            let r = client
                .get(&url)
                .send()
                .await
                .expect("dependencies answered");
            assert!(r.status().is_success(), "{url}: {}", r.status());
            last = Some(r.json().await.expect("a dependencies answer"));
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let last = last.expect("at least one query");
        let (p50, p99) = percentiles(ms);
        println!(
            "dependencies_{hours}h p50_ms={p50:.1} p99_ms={p99:.1} links={} calls={} truncated={}",
            last.data.len(),
            last.data.iter().map(|l| l.call_count).sum::<u64>(),
            last.truncated
        );
    }
}

/// `n` answers of `url`, sorted by milliseconds, with the last answer; and its step in µs.
async fn red_timed(
    client: &reqwest::Client,
    url: &str,
    n: usize,
) -> ((Vec<f64>, gauntlet_query_api::red::Red), i64) {
    let mut ms = Vec::with_capacity(n);
    let mut last: Option<gauntlet_query_api::red::Red> = None;
    for _ in 0..n {
        let t = Instant::now();
        let r = client.get(url).send().await.expect("RED answered");
        assert!(r.status().is_success(), "{url}: {}", r.status());
        last = Some(r.json().await.expect("a RED answer"));
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    let last = last.expect("at least one query");
    let step = last.step;
    ((ms, last), step)
}

fn print_red(
    hours: i64,
    path: &str,
    (ms, last): &(Vec<f64>, gauntlet_query_api::red::Red),
    step_us: i64,
) {
    let n = ms.len();
    let requests: u64 = last.series[0].points.iter().map(|p| p.requests).sum();
    println!(
        "red_{hours}h_{path} p50_ms={:.1} p99_ms={:.1} step_s={} requests={requests} truncated={}",
        ms[n / 2],
        ms[(n * 99).div_ceil(100) - 1],
        step_us / 1_000_000,
        last.truncated
    );
}

/// Patched log exports still decode, with new trace and correlation IDs and shifted times.
fn self_check_logs(reqs: &[Encoded], shape: Shape) {
    let r = &reqs[0];
    every_field_located(r, shape);
    let records = |bytes: Vec<u8>| {
        ExportLogsServiceRequest::decode(bytes.as_slice())
            .expect("patched logs request decodes")
            .resource_logs[0]
            .scope_logs[0]
            .log_records
            .clone()
    };
    let (a, b) = (records(fresh(r, 1, 0)), records(fresh(r, 2, 1_000)));
    assert_eq!(a.len(), SPANS_PER_REQUEST);
    assert_ne!(a[0].trace_id, b[0].trace_id);
    let cid = |l: &LogRecord| correlation_id(&l.attributes).expect("correlation ID");
    assert_ne!(cid(&a[0]), cid(&b[0]));
    assert_eq!(b[0].time_unix_nano, a[0].time_unix_nano + 1_000);
    assert_eq!(
        b[0].observed_time_unix_nano,
        a[0].observed_time_unix_nano + 1_000
    );
    println!("ingest bench self-check, logs ({}): passed", shape.name);
}
