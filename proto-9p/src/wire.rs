//! Field-level encoding: little-endian integers, strings, qids and the
//! counted arrays of 9P.
//!
//! Every length read from the wire is checked against the bytes left in the
//! frame before anything is allocated, and the frame itself was checked
//! against msize before it was buffered, so no peer-chosen number can make
//! us allocate more than one msize.

use alloc::vec::Vec;
use bytes::{Buf, BufMut, Bytes};
use core::fmt;

use crate::consts::MAX_WELEM;
use crate::qid::Qid;

/// Why a message body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A field runs past the end of the frame.
    Truncated,
    /// Bytes are left over after the last field.
    TrailingBytes,
    /// A Twalk or Rwalk names more than 16 elements.
    TooManyWalkElements,
    /// The message type is not one of 9P2000.L.
    UnknownType(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("field runs past the end of the message"),
            Self::TrailingBytes => f.write_str("bytes left over after the last field"),
            Self::TooManyWalkElements => f.write_str("more than 16 walk elements"),
            Self::UnknownType(t) => write!(f, "unknown message type {t}"),
        }
    }
}

/// A value with a 9P wire form.
pub trait Wire: Sized {
    /// The encoded size in bytes.
    fn wire_len(&self) -> usize;
    /// Appends the encoded form.
    fn encode(&self, out: &mut Vec<u8>);
    /// Takes the value from the front of `buf`.
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError>;
}

fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError::Truncated)
    } else {
        Ok(())
    }
}

macro_rules! wire_int {
    ($($t:ty, $get:ident, $put:ident;)*) => {$(
        impl Wire for $t {
            fn wire_len(&self) -> usize {
                core::mem::size_of::<$t>()
            }
            fn encode(&self, out: &mut Vec<u8>) {
                out.$put(*self);
            }
            fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
                need(buf, core::mem::size_of::<$t>())?;
                Ok(buf.$get())
            }
        }
    )*};
}

wire_int! {
    u8, get_u8, put_u8;
    u16, get_u16_le, put_u16_le;
    u32, get_u32_le, put_u32_le;
    u64, get_u64_le, put_u64_le;
}

/// A 9P string: `len[2] bytes[len]`.
///
/// Linux file names are bytes, not UTF-8, so strings are kept as bytes.
/// Encoding truncates nothing: callers keep names under 64 KiB (NAME_MAX is
/// 255 and PATH_MAX 4096 on Linux).
impl Wire for Vec<u8> {
    fn wire_len(&self) -> usize {
        2 + self.len()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        debug_assert!(self.len() <= u16::MAX as usize);
        out.put_u16_le(self.len() as u16);
        out.extend_from_slice(self);
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        let len = u16::decode(buf)? as usize;
        need(buf, len)?;
        let s = buf[..len].to_vec();
        buf.advance(len);
        Ok(s)
    }
}

/// Payload of Tread/Twrite/Rreaddir: `count[4] data[count]`.
///
/// Decoding slices the frame instead of copying it.
impl Wire for Bytes {
    fn wire_len(&self) -> usize {
        4 + self.len()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32_le(self.len() as u32);
        out.extend_from_slice(self);
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        let len = u32::decode(buf)? as usize;
        need(buf, len)?;
        Ok(buf.split_to(len))
    }
}

impl Wire for Qid {
    fn wire_len(&self) -> usize {
        13
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.ty);
        out.put_u32_le(self.version);
        out.put_u64_le(self.path);
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        need(buf, 13)?;
        Ok(Qid {
            ty: buf.get_u8(),
            version: buf.get_u32_le(),
            path: buf.get_u64_le(),
        })
    }
}

/// The counted arrays of Twalk (names) and Rwalk (qids): `n[2] item*n`,
/// at most [`MAX_WELEM`] items.
impl<T: Wire + WalkItem> Wire for Vec<T> {
    fn wire_len(&self) -> usize {
        2 + self.iter().map(Wire::wire_len).sum::<usize>()
    }
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16_le(self.len() as u16);
        for item in self {
            item.encode(out);
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self, DecodeError> {
        let n = u16::decode(buf)? as usize;
        if n > MAX_WELEM {
            return Err(DecodeError::TooManyWalkElements);
        }
        // n <= 16 and each item is at least 2 bytes: the check above bounds
        // the allocation, the per-item decode bounds the reads.
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(T::decode(buf)?);
        }
        Ok(items)
    }
}

/// Marks the element types of walk arrays, so that `Vec<u8>` (a string)
/// does not collide with the array impl.
pub trait WalkItem {}
impl WalkItem for Vec<u8> {}
impl WalkItem for Qid {}
