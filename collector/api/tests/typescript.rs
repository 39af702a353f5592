//! The UI's TypeScript declarations are the ones the Rust types give: a change to an answer
//! type that is not carried to the UI fails here.

use std::path::Path;

#[test]
fn committed_typescript_matches_the_rust_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(gauntlet_query_api::typescript::PATH);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = gauntlet_query_api::typescript::declarations();
    assert!(
        committed == generated,
        "{} is not what the query API's types give: run \
         `cargo run -p gauntlet-query-api --features typescript --example typescript` and commit it",
        path.display()
    );
}
