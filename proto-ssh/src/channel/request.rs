//! Typed channel requests (RFC 4254 §6, plus OpenSSH's keepalive) and
//! global requests (§4, §7.1), and their wire form.
//!
//! Both are encoded as `string name, boolean want_reply, data...`, which is
//! the tail of CHANNEL_REQUEST after the recipient and of GLOBAL_REQUEST
//! after the message number. A known request is read to its last byte; the
//! data of an unknown one is skipped, since only its sender knows its
//! layout.

use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::{Put, Reader, WireError};

/// OpenSSH's keepalive probe, as a channel and as a global request.
const KEEPALIVE: &str = "keepalive@openssh.com";

/// A request on a channel (CHANNEL_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRequest {
    /// `exec`: run a command; the bytes are passed on as sent.
    Exec(Vec<u8>),
    /// `shell`: run the user's shell.
    Shell,
    /// `pty-req`: allocate a terminal.
    PtyReq {
        /// TERM, e.g. `xterm`.
        term: String,
        /// Width in characters.
        cols: u32,
        /// Height in rows.
        rows: u32,
        /// Width in pixels.
        width_px: u32,
        /// Height in pixels.
        height_px: u32,
        /// The encoded terminal modes (RFC 4254 §8), passed on as sent.
        modes: Vec<u8>,
    },
    /// `env`: set an environment variable.
    Env {
        /// The variable's name.
        name: String,
        /// Its value, passed on as sent.
        value: Vec<u8>,
    },
    /// `window-change`: the terminal was resized.
    WindowChange {
        /// Width in characters.
        cols: u32,
        /// Height in rows.
        rows: u32,
        /// Width in pixels.
        width_px: u32,
        /// Height in pixels.
        height_px: u32,
    },
    /// `signal`: deliver a signal, named without the `SIG` prefix.
    Signal(String),
    /// `exit-status`: the command exited with this status.
    ExitStatus(u32),
    /// `exit-signal`: the command was killed by a signal.
    ExitSignal {
        /// The signal, without the `SIG` prefix.
        signal: String,
        /// Whether a core was dumped.
        core_dumped: bool,
        /// A human-readable message.
        message: String,
        /// Its language tag.
        lang: String,
    },
    /// `subsystem`: start a named subsystem.
    Subsystem(String),
    /// `keepalive@openssh.com`: a liveness probe.
    KeepAlive,
    /// Any other request; its data is not kept.
    Unknown {
        /// The request's name.
        name: String,
    },
}

/// A request for the whole connection (GLOBAL_REQUEST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobalRequest {
    /// `tcpip-forward`: listen on the far side and forward connections
    /// back as `forwarded-tcpip` channels. Port 0 asks the server to pick
    /// one and send it in the reply.
    TcpipForward {
        /// The address to bind.
        address: String,
        /// The port to bind, or 0.
        port: u32,
    },
    /// `cancel-tcpip-forward`: stop a forward.
    CancelTcpipForward {
        /// The address that was bound.
        address: String,
        /// The port that was bound.
        port: u32,
    },
    /// `keepalive@openssh.com`: a liveness probe.
    KeepAlive,
    /// Any other request; its data is not kept.
    Unknown {
        /// The request's name.
        name: String,
    },
}

/// Human-readable text: not worth ending a connection over bad UTF-8.
fn text(r: &mut Reader<'_>) -> Result<String, WireError> {
    Ok(String::from_utf8_lossy(r.string()?).into_owned())
}

/// A name or identifier: must be UTF-8.
fn ident(r: &mut Reader<'_>) -> Result<String, WireError> {
    Ok(String::from(r.utf8()?))
}

/// A request name as sent, for `Unknown`.
fn name_of(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

impl ChannelRequest {
    /// Whether `name` is one this module decodes; an `Unknown` under such a
    /// name would not read back as itself.
    pub fn is_known_name(name: &str) -> bool {
        matches!(
            name,
            "exec"
                | "shell"
                | "pty-req"
                | "env"
                | "window-change"
                | "signal"
                | "exit-status"
                | "exit-signal"
                | "subsystem"
                | KEEPALIVE
        )
    }

    /// The request's name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Self::Exec(_) => "exec",
            Self::Shell => "shell",
            Self::PtyReq { .. } => "pty-req",
            Self::Env { .. } => "env",
            Self::WindowChange { .. } => "window-change",
            Self::Signal(_) => "signal",
            Self::ExitStatus(_) => "exit-status",
            Self::ExitSignal { .. } => "exit-signal",
            Self::Subsystem(_) => "subsystem",
            Self::KeepAlive => KEEPALIVE,
            Self::Unknown { name } => name,
        }
    }

    /// Appends `string name, boolean want_reply` and the request's data.
    pub fn encode(&self, want_reply: bool, out: &mut Vec<u8>) {
        out.put_string(self.name().as_bytes());
        out.put_bool(want_reply);
        match self {
            Self::Exec(cmd) => out.put_string(cmd),
            Self::PtyReq {
                term,
                cols,
                rows,
                width_px,
                height_px,
                modes,
            } => {
                out.put_string(term.as_bytes());
                for v in [cols, rows, width_px, height_px] {
                    out.put_u32(*v);
                }
                out.put_string(modes);
            }
            Self::Env { name, value } => {
                out.put_string(name.as_bytes());
                out.put_string(value);
            }
            Self::WindowChange {
                cols,
                rows,
                width_px,
                height_px,
            } => {
                for v in [cols, rows, width_px, height_px] {
                    out.put_u32(*v);
                }
            }
            Self::Signal(s) | Self::Subsystem(s) => out.put_string(s.as_bytes()),
            Self::ExitStatus(s) => out.put_u32(*s),
            Self::ExitSignal {
                signal,
                core_dumped,
                message,
                lang,
            } => {
                out.put_string(signal.as_bytes());
                out.put_bool(*core_dumped);
                out.put_string(message.as_bytes());
                out.put_string(lang.as_bytes());
            }
            Self::Shell | Self::KeepAlive | Self::Unknown { .. } => {}
        }
    }

    /// Reads what [`encode`](Self::encode) writes, to the end of `r` for a
    /// known request. Returns the request and its `want_reply`.
    pub fn decode(r: &mut Reader<'_>) -> Result<(Self, bool), WireError> {
        let name = r.string()?;
        let want_reply = r.bool()?;
        let req = match name {
            b"exec" => Self::Exec(r.string()?.to_vec()),
            b"shell" => Self::Shell,
            b"pty-req" => Self::PtyReq {
                term: ident(r)?,
                cols: r.u32()?,
                rows: r.u32()?,
                width_px: r.u32()?,
                height_px: r.u32()?,
                modes: r.string()?.to_vec(),
            },
            b"env" => Self::Env {
                name: ident(r)?,
                value: r.string()?.to_vec(),
            },
            b"window-change" => Self::WindowChange {
                cols: r.u32()?,
                rows: r.u32()?,
                width_px: r.u32()?,
                height_px: r.u32()?,
            },
            b"signal" => Self::Signal(ident(r)?),
            b"exit-status" => Self::ExitStatus(r.u32()?),
            b"exit-signal" => Self::ExitSignal {
                signal: ident(r)?,
                core_dumped: r.bool()?,
                message: text(r)?,
                lang: text(r)?,
            },
            b"subsystem" => Self::Subsystem(ident(r)?),
            b"keepalive@openssh.com" => Self::KeepAlive,
            other => {
                return Ok((
                    Self::Unknown {
                        name: name_of(other),
                    },
                    want_reply,
                ))
            }
        };
        r.finish()?;
        Ok((req, want_reply))
    }
}

impl GlobalRequest {
    /// Whether `name` is one this module decodes.
    pub fn is_known_name(name: &str) -> bool {
        matches!(name, "tcpip-forward" | "cancel-tcpip-forward" | KEEPALIVE)
    }

    /// The request's name on the wire.
    pub fn name(&self) -> &str {
        match self {
            Self::TcpipForward { .. } => "tcpip-forward",
            Self::CancelTcpipForward { .. } => "cancel-tcpip-forward",
            Self::KeepAlive => KEEPALIVE,
            Self::Unknown { name } => name,
        }
    }

    /// Appends `string name, boolean want_reply` and the request's data.
    pub fn encode(&self, want_reply: bool, out: &mut Vec<u8>) {
        out.put_string(self.name().as_bytes());
        out.put_bool(want_reply);
        match self {
            Self::TcpipForward { address, port } | Self::CancelTcpipForward { address, port } => {
                out.put_string(address.as_bytes());
                out.put_u32(*port);
            }
            Self::KeepAlive | Self::Unknown { .. } => {}
        }
    }

    /// Reads what [`encode`](Self::encode) writes, to the end of `r` for a
    /// known request. Returns the request and its `want_reply`.
    pub fn decode(r: &mut Reader<'_>) -> Result<(Self, bool), WireError> {
        let name = r.string()?;
        let want_reply = r.bool()?;
        let req = match name {
            b"tcpip-forward" => Self::TcpipForward {
                address: ident(r)?,
                port: r.u32()?,
            },
            b"cancel-tcpip-forward" => Self::CancelTcpipForward {
                address: ident(r)?,
                port: r.u32()?,
            },
            b"keepalive@openssh.com" => Self::KeepAlive,
            other => {
                return Ok((
                    Self::Unknown {
                        name: name_of(other),
                    },
                    want_reply,
                ))
            }
        };
        r.finish()?;
        Ok((req, want_reply))
    }
}
