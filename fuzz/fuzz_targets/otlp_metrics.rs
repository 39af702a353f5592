//! `cargo fuzz run otlp_metrics`: see `gauntlet_collector::fuzzing::otlp_metrics`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_collector::fuzzing::otlp_metrics(data));
