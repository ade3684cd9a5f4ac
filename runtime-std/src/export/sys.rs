//! The system calls of the export, as safe functions.
//!
//! This is the one module of the crate allowed `unsafe`. Each function is a
//! thin wrapper: descriptors are borrowed for the duration of the call,
//! buffers are passed with their true lengths, and a failure becomes the
//! host errno. On x86_64 and aarch64 Linux the host errno values are the
//! wire values of 9P2000.L, so they are passed on unchanged.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use proto_9p::Errno;

/// The calling thread's errno, as a 9P errno.
fn last_errno() -> Errno {
    let raw = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    match u32::try_from(raw) {
        Ok(e) if e != 0 => Errno(e),
        _ => Errno::EIO,
    }
}

fn cvt(r: libc::c_int) -> Result<libc::c_int, Errno> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: isize) -> Result<usize, Errno> {
    usize::try_from(r).map_err(|_| last_errno())
}

fn cvt_long(r: libc::c_long) -> Result<libc::c_long, Errno> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// Takes ownership of a descriptor a system call just returned.
fn owned(fd: libc::c_long) -> Result<OwnedFd, Errno> {
    let fd = RawFd::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor and
    // nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// openat2(2): `path` resolved from `dir` under the `resolve` restrictions.
pub(super) fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: libc::c_int,
    mode: u32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    // SAFETY: open_how is plain data (libc marks it non-exhaustive, so it
    // cannot be built literally); zero is valid for every field.
    let mut how: libc::open_how = unsafe { core::mem::zeroed() };
    how.flags = u64::from(flags as u32);
    how.mode = u64::from(mode);
    how.resolve = resolve;
    // The kernel answers EAGAIN when a concurrent rename races the lookup;
    // a retry then normally succeeds.
    for _ in 0..8 {
        // SAFETY: `path` is NUL-terminated, `how` is a valid open_how and
        // its exact size is passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                core::mem::size_of::<libc::open_how>(),
            )
        };
        match cvt_long(r) {
            Ok(fd) => return owned(fd),
            Err(Errno::EAGAIN) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EAGAIN)
}

/// openat(2) without resolve restrictions: for `..` and for reopening a
/// descriptor through its `/proc/self/fd` link.
pub(super) fn openat(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: libc::c_int,
) -> Result<OwnedFd, Errno> {
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `path` is NUL-terminated; no mode is read without O_CREAT.
    let fd = cvt(unsafe { libc::openat(dirfd, path.as_ptr(), flags) })?;
    owned(libc::c_long::from(fd))
}

/// The statx fields the export asks for.
pub(super) const STATX_WANT: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// statx(2) of the descriptor's own inode (never following a symlink), or
/// of `name` in directory `fd` when `name` is not empty.
pub(super) fn statx(fd: BorrowedFd<'_>, name: &CStr) -> Result<libc::statx, Errno> {
    let mut flags = libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_SYNC_AS_STAT;
    if name.is_empty() {
        flags |= libc::AT_EMPTY_PATH;
    }
    let mut st = MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `name` is NUL-terminated and `st` is a writable statx buffer.
    cvt(unsafe {
        libc::statx(
            fd.as_raw_fd(),
            name.as_ptr(),
            flags,
            STATX_WANT,
            st.as_mut_ptr(),
        )
    })?;
    // SAFETY: statx succeeded and filled the buffer; it was zeroed first,
    // so fields the kernel skipped are zero, a valid value for each.
    Ok(unsafe { st.assume_init() })
}

/// getdents64(2) into `buf`; returns the bytes filled, 0 at the end.
pub(super) fn getdents64(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            fd.as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    let n = cvt_long(r)?;
    usize::try_from(n).map_err(|_| Errno::EIO)
}

/// An offset as this libc's off_t: 64 bits everywhere but 32-bit glibc
/// (without large-file support), where a larger one is EOVERFLOW.
#[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
fn off(v: i64) -> Result<libc::off_t, Errno> {
    libc::off_t::try_from(v).map_err(|_| Errno::EOVERFLOW)
}

/// lseek(2) to an absolute position.
pub(super) fn lseek_set(fd: BorrowedFd<'_>, offset: i64) -> Result<(), Errno> {
    let offset = off(offset)?;
    // SAFETY: plain system call on a borrowed descriptor.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, libc::SEEK_SET) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(())
    }
}

/// pread(2) into the spare capacity of `buf`, extending its length by the
/// bytes read, so the buffer is never zeroed first. Unseekable files are
/// read at their current position.
pub(super) fn pread_into(fd: BorrowedFd<'_>, buf: &mut Vec<u8>, offset: i64) -> Result<(), Errno> {
    let offset = off(offset)?;
    let spare = buf.spare_capacity_mut();
    // SAFETY: the kernel writes at most `spare.len()` bytes into the spare
    // capacity, which is valid, writable memory owned by `buf`.
    let r = unsafe {
        libc::pread(
            fd.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            spare.len(),
            offset,
        )
    };
    // Pipes and sockets (served only with allow_devices) have no offsets.
    let r = if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESPIPE) {
        // SAFETY: as above, at most `spare.len()` bytes into `buf`'s spare
        // capacity.
        unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len()) }
    } else {
        r
    };
    let n = cvt_size(r)?;
    // SAFETY: the kernel initialised the first `n` spare bytes, and
    // `n <= spare.len()`, so the new length is within the capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(())
}

/// fchownat(2) of the descriptor's own inode; `u32::MAX` leaves an id.
pub(super) fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> Result<(), Errno> {
    // SAFETY: the empty path is NUL-terminated; AT_EMPTY_PATH makes the
    // call act on `fd` itself, which works for O_PATH descriptors.
    cvt(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// chmod(2) of a path.
pub(super) fn chmod(path: &CStr, mode: u32) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated.
    cvt(unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// fchmod(2) of an open (not O_PATH) descriptor.
pub(super) fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    // SAFETY: plain system call on a borrowed descriptor.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// truncate(2) of a path.
pub(super) fn truncate(path: &CStr, size: i64) -> Result<(), Errno> {
    let size = off(size)?;
    // SAFETY: `path` is NUL-terminated.
    cvt(unsafe { libc::truncate(path.as_ptr(), size) }).map(drop)
}

/// utimensat(2) of a path, following it (for `/proc/self/fd` links).
pub(super) fn utimens(path: &CStr, times: &[libc::timespec; 2]) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated and `times` points to two timespecs.
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) }).map(drop)
}

/// readlinkat(2) of an O_PATH descriptor of a symbolic link.
pub(super) fn readlink(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
    let mut cap = 256;
    loop {
        let mut buf: Vec<u8> = Vec::with_capacity(cap);
        // SAFETY: the kernel writes at most `cap` bytes into the buffer's
        // capacity; the empty path makes it read the link `fd` names.
        let r =
            unsafe { libc::readlinkat(fd.as_raw_fd(), c"".as_ptr(), buf.as_mut_ptr().cast(), cap) };
        let n = cvt_size(r)?;
        if n < cap {
            // SAFETY: the kernel initialised the first `n` bytes.
            unsafe { buf.set_len(n) };
            return Ok(buf);
        }
        // The target may have been cut short: try again with more room.
        if cap >= 1 << 20 {
            return Err(Errno::ENAMETOOLONG);
        }
        cap *= 4;
    }
}

/// mkdirat(2).
pub(super) fn mkdirat(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// mknodat(2).
pub(super) fn mknodat(
    dir: BorrowedFd<'_>,
    name: &CStr,
    mode: u32,
    major: u32,
    minor: u32,
) -> Result<(), Errno> {
    let dev = libc::makedev(major, minor);
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t, dev) })
        .map(drop)
}

/// symlinkat(2): `name` in `dir` pointing at `target`.
pub(super) fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    // SAFETY: both strings are NUL-terminated.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// linkat(2) from a path that is followed (a `/proc/self/fd` link) to
/// `name` in `dir`.
pub(super) fn link_followed(from: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    // SAFETY: both strings are NUL-terminated.
    cvt(unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    })
    .map(drop)
}

/// renameat(2).
pub(super) fn renameat(
    olddir: BorrowedFd<'_>,
    oldname: &CStr,
    newdir: BorrowedFd<'_>,
    newname: &CStr,
) -> Result<(), Errno> {
    // SAFETY: both names are NUL-terminated.
    cvt(unsafe {
        libc::renameat(
            olddir.as_raw_fd(),
            oldname.as_ptr(),
            newdir.as_raw_fd(),
            newname.as_ptr(),
        )
    })
    .map(drop)
}

/// unlinkat(2); `removedir` removes a directory.
pub(super) fn unlinkat(dir: BorrowedFd<'_>, name: &CStr, removedir: bool) -> Result<(), Errno> {
    let flags = if removedir { libc::AT_REMOVEDIR } else { 0 };
    // SAFETY: `name` is NUL-terminated.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

/// fsync(2) or fdatasync(2).
pub(super) fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> Result<(), Errno> {
    // SAFETY: plain system calls on a borrowed descriptor.
    let r = unsafe {
        if datasync {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    };
    cvt(r).map(drop)
}

/// The statfs(2) fields 9P carries.
#[derive(Debug, Clone, Copy)]
pub(super) struct StatFs {
    pub(super) bsize: i64,
    pub(super) blocks: u64,
    pub(super) bfree: u64,
    pub(super) bavail: u64,
    pub(super) files: u64,
    pub(super) ffree: u64,
    pub(super) fsid: [i32; 2],
    pub(super) namelen: i64,
}

/// fstatfs(2), which accepts O_PATH descriptors.
pub(super) fn fstatfs(fd: BorrowedFd<'_>) -> Result<StatFs, Errno> {
    let mut st = MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `st` is a writable statfs buffer.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatfs succeeded and filled the buffer.
    let st = unsafe { st.assume_init() };
    // SAFETY: fsid_t is a repr(C) pair of ints whose fields libc keeps
    // private; reading it as [i32; 2] is the C layout.
    let fsid: [i32; 2] = unsafe { core::mem::transmute(st.f_fsid) };
    // The field types differ between glibc (i64) and musl (u64); the
    // values (block size, name length) are small either way.
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    Ok(StatFs {
        bsize: st.f_bsize as i64,
        blocks: u64::from(st.f_blocks),
        bfree: u64::from(st.f_bfree),
        bavail: u64::from(st.f_bavail),
        files: u64::from(st.f_files),
        ffree: u64::from(st.f_ffree),
        fsid,
        namelen: st.f_namelen as i64,
    })
}

/// getxattr(2) of a path (followed), or listxattr(2) when `name` is
/// `None`. An empty `buf` asks for the size.
pub(super) fn getxattr(path: &CStr, name: Option<&CStr>, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: strings are NUL-terminated; the kernel writes at most
    // `buf.len()` bytes into `buf`.
    let r = unsafe {
        match name {
            Some(n) => libc::getxattr(
                path.as_ptr(),
                n.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            ),
            None => libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()),
        }
    };
    cvt_size(r)
}

/// setxattr(2) of a path (followed).
pub(super) fn setxattr(path: &CStr, name: &CStr, value: &[u8], flags: i32) -> Result<(), Errno> {
    // SAFETY: strings are NUL-terminated; `value` is read for its length.
    cvt(unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    })
    .map(drop)
}

/// removexattr(2) of a path (followed).
pub(super) fn removexattr(path: &CStr, name: &CStr) -> Result<(), Errno> {
    // SAFETY: both strings are NUL-terminated.
    cvt(unsafe { libc::removexattr(path.as_ptr(), name.as_ptr()) }).map(drop)
}

/// A record lock as fcntl(2) takes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Flock {
    pub(super) ty: i16,
    pub(super) start: i64,
    pub(super) len: i64,
    pub(super) pid: i32,
}

/// fcntl(2) with a lock command (F_OFD_SETLK, F_OFD_GETLK); returns the
/// lock as the kernel left it.
pub(super) fn fcntl_lock(fd: BorrowedFd<'_>, cmd: i32, lock: Flock) -> Result<Flock, Errno> {
    // SAFETY: flock is plain old data; zero is valid for every field.
    let mut fl: libc::flock = unsafe { core::mem::zeroed() };
    fl.l_type = lock.ty;
    fl.l_whence = libc::SEEK_SET as i16;
    fl.l_start = off(lock.start)?;
    fl.l_len = off(lock.len)?;
    fl.l_pid = lock.pid;
    // SAFETY: `fl` is a valid flock the kernel may read and write.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut fl as *mut libc::flock) })?;
    // off_t is i64 but on 32-bit glibc.
    #[allow(clippy::useless_conversion)]
    Ok(Flock {
        ty: fl.l_type,
        start: fl.l_start.into(),
        len: fl.l_len.into(),
        pid: fl.l_pid,
    })
}
