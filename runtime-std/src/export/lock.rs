//! POSIX record locks: Tlock and Tgetlock.
//!
//! Locks are open-file-description locks (F_OFD_SETLK), owned by the open
//! file of one fid, not classic process-owned fcntl locks. Every client's
//! lock would otherwise belong to this one process: locks of two clients
//! would never conflict, and closing any descriptor of a file (a clunk of
//! any fid) would drop every lock on it. One Linux open is one fid, so
//! opens conflict as they would between processes on one host.
//!
//! A blocking request is never waited for on a server thread, which a
//! few clients could tie up: the lock is tried once and BLOCKED returned,
//! and the Linux client retries after a pause, as it expects to.

use std::os::fd::AsFd;

use proto_9p::consts::{lock_status, lock_type};
use proto_9p::messages::{Rgetlock, Tgetlock, Tlock};
use proto_9p::Errno;

use super::fid::{Fid, Open};
use super::sys::{self, Flock};
use super::LocalExport;

fn host_type(ty: u8) -> Result<i16, Errno> {
    Ok(match ty {
        lock_type::RDLCK => libc::F_RDLCK as i16,
        lock_type::WRLCK => libc::F_WRLCK as i16,
        lock_type::UNLCK => libc::F_UNLCK as i16,
        _ => return Err(Errno::EINVAL),
    })
}

fn wire_type(ty: i16) -> u8 {
    match i32::from(ty) {
        libc::F_RDLCK => lock_type::RDLCK,
        libc::F_WRLCK => lock_type::WRLCK,
        _ => lock_type::UNLCK,
    }
}

/// The request as a flock; 9P's length 0 means "to the end", as l_len 0.
fn flock(ty: u8, start: u64, length: u64) -> Result<Flock, Errno> {
    Ok(Flock {
        ty: host_type(ty)?,
        start: i64::try_from(start).map_err(|_| Errno::EINVAL)?,
        len: i64::try_from(length).map_err(|_| Errno::EINVAL)?,
        // OFD locks require 0.
        pid: 0,
    })
}

fn open_file(fid: &Fid) -> Result<&std::fs::File, Errno> {
    match fid.open() {
        Open::File { file, .. } => Ok(file),
        _ => Err(Errno::EBADF),
    }
}

impl LocalExport {
    pub(super) fn do_lock(&self, fid: &Fid, msg: &Tlock) -> Result<u8, Errno> {
        let file = open_file(fid)?;
        let fl = flock(msg.lock_type, msg.start, msg.length)?;
        match sys::fcntl_lock(file.as_fd(), libc::F_OFD_SETLK, fl) {
            Ok(_) => Ok(lock_status::SUCCESS),
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(lock_status::BLOCKED),
            Err(e) => Err(e),
        }
    }

    /// The conflicting lock, or the request with type UNLCK. The owner of
    /// a conflicting lock is not known (the kernel reports -1 for OFD
    /// locks), so its proc_id is 0 and its client_id empty.
    pub(super) fn do_getlock(&self, fid: &Fid, msg: &Tgetlock) -> Result<Rgetlock, Errno> {
        let file = open_file(fid)?;
        let fl = flock(msg.lock_type, msg.start, msg.length)?;
        if i32::from(fl.ty) == libc::F_UNLCK {
            return Err(Errno::EINVAL);
        }
        let got = sys::fcntl_lock(file.as_fd(), libc::F_OFD_GETLK, fl)?;
        if i32::from(got.ty) == libc::F_UNLCK {
            return Ok(Rgetlock {
                lock_type: lock_type::UNLCK,
                start: msg.start,
                length: msg.length,
                proc_id: msg.proc_id,
                client_id: msg.client_id.clone(),
            });
        }
        Ok(Rgetlock {
            lock_type: wire_type(got.ty),
            start: got.start as u64,
            length: got.len as u64,
            proc_id: u32::try_from(got.pid).unwrap_or(0),
            client_id: Vec::new(),
        })
    }
}
