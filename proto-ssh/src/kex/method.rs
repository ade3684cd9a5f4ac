//! The key-exchange methods' arithmetic: what each side sends (Q_C, Q_S)
//! and the shared secret K, already encoded as it enters the exchange
//! hash and the key derivation.
//!
//! - `curve25519-sha256` (RFC 8731): Q = an X25519 public key; K is the
//!   32-byte shared point as an mpint.
//! - `mlkem768x25519-sha256` (draft-ietf-sshm-mlkem-hybrid-kex, OpenSSH
//!   9.9+): Q_C = ML-KEM-768 encapsulation key ‖ X25519 public key, Q_S =
//!   ML-KEM ciphertext ‖ X25519 public key; K = SHA-256(ML-KEM secret ‖
//!   X25519 secret) as a string, not an mpint.

use alloc::vec::Vec;
use core::fmt;

use ml_kem::kem::{Decapsulate, DecapsulationKey, Encapsulate, EncapsulationKey};
use ml_kem::{EncodedSizeUser, KemCore, MlKem768, MlKem768Params};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use x25519_dalek::{EphemeralSecret, PublicKey};
use zeroize::Zeroizing;

use super::negotiate::KexAlg;
use crate::wire::Put;

const X25519_LEN: usize = 32;
/// ML-KEM-768 encapsulation key size (FIPS 203).
const MLKEM_EK_LEN: usize = 1184;
/// ML-KEM-768 ciphertext size (FIPS 203).
const MLKEM_CT_LEN: usize = 1088;

/// The peer's public value was unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodError {
    /// Q_C or Q_S has the wrong length for the method.
    BadLength,
    /// The X25519 result was all zeros: the peer sent a low-order point.
    NonContributory,
    /// ML-KEM refused the encapsulation key or ciphertext.
    Kem,
}

impl fmt::Display for MethodError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadLength => "key exchange value has the wrong length",
            Self::NonContributory => "X25519 shared secret is zero",
            Self::Kem => "ML-KEM operation failed",
        })
    }
}

/// K, encoded for hashing (mpint or string, per method).
pub type SharedSecret = Zeroizing<Vec<u8>>;

/// The client's ephemeral keys between KEX_ECDH_INIT and the reply.
pub struct ClientEphemeral {
    alg: KexAlg,
    x25519: EphemeralSecret,
    mlkem: Option<DecapsulationKey<MlKem768Params>>,
    q_c: Vec<u8>,
}

impl fmt::Debug for ClientEphemeral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientEphemeral")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl ClientEphemeral {
    /// Fresh keys for `alg`.
    pub fn new(alg: KexAlg, rng: &mut dyn CryptoRngCore) -> Self {
        let x25519 = EphemeralSecret::random_from_rng(&mut *rng);
        let x_pub = PublicKey::from(&x25519);
        let mut q_c = Vec::new();
        let mlkem = match alg {
            KexAlg::MlKem768X25519 => {
                let (dk, ek) = MlKem768::generate(&mut &mut *rng);
                q_c.extend_from_slice(&ek.as_bytes());
                Some(dk)
            }
            KexAlg::Curve25519 | KexAlg::Curve25519Libssh => None,
        };
        q_c.extend_from_slice(x_pub.as_bytes());
        Self {
            alg,
            x25519,
            mlkem,
            q_c,
        }
    }

    /// Q_C, the value KEX_ECDH_INIT carries.
    pub fn public(&self) -> &[u8] {
        &self.q_c
    }

    /// K from the server's Q_S.
    pub fn finish(self, q_s: &[u8]) -> Result<SharedSecret, MethodError> {
        match (self.alg, self.mlkem) {
            (KexAlg::MlKem768X25519, Some(dk)) => {
                if q_s.len() != MLKEM_CT_LEN + X25519_LEN {
                    return Err(MethodError::BadLength);
                }
                let (ct, x_pub) = q_s.split_at(MLKEM_CT_LEN);
                let ct = ml_kem::Ciphertext::<MlKem768>::try_from(ct)
                    .map_err(|_| MethodError::BadLength)?;
                let kem_ss = secret32(&dk.decapsulate(&ct).map_err(|()| MethodError::Kem)?);
                let x_ss = x25519(self.x25519, x_pub)?;
                Ok(hybrid(&*kem_ss, &*x_ss))
            }
            _ => Ok(mpint_secret(&*x25519(self.x25519, q_s)?)),
        }
    }
}

/// The server's side: Q_S and K from the client's Q_C.
pub fn server_exchange(
    alg: KexAlg,
    q_c: &[u8],
    rng: &mut dyn CryptoRngCore,
) -> Result<(Vec<u8>, SharedSecret), MethodError> {
    let x25519_secret = EphemeralSecret::random_from_rng(&mut *rng);
    let x_pub = PublicKey::from(&x25519_secret);
    match alg {
        KexAlg::MlKem768X25519 => {
            if q_c.len() != MLKEM_EK_LEN + X25519_LEN {
                return Err(MethodError::BadLength);
            }
            let (ek, peer_x) = q_c.split_at(MLKEM_EK_LEN);
            let ek = ml_kem::Encoded::<EncapsulationKey<MlKem768Params>>::try_from(ek)
                .map_err(|_| MethodError::BadLength)?;
            let ek = EncapsulationKey::<MlKem768Params>::from_bytes(&ek);
            let (ct, kem_ss) = ek
                .encapsulate(&mut &mut *rng)
                .map_err(|()| MethodError::Kem)?;
            let kem_ss = secret32(&kem_ss);
            let x_ss = x25519(x25519_secret, peer_x)?;
            let mut q_s = Vec::with_capacity(MLKEM_CT_LEN + X25519_LEN);
            q_s.extend_from_slice(&ct);
            q_s.extend_from_slice(x_pub.as_bytes());
            Ok((q_s, hybrid(&*kem_ss, &*x_ss)))
        }
        KexAlg::Curve25519 | KexAlg::Curve25519Libssh => {
            let x_ss = x25519(x25519_secret, q_c)?;
            Ok((x_pub.as_bytes().to_vec(), mpint_secret(&x_ss)))
        }
    }
}

/// X25519 with the peer's 32-byte public key, refusing a zero result
/// (RFC 8731 §3).
fn x25519(secret: EphemeralSecret, peer: &[u8]) -> Result<Zeroizing<[u8; 32]>, MethodError> {
    let peer: [u8; X25519_LEN] = peer.try_into().map_err(|_| MethodError::BadLength)?;
    let shared = secret.diffie_hellman(&PublicKey::from(peer));
    if !shared.was_contributory() {
        return Err(MethodError::NonContributory);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// A 32-byte secret moved into memory that is wiped when dropped (the
/// KEM's own array type does not wipe itself).
fn secret32(bytes: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut s = Zeroizing::new([0u8; 32]);
    let n = bytes.len().min(32);
    s[..n].copy_from_slice(&bytes[..n]);
    s
}

/// RFC 8731: the X25519 output as an unsigned big-endian mpint.
fn mpint_secret(x: &[u8; 32]) -> SharedSecret {
    let mut k = Zeroizing::new(Vec::with_capacity(37));
    k.put_mpint_unsigned(x);
    k
}

/// The hybrid's K: string(SHA-256(kem secret ‖ x25519 secret)).
fn hybrid(kem_ss: &[u8], x_ss: &[u8]) -> SharedSecret {
    let mut h = Sha256::new();
    h.update(kem_ss);
    h.update(x_ss);
    let digest = Zeroizing::new(h.finalize());
    let mut k = Zeroizing::new(Vec::with_capacity(36));
    k.put_string(&digest);
    k
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::fuzzing::TestRng;

    #[test]
    fn both_sides_agree_for_every_method() {
        for &alg in KexAlg::ALL {
            let mut rng = TestRng(1);
            let client = ClientEphemeral::new(alg, &mut rng);
            let (q_s, k_server) = server_exchange(alg, client.public(), &mut rng).unwrap();
            let k_client = client.finish(&q_s).unwrap();
            assert_eq!(k_client, k_server, "{alg:?}");
        }
    }

    #[test]
    fn low_order_point_refused() {
        let mut rng = TestRng(2);
        let err = server_exchange(KexAlg::Curve25519, &[0; 32], &mut rng).unwrap_err();
        assert_eq!(err, MethodError::NonContributory);
    }

    #[test]
    fn wrong_lengths_refused() {
        let mut rng = TestRng(3);
        for &alg in KexAlg::ALL {
            assert_eq!(
                server_exchange(alg, &[9; 31], &mut rng).unwrap_err(),
                MethodError::BadLength
            );
            let client = ClientEphemeral::new(alg, &mut rng);
            assert_eq!(client.finish(&[9; 33]).unwrap_err(), MethodError::BadLength);
        }
    }
}
