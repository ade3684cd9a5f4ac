//! Why the connection layer refused a message from the peer or a call
//! from the application.

use core::fmt;

use crate::msg::DisconnectReason;
use crate::wire::WireError;

/// A channel-layer failure.
///
/// Returned by [`Channels::handle_message`](super::Channels::handle_message)
/// it means the peer broke RFC 4254 and the connection should end with a
/// DISCONNECT carrying [`reason`](Self::reason). Returned by the other
/// methods it is a misuse by the application and nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelError {
    /// A message did not hold the fields its number says it holds.
    Malformed {
        /// The message number.
        msg: u8,
        /// What was wrong with it.
        error: WireError,
    },
    /// A message number of the connection range that RFC 4254 does not
    /// define; the caller answers it with UNIMPLEMENTED (RFC 4253 §11.4).
    UnknownMessage(u8),
    /// No channel has this local id (never opened, or closed and freed).
    UnknownChannel(u32),
    /// OPEN_CONFIRMATION or OPEN_FAILURE for a channel we are not opening.
    UnexpectedOpenReply(u32),
    /// The channel is not open yet: still being opened, or waiting for the
    /// application to accept it.
    NotOpen,
    /// `accept_open` or `reject_open` on a channel the peer is not
    /// offering.
    NotOffered,
    /// The peer sent more than the window it was given.
    WindowExceeded,
    /// A WINDOW_ADJUST would take the window past 2^32-1 (RFC 4254 §5.2;
    /// russh CVE-2025-54804).
    WindowOverflow,
    /// The peer sent a data message larger than our maximum packet size.
    PacketTooLarge,
    /// Data after EOF: from the peer after its EOF, or from the
    /// application after `send_eof`.
    DataAfterEof,
    /// The peer sent EOF twice.
    DuplicateEof,
    /// The channel is closing: the application called `close` already.
    AfterClose,
    /// `max_channels` channels exist already.
    TooManyChannels,
    /// A reply arrived, or the application replied, with no request
    /// waiting for one.
    NoPendingRequest,
    /// The peer has more requests waiting for a reply than we keep.
    TooManyPending,
    /// `consumed` was told of more bytes than were delivered.
    OverConsumed,
    /// The application asked to send a request that would not decode as
    /// itself: an `Unknown` one under the name of a known request.
    InvalidRequest,
}

impl ChannelError {
    /// The DISCONNECT reason for this error when the peer caused it.
    pub fn reason(&self) -> DisconnectReason {
        match self {
            Self::TooManyChannels | Self::OverConsumed | Self::InvalidRequest => {
                DisconnectReason::ByApplication
            }
            _ => DisconnectReason::ProtocolError,
        }
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { msg, error } => write!(f, "malformed message {msg}: {error}"),
            Self::UnknownMessage(n) => write!(f, "unknown connection message {n}"),
            Self::UnknownChannel(id) => write!(f, "no channel {id}"),
            Self::UnexpectedOpenReply(id) => write!(f, "open reply for channel {id} not opening"),
            Self::NotOpen => f.write_str("channel not open"),
            Self::NotOffered => f.write_str("channel not offered by the peer"),
            Self::WindowExceeded => f.write_str("peer sent beyond the channel window"),
            Self::WindowOverflow => f.write_str("window adjust overflows 2^32-1"),
            Self::PacketTooLarge => f.write_str("channel data above the maximum packet size"),
            Self::DataAfterEof => f.write_str("channel data after EOF"),
            Self::DuplicateEof => f.write_str("second EOF on a channel"),
            Self::AfterClose => f.write_str("channel is closing"),
            Self::TooManyChannels => f.write_str("too many channels"),
            Self::NoPendingRequest => f.write_str("no request waiting for a reply"),
            Self::TooManyPending => f.write_str("too many requests waiting for a reply"),
            Self::OverConsumed => f.write_str("consumed more than was received"),
            Self::InvalidRequest => f.write_str("unknown request under a known name"),
        }
    }
}

impl core::error::Error for ChannelError {}
