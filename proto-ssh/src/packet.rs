//! The binary packet protocol of RFC 4253 §6:
//! `packet_length[4] padding_length[1] payload padding tag`.
//!
//! [`Sealer`] frames outgoing payloads; [`Opener`] takes incoming bytes in
//! pieces of any size and yields whole payloads. Each keeps the sequence
//! number of its direction (a wrapping u32, reset by strict kex) and the
//! cipher in force, which the key exchange replaces at NEWKEYS.
//!
//! The opener reads the 4-byte length first and checks it against the
//! OpenSSH limits before it buffers or decrypts anything else (the
//! unchecked-length bugs of libssh2 and russh), and it stops after each
//! packet so that a NEWKEYS can change the cipher before the next byte.

use alloc::vec::Vec;
use core::fmt;
use rand_core::{CryptoRng, RngCore};

use crate::cipher::{CipherError, PacketCipher};

/// The largest `packet_length` accepted or produced (OpenSSH's
/// `PACKET_MAX_SIZE`).
pub const PACKET_MAX_SIZE: u32 = 256 * 1024;
/// The smallest `packet_length` accepted: a padding length byte and four
/// bytes of padding (OpenSSH's `1 + 4`).
pub const PACKET_MIN_SIZE: u32 = 5;
/// RFC 4253 §6: at least four bytes of random padding.
pub const MIN_PADDING: usize = 4;
/// The buffer first reserved for an incoming packet; it grows as the
/// packet's bytes arrive.
const INITIAL_BUFFER: usize = 4096;

/// The packet stream can no longer be read or written; the connection
/// must end (with a DISCONNECT where the peer can still read one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PacketError {
    /// `packet_length` is above [`PACKET_MAX_SIZE`].
    TooLong(u32),
    /// `packet_length` is below [`PACKET_MIN_SIZE`].
    TooShort(u32),
    /// `packet_length` does not fill whole cipher blocks.
    Misaligned {
        /// The announced `packet_length`.
        length: u32,
        /// The cipher's block size.
        block_size: usize,
    },
    /// `padding_length` is below four or leaves no room in the packet.
    BadPadding {
        /// The announced `padding_length`.
        padding: u8,
        /// The announced `packet_length`.
        length: u32,
    },
    /// The cipher refused the packet (a bad tag).
    Cipher(CipherError),
    /// A payload too large to fit in [`PACKET_MAX_SIZE`] was to be sent.
    PayloadTooLarge(usize),
    /// An earlier error ended this stream.
    Failed,
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong(n) => write!(f, "packet length {n} above {PACKET_MAX_SIZE}"),
            Self::TooShort(n) => write!(f, "packet length {n} below {PACKET_MIN_SIZE}"),
            Self::Misaligned { length, block_size } => {
                write!(f, "packet length {length} not a multiple of {block_size}")
            }
            Self::BadPadding { padding, length } => {
                write!(f, "padding length {padding} invalid in packet of {length}")
            }
            Self::Cipher(e) => write!(f, "{e}"),
            Self::PayloadTooLarge(n) => write!(f, "payload of {n} bytes too large"),
            Self::Failed => f.write_str("packet stream failed earlier"),
        }
    }
}

impl From<CipherError> for PacketError {
    fn from(e: CipherError) -> Self {
        Self::Cipher(e)
    }
}

/// Checks a decoded `packet_length` against the size and block rules.
fn check_length(cipher: &PacketCipher, length: u32) -> Result<(), PacketError> {
    if length > PACKET_MAX_SIZE {
        return Err(PacketError::TooLong(length));
    }
    if length < PACKET_MIN_SIZE {
        return Err(PacketError::TooShort(length));
    }
    let block_size = cipher.block_size();
    // As OpenSSH: with an AEAD the length field is outside the blocks.
    let covered = if cipher.length_is_separate() {
        length as usize
    } else {
        4 + length as usize
    };
    if covered % block_size != 0 {
        return Err(PacketError::Misaligned { length, block_size });
    }
    Ok(())
}

/// The accessors both directions share: the cipher in force and the
/// sequence number. NEWKEYS replaces the cipher between packets (the
/// opener stops after each one), and strict kex resets the number.
macro_rules! direction_keys {
    ($t:ty) => {
        impl $t {
            /// Installs the cipher of a new key exchange, for the next
            /// packet on.
            pub fn set_cipher(&mut self, cipher: PacketCipher) {
                self.cipher = cipher;
            }

            /// The cipher in force.
            pub fn cipher(&self) -> &PacketCipher {
                &self.cipher
            }

            /// The sequence number the next packet will have.
            pub fn seq(&self) -> u32 {
                self.seq
            }

            /// Sets the next sequence number to 0, as strict kex does
            /// after NEWKEYS.
            pub fn reset_seq(&mut self) {
                self.seq = 0;
            }
        }
    };
}

direction_keys!(Sealer);
direction_keys!(Opener);

/// Frames outgoing payloads for one direction.
#[derive(Debug)]
pub struct Sealer {
    cipher: PacketCipher,
    seq: u32,
}

impl Sealer {
    /// A sealer starting at sequence number 0 with `cipher`.
    pub fn new(cipher: PacketCipher) -> Self {
        Self { cipher, seq: 0 }
    }

    /// Appends `payload` as one packet to `out`, padded with bytes from
    /// `rng`, and returns its sequence number.
    pub fn seal<R: RngCore + CryptoRng>(
        &mut self,
        payload: &[u8],
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<u32, PacketError> {
        let block_size = self.cipher.block_size();
        // The bytes the blocks must cover: padding_length and payload,
        // plus the length field unless the cipher keeps it apart.
        let unpadded = 1
            + payload.len()
            + if self.cipher.length_is_separate() {
                0
            } else {
                4
            };
        let mut padding = block_size - unpadded % block_size;
        if padding < MIN_PADDING {
            padding += block_size;
        }
        let length = 1 + payload.len() + padding;
        if length > PACKET_MAX_SIZE as usize {
            return Err(PacketError::PayloadTooLarge(payload.len()));
        }
        let start = out.len();
        let tag_len = self.cipher.tag_len();
        out.reserve(4 + length + tag_len);
        // `length` is at most PACKET_MAX_SIZE and `padding` below 2 blocks.
        out.extend_from_slice(&(length as u32).to_be_bytes());
        out.push(padding as u8);
        out.extend_from_slice(payload);
        let pad_start = out.len();
        out.resize(pad_start + padding + tag_len, 0);
        rng.fill_bytes(&mut out[pad_start..pad_start + padding]);
        let (packet, tag) = out[start..].split_at_mut(4 + length);
        let seq = self.seq;
        if let Err(e) = self.cipher.seal(seq, packet, tag) {
            // Leave no half-made packet in the caller's buffer.
            out.truncate(start);
            return Err(e.into());
        }
        self.seq = seq.wrapping_add(1);
        Ok(seq)
    }
}

/// One packet read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Its sequence number.
    pub seq: u32,
    /// Its payload, padding removed.
    pub payload: Vec<u8>,
}

/// What one [`Opener::feed`] call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fed {
    /// How many bytes of the input were taken; the caller feeds the rest
    /// again (after acting on `packet`, which may change the cipher).
    pub consumed: usize,
    /// The packet these bytes completed, if any.
    pub packet: Option<Packet>,
}

#[derive(Debug)]
enum State {
    /// Reading the 4-byte length field.
    Header { buf: [u8; 4], have: usize },
    /// Reading the rest of a packet whose length was checked. `buf` holds
    /// the whole packet and tag as they arrive, length field first.
    Body { length: u32, buf: Vec<u8> },
    /// An error ended the stream.
    Failed,
}

/// Reads incoming packets for one direction.
#[derive(Debug)]
pub struct Opener {
    cipher: PacketCipher,
    seq: u32,
    state: State,
}

impl Opener {
    /// An opener starting at sequence number 0 with `cipher`.
    pub fn new(cipher: PacketCipher) -> Self {
        Self {
            cipher,
            seq: 0,
            state: State::Header {
                buf: [0; 4],
                have: 0,
            },
        }
    }

    /// How many bytes of a partial packet are held.
    pub fn buffered(&self) -> usize {
        match &self.state {
            State::Header { have, .. } => *have,
            State::Body { buf, .. } => buf.len(),
            State::Failed => 0,
        }
    }

    /// Takes bytes from the peer, up to the end of the first packet they
    /// complete. A non-empty input always has at least one byte taken.
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, PacketError> {
        let result = self.step(input);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn step(&mut self, input: &[u8]) -> Result<Fed, PacketError> {
        let mut consumed = 0;
        if let State::Header { buf, have } = &mut self.state {
            let n = (4 - *have).min(input.len());
            buf[*have..*have + n].copy_from_slice(&input[..n]);
            *have += n;
            consumed = n;
            if *have < 4 {
                return Ok(Fed {
                    consumed,
                    packet: None,
                });
            }
            let header = *buf;
            let length = self.cipher.packet_length(self.seq, header);
            check_length(&self.cipher, length)?;
            // Only now, with the length bounded, is the packet buffered;
            // memory grows with the bytes that come, so that 4 bytes from
            // the peer cannot reserve a whole maximal packet.
            let total = 4 + length as usize + self.cipher.tag_len();
            let mut body = Vec::with_capacity(total.min(INITIAL_BUFFER));
            body.extend_from_slice(&header);
            self.state = State::Body { length, buf: body };
        }
        let State::Body { length, buf } = &mut self.state else {
            return Err(PacketError::Failed);
        };
        let length = *length;
        let total = 4 + length as usize + self.cipher.tag_len();
        let rest = &input[consumed..];
        let n = (total - buf.len()).min(rest.len());
        if buf.capacity() < buf.len() + n {
            // Doubling, but never beyond the packet: the buffer ends at
            // most `total` bytes long, not twice that.
            let want = (buf.capacity() * 2).max(buf.len() + n).min(total);
            buf.reserve_exact(want - buf.len());
        }
        buf.extend_from_slice(&rest[..n]);
        consumed += n;
        if buf.len() < total {
            return Ok(Fed {
                consumed,
                packet: None,
            });
        }
        let mut buf = core::mem::take(buf);
        let (packet, tag) = buf.split_at_mut(4 + length as usize);
        self.cipher.open(self.seq, packet, tag)?;
        let padding = packet[4];
        if usize::from(padding) < MIN_PADDING || u32::from(padding) >= length {
            return Err(PacketError::BadPadding { padding, length });
        }
        let payload_len = length as usize - 1 - usize::from(padding);
        buf.truncate(5 + payload_len);
        buf.drain(..5);
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        self.state = State::Header {
            buf: [0; 4],
            have: 0,
        };
        Ok(Fed {
            consumed,
            packet: Some(Packet { seq, payload: buf }),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Zeros for padding: enough to test framing.
    struct Zeros;

    impl RngCore for Zeros {
        fn next_u32(&mut self) -> u32 {
            0
        }
        fn next_u64(&mut self) -> u64 {
            0
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            dest.fill(0);
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            dest.fill(0);
            Ok(())
        }
    }

    impl CryptoRng for Zeros {}

    #[test]
    fn sequence_numbers_wrap() {
        let mut sealer = Sealer::new(PacketCipher::None);
        let mut opener = Opener::new(PacketCipher::None);
        sealer.seq = u32::MAX;
        opener.seq = u32::MAX;
        let mut wire = Vec::new();
        assert_eq!(sealer.seal(b"a", &mut Zeros, &mut wire), Ok(u32::MAX));
        assert_eq!(sealer.seal(b"b", &mut Zeros, &mut wire), Ok(0));
        let first = opener.feed(&wire).unwrap();
        assert_eq!(first.packet.unwrap().seq, u32::MAX);
        let second = opener.feed(&wire[first.consumed..]).unwrap();
        assert_eq!(second.packet.unwrap().seq, 0);
        assert_eq!(opener.seq(), 1);
    }

    fn capacity(opener: &Opener) -> usize {
        match &opener.state {
            State::Body { buf, .. } => buf.capacity(),
            _ => 0,
        }
    }

    #[test]
    fn buffer_grows_with_the_bytes_not_the_claim() {
        let mut sealer = Sealer::new(PacketCipher::None);
        let mut wire = Vec::new();
        let payload = alloc::vec![7u8; PACKET_MAX_SIZE as usize - 16];
        sealer.seal(&payload, &mut Zeros, &mut wire).unwrap();
        let mut opener = Opener::new(PacketCipher::None);
        // A maximal length claimed: only the first few KiB are reserved.
        assert_eq!(opener.feed(&wire[..8]).unwrap().consumed, 8);
        assert!(capacity(&opener) <= INITIAL_BUFFER);
        let mut at = 8;
        for piece in [100, 5000, 70_000, 1] {
            at += opener.feed(&wire[at..at + piece]).unwrap().consumed;
            assert!(capacity(&opener) <= wire.len());
        }
        let fed = opener.feed(&wire[at..]).unwrap();
        assert_eq!(fed.packet.unwrap().payload, payload);
    }
}
