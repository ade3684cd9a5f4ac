//! The blocking-threads runtime for the cpu-rs protocol crates.
pub mod export;
pub mod p9client;
pub mod p9server;
pub mod pty;
pub mod socket;
pub mod ssh;
pub mod vsock;
