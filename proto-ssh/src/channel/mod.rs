//! The connection protocol (RFC 4254): channels, flow control, session and
//! global requests.
//!
//! [`Channels`] is fed every decrypted payload numbered 80..=100 once the
//! user is authenticated, and yields the payloads to send and the events
//! for the application. It does no I/O and keeps no clock.
//!
//! What it decides on its own, without the application:
//! - CHANNEL_OPEN of an unknown type, of a type the other role opens
//!   (`session` and `direct-tcpip` are opened by clients,
//!   `forwarded-tcpip` by servers), or beyond `max_channels`, is refused
//!   with OPEN_FAILURE and no event.
//! - Requests of unknown names and `keepalive@openssh.com`, channel or
//!   global, are answered with failure when they want a reply, as OpenSSH
//!   does (its peers take any answer as a sign of life). They are still
//!   surfaced as [`ChannelEvent::Request`] / [`ChannelEvent::GlobalRequest`],
//!   with `want_reply: false` since the reply is already taken care of.
//! - Replies leave in the order of the requests (RFC 4254 §4, §5.4):
//!   [`Channels::reply_request`] and [`Channels::reply_global`] answer the
//!   oldest request still waiting, and an automatic answer waits behind
//!   the application's.
//! - CHANNEL_CLOSE is answered with our own CLOSE; the channel's id is
//!   freed, with [`ChannelEvent::Closed`], once both have been sent.
//!
//! Local ids count up and are not reused until the counter wraps, so that
//! a late call with the id of a freed channel does not reach a new one.
//!
//! The output and event queues grow until polled; the connection drains
//! both after every message, and bounds its own output queue.

mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod kind;
mod request;
mod window;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

pub use error::ChannelError;
pub use kind::ChannelKind;
pub use request::{ChannelRequest, GlobalRequest};
pub use window::MAX_DATA_CHUNK;

use crate::msg::{
    CHANNEL_CLOSE, CHANNEL_DATA, CHANNEL_EOF, CHANNEL_EXTENDED_DATA, CHANNEL_FAILURE, CHANNEL_OPEN,
    CHANNEL_OPEN_CONFIRMATION, CHANNEL_OPEN_FAILURE, CHANNEL_REQUEST, CHANNEL_SUCCESS,
    CHANNEL_WINDOW_ADJUST, GLOBAL_REQUEST, REQUEST_FAILURE, REQUEST_SUCCESS,
};
use crate::version::Role;
use crate::wire::{Put, Reader, WireError};
use window::{RecvWindow, SendWindow};

/// OPEN_FAILURE reason: administratively prohibited (RFC 4254 §5.1).
pub const OPEN_ADMINISTRATIVELY_PROHIBITED: u32 = 1;
/// OPEN_FAILURE reason: connect failed.
pub const OPEN_CONNECT_FAILED: u32 = 2;
/// OPEN_FAILURE reason: unknown channel type.
pub const OPEN_UNKNOWN_CHANNEL_TYPE: u32 = 3;
/// OPEN_FAILURE reason: resource shortage.
pub const OPEN_RESOURCE_SHORTAGE: u32 = 4;
/// The extended-data code of stderr (RFC 4254 §5.2).
pub const EXTENDED_DATA_STDERR: u32 = 1;

/// Requests from the peer waiting for a reply, per channel and for the
/// connection: a peer that never reads our replies cannot grow them
/// without bound.
const MAX_PENDING: usize = 1024;

/// Our side's limits, announced in every open and confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The receive window of each channel. Several MiB, so that a 1 MiB
    /// 9P message is not throttled by round trips.
    pub initial_window: u32,
    /// The most data the peer may put in one CHANNEL_DATA.
    pub max_packet: u32,
    /// The most channels open or opening at once, both directions.
    pub max_channels: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            initial_window: 8 * 1024 * 1024,
            max_packet: 32768,
            max_channels: 64,
        }
    }
}

/// A channel's local id: the number we gave it, which the peer uses as
/// the recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u32);

/// What happened on the connection, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelEvent {
    /// The peer wants to open a channel; answer with
    /// [`Channels::accept_open`] or [`Channels::reject_open`].
    OpenRequest {
        /// The id it will have.
        id: ChannelId,
        /// Its type.
        kind: ChannelKind,
    },
    /// A channel we opened was confirmed.
    Opened {
        /// The channel.
        id: ChannelId,
    },
    /// A channel we opened was refused; its id is free.
    OpenFailed {
        /// The channel.
        id: ChannelId,
        /// The reason code (`OPEN_*`).
        reason: u32,
        /// The peer's explanation.
        description: String,
    },
    /// Data arrived; report it with [`Channels::consumed`] once used.
    Data {
        /// The channel.
        id: ChannelId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Extended data (stderr is code 1) arrived; it shares the window with
    /// `Data`.
    ExtendedData {
        /// The channel.
        id: ChannelId,
        /// The data type code.
        code: u32,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The peer's window reopened after `send_data` was held back.
    Writable {
        /// The channel.
        id: ChannelId,
    },
    /// The peer will send no more data.
    Eof {
        /// The channel.
        id: ChannelId,
    },
    /// Both sides sent CLOSE; the id is free.
    Closed {
        /// The channel.
        id: ChannelId,
    },
    /// A channel request; if `want_reply`, answer with
    /// [`Channels::reply_request`].
    Request {
        /// The channel.
        id: ChannelId,
        /// The request.
        request: ChannelRequest,
        /// Whether the application owes a reply.
        want_reply: bool,
    },
    /// The reply to our oldest channel request that wanted one.
    RequestReply {
        /// The channel.
        id: ChannelId,
        /// Success or failure.
        ok: bool,
    },
    /// A global request; if `want_reply`, answer with
    /// [`Channels::reply_global`].
    GlobalRequest {
        /// The request.
        request: GlobalRequest,
        /// Whether the application owes a reply.
        want_reply: bool,
    },
    /// The reply to our oldest global request that wanted one.
    GlobalReply {
        /// Success or failure.
        ok: bool,
        /// The port the peer bound, from the success of a `tcpip-forward`.
        bound_port: Option<u32>,
    },
}

/// Where a channel is in its opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// We sent CHANNEL_OPEN; the peer's id is not known yet.
    Opening,
    /// The peer sent CHANNEL_OPEN; the application has not answered.
    Offered,
    /// Confirmed.
    Open,
}

#[derive(Debug)]
struct Channel {
    state: State,
    /// The peer's id for the channel, the recipient of what we send.
    remote: u32,
    send: SendWindow,
    recv: RecvWindow,
    eof_sent: bool,
    close_sent: bool,
    eof_received: bool,
    /// The application closed the channel before the peer confirmed it.
    close_when_open: bool,
    /// The peer's requests that want a reply, oldest first: `None` while
    /// the application has not answered.
    replies: VecDeque<Option<bool>>,
    /// Our requests that want a reply and have none yet.
    awaiting: u32,
}

impl Channel {
    fn new(state: State, remote: u32, send: SendWindow, config: &ChannelConfig) -> Self {
        Self {
            state,
            remote,
            send,
            recv: RecvWindow::new(config.initial_window, config.max_packet),
            eof_sent: false,
            close_sent: false,
            eof_received: false,
            close_when_open: false,
            replies: VecDeque::new(),
            awaiting: 0,
        }
    }

    /// The channel, if the application may still send data on it.
    fn sendable(&mut self) -> Result<&mut Self, ChannelError> {
        if self.state != State::Open {
            Err(ChannelError::NotOpen)
        } else if self.close_sent {
            Err(ChannelError::AfterClose)
        } else if self.eof_sent {
            Err(ChannelError::DataAfterEof)
        } else {
            Ok(self)
        }
    }
}

/// What the success of one of our global requests carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `tcpip-forward`: the bound port (sent for port 0, and by some
    /// servers always).
    Port,
    /// `cancel-tcpip-forward`: nothing.
    Nothing,
    /// Unknown requests and keepalives: data we cannot interpret.
    Anything,
}

/// A global request from the peer waiting for its reply.
#[derive(Debug)]
struct PendingGlobal {
    /// It is a `tcpip-forward`, whose success may carry a port.
    forward: bool,
    /// `None` while the application has not answered.
    answer: Option<(bool, Option<u32>)>,
}

/// The channels of one connection.
#[derive(Debug)]
pub struct Channels {
    role: Role,
    config: ChannelConfig,
    channels: BTreeMap<u32, Channel>,
    next_id: u32,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ChannelEvent>,
    /// The peer's global requests waiting for a reply, oldest first.
    global_replies: VecDeque<PendingGlobal>,
    /// Our global requests waiting for a reply, oldest first.
    our_globals: VecDeque<Expect>,
}

/// A message of number `n` addressed to channel `recipient`.
fn channel_msg(n: u8, recipient: u32, capacity: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(5 + capacity);
    m.put_u8(n);
    m.put_u32(recipient);
    m
}

/// Maps a field error to the message it was in.
fn malformed(msg: u8) -> impl Fn(WireError) -> ChannelError {
    move |error| ChannelError::Malformed { msg, error }
}

impl Channels {
    /// No channels yet, for our side of the connection.
    pub fn new(role: Role, config: ChannelConfig) -> Self {
        Self {
            role,
            config,
            channels: BTreeMap::new(),
            next_id: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            global_replies: VecDeque::new(),
            our_globals: VecDeque::new(),
        }
    }

    /// A payload with message number 80..=100 (GLOBAL_REQUEST,
    /// REQUEST_SUCCESS/FAILURE, CHANNEL_*). An error means the peer broke
    /// the protocol: the connection ends with DISCONNECT carrying
    /// [`ChannelError::reason`], except for
    /// [`ChannelError::UnknownMessage`], which is answered with
    /// UNIMPLEMENTED.
    pub fn handle_message(&mut self, payload: &[u8]) -> Result<(), ChannelError> {
        let mut r = Reader::new(payload);
        let msg = r.u8().map_err(malformed(0))?;
        match msg {
            GLOBAL_REQUEST => self.on_global_request(&mut r),
            REQUEST_SUCCESS => self.on_global_reply(&mut r, true),
            REQUEST_FAILURE => self.on_global_reply(&mut r, false),
            CHANNEL_OPEN => self.on_open(&mut r),
            CHANNEL_OPEN_CONFIRMATION => self.on_open_confirmation(&mut r),
            CHANNEL_OPEN_FAILURE => self.on_open_failure(&mut r),
            CHANNEL_WINDOW_ADJUST => self.on_window_adjust(&mut r),
            CHANNEL_DATA => self.on_data(&mut r, false),
            CHANNEL_EXTENDED_DATA => self.on_data(&mut r, true),
            CHANNEL_EOF => self.on_eof(&mut r),
            CHANNEL_CLOSE => self.on_close(&mut r),
            CHANNEL_REQUEST => self.on_channel_request(&mut r),
            CHANNEL_SUCCESS => self.on_channel_reply(&mut r, true),
            CHANNEL_FAILURE => self.on_channel_reply(&mut r, false),
            other => Err(ChannelError::UnknownMessage(other)),
        }
    }

    /// The next payload to send; payloads come out in the order they must
    /// be sent.
    pub fn poll_payload(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ChannelEvent> {
        self.events.pop_front()
    }

    /// Opens a `session` channel; [`ChannelEvent::Opened`] or
    /// [`ChannelEvent::OpenFailed`] follows. The role is not checked here:
    /// a peer refuses a type its role does not accept, as we do.
    pub fn open_session(&mut self) -> Result<ChannelId, ChannelError> {
        self.open(&ChannelKind::Session)
    }

    /// Opens a `direct-tcpip` channel to `host:port`, for a connection
    /// from `orig_host:orig_port`.
    pub fn open_direct_tcpip(
        &mut self,
        host: &str,
        port: u32,
        orig_host: &str,
        orig_port: u32,
    ) -> Result<ChannelId, ChannelError> {
        self.open(&ChannelKind::DirectTcpip {
            host: String::from(host),
            port,
            orig_host: String::from(orig_host),
            orig_port,
        })
    }

    /// Opens a `forwarded-tcpip` channel for a connection accepted on
    /// `connected_host:connected_port` from `orig_host:orig_port`.
    pub fn open_forwarded_tcpip(
        &mut self,
        connected_host: &str,
        connected_port: u32,
        orig_host: &str,
        orig_port: u32,
    ) -> Result<ChannelId, ChannelError> {
        self.open(&ChannelKind::ForwardedTcpip {
            connected_host: String::from(connected_host),
            connected_port,
            orig_host: String::from(orig_host),
            orig_port,
        })
    }

    /// Accepts a channel the peer offered with
    /// [`ChannelEvent::OpenRequest`]. No `Opened` event follows.
    pub fn accept_open(&mut self, id: ChannelId) -> Result<(), ChannelError> {
        let ch = self.offered(id)?;
        ch.state = State::Open;
        let mut m = channel_msg(CHANNEL_OPEN_CONFIRMATION, ch.remote, 12);
        m.put_u32(id.0);
        m.put_u32(self.config.initial_window);
        m.put_u32(self.config.max_packet);
        self.out.push_back(m);
        Ok(())
    }

    /// Refuses a channel the peer offered, with a reason code (`OPEN_*`);
    /// its id is free at once.
    pub fn reject_open(
        &mut self,
        id: ChannelId,
        reason: u32,
        description: &str,
    ) -> Result<(), ChannelError> {
        let remote = self.offered(id)?.remote;
        self.channels.remove(&id.0);
        self.open_failure(remote, reason, description);
        Ok(())
    }

    /// Queues as much of `data` as the peer's window allows, in messages
    /// no larger than its maximum packet, and returns the bytes taken. 0
    /// means the window is shut; [`ChannelEvent::Writable`] follows when
    /// it reopens.
    pub fn send_data(&mut self, id: ChannelId, data: &[u8]) -> Result<usize, ChannelError> {
        self.send(id, None, data)
    }

    /// As [`send_data`](Self::send_data), as extended data of type `code`
    /// (stderr is [`EXTENDED_DATA_STDERR`]).
    pub fn send_extended_data(
        &mut self,
        id: ChannelId,
        code: u32,
        data: &[u8],
    ) -> Result<usize, ChannelError> {
        self.send(id, Some(code), data)
    }

    /// The bytes [`send_data`](Self::send_data) would take now.
    pub fn send_window(&self, id: ChannelId) -> usize {
        match self.channels.get(&id.0) {
            Some(ch) if ch.state == State::Open && !ch.eof_sent && !ch.close_sent => {
                usize::try_from(ch.send.available()).unwrap_or(usize::MAX)
            }
            _ => 0,
        }
    }

    /// The bytes the peer may still send us before we re-open the window.
    pub fn recv_window(&self, id: ChannelId) -> usize {
        self.channels.get(&id.0).map_or(0, |ch| {
            usize::try_from(ch.recv.window()).unwrap_or(usize::MAX)
        })
    }

    /// Tells the peer we will send no more data. Requests may still be
    /// sent and answered. A second call does nothing.
    pub fn send_eof(&mut self, id: ChannelId) -> Result<(), ChannelError> {
        let ch = self.get_mut(id)?;
        if ch.state != State::Open {
            return Err(ChannelError::NotOpen);
        }
        if ch.close_sent {
            return Err(ChannelError::AfterClose);
        }
        if !ch.eof_sent {
            ch.eof_sent = true;
            let m = channel_msg(CHANNEL_EOF, ch.remote, 0);
            self.out.push_back(m);
        }
        Ok(())
    }

    /// Sends CLOSE; [`ChannelEvent::Closed`] follows once the peer's CLOSE
    /// arrives. Data still arriving is dropped and requests waiting for
    /// our reply are forgotten. On a channel we are still opening, the
    /// CLOSE goes out as soon as the peer confirms it (or the open fails).
    /// A channel the peer offered is refused with
    /// [`reject_open`](Self::reject_open) instead. A second call does
    /// nothing.
    pub fn close(&mut self, id: ChannelId) -> Result<(), ChannelError> {
        let ch = self.get_mut(id)?;
        match ch.state {
            State::Opening => ch.close_when_open = true,
            State::Offered => return Err(ChannelError::NotOpen),
            State::Open => {
                if !ch.close_sent {
                    ch.close_sent = true;
                    ch.replies.clear();
                    let m = channel_msg(CHANNEL_CLOSE, ch.remote, 0);
                    self.out.push_back(m);
                }
            }
        }
        Ok(())
    }

    /// The application consumed `n` bytes of received data (`Data` and
    /// `ExtendedData` alike). Our window is re-opened with WINDOW_ADJUST
    /// once at least half of `initial_window` was consumed. After
    /// [`ChannelEvent::Closed`] the id is unknown and this returns
    /// [`ChannelError::UnknownChannel`], which the caller may ignore.
    pub fn consumed(&mut self, id: ChannelId, n: usize) -> Result<(), ChannelError> {
        let ch = self.get_mut(id)?;
        // No adjust after our CLOSE (nothing may follow it) nor after the
        // peer's EOF (it will not send any more).
        let may_adjust = ch.state == State::Open && !ch.close_sent && !ch.eof_received;
        if let Some(add) = ch.recv.consume(n, may_adjust)? {
            let mut m = channel_msg(CHANNEL_WINDOW_ADJUST, ch.remote, 4);
            m.put_u32(add);
            self.out.push_back(m);
        }
        Ok(())
    }

    /// Sends a channel request; with `want_reply`, a
    /// [`ChannelEvent::RequestReply`] follows. An `Unknown` request under a
    /// known name is refused, since it would not decode as itself.
    pub fn send_request(
        &mut self,
        id: ChannelId,
        req: &ChannelRequest,
        want_reply: bool,
    ) -> Result<(), ChannelError> {
        if let ChannelRequest::Unknown { name } = req {
            if ChannelRequest::is_known_name(name) {
                return Err(ChannelError::InvalidRequest);
            }
        }
        let ch = self.get_mut(id)?;
        if ch.state != State::Open {
            return Err(ChannelError::NotOpen);
        }
        if ch.close_sent {
            return Err(ChannelError::AfterClose);
        }
        if want_reply {
            ch.awaiting = ch.awaiting.saturating_add(1);
        }
        let mut m = channel_msg(CHANNEL_REQUEST, ch.remote, 32);
        req.encode(want_reply, &mut m);
        self.out.push_back(m);
        Ok(())
    }

    /// Answers the oldest request on the channel still waiting for the
    /// application's reply. The reply leaves once every older request is
    /// answered.
    pub fn reply_request(&mut self, id: ChannelId, ok: bool) -> Result<(), ChannelError> {
        let ch = self.get_mut(id)?;
        let slot = ch
            .replies
            .iter_mut()
            .find(|r| r.is_none())
            .ok_or(ChannelError::NoPendingRequest)?;
        *slot = Some(ok);
        self.flush_replies(id.0);
        Ok(())
    }

    /// Sends a global request; with `want_reply`, a
    /// [`ChannelEvent::GlobalReply`] follows. An `Unknown` request under a
    /// known name goes out as it is, and the peer will likely refuse it.
    pub fn global_request(&mut self, req: &GlobalRequest, want_reply: bool) {
        let mut m = Vec::with_capacity(64);
        m.put_u8(GLOBAL_REQUEST);
        req.encode(want_reply, &mut m);
        self.out.push_back(m);
        if want_reply {
            self.our_globals.push_back(match req {
                GlobalRequest::TcpipForward { .. } => Expect::Port,
                GlobalRequest::CancelTcpipForward { .. } => Expect::Nothing,
                GlobalRequest::KeepAlive | GlobalRequest::Unknown { .. } => Expect::Anything,
            });
        }
    }

    /// Replies to the oldest peer global request still waiting for the
    /// application. `bound_port` is sent with the success of a
    /// `tcpip-forward` (the port picked for port 0) and ignored otherwise.
    pub fn reply_global(&mut self, ok: bool, bound_port: Option<u32>) -> Result<(), ChannelError> {
        let pending = self
            .global_replies
            .iter_mut()
            .find(|p| p.answer.is_none())
            .ok_or(ChannelError::NoPendingRequest)?;
        let port = if ok && pending.forward {
            bound_port
        } else {
            None
        };
        pending.answer = Some((ok, port));
        self.flush_global_replies();
        Ok(())
    }

    /// Whether the channel is confirmed and we have not closed it.
    pub fn is_open(&self, id: ChannelId) -> bool {
        self.channels
            .get(&id.0)
            .is_some_and(|ch| ch.state == State::Open && !ch.close_sent)
    }

    /// Channels that exist: opening, offered, open or closing.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    /// Whether there are no channels.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    fn get_mut(&mut self, id: ChannelId) -> Result<&mut Channel, ChannelError> {
        self.channels
            .get_mut(&id.0)
            .ok_or(ChannelError::UnknownChannel(id.0))
    }

    fn offered(&mut self, id: ChannelId) -> Result<&mut Channel, ChannelError> {
        let ch = self.get_mut(id)?;
        if ch.state == State::Offered {
            Ok(ch)
        } else {
            Err(ChannelError::NotOffered)
        }
    }

    /// The confirmed channel a peer message is addressed to.
    fn open_channel(&mut self, recipient: u32) -> Result<&mut Channel, ChannelError> {
        let ch = self
            .channels
            .get_mut(&recipient)
            .ok_or(ChannelError::UnknownChannel(recipient))?;
        if ch.state == State::Open {
            Ok(ch)
        } else {
            Err(ChannelError::NotOpen)
        }
    }

    /// A free local id, if there is room for one more channel.
    fn alloc_id(&mut self) -> Result<u32, ChannelError> {
        if self.channels.len() >= self.config.max_channels {
            return Err(ChannelError::TooManyChannels);
        }
        // Ends: fewer than 2^32 channels exist.
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if !self.channels.contains_key(&id) {
                return Ok(id);
            }
        }
    }

    fn open(&mut self, kind: &ChannelKind) -> Result<ChannelId, ChannelError> {
        let id = self.alloc_id()?;
        let mut m = Vec::with_capacity(64);
        m.put_u8(CHANNEL_OPEN);
        m.put_string(kind.name().as_bytes());
        m.put_u32(id);
        m.put_u32(self.config.initial_window);
        m.put_u32(self.config.max_packet);
        kind.encode_data(&mut m);
        self.out.push_back(m);
        let ch = Channel::new(State::Opening, 0, SendWindow::new(0, 0), &self.config);
        self.channels.insert(id, ch);
        Ok(ChannelId(id))
    }

    fn open_failure(&mut self, remote: u32, reason: u32, description: &str) {
        let mut m = channel_msg(CHANNEL_OPEN_FAILURE, remote, 12 + description.len());
        m.put_u32(reason);
        m.put_string(description.as_bytes());
        m.put_string(b"");
        self.out.push_back(m);
    }

    fn send(
        &mut self,
        id: ChannelId,
        code: Option<u32>,
        data: &[u8],
    ) -> Result<usize, ChannelError> {
        let ch = self
            .channels
            .get_mut(&id.0)
            .ok_or(ChannelError::UnknownChannel(id.0))?
            .sendable()?;
        let mut taken = 0;
        while taken < data.len() {
            let n = ch.send.chunk(data.len() - taken);
            let Some(chunk) = data.get(taken..taken + n).filter(|c| !c.is_empty()) else {
                break;
            };
            let mut m = match code {
                None => channel_msg(CHANNEL_DATA, ch.remote, 4 + n),
                Some(code) => {
                    let mut m = channel_msg(CHANNEL_EXTENDED_DATA, ch.remote, 8 + n);
                    m.put_u32(code);
                    m
                }
            };
            m.put_string(chunk);
            self.out.push_back(m);
            ch.send.take(n);
            taken += n;
        }
        Ok(taken)
    }

    /// Sends the channel's replies that are decided and have no undecided
    /// one before them.
    fn flush_replies(&mut self, id: u32) {
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        while let Some(&Some(ok)) = ch.replies.front() {
            ch.replies.pop_front();
            let n = if ok { CHANNEL_SUCCESS } else { CHANNEL_FAILURE };
            self.out.push_back(channel_msg(n, ch.remote, 0));
        }
    }

    /// As [`flush_replies`](Self::flush_replies), for global requests.
    fn flush_global_replies(&mut self) {
        while let Some(PendingGlobal {
            answer: Some((ok, port)),
            ..
        }) = self.global_replies.front()
        {
            let mut m = Vec::with_capacity(5);
            if *ok {
                m.put_u8(REQUEST_SUCCESS);
                if let Some(p) = port {
                    m.put_u32(*p);
                }
            } else {
                m.put_u8(REQUEST_FAILURE);
            }
            self.global_replies.pop_front();
            self.out.push_back(m);
        }
    }

    fn on_global_request(&mut self, r: &mut Reader<'_>) -> Result<(), ChannelError> {
        let (request, want_reply) = GlobalRequest::decode(r).map_err(malformed(GLOBAL_REQUEST))?;
        let automatic = matches!(
            request,
            GlobalRequest::KeepAlive | GlobalRequest::Unknown { .. }
        );
        if want_reply {
            if self.global_replies.len() >= MAX_PENDING {
                return Err(ChannelError::TooManyPending);
            }
            self.global_replies.push_back(PendingGlobal {
                forward: matches!(request, GlobalRequest::TcpipForward { .. }),
                answer: automatic.then_some((false, None)),
            });
            self.flush_global_replies();
        }
        self.events.push_back(ChannelEvent::GlobalRequest {
            request,
            want_reply: want_reply && !automatic,
        });
        Ok(())
    }

    fn on_global_reply(&mut self, r: &mut Reader<'_>, ok: bool) -> Result<(), ChannelError> {
        let msg = if ok { REQUEST_SUCCESS } else { REQUEST_FAILURE };
        let expect = *self
            .our_globals
            .front()
            .ok_or(ChannelError::NoPendingRequest)?;
        let mut bound_port = None;
        match (ok, expect) {
            (true, Expect::Anything) => {}
            (true, Expect::Port) if !r.is_empty() => {
                bound_port = Some(r.u32().map_err(malformed(msg))?);
                r.finish().map_err(malformed(msg))?;
            }
            _ => r.finish().map_err(malformed(msg))?,
        }
        self.our_globals.pop_front();
        self.events
            .push_back(ChannelEvent::GlobalReply { ok, bound_port });
        Ok(())
    }

    fn on_open(&mut self, r: &mut Reader<'_>) -> Result<(), ChannelError> {
        let m = malformed(CHANNEL_OPEN);
        let name = r.string().map_err(&m)?;
        let sender = r.u32().map_err(&m)?;
        let window = r.u32().map_err(&m)?;
        let max_packet = r.u32().map_err(&m)?;
        let Some(kind) = ChannelKind::decode_data(name, r).map_err(&m)? else {
            self.open_failure(sender, OPEN_UNKNOWN_CHANNEL_TYPE, "unknown channel type");
            return Ok(());
        };
        let allowed = match kind {
            ChannelKind::Session | ChannelKind::DirectTcpip { .. } => self.role == Role::Server,
            ChannelKind::ForwardedTcpip { .. } => self.role == Role::Client,
        };
        if !allowed {
            self.open_failure(
                sender,
                OPEN_ADMINISTRATIVELY_PROHIBITED,
                "channel type not accepted by this side",
            );
            return Ok(());
        }
        let Ok(id) = self.alloc_id() else {
            self.open_failure(sender, OPEN_RESOURCE_SHORTAGE, "too many channels");
            return Ok(());
        };
        let send = SendWindow::new(window, max_packet);
        let ch = Channel::new(State::Offered, sender, send, &self.config);
        self.channels.insert(id, ch);
        self.events.push_back(ChannelEvent::OpenRequest {
            id: ChannelId(id),
            kind,
        });
        Ok(())
    }

    /// The channel we are opening that an open reply is addressed to.
    fn opening(&mut self, recipient: u32) -> Result<&mut Channel, ChannelError> {
        let ch = self
            .channels
            .get_mut(&recipient)
            .ok_or(ChannelError::UnknownChannel(recipient))?;
        if ch.state == State::Opening {
            Ok(ch)
        } else {
            Err(ChannelError::UnexpectedOpenReply(recipient))
        }
    }

    fn on_open_confirmation(&mut self, r: &mut Reader<'_>) -> Result<(), ChannelError> {
        let m = malformed(CHANNEL_OPEN_CONFIRMATION);
        let recipient = r.u32().map_err(&m)?;
        let sender = r.u32().map_err(&m)?;
        let window = r.u32().map_err(&m)?;
        let max_packet = r.u32().map_err(&m)?;
        // None of our channel types has confirmation data.
        r.finish().map_err(&m)?;
        let ch = self.opening(recipient)?;
        ch.state = State::Open;
        ch.remote = sender;
        ch.send = SendWindow::new(window, max_packet);
        if ch.close_when_open {
            ch.close_sent = true;
            let m = channel_msg(CHANNEL_CLOSE, sender, 0);
            self.out.push_back(m);
        } else {
            self.events.push_back(ChannelEvent::Opened {
                id: ChannelId(recipient),
            });
        }
        Ok(())
    }

    fn on_open_failure(&mut self, r: &mut Reader<'_>) -> Result<(), ChannelError> {
        let m = malformed(CHANNEL_OPEN_FAILURE);
        let recipient = r.u32().map_err(&m)?;
        let reason = r.u32().map_err(&m)?;
        // Human-readable: bad UTF-8 is not worth a disconnect.
        let description = String::from_utf8_lossy(r.string().map_err(&m)?).into_owned();
        let _lang = r.string().map_err(&m)?;
        r.finish().map_err(&m)?;
        self.opening(recipient)?;
        self.channels.remove(&recipient);
        self.events.push_back(ChannelEvent::OpenFailed {
            id: ChannelId(recipient),
            reason,
            description,
        });
        Ok(())
    }

    fn on_window_adjust(&mut self, r: &mut Reader<'_>) -> Result<(), ChannelError> {
        let m = malformed(CHANNEL_WINDOW_ADJUST);
        let recipient = r.u32().map_err(&m)?;
        let add = r.u32().map_err(&m)?;
        r.finish().map_err(&m)?;
        let ch = self.open_channel(recipient)?;
        // Checked even after our EOF or CLOSE: the window is a uint32
        // whatever the channel's state.
        let reopened = ch.send.adjust(add)?;
        if reopened && !ch.eof_sent && !ch.close_sent {
            self.events.push_back(ChannelEvent::Writable {
                id: ChannelId(recipient),
            });
        }
        Ok(())
    }

    fn on_data(&mut self, r: &mut Reader<'_>, extended: bool) -> Result<(), ChannelError> {
        let m = malformed(if extended {
            CHANNEL_EXTENDED_DATA
        } else {
            CHANNEL_DATA
        });
        let recipient = r.u32().map_err(&m)?;
        let code = if extended {
            Some(r.u32().map_err(&m)?)
        } else {
            None
        };
        let data = r.string().map_err(&m)?;
        r.finish().map_err(&m)?;
        let ch = self.open_channel(recipient)?;
        if ch.eof_received {
            return Err(ChannelError::DataAfterEof);
        }
        // After our CLOSE the peer may still send what crossed it; that is
        // checked against the window but nobody reads it.
        let deliver = !ch.close_sent;
        ch.recv.receive(data.len(), deliver)?;
        // An empty message moves no data: no event, so that a peer cannot
        // queue events for free.
        if deliver && !data.is_empty() {
            let id = ChannelId(recipient);
            let data = data.to_vec();
            self.events.push_back(match code {
                None => ChannelEvent::Data { id, data },
                Some(code) => ChannelEvent::ExtendedData { id, code, data },
            });
        }
        Ok(())
    }

    fn on_eof(&mut self, r: &mut Reader<'_>) -> Result<(), ChannelError> {
        let m = malformed(CHANNEL_EOF);
        let recipient = r.u32().map_err(&m)?;
        r.finish().map_err(&m)?;
        let ch = self.open_channel(recipient)?;
        if ch.eof_received {
            return Err(ChannelError::DuplicateEof);
        }
        ch.eof_received = true;
        if !ch.close_sent {
            self.events.push_back(ChannelEvent::Eof {
                id: ChannelId(recipient),
            });
        }
        Ok(())
    }

    fn on_close(&mut self, r: &mut Reader<'_>) -> Result<(), ChannelError> {
        let m = malformed(CHANNEL_CLOSE);
        let recipient = r.u32().map_err(&m)?;
        r.finish().map_err(&m)?;
        let ch = self.open_channel(recipient)?;
        if !ch.close_sent {
            let m = channel_msg(CHANNEL_CLOSE, ch.remote, 0);
            self.out.push_back(m);
        }
        // Both CLOSEs are out: nothing more may come for this id.
        self.channels.remove(&recipient);
        self.events.push_back(ChannelEvent::Closed {
            id: ChannelId(recipient),
        });
        Ok(())
    }

    fn on_channel_request(&mut self, r: &mut Reader<'_>) -> Result<(), ChannelError> {
        let m = malformed(CHANNEL_REQUEST);
        let recipient = r.u32().map_err(&m)?;
        let (request, want_reply) = ChannelRequest::decode(r).map_err(&m)?;
        let ch = self.open_channel(recipient)?;
        if ch.close_sent {
            // Crossed our CLOSE: no reply may follow it.
            return Ok(());
        }
        let automatic = matches!(
            request,
            ChannelRequest::KeepAlive | ChannelRequest::Unknown { .. }
        );
        if want_reply {
            if ch.replies.len() >= MAX_PENDING {
                return Err(ChannelError::TooManyPending);
            }
            ch.replies
                .push_back(if automatic { Some(false) } else { None });
            self.flush_replies(recipient);
        }
        self.events.push_back(ChannelEvent::Request {
            id: ChannelId(recipient),
            request,
            want_reply: want_reply && !automatic,
        });
        Ok(())
    }

    fn on_channel_reply(&mut self, r: &mut Reader<'_>, ok: bool) -> Result<(), ChannelError> {
        let m = malformed(if ok { CHANNEL_SUCCESS } else { CHANNEL_FAILURE });
        let recipient = r.u32().map_err(&m)?;
        r.finish().map_err(&m)?;
        let ch = self.open_channel(recipient)?;
        ch.awaiting = ch
            .awaiting
            .checked_sub(1)
            .ok_or(ChannelError::NoPendingRequest)?;
        self.events.push_back(ChannelEvent::RequestReply {
            id: ChannelId(recipient),
            ok,
        });
        Ok(())
    }
}
