//! Frames and decodes arbitrary bytes; see `proto_9p::fuzzing::decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| proto_9p::fuzzing::decode(data));
