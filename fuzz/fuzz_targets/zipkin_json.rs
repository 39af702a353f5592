//! `cargo fuzz run zipkin_json`: see `gauntlet_collector::fuzzing::zipkin_json`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_collector::fuzzing::zipkin_json(data));
