//! The SQLite store against the conformance suite (`conformance/`), one test per case, and
//! what only a file-backed store has: reopening, and the collector's background retention.

mod conformance;

use std::sync::Arc;

use conformance::{T0, log, span};
use gauntlet_collector::model::Batch;
use gauntlet_collector::store::sqlite::{DB_FILE, SqliteConfig, SqliteStore};
use gauntlet_collector::store::{LogQuery, Store};

/// One test per conformance case, each on a fresh SQLite store holding the fixture.
macro_rules! sqlite_conforms {
    ($($case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let dir = tempfile::tempdir().expect("tempdir");
            let store: Arc<dyn Store> =
                Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path())).expect("open"));
            conformance::write_fixture(&store).await;
            conformance::$case(&store).await;
        }
    )*};
}

sqlite_conforms!(
    services_and_operations,
    a_trace_joins_its_batches,
    summaries_count_each_trace_once,
    search_matches_jaeger_queries,
    logs_filter_and_page,
    correlation_spans_traces_and_logs,
    retention_by_age_keeps_what_came_after,
    retention_by_size_drops_the_oldest,
);

/// Every store file kept in `tests/fixtures/store-vN/` (written by
/// `cargo run -p gauntlet-collector --example store_fixture -- DIR` with schema version N)
/// opens with this build and answers the read cases as a fresh store does, and takes writes.
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
        std::fs::copy(kept.join(DB_FILE), dir.path().join(DB_FILE)).expect("copy");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&SqliteConfig::new(dir.path())).expect("opens"));
        conformance::services_and_operations(&store).await;
        conformance::a_trace_joins_its_batches(&store).await;
        conformance::summaries_count_each_trace_once(&store).await;
        conformance::search_matches_jaeger_queries(&store).await;
        conformance::logs_filter_and_page(&store).await;
        conformance::correlation_spans_traces_and_logs(&store).await;
        let mut b = Batch::default();
        b.spans
            .push(span(9, 1, None, "after-upgrade", "op", T0, 10));
        store.write(b).await.expect("writes");
        assert_eq!(store.traces(&[[9; 16]]).await.expect("read").len(), 1);
        opened.push(kept.file_name().map(|n| n.to_string_lossy().to_string()));
    }
    assert!(opened.contains(&Some("store-v2".to_string())), "{opened:?}");
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
