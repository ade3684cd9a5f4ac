//! Public-key signatures, for host keys (the exchange hash) and user keys
//! (RFC 4252 §7): `ssh-ed25519`, `rsa-sha2-256`, `rsa-sha2-512` and
//! `ecdsa-sha2-nistp256/384/521`; and [`Signer`], a user key whose
//! private half may live elsewhere (an ssh-agent).
//!
//! Key formats and the arithmetic are ssh-key's and RustCrypto's; this
//! module only maps SSH algorithm names onto them and checks that the
//! algorithm named in a signature is the one that was negotiated and
//! suits the key, so that no SHA-1 `ssh-rsa` signature is ever accepted.
//!
//! With the crypto seam off (cargo-fuzz's build) [`verify`] accepts every
//! well-formed signature, so that fuzzers can drive the key exchange and
//! authentication state machines with the crypto turned off.

use alloc::vec::Vec;
use core::fmt;

// `as _`: this module's own `Signer` is the SSH-level one.
use signature::Signer as _;
use signature::{SignatureEncoding, Verifier};
use ssh_key::private::KeypairData;
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, EcdsaCurve, HashAlg, PrivateKey, Signature};

use crate::wire::{Put, Reader};

/// A signature algorithm this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigAlg {
    /// `ssh-ed25519` (RFC 8709).
    Ed25519,
    /// `rsa-sha2-256` (RFC 8332).
    RsaSha256,
    /// `rsa-sha2-512` (RFC 8332).
    RsaSha512,
    /// `ecdsa-sha2-nistp256` (RFC 5656).
    EcdsaP256,
    /// `ecdsa-sha2-nistp384` (RFC 5656).
    #[cfg(feature = "ecdsa-p384-p521")]
    EcdsaP384,
    /// `ecdsa-sha2-nistp521` (RFC 5656).
    #[cfg(feature = "ecdsa-p384-p521")]
    EcdsaP521,
}

impl SigAlg {
    /// Every algorithm we verify, in our order of preference; this is
    /// what the server offers in `server-sig-algs` and the client in its
    /// host key algorithms.
    pub const VERIFY_ALL: &'static [SigAlg] = &[
        Self::Ed25519,
        Self::EcdsaP256,
        #[cfg(feature = "ecdsa-p384-p521")]
        Self::EcdsaP384,
        #[cfg(feature = "ecdsa-p384-p521")]
        Self::EcdsaP521,
        Self::RsaSha512,
        Self::RsaSha256,
    ];

    /// The SSH name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ssh-ed25519",
            Self::RsaSha256 => "rsa-sha2-256",
            Self::RsaSha512 => "rsa-sha2-512",
            Self::EcdsaP256 => "ecdsa-sha2-nistp256",
            #[cfg(feature = "ecdsa-p384-p521")]
            Self::EcdsaP384 => "ecdsa-sha2-nistp384",
            #[cfg(feature = "ecdsa-p384-p521")]
            Self::EcdsaP521 => "ecdsa-sha2-nistp521",
        }
    }

    /// The algorithm with SSH name `name`; `None` for anything else,
    /// notably SHA-1 `ssh-rsa`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::VERIFY_ALL.iter().copied().find(|a| a.name() == name)
    }

    /// What ssh-key calls it.
    fn algorithm(self) -> Algorithm {
        match self {
            Self::Ed25519 => Algorithm::Ed25519,
            Self::RsaSha256 => Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
            Self::RsaSha512 => Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Self::EcdsaP256 => Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            #[cfg(feature = "ecdsa-p384-p521")]
            Self::EcdsaP384 => Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP384,
            },
            #[cfg(feature = "ecdsa-p384-p521")]
            Self::EcdsaP521 => Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP521,
            },
        }
    }
}

/// A signature could not be made or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SigError {
    /// The algorithm is not one we speak.
    UnknownAlgorithm,
    /// The algorithm does not suit the key, or the signature names
    /// another algorithm than the one expected.
    KeyMismatch,
    /// A key or signature encoding is malformed.
    Malformed,
    /// The signature does not verify.
    BadSignature,
    /// This key cannot make signatures of that algorithm.
    CannotSign,
}

impl fmt::Display for SigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownAlgorithm => "unknown signature algorithm",
            Self::KeyMismatch => "signature algorithm does not match the key",
            Self::Malformed => "malformed key or signature",
            Self::BadSignature => "signature does not verify",
            Self::CannotSign => "key cannot sign with that algorithm",
        })
    }
}

/// The algorithms usable with a key of this type, best first.
pub fn algs_for_key(key: &KeyData) -> &'static [SigAlg] {
    match key {
        KeyData::Ed25519(_) => &[SigAlg::Ed25519],
        KeyData::Rsa(_) => &[SigAlg::RsaSha512, SigAlg::RsaSha256],
        KeyData::Ecdsa(k) => match k.curve() {
            EcdsaCurve::NistP256 => &[SigAlg::EcdsaP256],
            #[cfg(feature = "ecdsa-p384-p521")]
            EcdsaCurve::NistP384 => &[SigAlg::EcdsaP384],
            #[cfg(feature = "ecdsa-p384-p521")]
            EcdsaCurve::NistP521 => &[SigAlg::EcdsaP521],
            #[cfg(not(feature = "ecdsa-p384-p521"))]
            _ => &[],
        },
        _ => &[],
    }
}

/// The SSH wire encoding of a public key, its "public key blob".
pub fn public_key_blob(key: &KeyData) -> Vec<u8> {
    use ssh_encoding::Encode;
    let mut out = Vec::new();
    // Encoding a parsed key into a Vec cannot fail.
    let _ = key.encode(&mut out);
    out
}

/// Parses a public key blob; the whole blob must be one key.
pub fn parse_public_key(blob: &[u8]) -> Result<KeyData, SigError> {
    use ssh_encoding::Decode;
    let mut rest = blob;
    let key = KeyData::decode(&mut rest).map_err(|_| SigError::Malformed)?;
    if !rest.is_empty() {
        return Err(SigError::Malformed);
    }
    Ok(key)
}

/// A user key the client authenticates with: a [`PrivateKey`] held here,
/// or a key whose private half is elsewhere (an ssh-agent, a token). The
/// auth client calls it synchronously while it handles the server's
/// USERAUTH_PK_OK, so an implementation that asks another process blocks
/// the connection's driver for that long; it should bound the wait.
pub trait Signer {
    /// The public key, as offered to the server.
    fn public(&self) -> &KeyData;

    /// Signs `data` under `alg` (one of [`algs_for_key`] of the public
    /// key) and returns the SSH signature encoding: string algorithm name,
    /// string signature blob.
    fn sign_as(&self, alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, SigError>;
}

impl Signer for PrivateKey {
    fn public(&self) -> &KeyData {
        self.public_key().key_data()
    }

    fn sign_as(&self, alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, SigError> {
        sign(self, alg, data)
    }
}

/// Signs `data` with `key` under `alg` and returns the SSH signature
/// encoding: string algorithm name, string signature blob.
pub fn sign(key: &PrivateKey, alg: SigAlg, data: &[u8]) -> Result<Vec<u8>, SigError> {
    if !algs_for_key(key.public_key().key_data()).contains(&alg) {
        return Err(SigError::KeyMismatch);
    }
    let blob: Vec<u8> = match (key.key_data(), alg) {
        (KeypairData::Rsa(k), SigAlg::RsaSha256) => {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_private(k)?);
            signer
                .try_sign(data)
                .map_err(|_| SigError::CannotSign)?
                .to_vec()
        }
        (KeypairData::Rsa(k), SigAlg::RsaSha512) => {
            let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(rsa_private(k)?);
            signer
                .try_sign(data)
                .map_err(|_| SigError::CannotSign)?
                .to_vec()
        }
        (k, _) => {
            let sig: Signature = k.try_sign(data).map_err(|_| SigError::CannotSign)?;
            if sig.algorithm() != alg.algorithm() {
                return Err(SigError::CannotSign);
            }
            sig.as_bytes().to_vec()
        }
    };
    let mut out = Vec::with_capacity(blob.len() + 32);
    out.put_string(alg.name().as_bytes());
    out.put_string(&blob);
    Ok(out)
}

/// The rsa crate's private key. ssh-key 0.6.7's own conversion fails on
/// keys from OpenSSH's ssh-keygen (it reports `Error::Crypto`), so the
/// components are handed over here directly.
fn rsa_private(k: &ssh_key::private::RsaKeypair) -> Result<rsa::RsaPrivateKey, SigError> {
    let big = |m: &ssh_key::Mpint| {
        m.as_positive_bytes()
            .map(rsa::BigUint::from_bytes_be)
            .ok_or(SigError::CannotSign)
    };
    let primes = alloc::vec![big(&k.private.p)?, big(&k.private.q)?];
    rsa::RsaPrivateKey::from_components(
        big(&k.public.n)?,
        big(&k.public.e)?,
        big(&k.private.d)?,
        primes,
    )
    .map_err(|_| SigError::CannotSign)
}

/// Verifies the SSH signature encoding `signature` over `data` with the
/// key in `public_key_blob`. The signature must name exactly `alg`, and
/// `alg` must suit the key. Returns the key that verified.
pub fn verify(
    public_key_blob: &[u8],
    alg: SigAlg,
    signature: &[u8],
    data: &[u8],
) -> Result<KeyData, SigError> {
    let key = parse_public_key(public_key_blob)?;
    if !algs_for_key(&key).contains(&alg) {
        return Err(SigError::KeyMismatch);
    }
    let mut r = Reader::new(signature);
    let name = r.utf8().map_err(|_| SigError::Malformed)?;
    let blob = r.string().map_err(|_| SigError::Malformed)?;
    r.finish().map_err(|_| SigError::Malformed)?;
    if name != alg.name() {
        return Err(SigError::KeyMismatch);
    }
    let sig = Signature::new(alg.algorithm(), blob).map_err(|_| SigError::Malformed)?;
    if !crate::crypto_off() {
        key.verify(data, &sig).map_err(|_| SigError::BadSignature)?;
    }
    Ok(key)
}
