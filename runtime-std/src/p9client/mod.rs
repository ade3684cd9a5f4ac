//! Blocking 9P2000.L clients driving the sans-IO [`ClientSession`]:
//! [`Client`], owned by one thread, and [`MuxClient`], shared by many
//! threads with several requests in flight over one connection.
//! [`shared`] is the part of [`MuxClient`] every runtime uses; this
//! module adds its blocking transport.
//!
//! [`ClientSession`]: proto_9p::client::ClientSession

use std::fmt;
use std::io;

use proto_9p::client::ClientError;
use proto_9p::Errno;

mod mux;
mod serial;
pub mod shared;

pub use serial::Client;
pub use shared::{MuxClient, Pending};

/// Why a client call failed.
#[derive(Debug)]
pub enum CallError {
    /// The transport failed.
    Io(io::Error),
    /// The server broke the protocol.
    Protocol(ClientError),
    /// The server answered Rlerror.
    Errno(Errno),
    /// The server answered with the wrong message type.
    Unexpected(&'static str),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "9P transport: {e}"),
            Self::Protocol(e) => write!(f, "9P protocol: {e}"),
            Self::Errno(e) => write!(f, "9P server error {e}"),
            Self::Unexpected(m) => write!(f, "unexpected 9P reply {m}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<io::Error> for CallError {
    fn from(e: io::Error) -> Self {
        CallError::Io(e)
    }
}

impl From<ClientError> for CallError {
    fn from(e: ClientError) -> Self {
        CallError::Protocol(e)
    }
}

/// The R-message of variant `$variant`, or [`CallError::Unexpected`].
macro_rules! expect_reply {
    ($msg:expr, $variant:ident) => {
        match $msg {
            Message::$variant(m) => Ok(m),
            other => Err(CallError::Unexpected(other.name())),
        }
    };
}
pub(crate) use expect_reply;
