//! `cargo fuzz run scenario_toml`: see `gauntlet_loadgen::fuzzing::scenario_toml`.
#![no_main]

/// The files a scenario may name (CSV data, JSON variables).
const FILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/files");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gauntlet_loadgen::fuzzing::scenario_toml(data, std::path::Path::new(FILES))
});
