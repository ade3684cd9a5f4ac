//! One SSH connection, client or server: the transport, user
//! authentication and channels tied together behind one sans-IO API in
//! the style of quinn-proto.
//!
//! Feed it what the peer sent ([`Connection::handle_input`]) and the
//! passing of time ([`Connection::handle_timeout`]); write out what
//! [`Connection::poll_transmit`] yields; act on [`Connection::poll_event`];
//! wake up by [`Connection::poll_timeout`]. Time is a [`Duration`] since
//! any origin the caller likes, as long as it never goes back.
//!
//! Channels exist only in the [`Phase::Open`] state, which is built from
//! proof of authentication: on the server an [`Authenticated`] token, which
//! only the auth layer can make from a verified signature (or an allowed
//! `none`). Any connection-layer message before that ends the connection
//! (CVE-2025-32433, CVE-2018-7750).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use rand_core::CryptoRngCore;
use ssh_key::PrivateKey;

use crate::auth::{
    AuthError, AuthPolicy, Authenticated, ClientAuth, ClientAuthEvent, ServerAuth,
    ServerAuthConfig, ServerAuthEvent,
};
use crate::channel::{
    ChannelConfig, ChannelError, ChannelEvent, ChannelId, Channels, GlobalRequest,
};
use crate::kex::negotiate::{KexAlg, Negotiated, Preferences};
use crate::msg::{self, DisconnectReason};
use crate::packet::Packet;
use crate::sig::{self, SigAlg, Signer};
use crate::transport::{HostKeyCheck, RekeyLimits, Transport, TransportConfig, TransportError};
use crate::version::{Role, DEFAULT_SOFTWARE_VERSION};
use crate::wire::{Put, Reader};

/// The most data one `send_data` call takes: a rekey can start after any
/// call, and what the call took then waits in the transport's queue.
pub const SEND_CHUNK: usize = 256 * 1024;

/// Keepalives: after `interval` without input, send `keepalive@openssh.com`;
/// after `max_missed` of them unanswered, give up (OpenSSH's
/// `ServerAliveInterval` / `ServerAliveCountMax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Quiet time before a probe.
    pub interval: Duration,
    /// Probes without an answer before the connection is dropped.
    pub max_missed: u32,
}

/// The settings both roles have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// Algorithm preferences.
    pub prefs: Preferences,
    /// Automatic rekeying.
    pub rekey: RekeyLimits,
    /// Channel windows and limits.
    pub channels: ChannelConfig,
    /// Keepalive probes, if any.
    pub keepalive: Option<Keepalive>,
    /// Our identification's software version.
    pub software_version: String,
}

impl Common {
    /// Our defaults with `prefs`: 1 GiB / 1 h rekeying, 8 MiB windows, no
    /// keepalive.
    pub fn new(prefs: Preferences) -> Self {
        Self {
            prefs,
            rekey: RekeyLimits::default(),
            channels: ChannelConfig::default(),
            keepalive: None,
            software_version: DEFAULT_SOFTWARE_VERSION.into(),
        }
    }
}

/// A client's settings.
pub struct ClientConfig {
    /// The user to log in as.
    pub user: String,
    /// The keys to try, in order.
    pub keys: Vec<Box<dyn Signer + Send>>,
    /// The host key check.
    pub host_key_check: Box<dyn HostKeyCheck + Send>,
    /// Algorithms, rekeying, channels, keepalives.
    pub common: Common,
}

impl ClientConfig {
    /// Our defaults: every algorithm we speak, 1 GiB / 1 h rekeying,
    /// 8 MiB windows, no keepalive. Passphrase-protected keys are left
    /// out: decrypt them first.
    pub fn new(
        user: &str,
        keys: Vec<PrivateKey>,
        host_key_check: Box<dyn HostKeyCheck + Send>,
    ) -> Self {
        Self::with_signers(user, crate::auth::client::boxed_keys(keys), host_key_check)
    }

    /// As [`ClientConfig::new`], with keys that may sign elsewhere (an
    /// ssh-agent), tried in order.
    pub fn with_signers(
        user: &str,
        keys: Vec<Box<dyn Signer + Send>>,
        host_key_check: Box<dyn HostKeyCheck + Send>,
    ) -> Self {
        Self {
            user: user.into(),
            keys,
            host_key_check,
            common: Common::new(Preferences::all(SigAlg::VERIFY_ALL.to_vec())),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("user", &self.user)
            .field("keys", &self.keys.len())
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

/// A server's settings.
pub struct ServerConfig {
    /// Host keys; the algorithms offered follow from them.
    pub host_keys: Vec<PrivateKey>,
    /// Banner and attempt limit.
    pub auth: ServerAuthConfig,
    /// Who may log in.
    pub policy: Box<dyn AuthPolicy + Send>,
    /// Algorithms, rekeying, channels, keepalives.
    pub common: Common,
}

impl ServerConfig {
    /// Our defaults, with the host key algorithms of `host_keys`.
    pub fn new(host_keys: Vec<PrivateKey>, policy: Box<dyn AuthPolicy + Send>) -> Self {
        let mut host_algs = Vec::new();
        for k in &host_keys {
            for a in sig::algs_for_key(k.public_key().key_data()) {
                if !host_algs.contains(a) {
                    host_algs.push(*a);
                }
            }
        }
        Self {
            host_keys,
            auth: ServerAuthConfig::default(),
            policy,
            common: Common::new(Preferences::all(host_algs)),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("host_keys", &self.host_keys.len())
            .field("auth", &self.auth)
            .field("common", &self.common)
            .finish_non_exhaustive()
    }
}

impl Preferences {
    /// Restricts key exchange to the post-quantum hybrids.
    pub fn pq_only(mut self) -> Self {
        self.kex.retain(|k| KexAlg::PQ_ONLY.contains(k));
        self
    }
}

/// What the connection reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A key exchange finished.
    KexDone {
        /// The algorithms agreed.
        negotiated: Negotiated,
        /// Whether it was the first one.
        first: bool,
    },
    /// Client: the server's banner (strip control characters before
    /// showing it).
    Banner(String),
    /// Client: a login attempt was refused; more may follow.
    AuthFailure {
        /// The methods that can continue.
        remaining: Vec<String>,
    },
    /// Authentication succeeded; channels may be used. On the server,
    /// the user and the key that signed.
    Authenticated {
        /// The user name.
        user: String,
        /// The key that signed, `None` for `none`.
        key: Option<ssh_key::public::KeyData>,
    },
    /// Server: a login attempt was refused (for logs).
    AuthRefused {
        /// The user name asked for.
        user: String,
        /// The method.
        method: String,
    },
    /// A channel event.
    Channel(ChannelEvent),
    /// Data may be sent again (a key exchange ended).
    Writable,
}

/// Why the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The transport failed, or the peer disconnected.
    Transport(TransportError),
    /// Authentication failed.
    Auth(AuthError),
    /// Every key was refused (client).
    AuthExhausted,
    /// A channel-layer protocol error.
    Channel(ChannelError),
    /// A connection-layer message before authentication.
    NotAuthenticated {
        /// Its number.
        msg: u8,
    },
    /// Channels were used before authentication.
    NotOpen,
    /// Keepalives went unanswered.
    Timeout,
}

impl Error {
    /// The DISCONNECT reason for this error.
    pub fn reason(&self) -> DisconnectReason {
        match self {
            Self::Transport(e) => e.reason(),
            Self::Auth(e) => e.reason(),
            Self::AuthExhausted => DisconnectReason::NoMoreAuthMethodsAvailable,
            Self::Channel(e) => e.reason(),
            Self::NotAuthenticated { .. } | Self::NotOpen => DisconnectReason::ProtocolError,
            Self::Timeout => DisconnectReason::ConnectionLost,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "{e}"),
            Self::Auth(e) => write!(f, "authentication: {e}"),
            Self::AuthExhausted => f.write_str("permission denied: no key was accepted"),
            Self::Channel(e) => write!(f, "channel: {e}"),
            Self::NotAuthenticated { msg } => {
                write!(f, "connection message {msg} before authentication")
            }
            Self::NotOpen => f.write_str("not authenticated yet"),
            Self::Timeout => f.write_str("keepalives unanswered: connection lost"),
        }
    }
}

impl core::error::Error for Error {}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}

impl From<AuthError> for Error {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

impl From<ChannelError> for Error {
    fn from(e: ChannelError) -> Self {
        Self::Channel(e)
    }
}

/// Who made a global request that awaits its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    App,
    Keepalive,
}

/// The authenticated state: it can only be built from proof of login.
struct Open {
    channels: Channels,
    /// Our global requests awaiting replies, oldest first.
    askers: VecDeque<Asker>,
}

impl Open {
    /// The server's way in: the auth layer's token.
    fn server(config: ChannelConfig, _proof: &Authenticated) -> Self {
        Self {
            channels: Channels::new(Role::Server, config),
            askers: VecDeque::new(),
        }
    }

    /// The client's way in: its auth layer saw USERAUTH_SUCCESS.
    fn client(config: ChannelConfig, auth: &ClientAuth) -> Option<Self> {
        auth.is_authenticated().then(|| Self {
            channels: Channels::new(Role::Client, config),
            askers: VecDeque::new(),
        })
    }
}

/// Where the connection stands.
enum Phase {
    /// Client, before USERAUTH_SUCCESS.
    ClientAuth(ClientAuth),
    /// Server, before a login succeeded.
    ServerAuth(ServerAuth),
    /// Logged in: channels.
    Open(Open),
    /// Before the first key exchange (no session id yet for auth).
    Kex,
    /// Ended.
    Closed,
}

/// What differs between the roles when a connection is made.
struct Side {
    role: Role,
    host_keys: Vec<PrivateKey>,
    host_key_check: Box<dyn HostKeyCheck + Send>,
    policy: Option<Box<dyn AuthPolicy + Send>>,
}

/// Role-specific settings kept until the auth layer starts.
enum Pending {
    Client {
        user: String,
        keys: Vec<Box<dyn Signer + Send>>,
    },
    Server {
        auth: ServerAuthConfig,
    },
    Started,
}

/// One SSH connection.
pub struct Connection {
    role: Role,
    transport: Transport,
    phase: Phase,
    pending: Pending,
    policy: Option<Box<dyn AuthPolicy + Send>>,
    channel_config: ChannelConfig,
    rng: Box<dyn CryptoRngCore + Send>,
    events: VecDeque<Event>,
    keepalive: Option<Keepalive>,
    last_input: Duration,
    missed: u32,
    now: Duration,
    error: Option<Error>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("transport", &self.transport)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A client connection; its identification and KEXINIT are ready to
    /// be sent.
    pub fn client(
        config: ClientConfig,
        now: Duration,
        rng: Box<dyn CryptoRngCore + Send>,
    ) -> Result<Self, Error> {
        let pending = Pending::Client {
            user: config.user,
            keys: config.keys,
        };
        let side = Side {
            role: Role::Client,
            host_keys: Vec::new(),
            host_key_check: config.host_key_check,
            policy: None,
        };
        Self::build(side, config.common, pending, now, rng)
    }

    /// A server connection.
    pub fn server(
        config: ServerConfig,
        now: Duration,
        rng: Box<dyn CryptoRngCore + Send>,
    ) -> Result<Self, Error> {
        let side = Side {
            role: Role::Server,
            host_keys: config.host_keys,
            host_key_check: Box::new(crate::transport::AcceptAnyHostKey),
            policy: Some(config.policy),
        };
        let pending = Pending::Server { auth: config.auth };
        Self::build(side, config.common, pending, now, rng)
    }

    fn build(
        side: Side,
        common: Common,
        pending: Pending,
        now: Duration,
        mut rng: Box<dyn CryptoRngCore + Send>,
    ) -> Result<Self, Error> {
        let transport = Transport::new(
            TransportConfig {
                role: side.role,
                prefs: common.prefs,
                host_keys: side.host_keys,
                host_key_check: side.host_key_check,
                rekey: common.rekey,
                software_version: common.software_version,
            },
            now,
            &mut *rng,
        )?;
        Ok(Self {
            role: side.role,
            transport,
            phase: Phase::Kex,
            pending,
            policy: side.policy,
            channel_config: common.channels,
            rng,
            events: VecDeque::new(),
            keepalive: common.keepalive,
            last_input: now,
            missed: 0,
            now,
            error: None,
        })
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether login succeeded and channels can be used.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// Whether the connection ended; [`Connection::error`] says why.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed) || self.transport.is_closed()
    }

    /// Why the connection ended, if it did on an error.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Whether the peer's identification line has come (cpud's deadline
    /// for it, and whom it evicts first at its cap).
    pub fn peer_identified(&self) -> bool {
        self.transport.peer_id().is_some()
    }

    /// The session identifier, after the first key exchange.
    pub fn session_id(&self) -> Option<&[u8]> {
        self.transport.session_id()
    }

    /// The server's host key blob (client side), once verified.
    pub fn peer_host_key(&self) -> Option<&[u8]> {
        self.transport.peer_host_key()
    }

    /// Whether a key exchange holds data back.
    pub fn in_kex(&self) -> bool {
        self.transport.in_kex()
    }

    /// Takes bytes from the peer.
    pub fn handle_input(&mut self, mut data: &[u8], now: Duration) -> Result<(), Error> {
        self.now = now;
        if !data.is_empty() {
            self.last_input = now;
            self.missed = 0;
        }
        while !data.is_empty() {
            let r = self.transport.feed(data, now, &mut *self.rng);
            let (used, packet) = match r {
                Ok(x) => x,
                Err(e) => return Err(self.fail(e.into())),
            };
            data = &data[used..];
            if let Err(e) = self.after_kex() {
                return Err(self.fail(e));
            }
            if let Some(packet) = packet {
                if let Err(e) = self.dispatch(packet) {
                    return Err(self.fail(e));
                }
            }
            if self.is_closed() {
                break;
            }
        }
        self.pump()
    }

    /// Lets time pass: rekeying by time, keepalives.
    pub fn handle_timeout(&mut self, now: Duration) -> Result<(), Error> {
        self.now = now;
        if self.is_closed() {
            return Ok(());
        }
        if let Err(e) = self.transport.handle_timeout(now, &mut *self.rng) {
            return Err(self.fail(e.into()));
        }
        if let (Some(ka), Phase::Open(open)) = (self.keepalive, &mut self.phase) {
            let due = self
                .last_input
                .saturating_add(ka.interval.saturating_mul(self.missed.saturating_add(1)));
            if now >= due {
                if self.missed >= ka.max_missed {
                    return Err(self.fail(Error::Timeout));
                }
                self.missed += 1;
                open.askers.push_back(Asker::Keepalive);
                open.channels
                    .global_request(&GlobalRequest::KeepAlive, true);
            }
        }
        self.pump()
    }

    /// When [`Connection::handle_timeout`] wants to be called.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.is_closed() {
            return None;
        }
        let ka = match (self.keepalive, &self.phase) {
            (Some(ka), Phase::Open(_)) => Some(
                self.last_input
                    .saturating_add(ka.interval.saturating_mul(self.missed.saturating_add(1))),
            ),
            _ => None,
        };
        match (self.transport.poll_timeout(), ka) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Bytes to write to the peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        // A pump error closes the connection; its DISCONNECT is in the
        // output and the error is kept for `error()`.
        let _ = self.pump();
        self.transport.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The channels, once authenticated. Send data with
    /// [`Connection::send_data`], which holds it back during a key
    /// exchange, and global requests with [`Connection::global_request`].
    pub fn channels(&mut self) -> Result<&mut Channels, Error> {
        match &mut self.phase {
            Phase::Open(open) => Ok(&mut open.channels),
            _ => Err(Error::NotOpen),
        }
    }

    /// Queues channel data; returns the bytes taken, 0 while the peer's
    /// window is shut or a key exchange runs ([`Event::Writable`] or a
    /// channel's `Writable` follows).
    pub fn send_data(&mut self, id: ChannelId, data: &[u8]) -> Result<usize, Error> {
        if self.transport.in_kex() {
            return Ok(0);
        }
        let data = &data[..data.len().min(SEND_CHUNK)];
        let n = self.channels()?.send_data(id, data)?;
        self.pump()?;
        Ok(n)
    }

    /// As [`Connection::send_data`], for extended data (stderr is 1).
    pub fn send_extended_data(
        &mut self,
        id: ChannelId,
        code: u32,
        data: &[u8],
    ) -> Result<usize, Error> {
        if self.transport.in_kex() {
            return Ok(0);
        }
        let data = &data[..data.len().min(SEND_CHUNK)];
        let n = self.channels()?.send_extended_data(id, code, data)?;
        self.pump()?;
        Ok(n)
    }

    /// Sends a global request (tcpip-forward, ...); its reply comes as a
    /// `GlobalReply` channel event when `want_reply`.
    pub fn global_request(&mut self, req: &GlobalRequest, want_reply: bool) -> Result<(), Error> {
        let Phase::Open(open) = &mut self.phase else {
            return Err(Error::NotOpen);
        };
        if want_reply {
            open.askers.push_back(Asker::App);
        }
        open.channels.global_request(req, want_reply);
        self.pump()
    }

    /// Starts a key exchange now.
    pub fn rekey(&mut self) -> Result<(), Error> {
        self.transport.rekey(&mut *self.rng)?;
        Ok(())
    }

    /// Ends the connection with DISCONNECT.
    pub fn disconnect(&mut self, reason: DisconnectReason, description: &str) {
        let _ = self.pump();
        self.transport
            .disconnect(reason, description, &mut *self.rng);
        self.phase = Phase::Closed;
    }

    /// Records `e`, sends DISCONNECT when the peer can still read it, and
    /// closes.
    fn fail(&mut self, e: Error) -> Error {
        if !matches!(
            e,
            Error::Transport(TransportError::PeerDisconnected { .. } | TransportError::Closed)
        ) {
            let text = alloc::format!("{e}");
            self.transport.disconnect(e.reason(), &text, &mut *self.rng);
        }
        self.phase = Phase::Closed;
        self.error = Some(e.clone());
        e
    }

    /// Acts on finished key exchanges.
    fn after_kex(&mut self) -> Result<(), Error> {
        while let Some(done) = self.transport.poll_kex_done() {
            self.events.push_back(Event::KexDone {
                negotiated: done.negotiated,
                first: done.first,
            });
            if !done.first {
                self.events.push_back(Event::Writable);
                continue;
            }
            let session_id = self.transport.session_id().unwrap_or_default().to_vec();
            match core::mem::replace(&mut self.pending, Pending::Started) {
                Pending::Client { user, keys } => {
                    let mut auth = ClientAuth::with_signers(&user, keys, session_id);
                    auth.start();
                    self.phase = Phase::ClientAuth(auth);
                }
                Pending::Server { auth } => {
                    if done.peer_wants_ext_info {
                        self.send_ext_info()?;
                    }
                    self.phase = Phase::ServerAuth(ServerAuth::new(auth, session_id));
                }
                Pending::Started => {}
            }
        }
        Ok(())
    }

    /// RFC 8308: tells the client which signature algorithms we accept
    /// for user keys, so that it signs with RSA-SHA2 and not SHA-1.
    fn send_ext_info(&mut self) -> Result<(), Error> {
        let names: Vec<&str> = SigAlg::VERIFY_ALL.iter().map(|a| a.name()).collect();
        let mut p = Vec::new();
        p.put_u8(msg::EXT_INFO);
        p.put_u32(1);
        p.put_string(b"server-sig-algs");
        let mut list = Vec::new();
        list.put_name_list(&names);
        // put_name_list wrote a string: its bytes are the value.
        p.put_raw(&list);
        self.transport.send(p, &mut *self.rng)?;
        Ok(())
    }

    /// Routes one payload of the layers above the transport.
    fn dispatch(&mut self, packet: Packet) -> Result<(), Error> {
        let payload = &packet.payload;
        let n = payload.first().copied().unwrap_or(0);
        match n {
            // We send nothing the peer may lack, so an UNIMPLEMENTED
            // answer changes nothing (RFC 4253 §11.4).
            msg::UNIMPLEMENTED => Ok(()),
            msg::SERVICE_REQUEST | msg::SERVICE_ACCEPT | 50..=79 => self.dispatch_auth(payload),
            msg::EXT_INFO => {
                if let Phase::ClientAuth(auth) = &mut self.phase {
                    let mut r = Reader::new(&payload[1..]);
                    let count = r.u32().map_err(|_| Error::NotOpen)?;
                    // Bounded by the payload: each extension takes bytes.
                    for _ in 0..count.min(64) {
                        let (Ok(name), Ok(value)) = (r.string(), r.string()) else {
                            break;
                        };
                        if name == b"server-sig-algs" {
                            let mut v = Vec::new();
                            v.put_string(value);
                            if let Ok(list) = Reader::new(&v).name_list() {
                                auth.set_server_sig_algs(&list);
                            }
                        }
                    }
                }
                Ok(())
            }
            80..=82 | 90..=100 => match &mut self.phase {
                Phase::Open(open) => {
                    open.channels.handle_message(payload)?;
                    while let Some(ev) = open.channels.poll_event() {
                        if let ChannelEvent::GlobalReply { .. } = ev {
                            // Replies come in request order: the oldest
                            // asker owns this one; keepalive replies
                            // only prove the peer alive.
                            if open.askers.pop_front() == Some(Asker::Keepalive) {
                                continue;
                            }
                        }
                        self.events.push_back(Event::Channel(ev));
                    }
                    Ok(())
                }
                _ => Err(Error::NotAuthenticated { msg: n }),
            },
            83..=89 | 101..=127 if !self.is_authenticated() => {
                Err(Error::NotAuthenticated { msg: n })
            }
            _ => {
                // RFC 4253 §11.4: an unknown message gets UNIMPLEMENTED
                // with its sequence number.
                let mut p = Vec::new();
                p.put_u8(msg::UNIMPLEMENTED);
                p.put_u32(packet.seq);
                self.transport.send(p, &mut *self.rng)?;
                Ok(())
            }
        }
    }

    fn dispatch_auth(&mut self, payload: &[u8]) -> Result<(), Error> {
        match &mut self.phase {
            Phase::ClientAuth(auth) => {
                auth.handle_message(payload)?;
                let mut exhausted = false;
                while let Some(ev) = auth.poll_event() {
                    match ev {
                        ClientAuthEvent::Banner(b) => self.events.push_back(Event::Banner(b)),
                        ClientAuthEvent::Failure { remaining, .. } => {
                            self.events.push_back(Event::AuthFailure { remaining })
                        }
                        ClientAuthEvent::Exhausted => exhausted = true,
                        #[allow(unreachable_patterns)]
                        _ => {}
                    }
                }
                let open = Open::client(self.channel_config.clone(), auth);
                let user: String = auth.user().into();
                self.pump_auth();
                if exhausted {
                    return Err(Error::AuthExhausted);
                }
                if let Some(open) = open {
                    self.transport.set_authenticated();
                    self.phase = Phase::Open(open);
                    self.events
                        .push_back(Event::Authenticated { user, key: None });
                }
                Ok(())
            }
            Phase::ServerAuth(auth) => {
                let Some(policy) = self.policy.as_deref_mut() else {
                    return Err(Error::NotOpen);
                };
                auth.handle_message(payload, policy)?;
                let mut proof = None;
                while let Some(ev) = auth.poll_event() {
                    match ev {
                        ServerAuthEvent::Authenticated(token) => proof = Some(token),
                        ServerAuthEvent::Failed { user, method } => {
                            self.events.push_back(Event::AuthRefused { user, method })
                        }
                        #[allow(unreachable_patterns)]
                        _ => {}
                    }
                }
                self.pump_auth();
                if let Some(token) = proof {
                    self.transport.set_authenticated();
                    self.phase = Phase::Open(Open::server(self.channel_config.clone(), &token));
                    self.events.push_back(Event::Authenticated {
                        user: token.user().into(),
                        key: token.key().cloned(),
                    });
                }
                Ok(())
            }
            // RFC 4252 §5.1: after success, further requests are ignored.
            Phase::Open(_) if payload[0] == msg::USERAUTH_REQUEST => Ok(()),
            _ => Err(Error::Auth(AuthError::Unexpected { msg: payload[0] })),
        }
    }

    /// Moves the auth layer's payloads to the transport. Errors surface
    /// on the next pump.
    fn pump_auth(&mut self) {
        let mut out = Vec::new();
        match &mut self.phase {
            Phase::ClientAuth(a) => {
                while let Some(p) = a.poll_payload() {
                    out.push(p);
                }
            }
            Phase::ServerAuth(a) => {
                while let Some(p) = a.poll_payload() {
                    out.push(p);
                }
            }
            _ => {}
        }
        for p in out {
            if let Err(e) = self.transport.send(p, &mut *self.rng) {
                self.error.get_or_insert(Error::Transport(e));
            }
        }
    }

    /// Moves the layers' payloads to the transport.
    fn pump(&mut self) -> Result<(), Error> {
        if let Some(e) = self.error.clone() {
            if !self.is_closed() {
                return Err(self.fail(e));
            }
            return Ok(());
        }
        self.pump_auth();
        let mut batch = Vec::new();
        if let Phase::Open(open) = &mut self.phase {
            while let Some(p) = open.channels.poll_payload() {
                batch.push(p);
            }
        }
        for p in batch {
            if let Err(e) = self.transport.send(p, &mut *self.rng) {
                return Err(self.fail(e.into()));
            }
        }
        Ok(())
    }
}
