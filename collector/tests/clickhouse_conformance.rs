//! The ClickHouse store against the conformance suite (`conformance/`), one test per case,
//! each in a database of its own on the real ClickHouse engine: chDB behind
//! `scripts/chdb_http.py` (started here, once per test binary), or the server at
//! `GAUNTLET_CLICKHOUSE_URL` when that is set. Plus what only this store has: the schema a
//! user's own OpenTelemetry Collector created, an incompatible table, the TTL.

mod conformance;

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use gauntlet_collector::rollup::BUCKET_NS;
use gauntlet_collector::store::clickhouse::{ClickHouseConfig, ClickHouseStore};
use gauntlet_collector::store::{Store, StoreError};

/// The engine every test of this binary talks to.
struct Engine {
    url: String,
    /// Held so the adapter lives as long as this process (it exits when stdin closes).
    _adapter: Option<Mutex<(Child, ChildStdin)>>,
    _dir: Option<tempfile::TempDir>,
}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        if let Ok(url) = std::env::var("GAUNTLET_CLICKHOUSE_URL") {
            return Engine {
                url,
                _adapter: None,
                _dir: None,
            };
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/chdb_http.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--data", dir.path().to_str().expect("utf-8"), "--exit-with-stdin"])
            // The engine lives in a static, never dropped: the adapter deletes the directory.
            .arg("--remove-data-on-exit")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs scripts/chdb_http.py (bash scripts/test.sh installs chdb)");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the adapter says where it listens");
        let url = line
            .trim()
            .strip_prefix("chdb-http listening on ")
            .unwrap_or_else(|| {
                panic!("chdb_http.py did not start ({line:?}): is chdb installed? bash scripts/test.sh installs it")
            })
            .to_string();
        Engine {
            url,
            _adapter: Some(Mutex::new((child, stdin))),
            _dir: Some(dir),
        }
    })
}

/// A fresh database on the engine, named after the test.
fn config(name: &str) -> ClickHouseConfig {
    let unique = format!(
        "gauntlet_{name}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos()
    );
    ClickHouseConfig::new(&engine().url, unique)
}

async fn open(name: &str) -> Arc<dyn Store> {
    Arc::new(ClickHouseStore::open(&config(name)).await.expect("open"))
}

macro_rules! clickhouse_conforms {
    ($($case:ident),* $(,)?) => {
        $(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let store = open(stringify!($case)).await;
            conformance::write_fixture(&store).await;
            conformance::$case(&store).await;
        }
        )*
    };
}

clickhouse_conforms!(
    services_and_operations,
    a_trace_joins_its_batches,
    typed_parts_read_back,
    summaries_count_each_trace_once,
    search_matches_jaeger_queries,
    logs_filter_and_page,
    late_logs_page_in_time_order,
    span_samples_for_aggregates,
    samples_carry_the_http_status,
    samples_carry_the_protocol,
    samples_by_service_version,
    rollups_agree_with_the_spans,
    edges_agree_with_the_spans,
    red_steps_count_what_the_samples_hold,
    correlation_spans_traces_and_logs,
    metrics_answer_promql,
    retention_by_size_drops_the_oldest,
);

/// Once the minutes of a window are passed, the dependencies answer from the edge rollups:
/// the same links as the spans give (also over windows with part minutes at their ends,
/// counted live), a pass redone stores nothing twice, and with the spans gone the rollups
/// alone still answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passed_minutes_answer_from_the_edge_rollups() {
    let mut config = config("edge_passes");
    config.edge_passes = false;
    let ch = Arc::new(ClickHouseStore::open(&config).await.expect("open"));
    let store: Arc<dyn Store> = ch.clone();
    let (first, spans) = conformance::call_spans();
    for chunk in spans.chunks(500) {
        let mut batch = gauntlet_collector::model::Batch::default();
        batch.spans.extend(chunk.iter().cloned());
        store.write(batch).await.expect("write");
    }
    let units = first / 6..(first + 720) / 6;
    for unit in units.clone() {
        ch.count_edges(unit).await.expect("pass");
    }
    ch.count_edges(units.start)
        .await
        .expect("the same pass again");
    conformance::edges_count_the_calls(&store, first).await;
    let window = (first * BUCKET_NS, (first + 720) * BUCKET_NS);
    let before = store
        .dependency_links(window.0, window.1)
        .await
        .expect("links");
    clickhouse::Client::default()
        .with_url(&config.url)
        .query(&format!("TRUNCATE TABLE {}.otel_traces", config.database))
        .execute()
        .await
        .expect("truncate");
    let after = store
        .dependency_links(window.0, window.1)
        .await
        .expect("links");
    assert!(before.links.len() >= 6, "{before:?}");
    assert_eq!(after, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_twice_uses_what_exists() {
    let config = config("reopen");
    let first: Arc<dyn Store> = Arc::new(ClickHouseStore::open(&config).await.expect("open"));
    conformance::write_fixture(&first).await;
    let again: Arc<dyn Store> = Arc::new(ClickHouseStore::open(&config).await.expect("reopen"));
    assert_eq!(
        again.services().await.expect("services"),
        ["gateway", "orders"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incompatible_table_is_reported_and_left_alone() {
    let config = config("incompatible");
    let client = clickhouse::Client::default().with_url(&config.url);
    client
        .query(&format!("CREATE DATABASE {}", config.database))
        .execute()
        .await
        .expect("database");
    client
        .query(&format!(
            "CREATE TABLE {}.otel_traces (Timestamp DateTime, TraceId UInt64) ENGINE = MergeTree ORDER BY Timestamp",
            config.database
        ))
        .execute()
        .await
        .expect("a table of another shape");
    let err = match ClickHouseStore::open(&config).await {
        Ok(_) => panic!("an otel_traces of another shape was accepted"),
        Err(e) => e,
    };
    let StoreError::Incompatible { reason, .. } = &err else {
        panic!("{err}");
    };
    assert!(
        reason.contains("otel_traces.Timestamp is DateTime, want DateTime64(9)"),
        "{reason}"
    );
    assert!(
        reason.contains("otel_traces.SpanName is missing"),
        "{reason}"
    );
    assert!(reason.contains("nothing was changed"), "{reason}");
    let still: u64 = client
        .query(&format!(
            "SELECT count() FROM system.columns WHERE database = '{}' AND table = 'otel_traces'",
            config.database
        ))
        .fetch_one()
        .await
        .expect("columns");
    assert_eq!(still, 2, "the user's table is as it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable() {
    let err =
        match ClickHouseStore::open(&ClickHouseConfig::new("http://127.0.0.1:9", "otel")).await {
            Ok(_) => panic!("nothing listens on port 9"),
            Err(e) => e,
        };
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
}

/// Rows another writer inserted (the OpenTelemetry Collector's exporter, by plain SQL as it
/// does, with its own spelling of kinds and statuses) are indexed by the materialized views
/// and answered like Gauntlet's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_another_writer_inserted_are_answered() {
    use gauntlet_collector::model::SpanKind;
    use gauntlet_collector::store::{LogQuery, SpanFilter, TraceQuery};
    let config = config("foreign");
    let store: Arc<dyn Store> = Arc::new(ClickHouseStore::open(&config).await.expect("open"));
    let client = clickhouse::Client::default()
        .with_url(&config.url)
        .with_database(&config.database);
    let trace = "0af7651916cd43dd8448eb211c80319c";
    client
        .query(&format!(
            "INSERT INTO otel_traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, \
             ServiceName, ResourceAttributes, SpanAttributes, Duration, StatusCode) VALUES \
             (now64(9), '{trace}', 'b7ad6b7169203331', '', 'GET /cart', 'Server', 'cart', \
              map('service.name', 'cart'), map('correlation.id', 'order-77', 'http.status_code', '500'), \
              2500000, 'Error'), \
             (now64(9) + 0.001, '{trace}', '00f067aa0ba902b7', 'b7ad6b7169203331', 'SELECT', \
              'SPAN_KIND_CLIENT', 'cart', map('service.name', 'cart'), map(), 900000, 'Unset')"
        ))
        .execute()
        .await
        .expect("insert as the exporter does");
    client
        .query(&format!(
            "INSERT INTO otel_logs (Timestamp, TraceId, SpanId, SeverityText, SeverityNumber, \
             ServiceName, Body, LogAttributes) VALUES (now64(9), '{trace}', 'b7ad6b7169203331', \
             'ERROR', 17, 'cart', 'cart is empty', map('correlation.id', 'order-77'))"
        ))
        .execute()
        .await
        .expect("insert a log");

    assert_eq!(store.services().await.expect("services"), ["cart"]);
    let id: [u8; 16] = const_hex::decode_to_array(trace).expect("hex");
    let traces = store.traces(&[id]).await.expect("traces");
    assert_eq!(traces.len(), 1, "found through otel_traces_trace_id_ts");
    let spans = &traces[0].1;
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].kind, SpanKind::Server);
    assert!(spans[0].is_error());
    assert_eq!(spans[1].kind, SpanKind::Client);
    assert_eq!(spans[1].parent_span_id, Some(spans[0].span_id));
    assert_eq!(spans[0].correlation_id.as_deref(), Some("order-77"));
    let find = |filters| TraceQuery {
        service: "cart".into(),
        filters,
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        store
            .find_trace_ids(&find(vec![SpanFilter::Error(true)]))
            .await
            .expect("search"),
        vec![id]
    );
    assert_eq!(
        store
            .find_trace_ids(&find(vec![SpanFilter::Kind(SpanKind::Client)]))
            .await
            .expect("search"),
        vec![id]
    );
    assert!(
        store
            .find_trace_ids(&find(vec![SpanFilter::Kind(SpanKind::Producer)]))
            .await
            .expect("search")
            .is_empty()
    );
    assert_eq!(
        store
            .correlated_trace_ids("order-77", 10)
            .await
            .expect("correlated"),
        vec![id],
        "indexed by the view over otel_traces"
    );
    let logs = store
        .logs(&LogQuery {
            correlation_id: Some("order-77".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("logs");
    assert_eq!(logs.logs.len(), 1, "indexed by the view over otel_logs");
    assert_eq!(logs.logs[0].record.body, "cart is empty");
}

/// Metric rows another writer (the OpenTelemetry Collector's exporter) inserted are read by
/// PromQL under their Prometheus names, cumulative and delta alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_rows_another_writer_inserted_are_answered() {
    use gauntlet_collector::promql::{Engine, Limits, Value};
    let config = config("foreign_metrics");
    let store: Arc<dyn Store> = Arc::new(ClickHouseStore::open(&config).await.expect("open"));
    let client = clickhouse::Client::default()
        .with_url(&config.url)
        .with_database(&config.database);
    for statement in [
        "INSERT INTO otel_metrics_gauge (ServiceName, ResourceAttributes, MetricName, MetricUnit, \
         Attributes, TimeUnix, Value) VALUES ('checkout', map('service.name', 'checkout'), \
         'cpu.utilization', '1', map('cpu', '0'), now64(9) - 1, 0.5)",
        "INSERT INTO otel_metrics_sum (ServiceName, ResourceAttributes, MetricName, MetricUnit, \
         Attributes, TimeUnix, Value, AggregationTemporality, IsMonotonic) VALUES \
         ('checkout', map('service.name', 'checkout'), 'orders', '{order}', map(), now64(9) - 31, 3, 1, true), \
         ('checkout', map('service.name', 'checkout'), 'orders', '{order}', map(), now64(9) - 16, 4, 1, true), \
         ('checkout', map('service.name', 'checkout'), 'orders', '{order}', map(), now64(9) - 1, 5, 1, true)",
        "INSERT INTO otel_metrics_histogram (ServiceName, ResourceAttributes, MetricName, MetricUnit, \
         Attributes, TimeUnix, Count, Sum, BucketCounts, ExplicitBounds, AggregationTemporality) VALUES \
         ('checkout', map('service.name', 'checkout'), 'http.server.request.duration', 's', \
          map('http.route', '/pay'), now64(9) - 1, 10, 2.5, [4, 5, 1], [0.1, 1.0], 2)",
    ] {
        client
            .query(statement)
            .execute()
            .await
            .expect("insert as the exporter does");
    }
    let engine = Engine {
        store,
        limits: Limits::default(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let one = |v: Value| match v {
        Value::Vector(s) if s.len() == 1 => (s[0].labels.clone(), s[0].value),
        other => panic!("{other:?}"),
    };
    let (labels, v) = one(engine
        .instant("cpu_utilization_ratio", now)
        .await
        .expect("gauge"));
    assert_eq!(v, 0.5);
    assert!(
        labels.contains(&("job".into(), "checkout".into())),
        "{labels:?}"
    );
    assert!(labels.contains(&("cpu".into(), "0".into())), "{labels:?}");
    // Deltas 3, 4, 5: running totals.
    assert_eq!(
        one(engine.instant("orders_total", now).await.expect("sum")).1,
        12.0
    );
    let (_, bucket) = one(engine
        .instant("http_server_request_duration_seconds_bucket{le=\"1\"}", now)
        .await
        .expect("histogram"));
    assert_eq!(bucket, 9.0);
}

/// A batch inserted again with its token (the spool retrying after an unclear failure) is
/// stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_inserted_twice_is_stored_once() {
    use gauntlet_collector::store::clickhouse::rows::{LogRow, SpanRow};
    use gauntlet_collector::store::clickhouse::spool::SpooledBatch;
    let store = ClickHouseStore::open(&config("dedup")).await.expect("open");
    let batch = SpooledBatch {
        token: "retry-me".into(),
        spans: vec![SpanRow::from_record(&conformance::span(
            9,
            1,
            None,
            "svc",
            "op",
            conformance::T0,
            10,
        ))],
        logs: vec![LogRow::from_record(&conformance::log(
            "svc",
            conformance::T0,
            9,
            "once",
        ))],
        metrics: Vec::new(),
    };
    store.insert_batch(&batch).await.expect("first");
    store.insert_batch(&batch).await.expect("again");
    let spans = store.traces(&[[9; 16]]).await.expect("traces");
    assert_eq!(spans[0].1.len(), 1, "the span once");
    let logs = store
        .logs(&gauntlet_collector::store::LogQuery {
            service: Some("svc".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("logs");
    assert_eq!(logs.logs.len(), 1, "the log once");
    let other = SpooledBatch {
        token: "another".into(),
        ..batch
    };
    store.insert_batch(&other).await.expect("another token");
    assert_eq!(
        store.traces(&[[9; 16]]).await.expect("traces")[0].1.len(),
        2,
        "a new token is a new insert (the check can fail)"
    );
}

/// Retention by age is ClickHouse's TTL on the rows' own timestamps: after a merge, rows older
/// than the TTL are gone and newer ones stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_is_the_tables_ttl() {
    let mut config = config("ttl");
    config.ttl = Some(std::time::Duration::from_secs(3600));
    let store: Arc<dyn Store> = Arc::new(ClickHouseStore::open(&config).await.expect("open"));
    conformance::write_fixture(&store).await;
    let mut fresh = gauntlet_collector::model::Batch::default();
    fresh.spans.push(conformance::span(
        8,
        1,
        None,
        "recent",
        "now",
        gauntlet_collector::model::now_ns(),
        1_000,
    ));
    store.write(fresh).await.expect("write");
    let client = clickhouse::Client::default()
        .with_url(&config.url)
        .with_database(&config.database);
    for table in ["otel_traces", "otel_logs"] {
        client
            .query(&format!("OPTIMIZE TABLE {table} FINAL"))
            .execute()
            .await
            .expect("merge");
    }
    assert!(
        store
            .traces(&[[1; 16], [3; 16]])
            .await
            .expect("traces")
            .is_empty(),
        "expired"
    );
    assert_eq!(
        store.traces(&[[8; 16]]).await.expect("traces").len(),
        1,
        "recent kept"
    );
    let logs = store
        .logs(&gauntlet_collector::store::LogQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("logs");
    assert!(logs.logs.is_empty(), "the fixture's logs (2023) expired");
}
