//! cpud's daemon role: listen, log clients in, and give each session to
//! a `cpud -remote` child, started with the client's environment and the
//! command split from the exec string as the reference splits it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::thread;

use proto_ssh::channel::{ChannelKind, GlobalRequest};
use proto_ssh::connection::ServerConfig;
use runtime_std::ssh::{session, Channel, Incoming, RemoteForward, SshConnection};
use ssh_key::PrivateKey;

use crate::authorized::Policy;
use crate::net::{Listener, Stream};
use crate::quote;

/// What the daemon serves with.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// The host key.
    pub host_key: PrivateKey,
    /// Who may log in.
    pub policy: Policy,
    /// The program started for each session (normally this cpud).
    pub exe: String,
    /// Debug output on stderr.
    pub debug: bool,
    /// Sessions run as the SSH user's account ([`ACCOUNT_ENV`]).
    pub accounts: bool,
    /// Told when a session starts and ends (decpud counts its tenants).
    pub on_session: Option<SessionHook>,
}

/// A session's start or end, for [`SessionHook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// A session channel was accepted.
    Start,
    /// That session is over (its child exited, or it never started).
    End,
}

/// Called on every [`SessionEvent`], from the session's own thread: it
/// must not block for long. Runtime-independent: a plain callback.
#[derive(Clone)]
pub struct SessionHook(pub Arc<dyn Fn(SessionEvent) + Send + Sync>);

impl std::fmt::Debug for SessionHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionHook")
    }
}

/// Sends [`SessionEvent::End`] when dropped, so that every way out of a
/// session (an early return, a panic unwinding) ends what Start began.
struct SessionGuard(Option<SessionHook>);

impl SessionGuard {
    fn start(hook: Option<SessionHook>) -> Self {
        if let Some(h) = &hook {
            (h.0)(SessionEvent::Start);
        }
        Self(hook)
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        if let Some(h) = &self.0 {
            (h.0)(SessionEvent::End);
        }
    }
}

/// Names the account the session child becomes. Set by the daemon only:
/// a client's variable of that name is always removed.
pub const ACCOUNT_ENV: &str = "CPUD_ACCOUNT";

impl Daemon {
    /// Serves every connection `listener` accepts, one thread each.
    pub fn serve(self, listener: &Listener) -> std::io::Result<()> {
        let this = Arc::new(self);
        loop {
            let (stream, peer) = match listener.accept() {
                Ok(s) => s,
                Err(e) => {
                    this.log(format_args!("accept: {e}"));
                    continue;
                }
            };
            let this = this.clone();
            thread::spawn(move || this.connection(stream, peer));
        }
    }

    fn log(&self, msg: std::fmt::Arguments<'_>) {
        if self.debug {
            eprintln!("cpud: {msg}");
        }
    }

    fn connection(&self, stream: Stream, peer: String) {
        let config = ServerConfig::new(vec![self.host_key.clone()], Box::new(self.policy.clone()));
        let conn = match SshConnection::server(stream, config) {
            Ok(c) => c,
            Err(e) => {
                self.log(format_args!("{peer}: {e}"));
                return;
            }
        };
        self.log(format_args!("{peer}: connected"));
        let mut forwards = Vec::new();
        while let Some(inc) = conn.accept() {
            match inc {
                Incoming::Channel(p) => {
                    if !matches!(p.kind, ChannelKind::Session) {
                        // As the reference: sessions only (no direct-tcpip).
                        let _ = p.reject(1, "only sessions are served");
                        continue;
                    }
                    let Ok(ch) = p.accept() else { continue };
                    let (exe, debug, accounts) = (self.exe.clone(), self.debug, self.accounts);
                    let user = conn.user().unwrap_or_default();
                    let guard = SessionGuard::start(self.on_session.clone());
                    thread::spawn(move || {
                        let _guard = guard;
                        session_child(ch, &exe, debug, accounts, &user);
                    });
                }
                Incoming::Global {
                    request: GlobalRequest::TcpipForward { address, port },
                    want_reply,
                } => {
                    let reply = match RemoteForward::start(&conn, &address, port) {
                        Ok(f) => {
                            let bound = f.port();
                            self.log(format_args!("{peer}: forwarding {address}:{bound}"));
                            forwards.push(f);
                            Some(bound)
                        }
                        Err(e) => {
                            self.log(format_args!("{peer}: tcpip-forward {address}:{port}: {e}"));
                            None
                        }
                    };
                    if want_reply {
                        let _ = conn.reply_global(reply.is_some(), reply);
                    }
                }
                Incoming::Global { want_reply, .. } => {
                    if want_reply {
                        let _ = conn.reply_global(false, None);
                    }
                }
            }
        }
        self.log(format_args!("{peer}: gone"));
    }
}

/// Runs one session as `exe -remote args...`: the args come from the
/// exec string split in POSIX shell style (none for `shell`: the child
/// runs `$SHELL`), the environment is the client's alone when it sent
/// any (as the reference), plus TERM with a pty.
fn session_child(ch: Channel, exe: &str, debug: bool, accounts: bool, user: &str) {
    let Some(setup) = session::read_setup(&ch) else {
        return;
    };
    let mut cmd = Command::new(exe);
    cmd.arg("-remote");
    if debug {
        cmd.arg("-d");
    }
    if let Some(raw) = &setup.command {
        match quote::shlex_split(&String::from_utf8_lossy(raw)) {
            Ok(words) => {
                cmd.args(words);
            }
            Err(e) => {
                let _ = ch.write_stderr(format!("cpud: bad command string: {e}\n").as_bytes());
                // 2, a usage error, as a shell would give.
                let _ = ch.request(&proto_ssh::channel::ChannelRequest::ExitStatus(2), false);
                let _ = ch.send_eof();
                let _ = ch.close();
                return;
            }
        }
    }
    if !setup.env.is_empty() {
        cmd.env_clear();
        for (k, v) in &setup.env {
            cmd.env(k, String::from_utf8_lossy(v).as_ref());
        }
    }
    cmd.env_remove(ACCOUNT_ENV);
    if accounts {
        cmd.env(ACCOUNT_ENV, user);
    }
    if debug {
        let runs_as = if accounts { user } else { "cpud's own user" };
        eprintln!(
            "cpud: session for {user:?}, running as {runs_as}: {:?}",
            cmd.get_args().collect::<Vec<_>>()
        );
    }
    let status = session::run(&ch, cmd, setup.pty);
    if debug {
        eprintln!("cpud: session for {user:?} ended: {status:?}");
    }
}

/// The program to start for sessions: this very executable.
pub fn self_exe() -> String {
    std::env::current_exe()
        .ok()
        .filter(|p| Path::new(p).exists())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/proc/self/exe".into())
}
