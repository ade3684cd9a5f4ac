//! Shared pieces of the cpu-rs commands: flag parsing, ssh_config, the
//! namespace and command-string syntax of the reference, and cpud's parts
//! (host key, login policy, daemon, session child); the client's keys
//! (files, passphrases, ssh-agent).

pub mod admission;
pub mod agent;
pub mod authorized;
pub mod cli;
pub mod client;
pub mod cpu_main;
pub mod cpud_main;
pub mod cwd;
pub mod daemon;
pub mod dbg9p;
pub mod dnssd;
pub mod fuse9p;
pub mod goduration;
pub mod goflags;
pub mod hostkey;
pub mod init;
pub mod keyopts;
pub mod keys;
pub mod known_hosts;
pub mod log;
pub mod mdns;
pub mod namespace;
pub mod net;
pub mod netif;
pub mod oplog;
pub mod passphrase;
pub mod plain;
pub mod quote;
pub mod remote;
pub mod rt;
pub mod server_software;
pub mod shadow;
pub mod ssh_config;
pub mod startups;
pub mod tty;
