//! Attributes: Tgetattr, Tsetattr and Tstatfs.
//!
//! Everything is read with one statx of the node's own descriptor (never
//! following a symlink), and written through calls that act on the
//! node's inode: fchownat with AT_EMPTY_PATH on the `O_PATH` descriptor,
//! and chmod, truncate and utimensat through its `/proc/self/fd` link,
//! which the kernel resolves to exactly that inode.

use std::os::fd::AsFd;

use proto_9p::consts::{getattr as ga, setattr as sa};
use proto_9p::messages::{Rgetattr, Rstatfs, Tsetattr};
use proto_9p::Errno;

use super::fid::{Fid, Open};
use super::{sys, LocalExport};

/// statx mask bits and the getattr bits they fill.
const FIELDS: [(u32, u64); 10] = [
    (libc::STATX_MODE, ga::MODE),
    (libc::STATX_NLINK, ga::NLINK),
    (libc::STATX_UID, ga::UID),
    (libc::STATX_GID, ga::GID),
    (libc::STATX_ATIME, ga::ATIME),
    (libc::STATX_MTIME, ga::MTIME),
    (libc::STATX_CTIME, ga::CTIME),
    (libc::STATX_INO, ga::INO),
    (libc::STATX_SIZE, ga::SIZE),
    (libc::STATX_BLOCKS, ga::BLOCKS),
];

/// `V9FS_MAGIC` of Linux's `include/uapi/linux/magic.h`.
const V9FS_MAGIC: u32 = 0x0102_1997;

impl LocalExport {
    /// All the attributes statx has, whatever was asked: `valid` tells the
    /// client which are filled. RDEV is always filled by statx; BTIME when
    /// the file system keeps it. GEN and DATA_VERSION are not offered.
    pub(super) fn do_getattr(&self, fid: &Fid) -> Result<Rgetattr, Errno> {
        let node = fid.node();
        let st = sys::statx(node.fd.as_fd(), c"")?;
        let mut valid = ga::RDEV;
        for (sx, bit) in FIELDS {
            if st.stx_mask & sx != 0 {
                valid |= bit;
            }
        }
        let mut r = Rgetattr {
            valid,
            qid: node.qid(&st),
            mode: u32::from(st.stx_mode),
            uid: st.stx_uid,
            gid: st.stx_gid,
            nlink: u64::from(st.stx_nlink),
            rdev: libc::makedev(st.stx_rdev_major, st.stx_rdev_minor),
            size: st.stx_size,
            blksize: u64::from(st.stx_blksize),
            blocks: st.stx_blocks,
            atime_sec: st.stx_atime.tv_sec as u64,
            atime_nsec: u64::from(st.stx_atime.tv_nsec),
            mtime_sec: st.stx_mtime.tv_sec as u64,
            mtime_nsec: u64::from(st.stx_mtime.tv_nsec),
            ctime_sec: st.stx_ctime.tv_sec as u64,
            ctime_nsec: u64::from(st.stx_ctime.tv_nsec),
            ..Rgetattr::default()
        };
        if st.stx_mask & libc::STATX_BTIME != 0 {
            r.valid |= ga::BTIME;
            r.btime_sec = st.stx_btime.tv_sec as u64;
            r.btime_nsec = u64::from(st.stx_btime.tv_nsec);
        }
        Ok(r)
    }

    /// The order: owner first (chown clears set-id bits, so a mode in the
    /// same request must come after it), then mode, then size, then times
    /// (a truncate sets mtime, which explicit times must override). The
    /// first failure is returned with its errno; earlier changes stay, as
    /// with the separate system calls a local program would make.
    pub(super) fn do_setattr(&self, fid: &Fid, msg: &Tsetattr) -> Result<(), Errno> {
        let node = fid.node();
        let v = msg.valid;
        if v & (sa::UID | sa::GID) != 0 {
            let uid = if v & sa::UID != 0 { msg.uid } else { u32::MAX };
            let gid = if v & sa::GID != 0 { msg.gid } else { u32::MAX };
            sys::fchown(node.fd.as_fd(), uid, gid)?;
        } else if v & sa::CTIME != 0 && v & (sa::MODE | sa::SIZE | sa::ATIME | sa::MTIME) == 0 {
            // A bare ctime update: an ownership change to nothing sets it.
            sys::fchown(node.fd.as_fd(), u32::MAX, u32::MAX)?;
        }
        if v & sa::MODE != 0 {
            sys::chmod(&node.proc_path(), msg.mode & 0o7777)?;
        }
        if v & sa::SIZE != 0 {
            let size = i64::try_from(msg.size).map_err(|_| Errno::EFBIG)?;
            match fid.open() {
                // ftruncate works on a file opened for writing even when
                // its mode no longer allows writes, as locally.
                Open::File {
                    file,
                    writable: true,
                } => file.set_len(msg.size).map_err(super::io_errno)?,
                _ => sys::truncate(&node.proc_path(), size)?,
            }
        }
        if v & (sa::ATIME | sa::MTIME) != 0 {
            let times = [
                time(v, sa::ATIME, sa::ATIME_SET, msg.atime_sec, msg.atime_nsec)?,
                time(v, sa::MTIME, sa::MTIME_SET, msg.mtime_sec, msg.mtime_nsec)?,
            ];
            sys::utimens(&node.proc_path(), &times)?;
        }
        Ok(())
    }

    pub(super) fn do_statfs(&self, fid: &Fid) -> Result<Rstatfs, Errno> {
        let s = sys::fstatfs(fid.node().fd.as_fd())?;
        Ok(Rstatfs {
            // The 9p magic, not the host file system's: programs derive
            // limits from f_type (glibc's pathconf(_PC_LINK_MAX) does), and
            // those of the host's file system do not hold across 9P.
            fs_type: V9FS_MAGIC,
            bsize: s.bsize as u32,
            blocks: s.blocks,
            bfree: s.bfree,
            bavail: s.bavail,
            files: s.files,
            ffree: s.ffree,
            fsid: u64::from(s.fsid[0] as u32) | u64::from(s.fsid[1] as u32) << 32,
            namelen: s.namelen as u32,
        })
    }
}

/// One utimensat time: left alone, "now", or the time given.
fn time(valid: u32, bit: u32, set: u32, sec: u64, nsec: u64) -> Result<libc::timespec, Errno> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if valid & bit == 0 {
        t.tv_nsec = libc::UTIME_OMIT;
    } else if valid & set == 0 {
        t.tv_nsec = libc::UTIME_NOW;
    } else {
        t.tv_sec = sec.try_into().map_err(|_| Errno::EINVAL)?;
        if nsec >= 1_000_000_000 {
            return Err(Errno::EINVAL);
        }
        t.tv_nsec = nsec as libc::c_long;
    }
    Ok(t)
}
