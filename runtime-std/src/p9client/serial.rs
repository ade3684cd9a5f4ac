//! A blocking 9P client that one thread owns, over one byte stream.
//! Tests and the benchmark use it; requests can be pipelined with
//! [`Client::send`] and [`Client::recv`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use bytes::Bytes;
use proto_9p::client::{ClientEvent, ClientSession};
use proto_9p::consts::NOFID;
use proto_9p::messages::*;
use proto_9p::{Errno, Qid};

use super::{expect_reply, CallError};

/// A connected 9P2000.L client.
#[derive(Debug)]
pub struct Client<S> {
    stream: S,
    session: ClientSession,
    buf: Vec<u8>,
    out: Vec<u8>,
    next_fid: u32,
    /// Answers that arrived while `call` waited for another tag.
    early: VecDeque<(u16, Result<Message, Errno>)>,
}

impl<S: Read + Write> Client<S> {
    /// Negotiates the version with at most `msize`.
    pub fn connect(stream: S, msize: u32) -> Result<Self, CallError> {
        let mut c = Client {
            stream,
            session: ClientSession::new(msize),
            buf: vec![0; 256 << 10],
            out: Vec::new(),
            next_fid: 0,
            early: VecDeque::new(),
        };
        c.transmit()?;
        match c.next_event()? {
            ClientEvent::Ready { .. } => Ok(c),
            ClientEvent::Reply { .. } => Err(CallError::Unexpected("reply before Rversion")),
        }
    }

    /// The negotiated msize.
    pub fn msize(&self) -> u32 {
        self.session.msize()
    }

    /// The largest read or write payload.
    pub fn iounit(&self) -> u32 {
        self.session.iounit()
    }

    /// A fid number not used by this client yet.
    pub fn new_fid(&mut self) -> u32 {
        let f = self.next_fid;
        self.next_fid = self.next_fid.wrapping_add(1) % NOFID;
        f
    }

    fn transmit(&mut self) -> Result<(), CallError> {
        if self.session.poll_transmit(&mut self.out) {
            self.stream.write_all(&self.out)?;
            self.stream.flush()?;
            self.out.clear();
        }
        Ok(())
    }

    fn next_event(&mut self) -> Result<ClientEvent, CallError> {
        loop {
            if let Some(ev) = self.session.poll_event() {
                return Ok(ev);
            }
            let n = self.stream.read(&mut self.buf)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            self.session.handle_input(&self.buf[..n])?;
        }
    }

    /// Sends a request without waiting; returns its tag.
    pub fn send(&mut self, msg: impl Into<Message>) -> Result<u16, CallError> {
        let tag = self.session.request(msg)?;
        self.transmit()?;
        Ok(tag)
    }

    /// Waits for the next answer to any request.
    pub fn recv(&mut self) -> Result<(u16, Result<Message, Errno>), CallError> {
        if let Some(early) = self.early.pop_front() {
            return Ok(early);
        }
        loop {
            if let ClientEvent::Reply { tag, result } = self.next_event()? {
                return Ok((tag, result));
            }
        }
    }

    /// Sends a request and waits for its answer. Answers to other
    /// requests in flight are kept for [`Self::recv`].
    pub fn call(&mut self, msg: impl Into<Message>) -> Result<Message, CallError> {
        let tag = self.send(msg)?;
        loop {
            if let ClientEvent::Reply { tag: got, result } = self.next_event()? {
                if got == tag {
                    return result.map_err(CallError::Errno);
                }
                self.early.push_back((got, result));
            }
        }
    }

    /// Attaches `fid` to `aname`.
    pub fn attach(&mut self, fid: u32, aname: &[u8]) -> Result<Qid, CallError> {
        let r = self.call(Tattach {
            fid,
            afid: NOFID,
            uname: Vec::new(),
            aname: aname.to_vec(),
            n_uname: NOFID,
        })?;
        Ok(expect_reply!(r, Rattach)?.qid)
    }

    /// Walks `path` (split on '/') from `fid` to `newfid`; fails unless
    /// every element is walked.
    pub fn walk(&mut self, fid: u32, newfid: u32, path: &str) -> Result<Vec<Qid>, CallError> {
        let names: Vec<Vec<u8>> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let mut from = fid;
        let mut qids = Vec::new();
        let chunks: Vec<&[Vec<u8>]> = if names.is_empty() {
            vec![&[]]
        } else {
            names.chunks(proto_9p::consts::MAX_WELEM).collect()
        };
        for chunk in chunks {
            let r = self.call(Twalk {
                fid: from,
                newfid,
                wnames: chunk.to_vec(),
            })?;
            let got = expect_reply!(r, Rwalk)?.wqids;
            if got.len() != chunk.len() {
                if from == newfid || !got.is_empty() {
                    let _ = self.clunk(newfid);
                }
                return Err(CallError::Errno(Errno::ENOENT));
            }
            qids.extend(got);
            from = newfid;
        }
        Ok(qids)
    }

    /// Opens `fid` with `open_flags`.
    pub fn lopen(&mut self, fid: u32, flags: u32) -> Result<Rlopen, CallError> {
        expect_reply!(self.call(Tlopen { fid, flags })?, Rlopen)
    }

    /// Reads up to `count` bytes at `offset`.
    pub fn read(&mut self, fid: u32, offset: u64, count: u32) -> Result<Bytes, CallError> {
        Ok(expect_reply!(self.call(Tread { fid, offset, count })?, Rread)?.data)
    }

    /// Writes `data` at `offset`.
    pub fn write(&mut self, fid: u32, offset: u64, data: Bytes) -> Result<u32, CallError> {
        Ok(expect_reply!(self.call(Twrite { fid, offset, data })?, Rwrite)?.count)
    }

    /// Attributes of `fid`.
    pub fn getattr(&mut self, fid: u32, mask: u64) -> Result<Rgetattr, CallError> {
        expect_reply!(
            self.call(Tgetattr {
                fid,
                request_mask: mask
            })?,
            Rgetattr
        )
    }

    /// Forgets `fid`.
    pub fn clunk(&mut self, fid: u32) -> Result<(), CallError> {
        expect_reply!(self.call(Tclunk { fid })?, Rclunk).map(drop)
    }

    /// All entries of the open directory `fid`.
    pub fn readdir_all(&mut self, fid: u32) -> Result<Vec<proto_9p::Dirent>, CallError> {
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let r = self.call(Treaddir {
                fid,
                offset,
                count: self.iounit(),
            })?;
            let data = expect_reply!(r, Rreaddir)?.data;
            if data.is_empty() {
                return Ok(all);
            }
            let entries = proto_9p::Dirent::decode_all(data)
                .map_err(|_| CallError::Unexpected("bad Rreaddir payload"))?;
            if let Some(last) = entries.last() {
                offset = last.offset;
            }
            all.extend(entries);
        }
    }
}
