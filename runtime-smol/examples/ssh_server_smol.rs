//! runtime-std's `ssh_server` on the smol runtime: the same command line
//! and behaviour (exec and shell with or without a pty, env,
//! window-change, signal, exit status and signal, tcpip-forward and
//! direct-tcpip), for the interop tests through `OUR_SSHD`.
//!
//! `ssh_server_smol -addr 127.0.0.1:PORT -hostkey FILE -authorized-keys FILE [-pq-only]`

#[path = "../../runtime-std/examples/common/server.rs"]
mod common;

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;

use async_io::Async;
use proto_ssh::channel::ChannelKind;
use runtime_smol::ssh::{session, splice, Channel, Handle, Incoming, RemoteForward, SshConnection};

fn main() -> ExitCode {
    let args = match common::parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ssh_server: {e}");
            return ExitCode::from(2);
        }
    };
    let setup = match common::Setup::new(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("ssh_server: {e}");
            return ExitCode::from(1);
        }
    };
    let listener = match TcpListener::bind(&args.addr).and_then(Async::new) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ssh_server: listen on {}: {e}", args.addr);
            return ExitCode::from(1);
        }
    };
    match listener.get_ref().local_addr() {
        Ok(a) => println!("listening on {a}"),
        Err(e) => {
            eprintln!("ssh_server: {e}");
            return ExitCode::from(1);
        }
    }
    let _ = io::stdout().flush();
    smol::block_on(async {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.get_ref().set_nodelay(true);
            match SshConnection::server(stream, setup.config()) {
                Ok(conn) => smol::spawn(serve(conn)).detach(),
                Err(e) => eprintln!("ssh_server: {peer}: {e}"),
            }
        }
    })
}

/// Serves one connection until it ends.
async fn serve(conn: SshConnection) {
    let mut forwards: Vec<RemoteForward> = Vec::new();
    while let Some(inc) = conn.accept().await {
        match inc {
            Incoming::Channel(p) => match p.kind.clone() {
                ChannelKind::Session => {
                    if let Ok(ch) = p.accept() {
                        smol::spawn(session(ch)).detach();
                    }
                }
                ChannelKind::DirectTcpip { host, port, .. } => {
                    smol::spawn(direct_tcpip(p, host, port)).detach();
                }
                _ => {
                    let _ = p.reject(1, "not allowed");
                }
            },
            Incoming::Global {
                request,
                want_reply,
            } => {
                let (ok, port) = common::global(&mut forwards, request, |address, port| {
                    RemoteForward::start(&conn, address, port)
                });
                if want_reply {
                    let _ = conn.reply_global(ok, port);
                }
            }
        }
    }
}

/// Connects a direct-tcpip channel to its target, or refuses it
/// (RFC 4254 §5.1: connect failed, 2).
async fn direct_tcpip(p: runtime_smol::ssh::PendingChannel, host: String, port: u32) {
    let target = u16::try_from(port)
        .ok()
        .and_then(|port| (host.as_str(), port).to_socket_addrs().ok())
        .and_then(|mut addrs| addrs.next());
    let stream = match target {
        Some(addr) => Async::<TcpStream>::connect(addr).await.ok(),
        None => None,
    };
    match stream {
        Some(stream) => {
            if let Ok(ch) = p.accept() {
                splice(ch, stream).await;
            }
        }
        None => {
            let _ = p.reject(2, "connect failed");
        }
    }
}

impl common::Forward for RemoteForward {
    fn address(&self) -> &str {
        RemoteForward::address(self)
    }
    fn port(&self) -> u32 {
        RemoteForward::port(self)
    }
}

/// Serves one session channel.
async fn session(ch: Channel) {
    let Some(setup) = session::read_setup(&ch, &session::no_subsystems).await else {
        return;
    };
    session::run(&ch, common::command(&setup), setup.pty).await;
}
