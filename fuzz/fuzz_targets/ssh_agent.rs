//! The ssh-agent codec; see `proto_ssh::fuzzing::agent`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_ssh::fuzzing::agent(data));
