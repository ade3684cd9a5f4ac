//! Drives a `proto_ssh::Connection` on smol.
//!
//! One task serves one connection: it reads the socket and feeds the
//! bytes in, writes what the connection yields, and sleeps on an
//! `async_io::Timer` towards the connection's next deadline (keepalives,
//! time-based rekeying). The state sits behind a mutex that is never held
//! across an `.await`; every change wakes the `event_listener` events the
//! waiting handles listen on.
//!
//! The state and every step of every call (what a read takes, what a
//! write may send, when an open or a request is answered) are
//! `runtime_std::ssh::state`'s, shared with the blocking runtime; this
//! module only decides how to wait. As there, the peer's window is
//! reopened only as the application reads, so memory stays bounded by the
//! window.

mod channel;
mod forward;
pub mod session;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener};
use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};
use proto_ssh::channel::GlobalRequest;
use proto_ssh::channel::{ChannelError, ChannelId, ChannelRequest, Channels};
use proto_ssh::connection::{ClientConfig, Connection, ServerConfig};
use rand_core::OsRng;
pub use runtime_std::ssh::state::Handle;
use runtime_std::ssh::state::{self, ChanWake};

pub use runtime_std::ssh::{signal_name, signal_number, ExitStatus, DEFAULT_LOGIN_TIMEOUT, IO_BUF};

pub use self::channel::{Channel, ChannelReader, ChannelWriter};
pub use self::forward::{attach_stdio, copy, send_then_eof, splice, RemoteForward};
pub use crate::stream::HalfClose;

/// A channel's waiters: one event per kind of wait.
#[derive(Default, Debug)]
pub struct ChanEvents {
    read: Event,
    write: Event,
    req: Event,
}

impl ChanWake for ChanEvents {
    fn read(&self) {
        self.read.notify(usize::MAX);
    }
    fn write(&self) {
        self.write.notify(usize::MAX);
    }
    fn req(&self) {
        self.req.notify(usize::MAX);
    }
}

type State = state::State<ChanEvents>;

/// What a waiting call waits for.
#[derive(Clone, Copy)]
pub(crate) enum On {
    /// Connection-level changes: login, accept, opens, global replies, end.
    Conn,
    /// Data, EOF or close on a channel.
    Read(ChannelId),
    /// Window on a channel.
    Write(ChannelId),
    /// Requests, replies, exit status or close on a channel.
    Req(ChannelId),
}

/// A connection-level happening the application acts on.
pub type Incoming = state::Incoming<PendingChannel>;

/// A channel the peer asked to open.
pub type PendingChannel = state::PendingChannel<SshConnection>;

struct Inner {
    state: Mutex<State>,
    /// Connection-level waits.
    conn: Event,
    /// The driver's timer wait.
    timer: Event,
    start: Instant,
}

/// One SSH connection run by a smol task; cheap to clone.
#[derive(Clone)]
pub struct SshConnection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SshConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshConnection").finish_non_exhaustive()
    }
}

impl SshConnection {
    /// Connects as a client over `stream` (e.g. `Async<TcpStream>`,
    /// `Async<UnixStream>`) and logs in; returns once authenticated, or
    /// the reason it could not be.
    pub async fn client<S>(stream: S, config: ClientConfig) -> io::Result<Self>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self::client_with_timeout(stream, config, DEFAULT_LOGIN_TIMEOUT).await
    }

    /// As [`SshConnection::client`], the login (banner, key exchange,
    /// authentication) bounded by `timeout` (a `TimedOut` error).
    pub async fn client_with_timeout<S>(
        stream: S,
        config: ClientConfig,
        timeout: Duration,
    ) -> io::Result<Self>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn =
            Connection::client(config, Duration::ZERO, Box::new(OsRng)).map_err(state::io_err)?;
        let this = Self::run(conn, stream);
        this.wait_authenticated(timeout).await?;
        Ok(this)
    }

    /// Serves a client over `stream`. Returns at once; the login happens
    /// as the client speaks, and [`SshConnection::accept`] yields what the
    /// client asks for once it is in.
    pub fn server<S>(stream: S, config: ServerConfig) -> io::Result<Self>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn =
            Connection::server(config, Duration::ZERO, Box::new(OsRng)).map_err(state::io_err)?;
        Ok(Self::run(conn, stream))
    }

    /// Runs `conn` over `stream` in a task of smol's global executor.
    pub fn run<S>(conn: Connection, stream: S) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Unbounded: what the connection yields is bounded by the peer's
        // windows and the transport's own queue limit.
        let (tx, rx) = async_channel::unbounded::<Vec<u8>>();
        let tx: state::Tx = Box::new(move |bytes| tx.try_send(bytes).is_ok());
        let this = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(conn, tx)),
                conn: Event::new(),
                timer: Event::new(),
                start: Instant::now(),
            }),
        };
        this.with_state(|_| ());
        let (reader, writer) = futures_lite::io::split(stream);
        smol::spawn(this.clone().drive(reader, writer, rx)).detach();
        this
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere must not wedge every other task.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
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
            self.inner.conn.notify(usize::MAX);
        }
        if n.timer {
            self.inner.timer.notify(usize::MAX);
        }
    }

    /// One poll of a waiting call: runs `step` and, when it is not done,
    /// listens (under the lock, so no wakeup is lost) for what `on` names.
    pub(crate) fn poll_until<T>(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<EventListener>,
        on: On,
        mut step: impl FnMut(&mut State) -> Option<T>,
    ) -> Poll<T> {
        loop {
            if let Some(listener) = slot.as_mut() {
                if Pin::new(listener).poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *slot = None;
            }
            let mut st = self.lock();
            let r = step(&mut st);
            self.flush(&mut st);
            if let Some(r) = r {
                return Poll::Ready(r);
            }
            let chan = |id| st.waiters(id);
            *slot = Some(match on {
                On::Conn => self.inner.conn.listen(),
                On::Read(id) => {
                    chan(id).map_or_else(|| self.inner.conn.listen(), |w| w.read.listen())
                }
                On::Write(id) => {
                    chan(id).map_or_else(|| self.inner.conn.listen(), |w| w.write.listen())
                }
                On::Req(id) => {
                    chan(id).map_or_else(|| self.inner.conn.listen(), |w| w.req.listen())
                }
            });
        }
    }

    /// Waits until `step` is done.
    pub(crate) async fn until<T>(
        &self,
        on: On,
        mut step: impl FnMut(&mut State) -> Option<T>,
    ) -> T {
        let mut slot = None;
        future::poll_fn(|cx| self.poll_until(cx, &mut slot, on, &mut step)).await
    }

    async fn drive<R, W>(self, mut reader: R, mut writer: W, rx: async_channel::Receiver<Vec<u8>>)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let write = async {
            while let Ok(chunk) = rx.recv().await {
                let sent = async {
                    writer.write_all(&chunk).await?;
                    writer.flush().await
                };
                if sent.await.is_err() {
                    self.with_state(|st| st.lost("write failed"));
                    break;
                }
            }
            // The sender is dropped once the connection is over and its
            // last bytes (a DISCONNECT) were queued: close the stream.
            let _ = writer.close().await;
            self.with_state(|st| st.lost("connection closed"));
        };
        let read = async {
            let mut buf = vec![0u8; IO_BUF];
            loop {
                let n = reader.read(&mut buf).await.unwrap_or(0);
                let now = self.now();
                let done = self.with_state(|st| {
                    st.input(&buf[..n], now);
                    st.finished()
                });
                if done {
                    return;
                }
            }
        };
        let timer = async {
            loop {
                let now = self.now();
                let (next, listener) = {
                    let mut st = self.lock();
                    if st.finished() {
                        return;
                    }
                    let next = st.timeout(now);
                    self.flush(&mut st);
                    (next, self.inner.timer.listen())
                };
                match next {
                    Some(at) if at <= now => {}
                    Some(at) => {
                        let sleep = async {
                            async_io::Timer::at(self.inner.start + at).await;
                        };
                        sleep.or(listener).await;
                    }
                    None => listener.await,
                }
            }
        };
        // The writer decides when the task ends: after the last bytes went
        // out. The reader and the timer stop with it.
        write
            .or(async {
                read.or(timer).await;
                future::pending::<()>().await;
            })
            .await;
    }

    /// Waits until logged in, or fails with the reason.
    pub async fn wait_authenticated(&self, timeout: Duration) -> io::Result<()> {
        let login = self.until(On::Conn, |st| st.try_authenticated().transpose());
        let expire = async {
            async_io::Timer::after(timeout).await;
            self.with_state(|st| st.disconnect("login timed out"));
            Err(io::Error::new(io::ErrorKind::TimedOut, "login timed out"))
        };
        login.or(expire).await
    }

    /// The next channel open or global request from the peer; `None`
    /// once the connection is over.
    pub async fn accept(&self) -> Option<Incoming> {
        let inc = self.until(On::Conn, |st| st.try_incoming()).await?;
        Some(self.incoming(inc))
    }

    /// Sends a global request and waits for its answer: `Ok(Some(port))`
    /// on success (`port` set for tcpip-forward of port 0), `Ok(None)` on
    /// failure.
    pub async fn global_request(&self, request: &GlobalRequest) -> io::Result<Option<Option<u32>>> {
        let ticket = self.with_state(|st| st.start_global(request))?;
        self.until(On::Conn, |st| st.try_global_reply(ticket).transpose())
            .await
    }

    /// Opens a session channel.
    pub async fn open_session(&self) -> io::Result<Channel> {
        self.open(|c| c.open_session()).await
    }

    /// Opens a `direct-tcpip` channel (client to server forwarding).
    pub async fn open_direct_tcpip(
        &self,
        host: &str,
        port: u32,
        orig_host: &str,
        orig_port: u32,
    ) -> io::Result<Channel> {
        self.open(|c| c.open_direct_tcpip(host, port, orig_host, orig_port))
            .await
    }

    /// Opens a `forwarded-tcpip` channel (server side of tcpip-forward).
    pub async fn open_forwarded_tcpip(
        &self,
        connected_host: &str,
        connected_port: u32,
        orig_host: &str,
        orig_port: u32,
    ) -> io::Result<Channel> {
        self.open(|c| c.open_forwarded_tcpip(connected_host, connected_port, orig_host, orig_port))
            .await
    }

    async fn open(
        &self,
        f: impl FnOnce(&mut Channels) -> Result<ChannelId, ChannelError>,
    ) -> io::Result<Channel> {
        let id = self.with_state(|st| st.start_open(f))?;
        self.until(On::Conn, |st| st.try_opened(id).transpose())
            .await?;
        Ok(Channel::new(id, self.clone()))
    }

    /// Sends a request on a channel; see [`Channel::request`].
    async fn channel_request(
        &self,
        id: ChannelId,
        req: &ChannelRequest,
        want_reply: bool,
    ) -> io::Result<bool> {
        self.with_state(|st| st.with_channels(|c| c.send_request(id, req, want_reply)))?;
        if !want_reply {
            return Ok(true);
        }
        self.until(On::Req(id), |st| st.try_reply(id).transpose())
            .await
    }

    /// Waits until the connection is over.
    pub async fn wait_closed(&self) {
        self.until(On::Conn, |st| st.finished().then_some(())).await
    }
}

impl Handle for SshConnection {
    type Wake = ChanEvents;
    type Channel = Channel;

    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.lock()
    }

    fn flush_state(&self, st: &mut State) {
        self.flush(st);
    }
}
