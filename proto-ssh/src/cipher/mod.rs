//! The packet ciphers, behind one enum so that the packet layer needs no
//! generics and the key exchange can swap them at NEWKEYS.
//!
//! Every cipher here works on a whole packet at once: the 4-byte
//! `packet_length` field followed by the `packet_length` bytes that it
//! counts, with a separate 16-byte tag (none for `none`). The packet layer
//! learns the length first through [`PacketCipher::packet_length`], checks
//! it, and only then buffers the rest and calls [`PacketCipher::open`].

mod aes_gcm;
mod chacha;

use core::fmt;

pub use self::aes_gcm::AesGcm;
pub use self::chacha::ChaCha20Poly1305;

/// The length of the authentication tag of both AEAD ciphers.
pub const TAG_LEN: usize = 16;

/// A packet failed to open, or had the wrong shape for the cipher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CipherError {
    /// The tag did not match: the packet was forged or corrupted.
    BadTag,
    /// The packet or tag buffer has the wrong size for this cipher.
    BadLength,
}

impl fmt::Display for CipherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadTag => "packet authentication failed",
            Self::BadLength => "packet has the wrong size for the cipher",
        })
    }
}

/// The cipher protecting one direction of a connection.
#[derive(Debug)]
pub enum PacketCipher {
    /// No protection: the state before the first NEWKEYS.
    None,
    /// `chacha20-poly1305@openssh.com`.
    ChaCha20Poly1305(ChaCha20Poly1305),
    /// `aes128-gcm@openssh.com` or `aes256-gcm@openssh.com`.
    AesGcm(AesGcm),
}

impl PacketCipher {
    /// The name negotiated in KEXINIT.
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ChaCha20Poly1305(_) => chacha::NAME,
            Self::AesGcm(c) => c.name(),
        }
    }

    /// The block size the padding rounds to (RFC 4253 §6: at least 8).
    pub fn block_size(&self) -> usize {
        match self {
            Self::None | Self::ChaCha20Poly1305(_) => 8,
            Self::AesGcm(_) => 16,
        }
    }

    /// The length of the tag after each packet.
    pub fn tag_len(&self) -> usize {
        match self {
            Self::None => 0,
            Self::ChaCha20Poly1305(_) | Self::AesGcm(_) => TAG_LEN,
        }
    }

    /// Whether `packet_length` is outside the padded blocks. For the AEAD
    /// ciphers the length field is authenticated data on its own (OpenSSH's
    /// `aadlen`), so only `packet_length` must be a multiple of the block
    /// size; otherwise the length field counts too.
    pub fn length_is_separate(&self) -> bool {
        !matches!(self, Self::None)
    }

    /// Reads `packet_length` from the first 4 bytes of a packet with
    /// sequence number `seq`, decrypting it if the cipher hides it. The
    /// value is not authenticated yet: check it before trusting it.
    pub fn packet_length(&self, seq: u32, header: [u8; 4]) -> u32 {
        match self {
            Self::None | Self::AesGcm(_) => u32::from_be_bytes(header),
            Self::ChaCha20Poly1305(c) => c.packet_length(seq, header),
        }
    }

    /// Encrypts `packet` (length field included) in place and writes the
    /// tag into `tag`, which must be [`tag_len`](Self::tag_len) bytes.
    pub fn seal(&mut self, seq: u32, packet: &mut [u8], tag: &mut [u8]) -> Result<(), CipherError> {
        if packet.len() < 4 || tag.len() != self.tag_len() {
            return Err(CipherError::BadLength);
        }
        match self {
            Self::None => Ok(()),
            Self::ChaCha20Poly1305(c) => c.seal(seq, packet, tag),
            Self::AesGcm(c) => c.seal(packet, tag),
        }
    }

    /// Checks `tag` over the encrypted `packet`, then decrypts it in place
    /// (length field included). On error `packet` holds no plaintext.
    pub fn open(&mut self, seq: u32, packet: &mut [u8], tag: &[u8]) -> Result<(), CipherError> {
        if packet.len() < 4 || tag.len() != self.tag_len() {
            return Err(CipherError::BadLength);
        }
        match self {
            Self::None => Ok(()),
            Self::ChaCha20Poly1305(c) => c.open(seq, packet, tag),
            Self::AesGcm(c) => c.open(packet, tag),
        }
    }
}
