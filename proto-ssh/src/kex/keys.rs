//! The exchange hash H (RFC 4253 §8, RFC 5656 §4) and the keys derived
//! from it (RFC 4253 §7.2), turned into the packet ciphers of each
//! direction.

use alloc::vec::Vec;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::negotiate::CipherAlg;
use crate::cipher::{AesGcm, ChaCha20Poly1305, PacketCipher};
use crate::wire::Put;

/// What the exchange hash covers, in order.
#[derive(Debug)]
pub struct HashInput<'a> {
    /// The client's identification line, without CR LF.
    pub v_c: &'a [u8],
    /// The server's identification line.
    pub v_s: &'a [u8],
    /// The client's KEXINIT payload.
    pub i_c: &'a [u8],
    /// The server's KEXINIT payload.
    pub i_s: &'a [u8],
    /// The server's host key blob.
    pub k_s: &'a [u8],
    /// The client's exchange value.
    pub q_c: &'a [u8],
    /// The server's exchange value.
    pub q_s: &'a [u8],
}

/// H = SHA-256 over the inputs as strings, then K as already encoded.
pub fn exchange_hash(input: &HashInput<'_>, k: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(
        input.v_c.len()
            + input.v_s.len()
            + input.i_c.len()
            + input.i_s.len()
            + input.k_s.len()
            + input.q_c.len()
            + input.q_s.len()
            + k.len()
            + 28,
    );
    for part in [
        input.v_c, input.v_s, input.i_c, input.i_s, input.k_s, input.q_c, input.q_s,
    ] {
        buf.put_string(part);
    }
    buf.put_raw(k);
    Sha256::digest(&buf).into()
}

/// RFC 4253 §7.2: HASH(K ‖ H ‖ letter ‖ session_id), extended with
/// HASH(K ‖ H ‖ K1 ‖ ...) until `len` bytes.
fn derive(k: &[u8], h: &[u8], letter: u8, session_id: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut hasher = Sha256::new();
    hasher.update(k);
    hasher.update(h);
    hasher.update([letter]);
    hasher.update(session_id);
    out.extend_from_slice(&hasher.finalize());
    while out.len() < len {
        let mut hasher = Sha256::new();
        hasher.update(k);
        hasher.update(h);
        hasher.update(&out[..]);
        out.extend_from_slice(&hasher.finalize());
    }
    out.truncate(len);
    out
}

/// The direction a cipher protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: IV "A", key "C".
    ClientToServer,
    /// Server to client: IV "B", key "D".
    ServerToClient,
}

/// The packet cipher for one direction after this exchange.
pub fn cipher(
    alg: CipherAlg,
    dir: Direction,
    k: &[u8],
    h: &[u8],
    session_id: &[u8],
) -> PacketCipher {
    let (iv_letter, key_letter) = match dir {
        Direction::ClientToServer => (b'A', b'C'),
        Direction::ServerToClient => (b'B', b'D'),
    };
    let key = derive(k, h, key_letter, session_id, alg.key_len());
    let iv = derive(k, h, iv_letter, session_id, alg.iv_len().max(1));
    build(alg, &key, &iv)
}

fn build(alg: CipherAlg, key: &[u8], iv: &[u8]) -> PacketCipher {
    // The crypto seam: under fuzzing the packets stay in the clear after
    // NEWKEYS, so that a fuzzer can reach the layers above.
    if crate::crypto_off() {
        return PacketCipher::None;
    }
    let mut iv12 = [0u8; 12];
    let n = iv.len().min(12);
    iv12[..n].copy_from_slice(&iv[..n]);
    // The lengths come from `CipherAlg::key_len`, so the copies fit.
    match alg {
        CipherAlg::ChaCha20Poly1305 => {
            let mut k = Zeroizing::new([0u8; 64]);
            k.copy_from_slice(key);
            PacketCipher::ChaCha20Poly1305(ChaCha20Poly1305::new(&k))
        }
        CipherAlg::Aes256Gcm => {
            let mut k = Zeroizing::new([0u8; 32]);
            k.copy_from_slice(key);
            PacketCipher::AesGcm(AesGcm::new_256(&k, &iv12))
        }
        CipherAlg::Aes128Gcm => {
            let mut k = Zeroizing::new([0u8; 16]);
            k.copy_from_slice(key);
            PacketCipher::AesGcm(AesGcm::new_128(&k, &iv12))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_extends_past_one_block() {
        let k = [1u8; 37];
        let h = [2u8; 32];
        let long = derive(&k, &h, b'C', &h, 64);
        let short = derive(&k, &h, b'C', &h, 32);
        assert_eq!(&long[..32], &short[..]);
        assert_ne!(&long[32..], &long[..32]);
        assert_eq!(long.len(), 64);
    }
}
