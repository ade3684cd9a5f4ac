//! Extended attributes: Txattrwalk (get one, or list the names) and
//! Txattrcreate (set or remove, applied at Tclunk).
//!
//! The calls go through the node's `/proc/self/fd` link with the variants
//! that follow a path (getxattr, not lgetxattr): following that link lands
//! on the node's own inode, a symlink included, while the `l` variants
//! would act on the `/proc` link itself.

use std::ffi::CString;
use std::sync::Mutex;

use bytes::Bytes;
use proto_9p::messages::Txattrcreate;
use proto_9p::Errno;

use super::fid::{lock, Fid, Node, Open};
use super::sys;

/// XATTR_SIZE_MAX and XATTR_LIST_MAX of Linux.
const XATTR_MAX: u64 = 64 * 1024;

/// A value being written by Twrite to an xattrcreate fid.
#[derive(Debug)]
pub(super) struct XattrWriter {
    name: CString,
    flags: i32,
    /// Sized to the announced length; `copied` bytes have been written.
    value: Vec<u8>,
    copied: usize,
}

/// The attribute `name` of `node` (its name list when empty), and a fid
/// that reads it.
pub(super) fn walk(
    node: &std::sync::Arc<Node>,
    name: &[u8],
    user: u32,
) -> Result<(u64, Fid), Errno> {
    let cname = if name.is_empty() {
        None
    } else {
        Some(CString::new(name).map_err(|_| Errno::EINVAL)?)
    };
    let value = fetch(node, cname.as_deref())?;
    let size = value.len() as u64;
    Ok((
        size,
        Fid::new(node.clone(), Open::XattrRead(Bytes::from(value)), user),
    ))
}

fn fetch(node: &Node, name: Option<&std::ffi::CStr>) -> Result<Vec<u8>, Errno> {
    let path = node.proc_path();
    // The value may grow between asking its size and reading it.
    for _ in 0..4 {
        let size = sys::getxattr(&path, name, &mut [])?;
        let mut buf = vec![0; size];
        match sys::getxattr(&path, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::ERANGE)
}

/// A fid collecting the value of `msg.name` for `node`.
pub(super) fn create(
    node: &std::sync::Arc<Node>,
    msg: &Txattrcreate,
    user: u32,
) -> Result<Fid, Errno> {
    if msg.name.is_empty() {
        return Err(Errno::EINVAL);
    }
    let name = CString::new(msg.name.as_slice()).map_err(|_| Errno::EINVAL)?;
    let valid = (libc::XATTR_CREATE | libc::XATTR_REPLACE) as u32;
    if msg.flags & !valid != 0 {
        return Err(Errno::EINVAL);
    }
    if msg.attr_size > XATTR_MAX {
        return Err(Errno::E2BIG);
    }
    let writer = XattrWriter {
        name,
        flags: msg.flags as i32,
        value: vec![0; msg.attr_size as usize],
        copied: 0,
    };
    Ok(Fid::new(
        node.clone(),
        Open::XattrWrite(Mutex::new(Some(writer))),
        user,
    ))
}

/// Tread of an xattrwalk fid: a slice of the value.
pub(super) fn read(value: &Bytes, offset: u64, count: u32) -> Bytes {
    let len = value.len() as u64;
    if offset >= len {
        return Bytes::new();
    }
    let end = len.min(offset + u64::from(count));
    value.slice(offset as usize..end as usize)
}

/// Twrite of an xattrcreate fid: fills the announced value; bytes past its
/// announced length are dropped, as QEMU and diod do.
pub(super) fn write(
    w: &Mutex<Option<XattrWriter>>,
    offset: u64,
    data: &[u8],
) -> Result<u32, Errno> {
    let mut guard = lock(w);
    let w = guard.as_mut().ok_or(Errno::EBADF)?;
    let len = w.value.len() as u64;
    if offset > len {
        return Err(Errno::ENOSPC);
    }
    let at = offset as usize;
    let n = data.len().min(w.value.len() - at);
    w.value[at..at + n].copy_from_slice(&data[..n]);
    w.copied += n;
    u32::try_from(n).map_err(|_| Errno::EINVAL)
}

/// At clunk: set the collected value. A value of announced length 0 with
/// XATTR_REPLACE is how the Linux client removes an attribute.
pub(super) fn commit(node: &Node, w: &Mutex<Option<XattrWriter>>) -> Result<(), Errno> {
    let Some(w) = lock(w).take() else {
        return Ok(());
    };
    if w.copied != w.value.len() {
        return Err(Errno::EINVAL);
    }
    let path = node.proc_path();
    if w.value.is_empty() && w.flags & libc::XATTR_REPLACE != 0 {
        sys::removexattr(&path, &w.name)
    } else {
        sys::setxattr(&path, &w.name, &w.value, w.flags)
    }
}
