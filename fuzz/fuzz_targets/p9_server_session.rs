//! Drives a server session with an arbitrary client and backend; see
//! `proto_9p::fuzzing::server_session`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_9p::fuzzing::server_session(data));
