//! Async handles on one channel: reads of its data and stderr, writes
//! that wait for the peer's window, requests, and the exit status.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use event_listener::EventListener;
use futures_lite::{AsyncRead, AsyncWrite};
use proto_ssh::channel::{ChannelError, ChannelId, ChannelRequest, Channels};

use runtime_std::ssh::state::ChannelHandle;

use super::{ExitStatus, Handle, On, SshConnection};

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

impl Channel {
    pub(crate) fn new(id: ChannelId, conn: SshConnection) -> Self {
        Self(ChannelHandle::new(id, conn))
    }

    fn poll_read_stream(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<EventListener>,
        stderr: bool,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let id = self.id;
        self.conn.poll_until(cx, slot, On::Read(id), |st| {
            st.try_read(id, stderr, buf).transpose()
        })
    }

    fn poll_write_stream(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<EventListener>,
        stderr: bool,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let id = self.id;
        self.conn.poll_until(cx, slot, On::Write(id), |st| {
            st.try_write(id, stderr, data).transpose()
        })
    }

    /// Reads channel data; 0 at EOF.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut slot = None;
        futures_lite::future::poll_fn(|cx| self.poll_read_stream(cx, &mut slot, false, buf)).await
    }

    /// Reads extended data of type 1 (stderr); 0 at EOF.
    pub async fn read_stderr(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut slot = None;
        futures_lite::future::poll_fn(|cx| self.poll_read_stream(cx, &mut slot, true, buf)).await
    }

    /// Writes channel data, waiting for window; returns the bytes sent.
    pub async fn write(&self, data: &[u8]) -> io::Result<usize> {
        let mut slot = None;
        futures_lite::future::poll_fn(|cx| self.poll_write_stream(cx, &mut slot, false, data)).await
    }

    /// Writes extended data of type 1 (stderr).
    pub async fn write_stderr(&self, data: &[u8]) -> io::Result<usize> {
        let mut slot = None;
        futures_lite::future::poll_fn(|cx| self.poll_write_stream(cx, &mut slot, true, data)).await
    }

    fn with_channels(
        &self,
        f: impl FnOnce(&mut Channels) -> Result<(), ChannelError>,
    ) -> io::Result<()> {
        self.conn.with_state(|st| st.with_channels(f))
    }

    /// Sends EOF: no more data from us.
    pub fn send_eof(&self) -> io::Result<()> {
        self.with_channels(|c| c.send_eof(self.id))
    }

    /// Sends CLOSE.
    pub fn close(&self) -> io::Result<()> {
        self.conn.with_state(|st| st.close(self.id))
    }

    /// Sends a request; with `want_reply`, waits for and returns the
    /// answer.
    pub async fn request(&self, req: &ChannelRequest, want_reply: bool) -> io::Result<bool> {
        self.conn.channel_request(self.id, req, want_reply).await
    }

    /// Answers the oldest request that wanted a reply.
    pub fn reply(&self, ok: bool) -> io::Result<()> {
        self.with_channels(|c| c.reply_request(self.id, ok))
    }

    /// The next request from the peer (exec, pty-req, window-change...);
    /// `None` once the channel is closed.
    pub async fn next_request(&self) -> Option<(ChannelRequest, bool)> {
        let id = self.id;
        self.conn.until(On::Req(id), |st| st.try_request(id)).await
    }

    /// Waits until the channel is closed and returns how the command
    /// ended, if the peer said.
    pub async fn wait_exit(&self) -> Option<ExitStatus> {
        let id = self.id;
        self.conn.until(On::Req(id), |st| st.try_exit(id)).await
    }

    /// The exit status if it has come.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.conn.with_state(|st| st.exit_status(self.id))
    }

    /// An `AsyncRead` of the channel data.
    pub fn reader(&self) -> ChannelReader {
        ChannelReader {
            channel: self.clone(),
            stderr: false,
            slot: None,
        }
    }

    /// An `AsyncRead` of the stderr stream.
    pub fn stderr_reader(&self) -> ChannelReader {
        ChannelReader {
            channel: self.clone(),
            stderr: true,
            slot: None,
        }
    }

    /// An `AsyncWrite` of channel data; closing it sends EOF.
    pub fn writer(&self) -> ChannelWriter {
        ChannelWriter {
            channel: self.clone(),
            stderr: false,
            slot: None,
        }
    }

    /// An `AsyncWrite` of the stderr stream; closing it sends nothing
    /// (EOF ends both streams).
    pub fn stderr_writer(&self) -> ChannelWriter {
        ChannelWriter {
            channel: self.clone(),
            stderr: true,
            slot: None,
        }
    }
}

/// Reads one stream of a channel.
#[derive(Debug)]
pub struct ChannelReader {
    channel: Channel,
    stderr: bool,
    slot: Option<EventListener>,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.channel
            .poll_read_stream(cx, &mut this.slot, this.stderr, buf)
    }
}

/// Writes one stream of a channel.
#[derive(Debug)]
pub struct ChannelWriter {
    channel: Channel,
    stderr: bool,
    slot: Option<EventListener>,
}

impl AsyncWrite for ChannelWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.channel
            .poll_write_stream(cx, &mut this.slot, this.stderr, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Every write is handed to the connection at once.
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.stderr {
            return Poll::Ready(Ok(()));
        }
        Poll::Ready(self.channel.send_eof())
    }
}
