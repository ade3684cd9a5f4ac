//! A small SSH server on proto-ssh and the blocking runtime: exec and
//! shell (with or without a pty), env, window-change, signal, exit status
//! and signal, tcpip-forward and direct-tcpip. It runs commands as the
//! user it runs as; it is what the interop tests put in front of OpenSSH,
//! paramiko, asyncssh and ssh-audit.
//!
//! `ssh_server -addr 127.0.0.1:PORT -hostkey FILE -authorized-keys FILE [-pq-only]`

#[path = "common/server.rs"]
mod common;

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;

use proto_ssh::channel::ChannelKind;
use runtime_std::ssh::{
    session, splice_tcp, Channel, Handle, Incoming, RemoteForward, SshConnection,
};

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
    let listener = match TcpListener::bind(&args.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ssh_server: listen on {}: {e}", args.addr);
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("listening on {a}"),
        Err(e) => {
            eprintln!("ssh_server: {e}");
            return ExitCode::from(1);
        }
    }
    let _ = io::stdout().flush();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let config = setup.config();
        thread::spawn(move || {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            match SshConnection::server_tcp(stream, config) {
                Ok(conn) => serve(conn),
                Err(e) => eprintln!("ssh_server: {peer}: {e}"),
            }
        });
    }
    ExitCode::SUCCESS
}

/// Serves one connection until it ends.
fn serve(conn: SshConnection) {
    let mut forwards: Vec<RemoteForward> = Vec::new();
    while let Some(inc) = conn.accept() {
        match inc {
            Incoming::Channel(p) => match p.kind.clone() {
                ChannelKind::Session => {
                    if let Ok(ch) = p.accept() {
                        thread::spawn(move || session(ch));
                    }
                }
                ChannelKind::DirectTcpip { host, port, .. } => {
                    match u16::try_from(port)
                        .ok()
                        .and_then(|port| TcpStream::connect((host.as_str(), port)).ok())
                    {
                        Some(stream) => {
                            if let Ok(ch) = p.accept() {
                                thread::spawn(move || splice_tcp(ch, stream));
                            }
                        }
                        // RFC 4254 §5.1: connect failed (2).
                        None => {
                            let _ = p.reject(2, "connect failed");
                        }
                    }
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

impl common::Forward for RemoteForward {
    fn address(&self) -> &str {
        RemoteForward::address(self)
    }
    fn port(&self) -> u32 {
        RemoteForward::port(self)
    }
}

/// Serves one session channel.
fn session(ch: Channel) {
    let Some(setup) = session::read_setup(&ch, &session::no_subsystems) else {
        return;
    };
    session::run(&ch, common::command(&setup), setup.pty);
}
