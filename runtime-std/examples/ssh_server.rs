//! A small SSH server on proto-ssh and the blocking runtime: exec and
//! shell (with or without a pty), env, window-change, signal, exit status
//! and signal, tcpip-forward and direct-tcpip. It runs commands as the
//! user it runs as; it is what the interop tests put in front of OpenSSH,
//! paramiko, asyncssh and ssh-audit.
//!
//! `ssh_server -addr 127.0.0.1:PORT -hostkey FILE -authorized-keys FILE [-pq-only]`

use std::collections::HashSet;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::thread;

use proto_ssh::auth::AuthPolicy;
use proto_ssh::channel::{ChannelKind, GlobalRequest};
use proto_ssh::connection::ServerConfig;
use runtime_std::ssh::{session, splice_tcp, Channel, Incoming, RemoteForward, SshConnection};
use ssh_key::public::KeyData;
use ssh_key::{PrivateKey, PublicKey};

struct Args {
    addr: String,
    hostkey: String,
    authorized: String,
    pq_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut a = Args {
        addr: "127.0.0.1:0".into(),
        hostkey: String::new(),
        authorized: String::new(),
        pq_only: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.trim_start_matches('-') {
            "addr" => a.addr = value()?,
            "hostkey" => a.hostkey = value()?,
            "authorized-keys" => a.authorized = value()?,
            "pq-only" => a.pq_only = true,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.hostkey.is_empty() || a.authorized.is_empty() {
        return Err("usage: ssh_server -addr A -hostkey F -authorized-keys F [-pq-only]".into());
    }
    Ok(a)
}

/// Keys from an authorized_keys file (options before the key are not
/// supported by this example).
struct Authorized(HashSet<KeyData>);

impl AuthPolicy for Authorized {
    fn allow_key(&mut self, _user: &str, key: &KeyData) -> bool {
        self.0.contains(key)
    }
}

fn load(args: &Args) -> Result<(PrivateKey, Authorized), String> {
    let text =
        std::fs::read_to_string(&args.hostkey).map_err(|e| format!("{}: {e}", args.hostkey))?;
    let host = PrivateKey::from_openssh(text).map_err(|e| format!("{}: {e}", args.hostkey))?;
    let text = std::fs::read_to_string(&args.authorized)
        .map_err(|e| format!("{}: {e}", args.authorized))?;
    let mut keys = HashSet::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = PublicKey::from_openssh(line).map_err(|e| format!("{}: {e}", args.authorized))?;
        keys.insert(key.key_data().clone());
    }
    Ok((host, Authorized(keys)))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ssh_server: {e}");
            return ExitCode::from(2);
        }
    };
    let (host, policy) = match load(&args) {
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
    let keys = Arc::new(policy.0);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let mut config =
            ServerConfig::new(vec![host.clone()], Box::new(Authorized((*keys).clone())));
        if args.pq_only {
            config.common.prefs = config.common.prefs.pq_only();
        }
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
                let (ok, port) = match request {
                    GlobalRequest::TcpipForward { address, port } => {
                        match RemoteForward::start(&conn, &address, port) {
                            Ok(f) => {
                                let bound = f.port();
                                forwards.push(f);
                                (true, (port == 0).then_some(bound))
                            }
                            Err(e) => {
                                eprintln!("ssh_server: tcpip-forward {address}:{port}: {e}");
                                (false, None)
                            }
                        }
                    }
                    GlobalRequest::CancelTcpipForward { address, port } => {
                        let before = forwards.len();
                        forwards.retain(|f| !(f.address() == address && f.port() == port));
                        (forwards.len() < before, None)
                    }
                    _ => (false, None),
                };
                if want_reply {
                    let _ = conn.reply_global(ok, port);
                }
            }
        }
    }
}

/// Serves one session channel: the command runs with `/bin/sh -c` (a
/// login shell for `shell`), with the client's environment.
fn session(ch: Channel) {
    let Some(setup) = session::read_setup(&ch) else {
        return;
    };
    let mut cmd = Command::new("/bin/sh");
    match &setup.command {
        Some(c) => cmd.arg("-c").arg(String::from_utf8_lossy(c).as_ref()),
        None => cmd.arg("-l"),
    };
    for (k, v) in &setup.env {
        cmd.env(k, String::from_utf8_lossy(v).as_ref());
    }
    session::run(&ch, cmd, setup.pty);
}
