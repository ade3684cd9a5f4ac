//! The state shared by a connection's threads and handles: the
//! connection itself and what its events left for the application.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{mpsc, Arc, Condvar};

use proto_ssh::channel::{ChannelEvent, ChannelId, ChannelKind, ChannelRequest, GlobalRequest};
use proto_ssh::connection::{Connection, Event};

use super::channel::ExitStatus;

/// Turns a protocol error into an I/O error for blocking callers.
pub(crate) fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Something the peer asked for, waiting for the application.
pub(crate) enum Inc {
    Channel(ChannelId, ChannelKind),
    Global(GlobalRequest, bool),
}

/// What a channel's waiters wait for, each on its own condition so that
/// data for a reader does not wake a writer or a request handler.
#[derive(Default)]
pub(crate) struct ChanCv {
    pub(crate) read: Condvar,
    pub(crate) write: Condvar,
    pub(crate) req: Condvar,
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

/// What one channel has received.
#[derive(Default)]
pub(crate) struct ChanState {
    pub(crate) cv: Arc<ChanCv>,
    pub(crate) data: VecDeque<u8>,
    pub(crate) ext: VecDeque<u8>,
    pub(crate) eof: bool,
    pub(crate) closed: bool,
    /// Whether we sent CLOSE (or the handles are gone).
    pub(crate) released: bool,
    pub(crate) replies: VecDeque<bool>,
    pub(crate) requests: VecDeque<(ChannelRequest, bool)>,
    pub(crate) open: Option<Result<(), String>>,
    pub(crate) exit: Option<ExitStatus>,
}

pub(crate) struct State {
    pub(crate) conn: Connection,
    tx: Option<mpsc::Sender<Vec<u8>>>,
    chans: HashMap<ChannelId, ChanState>,
    pub(crate) incoming: VecDeque<Inc>,
    pub(crate) global_replies: HashMap<u64, (bool, Option<u32>)>,
    pub(crate) global_sent: u64,
    global_received: u64,
    pub(crate) user: Option<String>,
    pub(crate) algorithms: Option<[&'static str; 4]>,
    pub(crate) banner: Option<String>,
    pub(crate) kex_count: u64,
    error: Option<String>,
    closed: bool,
    pub(crate) writer_done: bool,
    /// The deadline the timer thread sleeps towards, if any.
    pub(crate) timer_at: Option<std::time::Duration>,
    wake: Wake,
}

impl State {
    pub(crate) fn new(conn: Connection, tx: mpsc::Sender<Vec<u8>>) -> Self {
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
            writer_done: false,
            timer_at: None,
            wake: Wake::default(),
        }
    }

    /// Whether the connection is over.
    pub(crate) fn finished(&self) -> bool {
        self.closed
    }

    /// The error to give callers once the connection is over.
    pub(crate) fn closed_error(&self) -> Option<io::Error> {
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
    pub(crate) fn failed(&mut self, e: &proto_ssh::connection::Error) {
        self.error.get_or_insert_with(|| e.to_string());
        self.closed = true;
    }

    /// The stream ended or broke.
    pub(crate) fn lost(&mut self, why: &str) {
        self.error.get_or_insert_with(|| why.to_string());
        self.closed = true;
    }

    pub(crate) fn add_channel(&mut self, id: ChannelId, opened: bool) {
        let c = ChanState {
            open: opened.then_some(Ok(())),
            ..ChanState::default()
        };
        self.chans.insert(id, c);
    }

    pub(crate) fn remove_channel(&mut self, id: ChannelId) {
        self.chans.remove(&id);
    }

    pub(crate) fn chan(&mut self, id: ChannelId) -> Option<&mut ChanState> {
        self.chans.get_mut(&id)
    }

    pub(crate) fn open_result(&mut self, id: ChannelId) -> Option<Result<(), String>> {
        self.chans.get(&id).and_then(|c| c.open.clone())
    }

    /// Wakes the waiters the events since the last call concern: `conn`
    /// for connection-level waits, each channel's own conditions, and
    /// the timer when its deadline moved earlier. Everyone, once closed.
    pub(crate) fn notify(&mut self, conn: &Condvar, timer: &Condvar) {
        let wake = std::mem::take(&mut self.wake);
        let all = self.closed;
        if wake.conn || all {
            conn.notify_all();
        }
        for (id, c) in &self.chans {
            if all || wake.every_writer || wake.write.contains(id) {
                c.cv.write.notify_all();
            }
            if all || wake.read.contains(id) {
                c.cv.read.notify_all();
            }
            if all || wake.req.contains(id) {
                c.cv.req.notify_all();
            }
        }
        let next = self.conn.poll_timeout();
        let earlier = match (next, self.timer_at) {
            (Some(n), Some(t)) => n < t,
            (Some(_), None) => true,
            _ => false,
        };
        if earlier || all {
            timer.notify_all();
        }
    }

    /// Sends what the connection has to send and takes in its events,
    /// until neither has more.
    pub(crate) fn pump(&mut self) {
        loop {
            let mut progress = false;
            while let Some(bytes) = self.conn.poll_transmit() {
                progress = true;
                if let Some(tx) = &self.tx {
                    if tx.send(bytes).is_err() {
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
