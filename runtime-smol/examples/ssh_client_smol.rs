//! runtime-std's `ssh_client` on the smol runtime: runs one command, with
//! stdin, stdout and stderr carried apart, and exits with its status
//! (128+N for a signal, 255 when the connection fails). It accepts any
//! host key: it exists for the interop tests, through `OUR_SSH`.
//!
//! `ssh_client_smol -p PORT -i KEY -l USER [-c CIPHER] [-kex ALG] [-hostkey-alg ALG]
//!  [-pq-only] [-R 0:HOST:PORT] [-rekey-bytes N] [-v] HOST CMD...`

#[path = "../../runtime-std/examples/common/client.rs"]
mod common;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;

use async_io::Async;
use proto_ssh::channel::{ChannelKind, GlobalRequest};
use runtime_smol::ssh::{attach_stdio, splice, Handle, Incoming, SshConnection};

fn main() -> ExitCode {
    common::exit(smol::block_on(run()))
}

/// The first address of `host:port`.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or(format!("{host}: no address"))
}

async fn run() -> Result<Option<u8>, String> {
    let args = common::parse_args()?;
    let config = common::config(&args)?;
    let addr = resolve(&args.host, args.port)?;
    let stream = Async::<TcpStream>::connect(addr)
        .await
        .map_err(|e| format!("connect to {}:{}: {e}", args.host, args.port))?;
    let _ = stream.get_ref().set_nodelay(true);
    let conn = SshConnection::client(stream, config)
        .await
        .map_err(|e| e.to_string())?;
    common::print_algorithms(&args, conn.algorithms());
    if let Some((host, port)) = args.remote.clone() {
        let reply = conn
            .global_request(&GlobalRequest::TcpipForward {
                address: "127.0.0.1".into(),
                port: 0,
            })
            .await
            .map_err(|e| e.to_string())?;
        common::forward_reply(reply)?;
        let target = resolve(&host, port)?;
        smol::spawn(forwarded(conn.clone(), target)).detach();
    }
    let ch = conn.open_session().await.map_err(|e| e.to_string())?;
    if !ch
        .request(&common::start_request(&args), true)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err("the server refused the command".into());
    }
    let status = attach_stdio(&ch).await;
    conn.disconnect("done");
    conn.wait_closed().await;
    Ok(status.map(|s| s.code()))
}

/// Joins each forwarded-tcpip channel to a new connection to `target`.
async fn forwarded(conn: SshConnection, target: SocketAddr) {
    while let Some(inc) = conn.accept().await {
        let Incoming::Channel(p) = inc else { continue };
        if !matches!(p.kind, ChannelKind::ForwardedTcpip { .. }) {
            let _ = p.reject(1, "not allowed");
            continue;
        }
        match Async::<TcpStream>::connect(target).await {
            Ok(s) => {
                if let Ok(ch) = p.accept() {
                    smol::spawn(splice(ch, s)).detach();
                }
            }
            Err(_) => {
                let _ = p.reject(2, "connect failed");
            }
        }
    }
}
