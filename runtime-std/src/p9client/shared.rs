//! The client shared by many threads, apart from its transport: the tag
//! table, the in-flight bound, the failure state and the dispatch of
//! decoded answers, and the version exchange. Runtime adapters connect
//! it with [`MuxClient::negotiate`], giving it a function that writes
//! one frame and one that reads, then feed what they read to the
//! [`Dispatch`] they get back (this crate from a reader thread,
//! runtime-smol from an async task); they differ only in how they read
//! and write.
//!
//! Each caller encodes its request and writes it itself (whole frames,
//! under a writer lock); the reading side decodes the answers and hands
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
//! waiting and later call fails with that error: the session is over.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::ops::ControlFlow;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use proto_9p::client::{ClientEvent, ClientSession};
use proto_9p::messages::*;
use proto_9p::Errno;

use super::{expect_reply, CallError};

/// Bytes read from the stream at a time: a few large frames, or many
/// small ones, per system call.
const READ_BUF: usize = 256 << 10;

/// Writes one whole frame to the server (and flushes it). Called by one
/// caller at a time, so frames never interleave.
pub type SendFrame = Box<dyn FnMut(&[u8]) -> io::Result<()> + Send>;

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
    send: Mutex<SendFrame>,
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
            // The reading side dropped our sender: the session failed.
            Err(_) => Err(self.shared.failure()),
        }
    }
}

/// The reading side of a [`MuxClient`]: what a runtime's reader feeds.
#[derive(Debug)]
pub struct Dispatch {
    shared: Arc<Shared>,
}

impl Dispatch {
    /// Takes one read's result, the bytes being `buf[..n]`: hands out the
    /// answers it completes, or ends the session at the end of the
    /// stream, on an error or on a protocol violation. `Break` means
    /// the reader is done.
    pub fn input(&self, read: io::Result<usize>, buf: &[u8]) -> ControlFlow<()> {
        let shared = &*self.shared;
        let n = match read {
            Ok(0) => {
                shared.fail(
                    io::ErrorKind::UnexpectedEof,
                    "9P server closed the connection".into(),
                );
                return ControlFlow::Break(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return ControlFlow::Continue(()),
            Err(e) => {
                shared.fail(e.kind(), format!("9P transport (reading): {e}"));
                return ControlFlow::Break(());
            }
        };
        let Some(data) = buf.get(..n) else {
            shared.fail(io::ErrorKind::InvalidInput, "read past the buffer".into());
            return ControlFlow::Break(());
        };
        let mut st = shared.lock();
        if st.failed.is_some() {
            return ControlFlow::Break(());
        }
        if let Err(e) = st.session.handle_input(data) {
            drop(st);
            shared.fail(io::ErrorKind::InvalidData, format!("9P protocol: {e}"));
            return ControlFlow::Break(());
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
        ControlFlow::Continue(())
    }
}

impl MuxClient {
    /// Negotiates the version (at most `msize`): sends Tversion with
    /// `send`, which then writes every frame, and reads with `read` until
    /// Rversion is in. Returns the client, the [`Dispatch`] the reading
    /// side feeds from then on, and a buffer for its reads. At most
    /// `max_in_flight` requests (1 to 65535) are out at once.
    pub fn negotiate(
        msize: u32,
        max_in_flight: usize,
        mut send: SendFrame,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> Result<(Self, Dispatch, Vec<u8>), CallError> {
        let mut session = ClientSession::new(msize);
        let mut out = Vec::new();
        session.poll_transmit(&mut out);
        send(&out)?;
        let mut buf = vec![0; READ_BUF];
        loop {
            match session.poll_event() {
                Some(ClientEvent::Ready { .. }) => break,
                Some(ClientEvent::Reply { .. }) => {
                    return Err(CallError::Unexpected("reply before Rversion"))
                }
                None => {}
            }
            let n = read(&mut buf)?;
            let Some(data) = buf.get(..n).filter(|d| !d.is_empty()) else {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
            };
            session.handle_input(data)?;
        }
        let msize = session.msize();
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
        let dispatch = Dispatch {
            shared: Arc::clone(&shared),
        };
        let client = MuxClient {
            shared,
            send: Mutex::new(send),
            msize,
        };
        Ok((client, dispatch, buf))
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
        let mut send = self.send.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = send(&out) {
            drop(send);
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
