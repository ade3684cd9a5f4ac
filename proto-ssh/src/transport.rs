//! The transport layer (RFC 4253) as one state machine: identification
//! exchange, packets, key exchange and rekeying, with strict kex.
//!
//! It hands the layers above one payload at a time
//! ([`Transport::feed`]) and takes theirs ([`Transport::send`]). While a
//! key exchange runs, their payloads wait in a bounded queue; incoming
//! ones are refused unless the peer may send them at that point.
//!
//! Guards:
//! - strict kex (Terrapin, CVE-2023-48795): the peer's first packet must
//!   be KEXINIT, nothing but kex messages may arrive during the first
//!   exchange, and sequence numbers restart at each NEWKEYS;
//! - a peer that has sent KEXINIT may send nothing but kex and transport
//!   messages until its NEWKEYS;
//! - the queue of our payloads held during a key exchange is bounded
//!   (CVE-2025-26466 was an unbounded one);
//! - a rekey must present the host key of the first exchange;
//! - the peer's rekeys are counted ([`crate::kex::budget`]): one before
//!   login, then a rate limit.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use rand_core::CryptoRngCore;
use ssh_key::public::KeyData;
use ssh_key::PrivateKey;

use crate::cipher::PacketCipher;
use crate::kex::budget::{RekeyBudget, RekeyRefused};
use crate::kex::keys::{self, Direction, HashInput};
use crate::kex::method::{self, ClientEphemeral, MethodError, SharedSecret};
use crate::kex::negotiate::{self, KexInit, Negotiated, NoCommon, Preferences};
use crate::msg::{self, DisconnectReason};
use crate::packet::{Opener, Packet, PacketError, Sealer};
use crate::sig::{self, SigError};
use crate::version::{Identification, Role, VersionError, VersionParser, VersionStatus};
use crate::wire::{Put, Reader, WireError};

/// When a rekey starts by itself (OpenSSH's `RekeyLimit` default is 1 GiB
/// for these ciphers; we add an hour, as most implementations do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyLimits {
    /// Bytes in either direction since the last exchange.
    pub bytes: u64,
    /// Time since the last exchange.
    pub time: Duration,
}

impl Default for RekeyLimits {
    fn default() -> Self {
        Self {
            bytes: 1 << 30,
            time: Duration::from_secs(3600),
        }
    }
}

/// The largest total of our payloads held while a key exchange runs.
/// Channel data is held back by the connection layer instead, so this
/// only fills with control messages; a peer that makes us answer more
/// than this during a kex is cut off.
pub const MAX_KEX_QUEUE: usize = 4 << 20;
/// The most payloads held while a key exchange runs, whatever their size:
/// a flood of small requests is cut off long before the byte bound.
pub const MAX_KEX_QUEUE_MSGS: usize = 4096;

/// The client's verdict on the server's host key.
pub trait HostKeyCheck {
    /// Whether `key` may be the server's host key. Called once per
    /// connection, at the first exchange, after the key proved itself by
    /// signing the exchange hash.
    fn check(&mut self, key: &KeyData) -> bool;

    /// Whether to go on with a server whose identification names
    /// `software_version` (e.g. `OpenSSH_9.2p1`). Called once, as soon as
    /// it arrives, before the key exchange: a client that serves only one
    /// kind of server can refuse the others before offering any key.
    fn check_software(&mut self, software_version: &[u8]) -> bool {
        let _ = software_version;
        true
    }
}

/// Accepts any host key. For tests and for callers that check the key
/// themselves from [`crate::Event::HostKey`]-style logs; never the default
/// of a user-facing client.
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAnyHostKey;

impl HostKeyCheck for AcceptAnyHostKey {
    fn check(&mut self, _key: &KeyData) -> bool {
        true
    }
}

/// The transport cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// The identification line was invalid.
    Version(VersionError),
    /// The packet stream broke (length, padding, bad tag).
    Packet(PacketError),
    /// A message did not parse.
    Malformed {
        /// Its number.
        msg: u8,
        /// What was wrong.
        error: WireError,
    },
    /// A message arrived where it may not.
    Unexpected {
        /// Its number.
        msg: u8,
        /// Why it may not.
        why: &'static str,
    },
    /// No algorithm in common.
    NoCommon(NoCommon),
    /// The exchange values were unusable.
    Method(MethodError),
    /// The host key or its signature failed.
    HostKey(SigError),
    /// The host key was refused by the client's check, or changed in a
    /// rekey.
    HostKeyRejected,
    /// No host key of ours can sign with the agreed algorithm.
    NoHostKey,
    /// Too much waited in the queue during a key exchange.
    QueueFull,
    /// The peer started more rekeys than [`crate::kex::budget`] allows.
    TooManyRekeys(RekeyRefused),
    /// The peer sent DISCONNECT.
    PeerDisconnected {
        /// Its reason code.
        reason: u32,
        /// Its description, invalid UTF-8 replaced.
        description: String,
    },
    /// The client's check refused the server's software version.
    SoftwareRefused,
    /// The connection was closed earlier.
    Closed,
}

impl TransportError {
    /// The DISCONNECT reason to send for this error.
    pub fn reason(&self) -> DisconnectReason {
        match self {
            Self::Version(_) => DisconnectReason::ProtocolVersionNotSupported,
            Self::Packet(PacketError::Cipher(_)) => DisconnectReason::MacError,
            Self::NoCommon(_) | Self::Method(_) | Self::NoHostKey => {
                DisconnectReason::KeyExchangeFailed
            }
            Self::HostKey(_) | Self::HostKeyRejected => DisconnectReason::HostKeyNotVerifiable,
            Self::SoftwareRefused => DisconnectReason::ByApplication,
            _ => DisconnectReason::ProtocolError,
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(e) => write!(f, "identification: {e}"),
            Self::Packet(e) => write!(f, "packet: {e}"),
            Self::Malformed { msg, error } => write!(f, "message {msg}: {error}"),
            Self::Unexpected { msg, why } => write!(f, "unexpected message {msg}: {why}"),
            Self::NoCommon(e) => write!(f, "{e}"),
            Self::Method(e) => write!(f, "key exchange: {e}"),
            Self::HostKey(e) => write!(f, "host key: {e}"),
            Self::HostKeyRejected => f.write_str("host key refused"),
            Self::NoHostKey => f.write_str("no host key for the agreed algorithm"),
            Self::QueueFull => f.write_str("too many messages queued during key exchange"),
            Self::TooManyRekeys(RekeyRefused::BeforeLogin) => {
                f.write_str("too many key exchanges before login")
            }
            Self::TooManyRekeys(RekeyRefused::TooFast) => {
                f.write_str("too many key exchanges per minute")
            }
            Self::PeerDisconnected {
                reason,
                description,
            } => write!(f, "peer disconnected (reason {reason}): {description}"),
            Self::SoftwareRefused => f.write_str("server software refused"),
            Self::Closed => f.write_str("connection closed"),
        }
    }
}

impl core::error::Error for TransportError {}

impl From<PacketError> for TransportError {
    fn from(e: PacketError) -> Self {
        Self::Packet(e)
    }
}

fn malformed(msg: u8) -> impl FnOnce(WireError) -> TransportError {
    move |error| TransportError::Malformed { msg, error }
}

/// The transport's settings.
pub struct TransportConfig {
    /// Client or server.
    pub role: Role,
    /// Our algorithm preferences.
    pub prefs: Preferences,
    /// The server's host keys (empty for a client).
    pub host_keys: Vec<PrivateKey>,
    /// The client's host key check (unused by a server).
    pub host_key_check: alloc::boxed::Box<dyn HostKeyCheck + Send>,
    /// Automatic rekeying.
    pub rekey: RekeyLimits,
    /// Our identification's software version, e.g. `cpu-rs_0.1`.
    pub software_version: String,
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("role", &self.role)
            .field("prefs", &self.prefs)
            .field("host_keys", &self.host_keys.len())
            .field("rekey", &self.rekey)
            .finish_non_exhaustive()
    }
}

/// What a finished key exchange agreed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KexDone {
    /// The algorithms.
    pub negotiated: Negotiated,
    /// Whether this was the first exchange of the connection.
    pub first: bool,
    /// Whether the peer asked for EXT_INFO (first exchange only).
    pub peer_wants_ext_info: bool,
    /// Whether strict kex is in force.
    pub strict: bool,
}

/// The key-exchange state.
enum Kex {
    /// No exchange running.
    Idle,
    /// Our KEXINIT is sent; the peer's has not come.
    SentInit { ours: Vec<u8> },
    /// Client: KEX_ECDH_INIT sent.
    AwaitReply {
        neg: Negotiated,
        i_c: Vec<u8>,
        i_s: Vec<u8>,
        // Boxed: the ML-KEM decapsulation key is large.
        eph: alloc::boxed::Box<ClientEphemeral>,
    },
    /// Server: waiting for KEX_ECDH_INIT.
    AwaitInit {
        neg: Negotiated,
        i_c: Vec<u8>,
        i_s: Vec<u8>,
    },
    /// Our NEWKEYS is sent; the peer's installs `incoming`.
    AwaitNewKeys {
        neg: Negotiated,
        incoming: PacketCipher,
    },
}

/// The transport state machine.
pub struct Transport {
    role: Role,
    prefs: Preferences,
    host_keys: Vec<PrivateKey>,
    host_key_check: alloc::boxed::Box<dyn HostKeyCheck + Send>,
    limits: RekeyLimits,
    local_id: Identification,
    peer_id: Option<Identification>,
    version: VersionParser,
    opener: Opener,
    sealer: Sealer,
    out: Vec<u8>,
    kex: Kex,
    /// The peer's KEXINIT has come in the running exchange: until its
    /// NEWKEYS it may send only kex and transport messages.
    peer_in_kex: bool,
    /// Drop the peer's next kex-method packet (a wrong guess).
    skip_guess: bool,
    session_id: Option<Vec<u8>>,
    peer_host_key: Option<Vec<u8>>,
    strict: bool,
    peer_wants_ext_info: bool,
    first_done: bool,
    /// The layers above reported a login ([`Transport::set_authenticated`]).
    authenticated: bool,
    rekeys: RekeyBudget,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    bytes_since_kex: u64,
    last_kex: Duration,
    now: Duration,
    done: VecDeque<KexDone>,
    /// Reading failed: the stream is out of step.
    broken: bool,
    closed: bool,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("role", &self.role)
            .field("strict", &self.strict)
            .field("first_done", &self.first_done)
            .field("queued", &self.queued)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport that has queued its identification line and KEXINIT.
    pub fn new(
        config: TransportConfig,
        now: Duration,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Self, TransportError> {
        let local_id =
            Identification::local(&config.software_version).map_err(TransportError::Version)?;
        let mut t = Self {
            role: config.role,
            prefs: config.prefs,
            host_keys: config.host_keys,
            host_key_check: config.host_key_check,
            limits: config.rekey,
            out: local_id.to_wire(),
            local_id,
            peer_id: None,
            version: VersionParser::new(config.role),
            opener: Opener::new(PacketCipher::None),
            sealer: Sealer::new(PacketCipher::None),
            kex: Kex::Idle,
            peer_in_kex: false,
            skip_guess: false,
            session_id: None,
            peer_host_key: None,
            strict: false,
            peer_wants_ext_info: false,
            first_done: false,
            authenticated: false,
            rekeys: RekeyBudget::new(),
            queue: VecDeque::new(),
            queued: 0,
            bytes_since_kex: 0,
            last_kex: now,
            now,
            done: VecDeque::new(),
            broken: false,
            closed: false,
        };
        t.start_kex(rng)?;
        Ok(t)
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The session identifier (the first exchange hash), once known.
    pub fn session_id(&self) -> Option<&[u8]> {
        self.session_id.as_deref()
    }

    /// The peer's identification, once received.
    pub fn peer_id(&self) -> Option<&Identification> {
        self.peer_id.as_ref()
    }

    /// The server's host key blob (client side), once verified.
    pub fn peer_host_key(&self) -> Option<&[u8]> {
        self.peer_host_key.as_deref()
    }

    /// Whether a key exchange is running (our payloads wait).
    pub fn in_kex(&self) -> bool {
        !matches!(self.kex, Kex::Idle | Kex::AwaitNewKeys { .. }) || !self.first_done
    }

    /// Tells the transport that the user logged in, which lifts the
    /// limit of one peer-started rekey before login to a rate limit.
    pub fn set_authenticated(&mut self) {
        self.authenticated = true;
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.closed || self.broken
    }

    /// A finished key exchange, oldest first.
    pub fn poll_kex_done(&mut self) -> Option<KexDone> {
        self.done.pop_front()
    }

    /// Bytes to write to the peer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.out.is_empty() {
            None
        } else {
            Some(core::mem::take(&mut self.out))
        }
    }

    /// How many bytes wait to be written.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// When the time-based rekey is due.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.closed || !matches!(self.kex, Kex::Idle) {
            return None;
        }
        Some(self.last_kex.saturating_add(self.limits.time))
    }

    /// Starts a rekey if the time limit passed.
    pub fn handle_timeout(
        &mut self,
        now: Duration,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), TransportError> {
        self.now = now;
        if !self.closed
            && matches!(self.kex, Kex::Idle)
            && now.saturating_sub(self.last_kex) >= self.limits.time
        {
            self.start_kex(rng)?;
        }
        Ok(())
    }

    /// Starts a key exchange now (a rekey), unless one is running.
    pub fn rekey(&mut self, rng: &mut dyn CryptoRngCore) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        if matches!(self.kex, Kex::Idle) {
            self.start_kex(rng)?;
        }
        Ok(())
    }

    /// Sends a payload of a layer above, or queues it during a key
    /// exchange.
    pub fn send(
        &mut self,
        payload: Vec<u8>,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        if self.in_kex() {
            self.queued += payload.len();
            if self.queued > MAX_KEX_QUEUE || self.queue.len() >= MAX_KEX_QUEUE_MSGS {
                return Err(TransportError::QueueFull);
            }
            self.queue.push_back(payload);
            return Ok(());
        }
        self.seal(&payload, rng)?;
        self.maybe_rekey(rng)
    }

    /// Sends DISCONNECT (past any queue) and closes. Idempotent.
    pub fn disconnect(
        &mut self,
        reason: DisconnectReason,
        description: &str,
        rng: &mut dyn CryptoRngCore,
    ) {
        if self.closed {
            return;
        }
        let mut p = Vec::new();
        p.put_u8(msg::DISCONNECT);
        p.put_u32(reason as u32);
        p.put_string(description.as_bytes());
        p.put_string(b"");
        // The peer may be unable to read it; we close either way.
        let _ = self.seal(&p, rng);
        self.closed = true;
        self.queue.clear();
        self.queued = 0;
    }

    /// Takes peer bytes up to the end of the first payload for the
    /// layers above, handling transport and kex messages on the way.
    /// Returns the bytes taken and that payload, if any; the caller feeds
    /// the rest again.
    pub fn feed(
        &mut self,
        input: &[u8],
        now: Duration,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(usize, Option<Packet>), TransportError> {
        self.now = now;
        if self.broken {
            return Err(TransportError::Closed);
        }
        let r = self.feed_inner(input, rng);
        if r.is_err() {
            // Nothing more is read; the caller still sends DISCONNECT.
            self.broken = true;
        }
        r
    }

    fn feed_inner(
        &mut self,
        input: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(usize, Option<Packet>), TransportError> {
        if self.closed {
            return Err(TransportError::Closed);
        }
        let mut at = 0;
        if self.peer_id.is_none() {
            match self.version.feed(input).map_err(TransportError::Version)? {
                VersionStatus::NeedMore => return Ok((input.len(), None)),
                VersionStatus::Complete {
                    identification,
                    consumed,
                } => {
                    if self.role == Role::Client
                        && !self
                            .host_key_check
                            .check_software(identification.software_version())
                    {
                        return Err(TransportError::SoftwareRefused);
                    }
                    self.peer_id = Some(identification);
                    at = consumed;
                }
            }
        }
        while at < input.len() {
            let fed = self.opener.feed(&input[at..])?;
            at += fed.consumed;
            let Some(packet) = fed.packet else { continue };
            self.bytes_since_kex = self
                .bytes_since_kex
                .saturating_add(packet.payload.len() as u64);
            if let Some(up) = self.handle_packet(packet, rng)? {
                self.maybe_rekey(rng)?;
                return Ok((at, Some(up)));
            }
        }
        self.maybe_rekey(rng)?;
        Ok((at, None))
    }

    /// Handles one incoming packet; returns it if it is for a layer above.
    fn handle_packet(
        &mut self,
        packet: Packet,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<Option<Packet>, TransportError> {
        let Some(&n) = packet.payload.first() else {
            return Err(TransportError::Malformed {
                msg: 0,
                error: WireError::Truncated,
            });
        };
        if self.skip_guess && (30..=49).contains(&n) {
            // RFC 4253 §7.1: the peer guessed wrong; its first kex-method
            // packet is dropped unread, before any check of its number,
            // which belongs to the method it guessed, not to ours.
            self.skip_guess = false;
            return Ok(None);
        }
        if !msg::sendable_by(self.role.peer(), n) {
            return Err(TransportError::Unexpected {
                msg: n,
                why: "not sent by a peer in this role",
            });
        }
        let initial = !self.first_done;
        // Strict kex (Terrapin): once the peer's KEXINIT said so, the
        // first exchange carries nothing but kex messages. That KEXINIT
        // itself must have been the first packet: see `handle_kexinit`.
        if initial && self.strict && !matches!(n, 20..=49 | msg::DISCONNECT) {
            return Err(TransportError::Unexpected {
                msg: n,
                why: "strict kex: only key exchange messages in the first exchange",
            });
        }
        match n {
            msg::DISCONNECT => {
                let mut r = Reader::new(&packet.payload[1..]);
                let reason = r.u32().map_err(malformed(n))?;
                let description = String::from_utf8_lossy(r.string().map_err(malformed(n))?);
                let description = description.into_owned();
                self.closed = true;
                Err(TransportError::PeerDisconnected {
                    reason,
                    description,
                })
            }
            msg::IGNORE | msg::DEBUG => {
                // RFC 4253 §11: ignored (the content needs no checking).
                Ok(None)
            }
            // The peer's answer to something we sent: the layers above
            // decide what it means.
            msg::UNIMPLEMENTED => Ok(Some(packet)),
            20..=49 => {
                self.handle_kex(n, packet, rng)?;
                Ok(None)
            }
            _ => {
                if initial {
                    return Err(TransportError::Unexpected {
                        msg: n,
                        why: "before the first key exchange finished",
                    });
                }
                if self.peer_in_kex {
                    return Err(TransportError::Unexpected {
                        msg: n,
                        why: "during key exchange",
                    });
                }
                Ok(Some(packet))
            }
        }
    }

    /// Sends our KEXINIT.
    fn start_kex(&mut self, rng: &mut dyn CryptoRngCore) -> Result<(), TransportError> {
        let mut cookie = [0u8; 16];
        rng.fill_bytes(&mut cookie);
        let ours = negotiate::encode_kexinit(self.role, &self.prefs, cookie, !self.first_done);
        self.seal(&ours, rng)?;
        self.kex = Kex::SentInit { ours };
        Ok(())
    }

    /// Starts a rekey when a limit is reached.
    fn maybe_rekey(&mut self, rng: &mut dyn CryptoRngCore) -> Result<(), TransportError> {
        let due = self.bytes_since_kex >= self.limits.bytes
            || self.now.saturating_sub(self.last_kex) >= self.limits.time
            // Sequence numbers must not wrap under one key (RFC 4344 §3.1).
            || self.sealer.seq() >= 1 << 31
            || self.opener.seq() >= 1 << 31;
        if due && self.first_done && matches!(self.kex, Kex::Idle) && !self.closed {
            self.start_kex(rng)?;
        }
        Ok(())
    }

    fn seal(&mut self, payload: &[u8], rng: &mut dyn CryptoRngCore) -> Result<(), TransportError> {
        self.sealer.seal(payload, &mut &mut *rng, &mut self.out)?;
        self.bytes_since_kex = self.bytes_since_kex.saturating_add(payload.len() as u64);
        Ok(())
    }

    fn handle_kex(
        &mut self,
        n: u8,
        packet: Packet,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), TransportError> {
        let unexpected = |why| TransportError::Unexpected { msg: n, why };
        if n == msg::KEXINIT {
            return self.handle_kexinit(packet, rng);
        }
        let payload = &packet.payload;
        match (core::mem::replace(&mut self.kex, Kex::Idle), n) {
            (Kex::AwaitInit { neg, i_c, i_s }, msg::KEX_ECDH_INIT) => {
                let mut r = Reader::new(&payload[1..]);
                let q_c = r.string().map_err(malformed(n))?;
                r.finish().map_err(malformed(n))?;
                self.server_reply(neg, &i_c, &i_s, q_c, rng)
            }
            (Kex::AwaitReply { neg, i_c, i_s, eph }, msg::KEX_ECDH_REPLY) => {
                let mut r = Reader::new(&payload[1..]);
                let k_s = r.string().map_err(malformed(n))?;
                let q_s = r.string().map_err(malformed(n))?;
                let signature = r.string().map_err(malformed(n))?;
                r.finish().map_err(malformed(n))?;
                let q_c = eph.public().to_vec();
                let k = eph.finish(q_s).map_err(TransportError::Method)?;
                let input = self.hash_input(&i_c, &i_s, k_s, &q_c, q_s);
                let h = keys::exchange_hash(&input, &k);
                let key = sig::verify(k_s, neg.host_key, signature, &h)
                    .map_err(TransportError::HostKey)?;
                match &self.peer_host_key {
                    // A rekey must not change the server's identity.
                    Some(first) if first.as_slice() != k_s => {
                        return Err(TransportError::HostKeyRejected)
                    }
                    Some(_) => {}
                    None => {
                        if !self.host_key_check.check(&key) {
                            return Err(TransportError::HostKeyRejected);
                        }
                        self.peer_host_key = Some(k_s.to_vec());
                    }
                }
                self.send_newkeys(neg, &k, &h, rng)
            }
            (Kex::AwaitNewKeys { neg, incoming }, msg::NEWKEYS) => {
                if payload.len() != 1 {
                    return Err(malformed(n)(WireError::TrailingBytes));
                }
                self.opener.set_cipher(incoming);
                if self.strict {
                    self.opener.reset_seq();
                }
                let first = !self.first_done;
                self.first_done = true;
                self.peer_in_kex = false;
                self.bytes_since_kex = 0;
                self.last_kex = self.now;
                self.done.push_back(KexDone {
                    negotiated: neg,
                    first,
                    peer_wants_ext_info: first && self.peer_wants_ext_info,
                    strict: self.strict,
                });
                self.flush_queue(rng)
            }
            (state, _) => {
                self.kex = state;
                Err(unexpected("out of key exchange order"))
            }
        }
    }

    fn handle_kexinit(
        &mut self,
        packet: Packet,
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), TransportError> {
        let n = msg::KEXINIT;
        if self.peer_in_kex {
            return Err(TransportError::Unexpected {
                msg: n,
                why: "second KEXINIT in one exchange",
            });
        }
        let peer = KexInit::parse(&packet.payload).map_err(malformed(n))?;
        let first = !self.first_done;
        if first {
            self.strict = peer.strict(self.role.peer());
            self.peer_wants_ext_info = peer.ext_info(self.role.peer());
            if self.strict && packet.seq != 0 {
                return Err(TransportError::Unexpected {
                    msg: n,
                    why: "strict kex: KEXINIT was not the first packet",
                });
            }
        }
        let ours = match core::mem::replace(&mut self.kex, Kex::Idle) {
            Kex::SentInit { ours } => ours,
            Kex::Idle => {
                // The peer starts a rekey: answer with ours, if it is
                // within budget. Beyond it we DISCONNECT rather than answer
                // UNIMPLEMENTED as sshd does before login: the peer would
                // then wait for a KEXINIT that never comes, its traffic
                // held, until the login grace time; the DISCONNECT says
                // why and frees the slot now.
                if let Err(e) =
                    self.rekeys
                        .allow(self.authenticated, self.now, self.bytes_since_kex)
                {
                    return Err(TransportError::TooManyRekeys(e));
                }
                self.start_kex(rng)?;
                match core::mem::replace(&mut self.kex, Kex::Idle) {
                    Kex::SentInit { ours } => ours,
                    _ => return Err(TransportError::Closed),
                }
            }
            _ => {
                return Err(TransportError::Unexpected {
                    msg: n,
                    why: "KEXINIT during key exchange",
                })
            }
        };
        self.peer_in_kex = true;
        let neg = negotiate::negotiate(self.role, &self.prefs, &peer)
            .map_err(TransportError::NoCommon)?;
        self.skip_guess = neg.ignore_guess;
        let theirs = packet.payload;
        let (i_c, i_s) = match self.role {
            Role::Client => (ours, theirs),
            Role::Server => (theirs, ours),
        };
        match self.role {
            Role::Client => {
                let eph = alloc::boxed::Box::new(ClientEphemeral::new(neg.kex, rng));
                let mut p = Vec::with_capacity(eph.public().len() + 8);
                p.put_u8(msg::KEX_ECDH_INIT);
                p.put_string(eph.public());
                self.seal(&p, rng)?;
                self.kex = Kex::AwaitReply { neg, i_c, i_s, eph };
            }
            Role::Server => self.kex = Kex::AwaitInit { neg, i_c, i_s },
        }
        Ok(())
    }

    fn hash_input<'a>(
        &'a self,
        i_c: &'a [u8],
        i_s: &'a [u8],
        k_s: &'a [u8],
        q_c: &'a [u8],
        q_s: &'a [u8],
    ) -> HashInput<'a> {
        let local = self.local_id.line();
        let peer = self.peer_id.as_ref().map_or(&[][..], |p| p.line());
        let (v_c, v_s) = match self.role {
            Role::Client => (local, peer),
            Role::Server => (peer, local),
        };
        HashInput {
            v_c,
            v_s,
            i_c,
            i_s,
            k_s,
            q_c,
            q_s,
        }
    }

    /// Server: computes K and H, signs H, sends KEX_ECDH_REPLY and NEWKEYS.
    fn server_reply(
        &mut self,
        neg: Negotiated,
        i_c: &[u8],
        i_s: &[u8],
        q_c: &[u8],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), TransportError> {
        let host_key = self
            .host_keys
            .iter()
            .find(|k| sig::algs_for_key(k.public_key().key_data()).contains(&neg.host_key))
            .ok_or(TransportError::NoHostKey)?;
        let k_s = sig::public_key_blob(host_key.public_key().key_data());
        let (q_s, k) =
            method::server_exchange(neg.kex, q_c, rng).map_err(TransportError::Method)?;
        let h = keys::exchange_hash(&self.hash_input(i_c, i_s, &k_s, q_c, &q_s), &k);
        let signature = sig::sign(host_key, neg.host_key, &h).map_err(TransportError::HostKey)?;
        let mut p = Vec::with_capacity(k_s.len() + q_s.len() + signature.len() + 16);
        p.put_u8(msg::KEX_ECDH_REPLY);
        p.put_string(&k_s);
        p.put_string(&q_s);
        p.put_string(&signature);
        self.seal(&p, rng)?;
        self.send_newkeys(neg, &k, &h, rng)
    }

    /// Sends NEWKEYS and switches our direction to the new keys; the
    /// peer's direction switches at its NEWKEYS.
    fn send_newkeys(
        &mut self,
        neg: Negotiated,
        k: &SharedSecret,
        h: &[u8; 32],
        rng: &mut dyn CryptoRngCore,
    ) -> Result<(), TransportError> {
        let session_id = self.session_id.get_or_insert_with(|| h.to_vec()).clone();
        let c2s = keys::cipher(neg.cipher_c2s, Direction::ClientToServer, k, h, &session_id);
        let s2c = keys::cipher(neg.cipher_s2c, Direction::ServerToClient, k, h, &session_id);
        let (outgoing, incoming) = match self.role {
            Role::Client => (c2s, s2c),
            Role::Server => (s2c, c2s),
        };
        self.seal(&[msg::NEWKEYS], rng)?;
        self.sealer.set_cipher(outgoing);
        if self.strict {
            self.sealer.reset_seq();
        }
        self.kex = Kex::AwaitNewKeys { neg, incoming };
        if self.first_done {
            // A rekey: our direction runs on new keys, so what waited
            // can go now.
            self.flush_queue(rng)?;
        }
        Ok(())
    }

    /// Sends what waited during the exchange.
    fn flush_queue(&mut self, rng: &mut dyn CryptoRngCore) -> Result<(), TransportError> {
        while let Some(p) = self.queue.pop_front() {
            self.seal(&p, rng)?;
        }
        self.queued = 0;
        Ok(())
    }
}
