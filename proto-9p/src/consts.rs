//! Protocol constants of 9P2000.L.
//!
//! Values are taken from the Linux client's `include/net/9p/9p.h`, which is
//! the de-facto specification of the .L dialect.

/// The tag used by Tversion, which is outside the tag space.
pub const NOTAG: u16 = 0xffff;
/// "No fid", e.g. the afid of an unauthenticated Tattach.
pub const NOFID: u32 = 0xffff_ffff;
/// The only version string this crate speaks.
pub const VERSION_9P2000_L: &[u8] = b"9P2000.L";
/// The largest number of names in one Twalk (MAXWELEM).
pub const MAX_WELEM: usize = 16;
/// Bytes of framing before the payload of Tread/Twrite/Rread (P9_IOHDRSZ).
///
/// Payloads are limited to `msize - IOHDRSZ`, as the Linux client does.
pub const IOHDRSZ: u32 = 24;
/// Bytes of framing before the payload of Rreaddir (P9_READDIRHDRSZ).
pub const READDIRHDRSZ: u32 = 24;
/// The size of the fixed header: size[4] type[1] tag[2].
pub const HEADER_LEN: usize = 7;
/// The smallest msize the server accepts: room for any fixed-size reply.
pub const MIN_MSIZE: u32 = 4096;

/// Qid type bits (P9_QT*).
pub mod qid_type {
    /// A directory.
    pub const DIR: u8 = 0x80;
    /// An append-only file.
    pub const APPEND: u8 = 0x40;
    /// An exclusive-use file.
    pub const EXCL: u8 = 0x20;
    /// A mounted channel.
    pub const MOUNT: u8 = 0x10;
    /// An authentication file.
    pub const AUTH: u8 = 0x08;
    /// A temporary file.
    pub const TMP: u8 = 0x04;
    /// A symbolic link.
    pub const SYMLINK: u8 = 0x02;
    /// A hard link (unused by Linux).
    pub const LINK: u8 = 0x01;
    /// A plain file.
    pub const FILE: u8 = 0x00;
}

/// Tgetattr request mask and Rgetattr valid bits (P9_GETATTR_*).
pub mod getattr {
    /// st_mode.
    pub const MODE: u64 = 0x0000_0001;
    /// st_nlink.
    pub const NLINK: u64 = 0x0000_0002;
    /// st_uid.
    pub const UID: u64 = 0x0000_0004;
    /// st_gid.
    pub const GID: u64 = 0x0000_0008;
    /// st_rdev.
    pub const RDEV: u64 = 0x0000_0010;
    /// st_atime.
    pub const ATIME: u64 = 0x0000_0020;
    /// st_mtime.
    pub const MTIME: u64 = 0x0000_0040;
    /// st_ctime.
    pub const CTIME: u64 = 0x0000_0080;
    /// st_ino.
    pub const INO: u64 = 0x0000_0100;
    /// st_size.
    pub const SIZE: u64 = 0x0000_0200;
    /// st_blocks.
    pub const BLOCKS: u64 = 0x0000_0400;
    /// Birth time.
    pub const BTIME: u64 = 0x0000_0800;
    /// Generation number.
    pub const GEN: u64 = 0x0000_1000;
    /// Data version.
    pub const DATA_VERSION: u64 = 0x0000_2000;
    /// Everything in the classic stat (mode through blocks).
    pub const BASIC: u64 = 0x0000_07ff;
    /// Everything.
    pub const ALL: u64 = 0x0000_3fff;
}

/// Tsetattr valid bits (P9_ATTR_*).
pub mod setattr {
    /// Set the mode.
    pub const MODE: u32 = 0x0000_0001;
    /// Set the owner.
    pub const UID: u32 = 0x0000_0002;
    /// Set the group.
    pub const GID: u32 = 0x0000_0004;
    /// Truncate or extend to `size`.
    pub const SIZE: u32 = 0x0000_0008;
    /// Set atime (to now unless ATIME_SET).
    pub const ATIME: u32 = 0x0000_0010;
    /// Set mtime (to now unless MTIME_SET).
    pub const MTIME: u32 = 0x0000_0020;
    /// Set ctime (always "now").
    pub const CTIME: u32 = 0x0000_0040;
    /// atime comes from the message.
    pub const ATIME_SET: u32 = 0x0000_0080;
    /// mtime comes from the message.
    pub const MTIME_SET: u32 = 0x0000_0100;
}

/// Tlopen/Tlcreate flags (P9_DOTL_*). They equal Linux x86 O_* values, but
/// a server must translate them rather than pass them through, since the
/// host's O_* differ on other architectures.
pub mod open_flags {
    /// O_RDONLY.
    pub const RDONLY: u32 = 0o0;
    /// O_WRONLY.
    pub const WRONLY: u32 = 0o1;
    /// O_RDWR.
    pub const RDWR: u32 = 0o2;
    /// The access-mode mask.
    pub const ACCMODE: u32 = 0o3;
    /// O_CREAT.
    pub const CREATE: u32 = 0o100;
    /// O_EXCL.
    pub const EXCL: u32 = 0o200;
    /// O_NOCTTY.
    pub const NOCTTY: u32 = 0o400;
    /// O_TRUNC.
    pub const TRUNC: u32 = 0o1000;
    /// O_APPEND.
    pub const APPEND: u32 = 0o2000;
    /// O_NONBLOCK.
    pub const NONBLOCK: u32 = 0o4000;
    /// O_DSYNC.
    pub const DSYNC: u32 = 0o10000;
    /// FASYNC.
    pub const FASYNC: u32 = 0o20000;
    /// O_DIRECT.
    pub const DIRECT: u32 = 0o40000;
    /// O_LARGEFILE.
    pub const LARGEFILE: u32 = 0o100000;
    /// O_DIRECTORY.
    pub const DIRECTORY: u32 = 0o200000;
    /// O_NOFOLLOW.
    pub const NOFOLLOW: u32 = 0o400000;
    /// O_NOATIME.
    pub const NOATIME: u32 = 0o1000000;
    /// O_CLOEXEC.
    pub const CLOEXEC: u32 = 0o2000000;
    /// O_SYNC.
    pub const SYNC: u32 = 0o4000000;
}

/// Tlock/Tgetlock lock types (P9_LOCK_TYPE_*).
pub mod lock_type {
    /// A read (shared) lock.
    pub const RDLCK: u8 = 0;
    /// A write (exclusive) lock.
    pub const WRLCK: u8 = 1;
    /// Unlock.
    pub const UNLCK: u8 = 2;
}

/// Tlock flags (P9_LOCK_FLAGS_*).
pub mod lock_flags {
    /// Wait for the lock (F_SETLKW).
    pub const BLOCK: u32 = 1;
    /// Reclaim a lock after a server restart.
    pub const RECLAIM: u32 = 2;
}

/// Rlock status (P9_LOCK_*).
pub mod lock_status {
    /// The lock was granted.
    pub const SUCCESS: u8 = 0;
    /// The lock is held by someone else.
    pub const BLOCKED: u8 = 1;
    /// Another error.
    pub const ERROR: u8 = 2;
    /// The lock request was cancelled by a flush.
    pub const GRACE: u8 = 3;
}

/// Tunlinkat flags.
pub mod unlink_flags {
    /// AT_REMOVEDIR: remove a directory.
    pub const REMOVEDIR: u32 = 0x200;
}
