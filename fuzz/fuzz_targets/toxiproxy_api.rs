//! `cargo fuzz run toxiproxy_api`: see `gauntlet_chaos_proxy::fuzzing::api_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gauntlet_chaos_proxy::fuzzing::api_body(data));
