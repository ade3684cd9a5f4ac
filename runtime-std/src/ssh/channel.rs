//! Blocking handles on one channel: reads of its data and stderr, writes
//! that wait for the peer's window, requests, and the exit status.

use std::io::{self, Read, Write};

use proto_ssh::channel::{ChannelId, ChannelRequest};

use super::state::ChannelHandle;
use super::SshConnection;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit-status`.
    Code(u32),
    /// `exit-signal`.
    Signal {
        /// The signal name without "SIG", e.g. `TERM`.
        name: String,
        /// Whether it dumped core.
        core_dumped: bool,
        /// The peer's message.
        message: String,
    },
}

/// `exit status 3`, `signal TERM (core dumped): message`, for logs.
impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit status {c}"),
            Self::Signal {
                name,
                core_dumped,
                message,
            } => {
                write!(f, "signal {name}")?;
                if *core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message:?}")?;
                }
                Ok(())
            }
        }
    }
}

impl ExitStatus {
    /// The status as a process exit code: the code itself (0–255), or
    /// 128 plus the signal number, as shells report it.
    pub fn code(&self) -> u8 {
        match self {
            // The low byte, as a parent's wait() would see it.
            Self::Code(c) => (*c & 0xff) as u8,
            Self::Signal { name, .. } => {
                128u8.saturating_add(u8::try_from(signal_number(name)).unwrap_or(0))
            }
        }
    }
}

/// The Linux number of an SSH signal name (RFC 4254 §6.10), 0 when
/// unknown.
pub fn signal_number(name: &str) -> i32 {
    match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => 0,
    }
}

/// The SSH name of a Linux signal number (RFC 4254 §6.10), if it has one.
pub fn signal_name(n: i32) -> Option<&'static str> {
    Some(match n {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        4 => "ILL",
        6 => "ABRT",
        8 => "FPE",
        9 => "KILL",
        10 => "USR1",
        11 => "SEGV",
        12 => "USR2",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        _ => return None,
    })
}

/// One channel; clones share it, and it is closed when the last one
/// goes. Its id and connection are the shared [`ChannelHandle`]'s.
#[derive(Clone, Debug)]
pub struct Channel(ChannelHandle<SshConnection>);

impl From<ChannelHandle<SshConnection>> for Channel {
    fn from(h: ChannelHandle<SshConnection>) -> Self {
        Self(h)
    }
}

impl std::ops::Deref for Channel {
    type Target = ChannelHandle<SshConnection>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Which received stream to read.
#[derive(Clone, Copy)]
enum Stream {
    Data,
    Stderr,
}

impl Channel {
    pub(crate) fn new(id: ChannelId, conn: SshConnection) -> Self {
        Self(ChannelHandle::new(id, conn))
    }

    fn read_stream(&self, stream: Stream, buf: &mut [u8]) -> io::Result<usize> {
        let stderr = matches!(stream, Stream::Stderr);
        let mut st = self.conn.lock();
        loop {
            let step = st.try_read(self.id, stderr, buf);
            self.conn.flush(&mut st);
            if let Some(n) = step? {
                return Ok(n);
            }
            let Some(cv) = st.waiters(self.id) else {
                return Ok(0);
            };
            st = self.conn.wait_on(&cv.read, st);
        }
    }

    /// Reads channel data; 0 at EOF.
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_stream(Stream::Data, buf)
    }

    /// Reads extended data of type 1 (stderr); 0 at EOF.
    pub fn read_stderr(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_stream(Stream::Stderr, buf)
    }

    fn write_stream(&self, stream: Stream, data: &[u8]) -> io::Result<usize> {
        let stderr = matches!(stream, Stream::Stderr);
        let mut st = self.conn.lock();
        loop {
            let step = st.try_write(self.id, stderr, data);
            self.conn.flush(&mut st);
            if let Some(n) = step? {
                return Ok(n);
            }
            let Some(cv) = st.waiters(self.id) else {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "channel closed"));
            };
            st = self.conn.wait_on(&cv.write, st);
        }
    }

    /// Writes channel data, waiting for window; returns the bytes sent.
    pub fn write(&self, data: &[u8]) -> io::Result<usize> {
        self.write_stream(Stream::Data, data)
    }

    /// Writes extended data of type 1 (stderr).
    pub fn write_stderr(&self, data: &[u8]) -> io::Result<usize> {
        self.write_stream(Stream::Stderr, data)
    }

    fn with_channels(
        &self,
        f: impl FnOnce(
            &mut proto_ssh::channel::Channels,
        ) -> Result<(), proto_ssh::channel::ChannelError>,
    ) -> io::Result<()> {
        let mut st = self.conn.lock();
        let r = st.with_channels(f);
        self.conn.flush(&mut st);
        r
    }

    /// Sends EOF: no more data from us.
    pub fn send_eof(&self) -> io::Result<()> {
        self.with_channels(|c| c.send_eof(self.id))
    }

    /// Sends CLOSE.
    pub fn close(&self) -> io::Result<()> {
        let mut st = self.conn.lock();
        let r = st.close(self.id);
        self.conn.flush(&mut st);
        r
    }

    /// Sends a request; with `want_reply`, waits for and returns the
    /// answer.
    pub fn request(&self, req: &ChannelRequest, want_reply: bool) -> io::Result<bool> {
        self.conn.channel_request(self.id, req, want_reply)
    }

    /// Answers the oldest request that wanted a reply.
    pub fn reply(&self, ok: bool) -> io::Result<()> {
        self.with_channels(|c| c.reply_request(self.id, ok))
    }

    /// The next request from the peer (exec, pty-req, window-change...);
    /// `None` once the channel is closed.
    pub fn next_request(&self) -> Option<(ChannelRequest, bool)> {
        let mut st = self.conn.lock();
        loop {
            if let Some(r) = st.try_request(self.id) {
                return r;
            }
            let cv = st.waiters(self.id)?;
            st = self.conn.wait_on(&cv.req, st);
        }
    }

    /// Waits until the channel is closed and returns how the command
    /// ended, if the peer said.
    pub fn wait_exit(&self) -> Option<ExitStatus> {
        let mut st = self.conn.lock();
        loop {
            if let Some(exit) = st.try_exit(self.id) {
                return exit;
            }
            let cv = st.waiters(self.id)?;
            st = self.conn.wait_on(&cv.req, st);
        }
    }

    /// The exit status if it has come.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.conn.lock().exit_status(self.id)
    }

    /// A `Read` of the channel data.
    pub fn reader(&self) -> ChannelReader {
        ChannelReader {
            channel: self.clone(),
            stderr: false,
        }
    }

    /// A `Read` of the stderr stream.
    pub fn stderr_reader(&self) -> ChannelReader {
        ChannelReader {
            channel: self.clone(),
            stderr: true,
        }
    }

    /// A `Write` of channel data.
    pub fn writer(&self) -> ChannelWriter {
        ChannelWriter {
            channel: self.clone(),
            stderr: false,
        }
    }

    /// A `Write` of the stderr stream.
    pub fn stderr_writer(&self) -> ChannelWriter {
        ChannelWriter {
            channel: self.clone(),
            stderr: true,
        }
    }
}

/// Reads one stream of a channel.
#[derive(Debug, Clone)]
pub struct ChannelReader {
    channel: Channel,
    stderr: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stderr {
            self.channel.read_stderr(buf)
        } else {
            self.channel.read(buf)
        }
    }
}

/// Writes one stream of a channel.
#[derive(Debug, Clone)]
pub struct ChannelWriter {
    channel: Channel,
    stderr: bool,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stderr {
            self.channel.write_stderr(buf)
        } else {
            self.channel.write(buf)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
