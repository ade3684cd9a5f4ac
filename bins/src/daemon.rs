//! cpud's daemon role: listen, log clients in, and give each session to
//! a `cpud -remote` child, started with the client's environment and the
//! command split from the exec string as the reference splits it.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use proto_ssh::channel::{ChannelKind, GlobalRequest};
use proto_ssh::connection::ServerConfig;
use runtime_std::ssh::session::SessionSetup;
use runtime_std::ssh::state::{Handle, Incoming, PendingChannel};
use ssh_key::PrivateKey;

use crate::authorized::{Grant, Login, Policy};
use crate::keyopts::KeyOptions;
use crate::net::Listener;
use crate::{oplog, quote};

/// What the daemon serves with.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// The host key.
    pub host_key: PrivateKey,
    /// Who may log in.
    pub policy: Policy,
    /// `-permitUserEnvironment`: authorized_keys `environment=` is honoured.
    pub permit_env: bool,
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
pub(crate) struct SessionGuard(Option<SessionHook>);

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
    /// Serves every connection `listener` accepts, on the runtime the
    /// binary was built with.
    pub fn serve(self, listener: &Listener) -> std::io::Result<()> {
        crate::rt::serve_daemon(Arc::new(self), listener)
    }

    pub(crate) fn log(&self, msg: std::fmt::Arguments<'_>) {
        if self.debug {
            oplog::daemon(msg);
        }
    }

    /// The SSH server's configuration for a connection from `peer`, and
    /// the handle on the options of the key it logs in with.
    pub(crate) fn server_config(&self, peer: &str) -> (ServerConfig, Grant) {
        let (login, grant) = Login::new(self.policy.clone(), peer, self.permit_env);
        let config = ServerConfig::new(vec![self.host_key.clone()], Box::new(login));
        (config, grant)
    }

    /// Acts on one thing a client asks for. A session channel is
    /// accepted and returned, with the user and the session's count, for
    /// the runtime to run; other channels are refused (as the reference:
    /// no direct-tcpip). A `tcpip-forward` is started by `forward` (the
    /// runtime's listener and its port) and kept in `forwards` for the
    /// connection's life, unless the key's `no-port-forwarding` refuses
    /// it; other global requests are refused.
    pub(crate) fn dispatch<H: Handle, F>(
        &self,
        conn: &H,
        inc: Incoming<PendingChannel<H>>,
        peer: &str,
        grant: &Grant,
        forwards: &mut Vec<F>,
        forward: impl FnOnce(&H, &str, u32) -> std::io::Result<(F, u32)>,
    ) -> Option<(H::Channel, String, SessionGuard)> {
        let (bound, want_reply) = match inc {
            Incoming::Channel(p) => {
                if !matches!(p.kind, ChannelKind::Session) {
                    let _ = p.reject(1, "only sessions are served");
                    return None;
                }
                let ch = p.accept().ok()?;
                return Some((ch, conn.user().unwrap_or_default(), self.session_started()));
            }
            Incoming::Global {
                request: GlobalRequest::TcpipForward { address, port },
                want_reply,
            } if grant.options().no_port_forwarding => {
                oplog::auth(format_args!(
                    "{peer}: tcpip-forward {address}:{port} refused: the key has no-port-forwarding (a cpu session needs it for 9P)"
                ));
                (None, want_reply)
            }
            Incoming::Global {
                request: GlobalRequest::TcpipForward { address, port },
                want_reply,
            } => match forward(conn, &address, port) {
                Ok((f, bound)) => {
                    self.log(format_args!("{peer}: forwarding {address}:{bound}"));
                    forwards.push(f);
                    (Some(bound), want_reply)
                }
                Err(e) => {
                    self.log(format_args!("{peer}: tcpip-forward {address}:{port}: {e}"));
                    (None, want_reply)
                }
            },
            Incoming::Global { want_reply, .. } => (None, want_reply),
        };
        if want_reply {
            let _ = conn.reply_global(bound.is_some(), bound);
        }
        None
    }

    /// What a session's setup starts from: `no-pty` refuses pty-req.
    pub(crate) fn session_setup(&self, key: &KeyOptions) -> SessionSetup {
        SessionSetup {
            no_pty: key.no_pty,
            ..SessionSetup::default()
        }
    }

    /// Counts a session in (decpud's tenants); dropping the guard counts
    /// it out, whichever way the session ends.
    fn session_started(&self) -> SessionGuard {
        SessionGuard::start(self.on_session.clone())
    }

    /// The session child for `setup`: `exe -remote args...`, the args
    /// from the exec string split in POSIX shell style (none for `shell`:
    /// the child runs `$SHELL`), the environment the client's alone when
    /// it sent any (as the reference), plus TERM with a pty. An exec
    /// string that does not split is the error line to send the client,
    /// whose command then ends with [`BAD_COMMAND_STATUS`]. The key's
    /// `command=` replaces the client's, which goes in
    /// SSH_ORIGINAL_COMMAND, and its `environment=` is added.
    pub(crate) fn session_command(
        &self,
        setup: &SessionSetup,
        user: &str,
        key: &KeyOptions,
    ) -> Result<Command, String> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("-remote");
        if self.debug {
            cmd.arg("-d");
        }
        let forced = key.command.as_ref().map(|c| c.as_bytes().to_vec());
        if let Some(raw) = forced.as_ref().or(setup.command.as_ref()) {
            let words = quote::shlex_split(&String::from_utf8_lossy(raw))
                .map_err(|e| format!("cpud: bad command string: {e}\n"))?;
            cmd.args(words);
        }
        if !setup.env.is_empty() {
            cmd.env_clear();
            for (k, v) in &setup.env {
                cmd.env(k, String::from_utf8_lossy(v).as_ref());
            }
        }
        key_environment(&mut cmd, setup, key);
        cmd.env_remove(ACCOUNT_ENV);
        if self.accounts {
            cmd.env(ACCOUNT_ENV, user);
        }
        if self.debug {
            let runs_as = if self.accounts {
                user
            } else {
                "cpud's own user"
            };
            let mut args = String::new();
            for a in cmd.get_args() {
                args.push(' ');
                args.push_str(&a.to_string_lossy());
            }
            oplog::daemon(format_args!(
                "session for {user}, running as {runs_as}:{args}"
            ));
        }
        Ok(cmd)
    }

    /// Logs how a session ended.
    pub(crate) fn session_ended(&self, user: &str, status: Option<std::process::ExitStatus>) {
        use std::os::unix::process::ExitStatusExt;
        // Not std's Display: its table of signal names costs the board
        // build a kilobyte.
        let how = match status.map(|s| (s.code(), s.signal())) {
            Some((Some(c), _)) => format!("exit status {c}"),
            Some((_, Some(n))) => format!("signal {n}"),
            _ => "the command could not start".into(),
        };
        self.log(format_args!("session for {user} ended: {how}"));
    }
}

/// What the key's options add to a session's environment: the client's
/// command under a forced one (unset when it asked for a shell), as
/// sshd, and `environment=` (admitted at login only with
/// `-permitUserEnvironment`).
fn key_environment(cmd: &mut Command, setup: &SessionSetup, key: &KeyOptions) {
    if key.command.is_some() {
        match &setup.command {
            Some(c) => cmd.env("SSH_ORIGINAL_COMMAND", String::from_utf8_lossy(c).as_ref()),
            None => cmd.env_remove("SSH_ORIGINAL_COMMAND"),
        };
    }
    for (k, v) in &key.environment {
        cmd.env(k, v);
    }
}

/// The exit status of a command whose exec string does not split: 2, a
/// usage error, as a shell would give.
pub(crate) const BAD_COMMAND_STATUS: u32 = 2;

/// The program to start for sessions: this very executable.
pub fn self_exe() -> String {
    std::env::current_exe()
        .ok()
        .filter(|p| Path::new(p).exists())
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| "/proc/self/exe".into())
}
