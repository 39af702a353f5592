//! `cargo fuzz run otlp_traces`: see `gauntlet_collector::fuzzing::otlp_traces`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_collector::fuzzing::otlp_traces(data));
