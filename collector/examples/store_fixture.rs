//! Writes the conformance fixture into a new SQLite store, to keep as a file made by this
//! version: `cargo run -p gauntlet-collector --example store_fixture -- DIR`. The store's
//! tests open every kept file with the current code, so a schema change that cannot read
//! what an older Gauntlet wrote fails there.

#[path = "../tests/conformance/mod.rs"]
mod conformance;

use std::sync::Arc;

use gauntlet_collector::store::Store;
use gauntlet_collector::store::sqlite::{SqliteConfig, SqliteStore};

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: store_fixture DIR (a directory that does not exist yet)");
        std::process::exit(2);
    };
    if std::path::Path::new(&dir).exists() {
        eprintln!("{dir} exists: give a new directory, so no data is mixed in");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&SqliteConfig::new(&dir)).unwrap_or_else(|e| {
                eprintln!("cannot open a store in {dir}: {e}");
                std::process::exit(1)
            }),
        );
        conformance::write_fixture(&store).await;
    });
    println!("wrote the conformance fixture into {dir}");
}
