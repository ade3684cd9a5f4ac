//! `chacha20-poly1305@openssh.com`, as OpenSSH's PROTOCOL.chacha20poly1305
//! describes it.
//!
//! The 64-byte key is two ChaCha20 keys: K_2 (the first 32 bytes) encrypts
//! the payload and yields the Poly1305 key, K_1 (the last 32 bytes) encrypts
//! only the 4-byte length, so that a reader can learn the length before it
//! has the whole packet. The nonce is the 64-bit big-endian sequence number
//! (original ChaCha20, 64-bit nonce). The Poly1305 key is the first 32 bytes
//! of K_2's block 0, the payload is encrypted from block 1 on, and the tag
//! covers the encrypted length and payload. This is not the IETF AEAD.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20Legacy;
use core::fmt;
use poly1305::universal_hash::KeyInit;
use poly1305::Poly1305;
use subtle::ConstantTimeEq;

use super::CipherError;

pub(super) const NAME: &str = "chacha20-poly1305@openssh.com";

/// The key of one direction of `chacha20-poly1305@openssh.com`.
pub struct ChaCha20Poly1305 {
    /// K_2: payload and Poly1305 key.
    main_key: [u8; 32],
    /// K_1: the length field only.
    length_key: [u8; 32],
}

impl fmt::Debug for ChaCha20Poly1305 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys stay out of logs.
        f.write_str("ChaCha20Poly1305")
    }
}

impl ChaCha20Poly1305 {
    /// The length of the key the key exchange must derive.
    pub const KEY_LEN: usize = 64;

    /// A cipher from the 64 bytes of key material the kex derived.
    pub fn new(key: &[u8; 64]) -> Self {
        let mut main_key = [0; 32];
        let mut length_key = [0; 32];
        main_key.copy_from_slice(&key[..32]);
        length_key.copy_from_slice(&key[32..]);
        Self {
            main_key,
            length_key,
        }
    }

    fn stream(key: &[u8; 32], seq: u32) -> ChaCha20Legacy {
        let nonce = u64::from(seq).to_be_bytes();
        ChaCha20Legacy::new(key.into(), &nonce.into())
    }

    /// The K_2 stream positioned at block 1, and the Poly1305 instance
    /// keyed from block 0.
    fn payload_stream(&self, seq: u32) -> (ChaCha20Legacy, Poly1305) {
        let mut stream = Self::stream(&self.main_key, seq);
        let mut poly_key = [0u8; 32];
        stream.apply_keystream(&mut poly_key);
        stream.seek(64u64);
        (stream, Poly1305::new(&poly_key.into()))
    }

    pub(super) fn packet_length(&self, seq: u32, mut header: [u8; 4]) -> u32 {
        Self::stream(&self.length_key, seq).apply_keystream(&mut header);
        u32::from_be_bytes(header)
    }

    pub(super) fn seal(
        &self,
        seq: u32,
        packet: &mut [u8],
        tag: &mut [u8],
    ) -> Result<(), CipherError> {
        let (length, body) = packet.split_at_mut(4);
        Self::stream(&self.length_key, seq).apply_keystream(length);
        let (mut stream, poly) = self.payload_stream(seq);
        stream.apply_keystream(body);
        tag.copy_from_slice(&poly.compute_unpadded(packet));
        Ok(())
    }

    pub(super) fn open(&self, seq: u32, packet: &mut [u8], tag: &[u8]) -> Result<(), CipherError> {
        let (mut stream, poly) = self.payload_stream(seq);
        // The tag is checked, in constant time, before any byte is
        // decrypted: a forged packet yields no plaintext at all.
        let expected = poly.compute_unpadded(packet);
        if !bool::from(expected.as_slice().ct_eq(tag)) {
            return Err(CipherError::BadTag);
        }
        let (length, body) = packet.split_at_mut(4);
        Self::stream(&self.length_key, seq).apply_keystream(length);
        stream.apply_keystream(body);
        Ok(())
    }
}
