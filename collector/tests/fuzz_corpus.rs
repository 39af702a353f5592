//! The fuzz targets' corpora (`fuzz/corpus/<target>/`, minimised with `cargo fuzz cmin`, and
//! every input that once crashed a decoder) replayed through the same entry points on
//! stable, so a regression fails a plain `cargo test` without nightly or libFuzzer.

use std::path::Path;

use gauntlet_collector::fuzzing;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .collect::<Result<Vec<_>, _>>()
        .expect("the corpus lists");
    assert!(!entries.is_empty(), "{}: an empty corpus", dir.display());
    for entry in entries {
        let input = std::fs::read(entry.path()).expect("a corpus input");
        run(&input);
    }
}

#[test]
fn otlp_traces_corpus() {
    replay("otlp_traces", fuzzing::otlp_traces);
}

#[test]
fn otlp_logs_corpus() {
    replay("otlp_logs", fuzzing::otlp_logs);
}

#[test]
fn zipkin_json_corpus() {
    replay("zipkin_json", fuzzing::zipkin_json);
}

#[test]
fn gzip_corpus() {
    replay("gzip", fuzzing::gzip);
}
