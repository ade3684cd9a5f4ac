//! Serving a session channel on this host: the requests before the
//! command (env, pty-req), then the command itself, on pipes or on a pty,
//! with window-change and signal passed on, and its exit status or signal
//! sent back. The command runs in a session of its own; when the channel
//! or the connection goes away first, every process of that session is
//! killed (a shell's jobs have process groups of their own, so the group
//! alone is not enough), so nothing is left behind.

use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use proto_ssh::channel::ChannelRequest;

use super::{copy, signal_name, signal_number, write_all, Channel, IO_BUF};
use crate::pty::{self, WinSize};

/// What the client asked for before its command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSetup {
    /// `env` requests, in order.
    pub env: Vec<(String, Vec<u8>)>,
    /// `pty-req`: the terminal type and size.
    pub pty: Option<(String, WinSize)>,
    /// `exec`'s command, or `None` for `shell` (and `subsystem`).
    pub command: Option<Vec<u8>>,
    /// `subsystem`'s name.
    pub subsystem: Option<String>,
    /// Set before the requests come (authorized_keys `no-pty`): pty-req
    /// is refused.
    pub no_pty: bool,
}

impl SessionSetup {
    /// Takes in one request before the command: whether to accept it,
    /// and whether it starts the command (`exec`, `shell`, `subsystem`;
    /// the server may still refuse to run it, see [`StartCheck`]).
    /// Unknown requests are refused.
    pub fn apply(&mut self, req: ChannelRequest) -> (bool, bool) {
        match req {
            ChannelRequest::Env { name, value } => {
                self.env.push((name, value));
                (true, false)
            }
            ChannelRequest::PtyReq {
                term,
                cols,
                rows,
                width_px,
                height_px,
                ..
            } if !self.no_pty => {
                let size = WinSize::from_ssh(cols, rows, width_px, height_px);
                self.pty = Some((term, size));
                (true, false)
            }
            ChannelRequest::WindowChange {
                cols,
                rows,
                width_px,
                height_px,
            } => {
                if let Some((_, size)) = &mut self.pty {
                    *size = WinSize::from_ssh(cols, rows, width_px, height_px);
                }
                (true, false)
            }
            ChannelRequest::Exec(cmd) => {
                self.command = Some(cmd);
                (true, true)
            }
            ChannelRequest::Shell => (true, true),
            ChannelRequest::Subsystem(name) => {
                self.subsystem = Some(name);
                (true, true)
            }
            _ => (false, false),
        }
    }
}

/// Judges a request that would start the session: `Some(message)`
/// refuses it. The request is answered with success all the same, and the
/// session ends at once as a command that cannot start: the message on
/// stderr, status 127. OpenSSH's client closes a channel whose subsystem
/// request failed at once, and then often drops the stderr that came
/// just before (seen in tests/scripts/cpud-openssh.sh): a failure reply
/// would hide the reason from the user.
pub type StartCheck<'a> = &'a (dyn Fn(&SessionSetup) -> Option<String> + Sync);

/// A [`StartCheck`] for a server with no subsystem: each is refused.
pub fn no_subsystems(setup: &SessionSetup) -> Option<String> {
    setup
        .subsystem
        .as_ref()
        .map(|name| format!("no subsystem {name:?} here\r\n"))
}

/// Answers requests until `exec`, `shell` or `subsystem` starts the
/// session; `None` if the channel closed first, or if `check` refused
/// the start (the channel is then ended).
pub fn read_setup(ch: &Channel, check: StartCheck<'_>) -> Option<SessionSetup> {
    read_setup_with(ch, SessionSetup::default(), check)
}

/// As [`read_setup`], from `setup` (its `no_pty`).
pub fn read_setup_with(
    ch: &Channel,
    mut setup: SessionSetup,
    check: StartCheck<'_>,
) -> Option<SessionSetup> {
    loop {
        let (req, want_reply) = ch.next_request()?;
        let (ok, start) = setup.apply(req);
        if want_reply {
            let _ = ch.reply(ok);
        }
        if start {
            if let Some(why) = check(&setup) {
                let _ = write_all_stderr(ch, why.as_bytes());
                let _ = ch.request(&exit_request(None), false);
                let _ = ch.send_eof();
                let _ = ch.close();
                return None;
            }
            return Some(setup);
        }
    }
}

/// Runs `cmd` for the channel in a process group of its own, on a pty
/// when `pty` is set (with TERM from it), then sends exit-status or
/// exit-signal, EOF and CLOSE. A command that cannot start gets its error
/// on stderr and status 127. Returns how the command ended.
pub fn run(ch: &Channel, mut cmd: Command, pty: Option<(String, WinSize)>) -> Option<ExitStatus> {
    let result = match pty {
        Some((term, size)) => {
            cmd.env("TERM", term);
            run_pty(ch, cmd, size)
        }
        None => run_pipes(ch, cmd),
    };
    let status = match result {
        Ok(s) => Some(s),
        Err(e) => {
            let _ = ch.write_stderr(cannot_run(&e).as_bytes());
            None
        }
    };
    let _ = ch.request(&exit_request(status), false);
    let _ = ch.send_eof();
    let _ = ch.close();
    status
}

/// What the client is told when its command cannot start.
pub fn cannot_run(e: &io::Error) -> String {
    format!("cannot run the command: {e}\r\n")
}

/// The exit-signal or exit-status request for how a command ended;
/// `None`, a command that could not start, is status 127.
pub fn exit_request(status: Option<ExitStatus>) -> ChannelRequest {
    match status.and_then(|s| s.signal().map(|n| (n, s.core_dumped()))) {
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
    }
}

/// The running command's session (its process group id is its session
/// id), until it has been reaped; clones share it.
#[derive(Debug, Clone)]
pub struct Group(Arc<Mutex<Option<Pid>>>);

impl Group {
    /// Tracks the session of a child started by [`pty::spawn`] or
    /// [`pty::spawn_session`], so that [`kill_all`] reaches it.
    pub fn register(child: &Child) -> io::Result<Self> {
        let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
        let group = Self(Arc::new(Mutex::new(Some(Pid::from_raw(pid)))));
        if let Ok(mut live) = LIVE.lock() {
            live.push(group.clone());
        }
        Ok(group)
    }

    fn pid(&self) -> Option<Pid> {
        self.0.lock().ok().and_then(|g| *g)
    }

    /// Acts on a request that comes while the command runs: window-change
    /// resizes the pty (`master`), signal goes to the command's group.
    /// Returns the answer to give.
    pub fn control(&self, req: ChannelRequest, master: Option<&std::fs::File>) -> bool {
        match req {
            ChannelRequest::WindowChange {
                cols,
                rows,
                width_px,
                height_px,
            } => master.is_some_and(|m| {
                pty::resize(m, WinSize::from_ssh(cols, rows, width_px, height_px)).is_ok()
            }),
            ChannelRequest::Signal(name) => {
                match (self.pid(), Signal::try_from(signal_number(&name))) {
                    // The group, as a terminal's Ctrl-C would.
                    (Some(pgid), Ok(sig)) => killpg(pgid, sig).is_ok(),
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// The channel went while the command may still run: kill its whole
    /// session.
    pub fn hang_up(&self) {
        if let Some(sid) = self.pid() {
            kill_session(sid);
        }
    }

    /// Waits for the child (blocking), then kills what it left running in
    /// its session (background jobs, a FUSE server): a session ends with
    /// its command.
    pub fn reap(&self, mut child: Child) -> io::Result<ExitStatus> {
        let status = child.wait();
        if let Some(sid) = self.0.lock().ok().and_then(|mut g| g.take()) {
            // The session id stays taken while any process of it lives, so
            // no new session can have this number yet.
            kill_session(sid);
        }
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|g| !Arc::ptr_eq(&g.0, &self.0));
        }
        status
    }
}

/// Every session of this process whose command still runs, so that a
/// server that is itself stopped can end them ([`kill_all`]).
static LIVE: Mutex<Vec<Group>> = Mutex::new(Vec::new());

/// Kills every process of every session [`run`] started that still runs:
/// for a server that is being stopped, so that nothing outlives it.
pub fn kill_all() {
    let Ok(mut live) = LIVE.lock() else { return };
    for group in live.drain(..) {
        if let Some(sid) = group.0.lock().ok().and_then(|mut g| g.take()) {
            kill_session(sid);
        }
    }
}

/// Watches the channel: window-change and signal requests go to the
/// command; when the channel closes while the command still runs (the
/// client went away), the whole group is killed.
fn control(ch: Channel, group: Group, master: Option<std::fs::File>) {
    while let Some((req, want_reply)) = ch.next_request() {
        let ok = group.control(req, master.as_ref());
        if want_reply {
            let _ = ch.reply(ok);
        }
    }
    group.hang_up();
}

/// Kills every process of session `sid` (the command and all it
/// started that stayed in its session).
fn kill_session(sid: Pid) {
    let _ = killpg(sid, Signal::SIGKILL);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name, which may itself hold spaces
        // and parentheses: state ppid pgrp session ...
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let session = after
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse::<i32>().ok());
        if session == Some(sid.as_raw()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Starts the control thread for a spawned child.
fn watch(ch: &Channel, child: &Child, master: Option<std::fs::File>) -> io::Result<Group> {
    let group = Group::register(child)?;
    let (ch, g) = (ch.clone(), group.clone());
    thread::spawn(move || control(ch, g, master));
    Ok(group)
}

fn run_pipes(ch: &Channel, cmd: Command) -> io::Result<ExitStatus> {
    let (child, io) = pty::spawn_session_stdio(cmd)?;
    let group = watch(ch, &child, None)?;
    {
        let (ch, mut stdin) = (ch.clone(), io.stdin);
        // Dropping our end at the channel's EOF is the command's EOF.
        thread::spawn(move || copy(&mut ch.reader(), &mut stdin));
    }
    let err_thread = {
        let (ch, mut e) = (ch.clone(), io.stderr);
        thread::spawn(move || copy_out(&mut e, &ch, true))
    };
    copy_out(&mut &io.stdout, ch, false);
    let _ = err_thread.join();
    group.reap(child)
}

fn run_pty(ch: &Channel, cmd: Command, size: WinSize) -> io::Result<ExitStatus> {
    let (child, master) = pty::spawn(cmd, size)?;
    let group = watch(ch, &child, Some(master.try_clone()?))?;
    {
        let ch = ch.clone();
        let mut to_pty = master.try_clone()?;
        thread::spawn(move || copy(&mut ch.reader(), &mut to_pty));
    }
    // The master reads EIO once the last process holding the slave is
    // gone: that ends the output.
    let mut from_pty = master;
    copy_out(&mut from_pty, ch, false);
    group.reap(child)
}

/// Copies a command's output to the channel (stderr as extended data).
fn copy_out(from: &mut impl Read, ch: &Channel, stderr: bool) {
    let mut buf = vec![0u8; IO_BUF];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let sent = if stderr {
            write_all_stderr(ch, &buf[..n])
        } else {
            write_all(ch, &buf[..n])
        };
        if sent.is_err() {
            return;
        }
    }
}

fn write_all_stderr(ch: &Channel, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        let n = ch.write_stderr(data)?;
        data = &data[n..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subsystem_starts_the_session() {
        let mut s = SessionSetup::default();
        assert_eq!(no_subsystems(&s), None);
        assert_eq!(
            s.apply(ChannelRequest::Subsystem("sftp".into())),
            (true, true)
        );
        assert_eq!(s.subsystem.as_deref(), Some("sftp"));
        assert_eq!(s.command, None);
        assert!(no_subsystems(&s).is_some_and(|m| m.contains("sftp")));
        let mut e = SessionSetup::default();
        assert_eq!(e.apply(ChannelRequest::Exec(b"ls".to_vec())), (true, true));
        assert_eq!(
            (e.command.as_deref(), e.subsystem),
            (Some(&b"ls"[..]), None)
        );
    }
}
