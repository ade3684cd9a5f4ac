//! Drives a whole SSH connection (kex, auth, channels) with crypto off;
//! see `proto_ssh::fuzzing::connection`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_ssh::fuzzing::connection(data));
