//! vsock streams for the async driver: `runtime_std::vsock`'s blocking
//! socket, made non-blocking and driven as a [`SharedStream`].

use std::io;

use runtime_std::vsock::VsockStream;

use crate::stream::SharedStream;

/// A connected vsock stream for [`crate::ssh::SshConnection`].
pub type AsyncVsock = SharedStream<VsockStream>;

impl SharedStream<VsockStream> {
    /// Connects to `port` on `cid` (the connect itself, which may wait,
    /// runs on the blocking pool).
    pub async fn connect(cid: u32, port: u32) -> io::Result<Self> {
        let stream = blocking::unblock(move || VsockStream::connect(cid, port)).await?;
        Self::new(stream)
    }
}
