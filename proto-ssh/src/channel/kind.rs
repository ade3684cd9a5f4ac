//! Channel types (RFC 4254 §6.1, §7.1, §7.2) and the type-specific tail of
//! CHANNEL_OPEN.

use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::{Put, Reader, WireError};

/// What a channel carries, as named in its CHANNEL_OPEN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// `session`: a command, shell or subsystem. Opened by clients.
    Session,
    /// `direct-tcpip`: the client asks the server to connect somewhere.
    DirectTcpip {
        /// Where to connect.
        host: String,
        /// Port to connect to.
        port: u32,
        /// The address the connection came from on the client side.
        orig_host: String,
        /// Its port.
        orig_port: u32,
    },
    /// `forwarded-tcpip`: the server hands over a connection accepted on a
    /// port the client asked for with `tcpip-forward`.
    ForwardedTcpip {
        /// The address that was connected to.
        connected_host: String,
        /// The port that was connected to.
        connected_port: u32,
        /// The address the connection came from.
        orig_host: String,
        /// Its port.
        orig_port: u32,
    },
}

impl ChannelKind {
    /// The channel type on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::DirectTcpip { .. } => "direct-tcpip",
            Self::ForwardedTcpip { .. } => "forwarded-tcpip",
        }
    }

    /// Appends the type-specific data of CHANNEL_OPEN.
    pub(crate) fn encode_data(&self, out: &mut Vec<u8>) {
        match self {
            Self::Session => {}
            Self::DirectTcpip {
                host: a,
                port: p,
                orig_host: oa,
                orig_port: op,
            }
            | Self::ForwardedTcpip {
                connected_host: a,
                connected_port: p,
                orig_host: oa,
                orig_port: op,
            } => {
                out.put_string(a.as_bytes());
                out.put_u32(*p);
                out.put_string(oa.as_bytes());
                out.put_u32(*op);
            }
        }
    }

    /// Reads the type-specific data of a CHANNEL_OPEN of type `name`, to
    /// the end of `r`. `None` for a type this crate does not know, whose
    /// data is left unread.
    pub(crate) fn decode_data(name: &[u8], r: &mut Reader<'_>) -> Result<Option<Self>, WireError> {
        let kind = match name {
            b"session" => Self::Session,
            b"direct-tcpip" => Self::DirectTcpip {
                host: String::from(r.utf8()?),
                port: r.u32()?,
                orig_host: String::from(r.utf8()?),
                orig_port: r.u32()?,
            },
            b"forwarded-tcpip" => Self::ForwardedTcpip {
                connected_host: String::from(r.utf8()?),
                connected_port: r.u32()?,
                orig_host: String::from(r.utf8()?),
                orig_port: r.u32()?,
            },
            _ => return Ok(None),
        };
        r.finish()?;
        Ok(Some(kind))
    }
}
