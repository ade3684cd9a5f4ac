//! Opening files and moving their bytes: Tlopen, Tlcreate, Tread, Twrite,
//! Tfsync.
//!
//! A fid is opened by reopening its `O_PATH` descriptor through
//! `/proc/self/fd/N`, which reaches exactly the inode the walk found (no
//! name is looked up again, so nothing can be swapped in between). A
//! symlink is never opened (ELOOP, as O_NOFOLLOW would answer).
//!
//! Special files: character and block devices, FIFOs and sockets are all
//! refused with EPERM unless `allow_devices`. Opening a device may have
//! effects on the host (CVE-2023-2861 in QEMU's 9P server), and opening a
//! FIFO blocks a server thread until a writer comes. The Linux client
//! never opens these on the server anyway: it serves FIFOs and device
//! nodes of a 9P mount locally, from their mode and rdev.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use bytes::Bytes;
use proto_9p::consts::open_flags as of;
use proto_9p::consts::NOFID;
use proto_9p::messages::Tlcreate;
use proto_9p::{Errno, Qid};

use super::dir::DirStream;
use super::fid::{Fid, Kind, Loc, Node, Open};
use super::names::checked_name;
use super::{sys, xattr, LocalExport};

/// The most bytes one Tread returns; the session already clamps counts to
/// the msize, this only bounds the allocation of a misbehaving caller.
const MAX_IO: u32 = 16 * 1024 * 1024;

/// Translates 9P open flags to the host's, bit by bit, keeping only what a
/// server should honour.
///
/// Dropped: CREATE and EXCL (Tlopen never creates; Tlcreate adds its own),
/// NOCTTY, CLOEXEC and LARGEFILE (always set), FASYNC (signals to this
/// process would mean nothing), DIRECT (our buffers are not aligned for
/// it; caching policy is the client's), NOFOLLOW (a fid never names a
/// followed link), NOATIME (EPERM on files we do not own; atime is the
/// host's business).
pub(super) fn host_flags(flags: u32) -> Result<libc::c_int, Errno> {
    let mut f = match flags & of::ACCMODE {
        of::RDONLY => libc::O_RDONLY,
        of::WRONLY => libc::O_WRONLY,
        of::RDWR => libc::O_RDWR,
        _ => return Err(Errno::EINVAL),
    };
    let map = [
        (of::TRUNC, libc::O_TRUNC),
        (of::APPEND, libc::O_APPEND),
        (of::NONBLOCK, libc::O_NONBLOCK),
        (of::DSYNC, libc::O_DSYNC),
        (of::SYNC, libc::O_SYNC),
        (of::DIRECTORY, libc::O_DIRECTORY),
    ];
    for (wire, host) in map {
        if flags & wire != 0 {
            f |= host;
        }
    }
    Ok(f | libc::O_CLOEXEC | libc::O_NOCTTY)
}

impl LocalExport {
    fn check_openable(&self, kind: Kind) -> Result<(), Errno> {
        match kind {
            Kind::Symlink => Err(Errno::ELOOP),
            Kind::Device | Kind::Special if !self.options.allow_devices => Err(Errno::EPERM),
            _ => Ok(()),
        }
    }

    pub(super) fn do_lopen(&self, fid: &Fid, flags: u32) -> Result<(Qid, u32, Fid), Errno> {
        let node = fid.node();
        self.check_openable(node.kind)?;
        let hflags = host_flags(flags)?;
        let fd = sys::openat(None, &node.proc_path(), hflags)?;
        let st = sys::statx(fd.as_fd(), c"")?;
        let open = make_open(node.kind, fd, flags);
        Ok((node.qid(&st), 0, Fid::new(node.clone(), open, fid.user())))
    }

    pub(super) fn do_lcreate(&self, dir: &Fid, msg: &Tlcreate) -> Result<(Qid, u32, Fid), Errno> {
        let dnode = dir.node();
        if dnode.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        let name = checked_name(&msg.name)?;
        let hflags = host_flags(msg.flags & !of::DIRECTORY)?;
        let mode = msg.mode & 0o7777;
        // Always O_EXCL first: an existing name must be opened by the
        // checked path (it may be a device, FIFO or symlink), and knowing
        // we made the file tells whether to set its mode.
        let created = sys::openat2(
            dnode.fd.as_fd(),
            &name,
            hflags | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            mode,
            super::RESOLVE_CHILD,
        );
        match created {
            Ok(fd) => self.created_file(dnode, name, fd, (mode, msg.flags), (dir.user(), msg.gid)),
            Err(Errno::EEXIST) if msg.flags & of::EXCL == 0 => {
                let (node, _) = self.child(dnode, name)?;
                let f = Fid::new(node, Open::None, dir.user());
                self.do_lopen(&f, msg.flags & !(of::CREATE | of::EXCL))
            }
            Err(e) => Err(e),
        }
    }

    fn created_file(
        &self,
        dnode: &std::sync::Arc<Node>,
        name: CString,
        fd: OwnedFd,
        (mode, flags): (u32, u32),
        (user, gid): (u32, u32),
    ) -> Result<(Qid, u32, Fid), Errno> {
        let mut st = sys::statx(fd.as_fd(), c"")?;
        if give_owner(fd.as_fd(), &st, user, gid)? {
            st = sys::statx(fd.as_fd(), c"")?;
        }
        if let Some(fixed) = mode_fix(&st, mode) {
            sys::fchmod(fd.as_fd(), fixed)?;
            st = sys::statx(fd.as_fd(), c"")?;
        }
        // The node's own O_PATH descriptor, from the open file: the same
        // inode, with no second lookup of the name.
        let path_fd = sys::openat(
            None,
            &super::fid::proc_path_of(std::os::fd::AsRawFd::as_raw_fd(&fd)),
            libc::O_PATH | libc::O_CLOEXEC,
        )?;
        let node = self.make_node(
            path_fd,
            &st,
            Loc::At {
                dir: dnode.clone(),
                name,
            },
        )?;
        let qid = node.qid(&st);
        let open = make_open(Kind::Regular, fd, flags);
        Ok((qid, 0, Fid::new(node, open, user)))
    }

    pub(super) fn do_read(&self, fid: &Fid, offset: u64, count: u32) -> Result<Bytes, Errno> {
        match fid.open() {
            Open::File { file, .. } => {
                let off = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
                // The one buffer of the read, filled without zeroing. (A
                // short read costs bytes one small header allocation more.)
                let mut buf = Vec::with_capacity(count.min(MAX_IO) as usize);
                sys::pread_into(file.as_fd(), &mut buf, off)?;
                Ok(Bytes::from(buf))
            }
            Open::XattrRead(value) => Ok(xattr::read(value, offset, count)),
            Open::Dir(_) => Err(Errno::EISDIR),
            Open::None | Open::XattrWrite(_) => Err(Errno::EBADF),
        }
    }

    pub(super) fn do_write(&self, fid: &Fid, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        match fid.open() {
            Open::File { file, .. } => {
                // With O_APPEND, Linux's pwrite appends whatever the offset.
                let n = match file.write_at(data, offset) {
                    // Pipes and sockets have no offsets.
                    Err(e) if e.raw_os_error() == Some(libc::ESPIPE) => {
                        std::io::Write::write(&mut &*file, data)
                    }
                    r => r,
                }
                .map_err(super::io_errno)?;
                u32::try_from(n).map_err(|_| Errno::EIO)
            }
            Open::XattrWrite(w) => xattr::write(w, offset, data),
            Open::None | Open::Dir(_) | Open::XattrRead(_) => Err(Errno::EBADF),
        }
    }

    pub(super) fn do_fsync(&self, fid: &Fid, datasync: bool) -> Result<(), Errno> {
        match fid.open() {
            Open::File { file, .. } => sys::fsync(file.as_fd(), datasync),
            Open::Dir(stream) => super::fid::lock(stream).fsync(datasync),
            _ => Err(Errno::EBADF),
        }
    }
}

fn make_open(kind: Kind, fd: OwnedFd, flags: u32) -> Open {
    if kind == Kind::Dir {
        Open::Dir(Mutex::new(DirStream::new(fd)))
    } else {
        Open::File {
            file: File::from(fd),
            writable: flags & of::ACCMODE != of::RDONLY,
        }
    }
}

/// Gives a new file the owner the client asked for: the attaching user
/// and the group of the request (the Linux client sends the creator's
/// ids). Only what this process may do happens: as an ordinary user,
/// a group it belongs to; as root, anyone. EPERM leaves the file ours,
/// which is the rule of a server that takes no privilege of its own.
/// Returns whether the owner changed. Done before any chmod, since a
/// chown clears the set-id bits.
pub(super) fn give_owner(
    fd: std::os::fd::BorrowedFd<'_>,
    st: &libc::statx,
    user: u32,
    gid: u32,
) -> Result<bool, Errno> {
    let want = |id: u32, have: u32| {
        if id == NOFID || id == have {
            u32::MAX
        } else {
            id
        }
    };
    let (uid, gid) = (want(user, st.stx_uid), want(gid, st.stx_gid));
    if uid == u32::MAX && gid == u32::MAX {
        return Ok(false);
    }
    match sys::fchown(fd, uid, gid) {
        Ok(()) => Ok(true),
        // Not allowed to give the file away: try the group alone.
        Err(Errno::EPERM) if uid != u32::MAX && gid != u32::MAX => {
            match sys::fchown(fd, u32::MAX, gid) {
                Ok(()) => Ok(true),
                Err(Errno::EPERM) => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(Errno::EPERM) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The mode a new file should have: what the client asked for, which
/// already went through the client's umask. Ours must not apply twice, and
/// a chown (`give_owner`) may have cleared set-id bits. Directories keep
/// the setgid bit as the kernel set it (inherited from the parent), as a
/// local mkdir(2) ignores it in the mode.
fn wanted_mode(st: &libc::statx, mode: u32) -> u32 {
    let have = u32::from(st.stx_mode);
    if have & libc::S_IFMT == libc::S_IFDIR {
        (have & libc::S_ISGID) | (mode & 0o1777)
    } else {
        mode & 0o7777
    }
}

/// The mode to set on a new file, when it differs from what it got.
pub(super) fn mode_fix(st: &libc::statx, mode: u32) -> Option<u32> {
    let want = wanted_mode(st, mode);
    (u32::from(st.stx_mode) & 0o7777 != want).then_some(want)
}
