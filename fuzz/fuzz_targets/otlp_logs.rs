//! `cargo fuzz run otlp_logs`: see `gauntlet_collector::fuzzing::otlp_logs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_collector::fuzzing::otlp_logs(data));
