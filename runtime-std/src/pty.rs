//! Pseudo-terminals for sessions that asked for one (pty-req): open a
//! pair, start a command with the slave as its controlling terminal, and
//! resize it on window-change.
//!
//! One of the two modules of the crate allowed `unsafe`: `pre_exec` and
//! the TIOCSCTTY / TIOCSWINSZ ioctls have no safe wrapper in std or nix.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// A terminal size, as pty-req and window-change carry it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WinSize {
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// Width in pixels.
    pub width_px: u16,
    /// Height in pixels.
    pub height_px: u16,
}

impl WinSize {
    /// From the u32 fields of the SSH requests, clamped to the kernel's u16.
    pub fn from_ssh(cols: u32, rows: u32, width_px: u32, height_px: u32) -> Self {
        let c = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        Self {
            cols: c(cols),
            rows: c(rows),
            width_px: c(width_px),
            height_px: c(height_px),
        }
    }

    fn to_libc(self) -> libc::winsize {
        libc::winsize {
            ws_row: self.rows,
            ws_col: self.cols,
            ws_xpixel: self.width_px,
            ws_ypixel: self.height_px,
        }
    }
}

/// Starts `cmd` in a new session whose controlling terminal is a new
/// pty of `size`; returns the child and the master side. The command
/// is consumed so that no copy of the slave stays open here.
pub fn spawn(mut cmd: Command, size: WinSize) -> io::Result<(Child, File)> {
    let ws = nix::pty::Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: size.width_px,
        ws_ypixel: size.height_px,
    };
    let pair = nix::pty::openpty(Some(&ws), None).map_err(io::Error::from)?;
    let slave: OwnedFd = pair.slave;
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    // SAFETY: the closure runs in the child between fork and exec and
    // calls only async-signal-safe functions (setsid, ioctl) on the
    // child's own descriptor 0, which is the pty slave set above.
    unsafe {
        cmd.pre_exec(|| {
            reset_signals();
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // The command keeps its copies of the slave: drop them, or the
    // master would never see the session end.
    drop(cmd);
    Ok((child, File::from(pair.master)))
}

/// Starts `cmd` (stdio as the command has it) in a new session, so that
/// everything it starts can be found again by session id, whatever
/// process groups a shell makes for its jobs.
pub fn spawn_session(cmd: &mut Command) -> io::Result<Child> {
    // SAFETY: the closure runs in the child between fork and exec and
    // calls only async-signal-safe functions (signal, sigprocmask, setsid).
    unsafe {
        cmd.pre_exec(|| {
            reset_signals();
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Our ends of a command's stdin, stdout and stderr.
#[derive(Debug)]
pub struct Stdio3 {
    /// What we write the command reads.
    pub stdin: UnixStream,
    /// The command's output.
    pub stdout: UnixStream,
    /// The command's error output.
    pub stderr: UnixStream,
}

/// [`spawn_session`] with the command's stdin, stdout and stderr on Unix
/// socket pairs rather than pipes. A command that splices between a pipe
/// and a file (busybox `cat` sends a file with sendfile) holds the pipe's
/// lock until the file answers; when the file is served through this
/// very process (the 9P forward), a read of that pipe here would block
/// the thread that must relay the answer. The two ends of a socket pair
/// share no such lock. Returns the child and our ends.
pub fn spawn_session_stdio(mut cmd: Command) -> io::Result<(Child, Stdio3)> {
    let (stdin, their_in) = UnixStream::pair()?;
    let (stdout, their_out) = UnixStream::pair()?;
    let (stderr, their_err) = UnixStream::pair()?;
    cmd.stdin(OwnedFd::from(their_in))
        .stdout(OwnedFd::from(their_out))
        .stderr(OwnedFd::from(their_err));
    let child = spawn_session(&mut cmd)?;
    // The command's ends go with `cmd`, so that our reads see EOF once
    // the command (and whatever inherited them) has closed them.
    drop(cmd);
    Ok((
        child,
        Stdio3 {
            stdin,
            stdout,
            stderr,
        },
    ))
}

/// Gives the command default signal handling and an empty signal mask:
/// a server started in the background by a shell ignores SIGINT and
/// SIGQUIT, and ignored signals pass through exec, which would make
/// Ctrl-C useless in every session. Called between fork and exec only.
///
/// # Safety
/// Only async-signal-safe calls: `signal` and `sigprocmask`.
unsafe fn reset_signals() {
    for sig in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTERM,
        libc::SIGPIPE,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGCHLD,
    ] {
        libc::signal(sig, libc::SIG_DFL);
    }
    let mut empty: libc::sigset_t = core::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, core::ptr::null_mut());
}

/// Starts `cmd` in the caller's session with default signal handling
/// and an empty signal mask, whatever the caller blocks or ignores.
pub fn spawn_plain(cmd: &mut Command) -> io::Result<Child> {
    // SAFETY: the closure runs in the child between fork and exec and
    // calls only async-signal-safe functions (signal, sigprocmask).
    unsafe {
        cmd.pre_exec(|| {
            reset_signals();
            Ok(())
        });
    }
    cmd.spawn()
}

/// Resizes the terminal whose master is `master`.
pub fn resize(master: &File, size: WinSize) -> io::Result<()> {
    let ws = size.to_libc();
    // SAFETY: `master` is an open descriptor for the call's duration and
    // TIOCSWINSZ reads exactly one `winsize` from the valid pointer.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The size of the terminal on `fd`, if it is one.
pub fn window_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<WinSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: `fd` is borrowed open for the call and TIOCGWINSZ writes
    // exactly one `winsize` through the valid pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0).then_some(WinSize {
        cols: ws.ws_col,
        rows: ws.ws_row,
        width_px: ws.ws_xpixel,
        height_px: ws.ws_ypixel,
    })
}
