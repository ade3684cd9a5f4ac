//! Every 9P2000.L message, T and R, with its wire layout.
//!
//! One macro invocation lists each message's number and fields in wire
//! order; the structs, the [`Message`] enum and the codec are generated
//! from it, so the layout is written exactly once. Numbers and layouts
//! follow the Linux client (`include/net/9p/9p.h`, `net/9p/client.c`).

use alloc::vec::Vec;
use bytes::Bytes;
use core::fmt;

use crate::qid::Qid;
use crate::wire::{DecodeError, Wire};

macro_rules! messages {
    ($(
        $(#[$doc:meta])*
        $name:ident = $num:literal { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Default)]
            pub struct $name {
                $($(#[$fdoc])* pub $field: $ty,)*
            }

            impl $name {
                /// The message type number.
                pub const TYPE: u8 = $num;
            }

            impl From<$name> for Message {
                fn from(m: $name) -> Message {
                    Message::$name(m)
                }
            }
        )*

        /// Any 9P2000.L message.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum Message {
            $($name($name),)*
        }

        impl Message {
            /// The message type number.
            pub fn msg_type(&self) -> u8 {
                match self {
                    $(Message::$name(_) => $num,)*
                }
            }

            /// The size of the body (everything after size, type and tag).
            pub fn body_len(&self) -> usize {
                match self {
                    $(Message::$name(_m) => 0 $(+ _m.$field.wire_len())*,)*
                }
            }

            /// Appends the body.
            pub fn encode_body(&self, _out: &mut Vec<u8>) {
                match self {
                    $(Message::$name(_m) => { $(_m.$field.encode(_out);)* })*
                }
            }

            /// Decodes a body of message type `ty`; the body must be used
            /// up exactly.
            pub fn decode_body(ty: u8, mut _body: Bytes) -> Result<Message, DecodeError> {
                let msg = match ty {
                    $($num => Message::$name($name {
                        $($field: <$ty as Wire>::decode(&mut _body)?,)*
                    }),)*
                    other => return Err(DecodeError::UnknownType(other)),
                };
                if !_body.is_empty() {
                    return Err(DecodeError::TrailingBytes);
                }
                Ok(msg)
            }

            /// The message's name, for traces.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Message::$name(_) => stringify!($name),)*
                }
            }

            /// The message for a trace line: `Twalk fid 1 newfid 2
            /// wnames ["usr", "bin"]`, names as text, data as its length.
            pub fn trace(&self) -> Trace<'_> {
                Trace(self)
            }
        }

        impl fmt::Display for Trace<'_> {
            fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.0 {
                    $(Message::$name(_m) => {
                        _f.write_str(stringify!($name))?;
                        $(
                            _f.write_str(concat!(" ", stringify!($field), " "))?;
                            TraceField::trace(&_m.$field, _f)?;
                        )*
                        Ok(())
                    })*
                }
            }
        }
    };
}

/// A [`Message`] shown for people (see [`Message::trace`]).
#[derive(Debug, Clone, Copy)]
pub struct Trace<'a>(&'a Message);

/// How a field shows in a [`Trace`].
trait TraceField {
    fn trace(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

macro_rules! trace_number {
    ($($t:ty),*) => {$(
        impl TraceField for $t {
            fn trace(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{self}")
            }
        }
    )*};
}
trace_number!(u8, u16, u32, u64);

/// A name: text, quoted, bytes that are not UTF-8 replaced.
impl TraceField for Vec<u8> {
    fn trace(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", alloc::string::String::from_utf8_lossy(self))
    }
}

/// Data: only its length.
impl TraceField for Bytes {
    fn trace(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} bytes)", self.len())
    }
}

impl TraceField for Qid {
    fn trace(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:#x} {} {:#x})", self.ty, self.version, self.path)
    }
}

impl TraceField for Vec<Vec<u8>> {
    fn trace(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        trace_list(self, f)
    }
}

impl TraceField for Vec<Qid> {
    fn trace(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        trace_list(self, f)
    }
}

fn trace_list<T: TraceField>(list: &[T], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("[")?;
    for (i, x) in list.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        x.trace(f)?;
    }
    f.write_str("]")
}

messages! {
    /// Never sent; reserved by the protocol.
    Tlerror = 6 {}
    /// An error reply carrying a Linux errno.
    Rlerror = 7 { ecode: u32 }
    /// File-system statistics of the file's file system.
    Tstatfs = 8 { fid: u32 }
    /// statfs(2) fields.
    Rstatfs = 9 {
        fs_type: u32, bsize: u32, blocks: u64, bfree: u64, bavail: u64,
        files: u64, ffree: u64, fsid: u64, namelen: u32,
    }
    /// Open the file of a fid.
    Tlopen = 12 { fid: u32, flags: u32 }
    /// The opened file's qid and the largest I/O size (0: msize - IOHDRSZ).
    Rlopen = 13 { qid: Qid, iounit: u32 }
    /// Create and open a file in the directory `fid`; `fid` becomes the file.
    Tlcreate = 14 { fid: u32, name: Vec<u8>, flags: u32, mode: u32, gid: u32 }
    /// The created file's qid and iounit.
    Rlcreate = 15 { qid: Qid, iounit: u32 }
    /// Create a symbolic link `name` -> `symtgt` in directory `fid`.
    Tsymlink = 16 { fid: u32, name: Vec<u8>, symtgt: Vec<u8>, gid: u32 }
    /// The link's qid.
    Rsymlink = 17 { qid: Qid }
    /// Create a device node, fifo or socket in directory `dfid`.
    Tmknod = 18 { dfid: u32, name: Vec<u8>, mode: u32, major: u32, minor: u32, gid: u32 }
    /// The node's qid.
    Rmknod = 19 { qid: Qid }
    /// Move the file of `fid` to directory `dfid` as `name`.
    Trename = 20 { fid: u32, dfid: u32, name: Vec<u8> }
    /// Rename done.
    Rrename = 21 {}
    /// Read a symbolic link.
    Treadlink = 22 { fid: u32 }
    /// The link's target.
    Rreadlink = 23 { target: Vec<u8> }
    /// Get attributes; `request_mask` holds `getattr` bits.
    Tgetattr = 24 { fid: u32, request_mask: u64 }
    /// Attributes; `valid` says which fields are filled.
    Rgetattr = 25 {
        valid: u64, qid: Qid, mode: u32, uid: u32, gid: u32, nlink: u64, rdev: u64,
        size: u64, blksize: u64, blocks: u64,
        atime_sec: u64, atime_nsec: u64, mtime_sec: u64, mtime_nsec: u64,
        ctime_sec: u64, ctime_nsec: u64, btime_sec: u64, btime_nsec: u64,
        gen: u64, data_version: u64,
    }
    /// Set attributes; `valid` holds `setattr` bits.
    Tsetattr = 26 {
        fid: u32, valid: u32, mode: u32, uid: u32, gid: u32, size: u64,
        atime_sec: u64, atime_nsec: u64, mtime_sec: u64, mtime_nsec: u64,
    }
    /// Attributes set.
    Rsetattr = 27 {}
    /// Open extended attribute `name` (or the list, if empty) as `newfid`.
    Txattrwalk = 30 { fid: u32, newfid: u32, name: Vec<u8> }
    /// The attribute's size.
    Rxattrwalk = 31 { size: u64 }
    /// Prepare `fid` to receive the value of attribute `name` by writes.
    Txattrcreate = 32 { fid: u32, name: Vec<u8>, attr_size: u64, flags: u32 }
    /// Ready for writes.
    Rxattrcreate = 33 {}
    /// Read directory entries from `offset` (an offset from an earlier entry).
    Treaddir = 40 { fid: u32, offset: u64, count: u32 }
    /// Packed [`crate::Dirent`]s.
    Rreaddir = 41 { data: Bytes }
    /// Flush the file to stable storage.
    Tfsync = 50 { fid: u32, datasync: u32 }
    /// Done.
    Rfsync = 51 {}
    /// Acquire or release a POSIX record lock.
    Tlock = 52 {
        fid: u32, lock_type: u8, flags: u32, start: u64, length: u64,
        proc_id: u32, client_id: Vec<u8>,
    }
    /// `lock_status` value.
    Rlock = 53 { status: u8 }
    /// Test for a conflicting POSIX lock.
    Tgetlock = 54 {
        fid: u32, lock_type: u8, start: u64, length: u64, proc_id: u32, client_id: Vec<u8>,
    }
    /// The conflicting lock, or the request with type UNLCK when none.
    Rgetlock = 55 {
        lock_type: u8, start: u64, length: u64, proc_id: u32, client_id: Vec<u8>,
    }
    /// Make `name` in directory `dfid` a hard link to the file of `fid`.
    Tlink = 70 { dfid: u32, fid: u32, name: Vec<u8> }
    /// Done.
    Rlink = 71 {}
    /// Create directory `name` in `dfid`.
    Tmkdir = 72 { dfid: u32, name: Vec<u8>, mode: u32, gid: u32 }
    /// The directory's qid.
    Rmkdir = 73 { qid: Qid }
    /// Rename `oldname` in `olddirfid` to `newname` in `newdirfid`.
    Trenameat = 74 { olddirfid: u32, oldname: Vec<u8>, newdirfid: u32, newname: Vec<u8> }
    /// Done.
    Rrenameat = 75 {}
    /// Remove `name` from directory `dirfid`; `flags` may hold AT_REMOVEDIR.
    Tunlinkat = 76 { dirfid: u32, name: Vec<u8>, flags: u32 }
    /// Done.
    Runlinkat = 77 {}
    /// Negotiate msize and version; must come first.
    Tversion = 100 { msize: u32, version: Vec<u8> }
    /// The server's msize (at most the client's) and version.
    Rversion = 101 { msize: u32, version: Vec<u8> }
    /// Start authentication on `afid`.
    Tauth = 102 { afid: u32, uname: Vec<u8>, aname: Vec<u8>, n_uname: u32 }
    /// The auth file's qid.
    Rauth = 103 { aqid: Qid }
    /// Attach `fid` to the root of tree `aname`.
    Tattach = 104 { fid: u32, afid: u32, uname: Vec<u8>, aname: Vec<u8>, n_uname: u32 }
    /// The root's qid.
    Rattach = 105 { qid: Qid }
    /// Abort request `oldtag`.
    Tflush = 108 { oldtag: u16 }
    /// `oldtag` has been answered or abandoned; its tag is free.
    Rflush = 109 {}
    /// Walk `wnames` from `fid`; on full success `newfid` names the result.
    Twalk = 110 { fid: u32, newfid: u32, wnames: Vec<Vec<u8>> }
    /// The qids of the elements walked (fewer than asked: stopped early).
    Rwalk = 111 { wqids: Vec<Qid> }
    /// Read `count` bytes at `offset`.
    Tread = 116 { fid: u32, offset: u64, count: u32 }
    /// The bytes read.
    Rread = 117 { data: Bytes }
    /// Write `data` at `offset`.
    Twrite = 118 { fid: u32, offset: u64, data: Bytes }
    /// The number of bytes written.
    Rwrite = 119 { count: u32 }
    /// Forget a fid.
    Tclunk = 120 { fid: u32 }
    /// Done.
    Rclunk = 121 {}
    /// Remove the file of `fid`, and clunk the fid.
    Tremove = 122 { fid: u32 }
    /// Done.
    Rremove = 123 {}
}

impl Message {
    /// Whether this is a request (T-message). T types are even, R odd.
    pub fn is_request(&self) -> bool {
        self.msg_type() % 2 == 0
    }
}
