//! The conformance suite every [`Store`] implementation passes, as named cases: each takes
//! a store holding [`write_fixture`]'s data (two batches from two services, logs, a failed
//! span, a correlation ID) and checks one part of the contract. A store's tests run every
//! case on a fresh store of their own (see `store_conformance.rs` for SQLite and
//! `clickhouse_conformance.rs`); where a store declares a difference in
//! [`Store::capabilities`], the case says what each kind of store answers.
#![allow(dead_code)]

use std::sync::Arc;

use gauntlet_collector::model::{
    Attributes, Batch, Link, LogRecord, Resource, SpanKind, SpanRecord, StatusCode, TraceId, Value,
    now_ns,
};
use gauntlet_collector::rollup::sketch::RELATIVE_ACCURACY;
use gauntlet_collector::rollup::{BUCKET_NS, bucket_of};
use gauntlet_collector::store::{
    LogQuery, RetentionPolicy, RollupQuery, SampleQuery, SpanFilter, Store, TraceQuery,
};

pub const T0: i64 = 1_700_000_000_000_000_000;

pub fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource {
        service: service.into(),
        attributes: [("service.name", service), ("host.name", "h1")]
            .into_iter()
            .collect(),
    })
}

pub fn span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    service: &str,
    name: &str,
    start: i64,
    dur: i64,
) -> SpanRecord {
    SpanRecord {
        trace_id: [trace; 16],
        span_id: [id; 8],
        parent_span_id: parent.map(|p| [p; 8]),
        resource: resource(service),
        scope_name: "conformance".into(),
        scope_version: "1".into(),
        name: name.into(),
        kind: SpanKind::Server,
        start_ns: start,
        end_ns: start + dur,
        status_code: StatusCode::Unset,
        status_message: String::new(),
        attributes: [
            ("http.route", Value::from(format!("/{name}"))),
            ("attempt", Value::Int(1)),
        ]
        .into_iter()
        .collect(),
        events: Vec::new(),
        links: Vec::new(),
        correlation_id: None,
        trace_state: String::new(),
        flags: 1,
    }
}

pub fn log(service: &str, time: i64, severity: i32, body: &str) -> LogRecord {
    LogRecord {
        time_ns: time,
        observed_ns: time,
        resource: resource(service),
        scope_name: "conformance".into(),
        severity_number: severity,
        severity_text: String::new(),
        body: body.into(),
        attributes: Attributes::new(),
        trace_id: None,
        span_id: None,
        correlation_id: None,
        flags: 0,
        event_name: String::new(),
    }
}

/// Trace 1 arrives in two batches from two services; trace 2 in one; trace 3 fails.
pub async fn write_fixture(store: &Arc<dyn Store>) {
    let mut b1 = Batch::default();
    let mut root = span(1, 1, None, "gateway", "GET /orders", T0, 50_000_000);
    root.correlation_id = Some("c-1".into());
    b1.spans.push(span(
        2,
        9,
        None,
        "gateway",
        "GET /health",
        T0 + 5_000,
        1_000,
    ));
    b1.spans.push(root);
    b1.spans.push(span(
        1,
        2,
        Some(1),
        "gateway",
        "call orders",
        T0 + 1_000,
        40_000_000,
    ));
    let mut l1 = log("gateway", T0 + 5, 9, "request in");
    l1.trace_id = Some([1; 16]);
    b1.logs.push(l1);
    store.write(b1).await.expect("write batch 1");

    let mut b2 = Batch::default();
    let mut failing = span(3, 7, None, "orders", "POST /orders", T0 + 3_000, 2_000_000);
    failing.status_code = StatusCode::Error;
    failing.correlation_id = Some("c-1".into());
    failing.kind = SpanKind::Consumer;
    b2.spans.push(span(
        1,
        3,
        Some(2),
        "orders",
        "SELECT orders",
        T0 + 2_000,
        30_000_000,
    ));
    b2.spans.push(failing);
    let mut l2 = log("orders", T0 + 20, 17, "payment DECLINED for 42");
    l2.correlation_id = Some("c-1".into());
    b2.logs.push(l2);
    for i in 0..25 {
        b2.logs
            .push(log("orders", T0 + 100 + i, 5, &format!("debug line {i}")));
    }
    store.write(b2).await.expect("write batch 2");
}

/// Services and operations, by kind.
pub async fn services_and_operations(store: &Arc<dyn Store>) {
    assert_eq!(
        store.services().await.expect("services"),
        ["gateway", "orders"]
    );
    let ops = store.operations("orders", None).await.expect("ops");
    let names: Vec<&str> = ops.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["POST /orders", "SELECT orders"]);
    let consumer = store
        .operations("orders", Some(SpanKind::Consumer))
        .await
        .expect("ops");
    assert_eq!(consumer.len(), 1);
    assert_eq!(consumer[0].kind, SpanKind::Consumer);
    assert!(
        store
            .operations("nobody", None)
            .await
            .expect("ops")
            .is_empty()
    );
}

/// A trace assembled from both batches, ordered by start.
pub async fn a_trace_joins_its_batches(store: &Arc<dyn Store>) {
    let traces = store.traces(&[[1; 16], [42; 16]]).await.expect("traces");
    assert_eq!(traces.len(), 1, "unknown IDs are left out");
    let spans = &traces[0].1;
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["GET /orders", "call orders", "SELECT orders"]);
    assert_eq!(spans[2].resource.service, "orders");
    assert_eq!(spans[2].parent_span_id, Some([2; 8]));
    assert_eq!(spans[0].end_ns - spans[0].start_ns, 50_000_000);
    // A store in the OpenTelemetry ClickHouse schema keeps attribute values as text.
    let attempt = if store.capabilities().typed_attributes {
        "1"
    } else {
        r#""1""#
    };
    assert_eq!(
        spans[1].attributes.to_json(),
        format!(r#"{{"http.route":"/call orders","attempt":{attempt}}}"#)
    );
}

/// Every kind of attribute value, events, links and the status come back as written; a
/// store in the OpenTelemetry ClickHouse schema gives each value back as its text.
pub async fn typed_parts_read_back(store: &Arc<dyn Store>) {
    let mut map = Attributes::new();
    map.push("k", "v");
    let attributes: Attributes = [
        ("s", Value::from("x")),
        ("b", Value::Bool(true)),
        ("i", Value::Int(-7)),
        ("d", Value::Double(1.5)),
        ("a", Value::Array(vec![Value::Int(1), "two".into()])),
        ("m", Value::Map(map)),
    ]
    .into_iter()
    .collect();
    let mut written = span(77, 1, None, "typed", "all kinds", T0 + 9_000, 1_000);
    written.attributes = attributes.clone();
    written.status_code = StatusCode::Ok;
    written.status_message = "fine".into();
    written.events = vec![gauntlet_collector::model::Event {
        time_ns: T0 + 9_500,
        name: "retry".into(),
        attributes: [("attempt", Value::Int(2))].into_iter().collect(),
    }];
    written.links = vec![Link {
        trace_id: [78; 16],
        span_id: [2; 8],
        trace_state: "vendor=1".into(),
        attributes: [("why", "follows")].into_iter().collect(),
    }];
    let mut batch = Batch::default();
    batch.spans.push(written.clone());
    store.write(batch).await.expect("write");
    let traces = store.traces(&[[77; 16]]).await.expect("trace");
    let read = &traces[0].1[0];
    let as_text = |a: &Attributes| -> Attributes {
        a.iter().map(|(k, v)| (k, v.text().into_owned())).collect()
    };
    if store.capabilities().typed_attributes {
        assert_eq!(read.attributes, written.attributes);
        assert_eq!(read.events, written.events);
        assert_eq!(read.links, written.links);
    } else {
        assert_eq!(read.attributes, as_text(&written.attributes));
        assert_eq!(
            read.events[0].attributes,
            as_text(&written.events[0].attributes)
        );
        assert_eq!(read.links[0].trace_state, "vendor=1");
        assert_eq!(read.links[0].span_id, [2; 8]);
    }
    assert_eq!(read.events[0].time_ns, T0 + 9_500);
    assert_eq!(read.status_code, StatusCode::Ok);
    assert_eq!(read.status_message, "fine");
}

/// The summary: one row per trace, whatever number of commits brought it.
pub async fn summaries_count_each_trace_once(store: &Arc<dyn Store>) {
    let sums = store
        .trace_summaries(&[[1; 16], [3; 16], [42; 16]])
        .await
        .expect("summaries");
    assert_eq!(sums.len(), 2);
    assert_eq!(sums[0].span_count, 3);
    assert_eq!((sums[0].start_ns, sums[0].end_ns), (T0, T0 + 50_000_000));
    assert_eq!(
        sums[0].root,
        Some(("gateway".to_string(), "GET /orders".to_string()))
    );
    assert!(!sums[0].error);
    assert!(sums[1].error);
}

/// Search: service, operation, durations, time window, tags (attributes, resource,
/// pseudo-tags), limit.
pub async fn search_matches_jaeger_queries(store: &Arc<dyn Store>) {
    let find = |q: TraceQuery| {
        let store = store.clone();
        async move { store.find_trace_ids(&q).await.expect("search") }
    };
    let q = |service: &str| TraceQuery {
        service: service.into(),
        limit: 20,
        ..Default::default()
    };
    let ids: Vec<TraceId> = find(q("gateway")).await;
    assert_eq!(
        ids,
        vec![[2; 16], [1; 16]],
        "latest matching span first, one entry per trace"
    );
    assert_eq!(
        find(TraceQuery {
            limit: 1,
            ..q("gateway")
        })
        .await,
        vec![[2; 16]]
    );
    assert_eq!(
        find(TraceQuery {
            operation: Some("call orders".into()),
            ..q("gateway")
        })
        .await,
        vec![[1; 16]]
    );
    assert_eq!(
        find(TraceQuery {
            min_duration_ns: Some(45_000_000),
            ..q("gateway")
        })
        .await,
        vec![[1; 16]]
    );
    assert_eq!(
        find(TraceQuery {
            max_duration_ns: Some(5_000),
            ..q("gateway")
        })
        .await,
        vec![[2; 16]]
    );
    assert_eq!(
        find(TraceQuery {
            start_ns: Some(T0 + 4_000),
            end_ns: Some(T0 + 6_000),
            ..q("gateway")
        })
        .await,
        vec![[2; 16]]
    );
    let attr = |k: &str, v: &str| {
        vec![SpanFilter::Attribute {
            key: k.into(),
            value: v.into(),
        }]
    };
    assert_eq!(
        find(TraceQuery {
            filters: vec![SpanFilter::Error(true)],
            ..q("orders")
        })
        .await,
        vec![[3; 16]]
    );
    assert_eq!(
        find(TraceQuery {
            filters: attr("attempt", "1"),
            ..q("orders")
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        find(TraceQuery {
            filters: attr("host.name", "h1"),
            ..q("orders")
        })
        .await
        .len(),
        2
    );
    assert!(
        find(TraceQuery {
            filters: attr("attempt", "2"),
            ..q("orders")
        })
        .await
        .is_empty()
    );
    assert!(find(q("nobody")).await.is_empty());
}

/// Logs: newest first, filters, pages that join up.
pub async fn logs_filter_and_page(store: &Arc<dyn Store>) {
    let logs = |q: LogQuery| {
        let store = store.clone();
        async move { store.logs(&q).await.expect("logs") }
    };
    let page = logs(LogQuery {
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(page.logs.len(), 10);
    assert_eq!(page.logs[0].record.body, "debug line 24");
    let mut paged: Vec<i64> = page.logs.iter().map(|l| l.id).collect();
    let mut next = page.next;
    while let Some(cursor) = next {
        let p = logs(LogQuery {
            limit: 10,
            before: Some(cursor),
            ..Default::default()
        })
        .await;
        paged.extend(p.logs.iter().map(|l| l.id));
        next = p.next;
    }
    assert_eq!(paged.len(), 27, "pagination visits every log once");
    let all = logs(LogQuery {
        limit: 100,
        ..Default::default()
    })
    .await;
    let order: Vec<(i64, i64)> = all.logs.iter().map(|l| (l.record.time_ns, l.id)).collect();
    assert!(
        order.windows(2).all(|w| w[0] > w[1]),
        "newest first: {order:?}"
    );
    let ids: Vec<i64> = all.logs.iter().map(|l| l.id).collect();
    assert_eq!(paged, ids, "pages follow the one-page order");
    let errors = logs(LogQuery {
        severity_min: Some(17),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(errors.logs.len(), 1);
    let text = logs(LogQuery {
        text: Some("declined".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(text.logs.len(), 1, "text search ignores case");
    let like = logs(LogQuery {
        text: Some("%".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert!(like.logs.is_empty(), "% is a literal, not a wildcard");
    let by_trace = logs(LogQuery {
        trace_id: Some([1; 16]),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(by_trace.logs[0].record.body, "request in");
    let by_service = logs(LogQuery {
        service: Some("gateway".into()),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(by_service.logs.len(), 1);
    let in_window = logs(LogQuery {
        start_ns: Some(T0 + 100),
        end_ns: Some(T0 + 104),
        limit: 10,
        ..Default::default()
    })
    .await;
    assert_eq!(in_window.logs.len(), 5);
}

/// Logs that arrive late (older than logs already stored, as a delayed exporter sends
/// them) still page newest first, each once, with their trace and correlation IDs found.
pub async fn late_logs_page_in_time_order(store: &Arc<dyn Store>) {
    let base = T0 + 1_000_000;
    // Three exports whose times interleave: 0, 30, 60, ...; then 10, 40, ...; then 20, 50, ...
    for offset in [0, 10, 20] {
        let mut batch = Batch::default();
        for k in 0..4 {
            let t = base + offset + 30 * k;
            let mut l = log("late", t, 9, &format!("late {t}"));
            l.trace_id = Some([0xa0 + offset as u8; 16]);
            l.correlation_id = Some(format!("late-{offset}"));
            batch.logs.push(l);
        }
        store.write(batch).await.expect("write");
    }
    let query = |before, limit| LogQuery {
        service: Some("late".into()),
        before,
        limit,
        ..Default::default()
    };
    let all = store.logs(&query(None, 100)).await.expect("logs");
    let times: Vec<i64> = all.logs.iter().map(|l| l.record.time_ns - base).collect();
    let mut want: Vec<i64> = (0..12).map(|k| k * 10).collect();
    want.reverse();
    assert_eq!(times, want, "one page, newest first");
    let (mut paged, mut next) = (Vec::new(), None);
    loop {
        let page = store.logs(&query(next, 2)).await.expect("logs");
        paged.extend(page.logs.iter().map(|l| l.record.time_ns - base));
        match page.next {
            Some(cursor) => next = Some(cursor),
            None => break,
        }
    }
    assert_eq!(paged, want, "pages of two, newest first, each log once");
    for offset in [0u8, 10, 20] {
        let by_trace = store
            .logs(&LogQuery {
                trace_id: Some([0xa0 + offset; 16]),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("logs");
        assert_eq!(by_trace.logs.len(), 4, "trace of export +{offset}");
        let by_correlation = store
            .logs(&LogQuery {
                correlation_id: Some(format!("late-{offset}")),
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("logs");
        assert_eq!(
            by_correlation.logs.len(),
            4,
            "correlation of export +{offset}"
        );
    }
}

/// The spans aggregates read (RED, dependencies): by window, service, operation and kind,
/// newest first, with a limit that says when it cut; and the shared computations over them.
/// A sample carries the span's HTTP status (the current attribute, or the older one), so
/// RED can tell refused-as-too-many (429) from served.
pub async fn samples_carry_the_http_status(store: &Arc<dyn Store>) {
    let at = T0 + 1_000_000_000;
    let mut throttled = span(60, 1, None, "edge", "GET /api", at, 1_000);
    throttled
        .attributes
        .push("http.response.status_code", Value::Int(429));
    let mut old = span(61, 1, None, "edge", "GET /api", at + 1_000, 1_000);
    old.attributes.push("http.status_code", "200");
    let none = span(62, 1, None, "edge", "GET /api", at + 2_000, 1_000);
    let mut batch = Batch::default();
    batch.spans.extend([throttled, old, none]);
    store.write(batch).await.expect("write");
    let samples = store
        .span_samples(&SampleQuery {
            service: Some("edge".into()),
            start_ns: at,
            end_ns: at + 10_000,
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("samples");
    let statuses: Vec<Option<u16>> = samples.spans.iter().map(|s| s.http_status).collect();
    assert_eq!(statuses, [None, Some(200), Some(429)], "newest first");
}

/// RED's rollups agree with the spans they count: per step and operation the requests,
/// errors and throttled requests exactly, p50, p95 and p99 within the sketch's bound of the
/// exact nearest-rank percentile, in steps of a bucket, a minute, 10 minutes and an hour (the
/// tiers a store may keep). The spans come in six batches over the same buckets (so stored cells are
/// merged with new ones), from two versions, with client spans RED does not read; one version
/// can be asked alone.
pub async fn rollups_agree_with_the_spans(store: &Arc<dyn Store>) {
    let (first, spans) = write_rolled_spans(store).await;
    for per_step in [1, 6, 60, 360] {
        rollups_count_the_spans(store, first, per_step, &spans).await;
    }
}

/// Writes [`rolled_spans`] in six batches of 500, each over all of their buckets; returns the
/// first bucket and the spans.
pub async fn write_rolled_spans(store: &Arc<dyn Store>) -> (i64, Vec<SpanRecord>) {
    let (first, spans) = rolled_spans();
    for chunk in spans.chunks(500) {
        let mut batch = Batch::default();
        batch.spans.extend(chunk.iter().cloned());
        store.write(batch).await.expect("write");
    }
    (first, spans)
}

/// A deterministic generator (xorshift64): the same spans every run.
fn xorshift(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// 3,000 spans of service `rolled` over two hours from a whole hour, in twelve runs of six
/// buckets (so cells hold several spans), from two versions, some failed, some throttled,
/// some client spans; and the first bucket.
pub fn rolled_spans() -> (i64, Vec<SpanRecord>) {
    let first = bucket_of(T0) + 1_000;
    let first = first - first.rem_euclid(360);
    let versioned = |v: &str| {
        Arc::new(Resource {
            service: "rolled".into(),
            attributes: [("service.name", "rolled"), ("service.version", v)]
                .into_iter()
                .collect(),
        })
    };
    let (v1, v2) = (versioned("1"), versioned("2"));
    let mut next = xorshift(0x9e37_79b9_7f4a_7c15_u64);
    let mut spans = Vec::new();
    for i in 0..3_000u64 {
        let op = ["GET /a", "GET /b", "POST /c"][(next() % 3) as usize];
        let bucket = first + (next() % 12) as i64 * 60 + (next() % 6) as i64;
        let start = bucket * BUCKET_NS + (next() % BUCKET_NS as u64) as i64;
        let duration = (1_000.0 * 10f64.powf(6.0 * (next() % 10_000) as f64 / 10_000.0)) as i64;
        let mut s = span(1, 1, None, "rolled", op, start, duration);
        s.trace_id[..8].copy_from_slice(&i.to_be_bytes());
        s.span_id = (i + 1).to_be_bytes();
        s.resource = if i % 2 == 0 { v1.clone() } else { v2.clone() };
        if next().is_multiple_of(7) {
            s.status_code = StatusCode::Error;
        }
        if next().is_multiple_of(11) {
            s.attributes
                .push("http.response.status_code", Value::Int(429));
        }
        if next().is_multiple_of(5) {
            s.kind = SpanKind::Client;
        }
        spans.push(s);
    }
    (first, spans)
}

/// Checks RED's steps of `per_step` buckets from bucket `first` over two hours against the
/// spans, for both versions and for version 2 alone.
pub async fn rollups_count_the_spans(
    store: &Arc<dyn Store>,
    first: i64,
    per_step: i64,
    spans: &[SpanRecord],
) {
    let end = first + 720;
    for version in [None, Some("2")] {
        let got = store
            .red_steps(&RollupQuery {
                service: "rolled".into(),
                version: version.map(str::to_string),
                kinds: vec![SpanKind::Server, SpanKind::Consumer],
                buckets: (first, end),
                buckets_per_step: per_step,
                ..Default::default()
            })
            .await
            .expect("rollups");
        // (step, operation or the whole service) → requests, errors, throttled, durations.
        type Exact = (u64, u64, u64, Vec<i64>);
        let mut want: std::collections::BTreeMap<(u32, Option<String>), Exact> = Default::default();
        let asked = |s: &&SpanRecord| {
            s.kind == SpanKind::Server
                && (first..end).contains(&bucket_of(s.start_ns))
                && version.is_none_or(|v| {
                    s.resource.attributes.get("service.version") == Some(&Value::from(v))
                })
        };
        for s in spans.iter().filter(asked) {
            let step = ((bucket_of(s.start_ns) - first) / per_step) as u32;
            for op in [Some(s.name.clone()), None] {
                let cell = want.entry((step, op)).or_default();
                cell.0 += 1;
                cell.1 += u64::from(s.status_code == StatusCode::Error);
                cell.2 += u64::from(s.attributes.http_status() == Some(429));
                cell.3.push(s.duration_ns());
            }
        }
        assert_eq!(
            got.steps.len(),
            want.len(),
            "a row per step and operation, and per step"
        );
        assert!(!got.truncated);
        for row in &got.steps {
            let key = (row.step, row.operation.map(|o| got.name(o).to_string()));
            let (requests, errors, throttled, durations) = want.get_mut(&key).expect("a step");
            assert_eq!(
                (row.requests, row.errors, row.throttled),
                (*requests, *errors, *throttled),
                "{key:?}, version {version:?}, {per_step} buckets a step"
            );
            durations.sort_unstable();
            for (q, sketched) in [0.5, 0.95, 0.99].into_iter().zip(row.percentiles_ns) {
                let rank = ((q * durations.len() as f64).ceil() as usize).clamp(1, durations.len());
                let exact = durations[rank - 1] as f64;
                let sketched = sketched.expect("a percentile");
                assert!(
                    (sketched - exact).abs() <= exact * (RELATIVE_ACCURACY + 1e-9),
                    "{key:?} p{q}: {sketched} ns from the rollups, {exact} ns exact"
                );
            }
        }
    }
}

/// For every service, RED's steps from the store (rollups, or spans where a segment has none)
/// are what the same steps computed from its span samples are: equal counts, and the same
/// sketch, so equal percentiles.
pub async fn red_steps_count_what_the_samples_hold(store: &Arc<dyn Store>) {
    // Two hours from a whole hour, in steps of 3 buckets (the 10 s rows), a minute, 10
    // minutes and an hour (a store's tiers, where it has them).
    let first = bucket_of(T0) - 30;
    let first = first - first.rem_euclid(360);
    for per_step in [3, 6, 60, 360] {
        red_steps_count_what_the_samples_hold_in(store, (first, first + 720), per_step).await;
    }
}

async fn red_steps_count_what_the_samples_hold_in(
    store: &Arc<dyn Store>,
    buckets: (i64, i64),
    per_step: i64,
) {
    use gauntlet_collector::rollup::StepMerger;
    for service in store.services().await.expect("services") {
        let q = RollupQuery {
            service: service.clone(),
            kinds: vec![SpanKind::Server, SpanKind::Consumer],
            buckets,
            buckets_per_step: per_step,
            ..Default::default()
        };
        let got = store.red_steps(&q).await.expect("steps");
        let samples = store
            .span_samples(&q.samples(1_000_000))
            .await
            .expect("samples");
        let mut want = StepMerger::new(buckets.0, buckets.1, per_step);
        for s in &samples.spans {
            let op = want.name(samples.name(s.operation));
            want.add_span(op, s.start_ns, s.duration_ns, s.error, s.http_status);
        }
        let want = want.finish();
        // Operations by name (each answer numbers them in its own order).
        let named = |r: &gauntlet_collector::rollup::RedSteps| -> Vec<String> {
            let mut rows: Vec<String> = r
                .steps
                .iter()
                .map(|s| {
                    let op = s.operation.map(|o| r.name(o));
                    let counts = (s.requests, s.errors, s.throttled);
                    format!("{} {op:?} {counts:?} {:?}", s.step, s.percentiles_ns)
                })
                .collect();
            rows.sort();
            rows
        };
        assert_eq!(
            named(&got),
            named(&want),
            "{service}, {per_step} buckets a step"
        );
    }
}

/// A sample's protocol, when asked, by one rule in every store: `rpc.system`, else
/// `messaging.system`, else `http` for a span with an HTTP method (current or older
/// attribute), else none; not read when not asked.
pub async fn samples_carry_the_protocol(store: &Arc<dyn Store>) {
    let at = T0 + 1_500_000_000;
    let with = |k: u8, attributes: &[(&str, Value)]| {
        let mut s = span(90 + k, 1, None, "wire", "call", at + i64::from(k), 1_000);
        s.attributes = Attributes::default();
        for (key, value) in attributes {
            s.attributes.push(*key, value.clone());
        }
        s
    };
    let mut batch = Batch::default();
    batch.spans.extend([
        with(
            0,
            &[
                ("rpc.system", Value::from("jsonrpc")),
                ("http.request.method", Value::from("POST")),
            ],
        ),
        with(
            1,
            &[
                ("messaging.system", Value::from("rabbitmq")),
                ("rpc.system", Value::from("grpc")),
            ],
        ),
        with(2, &[("messaging.system", Value::from("rabbitmq"))]),
        with(3, &[("http.request.method", Value::from("GET"))]),
        with(4, &[("http.method", Value::from("GET"))]),
        with(5, &[("messaging.operation.type", Value::from("process"))]),
    ]);
    store.write(batch).await.expect("write");
    let protocols = |asked: bool| {
        let store = store.clone();
        async move {
            let got = store
                .span_samples(&SampleQuery {
                    service: Some("wire".into()),
                    start_ns: at,
                    end_ns: at + 100,
                    limit: 10,
                    protocols: asked,
                    ..Default::default()
                })
                .await
                .expect("samples");
            got.spans
                .iter()
                .rev()
                .map(|s| s.protocol.map(|p| got.name(p).to_string()))
                .collect::<Vec<_>>()
        }
    };
    let name = |p: &str| Some(p.to_string());
    assert_eq!(
        protocols(true).await,
        [
            name("jsonrpc"),
            name("grpc"),
            name("rabbitmq"),
            name("http"),
            name("http"),
            None
        ]
    );
    assert_eq!(protocols(false).await, [None, None, None, None, None, None]);
}

/// A canary's two versions of one service: samples of one version are the spans whose
/// resource says `service.version` is that version; a version nobody reports has none.
pub async fn samples_by_service_version(store: &Arc<dyn Store>) {
    let at = T0 + 2_000_000_000;
    let versioned = |version: &str| {
        Arc::new(Resource {
            service: "stock".into(),
            attributes: [
                ("service.name", "stock"),
                ("service.version", version),
                ("service.instance.id", version),
            ]
            .into_iter()
            .collect(),
        })
    };
    let mut batch = Batch::default();
    for (k, version) in ["v1", "v2", "v1", "v1", "v2"].into_iter().enumerate() {
        let mut s = span(
            70 + k as u8,
            1,
            None,
            "stock",
            "GET /products",
            at + k as i64,
            1_000,
        );
        s.resource = versioned(version);
        batch.spans.push(s);
    }
    // Another service reporting v2: not stock's.
    let mut other = span(80, 1, None, "edge", "GET /products", at + 9, 1_000);
    other.resource = Arc::new(Resource {
        service: "edge".into(),
        attributes: [("service.name", "edge"), ("service.version", "v2")]
            .into_iter()
            .collect(),
    });
    batch.spans.push(other);
    store.write(batch).await.expect("write");
    let starts = |version: &str| {
        let store = store.clone();
        let q = SampleQuery {
            service: Some("stock".into()),
            version: Some(version.into()),
            start_ns: at,
            end_ns: at + 100,
            limit: 10,
            ..Default::default()
        };
        async move {
            let got = store.span_samples(&q).await.expect("samples");
            got.spans
                .iter()
                .map(|s| s.start_ns - at)
                .collect::<Vec<i64>>()
        }
    };
    assert_eq!(starts("v1").await, [3, 2, 0]);
    assert_eq!(starts("v2").await, [4, 1]);
    assert!(starts("v3").await.is_empty(), "a version nobody reports");
}

pub async fn span_samples_for_aggregates(store: &Arc<dyn Store>) {
    let samples = |q: SampleQuery| {
        let store = store.clone();
        async move { store.span_samples(&q).await.expect("samples") }
    };
    let window = SampleQuery {
        start_ns: T0,
        end_ns: T0 + 10_000,
        limit: 100,
        ..Default::default()
    };
    let all = samples(window.clone()).await;
    let seen: Vec<(&str, &str, i64)> = all
        .spans
        .iter()
        .map(|s| (all.name(s.service), all.name(s.operation), s.start_ns - T0))
        .collect();
    assert_eq!(
        seen,
        [
            ("gateway", "GET /health", 5_000),
            ("orders", "POST /orders", 3_000),
            ("orders", "SELECT orders", 2_000),
            ("gateway", "call orders", 1_000),
            ("gateway", "GET /orders", 0),
        ],
        "every span of the window, newest first"
    );
    assert!(!all.truncated);
    let select = &all.spans[2];
    assert_eq!(select.trace_id, [1; 16]);
    assert_eq!(select.span_id, [3; 8]);
    assert_eq!(select.parent_span_id, Some([2; 8]));
    assert_eq!(select.duration_ns, 30_000_000);
    assert!(!select.error);
    assert_eq!(all.spans[4].parent_span_id, None);
    let failing = &all.spans[1];
    assert!(failing.error);
    assert_eq!(failing.kind, SpanKind::Consumer);

    let served = samples(SampleQuery {
        service: Some("orders".into()),
        operation: Some("POST /orders".into()),
        kinds: vec![SpanKind::Server, SpanKind::Consumer],
        ..window.clone()
    })
    .await;
    assert_eq!(served.spans.len(), 1);
    assert_eq!(served.name(served.spans[0].operation), "POST /orders");
    let consumers = samples(SampleQuery {
        kinds: vec![SpanKind::Consumer],
        ..window.clone()
    })
    .await;
    assert_eq!(consumers.spans.len(), 1);
    let narrow = samples(SampleQuery {
        start_ns: T0 + 2_500,
        end_ns: T0 + 4_000,
        ..window.clone()
    })
    .await;
    assert_eq!(narrow.spans.len(), 1, "only what started in the window");
    let newest = samples(SampleQuery {
        limit: 2,
        ..window.clone()
    })
    .await;
    assert!(newest.truncated, "more matched than the limit");
    let starts: Vec<i64> = newest.spans.iter().map(|s| s.start_ns - T0).collect();
    assert_eq!(starts, [5_000, 3_000]);
    for unknown in [
        SampleQuery {
            service: Some("nobody".into()),
            ..window.clone()
        },
        SampleQuery {
            service: Some("orders".into()),
            operation: Some("no such operation".into()),
            ..window.clone()
        },
    ] {
        assert!(samples(unknown).await.spans.is_empty());
    }

    // The shared computations give every store the same answers.
    let links = gauntlet_collector::query::dependencies::links(&all);
    let edges: Vec<(&str, &str, u64, u64, f64)> = links
        .iter()
        .map(|l| {
            (
                l.parent.as_str(),
                l.child.as_str(),
                l.call_count,
                l.error_count,
                l.p99_ms,
            )
        })
        .collect();
    assert_eq!(edges, [("gateway", "orders", 1, 0, 30.0)]);
    let red = gauntlet_collector::query::red::series(&served, false, T0, T0 + 10_000, 5_000);
    let points: Vec<(u64, u64, Option<f64>)> = red[0]
        .points
        .iter()
        .map(|p| (p.requests, p.errors, p.p99_ms))
        .collect();
    assert_eq!(points, [(1, 1, Some(2.0)), (0, 0, None)]);

    // An asynchronous hop: a consumer's new trace linked to the producing span in orders.
    let mut consumer = span(
        5,
        1,
        None,
        "notifications",
        "order.placed process",
        T0 + 6_000,
        4_000_000,
    );
    consumer.kind = SpanKind::Consumer;
    consumer.links = vec![Link {
        trace_id: [1; 16],
        span_id: [3; 8],
        trace_state: String::new(),
        attributes: Attributes::new(),
    }];
    let mut batch = Batch::default();
    batch.spans.push(consumer);
    store.write(batch).await.expect("write");
    let all = samples(window).await;
    assert_eq!(all.spans[0].link, Some(([1; 16], [3; 8])), "its first link");
    assert!(all.spans[1..].iter().all(|s| s.link.is_none()));
    let links = gauntlet_collector::query::dependencies::links(&all);
    let edges: Vec<(&str, &str, u64)> = links
        .iter()
        .map(|l| (l.parent.as_str(), l.child.as_str(), l.call_count))
        .collect();
    assert_eq!(
        edges,
        [("gateway", "orders", 1), ("orders", "notifications", 1)]
    );
}

/// Correlation: the traces and logs sharing an ID.
pub async fn correlation_spans_traces_and_logs(store: &Arc<dyn Store>) {
    let corr = store
        .correlated_trace_ids("c-1", 10)
        .await
        .expect("correlated");
    assert_eq!(corr, vec![[1; 16], [3; 16]], "ordered by trace start");
    let corr_logs = store
        .correlated_logs("c-1", &corr, 100)
        .await
        .expect("logs");
    let bodies: Vec<&str> = corr_logs.iter().map(|l| l.body.as_str()).collect();
    assert_eq!(bodies, ["request in", "payment DECLINED for 42"]);
    assert!(
        store
            .correlated_trace_ids("c-404", 10)
            .await
            .expect("none")
            .is_empty()
    );
}

/// Runs retention by age (received before `cut`) until it has nothing more to do.
pub async fn prune_older_than(store: &Arc<dyn Store>, cut: i64) {
    let policy = RetentionPolicy {
        older_than_ns: Some(cut),
        max_bytes: None,
    };
    let mut rounds = 0;
    while store.prune(policy).await.expect("prune").more {
        rounds += 1;
        assert!(rounds < 100, "retention finishes");
    }
}

/// Retention by age: only what was received before the cut goes.
pub async fn retention_by_age_keeps_what_came_after(store: &Arc<dyn Store>) {
    let find = |q: TraceQuery| {
        let store = store.clone();
        async move { store.find_trace_ids(&q).await.expect("search") }
    };
    let q = |service: &str| TraceQuery {
        service: service.into(),
        limit: 20,
        ..Default::default()
    };
    let logs = |q: LogQuery| {
        let store = store.clone();
        async move { store.logs(&q).await.expect("logs") }
    };
    let cut = now_ns();
    let mut b3 = Batch::default();
    b3.spans.push(span(4, 1, None, "late", "late op", T0, 1));
    store.write(b3).await.expect("write batch 3");
    prune_older_than(store, cut).await;
    assert!(
        store
            .traces(&[[1; 16], [2; 16], [3; 16]])
            .await
            .expect("traces")
            .is_empty()
    );
    assert!(
        logs(LogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .logs
        .is_empty()
    );
    assert!(
        store
            .correlated_trace_ids("c-1", 10)
            .await
            .expect("none")
            .is_empty()
    );
    assert_eq!(store.traces(&[[4; 16]]).await.expect("kept").len(), 1);
    assert_eq!(find(q("late")).await, vec![[4; 16]]);
    // RED counts what is kept: the deleted spans left their rollups (and tiers) too.
    red_steps_count_what_the_samples_hold(store).await;
}

/// Retention by size: over the limit, the oldest goes until under it.
pub async fn retention_by_size_drops_the_oldest(store: &Arc<dyn Store>) {
    let all = [[1; 16], [2; 16], [3; 16]];
    assert_eq!(store.traces(&all).await.expect("traces").len(), 3);
    let policy = RetentionPolicy {
        older_than_ns: None,
        max_bytes: Some(1),
    };
    let mut rounds = 0;
    while store.prune(policy).await.expect("prune").more {
        rounds += 1;
        assert!(rounds < 100, "retention finishes");
    }
    assert!(store.traces(&all).await.expect("traces").is_empty());
    let left = store
        .logs(&LogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("logs");
    assert!(left.logs.is_empty(), "the logs went too");
    store.check_ready().await.expect("still ready");
    assert!(store.disk_usage().await.expect("usage") > 0);
}

/// One metric point of the metrics case, named as ingest names it.
fn metric_point(
    name: &str,
    unit: &str,
    kind: gauntlet_collector::model::MetricKind,
    temporality: gauntlet_collector::model::Temporality,
    attrs: &[(&str, &str)],
    time_ns: i64,
    value: gauntlet_collector::model::PointValue,
) -> gauntlet_collector::model::MetricPoint {
    use gauntlet_collector::model::{MetricPoint, MetricSeries};
    use gauntlet_collector::promql::naming;
    let resource = resource("orders");
    let attributes: Attributes = attrs.iter().map(|(k, v)| (*k, *v)).collect();
    MetricPoint {
        series: Arc::new(MetricSeries {
            name: name.into(),
            description: format!("{name} of the conformance case"),
            unit: unit.into(),
            kind,
            temporality,
            prometheus_name: naming::metric_name(name, unit, kind),
            labels: naming::series_labels(&resource, &attributes),
            resource,
            scope_name: "conformance".into(),
            scope_version: "1".into(),
            attributes,
        }),
        start_ns: T0,
        time_ns,
        value,
        no_value: false,
        exemplars: Vec::new(),
        min_max: (None, None),
    }
}

/// Metrics: every kind written through the store, read back by PromQL alike on every store
/// (cumulative and delta counters, a gauge that goes stale, a histogram, a summary).
pub async fn metrics_answer_promql(store: &Arc<dyn Store>) {
    use gauntlet_collector::model::{MetricKind as K, PointValue as V, Temporality as T};
    use gauntlet_collector::promql::{Engine, Limits, Range, Value as Q};
    let step = 15_000_000_000i64;
    let mut batch = Batch::default();
    for i in 0..8i64 {
        let t = T0 + (i + 1) * step;
        let n = i as f64;
        batch.metrics.push(metric_point(
            "app.requests",
            "{request}",
            K::Counter,
            T::Cumulative,
            &[("route", "/a")],
            t,
            V::Number(10.0 * (n + 1.0)),
        ));
        batch.metrics.push(metric_point(
            "jobs.done",
            "",
            K::Counter,
            T::Delta,
            &[],
            t,
            V::Number(2.0),
        ));
        let mut gauge = metric_point("queue.depth", "", K::Gauge, T::None, &[], t, V::Number(n));
        gauge.no_value = i == 7;
        batch.metrics.push(gauge);
        let mut latency = metric_point(
            "latency",
            "s",
            K::Histogram,
            T::Cumulative,
            &[],
            t,
            V::Histogram {
                count: 4 * (i as u64 + 1),
                sum: Some(n),
                bounds: vec![0.1, 1.0],
                counts: vec![i as u64 + 1, 2 * (i as u64 + 1), i as u64 + 1],
            },
        );
        if i == 3 {
            latency.exemplars.push(gauntlet_collector::model::Exemplar {
                time_ns: t - 1_000_000,
                value: 0.42,
                trace_id: Some([7; 16]),
                span_id: Some([8; 8]),
                attributes: Attributes::new(),
            });
        }
        batch.metrics.push(latency);
        batch.metrics.push(metric_point(
            "rpc",
            "ms",
            K::Summary,
            T::None,
            &[],
            t,
            V::Summary {
                count: i as u64 + 1,
                sum: n,
                quantiles: vec![(0.5, 3.0 + n), (0.99, 9.0 + n)],
            },
        ));
    }
    store.write(batch).await.expect("metrics written");
    let engine = Engine {
        store: store.clone(),
        limits: Limits::default(),
    };
    let at = (T0 + 8 * step) / 1_000_000;
    let scalar = |v: Q| match v {
        Q::Vector(s) if s.len() == 1 => s[0].value,
        other => panic!("one sample wanted, got {other:?}"),
    };
    // A store that lists series once in a while (ClickHouse) answers within seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while engine
        .instant("app_requests_total", at)
        .await
        .map(|v| matches!(v, Q::Vector(s) if s.is_empty()))
        .unwrap_or(true)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the metrics never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let ask = |q: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .instant(q, at)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"))
        }
    };
    assert_eq!(
        scalar(ask("app_requests_total{route=\"/a\", job=\"orders\"}").await),
        80.0
    );
    // Deltas of 2, eight of them: a running total.
    assert_eq!(scalar(ask("jobs_done_total").await), 16.0);
    // 14 over the 105 s sampled, extrapolated back to zero at the window start: 16.
    assert_eq!(scalar(ask("increase(jobs_done_total[2m])").await), 16.0);
    // The gauge's last point says "no recorded value": stale, so absent.
    assert_eq!(ask("queue_depth").await, Q::Vector(Vec::new()));
    assert_eq!(scalar(ask("latency_seconds_bucket{le=\"1\"}").await), 24.0);
    assert_eq!(
        scalar(ask("latency_seconds_bucket{le=\"+Inf\"}").await),
        32.0
    );
    assert_eq!(scalar(ask("latency_seconds_count").await), 32.0);
    assert_eq!(scalar(ask("latency_seconds_sum").await), 7.0);
    assert_eq!(
        scalar(ask("histogram_quantile(0.5, latency_seconds_bucket)").await),
        0.55
    );
    assert_eq!(
        scalar(ask("rpc_milliseconds{quantile=\"0.99\"}").await),
        16.0
    );
    assert_eq!(scalar(ask("rpc_milliseconds_count").await), 8.0);
    let series = engine
        .range(
            "rate(app_requests_total[1m])",
            Range {
                start_ms: at - 60_000,
                end_ms: at,
                step_ms: 30_000,
            },
        )
        .await
        .expect("range");
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].points.len(), 3);
    for (_, v) in &series[0].points {
        assert!((v - 10.0 / 15.0).abs() < 1e-9, "{series:?}");
    }
    // The exemplar, under the series' bucket name, with its trace.
    let expr = gauntlet_collector::promql::parse("latency_seconds_bucket").expect("PromQL");
    let found = gauntlet_collector::promql::select::exemplars(&engine, &expr, T0 / 1_000_000, at)
        .await
        .expect("exemplars");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .0
            .contains(&("__name__".to_string(), "latency_seconds_bucket".to_string()))
    );
    let e = &found[0].1;
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].value, e[0].trace_id, e[0].span_id),
        (0.42, Some([7; 16]), Some([8; 8]))
    );
    assert_eq!(e[0].time_ms, (T0 + 4 * step - 1_000_000) / 1_000_000);
    let kinds: Vec<(String, K)> = {
        let mut k: Vec<_> = store
            .metric_series()
            .await
            .expect("series")
            .iter()
            .map(|s| (s.prometheus_name.clone(), s.kind))
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        kinds,
        vec![
            ("app_requests_total".into(), K::Counter),
            ("jobs_done_total".into(), K::Counter),
            ("latency_seconds".into(), K::Histogram),
            ("queue_depth".into(), K::Gauge),
            ("rpc_milliseconds".into(), K::Summary),
        ]
    );
}

/// The calls between services a store answers for a window ([`Store::dependency_links`],
/// from edge rollups where it keeps them) are those the raw query counts from the window's
/// spans: calls, errors and protocols exactly, p99 within the sketch's bound. The spans of
/// [`call_spans`] come in batches of 250, a trace's children often before its parent and in
/// an earlier batch. Windows: the two hours, the first hour, and one from three buckets in
/// that cuts across every tier's rows.
pub async fn edges_agree_with_the_spans(store: &Arc<dyn Store>) {
    let (first, spans) = call_spans();
    for chunk in spans.chunks(250) {
        let mut batch = Batch::default();
        batch.spans.extend(chunk.iter().cloned());
        store.write(batch).await.expect("write");
    }
    edges_count_the_calls(store, first).await;
}

/// Checks [`edges_agree_with_the_spans`]' windows from bucket `first`.
pub async fn edges_count_the_calls(store: &Arc<dyn Store>, first: i64) {
    for (from, to) in [
        (first, first + 720),
        (first, first + 360),
        (first + 3, first + 701),
    ] {
        let (start, end) = (from * BUCKET_NS, to * BUCKET_NS);
        let got = store.dependency_links(start, end).await.expect("links");
        let raw = gauntlet_collector::query::dependencies::from_spans(&**store, start, end)
            .await
            .expect("raw");
        assert!(!got.truncated && !raw.truncated);
        assert!(raw.links.len() >= 6, "{:?}", raw.links);
        assert_eq!(got.links.len(), raw.links.len(), "{from}..{to}: {got:?}");
        for (g, r) in got.links.iter().zip(&raw.links) {
            let counts = |l: &gauntlet_query_api::dependencies::DependencyLink| {
                (
                    l.parent.clone(),
                    l.child.clone(),
                    l.call_count,
                    l.error_count,
                )
            };
            assert_eq!(counts(g), counts(r), "{from}..{to}");
            assert_eq!(g.protocols, r.protocols, "{from}..{to}: {g:?}");
            let bound = r.p99_ms * RELATIVE_ACCURACY * 1.000_001;
            assert!(
                (g.p99_ms - r.p99_ms).abs() <= bound,
                "{from}..{to}: {g:?} vs {r:?}"
            );
        }
    }
}

/// 1,500 traces over two hours from a whole hour: a gateway span calling orders (over HTTP
/// or JSON-RPC) or payments (gRPC), whose spans have an internal child that calls stock;
/// some calls failed; every fifth trace is followed by a `billing` consumer trace linked to
/// its orders span (an asynchronous hop over RabbitMQ). A trace's spans start in one bucket
/// (so a window of whole buckets holds both sides of each call). Children are listed before
/// their parents in every other trace. Returns the first bucket and the spans.
pub fn call_spans() -> (i64, Vec<SpanRecord>) {
    let first = bucket_of(T0) + 1_000;
    let first = first - first.rem_euclid(360);
    let mut next = xorshift(0x2545_f491_4f6c_dd1d_u64);
    let mut spans = Vec::new();
    for t in 0..1_500u64 {
        let bucket = first + (next() % 720) as i64;
        let at = bucket * BUCKET_NS + 1_000_000 + (next() % 1_000_000_000) as i64;
        let (callee, wire): (&str, &[(&str, &str)]) = match next() % 3 {
            0 => ("orders", &[("http.request.method", "GET")]),
            1 => (
                "orders",
                &[("rpc.system", "jsonrpc"), ("http.method", "POST")],
            ),
            _ => ("payments", &[("rpc.system", "grpc")]),
        };
        let ms = |n: u64| (1 + n % 900) as i64 * 1_000_000;
        let id = |k: u64| (t * 8 + k + 1).to_be_bytes();
        let mut make = |k: u64, parent: Option<u64>, service: &str, attrs: &[(&str, &str)]| {
            let mut s = span(1, 1, None, service, "op", at + k as i64, ms(next()));
            s.trace_id[..8].copy_from_slice(&t.to_be_bytes());
            s.span_id = id(k);
            s.parent_span_id = parent.map(id);
            s.attributes = attrs.iter().map(|(k, v)| (*k, Value::from(*v))).collect();
            if next().is_multiple_of(9) {
                s.status_code = StatusCode::Error;
            }
            s
        };
        let mut trace = vec![
            make(0, None, "gateway", &[]),
            make(1, Some(0), callee, wire),
            make(2, Some(1), callee, &[]),
            make(3, Some(2), "stock", &[("http.request.method", "PUT")]),
        ];
        if t % 5 == 0 {
            let mut consumer = make(4, None, "billing", &[("messaging.system", "rabbitmq")]);
            consumer.trace_id[8] = 0xbb;
            consumer.links.push(Link {
                trace_id: trace[1].trace_id,
                span_id: trace[1].span_id,
                trace_state: String::new(),
                attributes: Attributes::default(),
            });
            trace.push(consumer);
        }
        if t % 2 == 0 {
            trace.reverse();
        }
        spans.extend(trace);
    }
    (first, spans)
}
