//! Conversions between 9P2000.L and FUSE: attributes, times, device
//! numbers, open flags and directory entry types.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use proto_9p::consts::open_flags as dotl;
use proto_9p::messages::Rgetattr;
use proto_9p::Dirent;

/// The FUSE attributes of a Rgetattr.
pub(super) fn to_attr(ino: INodeNo, a: &Rgetattr) -> FileAttr {
    let kind = match a.mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    };
    let mtime = time(a.mtime_sec, a.mtime_nsec);
    FileAttr {
        ino,
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime_sec, a.atime_nsec),
        mtime,
        ctime: time(a.ctime_sec, a.ctime_nsec),
        crtime: mtime,
        kind,
        perm: (a.mode & 0o7777) as u16,
        nlink: u32::try_from(a.nlink).unwrap_or(u32::MAX),
        uid: a.uid,
        gid: a.gid,
        rdev: old_dev(a.rdev),
        blksize: u32::try_from(a.blksize).unwrap_or(4096),
        flags: 0,
    }
}

/// A 64-bit dev_t as FUSE's 32-bit one (the kernel's new_encode_dev).
pub(super) fn old_dev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)) as u32
}

/// Seconds and nanoseconds since the epoch (signed seconds on the wire).
pub(super) fn time(sec: u64, nsec: u64) -> SystemTime {
    let nsec = Duration::from_nanos(nsec.min(999_999_999));
    let sec = sec as i64;
    let t = if sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(sec.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(sec.unsigned_abs()))
    };
    t.and_then(|t| t.checked_add(nsec)).unwrap_or(UNIX_EPOCH)
}

/// A SystemTime as wire seconds and nanoseconds.
pub(super) fn wire_time(t: SystemTime) -> (u64, u64) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs(), u64::from(d.subsec_nanos())),
        Err(e) => {
            let d = e.duration();
            // Before the epoch: negative seconds, positive nanoseconds.
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 {
                ((-s) as u64, 0)
            } else {
                ((-s - 1) as u64, u64::from(1_000_000_000 - n))
            }
        }
    }
}

/// Linux open(2) flags as 9P2000.L flags (the same numbers on x86 only).
/// O_CREAT and O_EXCL only for Tlcreate; O_DIRECT and O_NOATIME stay
/// with the kernel's page cache and permission checks.
pub(super) fn dotl_flags(flags: i32, create: bool) -> u32 {
    let mut out = match flags & libc::O_ACCMODE {
        libc::O_WRONLY => dotl::WRONLY,
        libc::O_RDWR => dotl::RDWR,
        _ => dotl::RDONLY,
    };
    let mut map = vec![
        (libc::O_TRUNC, dotl::TRUNC),
        (libc::O_APPEND, dotl::APPEND),
        (libc::O_DSYNC, dotl::DSYNC),
        (libc::O_SYNC, dotl::SYNC),
        (libc::O_NOFOLLOW, dotl::NOFOLLOW),
    ];
    if create {
        map.push((libc::O_CREAT, dotl::CREATE));
        map.push((libc::O_EXCL, dotl::EXCL));
    }
    for (l, d) in map {
        if flags & l == l {
            out |= d;
        }
    }
    out
}

pub(super) fn name_bytes(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

pub(super) fn dirent_type(d: &Dirent) -> FileType {
    // d.ty is a DT_* value from the server's getdents.
    match d.ty {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        libc::DT_REG => FileType::RegularFile,
        _ if d.qid.is_dir() => FileType::Directory,
        _ => FileType::RegularFile,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dev_numbers_round_trip() {
        // makedev(8, 1) and a large minor, as glibc encodes them.
        let dev64 = |maj: u64, min: u64| {
            ((maj & 0xfffff000) << 32)
                | ((maj & 0xfff) << 8)
                | ((min & 0xffffff00) << 12)
                | (min & 0xff)
        };
        assert_eq!(old_dev(dev64(8, 1)), (8 << 8) | 1);
        assert_eq!(
            old_dev(dev64(136, 300)),
            (300 & 0xff) | (136 << 8) | ((300 & !0xff) << 12)
        );
    }

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let (s, n) = wire_time(t);
        assert_eq!(time(s, n), t);
        let before = UNIX_EPOCH - Duration::new(10, 250);
        let (s, n) = wire_time(before);
        assert_eq!(time(s, n), before);
        // A hostile nanosecond field does not panic.
        let _ = time(u64::MAX, u64::MAX);
    }

    #[test]
    fn open_flags_translate() {
        assert_eq!(
            dotl_flags(libc::O_RDWR | libc::O_TRUNC, false),
            dotl::RDWR | dotl::TRUNC
        );
        assert_eq!(
            dotl_flags(libc::O_WRONLY | libc::O_CREAT, false),
            dotl::WRONLY
        );
        assert_eq!(
            dotl_flags(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, true),
            dotl::WRONLY | dotl::CREATE | dotl::EXCL
        );
    }
}
