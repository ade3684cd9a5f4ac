//! Shared pieces of the cpu-rs commands: command lines, ssh_config,
//! namespaces and the remote command string now; sockets, mounts and
//! exec as the commands arrive.

pub mod cli;
pub mod goduration;
pub mod goflags;
pub mod namespace;
pub mod quote;
pub mod ssh_config;
