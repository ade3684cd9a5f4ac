//! The blocking-threads runtime for the cpu-rs protocol crates.
