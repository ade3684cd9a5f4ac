//! Drives user authentication, both sides; see `proto_ssh::auth::fuzz::auth`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_ssh::auth::fuzz::auth(data));
