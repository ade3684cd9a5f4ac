//! The server session: framing, version negotiation, the tag table, Tflush
//! and the fid table. Operations go out as [`Event`]s for a backend and
//! come back through [`ServerSession::complete`], in any order, so a
//! runtime can run them concurrently.
//!
//! Method kinds, as in quinn-proto: `handle_input` feeds bytes;
//! `complete` is the backend's answer; `poll_event` and `poll_transmit`
//! take work out and must be called after every `handle_input` and
//! `complete`.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use bytes::{BufMut, Bytes, BytesMut};
use hashbrown::HashMap;

use super::filesystem::{Op, Reply};
use crate::consts::{HEADER_LEN, IOHDRSZ, MIN_MSIZE, NOFID, READDIRHDRSZ, VERSION_9P2000_L};
use crate::frame::{decode_frame, encode_frame, frame_len, frame_size, FramingError};
use crate::messages::*;
use crate::wire::DecodeError;
use crate::Errno;

/// Payloads at least this large are sent without copying them into the
/// output buffer; smaller ones are cheaper to copy than to queue apart.
const ZERO_COPY_MIN: usize = 16 << 10;

/// Limits of a server session.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// The largest msize granted in Rversion.
    pub max_msize: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        // 1 MiB is what the Linux client asks for with msize=1048576, and
        // bounds the input buffer of a connection.
        ServerConfig { max_msize: 1 << 20 }
    }
}

/// Identifies one request between [`Event::Request`] and
/// [`ServerSession::complete`]. Unlike a tag it is never reused, so a late
/// answer to a request abandoned by Tversion is recognised and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

/// A request for the backend.
#[derive(Debug)]
pub struct Request<F> {
    /// Pass back to [`ServerSession::complete`].
    pub id: RequestId,
    /// The client's tag, for traces.
    pub tag: u16,
    /// What to do.
    pub op: Op<F>,
}

/// Work for the runtime.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<F> {
    /// Run this operation (see [`super::execute`]) and complete it.
    Request(Request<F>),
    /// The client wants request `id` aborted. The runtime may interrupt it
    /// (answering `EINTR`) or let it finish; either way it must complete it,
    /// and the session sends the Rflush after that answer.
    Flush {
        /// The request being flushed.
        id: RequestId,
    },
}

/// What a fid number refers to.
#[derive(Debug)]
enum FidSlot<F> {
    Ready(F),
    /// Reserved by an attach, walk or xattrwalk still in flight.
    Pending,
}

/// How a completed request changes the fid table.
#[derive(Debug, Clone, Copy)]
enum FidEffect {
    None,
    /// Attach, walk, xattrwalk: the reserved `newfid` becomes ready, or is
    /// released on failure. `same` is a walk with newfid == fid.
    Create {
        newfid: u32,
        same: bool,
    },
    /// Lopen, lcreate, xattrcreate: the handle of `fid` is replaced.
    Replace {
        fid: u32,
    },
}

#[derive(Debug)]
struct InFlight {
    id: RequestId,
    /// The R type the answer must have.
    reply_type: u8,
    effect: FidEffect,
    /// Tags of Tflushes waiting for this request to be answered.
    flushed_by: Vec<u16>,
    /// This entry is itself a Tflush (no backend work).
    is_flush: bool,
}

/// A 9P2000.L server session.
#[derive(Debug)]
pub struct ServerSession<F> {
    config: ServerConfig,
    /// 0 until Tversion: nothing but Tversion is served before.
    msize: u32,
    input: BytesMut,
    /// Small replies being gathered into one chunk.
    output: Vec<u8>,
    /// Chunks ready to send, in order, before `output`. Large read
    /// payloads are queued here as they came from the backend, uncopied.
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks` and `output`.
    pending: usize,
    events: VecDeque<Event<F>>,
    fids: HashMap<u32, FidSlot<F>>,
    in_flight: HashMap<u16, InFlight>,
    /// Tag of each request id in flight, for `complete`.
    by_id: HashMap<RequestId, u16>,
    next_id: u64,
}

impl<F: Clone> ServerSession<F> {
    /// A session awaiting Tversion.
    pub fn new(config: ServerConfig) -> Self {
        ServerSession {
            config,
            msize: 0,
            input: BytesMut::new(),
            output: Vec::new(),
            chunks: VecDeque::new(),
            pending: 0,
            events: VecDeque::new(),
            fids: HashMap::new(),
            in_flight: HashMap::new(),
            by_id: HashMap::new(),
            next_id: 0,
        }
    }

    /// The negotiated msize, 0 before Tversion.
    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// Requests handed out and not yet answered (Tflushes included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Encoded bytes waiting to be sent. A runtime stops reading input
    /// while this is large, which bounds memory.
    pub fn pending_output(&self) -> usize {
        self.pending
    }

    /// Bytes buffered of a frame not yet complete.
    pub fn buffered_input(&self) -> usize {
        self.input.len()
    }

    /// Feeds bytes from the transport. An error means the byte stream can
    /// no longer be framed and the connection must end; everything else,
    /// malformed messages included, is answered with Rlerror.
    pub fn handle_input(&mut self, data: &[u8]) -> Result<(), FramingError> {
        self.input.extend_from_slice(data);
        self.process_input()
    }

    fn limit(&self) -> u32 {
        if self.msize == 0 {
            self.config.max_msize
        } else {
            self.msize
        }
    }

    /// Splits the buffered input into frames and handles each.
    fn process_input(&mut self) -> Result<(), FramingError> {
        loop {
            let Some(len) = frame_len(&self.input, self.limit())? else {
                return Ok(());
            };
            if self.input.len() < len {
                // Ask for the whole frame at once; bounded by msize.
                self.input.reserve(len - self.input.len());
                return Ok(());
            }
            let frame = self.input.split_to(len).freeze();
            self.handle_frame(frame);
        }
    }

    /// Takes the next operation for the backend.
    pub fn poll_event(&mut self) -> Option<Event<F>> {
        self.events.pop_front()
    }

    /// Takes the next piece of encoded output, in order. Pieces are whole
    /// replies or, for large Rread and Rreaddir payloads, the payload apart
    /// from its header, so it reaches the socket without a copy (write the
    /// pieces with a vectored write).
    pub fn poll_transmit_chunk(&mut self) -> Option<Bytes> {
        let chunk = match self.chunks.pop_front() {
            Some(c) => c,
            None if self.output.is_empty() => return None,
            None => Bytes::from(core::mem::take(&mut self.output)),
        };
        self.pending -= chunk.len();
        Some(chunk)
    }

    /// Appends all encoded output to `out` (copying it); returns whether
    /// any was added. [`Self::poll_transmit_chunk`] avoids the copy.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        let mut any = false;
        while let Some(chunk) = self.poll_transmit_chunk() {
            out.extend_from_slice(&chunk);
            any = true;
        }
        any
    }

    /// The backend's answer to request `id`. Answers to requests abandoned
    /// by a new Tversion are dropped.
    pub fn complete(&mut self, id: RequestId, result: Result<Reply<F>, Errno>) {
        let Some(tag) = self.by_id.remove(&id) else {
            return;
        };
        let Some(entry) = self.in_flight.remove(&tag) else {
            return;
        };
        let reply = match result {
            Ok(Reply::Msg(msg)) => self.check_reply(&entry, msg, None),
            Ok(Reply::WithFid(msg, fid)) => self.check_reply(&entry, msg, fid),
            Err(e) => {
                self.undo_effect(entry.effect);
                Rlerror { ecode: e.0 }.into()
            }
        };
        self.send(tag, &reply);
        self.answer_flushes(entry.flushed_by);
    }

    /// Applies the fid effect of a successful answer, or turns a malformed
    /// answer into EIO.
    fn check_reply(&mut self, entry: &InFlight, msg: Message, fid: Option<F>) -> Message {
        if msg.msg_type() != entry.reply_type || frame_size(&msg) > self.msize as usize {
            self.undo_effect(entry.effect);
            return Rlerror {
                ecode: Errno::EIO.0,
            }
            .into();
        }
        match entry.effect {
            FidEffect::None => {}
            FidEffect::Create { newfid, same } => {
                // A walk that stopped early creates no fid.
                let complete = match &msg {
                    Message::Rwalk(_) => fid.is_some(),
                    _ => true,
                };
                match fid {
                    Some(f) if complete => {
                        if same {
                            // Only replace if the fid was not clunked meanwhile.
                            if let Some(slot) = self.fids.get_mut(&newfid) {
                                *slot = FidSlot::Ready(f);
                            }
                        } else {
                            self.fids.insert(newfid, FidSlot::Ready(f));
                        }
                    }
                    _ => self.undo_effect(entry.effect),
                }
            }
            FidEffect::Replace { fid: n } => {
                if let (Some(f), Some(slot)) = (fid, self.fids.get_mut(&n)) {
                    *slot = FidSlot::Ready(f);
                }
            }
        }
        msg
    }

    fn undo_effect(&mut self, effect: FidEffect) {
        if let FidEffect::Create {
            newfid,
            same: false,
        } = effect
        {
            if matches!(self.fids.get(&newfid), Some(FidSlot::Pending)) {
                self.fids.remove(&newfid);
            }
        }
    }

    /// Answers the Tflushes that waited for a request, then whatever
    /// waited on those.
    fn answer_flushes(&mut self, mut waiting: Vec<u16>) {
        while let Some(ftag) = waiting.pop() {
            if let Some(flush) = self.in_flight.remove(&ftag) {
                self.by_id.remove(&flush.id);
                self.send(ftag, &Rflush {}.into());
                waiting.extend(flush.flushed_by);
            }
        }
    }

    fn send(&mut self, tag: u16, msg: &Message) {
        let payload = match msg {
            Message::Rread(Rread { data }) | Message::Rreaddir(Rreaddir { data })
                if data.len() >= ZERO_COPY_MIN =>
            {
                data
            }
            _ => {
                self.pending += encode_frame(tag, msg, &mut self.output);
                return;
            }
        };
        // Header and count here, the payload as its own chunk.
        let size = HEADER_LEN + 4 + payload.len();
        self.output.put_u32_le(size as u32);
        self.output.put_u8(msg.msg_type());
        self.output.put_u16_le(tag);
        self.output.put_u32_le(payload.len() as u32);
        self.chunks
            .push_back(Bytes::from(core::mem::take(&mut self.output)));
        self.chunks.push_back(payload.clone());
        self.pending += size;
    }

    fn error(&mut self, tag: u16, errno: Errno) {
        self.send(tag, &Rlerror { ecode: errno.0 }.into());
    }

    fn handle_frame(&mut self, frame: Bytes) {
        let fcall = match decode_frame(frame) {
            Ok(f) => f,
            Err(bad) => {
                let errno = match bad.error {
                    DecodeError::UnknownType(_) => Errno::ENOSYS,
                    _ => Errno::EPROTO,
                };
                if self.in_flight.contains_key(&bad.tag) {
                    return self.error(bad.tag, Errno::EINVAL);
                }
                return self.error(bad.tag, errno);
            }
        };
        let tag = fcall.tag;
        if let Message::Tversion(v) = fcall.msg {
            return self.version(tag, v);
        }
        if self.msize == 0 {
            return self.error(tag, Errno::EPROTO);
        }
        if self.in_flight.contains_key(&tag) {
            // A tag may not be reused before its answer; answering the
            // newcomer is the least harm.
            return self.error(tag, Errno::EINVAL);
        }
        match self.resolve(tag, fcall.msg) {
            Ok(Some((op, effect))) => self.dispatch(tag, op, effect),
            Ok(None) => {}
            Err(e) => self.error(tag, e),
        }
    }

    fn version(&mut self, tag: u16, v: Tversion) {
        // Tversion aborts everything: fids go, answers still running are
        // dropped when they arrive.
        self.fids.clear();
        self.in_flight.clear();
        self.by_id.clear();
        self.events.clear();
        let msize = v.msize.min(self.config.max_msize);
        if msize < MIN_MSIZE {
            self.msize = 0;
            return self.error(tag, Errno::EINVAL);
        }
        let ours = v.version.starts_with(VERSION_9P2000_L)
            && matches!(v.version.get(VERSION_9P2000_L.len()), None | Some(b'.'));
        let version = if ours {
            self.msize = msize;
            VERSION_9P2000_L.to_vec()
        } else {
            self.msize = 0;
            b"unknown".to_vec()
        };
        self.send(tag, &Rversion { msize, version }.into());
    }

    fn fid(&self, n: u32) -> Result<F, Errno> {
        match self.fids.get(&n) {
            Some(FidSlot::Ready(f)) => Ok(f.clone()),
            _ => Err(Errno::EBADF),
        }
    }

    /// Reserves `newfid` for a request that will create it.
    fn reserve(&mut self, newfid: u32) -> Result<(), Errno> {
        if newfid == NOFID || self.fids.contains_key(&newfid) {
            return Err(Errno::EBADF);
        }
        self.fids.insert(newfid, FidSlot::Pending);
        Ok(())
    }

    /// Removes a fid for clunk and remove.
    fn take(&mut self, n: u32) -> Result<F, Errno> {
        match self.fids.remove(&n) {
            Some(FidSlot::Ready(f)) => Ok(f),
            Some(FidSlot::Pending) => {
                self.fids.insert(n, FidSlot::Pending);
                Err(Errno::EBADF)
            }
            None => Err(Errno::EBADF),
        }
    }

    /// Resolves a request's fids and fid-table effect. `Ok(None)` means
    /// it was answered without the backend.
    fn resolve(&mut self, tag: u16, msg: Message) -> Result<Option<(Op<F>, FidEffect)>, Errno> {
        let none = FidEffect::None;
        let op = match msg {
            // No authentication on this transport (the SSH channel and the
            // nonce are the authentication). ENOENT is how diod says "auth
            // not required", and what its clients and the kernel accept.
            Message::Tauth(_) => return Err(Errno::ENOENT),
            Message::Tattach(m) => {
                if m.afid != NOFID {
                    return Err(Errno::EINVAL);
                }
                self.reserve(m.fid)?;
                let effect = FidEffect::Create {
                    newfid: m.fid,
                    same: false,
                };
                return Ok(Some((Op::Attach(m), effect)));
            }
            Message::Tflush(m) => {
                self.flush(tag, m.oldtag);
                return Ok(None);
            }
            Message::Twalk(m) => {
                let fid = self.fid(m.fid)?;
                let same = m.newfid == m.fid;
                if !same {
                    self.reserve(m.newfid)?;
                }
                let effect = FidEffect::Create {
                    newfid: m.newfid,
                    same,
                };
                return Ok(Some((Op::Walk { fid, msg: m }, effect)));
            }
            Message::Txattrwalk(m) => {
                let fid = self.fid(m.fid)?;
                if m.newfid == m.fid {
                    return Err(Errno::EINVAL);
                }
                self.reserve(m.newfid)?;
                let effect = FidEffect::Create {
                    newfid: m.newfid,
                    same: false,
                };
                return Ok(Some((Op::Xattrwalk { fid, msg: m }, effect)));
            }
            Message::Tlopen(m) => {
                let effect = FidEffect::Replace { fid: m.fid };
                return Ok(Some((
                    Op::Lopen {
                        fid: self.fid(m.fid)?,
                        msg: m,
                    },
                    effect,
                )));
            }
            Message::Tlcreate(m) => {
                let effect = FidEffect::Replace { fid: m.fid };
                return Ok(Some((
                    Op::Lcreate {
                        dir: self.fid(m.fid)?,
                        msg: m,
                    },
                    effect,
                )));
            }
            Message::Txattrcreate(m) => {
                let effect = FidEffect::Replace { fid: m.fid };
                return Ok(Some((
                    Op::Xattrcreate {
                        fid: self.fid(m.fid)?,
                        msg: m,
                    },
                    effect,
                )));
            }
            Message::Tclunk(m) => Op::Clunk {
                fid: self.take(m.fid)?,
            },
            Message::Tremove(m) => Op::Remove {
                fid: self.take(m.fid)?,
            },
            Message::Tread(mut m) => {
                m.count = m.count.min(self.msize - IOHDRSZ);
                Op::Read {
                    fid: self.fid(m.fid)?,
                    msg: m,
                }
            }
            Message::Twrite(m) => Op::Write {
                fid: self.fid(m.fid)?,
                msg: m,
            },
            Message::Treaddir(mut m) => {
                m.count = m.count.min(self.msize - READDIRHDRSZ);
                Op::Readdir {
                    fid: self.fid(m.fid)?,
                    msg: m,
                }
            }
            Message::Tstatfs(m) => Op::Statfs {
                fid: self.fid(m.fid)?,
            },
            Message::Tsymlink(m) => Op::Symlink {
                dir: self.fid(m.fid)?,
                msg: m,
            },
            Message::Tmknod(m) => Op::Mknod {
                dir: self.fid(m.dfid)?,
                msg: m,
            },
            Message::Trename(m) => Op::Rename {
                fid: self.fid(m.fid)?,
                dir: self.fid(m.dfid)?,
                msg: m,
            },
            Message::Treadlink(m) => Op::Readlink {
                fid: self.fid(m.fid)?,
            },
            Message::Tgetattr(m) => Op::Getattr {
                fid: self.fid(m.fid)?,
                msg: m,
            },
            Message::Tsetattr(m) => Op::Setattr {
                fid: self.fid(m.fid)?,
                msg: m,
            },
            Message::Tfsync(m) => Op::Fsync {
                fid: self.fid(m.fid)?,
                msg: m,
            },
            Message::Tlock(m) => Op::Lock {
                fid: self.fid(m.fid)?,
                msg: m,
            },
            Message::Tgetlock(m) => Op::Getlock {
                fid: self.fid(m.fid)?,
                msg: m,
            },
            Message::Tlink(m) => Op::Link {
                dir: self.fid(m.dfid)?,
                fid: self.fid(m.fid)?,
                msg: m,
            },
            Message::Tmkdir(m) => Op::Mkdir {
                dir: self.fid(m.dfid)?,
                msg: m,
            },
            Message::Trenameat(m) => Op::Renameat {
                olddir: self.fid(m.olddirfid)?,
                newdir: self.fid(m.newdirfid)?,
                msg: m,
            },
            Message::Tunlinkat(m) => Op::Unlinkat {
                dir: self.fid(m.dirfid)?,
                msg: m,
            },
            // R-messages and Tlerror are not requests.
            _ => return Err(Errno::EPROTO),
        };
        Ok(Some((op, none)))
    }

    fn dispatch(&mut self, tag: u16, op: Op<F>, effect: FidEffect) {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let reply_type = op.request_type() + 1;
        self.in_flight.insert(
            tag,
            InFlight {
                id,
                reply_type,
                effect,
                flushed_by: Vec::new(),
                is_flush: false,
            },
        );
        self.by_id.insert(id, tag);
        self.events
            .push_back(Event::Request(Request { id, tag, op }));
    }

    fn flush(&mut self, tag: u16, oldtag: u16) {
        let Some(old) = self.in_flight.get_mut(&oldtag) else {
            // Already answered: the tag is free, say so at once.
            return self.send(tag, &Rflush {}.into());
        };
        old.flushed_by.push(tag);
        let old_id = old.id;
        let hint = !old.is_flush;
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.in_flight.insert(
            tag,
            InFlight {
                id,
                reply_type: Rflush::TYPE,
                effect: FidEffect::None,
                flushed_by: Vec::new(),
                is_flush: true,
            },
        );
        if hint {
            self.events.push_back(Event::Flush { id: old_id });
        }
    }
}
