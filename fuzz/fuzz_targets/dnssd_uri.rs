//! decpu's host argument (`dnssd://` URI or plain host); see
//! `cpu_bins::dnssd::fuzz_uri`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cpu_bins::dnssd::fuzz_uri(data));
