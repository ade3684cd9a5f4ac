//! One `cpu host cmd...` run: log in to cpud, offer our files over 9P
//! through a reverse forward guarded by a nonce, start the command with
//! our environment and the reference's command string, and carry stdin,
//! stdout, stderr, signals, window size and the exit status.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

use nix::sys::signal::{SigSet, Signal};
use proto_ssh::channel::{ChannelKind, ChannelRequest, GlobalRequest};
use proto_ssh::connection::ClientConfig;
use proto_ssh::sig::Signer;
use proto_ssh::transport::{AcceptAnyHostKey, HostKeyCheck};
use rand_core::RngCore;
use runtime_std::export::{ExportOptions, LocalExport};
use runtime_std::p9server::{self, ServeConfig};
use runtime_std::pty;
use runtime_std::ssh::{attach_stdio, Channel, Incoming, PendingChannel, SshConnection};
use subtle::ConstantTimeEq;

use crate::dbg9p::Tap;
use crate::debug;
use crate::net::{self, Target};
use crate::quote;
use crate::tty::{self, RawMode};

/// Exit codes of `cpu` itself (the remote command's status passes
/// through unchanged; 128+N for a signal).
pub mod exit {
    /// The command line was wrong.
    pub const USAGE: u8 = 2;
    /// A remote mount of our files failed (cpud's session child).
    pub const MOUNT: u8 = 251;
    /// The server's host key was refused.
    pub const HOST_KEY: u8 = 252;
    /// No key was accepted.
    pub const AUTH: u8 = 253;
    /// The server could not be reached.
    pub const CONNECT: u8 = 254;
    /// Interrupted at the passphrase prompt (128 + SIGINT, as a shell
    /// reports a command killed by it).
    pub const INTERRUPTED: u8 = 130;
    /// Any other failure of the connection.
    pub const SSH: u8 = 255;
}

/// Why a run failed before the command's status was known.
#[derive(Debug)]
pub struct Failure {
    /// The one line to print.
    pub message: String,
    /// The exit code.
    pub code: u8,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }
}

/// What a run needs, resolved from flags and ssh_config.
pub struct Options {
    /// Where cpud is.
    pub target: Target,
    /// Remote user name.
    pub user: String,
    /// Keys to offer, in order: files and ssh-agent keys.
    pub keys: Vec<Box<dyn Signer + Send>>,
    /// The host key check.
    pub host_key_check: Box<dyn HostKeyCheck + Send>,
    /// Serve our files over 9P.
    pub ninep: bool,
    /// The exported root.
    pub root: PathBuf,
    /// CPU_FSTAB to send ("" to send none).
    pub fstab: String,
    /// The command; empty runs $SHELL (or /bin/sh) with a pty.
    pub cmd: Vec<String>,
    /// Trace each step on stderr.
    pub debug: bool,
    /// Trace every 9P message on stderr.
    pub dbg9p: bool,
    /// What the host key check has to say (a key learned, a key changed),
    /// printed once the login is over.
    pub messages: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("target", &self.target)
            .field("user", &self.user)
            .field("keys", &self.keys.len())
            .field("ninep", &self.ninep)
            .field("root", &self.root)
            .field("cmd", &self.cmd)
            .finish_non_exhaustive()
    }
}

/// The signals cpu passes on instead of dying of them. They must be
/// blocked before any thread starts, so that only the signal thread
/// takes them.
fn forwarded_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    set
}

/// Runs the command; returns its exit code.
pub fn run(mut o: Options) -> Result<u8, Failure> {
    let signals = forwarded_signals();
    signals
        .thread_block()
        .map_err(|e| Failure::new(exit::SSH, format!("blocking signals: {e}")))?;
    debug!(o.debug, "connecting to {} as {}", o.target, o.user);
    let stream = net::dial(&o.target).map_err(|e| {
        Failure::new(
            exit::CONNECT,
            format!("cannot connect to {}: {e}", o.target),
        )
    })?;
    let keys = std::mem::take(&mut o.keys);
    let check = std::mem::replace(&mut o.host_key_check, Box::new(AcceptAnyHostKey));
    let config = ClientConfig::with_signers(&o.user, keys, check);
    let login = SshConnection::client(stream, config);
    if let Ok(mut m) = o.messages.lock() {
        for line in m.drain(..) {
            eprintln!("{line}");
        }
    }
    let conn = login.map_err(|e| login_failure(&e))?;
    if let Some([kex, hk, c, _]) = conn.algorithms() {
        debug!(o.debug, "logged in: {kex}, {hk}, {c}");
    }

    let mut env: Vec<(String, String)> = std::env::vars().collect();
    // The reference sets this before reading its environment: the remote
    // must put temporary files on its own /tmp.
    set_env(&mut env, "TMPDIR", "/tmp");
    let mut port9p = None;
    if o.ninep {
        let nonce = nonce();
        let port = forward_9p(&conn, &o, &nonce)?;
        debug!(o.debug, "9P offered on the server's 127.0.0.1:{port}");
        set_env(&mut env, "CPUNONCE", &nonce);
        port9p = Some(port);
    }
    if !o.fstab.is_empty() {
        set_env(&mut env, "CPU_FSTAB", &o.fstab);
        set_env(&mut env, "LC_GLENDA_CPU_FSTAB", &o.fstab);
    }

    let ch = conn
        .open_session()
        .map_err(|e| Failure::new(exit::SSH, format!("opening a session: {e}")))?;
    let stdin_tty = tty::is_tty(io::stdin().as_fd());
    if stdin_tty {
        let term = std::env::var("TERM").unwrap_or_else(|_| "ansi".into());
        let size = pty::window_size(io::stdin().as_fd()).unwrap_or(pty::WinSize {
            cols: 80,
            rows: 40,
            ..pty::WinSize::default()
        });
        let req = ChannelRequest::PtyReq {
            term,
            cols: size.cols.into(),
            rows: size.rows.into(),
            width_px: size.width_px.into(),
            height_px: size.height_px.into(),
            // ECHO on; the rest as the remote defaults them.
            modes: vec![53, 0, 0, 0, 1, 0],
        };
        ch.request(&req, false)
            .map_err(|e| Failure::new(exit::SSH, format!("pty request: {e}")))?;
    }
    for (k, v) in &env {
        let req = ChannelRequest::Env {
            name: k.clone(),
            value: v.clone().into_bytes(),
        };
        // Refusals do not matter (the reference ignores them too); no
        // reply is asked, so that dozens of variables cost no round trip.
        ch.request(&req, false)
            .map_err(|e| Failure::new(exit::SSH, format!("env request: {e}")))?;
    }
    let mut cmd = o.cmd.clone();
    if cmd.is_empty() {
        cmd.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()));
    }
    let command = quote::remote_command(port9p, &cmd);
    debug!(o.debug, "exec {command:?}");
    let accepted = ch
        .request(&ChannelRequest::Exec(command.into_bytes()), true)
        .map_err(|e| Failure::new(exit::SSH, format!("exec request: {e}")))?;
    if !accepted {
        return Err(Failure::new(
            exit::SSH,
            "the server refused to run the command",
        ));
    }

    let raw = if stdin_tty {
        RawMode::enter().map_err(|e| Failure::new(exit::SSH, format!("raw mode: {e}")))?
    } else {
        None
    };
    spawn_signal_thread(signals, ch.clone());
    let status = attach_stdio(&ch);
    drop(raw);
    debug!(o.debug, "the command ended: {status:?}");
    conn.disconnect("done");
    match status {
        Some(s) => Ok(s.code()),
        None => Err(Failure::new(
            exit::SSH,
            "the connection ended without the command's status",
        )),
    }
}

fn login_failure(e: &io::Error) -> Failure {
    let text = e.to_string();
    if e.kind() == io::ErrorKind::PermissionDenied {
        Failure::new(exit::AUTH, text)
    } else if text.contains("host key") {
        Failure::new(exit::HOST_KEY, text)
    } else {
        Failure::new(exit::SSH, format!("login failed: {text}"))
    }
}

fn set_env(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    env.retain(|(name, _)| name != k);
    env.push((k.into(), v.into()));
}

/// 16 random bytes as 32 hex characters, as the reference makes it.
fn nonce() -> String {
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Asks for the reverse forward (127.0.0.1, then ::1, as the reference)
/// and serves 9P on each connection that comes back with the nonce.
fn forward_9p(conn: &SshConnection, o: &Options, nonce: &str) -> Result<u16, Failure> {
    let export = LocalExport::new(&o.root, ExportOptions::default()).map_err(|e| {
        Failure::new(
            exit::USAGE,
            format!("cannot export {}: {e}", o.root.display()),
        )
    })?;
    let export = Arc::new(export);
    let mut port = None;
    for address in ["127.0.0.1", "::1"] {
        let req = GlobalRequest::TcpipForward {
            address: address.into(),
            port: 0,
        };
        match conn.global_request(&req) {
            Ok(Some(Some(p))) => {
                port = u16::try_from(p).ok();
                break;
            }
            Ok(_) => continue,
            Err(e) => return Err(Failure::new(exit::SSH, format!("tcpip-forward: {e}"))),
        }
    }
    let port =
        port.ok_or_else(|| Failure::new(exit::SSH, "the server refused to forward a port for 9P"))?;
    let (conn, nonce, debug, dbg9p) = (conn.clone(), nonce.to_string(), o.debug, o.dbg9p);
    thread::spawn(move || {
        while let Some(inc) = conn.accept() {
            let Incoming::Channel(p) = inc else { continue };
            let export = export.clone();
            let nonce = nonce.clone();
            thread::spawn(move || serve_9p(p, export, &nonce, debug, dbg9p));
        }
    });
    Ok(port)
}

fn serve_9p(p: PendingChannel, export: Arc<LocalExport>, nonce: &str, debug: bool, dbg9p: bool) {
    if !matches!(p.kind, ChannelKind::ForwardedTcpip { .. }) {
        let _ = p.reject(1, "only the 9P forward is served");
        return;
    }
    let Ok(ch) = p.accept() else { return };
    let mut got = [0u8; 32];
    if ch.reader().read_exact(&mut got).is_err() {
        return;
    }
    if !bool::from(got.ct_eq(nonce.as_bytes())) {
        eprintln!("cpu: a 9P connection with a wrong nonce was refused");
        let _ = ch.close();
        return;
    }
    crate::debug!(debug, "serving 9P");
    let config = ServeConfig::default();
    let r = if dbg9p {
        let report = |l: &str| crate::log::line(format_args!("9p {l}"));
        let reader = Tap::new(ch.reader(), "<-", report);
        let writer = Tap::new(ch.writer(), "->", report);
        p9server::serve(export, reader, writer, config)
    } else {
        p9server::serve(export, ch.reader(), ch.writer(), config)
    };
    if let Err(e) = r {
        crate::debug!(debug, "9P: {e}");
    }
    let _ = ch.send_eof();
    let _ = ch.close();
}

/// Passes INT, TERM and HUP on as `signal`, and window size changes as
/// `window-change`.
fn spawn_signal_thread(set: SigSet, ch: Channel) {
    thread::spawn(move || loop {
        let Ok(sig) = set.wait() else { return };
        let req = match sig {
            Signal::SIGWINCH => match pty::window_size(io::stdin().as_fd()) {
                Some(s) => ChannelRequest::WindowChange {
                    cols: s.cols.into(),
                    rows: s.rows.into(),
                    width_px: s.width_px.into(),
                    height_px: s.height_px.into(),
                },
                None => continue,
            },
            Signal::SIGINT => ChannelRequest::Signal("INT".into()),
            Signal::SIGTERM => ChannelRequest::Signal("TERM".into()),
            Signal::SIGHUP => ChannelRequest::Signal("HUP".into()),
            _ => continue,
        };
        if ch.request(&req, false).is_err() {
            return;
        }
    });
}
