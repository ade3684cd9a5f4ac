//! Drives a `proto_ssh::Connection` with blocking threads.
//!
//! Three threads serve one connection: a reader that feeds the peer's
//! bytes in, a writer that sends what the connection yields (so that a
//! full socket never holds the state lock), and a timer for keepalives
//! and time-based rekeying. The state sits behind one mutex; every change
//! wakes the condition variable that blocked callers wait on.
//!
//! Channels are [`Channel`] handles with blocking reads and writes; their
//! received data waits in per-channel buffers, and the peer's window is
//! reopened only as the application reads, so memory stays bounded by the
//! window.

mod channel;
mod forward;
pub mod session;
pub mod state;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use proto_ssh::channel::{ChannelRequest, GlobalRequest};
use proto_ssh::connection::{ClientConfig, Connection, ServerConfig};
use proto_ssh::msg::DisconnectReason;
use rand_core::OsRng;

use crate::socket::Socket;

pub use self::channel::{
    signal_name, signal_number, Channel, ChannelReader, ChannelWriter, ExitStatus,
};
pub use self::forward::{
    attach_stdio, bind_forward, copy, send_then_eof, splice_tcp, write_all, RemoteForward,
};
use self::state::ChanCv;
pub use self::state::Handle;

/// The state of a connection driven by threads.
type State = state::State<ChanCv>;

/// A connection-level happening the application acts on.
pub type Incoming = state::Incoming<PendingChannel>;

/// A channel the peer asked to open.
pub type PendingChannel = state::PendingChannel<SshConnection>;

struct Inner {
    state: Mutex<State>,
    /// Connection-level waits: login, accept, opens, global replies, end.
    cond: Condvar,
    /// The timer thread's wait.
    timer: Condvar,
    start: Instant,
}

/// One SSH connection run by threads; cheap to clone.
#[derive(Clone)]
pub struct SshConnection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SshConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnection").finish_non_exhaustive()
    }
}

/// The buffer size of the copies between sockets, pipes and channels:
/// large enough that locking and waking cost little per byte.
pub const IO_BUF: usize = 256 * 1024;

/// How long a client waits for the login to finish.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

impl SshConnection {
    /// Connects as a client over a TCP `stream` and logs in; returns once
    /// authenticated, or the reason it could not be.
    pub fn client_tcp(stream: TcpStream, config: ClientConfig) -> io::Result<Self> {
        Self::client(stream, config)
    }

    /// Serves a client over a TCP `stream`; see [`SshConnection::server`].
    pub fn server_tcp(stream: TcpStream, config: ServerConfig) -> io::Result<Self> {
        Self::server(stream, config)
    }

    /// Connects as a client over `socket` (TCP, Unix, vsock) and logs in;
    /// returns once authenticated, or the reason it could not be.
    pub fn client<S: Socket>(socket: S, config: ClientConfig) -> io::Result<Self> {
        Self::client_with_timeout(socket, config, DEFAULT_LOGIN_TIMEOUT)
    }

    /// As [`SshConnection::client`], the login (banner, key exchange,
    /// authentication) bounded by `timeout` (a `TimedOut` error).
    pub fn client_with_timeout<S: Socket>(
        socket: S,
        config: ClientConfig,
        timeout: Duration,
    ) -> io::Result<Self> {
        let conn =
            Connection::client(config, Duration::ZERO, Box::new(OsRng)).map_err(state::io_err)?;
        let this = Self::over_socket(conn, socket)?;
        this.wait_authenticated(timeout)?;
        Ok(this)
    }

    /// Serves a client over `socket`. Returns at once; the login happens
    /// as the client speaks, and [`SshConnection::accept`] yields what the
    /// client asks for once it is in.
    pub fn server<S: Socket>(socket: S, config: ServerConfig) -> io::Result<Self> {
        let conn =
            Connection::server(config, Duration::ZERO, Box::new(OsRng)).map_err(state::io_err)?;
        Self::over_socket(conn, socket)
    }

    fn over_socket<S: Socket>(conn: Connection, socket: S) -> io::Result<Self> {
        socket.set_low_latency();
        let reader = socket.try_clone()?;
        let closer = socket.try_clone()?;
        Self::run(
            conn,
            reader,
            socket,
            Box::new(move || closer.shutdown_both()),
        )
    }

    /// Runs `conn` over any byte stream split in a read half and a write
    /// half; `close` is called once the connection is over, to unblock
    /// the reader (shut the socket down, close the pipe). Fails, with
    /// everything undone, when a thread cannot start (a daemon under a
    /// flood must survive it, not abort).
    pub fn run<R, W>(
        conn: Connection,
        reader: R,
        writer: W,
        close: Box<dyn FnOnce() + Send>,
    ) -> io::Result<Self>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let tx: state::Tx = Box::new(move |bytes| tx.send(bytes).is_ok());
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(conn, tx)),
            cond: Condvar::new(),
            timer: Condvar::new(),
            start: Instant::now(),
        });
        let this = Self { inner };
        {
            let mut st = this.lock();
            this.flush(&mut st);
        }
        spawn_writer(this.clone(), rx, writer, close)?;
        let r = this.clone();
        let t = this.clone();
        let started = thread::Builder::new()
            .spawn(move || r.read_loop(reader))
            .and_then(|_| thread::Builder::new().spawn(move || t.timer_loop()));
        if let Err(e) = started {
            // The writer sees the end, closes the stream, and the reader
            // (if it started) reads its end.
            let mut st = this.lock();
            st.lost("cannot start a thread");
            this.flush(&mut st);
            return Err(e);
        }
        Ok(this)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge every other thread.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.wait_on(&self.inner.cond, guard)
    }

    /// Waits on `cv`, one of the conditions of this connection's state.
    fn wait_on<'a>(&self, cv: &Condvar, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        cv.wait(guard).unwrap_or_else(|poison| poison.into_inner())
    }

    fn wait_until<'a>(
        &self,
        cv: &Condvar,
        guard: MutexGuard<'a, State>,
        deadline: Instant,
    ) -> MutexGuard<'a, State> {
        let left = deadline.saturating_duration_since(Instant::now());
        cv.wait_timeout(guard, left)
            .map(|(g, _)| g)
            .unwrap_or_else(|poison| poison.into_inner().0)
    }

    fn now(&self) -> Duration {
        self.inner.start.elapsed()
    }

    /// Sends what the connection has to send, takes in its events, and
    /// wakes the waiters they concern.
    fn flush(&self, st: &mut State) {
        st.pump();
        let n = st.notify();
        if n.conn {
            self.inner.cond.notify_all();
        }
        if n.timer {
            self.inner.timer.notify_all();
        }
    }

    fn read_loop<R: Read>(&self, mut reader: R) {
        let mut buf = vec![0u8; IO_BUF];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) | Err(_) => 0,
                Ok(n) => n,
            };
            let mut st = self.lock();
            let now = self.now();
            st.input(&buf[..n], now);
            self.flush(&mut st);
            if st.finished() {
                return;
            }
        }
    }

    fn timer_loop(&self) {
        let mut st = self.lock();
        loop {
            if st.finished() {
                return;
            }
            let now = self.now();
            let next = st.timeout(now);
            self.flush(&mut st);
            match next {
                Some(at) if at <= now => {}
                Some(at) => {
                    st = self.wait_until(&self.inner.timer, st, Instant::now() + (at - now));
                }
                None => st = self.wait_on(&self.inner.timer, st),
            }
        }
    }

    /// Blocks until logged in, or fails with the reason.
    pub fn wait_authenticated(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if st.try_authenticated()?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                st.conn
                    .disconnect(DisconnectReason::ByApplication, "login timed out");
                self.flush(&mut st);
                return Err(io::Error::new(io::ErrorKind::TimedOut, "login timed out"));
            }
            st = self.wait_until(&self.inner.cond, st, deadline);
        }
    }

    /// The next channel open or global request from the peer; `None`
    /// once the connection is over.
    pub fn accept(&self) -> Option<Incoming> {
        let mut st = self.lock();
        loop {
            if let Some(inc) = st.try_incoming() {
                return Some(self.incoming(inc?));
            }
            st = self.wait(st);
        }
    }

    /// Sends a global request and waits for its answer: `Ok(Some(port))`
    /// on success (`port` set for tcpip-forward of port 0), `Ok(None)` on
    /// failure.
    pub fn global_request(&self, request: &GlobalRequest) -> io::Result<Option<Option<u32>>> {
        let mut st = self.lock();
        let ticket = st.start_global(request)?;
        self.flush(&mut st);
        loop {
            if let Some(reply) = st.try_global_reply(ticket)? {
                return Ok(reply);
            }
            st = self.wait(st);
        }
    }

    /// Opens a session channel.
    pub fn open_session(&self) -> io::Result<Channel> {
        self.open(|c| c.open_session())
    }

    /// Opens a `direct-tcpip` channel (client to server forwarding).
    pub fn open_direct_tcpip(
        &self,
        host: &str,
        port: u32,
        orig_host: &str,
        orig_port: u32,
    ) -> io::Result<Channel> {
        self.open(|c| c.open_direct_tcpip(host, port, orig_host, orig_port))
    }

    /// Opens a `forwarded-tcpip` channel (server side of tcpip-forward).
    pub fn open_forwarded_tcpip(
        &self,
        connected_host: &str,
        connected_port: u32,
        orig_host: &str,
        orig_port: u32,
    ) -> io::Result<Channel> {
        self.open(|c| c.open_forwarded_tcpip(connected_host, connected_port, orig_host, orig_port))
    }

    fn open(
        &self,
        f: impl FnOnce(
            &mut proto_ssh::channel::Channels,
        )
            -> Result<proto_ssh::channel::ChannelId, proto_ssh::channel::ChannelError>,
    ) -> io::Result<Channel> {
        let mut st = self.lock();
        let id = st.start_open(f)?;
        self.flush(&mut st);
        loop {
            if st.try_opened(id)?.is_some() {
                return Ok(Channel::new(id, self.clone()));
            }
            st = self.wait(st);
        }
    }

    /// Sends a request on a channel; see [`Channel::request`].
    fn channel_request(
        &self,
        id: proto_ssh::channel::ChannelId,
        req: &ChannelRequest,
        want_reply: bool,
    ) -> io::Result<bool> {
        let mut st = self.lock();
        st.with_channels(|c| c.send_request(id, req, want_reply))?;
        self.flush(&mut st);
        if !want_reply {
            return Ok(true);
        }
        loop {
            if let Some(ok) = st.try_reply(id)? {
                return Ok(ok);
            }
            let Some(cv) = st.waiters(id) else {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "channel closed"));
            };
            st = self.wait_on(&cv.req, st);
        }
    }

    /// Blocks until the connection is over.
    pub fn wait_closed(&self) {
        let mut st = self.lock();
        while !st.finished() {
            st = self.wait(st);
        }
    }
}

impl Handle for SshConnection {
    type Wake = ChanCv;
    type Channel = Channel;

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.lock()
    }

    fn flush_state(&self, st: &mut State) {
        self.flush(st);
    }
}

fn spawn_writer<W: Write + Send + 'static>(
    conn: SshConnection,
    rx: mpsc::Receiver<Vec<u8>>,
    mut writer: W,
    close: Box<dyn FnOnce() + Send>,
) -> io::Result<()> {
    thread::Builder::new().spawn(move || {
        for chunk in rx.iter() {
            if writer
                .write_all(&chunk)
                .and_then(|()| writer.flush())
                .is_err()
            {
                let mut st = conn.lock();
                st.lost("write failed");
                conn.flush(&mut st);
                break;
            }
        }
        // The sender is dropped once the connection is over and its last
        // bytes (a DISCONNECT) were queued: close the stream.
        close();
        let mut st = conn.lock();
        st.lost("connection closed");
        conn.flush(&mut st);
        drop(st);
    })?;
    Ok(())
}
