//! Port forwarding: a channel joined to a byte stream both ways, and the
//! listener of a `tcpip-forward` on the server side.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use async_io::Async;
use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};

use super::{Channel, ExitStatus, SshConnection, IO_BUF};
use crate::stream::HalfClose;

/// Copies `stream` to `channel` and back until both directions end; EOF
/// on one side becomes EOF on the other. Returns when both are done,
/// having closed the channel.
pub async fn splice<T>(channel: Channel, stream: Async<T>)
where
    T: HalfClose,
    for<'a> &'a T: Read + Write,
{
    let (mut to_peer, mut from_peer) = (&stream, &stream);
    let inbound = async {
        copy(&mut channel.reader(), &mut to_peer).await;
        stream.get_ref().shutdown_write();
    };
    let outbound = send_then_eof(&channel, &mut from_peer);
    future::zip(inbound, outbound).await;
    let _ = channel.close();
}

/// Copies `from` to `to` until EOF or an error on either side, flushing
/// each piece (output must not wait for more input).
pub async fn copy(from: &mut (impl AsyncRead + Unpin), to: &mut (impl AsyncWrite + Unpin)) {
    let mut buf = vec![0u8; IO_BUF];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        let piece = async {
            to.write_all(&buf[..n]).await?;
            to.flush().await
        };
        if piece.await.is_err() {
            return;
        }
    }
}

/// Copies `from` into the channel until EOF, then sends EOF (not after a
/// failed write: the channel is gone then).
pub async fn send_then_eof(channel: &Channel, from: &mut (impl AsyncRead + Unpin)) {
    let mut buf = vec![0u8; IO_BUF];
    let mut to = channel.writer();
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = channel.send_eof();
}

/// Joins the channel to this process's stdin, stdout and stderr until
/// the remote side is done, and returns how its command ended. All
/// output is written before it returns.
pub async fn attach_stdio(channel: &Channel) -> Option<ExitStatus> {
    let input = {
        let ch = channel.clone();
        // Stdin may never end (a terminal): its copy is not waited for.
        smol::spawn(async move {
            send_then_eof(&ch, &mut blocking::Unblock::new(io::stdin())).await;
        })
    };
    input.detach();
    let mut stdout = blocking::Unblock::new(io::stdout());
    let mut stderr = blocking::Unblock::new(io::stderr());
    future::zip(
        copy(&mut channel.reader(), &mut stdout),
        copy(&mut channel.stderr_reader(), &mut stderr),
    )
    .await;
    channel.wait_exit().await
}

/// The server side of `tcpip-forward` (RFC 4254 §7.1): a listener on this
/// host whose connections go back to the client. Dropping it stops it.
#[derive(Debug)]
pub struct RemoteForward {
    address: String,
    port: u32,
    _task: smol::Task<()>,
}

impl RemoteForward {
    /// Listens on `address:port` (port 0: any free port) on this host;
    /// each connection to it becomes a `forwarded-tcpip` channel to the
    /// peer, joined to the TCP connection.
    pub fn start(conn: &SshConnection, address: &str, port: u32) -> io::Result<Self> {
        let (listener, bound) = runtime_std::ssh::bind_forward(address, port)?;
        let listener = Async::new(listener)?;
        let (conn, address2) = (conn.clone(), address.to_string());
        let task = smol::spawn(async move {
            loop {
                let ended = async {
                    conn.wait_closed().await;
                    None
                };
                let Some(accepted) = async { Some(listener.accept().await) }.or(ended).await else {
                    return;
                };
                let Ok((stream, peer)) = accepted else {
                    continue;
                };
                let (conn, address) = (conn.clone(), address2.clone());
                smol::spawn(async move {
                    let (oh, op) = origin(peer);
                    if let Ok(ch) = conn.open_forwarded_tcpip(&address, bound, &oh, op).await {
                        let _ = stream.get_ref().set_nodelay(true);
                        splice(ch, stream).await;
                    }
                })
                .detach();
            }
        });
        Ok(Self {
            address: address.to_string(),
            port: if port == 0 { bound } else { port },
            _task: task,
        })
    }

    /// The address asked for.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The port listened on.
    pub fn port(&self) -> u32 {
        self.port
    }
}

/// The originator address and port of a forwarded connection.
fn origin(peer: SocketAddr) -> (String, u32) {
    (peer.ip().to_string(), u32::from(peer.port()))
}
