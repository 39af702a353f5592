//! `cargo fuzz run experiment_toml`: see `gauntlet_chaos::fuzzing::experiment_toml`.
#![no_main]

/// The load scenarios an experiment may name: the bundled experiments'.
const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../chaos/experiments");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gauntlet_chaos::fuzzing::experiment_toml(data, std::path::Path::new(SCENARIOS))
});
