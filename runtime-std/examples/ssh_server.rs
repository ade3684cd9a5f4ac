//! A small SSH server on proto-ssh and the blocking runtime: exec and
//! shell (with or without a pty), env, window-change, signal, exit status
//! and signal, tcpip-forward and direct-tcpip. It runs commands as the
//! user it runs as; it is what the interop tests put in front of OpenSSH,
//! paramiko, asyncssh and ssh-audit.
//!
//! `ssh_server -addr 127.0.0.1:PORT -hostkey FILE -authorized-keys FILE [-pq-only]`

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use proto_ssh::auth::AuthPolicy;
use proto_ssh::channel::{ChannelKind, ChannelRequest, GlobalRequest};
use proto_ssh::connection::ServerConfig;
use runtime_std::pty::{self, WinSize};
use runtime_std::ssh::{
    signal_name, splice_tcp, write_all, Channel, Incoming, RemoteForward, SshConnection, IO_BUF,
};
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

/// Serves one session channel: requests until exec or shell, then the
/// command, then its exit status.
fn session(ch: Channel) {
    let mut env: Vec<(String, Vec<u8>)> = Vec::new();
    let mut pty_size: Option<(String, WinSize)> = None;
    let command = loop {
        let Some((req, want_reply)) = ch.next_request() else {
            return;
        };
        let ok = match req {
            ChannelRequest::Env { name, value } => {
                env.push((name, value));
                true
            }
            ChannelRequest::PtyReq {
                term,
                cols,
                rows,
                width_px,
                height_px,
                ..
            } => {
                pty_size = Some((term, WinSize::from_ssh(cols, rows, width_px, height_px)));
                true
            }
            ChannelRequest::Exec(cmd) => {
                if want_reply {
                    let _ = ch.reply(true);
                }
                break Some(String::from_utf8_lossy(&cmd).into_owned());
            }
            ChannelRequest::Shell => {
                if want_reply {
                    let _ = ch.reply(true);
                }
                break None;
            }
            _ => false,
        };
        if want_reply {
            let _ = ch.reply(ok);
        }
    };
    let mut cmd = Command::new("/bin/sh");
    match &command {
        Some(c) => cmd.arg("-c").arg(c),
        None => cmd.arg("-l"),
    };
    for (k, v) in &env {
        cmd.env(k, String::from_utf8_lossy(v).as_ref());
    }
    let result = match pty_size {
        Some((term, size)) => {
            cmd.env("TERM", term);
            run_pty(&ch, cmd, size)
        }
        None => run_pipes(&ch, cmd),
    };
    let status = match result {
        Ok(s) => Some(s),
        Err(e) => {
            let _ = write_all(&ch, format!("ssh_server: {e}\r\n").as_bytes());
            None
        }
    };
    let req = match status.and_then(|s| s.signal().map(|n| (n, s.core_dumped()))) {
        Some((n, core)) => ChannelRequest::ExitSignal {
            signal: signal_name(n).unwrap_or("KILL").into(),
            core_dumped: core,
            message: String::new(),
            lang: String::new(),
        },
        None => ChannelRequest::ExitStatus(
            status
                .and_then(|s| s.code())
                .map_or(127, |c| u32::try_from(c).unwrap_or(255)),
        ),
    };
    let _ = ch.request(&req, false);
    let _ = ch.send_eof();
    let _ = ch.close();
}

/// Forwards window-change and signal requests while the command runs.
fn control(ch: Channel, child: Arc<Mutex<Option<u32>>>, master: Option<std::fs::File>) {
    while let Some((req, want_reply)) = ch.next_request() {
        let ok = match req {
            ChannelRequest::WindowChange {
                cols,
                rows,
                width_px,
                height_px,
            } => master.as_ref().is_some_and(|m| {
                pty::resize(m, WinSize::from_ssh(cols, rows, width_px, height_px)).is_ok()
            }),
            ChannelRequest::Signal(name) => {
                let pid = child.lock().ok().and_then(|p| *p);
                let sig = runtime_std::ssh::signal_number(&name);
                match (pid, nix::sys::signal::Signal::try_from(sig)) {
                    (Some(pid), Ok(sig)) => {
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).is_ok()
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if want_reply {
            let _ = ch.reply(ok);
        }
    }
}

fn run_pipes(ch: &Channel, mut cmd: Command) -> io::Result<std::process::ExitStatus> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child: Child = cmd.spawn()?;
    let pid = Arc::new(Mutex::new(Some(child.id())));
    {
        let (ch, pid) = (ch.clone(), pid.clone());
        thread::spawn(move || control(ch, pid, None));
    }
    if let Some(mut stdin) = child.stdin.take() {
        let ch = ch.clone();
        thread::spawn(move || {
            let mut buf = vec![0u8; IO_BUF];
            while let Ok(n) = ch.read(&mut buf) {
                if n == 0 || stdin.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    let err_thread = child.stderr.take().map(|mut e| {
        let ch = ch.clone();
        thread::spawn(move || copy_out(&mut e, &ch, true))
    });
    if let Some(mut out) = child.stdout.take() {
        copy_out(&mut out, ch, false);
    }
    if let Some(t) = err_thread {
        let _ = t.join();
    }
    let status = child.wait()?;
    if let Ok(mut p) = pid.lock() {
        *p = None;
    }
    Ok(status)
}

fn copy_out(from: &mut impl Read, ch: &Channel, stderr: bool) {
    let mut buf = vec![0u8; IO_BUF];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        while !data.is_empty() {
            let r = if stderr {
                ch.write_stderr(data)
            } else {
                ch.write(data)
            };
            match r {
                Ok(k) => data = &data[k..],
                Err(_) => return,
            }
        }
    }
}

fn run_pty(ch: &Channel, cmd: Command, size: WinSize) -> io::Result<std::process::ExitStatus> {
    let (mut child, master) = pty::spawn(cmd, size)?;
    let pid = Arc::new(Mutex::new(Some(child.id())));
    {
        let (ch, pid, m) = (ch.clone(), pid.clone(), master.try_clone()?);
        thread::spawn(move || control(ch, pid, Some(m)));
    }
    {
        let ch = ch.clone();
        let mut to_pty = master.try_clone()?;
        thread::spawn(move || {
            let mut buf = vec![0u8; IO_BUF];
            while let Ok(n) = ch.read(&mut buf) {
                if n == 0 || to_pty.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    // The master reads EIO once the last process holding the slave is
    // gone: that ends the output.
    let mut from_pty = master;
    copy_out(&mut from_pty, ch, false);
    let status = child.wait()?;
    if let Ok(mut p) = pid.lock() {
        *p = None;
    }
    Ok(status)
}
