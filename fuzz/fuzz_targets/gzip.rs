//! `cargo fuzz run gzip`: see `gauntlet_collector::fuzzing::gzip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_collector::fuzzing::gzip(data));
