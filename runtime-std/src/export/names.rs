//! Checks of the names a client sends.
//!
//! A name is one path component: never empty, never holding '/' (which
//! would make a lookup of several steps) or NUL (which C would cut short).

use std::ffi::CString;

use proto_9p::Errno;

/// A name for a walk step. `.` is allowed (it names the same directory);
/// `..` is handled by the caller before this check.
pub(super) fn walk_name(name: &[u8]) -> Result<CString, Errno> {
    if name.is_empty() || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    CString::new(name).map_err(|_| Errno::EINVAL)
}

/// A name to create, remove or rename: also not `.` or `..`, which name
/// no entry of their own.
pub(super) fn checked_name(name: &[u8]) -> Result<CString, Errno> {
    if name == b"." || name == b".." {
        return Err(Errno::EINVAL);
    }
    walk_name(name)
}
