//! `cargo fuzz run grpc_framing`: see `gauntlet_collector::fuzzing::grpc_framing`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_collector::fuzzing::grpc_framing(data));
