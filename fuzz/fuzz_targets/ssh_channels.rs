//! Drives a client and a server `Channels` from arbitrary bytes; see
//! `proto_ssh::channel::fuzz::channels`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_ssh::channel::fuzz::channels(data));
