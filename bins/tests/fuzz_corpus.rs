//! Replays the committed cargo-fuzz seeds of the bins' fuzz targets
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through the
//! same entry points, so that a plain `cargo test` checks them.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

include!("../../fuzz/replay.rs");

#[test]
fn replay_dnssd_uri() {
    replay("dnssd_uri", cpu_bins::dnssd::fuzz_uri);
}
