//! Rewrites the UI's TypeScript declarations of the query API from the Rust types.
//! Run from anywhere: `cargo run -p gauntlet-query-api --features typescript --example typescript`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join(gauntlet_query_api::typescript::PATH);
    std::fs::write(&path, gauntlet_query_api::typescript::declarations())?;
    println!("wrote {}", path.display());
    Ok(())
}
