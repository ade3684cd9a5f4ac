//! The state shared by a connection's drivers and handles: the
//! connection itself and what its events left for the application.
//!
//! It knows nothing of threads or tasks: a runtime (this crate's threads,
//! runtime-smol's tasks) keeps it behind a mutex, calls [`State::pump`]
//! after every change and wakes its waiters as [`State::notify`] says.
//! The `try_*` operations do one step of a blocking or async call and say
//! whether it finished, so that both runtimes share the whole logic and
//! differ only in how they wait.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Condvar, MutexGuard};
use std::time::Duration;

use proto_ssh::channel::{
    ChannelError, ChannelEvent, ChannelId, ChannelKind, ChannelRequest, Channels, GlobalRequest,
};
use proto_ssh::connection::{Connection, Event};
use proto_ssh::msg::DisconnectReason;

use super::channel::ExitStatus;

/// Turns a protocol error into an I/O error for blocking callers.
pub fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

fn channel_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "channel closed")
}

/// Something the peer asked for, waiting for the application.
#[derive(Debug)]
pub enum Inc {
    /// A channel open.
    Channel(ChannelId, ChannelKind),
    /// A global request and whether it wants a reply.
    Global(GlobalRequest, bool),
}

impl Inc {
    /// The application's view of it, with `pending` making the runtime's
    /// handle on a channel open.
    pub fn into_incoming<P>(
        self,
        pending: impl FnOnce(ChannelId, ChannelKind) -> P,
    ) -> Incoming<P> {
        match self {
            Self::Channel(id, kind) => Incoming::Channel(pending(id, kind)),
            Self::Global(request, want_reply) => Incoming::Global {
                request,
                want_reply,
            },
        }
    }
}

/// A connection-level happening the application acts on; `P` is the
/// runtime's handle on a channel the peer opens.
#[derive(Debug)]
pub enum Incoming<P> {
    /// The peer opens a channel; accept or reject it.
    Channel(P),
    /// The peer sends a global request (tcpip-forward, ...); answer it
    /// with `reply_global` when `want_reply`.
    Global {
        /// The request.
        request: GlobalRequest,
        /// Whether an answer is expected.
        want_reply: bool,
    },
}

/// Wakes the waiters of one channel; each kind of wait has its own, so
/// that data for a reader does not wake a writer or a request handler.
pub trait ChanWake: Default + Send + Sync + 'static {
    /// Data, EOF or close for readers.
    fn read(&self);
    /// Window for writers.
    fn write(&self);
    /// Requests, replies and the exit status.
    fn req(&self);
}

/// The blocking runtime's channel waiters.
#[derive(Default, Debug)]
pub struct ChanCv {
    pub(crate) read: Condvar,
    pub(crate) write: Condvar,
    pub(crate) req: Condvar,
}

impl ChanWake for ChanCv {
    fn read(&self) {
        self.read.notify_all();
    }
    fn write(&self) {
        self.write.notify_all();
    }
    fn req(&self) {
        self.req.notify_all();
    }
}

/// Which waiters the last events concern.
#[derive(Default)]
struct Wake {
    conn: bool,
    every_writer: bool,
    read: Vec<ChannelId>,
    write: Vec<ChannelId>,
    req: Vec<ChannelId>,
}

/// What [`State::notify`] leaves to the runtime to wake.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notified {
    /// Connection-level waits: login, accept, opens, global replies, end.
    pub conn: bool,
    /// The timer, whose deadline moved earlier (or the end).
    pub timer: bool,
}

/// What one channel has received.
struct ChanState<W> {
    /// Its waiters.
    cv: Arc<W>,
    data: VecDeque<u8>,
    ext: VecDeque<u8>,
    eof: bool,
    closed: bool,
    /// Whether we sent CLOSE (or the handles are gone).
    released: bool,
    replies: VecDeque<bool>,
    requests: VecDeque<(ChannelRequest, bool)>,
    open: Option<Result<(), String>>,
    exit: Option<ExitStatus>,
}

impl<W: Default> Default for ChanState<W> {
    fn default() -> Self {
        Self {
            cv: Arc::default(),
            data: VecDeque::new(),
            ext: VecDeque::new(),
            eof: false,
            closed: false,
            released: false,
            replies: VecDeque::new(),
            requests: VecDeque::new(),
            open: None,
            exit: None,
        }
    }
}

/// Where the bytes to send go: the runtime's writer; `false` once it is
/// gone.
pub type Tx = Box<dyn FnMut(Vec<u8>) -> bool + Send>;

/// A finished step of a waiting call, or `None`: wait and try again.
pub type Step<T> = io::Result<Option<T>>;

/// One connection and what its events left for the application.
pub struct State<W> {
    /// The protocol state machine.
    pub conn: Connection,
    tx: Option<Tx>,
    chans: HashMap<ChannelId, ChanState<W>>,
    incoming: VecDeque<Inc>,
    global_replies: HashMap<u64, (bool, Option<u32>)>,
    global_sent: u64,
    global_received: u64,
    user: Option<String>,
    algorithms: Option<[&'static str; 4]>,
    banner: Option<String>,
    kex_count: u64,
    error: Option<String>,
    closed: bool,
    /// The deadline the timer sleeps towards, if any.
    pub timer_at: Option<Duration>,
    wake: Wake,
}

impl<W> std::fmt::Debug for State<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("channels", &self.chans.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl<W: ChanWake> State<W> {
    /// A new state around `conn`, sending through `tx`.
    pub fn new(conn: Connection, tx: Tx) -> Self {
        Self {
            conn,
            tx: Some(tx),
            chans: HashMap::new(),
            incoming: VecDeque::new(),
            global_replies: HashMap::new(),
            global_sent: 0,
            global_received: 0,
            user: None,
            algorithms: None,
            banner: None,
            kex_count: 0,
            error: None,
            closed: false,
            timer_at: None,
            wake: Wake::default(),
        }
    }

    /// Whether the connection is over.
    pub fn finished(&self) -> bool {
        self.closed
    }

    /// The error to give callers once the connection is over.
    pub fn closed_error(&self) -> Option<io::Error> {
        self.closed.then(|| {
            let text = self
                .error
                .clone()
                .unwrap_or_else(|| "connection closed".into());
            let kind = if text.starts_with("permission denied") {
                io::ErrorKind::PermissionDenied
            } else {
                io::ErrorKind::ConnectionAborted
            };
            io::Error::new(kind, text)
        })
    }

    /// The connection failed with `e`.
    pub fn failed(&mut self, e: &proto_ssh::connection::Error) {
        use proto_ssh::connection::Error;
        use proto_ssh::transport::TransportError;
        use proto_ssh::version::Role;
        let text = match e {
            // The peer's own words, as the user's one line: who ended it
            // and why, without codes or terminal controls.
            Error::Transport(TransportError::PeerDisconnected { description, .. }) => {
                let who = match self.conn.role() {
                    Role::Client => "the server",
                    Role::Server => "the client",
                };
                let why: String = description
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                match why.trim() {
                    "" => format!("{who} disconnected"),
                    why => format!("{who} disconnected: {why}"),
                }
            }
            e => e.to_string(),
        };
        self.error.get_or_insert(text);
        self.closed = true;
    }

    /// The stream ended or broke.
    pub fn lost(&mut self, why: &str) {
        self.error.get_or_insert_with(|| why.to_string());
        self.closed = true;
    }

    /// Feeds bytes from the peer; an empty `data` is the end of the
    /// stream.
    pub fn input(&mut self, data: &[u8], now: Duration) {
        if data.is_empty() {
            self.lost("connection closed by peer");
        } else if let Err(e) = self.conn.handle_input(data, now) {
            self.failed(&e);
        }
    }

    /// Runs the connection's timers if due; returns the next deadline
    /// (and remembers it as the one the timer sleeps towards).
    pub fn timeout(&mut self, now: Duration) -> Option<Duration> {
        if self.conn.poll_timeout().is_some_and(|at| at <= now) {
            if let Err(e) = self.conn.handle_timeout(now) {
                self.failed(&e);
            }
            self.pump();
        }
        self.timer_at = self.conn.poll_timeout();
        self.timer_at
    }

    /// The user that logged in (server) or our user (client), once known.
    pub fn user(&self) -> Option<String> {
        self.user.clone()
    }

    /// The algorithms of the last key exchange.
    pub fn algorithms(&self) -> Option<[&'static str; 4]> {
        self.algorithms
    }

    /// The banner the server sent, if any.
    pub fn banner(&self) -> Option<String> {
        self.banner.clone()
    }

    /// How many key exchanges have finished.
    pub fn kex_count(&self) -> u64 {
        self.kex_count
    }

    /// Ends the connection from our side.
    pub fn disconnect(&mut self, description: &str) {
        self.conn
            .disconnect(DisconnectReason::ByApplication, description);
        self.lost(description);
    }

    /// Applies `f` to the channel table.
    pub fn with_channels<T>(
        &mut self,
        f: impl FnOnce(&mut Channels) -> Result<T, ChannelError>,
    ) -> io::Result<T> {
        self.conn
            .channels()
            .and_then(|c| f(c).map_err(Into::into))
            .map_err(io_err)
    }

    /// Login: done, failed, or not yet.
    pub fn try_authenticated(&self) -> Step<()> {
        if self.conn.is_authenticated() {
            return Ok(Some(()));
        }
        self.closed_error().map_or(Ok(None), Err)
    }

    /// The next thing the peer asked for: `Some(None)` once the
    /// connection is over, `None` when there is nothing yet.
    pub fn try_incoming(&mut self) -> Option<Option<Inc>> {
        match self.incoming.pop_front() {
            Some(inc) => Some(Some(inc)),
            None => self.closed.then_some(None),
        }
    }

    /// Accepts the peer's channel open.
    pub fn accept_open(&mut self, id: ChannelId) -> io::Result<()> {
        self.with_channels(|c| c.accept_open(id))?;
        self.add_channel(id, true);
        Ok(())
    }

    /// Sends a global request that wants a reply; returns its ticket for
    /// [`State::try_global_reply`].
    pub fn start_global(&mut self, request: &GlobalRequest) -> io::Result<u64> {
        self.conn.global_request(request, true).map_err(io_err)?;
        let ticket = self.global_sent;
        self.global_sent += 1;
        Ok(ticket)
    }

    /// The answer to global request `ticket`: `Some(port)` on success.
    pub fn try_global_reply(&mut self, ticket: u64) -> Step<Option<Option<u32>>> {
        if let Some((ok, port)) = self.global_replies.remove(&ticket) {
            return Ok(Some(ok.then_some(port)));
        }
        self.closed_error().map_or(Ok(None), Err)
    }

    /// Opens a channel with `f`; wait for it with [`State::try_opened`].
    pub fn start_open(
        &mut self,
        f: impl FnOnce(&mut Channels) -> Result<ChannelId, ChannelError>,
    ) -> io::Result<ChannelId> {
        let id = self.with_channels(f)?;
        self.add_channel(id, false);
        Ok(id)
    }

    /// Whether the peer took channel `id`.
    pub fn try_opened(&mut self, id: ChannelId) -> Step<()> {
        match self.chans.get(&id).and_then(|c| c.open.clone()) {
            Some(Ok(())) => return Ok(Some(())),
            Some(Err(text)) => {
                self.chans.remove(&id);
                return Err(io::Error::new(io::ErrorKind::ConnectionRefused, text));
            }
            None => {}
        }
        self.closed_error().map_or(Ok(None), Err)
    }

    fn add_channel(&mut self, id: ChannelId, opened: bool) {
        let c = ChanState {
            open: opened.then_some(Ok(())),
            ..ChanState::default()
        };
        self.chans.insert(id, c);
    }

    /// The waiters of channel `id`, while it is known.
    pub fn waiters(&self, id: ChannelId) -> Option<Arc<W>> {
        self.chans.get(&id).map(|c| c.cv.clone())
    }

    /// Reads received data (or stderr) into `buf` and reopens the peer's
    /// window by as much: `Some(0)` at EOF, `None` when nothing is there
    /// yet.
    pub fn try_read(&mut self, id: ChannelId, stderr: bool, buf: &mut [u8]) -> Step<usize> {
        if buf.is_empty() {
            return Ok(Some(0));
        }
        let Some(c) = self.chans.get_mut(&id) else {
            return Ok(Some(0));
        };
        let q = if stderr { &mut c.ext } else { &mut c.data };
        if q.is_empty() {
            return Ok((c.eof || c.closed).then_some(0));
        }
        let n = q.len().min(buf.len());
        let (front, back) = q.as_slices();
        let from_front = front.len().min(n);
        buf[..from_front].copy_from_slice(&front[..from_front]);
        buf[from_front..n].copy_from_slice(&back[..n - from_front]);
        q.drain(..n);
        if !c.closed {
            self.with_channels(|ch| ch.consumed(id, n))?;
        }
        Ok(Some(n))
    }

    /// Sends data (or stderr) as far as the peer's window allows: `None`
    /// when the window is shut.
    pub fn try_write(&mut self, id: ChannelId, stderr: bool, data: &[u8]) -> Step<usize> {
        if data.is_empty() {
            return Ok(Some(0));
        }
        if self.chans.get(&id).is_none_or(|c| c.closed) {
            return Err(channel_closed());
        }
        let n = if stderr {
            self.conn.send_extended_data(id, 1, data)
        } else {
            self.conn.send_data(id, data)
        }
        .map_err(io_err)?;
        if n > 0 {
            return Ok(Some(n));
        }
        self.closed_error().map_or(Ok(None), Err)
    }

    /// Sends CLOSE unless the channel is closed already.
    pub fn close(&mut self, id: ChannelId) -> io::Result<()> {
        if self.chans.get(&id).is_none_or(|c| c.closed) {
            return Ok(());
        }
        self.with_channels(|c| c.close(id))
    }

    /// The last handle on channel `id` went: close it, or forget it if
    /// it is closed already.
    pub fn release(&mut self, id: ChannelId) {
        let closed = match self.chans.get_mut(&id) {
            Some(c) => {
                c.released = true;
                c.closed
            }
            None => return,
        };
        if closed {
            self.chans.remove(&id);
        } else if let Ok(ch) = self.conn.channels() {
            let _ = ch.close(id);
        }
    }

    /// The answer to our oldest request on channel `id` that wanted one.
    /// When the connection is over, its reason (a disconnect, say) is the
    /// error rather than the channel's closing.
    pub fn try_reply(&mut self, id: ChannelId) -> Step<bool> {
        let gone = |st: &Self| st.closed_error().unwrap_or_else(channel_closed);
        let Some(c) = self.chans.get_mut(&id) else {
            return Err(gone(self));
        };
        if let Some(ok) = c.replies.pop_front() {
            return Ok(Some(ok));
        }
        if c.closed {
            return Err(gone(self));
        }
        Ok(None)
    }

    /// The peer's next request on channel `id`: `Some(None)` once the
    /// channel is closed, `None` when there is none yet.
    #[allow(clippy::type_complexity)]
    pub fn try_request(&mut self, id: ChannelId) -> Option<Option<(ChannelRequest, bool)>> {
        let Some(c) = self.chans.get_mut(&id) else {
            return Some(None);
        };
        if let Some(r) = c.requests.pop_front() {
            return Some(Some(r));
        }
        c.closed.then_some(None)
    }

    /// Once channel `id` is closed, how its command ended if the peer
    /// said; `None` while it is open.
    pub fn try_exit(&mut self, id: ChannelId) -> Option<Option<ExitStatus>> {
        match self.chans.get(&id) {
            None => Some(None),
            Some(c) if c.closed => Some(c.exit.clone()),
            Some(_) => None,
        }
    }

    /// The exit status if it has come.
    pub fn exit_status(&self, id: ChannelId) -> Option<ExitStatus> {
        self.chans.get(&id).and_then(|c| c.exit.clone())
    }

    /// Says whom the events since the last call concern: each channel's
    /// waiters are woken here; the connection-level waiters and the
    /// timer are the runtime's to wake. Everyone, once closed.
    pub fn notify(&mut self) -> Notified {
        let wake = std::mem::take(&mut self.wake);
        let all = self.closed;
        for (id, c) in &self.chans {
            if all || wake.every_writer || wake.write.contains(id) {
                c.cv.write();
            }
            if all || wake.read.contains(id) {
                c.cv.read();
            }
            if all || wake.req.contains(id) {
                c.cv.req();
            }
        }
        let next = self.conn.poll_timeout();
        let earlier = match (next, self.timer_at) {
            (Some(n), Some(t)) => n < t,
            (Some(_), None) => true,
            _ => false,
        };
        Notified {
            conn: wake.conn || all,
            timer: earlier || all,
        }
    }

    /// Sends what the connection has to send and takes in its events,
    /// until neither has more.
    pub fn pump(&mut self) {
        loop {
            let mut progress = false;
            while let Some(bytes) = self.conn.poll_transmit() {
                progress = true;
                if let Some(tx) = &mut self.tx {
                    if !tx(bytes) {
                        self.lost("writer gone");
                    }
                }
            }
            while let Some(ev) = self.conn.poll_event() {
                progress = true;
                self.event(ev);
            }
            if !progress {
                break;
            }
        }
        if self.conn.is_closed() {
            if let Some(e) = self.conn.error() {
                self.error.get_or_insert_with(|| e.to_string());
            }
            self.closed = true;
        }
        if self.closed {
            // Everything to send is queued: the writer ends after it.
            self.tx = None;
            for c in self.chans.values_mut() {
                c.closed = true;
                c.eof = true;
            }
        }
    }

    fn event(&mut self, ev: Event) {
        if let Event::Channel(ev) = &ev {
            self.mark(ev);
        } else {
            self.wake.conn = true;
        }
        if let Event::Writable = ev {
            self.wake.every_writer = true;
        }
        match ev {
            Event::KexDone { negotiated, .. } => {
                self.kex_count += 1;
                self.algorithms = Some([
                    negotiated.kex.name(),
                    negotiated.host_key.name(),
                    negotiated.cipher_c2s.name(),
                    negotiated.cipher_s2c.name(),
                ]);
            }
            Event::Banner(b) => self.banner = Some(b),
            Event::Authenticated { user, .. } => self.user = Some(user),
            Event::Channel(ev) => self.channel_event(ev),
            _ => {}
        }
    }

    /// Notes whom a channel event concerns.
    fn mark(&mut self, ev: &ChannelEvent) {
        let w = &mut self.wake;
        match ev {
            ChannelEvent::Data { id, .. }
            | ChannelEvent::ExtendedData { id, .. }
            | ChannelEvent::Eof { id } => w.read.push(*id),
            ChannelEvent::Writable { id } => w.write.push(*id),
            ChannelEvent::Request { id, .. } | ChannelEvent::RequestReply { id, .. } => {
                w.req.push(*id)
            }
            ChannelEvent::Closed { id } => {
                w.read.push(*id);
                w.write.push(*id);
                w.req.push(*id);
            }
            _ => w.conn = true,
        }
    }

    fn channel_event(&mut self, ev: ChannelEvent) {
        match ev {
            ChannelEvent::OpenRequest { id, kind } => {
                self.incoming.push_back(Inc::Channel(id, kind))
            }
            ChannelEvent::GlobalRequest {
                request,
                want_reply,
            } => self.incoming.push_back(Inc::Global(request, want_reply)),
            ChannelEvent::GlobalReply { ok, bound_port } => {
                self.global_replies
                    .insert(self.global_received, (ok, bound_port));
                self.global_received += 1;
            }
            ChannelEvent::Opened { id } => {
                if let Some(c) = self.chans.get_mut(&id) {
                    c.open = Some(Ok(()));
                }
            }
            ChannelEvent::OpenFailed {
                id,
                reason,
                description,
            } => {
                if let Some(c) = self.chans.get_mut(&id) {
                    c.open = Some(Err(format!("open refused ({reason}): {description}")));
                }
            }
            ChannelEvent::Data { id, data } => {
                if let Some(c) = self.chans.get_mut(&id) {
                    c.data.extend(data);
                }
            }
            ChannelEvent::ExtendedData { id, code, data } => {
                if let Some(c) = self.chans.get_mut(&id) {
                    if code == 1 {
                        c.ext.extend(data);
                        return;
                    }
                }
                // Nobody reads other streams: give the window back.
                if let Ok(ch) = self.conn.channels() {
                    let _ = ch.consumed(id, data.len());
                }
            }
            ChannelEvent::Eof { id } => {
                if let Some(c) = self.chans.get_mut(&id) {
                    c.eof = true;
                }
            }
            ChannelEvent::Closed { id } => {
                let remove = match self.chans.get_mut(&id) {
                    Some(c) => {
                        c.closed = true;
                        c.eof = true;
                        c.released && c.data.is_empty()
                    }
                    None => false,
                };
                if remove {
                    self.chans.remove(&id);
                }
            }
            ChannelEvent::Request {
                id,
                request,
                want_reply,
            } => {
                let Some(c) = self.chans.get_mut(&id) else {
                    return;
                };
                match request {
                    ChannelRequest::ExitStatus(code) => c.exit = Some(ExitStatus::Code(code)),
                    ChannelRequest::ExitSignal {
                        signal,
                        core_dumped,
                        message,
                        ..
                    } => {
                        c.exit = Some(ExitStatus::Signal {
                            name: signal,
                            core_dumped,
                            message,
                        })
                    }
                    other => c.requests.push_back((other, want_reply)),
                }
            }
            ChannelEvent::RequestReply { id, ok } => {
                if let Some(c) = self.chans.get_mut(&id) {
                    c.replies.push_back(ok);
                }
            }
            _ => {}
        }
    }
}

/// A runtime's handle on one connection, as the shared parts see it: the
/// state, locked, and the step after every change (send what the change
/// produced, wake whoever waits on it). The queries and plain commands
/// are the same in every runtime, so they are written here, once.
pub trait Handle: Clone {
    /// How the runtime wakes a channel's waiters.
    type Wake: ChanWake;

    /// The runtime's handle on one channel.
    type Channel: From<ChannelHandle<Self>>;

    /// The state, locked.
    fn lock_state(&self) -> MutexGuard<'_, State<Self::Wake>>;

    /// Sends what the connection has to send, takes in its events, and
    /// wakes the waiters they concern.
    fn flush_state(&self, st: &mut State<Self::Wake>);

    /// Runs `f` on the state, then flushes.
    fn with_state<T>(&self, f: impl FnOnce(&mut State<Self::Wake>) -> T) -> T {
        let mut st = self.lock_state();
        let r = f(&mut st);
        self.flush_state(&mut st);
        r
    }

    /// Whether the connection is over.
    fn is_closed(&self) -> bool {
        self.lock_state().finished()
    }

    /// The user that logged in (server) or our user (client), once known.
    fn user(&self) -> Option<String> {
        self.lock_state().user()
    }

    /// Names of the algorithms of the last key exchange: kex, host key,
    /// cipher client-to-server, cipher server-to-client.
    fn algorithms(&self) -> Option<[&'static str; 4]> {
        self.lock_state().algorithms()
    }

    /// The banner the server sent, if any.
    fn banner(&self) -> Option<String> {
        self.lock_state().banner()
    }

    /// How many key exchanges have finished.
    fn kex_count(&self) -> u64 {
        self.lock_state().kex_count()
    }

    /// Asks for a key exchange now.
    fn rekey(&self) -> io::Result<()> {
        self.with_state(|st| st.conn.rekey().map_err(io_err))
    }

    /// Ends the connection.
    fn disconnect(&self, description: &str) {
        self.with_state(|st| st.disconnect(description));
    }

    /// Answers the global request of the last [`Incoming::Global`] that
    /// wanted a reply (`bound_port` for a tcpip-forward of port 0).
    fn reply_global(&self, ok: bool, bound_port: Option<u32>) -> io::Result<()> {
        self.with_state(|st| st.with_channels(|c| c.reply_global(ok, bound_port)))
    }

    /// The application's view of what the peer asked for.
    fn incoming(&self, inc: Inc) -> Incoming<PendingChannel<Self>> {
        inc.into_incoming(|id, kind| PendingChannel {
            id,
            kind,
            conn: self.clone(),
        })
    }
}

/// A channel the peer asked to open, to accept or refuse.
#[derive(Debug)]
pub struct PendingChannel<H: Handle> {
    id: ChannelId,
    /// What kind of channel.
    pub kind: ChannelKind,
    conn: H,
}

impl<H: Handle> PendingChannel<H> {
    /// Accepts it.
    pub fn accept(self) -> io::Result<H::Channel> {
        self.conn.with_state(|st| st.accept_open(self.id))?;
        Ok(ChannelHandle::new(self.id, self.conn).into())
    }

    /// Refuses it with an RFC 4254 reason code.
    pub fn reject(self, reason: u32, description: &str) -> io::Result<()> {
        self.conn
            .with_state(|st| st.with_channels(|c| c.reject_open(self.id, reason, description)))
    }
}

/// One channel of a connection, as every runtime's `Channel` holds it:
/// its id, the connection, and the guard that releases the channel when
/// the last clone goes. The runtimes' `Channel` types deref to it.
#[derive(Clone)]
pub struct ChannelHandle<H: Handle> {
    /// Our id of the channel.
    pub id: ChannelId,
    /// Its connection.
    pub conn: H,
    _guard: Arc<ChannelGuard<H>>,
}

impl<H: Handle> std::fmt::Debug for ChannelHandle<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("id", &self.id).finish()
    }
}

impl<H: Handle> ChannelHandle<H> {
    /// A handle on channel `id` of `conn`.
    pub fn new(id: ChannelId, conn: H) -> Self {
        Self {
            id,
            _guard: Arc::new(ChannelGuard {
                id,
                conn: conn.clone(),
            }),
            conn,
        }
    }

    /// Our id of the channel.
    pub fn id(&self) -> ChannelId {
        self.id
    }
}

/// Releases a channel when the last handle on it goes: every runtime's
/// channel handles share one.
#[derive(Debug)]
pub struct ChannelGuard<H: Handle> {
    /// The channel.
    pub id: ChannelId,
    /// Its connection.
    pub conn: H,
}

impl<H: Handle> Drop for ChannelGuard<H> {
    fn drop(&mut self) {
        self.conn.with_state(|st| st.release(self.id));
    }
}
