//! Sans-IO SSH-2, client and server roles.
//!
//! This crate will hold the whole SSH-2 protocol as deterministic state
//! machines in the style of quinn-proto: transport (RFC 4253) with strict
//! kex, user authentication (RFC 4252) and the connection protocol
//! (RFC 4254). It does no I/O: the caller feeds bytes, time and randomness in
//! and polls bytes and events out. The work is tracked by the SSH-core issue.
//!
//! What exists so far is the transport's byte level:
//! - [`version`]: the identification exchange (RFC 4253 §4.2);
//! - [`cipher`]: the packet ciphers, `chacha20-poly1305@openssh.com`,
//!   `aes256-gcm@openssh.com`, `aes128-gcm@openssh.com` and `none`;
//! - [`packet`]: the binary packet protocol (RFC 4253 §6) over those
//!   ciphers, with sequence numbers and the length checks done before
//!   anything is buffered or decrypted.
//!
//! Still to come: message encoding, key exchange (`mlkem768x25519-sha256`,
//! `curve25519-sha256`, strict kex, ext-info), rekeying, user
//! authentication, channels, and the connection state machine tying them
//! together.
#![no_std]

extern crate alloc;

pub mod auth;
pub mod channel;
pub mod cipher;
pub mod connection;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod kex;
pub mod msg;
pub mod packet;
#[cfg(feature = "fuzzing")]
pub mod pair;
pub mod sig;
pub mod transport;
pub mod version;
pub mod wire;

/// The crypto seam: whether signatures go unchecked and NEWKEYS leaves
/// packets in the clear, so that fuzzers can reach every state. Always
/// under cargo-fuzz's `cfg(fuzzing)`; with the `fuzzing` feature, when a
/// test asks ([`fuzzing::set_crypto_off`]); never in a normal build.
#[inline]
pub(crate) fn crypto_off() -> bool {
    #[cfg(fuzzing)]
    return true;
    #[cfg(all(not(fuzzing), feature = "fuzzing"))]
    return fuzzing::CRYPTO_OFF.load(core::sync::atomic::Ordering::Relaxed);
    #[cfg(all(not(fuzzing), not(feature = "fuzzing")))]
    return false;
}
