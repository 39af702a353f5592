//! The SQLite store against the conformance suite (`conformance/`), one test per case, and
//! what only a file-backed store has: reopening, and the collector's background retention.

mod conformance;

use std::sync::Arc;

use conformance::{T0, log, span};
use gauntlet_collector::model::Batch;
use gauntlet_collector::store::schema::SEGMENT_VERSION;
use gauntlet_collector::store::sqlite::{DB_FILE, SegmentInfo, SqliteConfig, SqliteStore};
use gauntlet_collector::store::{LogQuery, Store, TraceQuery};

/// One test per conformance case, each on a fresh SQLite store holding the fixture: once
/// with the default segments (the fixture fits in the open one), once with segments of two
/// rows, so that the fixture is spread over sealed, sealing and open segments and every
/// answer is merged from several files.
macro_rules! sqlite_conforms {
    ($($case:ident),* $(,)?) => {
        mod one_segment {
            use super::*;
            $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let dir = tempfile::tempdir().expect("tempdir");
                let store: Arc<dyn Store> =
                    Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path())).expect("open"));
                conformance::write_fixture(&store).await;
                conformance::$case(&store).await;
            }
            )*
        }
        mod many_segments {
            use super::*;
            $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let dir = tempfile::tempdir().expect("tempdir");
                let sqlite = Arc::new(SqliteStore::open(&tiny_segments(dir.path())).expect("open"));
                let store: Arc<dyn Store> = sqlite.clone();
                conformance::write_fixture(&store).await;
                let files = sqlite.segments().len();
                assert!(files >= 3, "the fixture spans {files} segments");
                conformance::$case(&store).await;
            }
            )*
        }
    };
}

fn tiny_segments(dir: &std::path::Path) -> SqliteConfig {
    let mut config = SqliteConfig::new(dir);
    config.segments.rows = 2;
    config
}

sqlite_conforms!(
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
    retention_by_age_keeps_what_came_after,
    retention_by_size_drops_the_oldest,
);

/// Every store kept in `tests/fixtures/store-vN/` (written by
/// `cargo run -p gauntlet-collector --example store_fixture -- DIR` with schema version N: up
/// to version 2 one file, from version 3 the catalog and its `segments/`) opens with this
/// build and answers the read cases as a fresh store does, and takes writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_files_written_by_earlier_versions_open_and_answer() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut opened = Vec::new();
    for entry in std::fs::read_dir(&fixtures).expect("tests/fixtures") {
        let kept = entry.expect("entry").path();
        if !kept.join(DB_FILE).is_file() {
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(&kept, dir.path());
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path())).expect("opens"));
        conformance::services_and_operations(&store).await;
        conformance::a_trace_joins_its_batches(&store).await;
        conformance::summaries_count_each_trace_once(&store).await;
        conformance::search_matches_jaeger_queries(&store).await;
        conformance::logs_filter_and_page(&store).await;
        conformance::correlation_spans_traces_and_logs(&store).await;
        conformance::span_samples_for_aggregates(&store).await;
        // Segments of formats before 5 have no rollups: RED reads their spans; format 5 has
        // no tiers: RED reads its 10 s rows, whatever the step.
        conformance::red_steps_count_what_the_samples_hold(&store).await;
        let mut b = Batch::default();
        b.spans
            .push(span(9, 1, None, "after-upgrade", "op", T0, 10));
        store.write(b).await.expect("writes");
        assert_eq!(store.traces(&[[9; 16]]).await.expect("read").len(), 1);
        opened.push(kept.file_name().map(|n| n.to_string_lossy().to_string()));
    }
    for version in [
        "store-v2",
        "store-v3",
        "store-v3-sealed",
        "store-v3-format2-sealed",
        "store-v3-format3-sealed",
        "store-v3-format4-sealed",
        "store-v3-format5-sealed",
        "store-v3-format8",
    ] {
        assert!(opened.contains(&Some(version.to_string())), "{opened:?}");
    }
}

/// Segments of format 1 that a stop left sealing (their `CREATE INDEX` not run yet) are
/// brought to format 2 on open and sealed with key tables; they answer as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_1_segments_left_sealing_are_sealed_with_key_tables() {
    let (_dir, store) = open_fixture("store-v3-sealed", |dir| {
        rusqlite::Connection::open(dir.join(DB_FILE))
            .expect("catalog")
            .execute("UPDATE segments SET state = 1 WHERE state = 2", [])
            .expect("unseal");
    });
    let segments = sealed(&store).await;
    // The fixture's open segment (empty, format 1) is sealed too; a fourth one opens.
    assert_eq!(segments.len(), 4, "{segments:?}");
    for (i, s) in segments[..3].iter().enumerate() {
        assert_eq!(user_version(&s.path), 2, "{s:?}");
        assert_eq!(key_rows(&s.path).0 != 0, i < 2, "{s:?}");
    }
    assert_eq!(user_version(&segments[3].path), SEGMENT_VERSION);
    let store: Arc<dyn Store> = store;
    conformance::a_trace_joins_its_batches(&store).await;
    conformance::correlation_spans_traces_and_logs(&store).await;
}

/// The open segment of a store written before segment format 3 (here of format 1, from the
/// `store-v3` fixture) is sealed in its own format on open; new rows go to a new segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_segment_of_an_older_format_is_sealed_and_rows_go_to_a_new_one() {
    let (_dir, store) = open_fixture("store-v3", |_| {});
    let segments = sealed(&store).await;
    assert_eq!(segments.len(), 2, "{segments:?}");
    assert!(segments[0].sealed);
    assert_eq!(user_version(&segments[0].path), 2);
    assert_ne!(
        key_rows(&segments[0].path),
        (0, 0),
        "sealed with key tables"
    );
    assert!(!segments[1].sealed);
    assert_eq!(user_version(&segments[1].path), SEGMENT_VERSION);
    let store: Arc<dyn Store> = store;
    conformance::a_trace_joins_its_batches(&store).await;
    conformance::correlation_spans_traces_and_logs(&store).await;
}

/// Runs of one trace written by consecutive commits touch (the first commit ends with the
/// trace, the next starts with it): its spans are read once, its totals counted once, with
/// the lookups of the open segment, of sealed segments, and rebuilt after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_of_a_trace_that_touch_are_read_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    for config in [
        SqliteConfig::new(dir.path()),
        tiny_segments(&dir.path().join("tiny")),
    ] {
        {
            let store = SqliteStore::open(&config).expect("open");
            let mut first = Batch::default();
            first.spans.push(span(1, 1, None, "svc", "op", T0, 10));
            let mut root = span(5, 1, None, "svc", "root", T0, 50);
            root.correlation_id = Some("c-5".into());
            first.spans.push(root);
            store.write(first).await.expect("write");
            let mut second = Batch::default();
            for id in 2..=3u8 {
                let mut child = span(5, id, Some(1), "svc", "child", T0 + i64::from(id), 10);
                child.correlation_id = Some("c-5".into());
                second.spans.push(child);
            }
            second.spans.push(span(9, 1, None, "svc", "op", T0, 10));
            store.write(second).await.expect("write");
            trace_5_is_read_once(&store).await;
        }
        let store = SqliteStore::open(&config).expect("reopen");
        trace_5_is_read_once(&store).await;
    }
}

async fn trace_5_is_read_once(store: &SqliteStore) {
    let traces = store.traces(&[[5; 16]]).await.expect("read");
    assert_eq!(traces.len(), 1);
    let ids: Vec<u8> = traces[0].1.iter().map(|s| s.span_id[0]).collect();
    assert_eq!(ids, vec![1, 2, 3], "each span once");
    let summaries = store.trace_summaries(&[[5; 16]]).await.expect("summaries");
    assert_eq!(summaries[0].span_count, 3);
    assert_eq!(summaries[0].root, Some(("svc".into(), "root".into())));
    assert_eq!((summaries[0].start_ns, summaries[0].end_ns), (T0, T0 + 50));
    assert_eq!(
        store.correlated_trace_ids("c-5", 10).await.expect("c-5"),
        vec![[5; 16]]
    );
    assert_eq!(store.traces(&[[1; 16]]).await.expect("read")[0].1.len(), 1);
    assert_eq!(store.traces(&[[9; 16]]).await.expect("read")[0].1.len(), 1);
}

/// A search that needs many spans of the open segment takes them from its map a page at a
/// time (pages grow from 32 entries) and gets the newest traces, in order; the same once the
/// spans are in sealed segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_walks_many_spans_newest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    for config in [
        SqliteConfig::new(dir.path()),
        tiny_segments(&dir.path().join("tiny")),
    ] {
        let store = SqliteStore::open(&config).expect("open");
        let mut batch = Batch::default();
        for t in 0..=250u8 {
            // Every other span is of another operation: the map's pages skip them.
            for (id, op) in [(1, "wanted"), (2, "other")] {
                let mut sp = span(t, id, None, "svc", op, T0 + i64::from(t) * 10, 5);
                sp.parent_span_id = (id == 2).then_some([1; 8]);
                batch.spans.push(sp);
            }
            if config.segments.rows == 2 {
                store
                    .write(std::mem::take(&mut batch))
                    .await
                    .expect("write");
            }
        }
        store.write(batch).await.expect("write");
        let found = store
            .find_trace_ids(&TraceQuery {
                service: "svc".into(),
                operation: Some("wanted".into()),
                limit: 200,
                ..Default::default()
            })
            .await
            .expect("search");
        let expected: Vec<[u8; 16]> = (51..=250u8).rev().map(|t| [t; 16]).collect();
        assert_eq!(
            found, expected,
            "rows per segment: {}",
            config.segments.rows
        );
    }
}

/// A copy of the fixture `name` in a temporary directory, changed by `prepare`, opened.
fn open_fixture(
    name: &str,
    prepare: impl FnOnce(&std::path::Path),
) -> (tempfile::TempDir, Arc<SqliteStore>) {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixture, dir.path());
    prepare(dir.path());
    let store = Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path())).expect("opens"));
    (dir, store)
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("a name"));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SqliteStore::open(&SqliteConfig::new(dir.path())).expect("open");
        let mut b = Batch::default();
        b.spans.push(span(8, 1, None, "svc", "op", T0, 10));
        store.write(b).await.expect("write");
    }
    let store = SqliteStore::open(&SqliteConfig::new(dir.path())).expect("reopen");
    // Interned IDs come from the file, not from a fresh cache: a second batch still links up.
    let mut b = Batch::default();
    b.spans.push(span(8, 2, Some(1), "svc", "op", T0 + 1, 10));
    store.write(b).await.expect("write after reopen");
    let traces = store.traces(&[[8; 16]]).await.expect("read");
    assert_eq!(traces[0].1.len(), 2);
    assert_eq!(store.operations("svc", None).await.expect("ops").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_runs_retention_in_the_background() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = gauntlet_collector::Config::ephemeral(dir.path());
    config.retention = Some(std::time::Duration::from_millis(1));
    config.retention_interval = std::time::Duration::from_millis(50);
    let c = gauntlet_collector::Collector::start(config)
        .await
        .expect("starts");
    let mut b = Batch::default();
    b.spans.push(span(6, 1, None, "svc", "op", T0, 10));
    let mut l = log("svc", T0, 9, "old news");
    l.trace_id = Some([6; 16]);
    b.logs.push(l);
    c.store.write(b).await.expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let traces = c.store.traces(&[[6; 16]]).await.expect("read");
        let logs = c
            .store
            .logs(&LogQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .expect("logs");
        if traces.is_empty() && logs.logs.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    c.shutdown().await;
}

/// Waits until every segment but the open one is sealed.
async fn sealed(store: &SqliteStore) -> Vec<SegmentInfo> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let segments = store.segments();
        if segments.iter().rev().skip(1).all(|s| s.sealed) {
            return segments;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never sealed: {segments:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Ten batches of two traces of two spans, each trace with its own correlation ID.
async fn write_traces(store: &SqliteStore, first: u8) {
    for b in 0..10u8 {
        let mut batch = Batch::default();
        for t in 0..2u8 {
            let trace = first + b * 2 + t;
            for s in 1..=2u8 {
                let mut sp = span(
                    trace,
                    s,
                    (s == 2).then_some(1),
                    "svc",
                    "op",
                    T0 + i64::from(trace),
                    10,
                );
                sp.correlation_id = Some(format!("c-{trace}"));
                batch.spans.push(sp);
            }
        }
        store.write(batch).await.expect("write");
    }
}

/// The tables and indexes of a segment file that hold or index trace parts.
fn trace_part_objects(file: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(file).expect("open segment");
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'trace_parts' ORDER BY name")
        .expect("prepare");
    stmt.query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("names")
}

fn user_version(file: &std::path::Path) -> i64 {
    rusqlite::Connection::open(file)
        .expect("segment")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version")
}

/// Spans in a segment's `span_times` blocks (32 bytes an entry).
fn span_times_entries(file: &std::path::Path) -> i64 {
    rusqlite::Connection::open(file)
        .expect("open segment")
        .query_row(
            "SELECT coalesce(sum(length(entries)), 0) / 32 FROM span_times",
            [],
            |r| r.get(0),
        )
        .expect("span_times")
}

/// (key, rowid) pairs in a segment's trace and correlation key tables (16 bytes a pair).
fn key_rows(file: &std::path::Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(file).expect("open segment");
    conn.query_row(
        "SELECT (SELECT coalesce(sum(length(entries)), 0) / 16 FROM trace_keys),
                (SELECT coalesce(sum(length(entries)), 0) / 16 FROM correlation_keys)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("key tables")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_segments_are_sealed_and_answer_through_their_own_key_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&tiny_segments(dir.path())).expect("open");
    write_traces(&store, 1).await;
    let segments = sealed(&store).await;
    assert!(segments.len() >= 10, "{segments:?}");
    let open = segments.last().expect("an open segment");
    assert!(!open.sealed);
    assert_eq!(
        key_rows(&open.path),
        (0, 0),
        "the open segment's lookups are in memory"
    );
    assert_eq!(span_times_entries(&open.path), 0);
    let mut runs = 0;
    for s in &segments[..segments.len() - 1] {
        assert!(
            trace_part_objects(&s.path).is_empty(),
            "no trace parts, no sort by SQLite: {s:?}"
        );
        assert_eq!(user_version(&s.path), SEGMENT_VERSION, "{s:?}");
        assert_eq!(span_times_entries(&s.path), 4, "its spans by time: {s:?}");
        let (traces, correlations) = key_rows(&s.path);
        assert_eq!(traces, correlations, "one correlation ID a run: {s:?}");
        runs += traces;
    }
    assert_eq!(runs, 20, "one key row per run of a trace");
    for trace in 1..=20u8 {
        let found = store.traces(&[[trace; 16]]).await.expect("read");
        assert_eq!(found.len(), 1, "trace {trace}");
        assert_eq!(found[0].1.len(), 2, "trace {trace}");
        let ids = store
            .correlated_trace_ids(&format!("c-{trace}"), 10)
            .await
            .expect("correlation");
        assert_eq!(ids, vec![[trace; 16]]);
    }
    let summaries = store.trace_summaries(&[[20; 16]]).await.expect("summaries");
    assert_eq!(summaries[0].span_count, 2);
    assert_eq!(summaries[0].root, Some(("svc".into(), "op".into())));
    let search = TraceQuery {
        service: "svc".into(),
        limit: 100,
        ..Default::default()
    };
    let mut found = store.find_trace_ids(&search).await.expect("search");
    found.sort();
    assert_eq!(found, (1..=20u8).map(|t| [t; 16]).collect::<Vec<_>>());
    // Search in a sealed segment goes through its span_times blocks: without them, its
    // traces are not found (the others still are).
    rusqlite::Connection::open(&segments[0].path)
        .expect("segment")
        .execute("DELETE FROM span_times", [])
        .expect("empty span_times");
    let found = store.find_trace_ids(&search).await.expect("search");
    assert_eq!(found.len(), 18, "{found:?}");
    assert!(!found.contains(&[1; 16]) && !found.contains(&[2; 16]));
    // Lookups in a sealed segment go through its key tables: without their rows, its
    // traces are not found (the others still are).
    let first = &segments[0];
    rusqlite::Connection::open(&first.path)
        .expect("segment")
        .execute_batch("DELETE FROM trace_keys; DELETE FROM correlation_keys;")
        .expect("empty the key tables");
    assert!(store.traces(&[[1; 16]]).await.expect("read").is_empty());
    assert!(
        store
            .correlated_trace_ids("c-1", 10)
            .await
            .expect("correlation")
            .is_empty()
    );
    assert_eq!(store.traces(&[[20; 16]]).await.expect("read").len(), 1);
}

/// A sealed segment answers RED in steps of whole minutes and hours from its `red_tiers`
/// alone: with its 10 s rows deleted, those answers still count every span (a step of one
/// bucket, which only the 10 s rows can answer, no longer does); and so after a restart.
/// Steps that cut across a tier's rows are answered from the 10 s rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_segments_answer_minutes_and_hours_from_their_tiers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SqliteConfig::new(dir.path());
    config.segments.rows = 400;
    let (first, spans) = {
        let sqlite = Arc::new(SqliteStore::open(&config).expect("open"));
        let store: Arc<dyn Store> = sqlite.clone();
        let (first, spans) = conformance::write_rolled_spans(&store).await;
        // Past the limit once more: every segment holding the spans is sealed.
        let mut b = Batch::default();
        b.spans.push(span(250, 1, None, "other", "op", T0, 1));
        store.write(b).await.expect("write");
        let segments = sealed(&sqlite).await;
        assert!(segments.len() >= 4, "{segments:?}");
        // Steps that do not start on a whole minute cut across the tiers' rows: the 10 s
        // rows answer them.
        for per_step in [6, 60, 360] {
            conformance::rollups_count_the_spans(&store, first + 3, per_step, &spans).await;
        }
        for s in &segments[..segments.len() - 1] {
            let conn = rusqlite::Connection::open(&s.path).expect("segment");
            let tiers: i64 = conn
                .query_row("SELECT count(*) FROM red_tiers", [], |r| r.get(0))
                .expect("red_tiers");
            assert!(tiers > 0, "{s:?} has no tiers");
            conn.execute("DELETE FROM red_rollups", [])
                .expect("delete the 10 s rows");
        }
        for per_step in [6, 60, 360] {
            conformance::rollups_count_the_spans(&store, first, per_step, &spans).await;
        }
        (first, spans)
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config).expect("reopen"));
    for per_step in [6, 60, 360] {
        conformance::rollups_count_the_spans(&store, first, per_step, &spans).await;
    }
    let buckets = store
        .red_steps(&gauntlet_collector::store::RollupQuery {
            service: "rolled".into(),
            kinds: vec![gauntlet_collector::model::SpanKind::Server],
            buckets: (first, first + 720),
            buckets_per_step: 1,
            ..Default::default()
        })
        .await
        .expect("steps");
    assert!(buckets.steps.is_empty(), "{:?}", &buckets.steps[..1]);
}

/// Calls whose two sides are written on either side of a restart are counted once: the
/// children first (their calls inside a service and to `stock` complete then), then, after
/// the store is reopened, the roots they wait for. The reopened store rebuilds its edge
/// matcher from the last batches, so the waiting children are joined and the calls already
/// written are not counted again. Once with segments sealed and rotated under the writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_split_by_a_restart_are_counted_once() {
    for rows in [1_000_000, 700] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SqliteConfig::new(dir.path());
        config.segments.rows = rows;
        let (first, spans) = conformance::call_spans();
        let (children, roots): (Vec<_>, Vec<_>) =
            spans.into_iter().partition(|s| s.parent_span_id.is_some());
        let write = |store: Arc<dyn Store>, spans: Vec<_>| async move {
            for chunk in spans.chunks(250) {
                let mut batch = Batch::default();
                batch.spans.extend(chunk.iter().cloned());
                store.write(batch).await.expect("write");
            }
        };
        {
            let sqlite = Arc::new(SqliteStore::open(&config).expect("open"));
            write(sqlite.clone(), children).await;
            sqlite.close().await;
        }
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config).expect("reopen"));
        write(store.clone(), roots).await;
        conformance::edges_count_the_calls(&store, first).await;
    }
}

/// Retention that cuts a sealed segment's oldest batches takes their spans out of its 10 s
/// rollups and its tiers in the same step: RED in buckets, minutes, 10 minutes and hours
/// then counts exactly the spans kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_cut_leaves_the_rollups_and_tiers_of_what_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SqliteConfig::new(dir.path());
    config.segments.rows = 1_200;
    let sqlite = Arc::new(SqliteStore::open(&config).expect("open"));
    let store: Arc<dyn Store> = sqlite.clone();
    let (first, spans) = conformance::rolled_spans();
    let cut = write_around_a_cut(&store, &spans).await;
    let mut other = Batch::default();
    other.spans.push(span(251, 1, None, "other", "op", T0, 1));
    store.write(other).await.expect("write");
    let segments = sealed(&sqlite).await;
    assert_eq!(segments.len(), 3, "{segments:?}");
    conformance::prune_older_than(&store, cut).await;
    assert_eq!(
        sqlite.segments().len(),
        3,
        "the first segment was cut, not dropped"
    );
    for per_step in [1, 6, 60, 360] {
        conformance::rollups_count_the_spans(&store, first, per_step, &spans[500..]).await;
    }
}

/// Writes the first 500 spans, notes the time, then the rest in batches of 500: a retention
/// cut at the returned time takes the first batch only.
async fn write_around_a_cut(
    store: &Arc<dyn Store>,
    spans: &[gauntlet_collector::model::SpanRecord],
) -> i64 {
    let mut cut = 0;
    for (i, chunk) in spans.chunks(500).enumerate() {
        if i == 1 {
            cut = gauntlet_collector::model::now_ns();
        }
        let mut batch = Batch::default();
        batch.spans.extend(chunk.iter().cloned());
        store.write(batch).await.expect("write");
    }
    cut
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_seals_what_a_stop_left_open_and_keeps_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segments = {
        let store = SqliteStore::open(&tiny_segments(dir.path())).expect("open");
        write_traces(&store, 1).await;
        sealed(&store).await
    };
    // As a stop in the middle of sealing leaves them: listed as sealing, key tables empty.
    let catalog = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("catalog");
    catalog
        .execute("UPDATE segments SET state = 1 WHERE state = 2", [])
        .expect("unseal");
    for s in &segments[..segments.len() - 1] {
        rusqlite::Connection::open(&s.path)
            .expect("segment")
            .execute_batch("DELETE FROM trace_keys; DELETE FROM correlation_keys;")
            .expect("empty the key tables");
    }
    let store = SqliteStore::open(&tiny_segments(dir.path())).expect("reopen");
    // Lookups work at once, through the rebuilt in-memory maps, and after sealing.
    for round in 0..2 {
        for trace in 1..=20u8 {
            let found = store.traces(&[[trace; 16]]).await.expect("read");
            assert_eq!(found.len(), 1, "round {round}, trace {trace}");
            assert_eq!(
                store
                    .correlated_trace_ids(&format!("c-{trace}"), 10)
                    .await
                    .expect("correlation"),
                vec![[trace; 16]]
            );
        }
        sealed(&store).await;
    }
    let sealed_rows: i64 = catalog
        .query_row("SELECT count(*) FROM segments WHERE state = 2", [], |r| {
            r.get(0)
        })
        .expect("states");
    assert_eq!(sealed_rows as usize, store.segments().len() - 1);
    for s in &segments[..segments.len() - 1] {
        assert_ne!(key_rows(&s.path), (0, 0), "sealed again: {s:?}");
    }
    // New rows go on after the reopened open segment.
    write_traces(&store, 100).await;
    assert_eq!(store.traces(&[[119; 16]]).await.expect("read").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_whole_segment_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&tiny_segments(dir.path())).expect("open");
    write_traces(&store, 1).await;
    let before = sealed(&store).await;
    let cut = gauntlet_collector::model::now_ns();
    let mut late = Batch::default();
    late.spans.push(span(200, 1, None, "svc", "late", T0, 1));
    store.write(late).await.expect("write");
    let policy = gauntlet_collector::store::RetentionPolicy {
        older_than_ns: Some(cut),
        max_bytes: None,
    };
    let mut deleted = 0;
    loop {
        let step = store.prune(policy).await.expect("prune");
        deleted += step.spans;
        if !step.more {
            break;
        }
    }
    assert_eq!(deleted, 40);
    for s in &before[..before.len() - 1] {
        assert!(!s.path.exists(), "{} was deleted", s.path.display());
    }
    assert!(store.traces(&[[1; 16]]).await.expect("read").is_empty());
    assert_eq!(store.traces(&[[200; 16]]).await.expect("read").len(), 1);
    let left = std::fs::read_dir(dir.path().join("segments"))
        .expect("segments dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sqlite"))
        })
        .count();
    assert!(left <= 2, "{left} segment files left");
    // The writer only moved the files to the trash; the sealer's thread deletes them.
    let trash = dir.path().join("segments").join("trash");
    let files_in = |d: &std::path::Path| std::fs::read_dir(d).map(|e| e.count()).unwrap_or(0);
    assert!(trash.is_dir(), "dropped files went to {}", trash.display());
    wait_until("the trash is emptied", || files_in(&trash) == 0).await;
    // What a stop left in the trash goes on the next start.
    drop(store);
    std::fs::write(trash.join("000099.sqlite"), b"left by a stop").expect("write");
    let _store = SqliteStore::open(&tiny_segments(dir.path())).expect("reopen");
    wait_until("the trash is emptied on start", || files_in(&trash) == 0).await;
}

/// Polls `done` every 20 ms for up to 10 s.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 10 s for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The ingest pipeline writes what `Store::encode` readied on the request's task; every
/// other writer hands the store the model. Both store the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_and_model_batches_store_the_same_data() {
    let batch = || {
        let mut b = Batch::default();
        let mut s = span(9, 1, None, "typed", "both ways", T0, 1_000);
        s.attributes
            .push("n", gauntlet_collector::model::Value::Int(3));
        s.events.push(gauntlet_collector::model::Event {
            time_ns: T0 + 10,
            name: "retry".into(),
            attributes: [("attempt", "2")].into_iter().collect(),
        });
        b.spans.push(s);
        b.logs.push(log("typed", T0 + 5, 9, "a log"));
        b
    };
    let (a, b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let model: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(a.path())).expect("open"));
    let encoded: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&SqliteConfig::new(b.path())).expect("open"));
    model.write(batch()).await.expect("model write");
    let readied = encoded.encode(batch());
    assert!(
        matches!(readied, gauntlet_collector::store::Encoded::Sqlite(_)),
        "the SQLite store encodes ahead of its commit"
    );
    encoded
        .write_encoded(vec![readied])
        .await
        .expect("encoded write");
    let trace = |s: Arc<dyn Store>| async move { s.traces(&[[9; 16]]).await.expect("trace") };
    let logs = |s: Arc<dyn Store>| async move {
        s.logs(&LogQuery {
            service: Some("typed".into()),
            limit: 10,
            ..LogQuery::default()
        })
        .await
        .expect("logs")
        .logs
        .into_iter()
        .map(|l| l.record)
        .collect::<Vec<_>>()
    };
    let from_model = trace(model.clone()).await;
    assert_eq!(from_model[0].1[0].events.len(), 1);
    assert_eq!(from_model, trace(encoded.clone()).await);
    assert_eq!(logs(model).await, logs(encoded).await);
}

/// The open segment counts its spans' RED cells in memory and writes them about once a
/// second (segment format 9). RED answers from both at every moment; a stop without a
/// flush (as `kill -9` leaves the file) loses no count, because the reopened store counts
/// the spans after the last flush again; a flush at every commit (`red_flush_every` zero)
/// writes everything at once; and retention that empties the open segment, whose row IDs
/// then start again from 1, does not hide the spans written after it from that recount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_cells_waiting_in_memory_are_counted_through_stops_and_retention() {
    let (first, spans) = conformance::rolled_spans();
    let stored = |sqlite: &SqliteStore| -> i64 {
        let open = sqlite.segments().pop().expect("open segment");
        rusqlite::Connection::open(&open.path)
            .expect("segment")
            .query_row(
                "SELECT coalesce(sum(requests), 0) FROM red_rollups",
                [],
                |r| r.get(0),
            )
            .expect("red_rollups")
    };
    for every in [
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(3600),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = SqliteConfig::new(dir.path());
        config.red_flush_every = every;
        let write = |store: Arc<dyn Store>, spans: Vec<gauntlet_collector::model::SpanRecord>| async move {
            for chunk in spans.chunks(500) {
                let mut batch = Batch::default();
                batch.spans.extend(chunk.iter().cloned());
                store.write(batch).await.expect("write");
            }
        };
        {
            let sqlite = Arc::new(SqliteStore::open(&config).expect("open"));
            let store: Arc<dyn Store> = sqlite.clone();
            write(store.clone(), spans[..2_000].to_vec()).await;
            let flushed = if every.is_zero() { 2_000 } else { 0 };
            assert_eq!(stored(&sqlite), flushed, "flush every {every:?}");
            conformance::rollups_count_the_spans(&store, first, 1, &spans[..2_000]).await;
            // Dropped without `close`: nothing more is written.
        }
        let sqlite = Arc::new(SqliteStore::open(&config).expect("reopen"));
        let store: Arc<dyn Store> = sqlite.clone();
        conformance::rollups_count_the_spans(&store, first, 1, &spans[..2_000]).await;
        // Retention empties the open segment; the spans after it reuse its row IDs.
        conformance::prune_older_than(&store, gauntlet_collector::model::now_ns()).await;
        assert_eq!(stored(&sqlite), 0, "retention took every count out");
        write(store.clone(), spans[2_000..].to_vec()).await;
        drop((store, sqlite));
        let sqlite = Arc::new(SqliteStore::open(&config).expect("reopen"));
        let store: Arc<dyn Store> = sqlite.clone();
        conformance::rollups_count_the_spans(&store, first, 1, &spans[2_000..]).await;
        sqlite.close().await;
        assert_eq!(stored(&sqlite), 1_000, "close writes what waits");
    }
}

/// A segment that is still sealing holds RED cells in memory that its file does not, and
/// both the seal and a retention cut write them: the cut first (its spans must be in the
/// rows before it takes them out), the seal then finding them written. Made so here: the
/// store stops with its full segments listed as sealing and their rollups gone (as a stop
/// before their first flush leaves them), is reopened, which counts their spans again in
/// memory and queues their seals, and is cut at once, while the seal of the segment it cuts
/// runs (which first is up to the threads: here mostly the seal; a cut that read the file
/// before the seal's commit and wrote after it failed as "database is locked" until both
/// took the write lock first). Either way RED counts exactly the spans kept; that the second
/// of two flushes writes nothing is `rollups::tests::cells_flushed_twice_are_written_once`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retention_cut_of_a_sealing_segment_counts_its_waiting_cells_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SqliteConfig::new(dir.path());
    config.segments.rows = 1_200;
    let (first, spans) = conformance::rolled_spans();
    let cut = {
        let sqlite = Arc::new(SqliteStore::open(&config).expect("open"));
        let store: Arc<dyn Store> = sqlite.clone();
        let cut = write_around_a_cut(&store, &spans).await;
        let segments = sealed(&sqlite).await;
        assert_eq!(segments.len(), 3, "{segments:?}");
        for s in &segments[..2] {
            rusqlite::Connection::open(&s.path)
                .expect("segment")
                .execute_batch(
                    "DELETE FROM red_rollups; DELETE FROM red_tiers; DELETE FROM red_flushed;",
                )
                .expect("forget the rollups");
        }
        cut
    };
    rusqlite::Connection::open(dir.path().join(DB_FILE))
        .expect("catalog")
        .execute("UPDATE segments SET state = 1 WHERE state = 2", [])
        .expect("unseal");
    let sqlite = Arc::new(SqliteStore::open(&config).expect("reopen"));
    let store: Arc<dyn Store> = sqlite.clone();
    conformance::prune_older_than(&store, cut).await;
    sealed(&sqlite).await;
    for per_step in [1, 6, 60, 360] {
        conformance::rollups_count_the_spans(&store, first, per_step, &spans[500..]).await;
    }
}
