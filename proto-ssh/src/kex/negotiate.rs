//! KEXINIT (RFC 4253 §7.1): what each side offers and what is agreed.
//!
//! We offer only what we implement and consider sound: the ML-KEM hybrid
//! and curve25519 for kex, Ed25519/RSA-SHA2/ECDSA-P256 signatures, and the
//! AEAD ciphers. The strict-kex and ext-info markers ride in the kex list
//! of the first KEXINIT only.

use alloc::vec::Vec;
use core::fmt;

use crate::sig::SigAlg;
use crate::version::Role;
use crate::wire::{NameList, Put, Reader, WireError};

/// A key-exchange method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KexAlg {
    /// `mlkem768x25519-sha256`: ML-KEM-768 and X25519, hashed together.
    MlKem768X25519,
    /// `curve25519-sha256` (RFC 8731).
    Curve25519,
    /// `curve25519-sha256@libssh.org`, the same method under its old name.
    Curve25519Libssh,
}

impl KexAlg {
    /// Every method, best first.
    pub const ALL: &'static [KexAlg] = &[
        Self::MlKem768X25519,
        Self::Curve25519,
        Self::Curve25519Libssh,
    ];
    /// The post-quantum hybrids only.
    pub const PQ_ONLY: &'static [KexAlg] = &[Self::MlKem768X25519];

    /// The SSH name.
    pub fn name(self) -> &'static str {
        match self {
            Self::MlKem768X25519 => "mlkem768x25519-sha256",
            Self::Curve25519 => "curve25519-sha256",
            Self::Curve25519Libssh => "curve25519-sha256@libssh.org",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }
}

/// A packet cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherAlg {
    /// `chacha20-poly1305@openssh.com`.
    ChaCha20Poly1305,
    /// `aes256-gcm@openssh.com`.
    Aes256Gcm,
    /// `aes128-gcm@openssh.com`.
    Aes128Gcm,
}

impl CipherAlg {
    /// Every cipher, best first.
    pub const ALL: &'static [CipherAlg] =
        &[Self::ChaCha20Poly1305, Self::Aes256Gcm, Self::Aes128Gcm];

    /// The SSH name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChaCha20Poly1305 => "chacha20-poly1305@openssh.com",
            Self::Aes256Gcm => "aes256-gcm@openssh.com",
            Self::Aes128Gcm => "aes128-gcm@openssh.com",
        }
    }

    /// The cipher named `name`, if we speak it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Key bytes the cipher takes.
    pub fn key_len(self) -> usize {
        match self {
            Self::ChaCha20Poly1305 => 64,
            Self::Aes256Gcm => 32,
            Self::Aes128Gcm => 16,
        }
    }

    /// IV bytes the cipher takes.
    pub fn iv_len(self) -> usize {
        match self {
            Self::ChaCha20Poly1305 => 0,
            Self::Aes256Gcm | Self::Aes128Gcm => 12,
        }
    }
}

/// What one side offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    /// Kex methods, best first.
    pub kex: Vec<KexAlg>,
    /// Host key algorithms: what the server can sign with, or what the
    /// client accepts.
    pub host_key: Vec<SigAlg>,
    /// Ciphers, best first (both directions).
    pub ciphers: Vec<CipherAlg>,
}

impl Preferences {
    /// Everything we implement, in our order.
    pub fn all(host_key: Vec<SigAlg>) -> Self {
        Self {
            kex: KexAlg::ALL.to_vec(),
            host_key,
            ciphers: CipherAlg::ALL.to_vec(),
        }
    }
}

/// MACs we list. Every cipher we offer is an AEAD, and with an AEAD the
/// MAC is not negotiated (OpenSSH `kex_choose_conf`, Go `aeadCiphers`), so
/// none of these is ever used; they are listed because some peers refuse
/// an empty MAC list.
const MACS: &[&str] = &[
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
];

const STRICT_CLIENT: &str = "kex-strict-c-v00@openssh.com";
const STRICT_SERVER: &str = "kex-strict-s-v00@openssh.com";
const EXT_INFO_CLIENT: &str = "ext-info-c";
const EXT_INFO_SERVER: &str = "ext-info-s";

/// Builds our KEXINIT payload. `first` adds the strict-kex and ext-info
/// markers, which belong to the first key exchange only.
pub fn encode_kexinit(role: Role, prefs: &Preferences, cookie: [u8; 16], first: bool) -> Vec<u8> {
    let mut kex: Vec<&str> = prefs.kex.iter().map(|k| k.name()).collect();
    if first {
        match role {
            Role::Client => kex.extend([EXT_INFO_CLIENT, STRICT_CLIENT]),
            Role::Server => kex.extend([EXT_INFO_SERVER, STRICT_SERVER]),
        }
    }
    let host_key: Vec<&str> = prefs.host_key.iter().map(|k| k.name()).collect();
    let ciphers: Vec<&str> = prefs.ciphers.iter().map(|c| c.name()).collect();
    let mut out = Vec::with_capacity(512);
    out.put_u8(crate::msg::KEXINIT);
    out.put_raw(&cookie);
    out.put_name_list(&kex);
    out.put_name_list(&host_key);
    out.put_name_list(&ciphers);
    out.put_name_list(&ciphers);
    out.put_name_list(MACS);
    out.put_name_list(MACS);
    out.put_name_list(&["none"]);
    out.put_name_list(&["none"]);
    out.put_name_list(&[]);
    out.put_name_list(&[]);
    out.put_bool(false);
    out.put_u32(0);
    out
}

/// A KEXINIT as received, borrowed from its payload.
#[derive(Debug, Clone)]
pub struct KexInit<'a> {
    /// kex_algorithms.
    pub kex: NameList<'a>,
    /// server_host_key_algorithms.
    pub host_key: NameList<'a>,
    /// encryption_algorithms_client_to_server.
    pub cipher_c2s: NameList<'a>,
    /// encryption_algorithms_server_to_client.
    pub cipher_s2c: NameList<'a>,
    /// compression, both directions.
    pub compression: [NameList<'a>; 2],
    /// first_kex_packet_follows.
    pub first_kex_follows: bool,
}

impl<'a> KexInit<'a> {
    /// Parses a KEXINIT payload (message number included).
    pub fn parse(payload: &'a [u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(payload);
        if r.u8()? != crate::msg::KEXINIT {
            return Err(WireError::BadValue);
        }
        r.bytes(16)?;
        let kex = r.name_list()?;
        let host_key = r.name_list()?;
        let cipher_c2s = r.name_list()?;
        let cipher_s2c = r.name_list()?;
        let _mac_c2s = r.name_list()?;
        let _mac_s2c = r.name_list()?;
        let compression = [r.name_list()?, r.name_list()?];
        let _lang = (r.name_list()?, r.name_list()?);
        let first_kex_follows = r.bool()?;
        let _reserved = r.u32()?;
        // RFC 4253 leaves no room for more; trailing bytes are refused.
        r.finish()?;
        Ok(Self {
            kex,
            host_key,
            cipher_c2s,
            cipher_s2c,
            compression,
            first_kex_follows,
        })
    }

    /// Whether the peer (in `peer_role`) offers strict kex.
    pub fn strict(&self, peer_role: Role) -> bool {
        self.kex.contains(match peer_role {
            Role::Client => STRICT_CLIENT,
            Role::Server => STRICT_SERVER,
        })
    }

    /// Whether the peer (in `peer_role`) wants EXT_INFO.
    pub fn ext_info(&self, peer_role: Role) -> bool {
        self.kex.contains(match peer_role {
            Role::Client => EXT_INFO_CLIENT,
            Role::Server => EXT_INFO_SERVER,
        })
    }
}

/// What both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The kex method.
    pub kex: KexAlg,
    /// The host key algorithm.
    pub host_key: SigAlg,
    /// Client-to-server cipher.
    pub cipher_c2s: CipherAlg,
    /// Server-to-client cipher.
    pub cipher_s2c: CipherAlg,
    /// Whether the peer's guessed first kex packet must be ignored
    /// (RFC 4253 §7.1: it guessed, and the first kex or host key
    /// algorithms of the two KEXINITs differ).
    pub ignore_guess: bool,
}

/// No algorithm of some kind is common to both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCommon {
    /// No kex method.
    Kex,
    /// No host key algorithm.
    HostKey,
    /// No cipher.
    Cipher,
    /// No compression ("none" is all we speak).
    Compression,
}

impl fmt::Display for NoCommon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kex => "no common key exchange method",
            Self::HostKey => "no common host key algorithm",
            Self::Cipher => "no common cipher",
            Self::Compression => "no common compression",
        })
    }
}

/// RFC 4253 §7.1: the first algorithm on the client's list that is also
/// on the server's. `ours` are our preferences as names; `peer` the
/// peer's list.
fn choose<'n>(role: Role, ours: &[&'n str], peer: &NameList<'_>) -> Option<&'n str> {
    match role {
        Role::Client => ours.iter().copied().find(|n| peer.contains(n)),
        Role::Server => peer
            .iter()
            .find_map(|p| ours.iter().copied().find(|n| *n == p)),
    }
}

/// RFC 4253 §7.1 (OpenSSH `proposals_match`): a guess is right only when
/// the peer's first kex method is our first, and its first host key
/// algorithm our first, as both KEXINITs list them. That the agreed method
/// happens to be the peer's first is not enough: the peer cannot know our
/// choice before it has seen our KEXINIT, so it judges by the first names
/// alone and sends its packet again whenever they differ.
fn guess_right(ours: &Preferences, peer: &KexInit<'_>) -> bool {
    let kex = ours.kex.first().map(|k| k.name());
    let host_key = ours.host_key.first().map(|k| k.name());
    kex.is_some()
        && host_key.is_some()
        && peer.kex.iter().next() == kex
        && peer.host_key.iter().next() == host_key
}

/// Agrees on algorithms between our preferences (we are `role`) and the
/// peer's KEXINIT.
pub fn negotiate(
    role: Role,
    ours: &Preferences,
    peer: &KexInit<'_>,
) -> Result<Negotiated, NoCommon> {
    let kex_names: Vec<&str> = ours.kex.iter().map(|k| k.name()).collect();
    let kex = choose(role, &kex_names, &peer.kex)
        .and_then(KexAlg::from_name)
        .ok_or(NoCommon::Kex)?;
    let hk_names: Vec<&str> = ours.host_key.iter().map(|k| k.name()).collect();
    let host_key = choose(role, &hk_names, &peer.host_key)
        .and_then(SigAlg::from_name)
        .ok_or(NoCommon::HostKey)?;
    let c_names: Vec<&str> = ours.ciphers.iter().map(|c| c.name()).collect();
    let cipher_c2s = choose(role, &c_names, &peer.cipher_c2s)
        .and_then(CipherAlg::from_name)
        .ok_or(NoCommon::Cipher)?;
    let cipher_s2c = choose(role, &c_names, &peer.cipher_s2c)
        .and_then(CipherAlg::from_name)
        .ok_or(NoCommon::Cipher)?;
    if !peer.compression.iter().all(|c| c.contains("none")) {
        return Err(NoCommon::Compression);
    }
    let ignore_guess = peer.first_kex_follows && !guess_right(ours, peer);
    Ok(Negotiated {
        kex,
        host_key,
        cipher_c2s,
        cipher_s2c,
        ignore_guess,
    })
}
