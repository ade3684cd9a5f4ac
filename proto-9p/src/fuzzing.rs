//! Entry points for the cargo-fuzz targets in `fuzz/`, also run over the
//! committed seed corpus by `tests/fuzz_corpus.rs`: [`decode`] for the
//! codec, [`server_session`] for the server session, [`client_session`]
//! for the client session.
//!
//! They panic when an invariant breaks: a fuzzer only finds what it can
//! see fail, and a decoder that merely returns without crashing proves
//! little. The strongest invariant here is the round trip: every field has
//! exactly one encoding, so anything that decodes must encode back to the
//! very bytes it came from.

use alloc::vec;
use alloc::vec::Vec;
use bytes::Bytes;
use core::cell::RefCell;
use hashbrown::HashMap;

use crate::consts::{
    lock_type, qid_type, unlink_flags, HEADER_LEN, IOHDRSZ, MIN_MSIZE, READDIRHDRSZ,
    VERSION_9P2000_L,
};
use crate::frame::{decode_frame, encode_frame, frame_len, frame_size, Fcall, FramingError};
use crate::messages::*;
use crate::server::{
    execute, Event, Filesystem, Op, Reply, Request, RequestId, ServerConfig, ServerSession,
};
use crate::{Dirent, Errno, Qid};

/// The msizes the input is framed under: the protocol minimum, a common
/// Linux mount, and no limit.
const MSIZES: [u32; 3] = [crate::consts::MIN_MSIZE, 8192 + 24, u32::MAX];

/// Frames `data` as a stream under a few msizes and decodes every frame;
/// also decodes it as a bare body and as Rreaddir entries.
pub fn decode(data: &[u8]) {
    for msize in MSIZES {
        decode_stream(data, msize);
    }
    if let Some((&ty, body)) = data.split_first() {
        if let Ok(msg) = Message::decode_body(ty, Bytes::copy_from_slice(body)) {
            let mut again = Vec::with_capacity(body.len());
            msg.encode_body(&mut again);
            assert_eq!(again, body, "{} body re-encodes differently", msg.name());
            assert_eq!(msg.body_len(), body.len());
        }
    }
    check_dirents(data);
}

fn decode_stream(mut rest: &[u8], msize: u32) {
    loop {
        match frame_len(rest, msize) {
            Ok(Some(len)) => {
                assert!(HEADER_LEN <= len && len <= msize as usize);
                let Some(frame) = rest.get(..len) else {
                    return; // the rest of the frame has not arrived
                };
                check_frame(frame);
                rest = &rest[len..];
            }
            Ok(None) => {
                assert!(rest.len() < 4);
                return;
            }
            Err(FramingError::TooShort(size)) => {
                assert!((size as usize) < HEADER_LEN);
                return;
            }
            Err(FramingError::TooLarge { size, msize: m }) => {
                assert!(size > msize && m == msize);
                return;
            }
        }
    }
}

/// Decodes one delimited frame and checks the round trip.
fn check_frame(frame: &[u8]) {
    let bytes = Bytes::copy_from_slice(frame);
    match decode_frame(bytes.clone()) {
        Ok(fcall) => {
            let mut again = Vec::with_capacity(frame.len());
            let n = encode_frame(fcall.tag, &fcall.msg, &mut again);
            assert_eq!(n, again.len());
            assert_eq!(again, frame, "{} re-encodes differently", fcall.msg.name());
            assert_eq!(HEADER_LEN + fcall.msg.body_len(), frame.len());
            let twice = decode_frame(Bytes::from(again));
            assert_eq!(twice.as_ref(), Ok(&fcall));
            check_payload(&fcall.msg, &bytes);
        }
        Err(bad) => {
            // frame_len delimited it, so the header is all there and the
            // error must name the header's tag and type.
            assert_eq!(bad.tag, u16::from_le_bytes([frame[5], frame[6]]));
            assert_eq!(bad.msg_type, frame[4]);
        }
    }
}

/// Payloads are slices of the frame (no copy), and Rreaddir data is
/// checked as dirents.
fn check_payload(msg: &Message, frame: &Bytes) {
    let data = match msg {
        Message::Twrite(m) => &m.data,
        Message::Rread(m) => &m.data,
        Message::Rreaddir(m) => {
            check_dirents(&m.data);
            &m.data
        }
        _ => return,
    };
    if !data.is_empty() {
        let start = frame.as_ptr() as usize;
        let p = data.as_ptr() as usize;
        assert!(
            start <= p && p + data.len() <= start + frame.len(),
            "payload was copied out of the frame"
        );
    }
}

fn check_dirents(data: &[u8]) {
    if let Ok(entries) = Dirent::decode_all(Bytes::copy_from_slice(data)) {
        let mut again = Vec::with_capacity(data.len());
        for e in &entries {
            e.encode(&mut again);
        }
        assert_eq!(again, data, "dirents re-encode differently");
    }
}

// ---------------------------------------------------------------------
// The server session
// ---------------------------------------------------------------------

/// The largest msize the fuzzed server grants: small, so that oversized
/// replies and the msize checks are within reach.
const MAX_MSIZE: u32 = 16 * 1024;

/// Builds a [`server_session`] input from control bytes and a byte
/// stream of frames; used to write the seed corpus.
pub fn session_input(control: &[u8], stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + control.len() + stream.len());
    out.extend_from_slice(&(control.len() as u16).to_le_bytes());
    out.extend_from_slice(control);
    out.extend_from_slice(stream);
    out
}

/// Splits an input into control bytes and the client's byte stream.
fn split_session_input(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return (&[], data);
    };
    let n = (u16::from_le_bytes(*len) as usize).min(rest.len());
    rest.split_at(n)
}

/// Drives a [`ServerSession`] with the client byte stream of `data`, fed
/// in pieces of arbitrary size, against an in-memory file system that
/// answers in an order, and with errors, chosen by `data`'s control
/// bytes. A model of the tag table checks each reply: every frame
/// decodes and fits msize, every request gets exactly one answer, and an
/// Rflush comes only after the answer to the request it flushed.
///
/// Input: `control_len[2] control[control_len] stream`.
pub fn server_session(data: &[u8]) {
    let (control, stream) = split_session_input(data);
    check_chunking(control, stream);
    let mut h = Harness::new(control, stream);
    h.run();
}

/// Control bytes; when they run out, every choice is 0 (feed the rest a
/// frame at a time, then answer in order), so every run ends.
struct Control<'a> {
    bytes: &'a [u8],
}

impl Control<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }
    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }
}

/// What the model knows of a tag in flight.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Request { id: RequestId, reply_type: u8 },
    Flush { oldtag: u16 },
}

struct Pending {
    req: Request<ToyFid>,
    /// An Event::Flush named it.
    flushed: bool,
}

struct Harness<'a> {
    ctl: Control<'a>,
    stream: &'a [u8],
    session: ServerSession<ToyFid>,
    fs: ToyFs,
    /// Bytes of `stream` fed so far.
    fed: usize,
    /// Where the frame being fed starts.
    frame_start: usize,
    /// The msize the model believes in; 0 before a successful Tversion.
    msize: u32,
    in_flight: HashMap<u16, Entry>,
    /// Requests handed out and not completed, abandoned ones included.
    pending: Vec<Pending>,
}

impl<'a> Harness<'a> {
    fn new(control: &'a [u8], stream: &'a [u8]) -> Self {
        Harness {
            ctl: Control { bytes: control },
            stream,
            session: ServerSession::new(ServerConfig {
                max_msize: MAX_MSIZE,
            }),
            fs: ToyFs::new(),
            fed: 0,
            frame_start: 0,
            msize: 0,
            in_flight: HashMap::new(),
            pending: Vec::new(),
        }
    }

    fn run(&mut self) {
        loop {
            let c = self.ctl.byte();
            let more_input = self.fed < self.stream.len();
            if more_input && (c % 4 != 3 || self.pending.is_empty()) {
                // Pieces of 1..=64 bytes, or the rest of the frame.
                let want = if c % 4 == 1 {
                    usize::from(c >> 2) + 1
                } else {
                    usize::MAX
                };
                if !self.feed(want) {
                    return; // the connection ended
                }
            } else if !self.pending.is_empty() {
                let i = usize::from(self.ctl.byte()) % self.pending.len();
                let how = self.ctl.byte();
                self.complete(i, how);
            } else {
                return;
            }
        }
    }

    /// Feeds at most `want` bytes, never past the end of the frame being
    /// fed, so that each `handle_input` processes at most one frame and
    /// its output can be checked against that frame.
    fn feed(&mut self, want: usize) -> bool {
        let frame = &self.stream[self.frame_start..];
        let frame_end = match frame_len(frame, u32::MAX) {
            Ok(Some(len)) => self.frame_start.saturating_add(len),
            // The stream ends inside the size field: never a whole frame.
            Ok(None) => usize::MAX,
            // Too short: the session gives up once the size is in.
            Err(_) => self.frame_start + 4,
        };
        let end = frame_end
            .min(self.stream.len())
            .min(self.fed.saturating_add(want));
        let result = self.session.handle_input(&self.stream[self.fed..end]);
        self.fed = end;

        // The session must refuse exactly the sizes outside 7..=limit,
        // as soon as the size field is in.
        let limit = if self.msize == 0 {
            MAX_MSIZE
        } else {
            self.msize
        };
        let expected = frame_len(&self.stream[self.frame_start..self.fed], limit);
        match (expected, result) {
            (Err(e), Err(got)) => {
                assert_eq!(e, got);
                return false;
            }
            (Err(e), Ok(())) => panic!("session accepted a frame the framing refuses: {e:?}"),
            (Ok(_), Err(got)) => panic!("session refused a good frame size: {got:?}"),
            (Ok(_), Ok(())) => {}
        }
        if self.fed == frame_end {
            let start = core::mem::replace(&mut self.frame_start, frame_end);
            let frame = &self.stream[start..frame_end];
            self.on_frame(frame);
        } else {
            // Part of a frame: nothing happens yet.
            assert!(self.session.poll_event().is_none());
            assert!(self.transmitted().is_empty());
        }
        assert_eq!(self.session.buffered_input(), self.fed - self.frame_start);
        assert!(self.session.buffered_input() < limit as usize);
        self.check_counts();
        true
    }

    /// Checks the session's answer to one whole frame.
    fn on_frame(&mut self, frame: &[u8]) {
        let tag = u16::from_le_bytes([frame[5], frame[6]]);
        let out = self.transmitted();
        let mut events = Vec::new();
        while let Some(e) = self.session.poll_event() {
            events.push(e);
        }
        let only_error = |out: &[Fcall], events: &[Event<ToyFid>]| {
            assert!(events.is_empty(), "an error frame made work: {events:?}");
            assert!(
                matches!(out, [Fcall { tag: t, msg: Message::Rlerror(_) }] if *t == tag),
                "expected one Rlerror for tag {tag}, got {out:?}"
            );
        };
        let msg = match decode_frame(Bytes::copy_from_slice(frame)) {
            Err(_) => return only_error(&out, &events),
            Ok(fcall) => fcall.msg,
        };
        if let Message::Tversion(v) = &msg {
            return self.on_version(tag, v, &out, &events);
        }
        if self.msize == 0 || self.in_flight.contains_key(&tag) {
            // Before Tversion, or a tag reused while in flight: the client
            // broke the protocol; the newcomer is refused.
            return only_error(&out, &events);
        }
        if let Message::Tflush(f) = msg {
            return self.on_flush(tag, f.oldtag, &out, &events);
        }
        match (&out[..], &events[..]) {
            ([], [Event::Request(r)]) => {
                assert_eq!(r.tag, tag);
                assert_eq!(
                    r.op.request_type(),
                    msg.msg_type(),
                    "{:?} for {}",
                    r.op,
                    msg.name()
                );
                assert!(
                    self.pending.iter().all(|p| p.req.id != r.id),
                    "request id reused"
                );
                // Counts are cut to what fits in one reply.
                match &r.op {
                    Op::Read { msg, .. } => assert!(msg.count <= self.msize - IOHDRSZ),
                    Op::Readdir { msg, .. } => assert!(msg.count <= self.msize - READDIRHDRSZ),
                    _ => {}
                }
            }
            _ => only_error(&out, &events),
        }
        for e in events {
            if let Event::Request(req) = e {
                let reply_type = msg.msg_type() + 1;
                self.in_flight.insert(
                    tag,
                    Entry::Request {
                        id: req.id,
                        reply_type,
                    },
                );
                self.pending.push(Pending {
                    req,
                    flushed: false,
                });
            }
        }
    }

    fn on_version(&mut self, tag: u16, v: &Tversion, out: &[Fcall], events: &[Event<ToyFid>]) {
        assert!(events.is_empty());
        // Everything in flight is abandoned: its answers must vanish.
        self.in_flight.clear();
        match out {
            [Fcall {
                tag: t,
                msg: Message::Rversion(r),
            }] if *t == tag => {
                assert!(r.msize <= v.msize && r.msize <= MAX_MSIZE && r.msize >= MIN_MSIZE);
                self.msize = if r.version == VERSION_9P2000_L {
                    assert!(v.version.starts_with(VERSION_9P2000_L));
                    r.msize
                } else {
                    assert_eq!(r.version, b"unknown");
                    0
                };
            }
            [Fcall {
                tag: t,
                msg: Message::Rlerror(_),
            }] if *t == tag => {
                assert!(v.msize < MIN_MSIZE, "Tversion refused: {v:?}");
                self.msize = 0;
            }
            _ => panic!("bad answer to {v:?}: {out:?}"),
        }
        assert_eq!(self.session.msize(), self.msize);
    }

    fn on_flush(&mut self, tag: u16, oldtag: u16, out: &[Fcall], events: &[Event<ToyFid>]) {
        let Some(old) = self.in_flight.get(&oldtag).copied() else {
            // Nothing to flush: answered at once.
            assert!(events.is_empty());
            assert!(
                matches!(out, [Fcall { tag: t, msg: Message::Rflush(_) }] if *t == tag),
                "Tflush of a free tag: {out:?}"
            );
            return;
        };
        assert!(out.is_empty(), "Rflush before the flushed request's answer");
        match (old, events) {
            (Entry::Request { id, .. }, [Event::Flush { id: hint }]) => {
                assert_eq!(*hint, id);
                for p in &mut self.pending {
                    if p.req.id == id {
                        p.flushed = true;
                    }
                }
            }
            (_, []) => {}
            _ => panic!("flush of {old:?} made {events:?}"),
        }
        self.in_flight.insert(tag, Entry::Flush { oldtag });
    }

    /// Answers pending request `i`, as chosen by `how`.
    fn complete(&mut self, i: usize, how: u8) {
        let Pending { req, flushed } = self.pending.swap_remove(i);
        let Request { id, tag, op } = req;
        let op_ty = op.request_type();
        let result = match how % 16 {
            // A flushed request interrupted, as a runtime may do.
            0..=1 if flushed => Err(Errno::EINTR),
            2 => Err(Errno(u32::from(self.ctl.byte()))),
            // A broken backend: the wrong reply type...
            3 => Ok(Reply::Msg(Rclunk {}.into())),
            // ...or a reply larger than msize.
            4 => Ok(Reply::Msg(
                Rread {
                    data: Bytes::from(vec![0; self.msize.max(MIN_MSIZE) as usize]),
                }
                .into(),
            )),
            _ => execute(&self.fs, op),
        };

        let live = match self.in_flight.get(&tag) {
            Some(Entry::Request {
                id: live_id,
                reply_type,
            }) if *live_id == id => {
                assert_eq!(*reply_type, op_ty + 1);
                true
            }
            _ => false,
        };
        let expected: Message = match &result {
            Err(e) => Rlerror { ecode: e.0 }.into(),
            Ok(Reply::Msg(m) | Reply::WithFid(m, _)) => {
                if m.msg_type() == op_ty + 1 && frame_size(m) <= self.msize as usize {
                    m.clone()
                } else {
                    Rlerror {
                        ecode: Errno::EIO.0,
                    }
                    .into()
                }
            }
        };

        self.session.complete(id, result);
        assert!(self.session.poll_event().is_none());
        let out = self.transmitted();
        if !live {
            // Abandoned by Tversion: the answer is dropped.
            assert!(out.is_empty(), "answer to an abandoned request: {out:?}");
            return;
        }
        self.in_flight.remove(&tag);
        let Some((first, flushes)) = out.split_first() else {
            panic!("no answer to tag {tag}");
        };
        assert_eq!(first, &Fcall { tag, msg: expected });
        // Then an Rflush for each Tflush waiting on it, and on those.
        let mut waiting = vec![tag];
        let mut flushed_tags = Vec::new();
        while let Some(t) = waiting.pop() {
            let by: Vec<u16> = self
                .in_flight
                .iter()
                .filter(|(_, e)| matches!(e, Entry::Flush { oldtag } if *oldtag == t))
                .map(|(ftag, _)| *ftag)
                .collect();
            for ftag in by {
                self.in_flight.remove(&ftag);
                flushed_tags.push(ftag);
                waiting.push(ftag);
            }
        }
        let mut got: Vec<u16> = flushes
            .iter()
            .map(|f| {
                assert!(
                    matches!(f.msg, Message::Rflush(_)),
                    "after the answer: {f:?}"
                );
                f.tag
            })
            .collect();
        got.sort_unstable();
        flushed_tags.sort_unstable();
        assert_eq!(got, flushed_tags, "Rflushes after the answer to tag {tag}");
        self.check_counts();
    }

    /// Takes the transmitted bytes and decodes them; each must be a whole
    /// R-message within msize.
    fn transmitted(&mut self) -> Vec<Fcall> {
        let mut out = Vec::new();
        let any = self.session.poll_transmit(&mut out);
        assert_eq!(any, !out.is_empty());
        assert_eq!(self.session.pending_output(), 0);
        let limit = if self.msize == 0 {
            MAX_MSIZE
        } else {
            self.msize
        };
        let mut rest = &out[..];
        let mut frames = Vec::new();
        while !rest.is_empty() {
            let len = match frame_len(rest, limit) {
                Ok(Some(len)) if len <= rest.len() => len,
                other => panic!("reply framing: {other:?}"),
            };
            let fcall = match decode_frame(Bytes::copy_from_slice(&rest[..len])) {
                Ok(f) => f,
                Err(e) => panic!("reply does not decode: {e:?}"),
            };
            assert!(!fcall.msg.is_request(), "sent a T-message: {fcall:?}");
            frames.push(fcall);
            rest = &rest[len..];
        }
        frames
    }

    fn check_counts(&self) {
        assert_eq!(self.session.in_flight(), self.in_flight.len());
    }
}

/// Feeds `stream` once a frame at a time and once in pieces cut by the
/// control bytes, without answering anything: the output and the state
/// must not depend on how the bytes arrived. (The events may: a Tversion
/// drops those not yet polled, and one piece may hold a request and a
/// Tversion.)
fn check_chunking(control: &[u8], stream: &[u8]) {
    let run = |pieces: &mut dyn FnMut(usize) -> usize| {
        let mut s = ServerSession::<ToyFid>::new(ServerConfig {
            max_msize: MAX_MSIZE,
        });
        let mut out = Vec::new();
        let mut fed = 0;
        let mut result = Ok(());
        while fed < stream.len() && result.is_ok() {
            let n = pieces(fed).clamp(1, stream.len() - fed);
            result = s.handle_input(&stream[fed..fed + n]);
            fed += n;
            s.poll_transmit(&mut out);
            while s.poll_event().is_some() {}
        }
        // After a framing error the connection is over and what is left
        // in the input buffer does not matter.
        let buffered = if result.is_ok() {
            s.buffered_input()
        } else {
            0
        };
        (result, out, s.in_flight(), s.msize(), buffered)
    };
    let whole = run(&mut |fed| match frame_len(&stream[fed..], u32::MAX) {
        Ok(Some(len)) => len,
        _ => usize::MAX,
    });
    let mut sizes = control.iter().cycle();
    let cut = run(&mut |_| sizes.next().map_or(usize::MAX, |&b| usize::from(b) * 7 + 1));
    assert_eq!(whole, cut, "the output depends on how the input was cut");
}

// ---------------------------------------------------------------------
// A toy file system: a few files in memory
// ---------------------------------------------------------------------

/// Bounds that keep a fuzz run's memory small.
const MAX_NODES: usize = 64;
const MAX_FILE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

#[derive(Debug)]
struct Node {
    name: Vec<u8>,
    parent: usize,
    kind: Kind,
    data: Vec<u8>,
    version: u32,
    alive: bool,
}

/// The handle of a fid: a node, and whether it was opened.
#[derive(Debug, Clone, Copy)]
struct ToyFid {
    ino: usize,
    open: bool,
}

/// An in-memory tree: `/hello` (a file), `/dir/a`, `/dir/b`, `/link`.
#[derive(Debug)]
struct ToyFs {
    nodes: RefCell<Vec<Node>>,
}

impl ToyFs {
    fn new() -> Self {
        let fs = ToyFs {
            nodes: RefCell::new(vec![Node {
                name: Vec::new(),
                parent: 0,
                kind: Kind::Dir,
                data: Vec::new(),
                version: 0,
                alive: true,
            }]),
        };
        let seed = [
            (0, &b"hello"[..], Kind::File, &b"hello, world\n"[..]),
            (0, b"dir", Kind::Dir, b""),
            (2, b"a", Kind::File, b"aaaa"),
            (2, b"b", Kind::File, b""),
            (0, b"link", Kind::Symlink, b"dir/a"),
        ];
        for (parent, name, kind, data) in seed {
            let _ = fs.create(parent, name, kind, data);
        }
        fs
    }

    fn qid(nodes: &[Node], ino: usize) -> Qid {
        let n = &nodes[ino];
        Qid {
            ty: match n.kind {
                Kind::Dir => qid_type::DIR,
                Kind::File => qid_type::FILE,
                Kind::Symlink => qid_type::SYMLINK,
            },
            version: n.version,
            path: ino as u64 + 1,
        }
    }

    fn lookup(nodes: &[Node], dir: usize, name: &[u8]) -> Result<usize, Errno> {
        if nodes[dir].kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        if name == b".." {
            return Ok(nodes[dir].parent);
        }
        nodes
            .iter()
            .position(|n| n.alive && n.parent == dir && n.name == name && !n.name.is_empty())
            .ok_or(Errno::ENOENT)
    }

    fn create(&self, dir: usize, name: &[u8], kind: Kind, data: &[u8]) -> Result<Qid, Errno> {
        let mut nodes = self.nodes.borrow_mut();
        check_name(name)?;
        match Self::lookup(&nodes, dir, name) {
            Ok(_) => return Err(Errno::EEXIST),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        if nodes.len() >= MAX_NODES {
            return Err(Errno::ENOSPC);
        }
        nodes.push(Node {
            name: name.to_vec(),
            parent: dir,
            kind,
            data: data.to_vec(),
            version: 0,
            alive: true,
        });
        let ino = nodes.len() - 1;
        Ok(Self::qid(&nodes, ino))
    }

    fn alive(&self, fid: &ToyFid) -> Result<(), Errno> {
        if self.nodes.borrow()[fid.ino].alive {
            Ok(())
        } else {
            Err(Errno::ESTALE)
        }
    }

    fn unlink(&self, ino: usize, want_dir: Option<bool>) -> Result<(), Errno> {
        let mut nodes = self.nodes.borrow_mut();
        if ino == 0 {
            return Err(Errno::EBUSY);
        }
        let is_dir = nodes[ino].kind == Kind::Dir;
        match want_dir {
            Some(true) if !is_dir => return Err(Errno::ENOTDIR),
            Some(false) if is_dir => return Err(Errno::EISDIR),
            _ => {}
        }
        if is_dir && nodes.iter().any(|n| n.alive && n.parent == ino) {
            return Err(Errno::ENOTEMPTY);
        }
        nodes[ino].alive = false;
        Ok(())
    }

    fn move_to(&self, ino: usize, dir: usize, name: &[u8]) -> Result<(), Errno> {
        check_name(name)?;
        let mut nodes = self.nodes.borrow_mut();
        if ino == 0 || nodes[dir].kind != Kind::Dir {
            return Err(Errno::EINVAL);
        }
        // Not into itself or below.
        let mut d = dir;
        while d != 0 {
            if d == ino {
                return Err(Errno::EINVAL);
            }
            d = nodes[d].parent;
        }
        if let Ok(old) = Self::lookup(&nodes, dir, name) {
            if old == ino {
                return Ok(());
            }
            if nodes[old].kind == Kind::Dir {
                return Err(Errno::EEXIST);
            }
            nodes[old].alive = false;
        }
        nodes[ino].parent = dir;
        nodes[ino].name = name.to_vec();
        Ok(())
    }
}

fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    if name.len() > 255 {
        return Err(Errno::ENAMETOOLONG);
    }
    Ok(())
}

impl Filesystem for ToyFs {
    type Fid = ToyFid;

    fn attach(&self, _msg: &Tattach) -> Result<(Qid, ToyFid), Errno> {
        let nodes = self.nodes.borrow();
        Ok((
            Self::qid(&nodes, 0),
            ToyFid {
                ino: 0,
                open: false,
            },
        ))
    }

    fn walk(&self, fid: &ToyFid, names: &[Vec<u8>]) -> Result<(Vec<Qid>, Option<ToyFid>), Errno> {
        self.alive(fid)?;
        if fid.open {
            return Err(Errno::EBADF);
        }
        let nodes = self.nodes.borrow();
        let mut ino = fid.ino;
        let mut qids = Vec::new();
        for (i, name) in names.iter().enumerate() {
            match Self::lookup(&nodes, ino, name) {
                Ok(next) => {
                    ino = next;
                    qids.push(Self::qid(&nodes, ino));
                }
                Err(e) if i == 0 => return Err(e),
                Err(_) => return Ok((qids, None)),
            }
        }
        Ok((qids, Some(ToyFid { ino, open: false })))
    }

    fn lopen(&self, fid: &ToyFid, flags: u32) -> Result<(Qid, u32, ToyFid), Errno> {
        self.alive(fid)?;
        if fid.open {
            return Err(Errno::EBADF);
        }
        let mut nodes = self.nodes.borrow_mut();
        let node = &mut nodes[fid.ino];
        if node.kind == Kind::Symlink {
            return Err(Errno::ELOOP);
        }
        if flags & crate::consts::open_flags::TRUNC != 0 && node.kind == Kind::File {
            node.data.clear();
            node.version = node.version.wrapping_add(1);
        }
        Ok((Self::qid(&nodes, fid.ino), 0, ToyFid { open: true, ..*fid }))
    }

    fn lcreate(&self, dir: &ToyFid, msg: &Tlcreate) -> Result<(Qid, u32, ToyFid), Errno> {
        self.alive(dir)?;
        let qid = self.create(dir.ino, &msg.name, Kind::File, b"")?;
        let ino = qid.path as usize - 1;
        Ok((qid, 0, ToyFid { ino, open: true }))
    }

    fn read(&self, fid: &ToyFid, offset: u64, count: u32) -> Result<Bytes, Errno> {
        self.alive(fid)?;
        let nodes = self.nodes.borrow();
        let node = &nodes[fid.ino];
        if !fid.open {
            return Err(Errno::EBADF);
        }
        if node.kind == Kind::Dir {
            return Err(Errno::EISDIR);
        }
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(node.data.len());
        let end = start.saturating_add(count as usize).min(node.data.len());
        Ok(Bytes::copy_from_slice(&node.data[start..end]))
    }

    fn write(&self, fid: &ToyFid, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.alive(fid)?;
        let mut nodes = self.nodes.borrow_mut();
        let node = &mut nodes[fid.ino];
        if !fid.open || node.kind != Kind::File {
            return Err(Errno::EBADF);
        }
        let start = usize::try_from(offset).map_err(|_| Errno::EFBIG)?;
        let end = start.checked_add(data.len()).ok_or(Errno::EFBIG)?;
        if end > MAX_FILE {
            return Err(Errno::EFBIG);
        }
        if node.data.len() < end {
            node.data.resize(end, 0);
        }
        node.data[start..end].copy_from_slice(data);
        node.version = node.version.wrapping_add(1);
        Ok(data.len() as u32)
    }

    fn remove(&self, fid: ToyFid) -> Result<(), Errno> {
        self.alive(&fid)?;
        self.unlink(fid.ino, None)
    }

    fn statfs(&self, fid: &ToyFid) -> Result<Rstatfs, Errno> {
        self.alive(fid)?;
        let used = self.nodes.borrow().len() as u64;
        Ok(Rstatfs {
            fs_type: 0x0102_1997,
            bsize: 4096,
            blocks: 16,
            bfree: 8,
            bavail: 8,
            files: MAX_NODES as u64,
            ffree: MAX_NODES as u64 - used,
            fsid: 1,
            namelen: 255,
        })
    }

    fn symlink(&self, dir: &ToyFid, msg: &Tsymlink) -> Result<Qid, Errno> {
        self.alive(dir)?;
        self.create(dir.ino, &msg.name, Kind::Symlink, &msg.symtgt)
    }

    fn mknod(&self, dir: &ToyFid, _msg: &Tmknod) -> Result<Qid, Errno> {
        self.alive(dir)?;
        Err(Errno::EPERM)
    }

    fn rename(&self, fid: &ToyFid, dir: &ToyFid, name: &[u8]) -> Result<(), Errno> {
        self.alive(fid)?;
        self.alive(dir)?;
        self.move_to(fid.ino, dir.ino, name)
    }

    fn readlink(&self, fid: &ToyFid) -> Result<Vec<u8>, Errno> {
        self.alive(fid)?;
        let nodes = self.nodes.borrow();
        match nodes[fid.ino].kind {
            Kind::Symlink => Ok(nodes[fid.ino].data.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn getattr(&self, fid: &ToyFid, _mask: u64) -> Result<Rgetattr, Errno> {
        self.alive(fid)?;
        let nodes = self.nodes.borrow();
        let node = &nodes[fid.ino];
        let mode = match node.kind {
            Kind::Dir => 0o040_755,
            Kind::File => 0o100_644,
            Kind::Symlink => 0o120_777,
        };
        Ok(Rgetattr {
            valid: crate::consts::getattr::BASIC,
            qid: Self::qid(&nodes, fid.ino),
            mode,
            nlink: 1,
            size: node.data.len() as u64,
            blksize: 4096,
            blocks: (node.data.len() as u64).div_ceil(512),
            ..Rgetattr::default()
        })
    }

    fn setattr(&self, fid: &ToyFid, msg: &Tsetattr) -> Result<(), Errno> {
        self.alive(fid)?;
        if msg.valid & crate::consts::setattr::SIZE != 0 {
            let mut nodes = self.nodes.borrow_mut();
            let node = &mut nodes[fid.ino];
            if node.kind != Kind::File {
                return Err(Errno::EINVAL);
            }
            let size = usize::try_from(msg.size).map_err(|_| Errno::EFBIG)?;
            if size > MAX_FILE {
                return Err(Errno::EFBIG);
            }
            node.data.resize(size, 0);
            node.version = node.version.wrapping_add(1);
        }
        Ok(())
    }

    fn readdir(&self, fid: &ToyFid, offset: u64, count: u32) -> Result<Bytes, Errno> {
        self.alive(fid)?;
        let nodes = self.nodes.borrow();
        if !fid.open || nodes[fid.ino].kind != Kind::Dir {
            return Err(Errno::EBADF);
        }
        let mut out = Vec::new();
        let entries = nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.alive && n.parent == fid.ino && *i != 0);
        for (k, (ino, node)) in entries.enumerate() {
            let next = k as u64 + 1;
            if next <= offset {
                continue;
            }
            let d = Dirent {
                qid: Self::qid(&nodes, ino),
                offset: next,
                ty: match node.kind {
                    Kind::Dir => 4,
                    Kind::File => 8,
                    Kind::Symlink => 10,
                },
                name: node.name.clone(),
            };
            if out.len() + d.wire_len() > count as usize {
                break;
            }
            d.encode(&mut out);
        }
        Ok(Bytes::from(out))
    }

    fn fsync(&self, fid: &ToyFid, _datasync: bool) -> Result<(), Errno> {
        self.alive(fid)
    }

    fn lock(&self, fid: &ToyFid, _msg: &Tlock) -> Result<u8, Errno> {
        self.alive(fid)?;
        Ok(crate::consts::lock_status::SUCCESS)
    }

    fn getlock(&self, fid: &ToyFid, msg: &Tgetlock) -> Result<Rgetlock, Errno> {
        self.alive(fid)?;
        Ok(Rgetlock {
            lock_type: lock_type::UNLCK,
            start: msg.start,
            length: msg.length,
            proc_id: msg.proc_id,
            client_id: msg.client_id.clone(),
        })
    }

    fn link(&self, dir: &ToyFid, fid: &ToyFid, _name: &[u8]) -> Result<(), Errno> {
        self.alive(dir)?;
        self.alive(fid)?;
        Err(Errno::EPERM)
    }

    fn mkdir(&self, dir: &ToyFid, msg: &Tmkdir) -> Result<Qid, Errno> {
        self.alive(dir)?;
        self.create(dir.ino, &msg.name, Kind::Dir, b"")
    }

    fn renameat(
        &self,
        olddir: &ToyFid,
        oldname: &[u8],
        newdir: &ToyFid,
        newname: &[u8],
    ) -> Result<(), Errno> {
        self.alive(olddir)?;
        self.alive(newdir)?;
        let ino = Self::lookup(&self.nodes.borrow(), olddir.ino, oldname)?;
        self.move_to(ino, newdir.ino, newname)
    }

    fn unlinkat(&self, dir: &ToyFid, name: &[u8], flags: u32) -> Result<(), Errno> {
        self.alive(dir)?;
        check_name(name)?;
        let ino = Self::lookup(&self.nodes.borrow(), dir.ino, name)?;
        self.unlink(ino, Some(flags & unlink_flags::REMOVEDIR != 0))
    }
}

// ---------------------------------------------------------------------
// The client session, fed arbitrary server bytes
// ---------------------------------------------------------------------

/// Builds a [`client_session`] input: `requests` made before anything
/// arrives, the msize asked for (an index), then the server's bytes in
/// pieces of at most 255 bytes.
pub fn client_input(requests: u8, msize_index: u8, server: &[u8]) -> Vec<u8> {
    let mut out = vec![requests, msize_index];
    for piece in server.chunks(255) {
        out.push(piece.len() as u8);
        out.extend_from_slice(piece);
    }
    out
}

/// Drives a client session with arbitrary server bytes, making requests
/// before and after Rversion. Invariants: no panic; Ready comes once,
/// with an msize no larger than asked and no smaller than the minimum;
/// every answer carries a tag in flight, each answered once; input memory
/// stays bounded by the msize asked for; the session's
/// count of requests in flight matches; everything it sends decodes as a
/// T-message, within the negotiated msize once there is one.
pub fn client_session(data: &[u8]) {
    let [requests, msize_index, rest @ ..] = data else {
        return;
    };
    let asked = [MIN_MSIZE, 8192, 65536, 1 << 20][usize::from(*msize_index) % 4];
    let mut c = crate::client::ClientSession::new(asked);
    let mut in_flight: Vec<u16> = Vec::new();
    let mut ready = false;
    let mut fid = 0u32;
    let mut request = |c: &mut crate::client::ClientSession, in_flight: &mut Vec<u16>| {
        fid += 1;
        let tag = c
            .request(Twalk {
                fid: 0,
                newfid: fid,
                wnames: vec![b"a".to_vec()],
            })
            .expect("a small request is always accepted");
        assert!(!in_flight.contains(&tag), "tag {tag} handed out twice");
        in_flight.push(tag);
    };
    for _ in 0..*requests % 8 {
        request(&mut c, &mut in_flight);
    }
    let mut rest = rest;
    while let [len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (piece, after) = tail.split_at(n);
        rest = after;
        let result = c.handle_input(piece);
        while let Some(ev) = c.poll_event() {
            match ev {
                crate::client::ClientEvent::Ready { msize } => {
                    assert!(!ready, "Ready twice");
                    assert!((MIN_MSIZE..=asked.max(MIN_MSIZE)).contains(&msize));
                    ready = true;
                }
                crate::client::ClientEvent::Reply { tag, .. } => {
                    assert!(ready, "an answer before Rversion");
                    let i = in_flight
                        .iter()
                        .position(|t| *t == tag)
                        .expect("an answer to a tag in flight");
                    in_flight.swap_remove(i);
                }
            }
        }
        assert_eq!(c.in_flight(), in_flight.len());
        // A size field alone must not buy the server our memory.
        assert!(c.input_capacity() <= 4 * asked as usize + (64 << 10));
        check_client_output(&mut c, ready);
        if result.is_err() {
            return;
        }
        if ready && in_flight.len() < 64 {
            request(&mut c, &mut in_flight);
        }
    }
}

/// Everything a client sends decodes as a T-message that fits in msize.
fn check_client_output(c: &mut crate::client::ClientSession, ready: bool) {
    let mut out = Vec::new();
    c.poll_transmit(&mut out);
    let mut bytes = Bytes::from(out);
    while !bytes.is_empty() {
        let len = frame_len(&bytes, u32::MAX)
            .expect("our frames have sane sizes")
            .expect("our frames are whole");
        let fcall = decode_frame(bytes.split_to(len)).expect("our frames decode");
        assert!(fcall.msg.is_request());
        if ready && !matches!(fcall.msg, Message::Tversion(_)) {
            assert!(len <= c.msize() as usize);
        }
    }
}
