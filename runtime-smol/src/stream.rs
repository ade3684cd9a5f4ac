//! A socket shared by its reading and writing halves, for the drivers:
//! `Arc<Async<T>>` as one `AsyncRead + AsyncWrite` value, for any socket
//! whose shared reference reads and writes (`&TcpStream`, `&UnixStream`,
//! `&VsockStream`, a caller's own enum of them). Clones are handles on
//! the same socket; closing shuts the sending half, so the peer sees EOF.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncWrite};
use runtime_std::vsock::VsockStream;

/// A stream socket whose sending half can be shut alone: how EOF is
/// passed on (async-io's `close` only flushes).
pub trait HalfClose {
    /// Shuts the sending half down; errors (already closed) are moot.
    fn shutdown_write(&self);
}

impl HalfClose for TcpStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl HalfClose for UnixStream {
    fn shutdown_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl HalfClose for VsockStream {
    fn shutdown_write(&self) {
        VsockStream::shutdown_write(self);
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct SharedStream<T>(Arc<Async<T>>);

impl<T> Clone for SharedStream<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: AsFd> SharedStream<T> {
    /// Makes `socket` non-blocking and registers it with the reactor.
    pub fn new(socket: T) -> io::Result<Self> {
        Ok(Self(Arc::new(Async::new(socket)?)))
    }
}

impl<T> SharedStream<T> {
    /// The socket.
    pub fn get_ref(&self) -> &T {
        self.0.get_ref()
    }
}

impl<T> AsyncRead for SharedStream<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl<T: HalfClose> AsyncWrite for SharedStream<T>
where
    for<'a> &'a T: Write,
{
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
        self.0.get_ref().shutdown_write();
        Poll::Ready(Ok(()))
    }
}
