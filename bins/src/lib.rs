//! Shared pieces of the cpu-rs commands: flag parsing now; sockets,
//! namespaces, mounts and exec as the commands arrive.

pub mod goflags;
pub mod namespace;
pub mod quote;
