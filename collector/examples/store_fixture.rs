//! Writes the conformance fixture into a new SQLite store, to keep as a file made by this
//! version: `cargo run -p gauntlet-collector --example store_fixture -- DIR [SEGMENT_ROWS]`
//! (with SEGMENT_ROWS, segments that small, so the fixture holds sealed segments too). The
//! store's tests open every kept file with the current code, so a schema change that cannot
//! read what an older Gauntlet wrote fails there.

#[path = "../tests/conformance/mod.rs"]
mod conformance;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gauntlet_collector::store::Store;
use gauntlet_collector::store::sqlite::{SegmentLimits, SqliteConfig, SqliteStore};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: store_fixture DIR [SEGMENT_ROWS] (DIR must not exist yet)");
        std::process::exit(2);
    };
    if std::path::Path::new(&dir).exists() {
        eprintln!("{dir} exists: give a new directory, so no data is mixed in");
        std::process::exit(2);
    }
    let mut config = SqliteConfig::new(&dir);
    if let Some(rows) = args.next() {
        let Ok(rows) = rows.parse::<u64>() else {
            eprintln!("SEGMENT_ROWS {rows}: a number of rows, e.g. 1");
            std::process::exit(2);
        };
        config.segments = SegmentLimits {
            rows,
            ..config.segments
        };
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sqlite = Arc::new(SqliteStore::open(&config).unwrap_or_else(|e| {
            eprintln!("cannot open a store in {dir}: {e}");
            std::process::exit(1)
        }));
        let store: Arc<dyn Store> = sqlite.clone();
        conformance::write_fixture(&store).await;
        // A stop leaves queued seals for the next start: wait until every full segment is
        // sealed, so the files show what a sealed segment looks like.
        let deadline = Instant::now() + Duration::from_secs(60);
        while sqlite.segments().iter().rev().skip(1).any(|s| !s.sealed) {
            if Instant::now() > deadline {
                eprintln!("segments were not sealed within 60 s");
                std::process::exit(1);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    println!("wrote the conformance fixture into {dir}");
}
