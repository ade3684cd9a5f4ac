//! A small SSH client on proto-ssh and the blocking runtime: runs one
//! command, with stdin, stdout and stderr carried apart, and exits with
//! its status (128+N for a signal, 255 when the connection fails). It
//! accepts any host key: it exists for the interop tests.
//!
//! `ssh_client -p PORT -i KEY -l USER [-c CIPHER] [-kex ALG] [-hostkey-alg ALG] [-pq-only]
//!  [-R 0:HOST:PORT] [-rekey-bytes N] [-v] HOST CMD...`

use std::net::TcpStream;
use std::process::ExitCode;
use std::thread;

use proto_ssh::channel::{ChannelKind, ChannelRequest, GlobalRequest};
use proto_ssh::connection::ClientConfig;
use proto_ssh::kex::negotiate::{CipherAlg, KexAlg};
use proto_ssh::sig::SigAlg;
use proto_ssh::transport::AcceptAnyHostKey;
use runtime_std::ssh::{attach_stdio, splice_tcp, Incoming, SshConnection};
use ssh_key::PrivateKey;

#[derive(Default)]
struct Args {
    port: u16,
    keys: Vec<String>,
    user: String,
    cipher: Option<String>,
    kex: Option<String>,
    host_key_alg: Option<String>,
    pq_only: bool,
    remote: Option<(String, u16)>,
    rekey_bytes: Option<u64>,
    verbose: bool,
    host: String,
    command: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        port: 22,
        user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        ..Args::default()
    };
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') {
            a.host = arg;
            a.command = it.collect();
            break;
        }
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.trim_start_matches('-') {
            "p" => a.port = value()?.parse().map_err(|e| format!("-p: {e}"))?,
            "i" => a.keys.push(value()?),
            "l" => a.user = value()?,
            "c" => a.cipher = Some(value()?),
            "kex" => a.kex = Some(value()?),
            "hostkey-alg" => a.host_key_alg = Some(value()?),
            "pq-only" => a.pq_only = true,
            "rekey-bytes" => {
                a.rekey_bytes = Some(value()?.parse().map_err(|e| format!("-rekey-bytes: {e}"))?)
            }
            "R" => {
                // 0:HOST:PORT: a remote port chosen by the server,
                // forwarded to HOST:PORT here.
                let spec = value()?;
                let mut parts = spec.splitn(3, ':');
                let (Some(_), Some(h), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(format!("-R {spec}: want 0:HOST:PORT"));
                };
                let p = p.parse().map_err(|e| format!("-R port: {e}"))?;
                a.remote = Some((h.to_string(), p));
            }
            "v" => a.verbose = true,
            _ => return Err(format!("unknown flag {arg}")),
        }
    }
    if a.host.is_empty() {
        return Err("usage: ssh_client [-p PORT] [-i KEY] [-l USER] HOST CMD...".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("ssh_client: {e}");
            ExitCode::from(255)
        }
    }
}

fn run() -> Result<u8, String> {
    let args = parse_args()?;
    let mut keys = Vec::new();
    for path in &args.keys {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        keys.push(PrivateKey::from_openssh(text).map_err(|e| format!("{path}: {e}"))?);
    }
    let mut config = ClientConfig::new(&args.user, keys, Box::new(AcceptAnyHostKey));
    if let Some(c) = &args.cipher {
        let alg = CipherAlg::from_name(c).ok_or(format!("unknown cipher {c}"))?;
        config.common.prefs.ciphers = vec![alg];
    }
    if let Some(k) = &args.kex {
        let alg = KexAlg::ALL
            .iter()
            .copied()
            .find(|a| a.name() == k)
            .ok_or(format!("unknown kex {k}"))?;
        config.common.prefs.kex = vec![alg];
    }
    if let Some(h) = &args.host_key_alg {
        let alg = SigAlg::from_name(h).ok_or(format!("unknown host key algorithm {h}"))?;
        config.common.prefs.host_key = vec![alg];
    }
    if args.pq_only {
        config.common.prefs = config.common.prefs.pq_only();
    }
    if let Some(n) = args.rekey_bytes {
        config.common.rekey.bytes = n;
    }
    let stream = TcpStream::connect((args.host.as_str(), args.port))
        .map_err(|e| format!("connect to {}:{}: {e}", args.host, args.port))?;
    let conn = SshConnection::client_tcp(stream, config).map_err(|e| e.to_string())?;
    if args.verbose {
        if let Some([kex, hk, c2s, s2c]) = conn.algorithms() {
            eprintln!("kex: algorithm: {kex}");
            eprintln!("kex: host key algorithm: {hk}");
            // One line per direction, as OpenSSH's -v has it.
            eprintln!("cipher: {c2s}");
            if s2c != c2s {
                eprintln!("cipher: {s2c}");
            }
        }
    }
    if let Some((host, port)) = args.remote.clone() {
        let reply = conn
            .global_request(&GlobalRequest::TcpipForward {
                address: "127.0.0.1".into(),
                port: 0,
            })
            .map_err(|e| e.to_string())?;
        match reply {
            Some(Some(p)) => eprintln!("allocated port {p}"),
            Some(None) => {}
            None => return Err("remote port forwarding refused".into()),
        }
        let conn2 = conn.clone();
        thread::spawn(move || {
            while let Some(inc) = conn2.accept() {
                if let Incoming::Channel(p) = inc {
                    if !matches!(p.kind, ChannelKind::ForwardedTcpip { .. }) {
                        let _ = p.reject(1, "not allowed");
                        continue;
                    }
                    match TcpStream::connect((host.as_str(), port)) {
                        Ok(s) => {
                            if let Ok(ch) = p.accept() {
                                thread::spawn(move || splice_tcp(ch, s));
                            }
                        }
                        Err(_) => {
                            let _ = p.reject(2, "connect failed");
                        }
                    }
                }
            }
        });
    }
    let ch = conn.open_session().map_err(|e| e.to_string())?;
    let command = args.command.join(" ");
    let req = if command.is_empty() {
        ChannelRequest::Shell
    } else {
        ChannelRequest::Exec(command.into_bytes())
    };
    if !ch.request(&req, true).map_err(|e| e.to_string())? {
        return Err("the server refused the command".into());
    }
    let status = attach_stdio(&ch);
    conn.disconnect("done");
    conn.wait_closed();
    Ok(match status {
        Some(s) => s.code(),
        None => 255,
    })
}
