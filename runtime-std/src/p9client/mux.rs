//! A 9P client that many threads share over one connection.
//!
//! Each caller encodes its request and writes it itself (whole frames,
//! under a writer lock); one reader thread decodes the answers and hands
//! each to the caller waiting for its tag. So a slow request (a read of a
//! fifo, a big read) does not hold up the others, and one thread can have
//! several requests out at once ([`MuxClient::start`], then
//! [`Pending::wait`]).
//!
//! At most `max_in_flight` requests are outstanding; callers beyond that
//! wait for an answer to free a slot. That bounds the tags in use, the
//! memory held for answers and the queue we make at the server.
//!
//! When the transport fails or the server breaks the protocol, every
//! waiting and later call fails with that error: the session is over. The
//! reader thread ends when the stream's read side does (EOF or error), so
//! whoever owns the stream should shut it down when done with the client.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use bytes::Bytes;
use proto_9p::client::{ClientEvent, ClientSession};
use proto_9p::messages::*;
use proto_9p::Errno;

use super::{expect_reply, CallError};

/// Bytes read from the stream at a time: a few large frames, or many
/// small ones, per system call.
const READ_BUF: usize = 256 << 10;

/// An answer as the session gives it: the R-message or the Rlerror errno.
type Answer = Result<Message, Errno>;

/// Why the session ended, kept to tell every later caller.
#[derive(Clone, Debug)]
struct Failure {
    kind: io::ErrorKind,
    what: String,
}

impl Failure {
    fn error(&self) -> CallError {
        CallError::Io(io::Error::new(self.kind, self.what.clone()))
    }
}

#[derive(Debug)]
struct State {
    session: ClientSession,
    /// The callers waiting, by tag; one per request in flight.
    waiting: HashMap<u16, SyncSender<Answer>>,
    failed: Option<Failure>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a request's slot frees or the session fails.
    slot_free: Condvar,
    max_in_flight: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock in a way that breaks the
        // tables: take them as they are.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the session: every waiting caller hears `kind`/`what` (their
    /// senders are dropped), and so does every later one.
    fn fail(&self, kind: io::ErrorKind, what: String) {
        let mut st = self.lock();
        if st.failed.is_none() {
            st.failed = Some(Failure { kind, what });
        }
        st.waiting.clear();
        drop(st);
        self.slot_free.notify_all();
    }

    fn failure(&self) -> CallError {
        match &self.lock().failed {
            Some(f) => f.error(),
            None => CallError::Io(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "9P session ended",
            )),
        }
    }
}

/// A 9P2000.L client for many threads; see the module documentation.
pub struct MuxClient {
    shared: Arc<Shared>,
    writer: Mutex<Box<dyn Write + Send>>,
    msize: u32,
}

impl fmt::Debug for MuxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MuxClient")
            .field("msize", &self.msize)
            .field("max_in_flight", &self.shared.max_in_flight)
            .finish_non_exhaustive()
    }
}

/// A request sent and not yet answered.
#[derive(Debug)]
#[must_use = "a request's answer is only seen through wait"]
pub struct Pending {
    rx: Receiver<Answer>,
    shared: Arc<Shared>,
}

impl Pending {
    /// Waits for the answer; Rlerror is [`CallError::Errno`].
    pub fn wait(self) -> Result<Message, CallError> {
        match self.rx.recv() {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => Err(CallError::Errno(e)),
            // The reader dropped our sender: the session failed.
            Err(_) => Err(self.shared.failure()),
        }
    }
}

impl MuxClient {
    /// Negotiates the version (at most `msize`) over `reader`/`writer`,
    /// the two directions of one stream, then starts the reader thread.
    /// At most `max_in_flight` requests (1 to 65535) are out at once.
    pub fn connect<R, W>(
        mut reader: R,
        mut writer: W,
        msize: u32,
        max_in_flight: usize,
    ) -> Result<Self, CallError>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let mut session = ClientSession::new(msize);
        let mut out = Vec::new();
        session.poll_transmit(&mut out);
        writer.write_all(&out)?;
        writer.flush()?;
        let mut buf = vec![0; READ_BUF];
        let negotiated = loop {
            match session.poll_event() {
                Some(ClientEvent::Ready { msize }) => break msize,
                Some(ClientEvent::Reply { .. }) => {
                    return Err(CallError::Unexpected("reply before Rversion"))
                }
                None => {}
            }
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            }
            session.handle_input(&buf[..n])?;
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                session,
                waiting: HashMap::new(),
                failed: None,
            }),
            slot_free: Condvar::new(),
            // NOTAG is not a tag: 65535 is the most the session can have.
            max_in_flight: max_in_flight.clamp(1, usize::from(u16::MAX)),
        });
        let for_reader = Arc::clone(&shared);
        thread::Builder::new()
            .name("9p-reader".into())
            .spawn(move || read_loop(&for_reader, reader, buf))?;
        Ok(MuxClient {
            shared,
            writer: Mutex::new(Box::new(writer)),
            msize: negotiated,
        })
    }

    /// The negotiated msize.
    pub fn msize(&self) -> u32 {
        self.msize
    }

    /// The largest read or write payload.
    pub fn iounit(&self) -> u32 {
        self.msize.saturating_sub(proto_9p::consts::IOHDRSZ)
    }

    /// Whether the session has failed (every call fails from then on).
    pub fn is_failed(&self) -> bool {
        self.shared.lock().failed.is_some()
    }

    /// Sends a request, waiting first for a free slot if `max_in_flight`
    /// are out; the answer comes through [`Pending::wait`].
    pub fn start(&self, msg: impl Into<Message>) -> Result<Pending, CallError> {
        let msg = msg.into();
        let (tx, rx) = mpsc::sync_channel(1);
        let mut out = Vec::new();
        {
            let mut st = self.shared.lock();
            loop {
                if let Some(f) = &st.failed {
                    return Err(f.error());
                }
                if st.waiting.len() < self.shared.max_in_flight {
                    break;
                }
                st = self
                    .shared
                    .slot_free
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let tag = st.session.request(msg)?;
            st.waiting.insert(tag, tx);
            // Only our frame is queued: every caller takes its own at once.
            st.session.poll_transmit(&mut out);
        }
        // Frames of different requests may leave in any order; each frame
        // is written whole under the lock.
        let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = w.write_all(&out).and_then(|()| w.flush()) {
            drop(w);
            self.shared
                .fail(e.kind(), format!("9P transport (writing): {e}"));
            return Err(CallError::Io(e));
        }
        Ok(Pending {
            rx,
            shared: Arc::clone(&self.shared),
        })
    }

    /// Sends a request and waits for its answer.
    pub fn call(&self, msg: impl Into<Message>) -> Result<Message, CallError> {
        self.start(msg)?.wait()
    }

    /// Reads up to `count` bytes at `offset`.
    pub fn read(&self, fid: u32, offset: u64, count: u32) -> Result<Bytes, CallError> {
        Ok(expect_reply!(self.call(Tread { fid, offset, count })?, Rread)?.data)
    }

    /// Writes `data` at `offset`.
    pub fn write(&self, fid: u32, offset: u64, data: Bytes) -> Result<u32, CallError> {
        Ok(expect_reply!(self.call(Twrite { fid, offset, data })?, Rwrite)?.count)
    }

    /// Opens `fid` with `flags`.
    pub fn lopen(&self, fid: u32, flags: u32) -> Result<Rlopen, CallError> {
        expect_reply!(self.call(Tlopen { fid, flags })?, Rlopen)
    }

    /// Attributes of `fid`.
    pub fn getattr(&self, fid: u32, mask: u64) -> Result<Rgetattr, CallError> {
        expect_reply!(
            self.call(Tgetattr {
                fid,
                request_mask: mask
            })?,
            Rgetattr
        )
    }

    /// Forgets `fid`.
    pub fn clunk(&self, fid: u32) -> Result<(), CallError> {
        expect_reply!(self.call(Tclunk { fid })?, Rclunk).map(drop)
    }
}

/// The reader thread: feeds the session and hands out its answers until
/// the stream ends or the session fails.
fn read_loop(shared: &Shared, mut reader: impl Read, mut buf: Vec<u8>) {
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => {
                return shared.fail(
                    io::ErrorKind::UnexpectedEof,
                    "9P server closed the connection".into(),
                )
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return shared.fail(e.kind(), format!("9P transport (reading): {e}")),
        };
        let mut st = shared.lock();
        if st.failed.is_some() {
            return;
        }
        if let Err(e) = st.session.handle_input(&buf[..n]) {
            drop(st);
            return shared.fail(io::ErrorKind::InvalidData, format!("9P protocol: {e}"));
        }
        let mut freed = false;
        while let Some(ev) = st.session.poll_event() {
            if let ClientEvent::Reply { tag, result } = ev {
                if let Some(tx) = st.waiting.remove(&tag) {
                    // One answer per tag into a channel of one: never
                    // blocks. A caller that gave up is no error.
                    let _ = tx.try_send(result);
                    freed = true;
                }
            }
        }
        drop(st);
        if freed {
            shared.slot_free.notify_all();
        }
    }
}
