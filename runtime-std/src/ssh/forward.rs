//! Joins a channel to a TCP connection, both ways, as port forwarding
//! needs (tcpip-forward, direct-tcpip).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;

use super::Channel;

/// Copies `stream` to `channel` and back until both directions end; EOF
/// on one side becomes EOF on the other. Returns when both are done.
pub fn splice_tcp(channel: Channel, stream: TcpStream) -> io::Result<()> {
    let mut to_peer = stream.try_clone()?;
    let ch = channel.clone();
    let inbound = thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match ch.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_peer.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_peer.shutdown(Shutdown::Write);
    });
    let mut from_peer = stream;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from_peer.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if write_all(&channel, &buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = channel.send_eof();
    let _ = inbound.join();
    let _ = channel.close();
    Ok(())
}

/// Writes all of `data` to the channel.
pub fn write_all(channel: &Channel, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = channel.write(data)?;
        data = &data[n..];
    }
    Ok(())
}
