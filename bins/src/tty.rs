//! The local terminal of `cpu`: raw mode while a remote pty runs, put back
//! on every way out (the guard's drop runs on return, and the signals
//! that would kill us are taken by a thread instead). TCSADRAIN, not
//! TCSAFLUSH: keys typed ahead must reach the remote, not be dropped.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::termios::{self, SetArg, Termios};

/// Raw mode on stdin until dropped.
#[derive(Debug)]
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// Puts stdin in raw mode; `None` if it is not a terminal.
    pub fn enter() -> io::Result<Option<Self>> {
        let stdin = io::stdin();
        let fd = stdin.as_fd();
        if !is_tty(fd) {
            return Ok(None);
        }
        let saved = termios::tcgetattr(fd).map_err(io::Error::from)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSADRAIN, &raw).map_err(io::Error::from)?;
        Ok(Some(Self { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = io::stdin();
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// Whether `fd` is a terminal.
pub fn is_tty(fd: BorrowedFd<'_>) -> bool {
    termios::tcgetattr(fd).is_ok()
}
