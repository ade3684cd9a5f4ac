//! The byte streams an SSH connection runs over: TCP, Unix and vsock
//! sockets, behind one small trait so the driver is written once.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;

use crate::vsock::VsockStream;

/// A connected stream socket that can be split into a read half and a
/// write half, and shut down from a third handle to unblock both.
pub trait Socket: Read + Write + Send + Sized + 'static {
    /// Another handle on the same socket.
    fn try_clone(&self) -> io::Result<Self>;
    /// Shuts both directions down; errors (already closed) are moot.
    fn shutdown_both(&self);
    /// Latency over batching, where the transport has the choice.
    fn set_low_latency(&self) {}
}

impl Socket for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
    fn set_low_latency(&self) {
        let _ = self.set_nodelay(true);
    }
}

impl Socket for UnixStream {
    fn try_clone(&self) -> io::Result<Self> {
        UnixStream::try_clone(self)
    }
    fn shutdown_both(&self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Socket for VsockStream {
    fn try_clone(&self) -> io::Result<Self> {
        VsockStream::try_clone(self)
    }
    fn shutdown_both(&self) {
        self.shutdown();
    }
}
