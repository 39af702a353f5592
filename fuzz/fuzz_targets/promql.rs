//! `cargo fuzz run promql`: see `gauntlet_collector::fuzzing::promql`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_collector::fuzzing::promql(data));
