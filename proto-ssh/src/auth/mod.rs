//! User authentication (RFC 4252): the client and server sides.
//!
//! Both sides are sans-IO state machines fed the payloads of the
//! authentication layer (SERVICE_REQUEST, SERVICE_ACCEPT and message
//! numbers 50–79), already decrypted, with the transport enforcing the
//! phase. They queue payloads to send ([`ClientAuth::poll_payload`],
//! [`ServerAuth::poll_payload`]) and events ([`ClientAuth::poll_event`],
//! [`ServerAuth::poll_event`]).
//!
//! Only the `none` and `publickey` methods exist. The server's answer to a
//! successful login is an [`Authenticated`] token, which can be built only
//! here, from a signature that verified and a policy that accepted the key
//! that made it (or from `none` when configured); the connection layer
//! requires one to exist before any channel does.
//!
//! Guards, each with a test in `tests/auth_*.rs`:
//! - the policy is asked about the key that signed, after the signature
//!   verified, never about a key merely named or queried earlier
//!   (CVE-2024-45337);
//! - a publickey query (no signature) never authenticates;
//! - the server refuses every message only a server sends, among them
//!   USERAUTH_SUCCESS (CVE-2018-10933);
//! - unknown users and refused keys get byte-identical answers, and the
//!   signature is verified before the policy is asked in both cases
//!   (CVE-2018-15473);
//! - every message is parsed to its last byte: truncated messages and
//!   trailing bytes are protocol errors (requests for methods we do not
//!   offer, whose fields we do not know, are refused unparsed);
//! - sizes are bounded by the packet layer (256 KiB), user names by
//!   [`server::MAX_USER_LEN`], RSA keys by ssh-key (2048 to 4096 bits).
//!
//! The server's decisions beyond the RFC (attempt counting, other
//! services) are in the [`server`] module documentation. `fuzz` (feature
//! `fuzzing`) drives both sides from arbitrary bytes.

use alloc::vec::Vec;
use core::fmt;

use crate::msg::{self, DisconnectReason};
use crate::wire::{Put, WireError};

pub mod client;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod server;

pub use client::{ClientAuth, ClientAuthEvent};
pub use server::{AuthPolicy, Authenticated, ServerAuth, ServerAuthConfig, ServerAuthEvent};

/// The service that runs user authentication (RFC 4252 §1).
pub const SERVICE_USERAUTH: &str = "ssh-userauth";
/// The service requested after authentication (RFC 4254).
pub const SERVICE_CONNECTION: &str = "ssh-connection";
/// The `none` method name (RFC 4252 §5.2).
pub const METHOD_NONE: &str = "none";
/// The `publickey` method name (RFC 4252 §7).
pub const METHOD_PUBLICKEY: &str = "publickey";

/// Why authentication cannot go on; the caller sends DISCONNECT with
/// [`AuthError::reason`] and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// A message did not parse, or had bytes after its last field.
    Malformed {
        /// The message number.
        msg: u8,
        /// What was wrong.
        error: WireError,
    },
    /// A message that is not valid in this state or for this role (a
    /// client sending USERAUTH_SUCCESS, SUCCESS before any request, ...).
    Unexpected {
        /// The message number.
        msg: u8,
    },
    /// USERAUTH_PK_OK named another algorithm or key than the query.
    PkOkMismatch,
    /// The server accepted a service other than the one requested.
    WrongServiceAccepted,
    /// The client asked for a service other than `ssh-userauth`.
    ServiceNotAvailable,
    /// The client failed `max_attempts` times.
    TooManyAttempts,
}

impl AuthError {
    /// The DISCONNECT reason to send (RFC 4250 §4.2.2).
    pub fn reason(&self) -> DisconnectReason {
        match self {
            Self::Malformed { .. }
            | Self::Unexpected { .. }
            | Self::PkOkMismatch
            | Self::WrongServiceAccepted => DisconnectReason::ProtocolError,
            Self::ServiceNotAvailable => DisconnectReason::ServiceNotAvailable,
            Self::TooManyAttempts => DisconnectReason::NoMoreAuthMethodsAvailable,
        }
    }

    /// [`AuthError::reason`] as its wire code.
    pub fn reason_code(&self) -> u32 {
        self.reason() as u32
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { msg, error } => write!(f, "auth message {msg}: {error}"),
            Self::Unexpected { msg } => write!(f, "unexpected auth message {msg}"),
            Self::PkOkMismatch => f.write_str("USERAUTH_PK_OK does not match the query"),
            Self::WrongServiceAccepted => f.write_str("server accepted another service"),
            Self::ServiceNotAvailable => f.write_str("requested service not available"),
            Self::TooManyAttempts => f.write_str("too many authentication failures"),
        }
    }
}

impl core::error::Error for AuthError {}

/// The bytes a publickey signature covers (RFC 4252 §7): session
/// identifier, then the USERAUTH_REQUEST with the boolean TRUE, up to the
/// public key blob.
pub fn publickey_signed_data(
    session_id: &[u8],
    user: &str,
    service: &str,
    alg: &str,
    public_key_blob: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(
        session_id.len() + user.len() + service.len() + alg.len() + public_key_blob.len() + 48,
    );
    v.put_string(session_id);
    v.put_raw(&publickey_request_head(
        user,
        service,
        true,
        alg,
        public_key_blob,
    ));
    v
}

/// USERAUTH_REQUEST "publickey" up to the public key blob.
fn publickey_request_head(
    user: &str,
    service: &str,
    signed: bool,
    alg: &str,
    public_key_blob: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_u8(msg::USERAUTH_REQUEST);
    v.put_string(user.as_bytes());
    v.put_string(service.as_bytes());
    v.put_string(METHOD_PUBLICKEY.as_bytes());
    v.put_bool(signed);
    v.put_string(alg.as_bytes());
    v.put_string(public_key_blob);
    v
}
