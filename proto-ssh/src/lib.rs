//! Sans-IO SSH-2, client and server roles.
//!
//! The whole SSH-2 protocol as deterministic state machines in the style
//! of quinn-proto: bytes, time and randomness go in; bytes and events come
//! out. No I/O, threads or clocks; the runtimes own those.
//!
//! - [`connection`]: one connection, client or server, tying the layers
//!   together behind `handle_input` / `handle_timeout` / `poll_transmit` /
//!   `poll_event` / `poll_timeout`;
//! - [`transport`]: RFC 4253 with strict kex, rekeying and the bounded
//!   queue; [`kex`]: negotiation, `mlkem768x25519-sha256` and
//!   `curve25519-sha256`, the exchange hash and key derivation;
//! - [`version`], [`packet`], [`cipher`]: the identification line, the
//!   binary packet protocol and the AEAD ciphers;
//! - [`auth`]: RFC 4252, `none` and `publickey`, with the server's
//!   [`auth::Authenticated`] proof;
//! - [`channel`]: RFC 4254 channels, requests and flow control;
//! - [`sig`], [`wire`], [`msg`]: signatures, encodings, message numbers;
//! - [`agent`]: the ssh-agent messages a signing client needs;
//! - with the `fuzzing` feature: the fuzz entry points and the in-memory
//!   client/server `pair` driver.
#![no_std]

extern crate alloc;

pub mod agent;
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
