//! cpud's daemon role: listen, log clients in, and give each session to
//! a `cpud -remote` child. A cpu session's child gets the client's
//! environment and the command split from the exec string as the
//! reference splits it; any other session's child runs the login shell,
//! or sftp-server, as sshd would ([`crate::plain`]).

use std::path::{Path, PathBuf};
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
use crate::{oplog, plain, quote};

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
    /// `-sftp`: the sftp subsystem's program; `None` tries the usual
    /// paths ([`plain::SFTP_SERVERS`]).
    pub sftp: Option<PathBuf>,
    /// Told when a session starts and ends (decpud counts its tenants).
    pub on_session: Option<SessionHook>,
    /// The connections not logged in yet: caps and deadlines.
    pub gate: Arc<crate::admission::Gate>,
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

/// The argv[0] the session child gives the command (a login shell's
/// `-sh`). Set by the daemon only, as [`ACCOUNT_ENV`].
pub const ARGV0_ENV: &str = "CPUD_ARGV0";

/// With `-accounts` the session child starts as root: a cpu session's
/// variables that the dynamic loader or libc act on reach it under this
/// prefix, and it gives them back their names for the command only,
/// once it is the account (else `LD_PRELOAD` would run the client's
/// code as root in a dynamically linked cpud).
pub const HELD_ENV_PREFIX: &str = "CPUD_HELD_";

/// Whether the loader or libc act on `name` in a process that is not
/// setuid: every `LD_*`, and the rest of glibc's UNSECURE_ENVVARS.
pub(crate) fn loader_env(name: &str) -> bool {
    const OTHERS: &[&str] = &[
        "GCONV_PATH",
        "GETCONF_DIR",
        "GLIBC_TUNABLES",
        "HOSTALIASES",
        "LOCALDOMAIN",
        "LOCPATH",
        "MALLOC_TRACE",
        "NIS_PATH",
        "NLSPATH",
        "RESOLV_HOST_CONF",
        "RES_OPTIONS",
        "TMPDIR",
        "TZDIR",
    ];
    name.starts_with("LD_") || OTHERS.contains(&name)
}

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

    /// Judges a request that would start the session (the
    /// [`runtime_std::ssh::session::StartCheck`]): a subsystem other than
    /// sftp, or sftp without an sftp-server, is refused with a line for
    /// the user (on the channel's stderr) that cpud logs too.
    pub(crate) fn start_check(&self, setup: &SessionSetup, user: &str) -> Option<String> {
        let name = setup.subsystem.as_deref()?;
        let why = match name {
            "sftp" => plain::sftp_server(self.sftp.as_deref()).err()?,
            other => plain::unknown_subsystem(other),
        };
        oplog::daemon(format_args!(
            "session for {user}: subsystem {name:?} refused: {why}"
        ));
        Some(format!("cpud: {why}\r\n"))
    }

    /// The session child for `setup`: `exe -remote [-d] args...`. For a
    /// cpu session ([`plain::is_cpu_session`]) the args are the exec
    /// string split in POSIX shell style (none for `shell`: the child
    /// runs `$SHELL`), the environment the client's alone when it sent
    /// any (as the reference). Any other session runs as sshd runs it
    /// ([`Daemon::plain_session`]). TERM is added with a pty. An exec
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
        // The key's command= stands for the client's, whichever it asked
        // for (a command, a shell or a subsystem), as sshd.
        let client = setup;
        let forced;
        let setup = match &key.command {
            Some(c) => {
                let mut s = setup.clone();
                s.command = Some(c.as_bytes().to_vec());
                s.subsystem = None;
                forced = s;
                &forced
            }
            None => setup,
        };
        // A subsystem is never the reference's: sftp-server even for a
        // client that sent CPU_FSTAB.
        let cpu = plain::is_cpu_session(setup) && setup.subsystem.is_none();
        if cpu {
            if let Some(raw) = &setup.command {
                let words = quote::shlex_split(&String::from_utf8_lossy(raw))
                    .map_err(|e| format!("cpud: bad command string: {e}\n"))?;
                cmd.args(words);
            }
            if !setup.env.is_empty() {
                cmd.env_clear();
                for (k, v) in &setup.env {
                    let v = String::from_utf8_lossy(v);
                    if self.accounts && loader_env(k) {
                        cmd.env(format!("{HELD_ENV_PREFIX}{k}"), v.as_ref());
                    } else {
                        cmd.env(k, v.as_ref());
                    }
                }
            }
            cmd.env_remove(ARGV0_ENV);
        } else {
            self.plain_session(&mut cmd, setup, user);
        }
        key_environment(&mut cmd, client, key);
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
            let kind = if cpu { "cpu" } else { "plain" };
            let mut args = String::new();
            for a in cmd.get_args() {
                args.push(' ');
                args.push_str(&a.to_string_lossy());
            }
            oplog::daemon(format_args!(
                "{kind} session for {user}, running as {runs_as}:{args}"
            ));
        }
        Ok(cmd)
    }

    /// A plain session's child, as sshd starts one: the command string to
    /// the account's login shell (`SHELL -c 'string'`), `shell` to that
    /// shell as a login shell, `subsystem sftp` to sftp-server (accepted
    /// by [`Daemon::start_check`]); in the account's home directory, with
    /// sshd's environment ([`plain::environment`]).
    fn plain_session(&self, cmd: &mut Command, setup: &SessionSetup, user: &str) {
        let login = plain::Login::of(self.accounts.then_some(user));
        let plan = match &setup.subsystem {
            Some(_) => plain::Plan {
                // Gone since start_check: the child says it cannot run it.
                argv: vec![plain::sftp_server(self.sftp.as_deref())
                    .unwrap_or_else(|_| "sftp-server".into())
                    .into_os_string()],
                argv0: None,
            },
            None => plain::shell_plan(&login, setup.command.as_deref()),
        };
        // After "--", no word of the command is a flag of `cpud -remote`.
        cmd.arg("--").args(&plan.argv);
        cmd.env_clear();
        cmd.envs(plain::environment(
            &login,
            &setup.env,
            std::env::var_os("PATH"),
        ));
        cmd.env_remove(ARGV0_ENV);
        if let Some(a0) = plan.argv0 {
            cmd.env(ARGV0_ENV, a0);
        }
        // The child changes to PWD once it is the account (a home that
        // root may not enter, on NFS, is the account's to enter).
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
