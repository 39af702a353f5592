//! The fuzz targets' corpora (`fuzz/corpus/<target>/`, minimised with `cargo fuzz cmin`, and
//! every input that once crashed a decoder or a parser) replayed through the same entry
//! points on stable, so a regression fails a plain `cargo test` without nightly or
//! libFuzzer. Each target's entry point lives in its crate's `fuzzing` module.

use std::path::{Path, PathBuf};

use gauntlet_chaos::fuzzing as chaos;
use gauntlet_chaos_proxy::fuzzing as proxy;
use gauntlet_collector::fuzzing as collector;
use gauntlet_loadgen::fuzzing as loadgen;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files the scenario target's inputs may name (CSV data, JSON variables).
fn files() -> PathBuf {
    repo().join("fuzz/files")
}

/// The load scenarios the experiment target's inputs may name: the bundled experiments'.
fn scenarios() -> PathBuf {
    repo().join("chaos/experiments")
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let dir = repo().join("fuzz/corpus").join(target);
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
    replay("otlp_traces", collector::otlp_traces);
}

#[test]
fn otlp_logs_corpus() {
    replay("otlp_logs", collector::otlp_logs);
}

#[test]
fn otlp_metrics_corpus() {
    replay("otlp_metrics", collector::otlp_metrics);
}

#[test]
fn promql_corpus() {
    replay("promql", collector::promql);
}

#[test]
fn zipkin_json_corpus() {
    replay("zipkin_json", collector::zipkin_json);
}

#[test]
fn gzip_corpus() {
    replay("gzip", collector::gzip);
}

#[test]
fn grpc_framing_corpus() {
    replay("grpc_framing", collector::grpc_framing);
}

#[test]
fn scenario_toml_corpus() {
    replay("scenario_toml", |data| {
        loadgen::scenario_toml(data, &files())
    });
}

#[test]
fn template_corpus() {
    replay("template", loadgen::template);
}

#[test]
fn experiment_toml_corpus() {
    replay("experiment_toml", |data| {
        chaos::experiment_toml(data, &scenarios())
    });
}

#[test]
fn toxiproxy_api_corpus() {
    replay("toxiproxy_api", proxy::api_body);
}

/// The file targets get past the checks: the seed that uses every loadgen feature and a
/// bundled experiment (both seeded the corpora, which minimising may have dropped) are
/// accepted, files and all, so the fuzzers started from inputs the tools would run.
#[test]
fn the_seeds_are_accepted() {
    let seed = std::fs::read(repo().join("fuzz/seeds/features.toml")).expect("the seed");
    let plan = loadgen::compile(&seed, &files()).expect("the feature scenario compiles");
    assert_eq!(plan.scenarios.len(), 4);
    assert_eq!(plan.vars["gateway"], "http://127.0.0.1:9");
    let experiment = std::fs::read(scenarios().join("payments-slow.toml")).expect("experiment");
    let checked = chaos::check(&experiment, &scenarios())
        .unwrap_or_else(|e| panic!("the experiment seed is refused: {e}"));
    assert!(checked.activities().any(|a| a.evidence));
    let missing = chaos::check(&experiment, Path::new("/nonexistent"));
    assert!(missing.is_err(), "a scenario that is not there is refused");
}
