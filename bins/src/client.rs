//! One `cpu host cmd...` run: log in to cpud, offer our files over 9P
//! through a reverse forward guarded by a nonce, start the command with
//! our environment and the reference's command string, and carry stdin,
//! stdout, stderr, signals, window size and the exit status.

use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use proto_ssh::channel::{ChannelKind, ChannelRequest, GlobalRequest};
use proto_ssh::connection::{ClientConfig, Keepalive};
use proto_ssh::sig::Signer;
use proto_ssh::transport::{AcceptAnyHostKey, HostKeyCheck};
use rand_core::RngCore;
use runtime_std::export::{ExportOptions, LocalExport};
use runtime_std::pty;
use runtime_std::ssh::state::{Handle, PendingChannel};
use subtle::ConstantTimeEq;

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
    /// Interrupted at the passphrase prompt or while connecting (128 +
    /// SIGINT, as a shell reports a command killed by it).
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
    /// The software of a plain SSH server refused before the login
    /// (see `crate::server_software`).
    pub not_cpud: Arc<Mutex<Option<String>>>,
    /// Bounds the connect, and separately the login (ConnectTimeout).
    pub connect_timeout: Duration,
    /// Keepalive probes (ServerAliveInterval, ServerAliveCountMax).
    pub keepalive: Option<Keepalive>,
}

/// The longest command string an exec request carries: a packet of
/// `PACKET_MAX_SIZE` (OpenSSH's and Go's limit as well) less the
/// request's own fields, the padding and room to spare.
pub const MAX_COMMAND: usize = proto_ssh::packet::PACKET_MAX_SIZE as usize - 128;

/// The connect and login time-out without ssh_config's ConnectTimeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Where the signals of [`forwarded_signals`] go once the command runs:
/// the runtime's way of sending one as a channel request.
pub type Forward = Box<dyn Fn(Signal) + Send>;

/// The forward in place; none while connecting, when a signal ends cpu.
static FORWARD: Mutex<Option<Forward>> = Mutex::new(None);

/// Blocks the forwarded signals and starts, once per process (decpu
/// runs several), the thread that takes them: before the command runs
/// INT, TERM and HUP end cpu at once (whatever the connection waits
/// for), after it they go to [`FORWARD`].
fn take_signals() -> Result<(), Failure> {
    let signals = forwarded_signals();
    signals
        .thread_block()
        .map_err(|e| Failure::new(exit::SSH, format!("blocking signals: {e}")))?;
    *FORWARD.lock().unwrap_or_else(PoisonError::into_inner) = None;
    static START: Once = Once::new();
    START.call_once(|| {
        std::thread::spawn(move || {
            while let Ok(sig) = signals.wait() {
                let forward = FORWARD.lock().unwrap_or_else(PoisonError::into_inner);
                match &*forward {
                    Some(f) => f(sig),
                    None if sig == Signal::SIGWINCH => {}
                    None => {
                        eprintln!("cpu: interrupted ({sig}) before the command started");
                        // No terminal mode to restore yet: the forward is
                        // in place before raw mode.
                        std::process::exit(128 + sig as i32);
                    }
                }
            }
        });
    });
    Ok(())
}

/// Runs the command; returns its exit code.
pub fn run(mut o: Options) -> Result<u8, Failure> {
    take_signals()?;
    debug!(o.debug, "connecting to {} as {}", o.target, o.user);
    let stream = net::dial(&o.target, o.connect_timeout).map_err(|e| {
        let why = if e.kind() == io::ErrorKind::TimedOut {
            format!(
                "no answer within {} s (ConnectTimeout)",
                o.connect_timeout.as_secs()
            )
        } else {
            e.to_string()
        };
        Failure::new(
            exit::CONNECT,
            format!("cannot connect to {}: {why}", o.target),
        )
    })?;
    let keys = std::mem::take(&mut o.keys);
    let check = std::mem::replace(&mut o.host_key_check, Box::new(AcceptAnyHostKey));
    let mut config = ClientConfig::with_signers(&o.user, keys, check);
    config.common.keepalive = o.keepalive;
    let plan = Arc::new(Plan::new(o)?);
    let status = crate::rt::run_client(stream, config, &plan)?;
    debug!(plan.debug, "the command ended: {status}");
    Ok(status.code())
}

/// Everything of a run but the waiting, which is the runtime's
/// (`crate::rt`): what to ask for, in which order, and what each outcome
/// means.
#[derive(Debug)]
pub struct Plan {
    /// Trace each step on stderr.
    pub debug: bool,
    /// Trace every 9P message on stderr.
    pub dbg9p: bool,
    /// The export behind the 9P forward, with its nonce; none with -9p=false.
    pub ninep: Option<(Arc<LocalExport>, String)>,
    /// How long the login (banner, key exchange, authentication) may take.
    pub login_timeout: Duration,
    /// Where we connected, for messages.
    target: String,
    env: Vec<(String, String)>,
    cmd: Vec<String>,
    stdin_tty: bool,
    messages: Arc<Mutex<Vec<String>>>,
    not_cpud: Arc<Mutex<Option<String>>>,
}

impl Plan {
    fn new(o: Options) -> Result<Self, Failure> {
        let mut env: Vec<(String, String)> = std::env::vars().collect();
        // The reference sets this before reading its environment: the
        // remote must put temporary files on its own /tmp.
        set_env(&mut env, "TMPDIR", "/tmp");
        let ninep = if o.ninep {
            let export = LocalExport::new(&o.root, ExportOptions::default()).map_err(|e| {
                Failure::new(
                    exit::USAGE,
                    format!("cannot export {}: {e}", o.root.display()),
                )
            })?;
            let nonce = nonce();
            set_env(&mut env, "CPUNONCE", &nonce);
            Some((Arc::new(export), nonce))
        } else {
            None
        };
        if !o.fstab.is_empty() {
            set_env(&mut env, "CPU_FSTAB", &o.fstab);
            set_env(&mut env, "LC_GLENDA_CPU_FSTAB", &o.fstab);
        }
        let mut cmd = o.cmd;
        if cmd.is_empty() {
            cmd.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()));
        }
        // Said before connecting: sent, it would end the connection (our
        // packet limit, or the server's, as OpenSSH's and Go's).
        let len = quote::remote_command(Some(u16::MAX), &cmd).len();
        if len > MAX_COMMAND {
            return Err(Failure::new(
                exit::USAGE,
                format!(
                    "the command is {len} bytes once quoted, more than one SSH request \
                     carries ({MAX_COMMAND}); pass long lists on stdin or in a file"
                ),
            ));
        }
        Ok(Self {
            debug: o.debug,
            dbg9p: o.dbg9p,
            ninep,
            login_timeout: o.connect_timeout,
            target: o.target.to_string(),
            env,
            cmd,
            stdin_tty: tty::is_tty(io::stdin().as_fd()),
            messages: o.messages,
            not_cpud: o.not_cpud,
        })
    }

    /// Prints what the host key check had to say, then judges the login.
    pub fn logged_in<C: Handle>(&self, login: io::Result<C>) -> Result<C, Failure> {
        if let Ok(mut m) = self.messages.lock() {
            for line in m.drain(..) {
                eprintln!("{line}");
            }
        }
        let refused = self
            .not_cpud
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(software) = refused {
            return Err(Failure::new(
                exit::SSH,
                format!(
                    "{} is not running cpud but {software} (use -ssh for plain ssh)",
                    self.target
                ),
            ));
        }
        let conn = login.map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                Failure::new(
                    exit::SSH,
                    format!(
                        "{}: no SSH login within {} s (ConnectTimeout); is cpud running there?",
                        self.target,
                        self.login_timeout.as_secs()
                    ),
                )
            } else {
                login_failure(&e)
            }
        })?;
        if let Some([kex, hk, c, _]) = conn.algorithms() {
            debug!(self.debug, "logged in: {kex}, {hk}, {c}");
        }
        Ok(conn)
    }

    /// The reverse forwards to ask for, in order, until one is granted
    /// (127.0.0.1, then ::1, as the reference).
    pub fn forward_requests() -> [GlobalRequest; 2] {
        ["127.0.0.1", "::1"].map(|address| GlobalRequest::TcpipForward {
            address: address.into(),
            port: 0,
        })
    }

    /// Judges one `tcpip-forward` reply: `Ok(Some(port))` when granted,
    /// `Ok(None)` to try the next address.
    pub fn forward_reply(reply: io::Result<Option<Option<u32>>>) -> Result<Option<u16>, Failure> {
        match reply {
            Ok(Some(Some(p))) => Ok(u16::try_from(p).ok()),
            Ok(_) => Ok(None),
            Err(e) => Err(Failure::new(exit::SSH, format!("tcpip-forward: {e}"))),
        }
    }

    /// No forward was granted.
    pub fn no_forward() -> Failure {
        Failure::new(exit::SSH, "the server refused to forward a port for 9P")
    }

    /// The requests before the command, none wanting a reply: pty-req
    /// when stdin is a terminal, then our environment. Refusals of env do
    /// not matter (the reference ignores them too); no reply is asked, so
    /// that dozens of variables cost no round trip.
    pub fn setup_requests(&self) -> Vec<ChannelRequest> {
        let mut reqs = Vec::with_capacity(self.env.len() + 1);
        if self.stdin_tty {
            let term = std::env::var("TERM").unwrap_or_else(|_| "ansi".into());
            let size = pty::window_size(io::stdin().as_fd()).unwrap_or(pty::WinSize {
                cols: 80,
                rows: 40,
                ..pty::WinSize::default()
            });
            reqs.push(ChannelRequest::PtyReq {
                term,
                cols: size.cols.into(),
                rows: size.rows.into(),
                width_px: size.width_px.into(),
                height_px: size.height_px.into(),
                // ECHO on; the rest as the remote defaults them.
                modes: vec![53, 0, 0, 0, 1, 0],
            });
        }
        for (k, v) in &self.env {
            reqs.push(ChannelRequest::Env {
                name: k.clone(),
                value: v.clone().into_bytes(),
            });
        }
        reqs
    }

    /// The exec request, with the reference's command string.
    pub fn exec_request(&self, port9p: Option<u16>) -> ChannelRequest {
        if let Some(p) = port9p {
            debug!(self.debug, "9P offered on the server's 127.0.0.1:{p}");
        }
        let command = quote::remote_command(port9p, &self.cmd);
        debug!(self.debug, "exec {command}");
        ChannelRequest::Exec(command.into_bytes())
    }

    /// From now on signals go to `forward` instead of ending cpu; called
    /// once the exec request is answered, before raw mode.
    pub fn forward_signals(&self, forward: Forward) {
        *FORWARD.lock().unwrap_or_else(PoisonError::into_inner) = Some(forward);
    }

    /// The failure for a connection that ended without the command's
    /// status, with the connection's reason (unanswered keepalives, a
    /// disconnect).
    pub fn no_status<C: Handle>(&self, conn: &C) -> Failure {
        let why = conn
            .with_state(|st| st.closed_error())
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        Failure::new(
            exit::SSH,
            format!(
                "the connection to {} ended without the command's status{why}",
                self.target
            ),
        )
    }

    /// Judges the exec reply; with a terminal, enters raw mode (left when
    /// the guard drops).
    pub fn started(&self, accepted: io::Result<bool>) -> Result<Option<RawMode>, Failure> {
        let accepted = accepted.map_err(|e| step_failed("exec request", e))?;
        if !accepted {
            return Err(Failure::new(
                exit::SSH,
                "the server refused to run the command",
            ));
        }
        if self.stdin_tty {
            RawMode::enter().map_err(|e| Failure::new(exit::SSH, format!("raw mode: {e}")))
        } else {
            Ok(None)
        }
    }

    /// Takes a channel the server opens when it may carry 9P (the
    /// reverse forward's); refuses any other.
    pub fn accept_9p<H: Handle>(p: PendingChannel<H>) -> Option<H::Channel> {
        if !matches!(p.kind, ChannelKind::ForwardedTcpip { .. }) {
            let _ = p.reject(1, "only the 9P forward is served");
            return None;
        }
        p.accept().ok()
    }

    /// Checks the 32 bytes a 9P connection starts with against our nonce
    /// (in constant time), and says so when they differ.
    pub fn nonce_ok(&self, got: &[u8; NONCE_LEN]) -> bool {
        let Some((_, nonce)) = &self.ninep else {
            return false;
        };
        let ok = bool::from(got.ct_eq(nonce.as_bytes()));
        if ok {
            crate::debug!(self.debug, "serving 9P");
        } else {
            eprintln!("cpu: a 9P connection with a wrong nonce was refused");
        }
        ok
    }

    /// Logs how a 9P service ended.
    pub fn served_9p(&self, r: io::Result<()>) {
        if let Err(e) = r {
            crate::debug!(self.debug, "9P: {e}");
        }
    }
}

/// A step of the session that failed on the connection.
pub fn step_failed(what: &str, e: io::Error) -> Failure {
    Failure::new(exit::SSH, format!("{what}: {e}"))
}

/// The length of the nonce a 9P connection starts with (hex of 16 bytes).
pub const NONCE_LEN: usize = 32;

/// What a forwarded signal becomes: `signal` for INT, TERM and HUP, and
/// `window-change` (with the terminal's size now) for WINCH.
pub fn signal_request(sig: Signal) -> Option<ChannelRequest> {
    Some(match sig {
        Signal::SIGWINCH => {
            let s = pty::window_size(io::stdin().as_fd())?;
            ChannelRequest::WindowChange {
                cols: s.cols.into(),
                rows: s.rows.into(),
                width_px: s.width_px.into(),
                height_px: s.height_px.into(),
            }
        }
        Signal::SIGINT => ChannelRequest::Signal("INT".into()),
        Signal::SIGTERM => ChannelRequest::Signal("TERM".into()),
        Signal::SIGHUP => ChannelRequest::Signal("HUP".into()),
        _ => return None,
    })
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
