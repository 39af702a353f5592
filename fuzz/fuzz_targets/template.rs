//! `cargo fuzz run template`: see `gauntlet_loadgen::fuzzing::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_loadgen::fuzzing::template(data));
