//! vsock streams for the async driver: `runtime_std::vsock`'s blocking
//! socket, made non-blocking and driven through `&Async<VsockStream>`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};
use runtime_std::vsock::VsockStream;

/// A connected vsock stream for [`crate::ssh::SshConnection`].
#[derive(Debug, Clone)]
pub struct AsyncVsock(Arc<Async<VsockStream>>);

impl AsyncVsock {
    /// Wraps a connected stream (it is made non-blocking).
    pub fn new(stream: VsockStream) -> io::Result<Self> {
        Ok(Self(Arc::new(Async::new(stream)?)))
    }

    /// Connects to `port` on `cid` (the connect itself blocks on smol's
    /// blocking pool).
    pub async fn connect(cid: u32, port: u32) -> io::Result<Self> {
        let stream = blocking::unblock(move || VsockStream::connect(cid, port)).await?;
        Self::new(stream)
    }
}

impl AsyncRead for AsyncVsock {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for AsyncVsock {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.0).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // As a TCP stream's close: no more writes from us.
        self.0.get_ref().shutdown();
        Poll::Ready(Ok(()))
    }
}
