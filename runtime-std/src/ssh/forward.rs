//! Port forwarding: a channel joined to a TCP connection both ways, and
//! the listener of a `tcpip-forward` on the server side.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use super::{Channel, ExitStatus, Handle, SshConnection, IO_BUF};

/// Copies `stream` to `channel` and back until both directions end; EOF
/// on one side becomes EOF on the other. Returns when both are done.
pub fn splice_tcp(channel: Channel, stream: TcpStream) -> io::Result<()> {
    let mut to_peer = stream.try_clone()?;
    let ch = channel.clone();
    let inbound = thread::spawn(move || {
        copy(&mut ch.reader(), &mut to_peer);
        let _ = to_peer.shutdown(Shutdown::Write);
    });
    let mut from_peer = stream;
    send_then_eof(&channel, &mut from_peer);
    let _ = inbound.join();
    let _ = channel.close();
    Ok(())
}

/// Copies `from` to `to` until EOF or an error on either side, flushing
/// each piece (output must not wait for more input).
pub fn copy(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; IO_BUF];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
        }
    }
}

/// Copies `from` into the channel until EOF, then sends EOF (not after a
/// failed write: the channel is gone then).
pub fn send_then_eof(channel: &Channel, from: &mut impl Read) {
    let mut buf = vec![0u8; IO_BUF];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if write_all(channel, &buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = channel.send_eof();
}

/// Joins the channel to this process's stdin, stdout and stderr until
/// the remote side is done, and returns how its command ended. All
/// output is written before it returns.
pub fn attach_stdio(channel: &Channel) -> Option<ExitStatus> {
    {
        let ch = channel.clone();
        thread::spawn(move || send_then_eof(&ch, &mut io::stdin()));
    }
    let err = {
        let ch = channel.clone();
        thread::spawn(move || copy(&mut ch.stderr_reader(), &mut io::stderr()))
    };
    copy(&mut channel.reader(), &mut io::stdout());
    let _ = err.join();
    channel.wait_exit()
}

/// Writes all of `data` to the channel.
pub fn write_all(channel: &Channel, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = channel.write(data)?;
        data = &data[n..];
    }
    Ok(())
}

/// The server side of `tcpip-forward` (RFC 4254 §7.1): a listener on this
/// host whose connections go back to the client. Dropping it stops it.
#[derive(Debug)]
pub struct RemoteForward {
    address: String,
    port: u32,
    stop: Arc<AtomicBool>,
}

/// The listener of a `tcpip-forward` for `address:port` ("" and
/// "localhost" are 127.0.0.1; port 0 is any free port), with the port it
/// got: the same for every runtime.
pub fn bind_forward(address: &str, port: u32) -> io::Result<(TcpListener, u32)> {
    let bind = match address {
        "" | "localhost" => "127.0.0.1",
        a => a,
    };
    let port16 = u16::try_from(port).map_err(|_| io::Error::other("bad port"))?;
    let listener = TcpListener::bind((bind, port16))?;
    let bound = u32::from(listener.local_addr()?.port());
    Ok((listener, bound))
}

impl RemoteForward {
    /// Listens on `address:port` (port 0: any free port) on this host;
    /// each connection to it becomes a `forwarded-tcpip` channel to the
    /// peer, joined to the TCP connection.
    pub fn start(conn: &SshConnection, address: &str, port: u32) -> io::Result<Self> {
        let (listener, bound) = bind_forward(address, port)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (conn, stop2, address2) = (conn.clone(), stop.clone(), address.to_string());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) || conn.is_closed() {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (oh, op) = match stream.peer_addr() {
                    Ok(a) => (a.ip().to_string(), u32::from(a.port())),
                    Err(_) => (String::new(), 0),
                };
                let conn = conn.clone();
                let address = address2.clone();
                thread::spawn(move || {
                    if let Ok(ch) = conn.open_forwarded_tcpip(&address, bound, &oh, op) {
                        let _ = splice_tcp(ch, stream);
                    }
                });
            }
        });
        Ok(Self {
            address: address.to_string(),
            port: if port == 0 { bound } else { port },
            stop,
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

impl Drop for RemoteForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        if let Ok(port) = u16::try_from(self.port) {
            let _ = TcpStream::connect(("127.0.0.1", port));
        }
    }
}
