//! Opens arbitrary bytes as SSH packets; see `proto_ssh::fuzzing::packet`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_ssh::fuzzing::packet(data));
