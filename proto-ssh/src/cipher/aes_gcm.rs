//! `aes128-gcm@openssh.com` and `aes256-gcm@openssh.com` (RFC 5647, as
//! OpenSSH does it).
//!
//! The 4-byte length field is sent in clear as additional authenticated
//! data; the rest of the packet is encrypted. The 12-byte nonce is a 4-byte
//! fixed field followed by a 64-bit big-endian invocation counter, both
//! from the kex-derived IV; the counter goes up by one per packet in each
//! direction, independently of the sequence number.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
use alloc::boxed::Box;
use core::fmt;

use super::CipherError;

/// The AES key schedule, of either size. Boxed: it is large next to the
/// other ciphers, and made once per key exchange.
enum Key {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

/// One direction of `aes128-gcm@openssh.com` or `aes256-gcm@openssh.com`.
pub struct AesGcm {
    key: Key,
    fixed: [u8; 4],
    invocation: u64,
}

impl fmt::Debug for AesGcm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("AesGcm")
            .field("name", &self.name())
            .field("invocation", &self.invocation)
            .finish_non_exhaustive()
    }
}

impl AesGcm {
    /// The IV length the key exchange must derive.
    pub const IV_LEN: usize = 12;

    /// `aes128-gcm@openssh.com` from a 16-byte key and a 12-byte IV.
    pub fn new_128(key: &[u8; 16], iv: &[u8; 12]) -> Self {
        Self::with_key(Key::Aes128(Box::new(Aes128Gcm::new(key.into()))), iv)
    }

    /// `aes256-gcm@openssh.com` from a 32-byte key and a 12-byte IV.
    pub fn new_256(key: &[u8; 32], iv: &[u8; 12]) -> Self {
        Self::with_key(Key::Aes256(Box::new(Aes256Gcm::new(key.into()))), iv)
    }

    fn with_key(key: Key, iv: &[u8; 12]) -> Self {
        let mut fixed = [0; 4];
        fixed.copy_from_slice(&iv[..4]);
        let mut counter = [0; 8];
        counter.copy_from_slice(&iv[4..]);
        Self {
            key,
            fixed,
            invocation: u64::from_be_bytes(counter),
        }
    }

    pub(super) fn name(&self) -> &'static str {
        match self.key {
            Key::Aes128(_) => "aes128-gcm@openssh.com",
            Key::Aes256(_) => "aes256-gcm@openssh.com",
        }
    }

    /// The nonce for this packet; the counter then moves on (RFC 5647
    /// §7.1: it wraps modulo 2^64).
    fn next_nonce(&mut self) -> Nonce<aes_gcm::aes::cipher::consts::U12> {
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&self.fixed);
        nonce[4..].copy_from_slice(&self.invocation.to_be_bytes());
        self.invocation = self.invocation.wrapping_add(1);
        nonce.into()
    }

    pub(super) fn seal(&mut self, packet: &mut [u8], tag: &mut [u8]) -> Result<(), CipherError> {
        let nonce = self.next_nonce();
        let (aad, body) = packet.split_at_mut(4);
        let out = match &self.key {
            Key::Aes128(k) => k.encrypt_in_place_detached(&nonce, aad, body),
            Key::Aes256(k) => k.encrypt_in_place_detached(&nonce, aad, body),
        }
        // Only a message beyond GCM's 64 GiB limit fails here.
        .map_err(|_| CipherError::BadLength)?;
        tag.copy_from_slice(&out);
        Ok(())
    }

    pub(super) fn open(&mut self, packet: &mut [u8], tag: &[u8]) -> Result<(), CipherError> {
        let nonce = self.next_nonce();
        let tag = Tag::from_slice(tag);
        let (aad, body) = packet.split_at_mut(4);
        // aes-gcm computes and compares the tag (constant time) before it
        // decrypts, and leaves `body` untouched on failure.
        match &self.key {
            Key::Aes128(k) => k.decrypt_in_place_detached(&nonce, aad, body, tag),
            Key::Aes256(k) => k.decrypt_in_place_detached(&nonce, aad, body, tag),
        }
        .map_err(|_| CipherError::BadTag)
    }
}
