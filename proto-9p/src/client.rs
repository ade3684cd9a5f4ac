//! The client session: tag allocation, version negotiation and matching of
//! replies to requests. Used by the FUSE bridge, the benchmark and tests.
//!
//! `request` encodes a T-message and returns its tag; `handle_input` feeds
//! the server's bytes; `poll_event` yields each answer with its tag.
//! Requests made before Rversion are held back, so none exceeds the
//! negotiated msize.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::BytesMut;
use core::fmt;
use hashbrown::HashSet;

use crate::consts::{IOHDRSZ, MIN_MSIZE, NOTAG, VERSION_9P2000_L};
use crate::frame::{decode_frame, encode_frame, frame_len, frame_size, FramingError};
use crate::messages::*;
use crate::Errno;

/// Why the client session cannot go on, or a request cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientError {
    /// The server's byte stream cannot be framed.
    Framing(FramingError),
    /// A reply could not be decoded.
    BadReply,
    /// A reply carries a tag with no request in flight.
    UnknownTag(u16),
    /// The server refused 9P2000.L or answered Tversion badly.
    Version,
    /// All 65535 tags are in flight.
    TagsExhausted,
    /// The request does not fit in the negotiated msize.
    TooLarge,
    /// Only T-messages other than Tversion can be requested.
    NotARequest,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Framing(e) => write!(f, "broken 9P stream: {e}"),
            Self::BadReply => f.write_str("undecodable 9P reply"),
            Self::UnknownTag(t) => write!(f, "reply for tag {t}, which is not in flight"),
            Self::Version => f.write_str("the server does not speak 9P2000.L"),
            Self::TagsExhausted => f.write_str("too many requests in flight"),
            Self::TooLarge => f.write_str("request larger than msize"),
            Self::NotARequest => f.write_str("not a request message"),
        }
    }
}

/// Something the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// Rversion arrived; requests now flow.
    Ready {
        /// The negotiated msize.
        msize: u32,
    },
    /// The answer to the request with this tag: the R-message, or the
    /// errno of an Rlerror.
    Reply {
        /// The request's tag.
        tag: u16,
        /// The answer.
        result: Result<Message, Errno>,
    },
}

/// A 9P2000.L client session.
#[derive(Debug)]
pub struct ClientSession {
    /// 0 until Rversion.
    msize: u32,
    /// The msize asked for: the bound on frames until Rversion.
    asked: u32,
    input: BytesMut,
    output: Vec<u8>,
    held: VecDeque<(u16, Message)>,
    events: VecDeque<ClientEvent>,
    in_flight: HashSet<u16>,
    next_tag: u16,
}

impl ClientSession {
    /// A session that asks for `msize` (Tversion is queued at once).
    pub fn new(msize: u32) -> Self {
        let msize = msize.max(MIN_MSIZE);
        let mut s = ClientSession {
            msize: 0,
            asked: msize,
            input: BytesMut::new(),
            output: Vec::new(),
            held: VecDeque::new(),
            events: VecDeque::new(),
            in_flight: HashSet::new(),
            next_tag: 0,
        };
        let v = Tversion {
            msize,
            version: VERSION_9P2000_L.to_vec(),
        };
        encode_frame(NOTAG, &v.into(), &mut s.output);
        s
    }

    /// The negotiated msize, 0 before Rversion.
    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// The largest Tread/Twrite payload (msize - IOHDRSZ), 0 before Rversion.
    pub fn iounit(&self) -> u32 {
        self.msize.saturating_sub(IOHDRSZ)
    }

    /// Bytes of memory held for input: bounded by the msize asked for,
    /// whatever the server announces.
    pub fn input_capacity(&self) -> usize {
        self.input.capacity()
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Queues a T-message; returns its tag.
    pub fn request(&mut self, msg: impl Into<Message>) -> Result<u16, ClientError> {
        let msg = msg.into();
        if !msg.is_request() || matches!(msg, Message::Tversion(_) | Message::Tlerror(_)) {
            return Err(ClientError::NotARequest);
        }
        if self.msize != 0 && frame_size(&msg) > self.msize as usize {
            return Err(ClientError::TooLarge);
        }
        let tag = self.alloc_tag()?;
        if self.msize == 0 {
            self.held.push_back((tag, msg));
        } else {
            encode_frame(tag, &msg, &mut self.output);
        }
        Ok(tag)
    }

    fn alloc_tag(&mut self) -> Result<u16, ClientError> {
        // NOTAG is reserved; at most 65535 tags can be in flight.
        for _ in 0..=u16::MAX as u32 {
            let tag = self.next_tag;
            self.next_tag = if tag == NOTAG - 1 { 0 } else { tag + 1 };
            if self.in_flight.insert(tag) {
                return Ok(tag);
            }
        }
        Err(ClientError::TagsExhausted)
    }

    /// Appends encoded requests to `out`; returns whether any were added.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if self.output.is_empty() {
            return false;
        }
        if out.is_empty() {
            core::mem::swap(out, &mut self.output);
        } else {
            out.append(&mut self.output);
        }
        true
    }

    /// Takes the next answer.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Feeds bytes from the server.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.input.extend_from_slice(data);
        loop {
            // Bounded before anything is buffered: a server cannot make us
            // allocate more than the msize we asked for, then agreed.
            let limit = if self.msize == 0 {
                self.asked
            } else {
                self.msize
            };
            let Some(len) = frame_len(&self.input, limit).map_err(ClientError::Framing)? else {
                return Ok(());
            };
            if self.input.len() < len {
                self.input.reserve(len - self.input.len());
                return Ok(());
            }
            let frame = self.input.split_to(len).freeze();
            let fcall = decode_frame(frame).map_err(|_| ClientError::BadReply)?;
            if fcall.msg.is_request() {
                return Err(ClientError::BadReply);
            }
            if self.msize == 0 {
                self.version(fcall.tag, fcall.msg)?;
                continue;
            }
            if !self.in_flight.remove(&fcall.tag) {
                return Err(ClientError::UnknownTag(fcall.tag));
            }
            let result = match fcall.msg {
                Message::Rlerror(e) => Err(Errno(e.ecode)),
                m => Ok(m),
            };
            self.events.push_back(ClientEvent::Reply {
                tag: fcall.tag,
                result,
            });
        }
    }

    fn version(&mut self, tag: u16, msg: Message) -> Result<(), ClientError> {
        let Message::Rversion(v) = msg else {
            return Err(ClientError::Version);
        };
        if tag != NOTAG
            || v.version != VERSION_9P2000_L
            || v.msize < MIN_MSIZE
            || v.msize > self.asked
        {
            return Err(ClientError::Version);
        }
        self.msize = v.msize;
        self.events.push_back(ClientEvent::Ready { msize: v.msize });
        while let Some((tag, msg)) = self.held.pop_front() {
            if frame_size(&msg) > self.msize as usize {
                self.in_flight.remove(&tag);
                self.events.push_back(ClientEvent::Reply {
                    tag,
                    result: Err(Errno::EMSGSIZE),
                });
                continue;
            }
            encode_frame(tag, &msg, &mut self.output);
        }
        Ok(())
    }
}
