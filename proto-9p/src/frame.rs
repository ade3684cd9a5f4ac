//! Framing: `size[4] type[1] tag[2] body`, where size counts itself.
//!
//! The frame is split into a header check (done on the first 7 bytes, before
//! anything is buffered beyond msize) and a body decode (done on the whole
//! frame). A bad header breaks the stream; a bad body only fails its tag.

use alloc::vec::Vec;
use bytes::{Buf, BufMut, Bytes};
use core::fmt;

use crate::consts::HEADER_LEN;
use crate::messages::Message;
use crate::wire::DecodeError;

/// A message with its tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fcall {
    /// The request tag, echoed in the reply.
    pub tag: u16,
    /// The message.
    pub msg: Message,
}

/// The stream can no longer be parsed; the connection must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// The size field is below the 7-byte header.
    TooShort(u32),
    /// The size field exceeds the negotiated msize.
    TooLarge {
        /// The size the peer announced.
        size: u32,
        /// The limit in force.
        msize: u32,
    },
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort(s) => write!(f, "frame size {s} is shorter than the 9P header"),
            Self::TooLarge { size, msize } => {
                write!(f, "frame size {size} exceeds msize {msize}")
            }
        }
    }
}

/// Checks the size field at the front of `buf` against `msize`.
///
/// Returns the frame's full length once four bytes are there, so the caller
/// knows how much to buffer; `Ok(None)` means "need more bytes".
pub fn frame_len(buf: &[u8], msize: u32) -> Result<Option<usize>, FramingError> {
    let Some(size) = buf.get(..4) else {
        return Ok(None);
    };
    let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]);
    if (size as usize) < HEADER_LEN {
        return Err(FramingError::TooShort(size));
    }
    if size > msize {
        return Err(FramingError::TooLarge { size, msize });
    }
    Ok(Some(size as usize))
}

/// A frame whose body failed to decode; its tag is still known, so the
/// server can answer it with Rlerror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadMessage {
    /// The frame's tag.
    pub tag: u16,
    /// The frame's type byte.
    pub msg_type: u8,
    /// What was wrong.
    pub error: DecodeError,
}

/// Decodes one complete frame (as delimited by [`frame_len`]).
///
/// Payloads (Twrite, Rread, Rreaddir) are slices of `frame`: no copy.
pub fn decode_frame(mut frame: Bytes) -> Result<Fcall, BadMessage> {
    if frame.len() < HEADER_LEN {
        return Err(BadMessage {
            tag: crate::consts::NOTAG,
            msg_type: 0,
            error: DecodeError::Truncated,
        });
    }
    let size = frame.get_u32_le() as usize;
    let msg_type = frame.get_u8();
    let tag = frame.get_u16_le();
    let bad = |error| BadMessage {
        tag,
        msg_type,
        error,
    };
    if size != frame.len() + HEADER_LEN {
        return Err(bad(if size > frame.len() + HEADER_LEN {
            DecodeError::Truncated
        } else {
            DecodeError::TrailingBytes
        }));
    }
    let msg = Message::decode_body(msg_type, frame).map_err(bad)?;
    Ok(Fcall { tag, msg })
}

/// Appends `msg` as a frame with `tag`; returns the frame's length.
pub fn encode_frame(tag: u16, msg: &Message, out: &mut Vec<u8>) -> usize {
    let size = HEADER_LEN + msg.body_len();
    out.reserve(size);
    out.put_u32_le(size as u32);
    out.put_u8(msg.msg_type());
    out.put_u16_le(tag);
    msg.encode_body(out);
    size
}

/// The encoded length of `msg` as a frame.
pub fn frame_size(msg: &Message) -> usize {
    HEADER_LEN + msg.body_len()
}
