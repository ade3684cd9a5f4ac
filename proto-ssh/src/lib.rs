//! Sans-IO SSH-2, client and server roles.
//!
//! This crate will hold the whole SSH-2 protocol as deterministic state
//! machines in the style of quinn-proto: transport (RFC 4253) with strict
//! kex, user authentication (RFC 4252) and the connection protocol
//! (RFC 4254). It does no I/O: the caller feeds bytes, time and randomness in
//! and polls bytes and events out. The work is tracked by the SSH-core issue;
//! until then the crate is empty on purpose.
#![no_std]
