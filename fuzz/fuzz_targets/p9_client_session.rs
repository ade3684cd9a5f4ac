//! Feeds a client session arbitrary server bytes; see
//! `proto_9p::fuzzing::client_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_9p::fuzzing::client_session(data));
