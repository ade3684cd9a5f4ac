//! AF_VSOCK stream sockets, which std lacks: listen on any CID, accept,
//! and connect to (CID, port). Built on nix's socket calls; the one
//! `unsafe` takes ownership of the descriptor accept4 returns, because
//! nix 0.29 hands it back raw.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    accept4, bind, connect, getpeername, getsockname, listen, shutdown, socket, AddressFamily,
    Backlog, Shutdown, SockFlag, SockType, VsockAddr,
};

/// `VMADDR_CID_ANY`: listen on every CID of this machine.
pub const CID_ANY: u32 = u32::MAX;

/// The error for a kernel without AF_VSOCK, said plainly.
fn no_vsock(e: Errno) -> io::Error {
    if e == Errno::EAFNOSUPPORT {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "this kernel has no vsock (AF_VSOCK); load the vsock modules \
             (vmw_vsock_virtio_transport in a guest, vhost_vsock on a host, vsock_loopback)",
        )
    } else {
        io::Error::from(e)
    }
}

fn new_socket() -> io::Result<OwnedFd> {
    socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(no_vsock)
}

/// A listening vsock socket.
#[derive(Debug)]
pub struct VsockListener {
    fd: OwnedFd,
}

impl VsockListener {
    /// Listens on `port` of every CID.
    pub fn bind(port: u32) -> io::Result<Self> {
        let fd = new_socket()?;
        bind(fd.as_raw_fd(), &VsockAddr::new(CID_ANY, port))?;
        listen(&fd, Backlog::MAXCONN)?;
        Ok(Self { fd })
    }

    /// The port it listens on.
    pub fn local_port(&self) -> io::Result<u32> {
        let addr: VsockAddr = getsockname(self.fd.as_raw_fd())?;
        Ok(addr.port())
    }

    /// Waits for a connection; returns it with the peer's (CID, port).
    pub fn accept(&self) -> io::Result<(VsockStream, (u32, u32))> {
        let raw: RawFd = loop {
            match accept4(self.fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                Err(Errno::EINTR) => continue,
                other => break other?,
            }
        };
        // SAFETY: accept just returned this descriptor, open and owned by
        // nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let peer: VsockAddr = getpeername(fd.as_raw_fd())?;
        Ok((VsockStream::from_fd(fd), (peer.cid(), peer.port())))
    }
}

impl AsFd for VsockListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A connected vsock stream.
#[derive(Debug)]
pub struct VsockStream {
    // A File gives read, write and dup with std's own error handling.
    file: File,
}

impl VsockStream {
    /// Connects to `port` on `cid`.
    pub fn connect(cid: u32, port: u32) -> io::Result<Self> {
        let fd = new_socket()?;
        loop {
            match connect(fd.as_raw_fd(), &VsockAddr::new(cid, port)) {
                Err(Errno::EINTR) => continue,
                other => break other?,
            }
        }
        Ok(Self::from_fd(fd))
    }

    fn from_fd(fd: OwnedFd) -> Self {
        Self {
            file: File::from(fd),
        }
    }

    /// Another handle on the same socket.
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            file: self.file.try_clone()?,
        })
    }

    /// Shuts both directions down.
    pub fn shutdown(&self) {
        let _ = shutdown(self.file.as_fd().as_raw_fd(), Shutdown::Both);
    }

    /// Shuts the sending half down: the peer reads EOF.
    pub fn shutdown_write(&self) {
        let _ = shutdown(self.file.as_fd().as_raw_fd(), Shutdown::Write);
    }
}

impl Read for VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

// Reads and writes through a shared reference, as `&File` has them: what
// async-io needs to drive the socket through `&Async<VsockStream>`.
impl Read for &VsockStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }
}

impl Write for &VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&self.file).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for VsockStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl Write for VsockStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
