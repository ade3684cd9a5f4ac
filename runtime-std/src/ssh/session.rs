//! Serving a session channel on this host: the requests before the
//! command (env, pty-req), then the command itself, on pipes or on a pty,
//! with window-change and signal passed on, and its exit status or signal
//! sent back. The command runs in a session of its own; when the channel
//! or the connection goes away first, every process of that session is
//! killed (a shell's jobs have process groups of their own, so the group
//! alone is not enough), so nothing is left behind.

use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
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
    /// `exec`'s command, or `None` for `shell`.
    pub command: Option<Vec<u8>>,
}

/// Answers requests until `exec` or `shell`; `None` if the channel closed
/// first. Subsystems and unknown requests are refused.
pub fn read_setup(ch: &Channel) -> Option<SessionSetup> {
    let mut setup = SessionSetup::default();
    loop {
        let (req, want_reply) = ch.next_request()?;
        let (ok, start) = match req {
            ChannelRequest::Env { name, value } => {
                setup.env.push((name, value));
                (true, false)
            }
            ChannelRequest::PtyReq {
                term,
                cols,
                rows,
                width_px,
                height_px,
                ..
            } => {
                let size = WinSize::from_ssh(cols, rows, width_px, height_px);
                setup.pty = Some((term, size));
                (true, false)
            }
            ChannelRequest::WindowChange {
                cols,
                rows,
                width_px,
                height_px,
            } => {
                if let Some((_, size)) = &mut setup.pty {
                    *size = WinSize::from_ssh(cols, rows, width_px, height_px);
                }
                (true, false)
            }
            ChannelRequest::Exec(cmd) => {
                setup.command = Some(cmd);
                (true, true)
            }
            ChannelRequest::Shell => (true, true),
            _ => (false, false),
        };
        if want_reply {
            let _ = ch.reply(ok);
        }
        if start {
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
            let _ = ch.write_stderr(format!("cannot run the command: {e}\r\n").as_bytes());
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
    status
}

/// The running command's process group, until it has been reaped.
type Group = Arc<Mutex<Option<Pid>>>;

/// Every session of this process whose command still runs, so that a
/// server that is itself stopped can end them ([`kill_all`]).
static LIVE: Mutex<Vec<Group>> = Mutex::new(Vec::new());

/// Kills every process of every session [`run`] started that still runs:
/// for a server that is being stopped, so that nothing outlives it.
pub fn kill_all() {
    let Ok(mut live) = LIVE.lock() else { return };
    for group in live.drain(..) {
        if let Some(sid) = group.lock().ok().and_then(|mut g| g.take()) {
            kill_session(sid);
        }
    }
}

/// Watches the channel: window-change and signal requests go to the
/// command; when the channel closes while the command still runs (the
/// client went away), the whole group is killed.
fn control(ch: Channel, group: Group, master: Option<std::fs::File>) {
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
                let pgid = group.lock().ok().and_then(|g| *g);
                match (pgid, Signal::try_from(signal_number(&name))) {
                    // The group, as a terminal's Ctrl-C would.
                    (Some(pgid), Ok(sig)) => killpg(pgid, sig).is_ok(),
                    _ => false,
                }
            }
            _ => false,
        };
        if want_reply {
            let _ = ch.reply(ok);
        }
    }
    if let Some(sid) = group.lock().ok().and_then(|g| *g) {
        kill_session(sid);
    }
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
    let pid = i32::try_from(child.id()).map_err(|_| io::Error::other("pid out of range"))?;
    let group: Group = Arc::new(Mutex::new(Some(Pid::from_raw(pid))));
    if let Ok(mut live) = LIVE.lock() {
        live.push(group.clone());
    }
    let (ch, g) = (ch.clone(), group.clone());
    thread::spawn(move || control(ch, g, master));
    Ok(group)
}

/// Reaps the child, then kills what it left running in its session
/// (background jobs, a FUSE server): a session ends with its command.
fn reap(mut child: Child, group: &Group) -> io::Result<ExitStatus> {
    let status = child.wait();
    if let Some(sid) = group.lock().ok().and_then(|mut g| g.take()) {
        // The session id stays taken while any process of it lives, so no
        // new session can have this number yet.
        kill_session(sid);
    }
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|g| !Arc::ptr_eq(g, group));
    }
    status
}

fn run_pipes(ch: &Channel, mut cmd: Command) -> io::Result<ExitStatus> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = pty::spawn_session(&mut cmd)?;
    let group = watch(ch, &child, None)?;
    if let Some(mut stdin) = child.stdin.take() {
        let ch = ch.clone();
        thread::spawn(move || copy(&mut ch.reader(), &mut stdin));
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
    reap(child, &group)
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
    reap(child, &group)
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
