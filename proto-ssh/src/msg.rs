//! Message numbers (RFC 4250 §4.1) and which side may send each one.
//!
//! The receive check is one table per direction, so that a message only
//! the other role may send is refused before any handler sees it (the
//! libssh CVE-2018-10933 class: a client sending USERAUTH_SUCCESS).

/// Which end of the connection.
pub use crate::version::Role;

pub const DISCONNECT: u8 = 1;
pub const IGNORE: u8 = 2;
pub const UNIMPLEMENTED: u8 = 3;
pub const DEBUG: u8 = 4;
pub const SERVICE_REQUEST: u8 = 5;
pub const SERVICE_ACCEPT: u8 = 6;
pub const EXT_INFO: u8 = 7;
pub const KEXINIT: u8 = 20;
pub const NEWKEYS: u8 = 21;
/// KEX_ECDH_INIT, also the hybrid KEM's client message.
pub const KEX_ECDH_INIT: u8 = 30;
/// KEX_ECDH_REPLY, also the hybrid KEM's server message.
pub const KEX_ECDH_REPLY: u8 = 31;
pub const USERAUTH_REQUEST: u8 = 50;
pub const USERAUTH_FAILURE: u8 = 51;
pub const USERAUTH_SUCCESS: u8 = 52;
pub const USERAUTH_BANNER: u8 = 53;
/// USERAUTH_PK_OK (the answer to a publickey query).
pub const USERAUTH_PK_OK: u8 = 60;
pub const GLOBAL_REQUEST: u8 = 80;
pub const REQUEST_SUCCESS: u8 = 81;
pub const REQUEST_FAILURE: u8 = 82;
pub const CHANNEL_OPEN: u8 = 90;
pub const CHANNEL_OPEN_CONFIRMATION: u8 = 91;
pub const CHANNEL_OPEN_FAILURE: u8 = 92;
pub const CHANNEL_WINDOW_ADJUST: u8 = 93;
pub const CHANNEL_DATA: u8 = 94;
pub const CHANNEL_EXTENDED_DATA: u8 = 95;
pub const CHANNEL_EOF: u8 = 96;
pub const CHANNEL_CLOSE: u8 = 97;
pub const CHANNEL_REQUEST: u8 = 98;
pub const CHANNEL_SUCCESS: u8 = 99;
pub const CHANNEL_FAILURE: u8 = 100;

/// Disconnect reason codes (RFC 4250 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
#[non_exhaustive]
pub enum DisconnectReason {
    HostNotAllowedToConnect = 1,
    ProtocolError = 2,
    KeyExchangeFailed = 3,
    MacError = 5,
    ServiceNotAvailable = 7,
    ProtocolVersionNotSupported = 8,
    HostKeyNotVerifiable = 9,
    ConnectionLost = 10,
    ByApplication = 11,
    TooManyConnections = 12,
    AuthCancelledByUser = 13,
    NoMoreAuthMethodsAvailable = 14,
    IllegalUserName = 15,
}

/// The layer a message number belongs to (RFC 4251 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// 1–19: generic transport (disconnect, ignore, ...).
    TransportGeneric,
    /// 20–29: algorithm negotiation.
    KexInit,
    /// 30–49: the key-exchange method.
    KexMethod,
    /// 50–79: user authentication.
    Auth,
    /// 80–127: the connection protocol.
    Connection,
    /// 128–255: reserved for local extensions; none are used.
    Reserved,
    /// 0, undefined.
    Invalid,
}

/// The layer of message number `n`.
pub fn layer(n: u8) -> Layer {
    match n {
        1..=19 => Layer::TransportGeneric,
        20..=29 => Layer::KexInit,
        30..=49 => Layer::KexMethod,
        50..=79 => Layer::Auth,
        80..=127 => Layer::Connection,
        128..=255 => Layer::Reserved,
        0 => Layer::Invalid,
    }
}

/// Whether a peer in role `sender` may ever send message `n`. Messages
/// not defined at all are allowed here; the layers answer them with
/// UNIMPLEMENTED.
pub fn sendable_by(sender: Role, n: u8) -> bool {
    match n {
        SERVICE_REQUEST | USERAUTH_REQUEST | KEX_ECDH_INIT => sender == Role::Client,
        SERVICE_ACCEPT | USERAUTH_FAILURE | USERAUTH_SUCCESS | USERAUTH_BANNER | USERAUTH_PK_OK
        | KEX_ECDH_REPLY => sender == Role::Server,
        _ => true,
    }
}
