//! Shared by the codec property tests and the fuzz-corpus tests: every
//! message with its field types, and a proptest strategy for each.
//!
//! The list repeats the layouts of `src/messages.rs` on purpose: a change
//! of a wire layout there then fails to compile or fails a test here,
//! instead of silently agreeing with itself.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::Union;
use proto_9p::messages::*;
use proto_9p::{Message, Qid};

/// A field type of some message, with a strategy for its values.
pub(crate) trait Field: Sized + core::fmt::Debug {
    fn strategy() -> BoxedStrategy<Self>;
}

macro_rules! int_fields {
    ($($t:ty)*) => {$(
        impl Field for $t {
            fn strategy() -> BoxedStrategy<Self> {
                any::<$t>().boxed()
            }
        }
    )*};
}
int_fields!(u8 u16 u32 u64);

/// A name or other string; longer than NAME_MAX now and then.
pub(crate) fn string() -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=300).boxed()
}

pub(crate) fn qid() -> BoxedStrategy<Qid> {
    (any::<u8>(), any::<u32>(), any::<u64>())
        .prop_map(|(ty, version, path)| Qid { ty, version, path })
        .boxed()
}

impl Field for Vec<u8> {
    fn strategy() -> BoxedStrategy<Self> {
        string()
    }
}

impl Field for Bytes {
    fn strategy() -> BoxedStrategy<Self> {
        prop::collection::vec(any::<u8>(), 0..=4096)
            .prop_map(Bytes::from)
            .boxed()
    }
}

impl Field for Qid {
    fn strategy() -> BoxedStrategy<Self> {
        qid()
    }
}

/// Twalk names: 0..=16, the protocol's limit.
impl Field for Vec<Vec<u8>> {
    fn strategy() -> BoxedStrategy<Self> {
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=40), 0..=16).boxed()
    }
}

/// Rwalk qids: 0..=16.
impl Field for Vec<Qid> {
    fn strategy() -> BoxedStrategy<Self> {
        prop::collection::vec(qid(), 0..=16).boxed()
    }
}

// Right-nested tuples `(a, (b, (c, ())))`, since proptest's tuple
// strategies stop at 12 elements and Rgetattr has 20 fields.
macro_rules! nested_strategy {
    () => { Just(()) };
    ($ty:ty $(, $rest:ty)*) => {
        (<$ty as Field>::strategy(), nested_strategy!($($rest),*))
    };
}

macro_rules! nested_pattern {
    () => { () };
    ($f:ident $(, $rest:ident)*) => { ($f, nested_pattern!($($rest),*)) };
}

macro_rules! all_messages {
    ($($name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {
        /// Any message, every type equally likely.
        pub(crate) fn any_message() -> BoxedStrategy<Message> {
            Union::new(vec![$(
                nested_strategy!($($ty),*)
                    .prop_map(|nested_pattern!($($field),*)| Message::from($name { $($field),* }))
                    .boxed(),
            )*])
            .boxed()
        }

        /// One message of each type, every field zero or empty.
        pub(crate) fn defaults() -> Vec<Message> {
            vec![$(Message::from($name::default()),)*]
        }

        /// Fails to compile when `Message` gains a variant missing above.
        fn exhaustive(m: &Message) {
            match m {
                $(Message::$name(_) => {})*
            }
        }
    };
}

all_messages! {
    Tlerror {}
    Rlerror { ecode: u32 }
    Tstatfs { fid: u32 }
    Rstatfs {
        fs_type: u32, bsize: u32, blocks: u64, bfree: u64, bavail: u64,
        files: u64, ffree: u64, fsid: u64, namelen: u32,
    }
    Tlopen { fid: u32, flags: u32 }
    Rlopen { qid: Qid, iounit: u32 }
    Tlcreate { fid: u32, name: Vec<u8>, flags: u32, mode: u32, gid: u32 }
    Rlcreate { qid: Qid, iounit: u32 }
    Tsymlink { fid: u32, name: Vec<u8>, symtgt: Vec<u8>, gid: u32 }
    Rsymlink { qid: Qid }
    Tmknod { dfid: u32, name: Vec<u8>, mode: u32, major: u32, minor: u32, gid: u32 }
    Rmknod { qid: Qid }
    Trename { fid: u32, dfid: u32, name: Vec<u8> }
    Rrename {}
    Treadlink { fid: u32 }
    Rreadlink { target: Vec<u8> }
    Tgetattr { fid: u32, request_mask: u64 }
    Rgetattr {
        valid: u64, qid: Qid, mode: u32, uid: u32, gid: u32, nlink: u64, rdev: u64,
        size: u64, blksize: u64, blocks: u64,
        atime_sec: u64, atime_nsec: u64, mtime_sec: u64, mtime_nsec: u64,
        ctime_sec: u64, ctime_nsec: u64, btime_sec: u64, btime_nsec: u64,
        gen: u64, data_version: u64,
    }
    Tsetattr {
        fid: u32, valid: u32, mode: u32, uid: u32, gid: u32, size: u64,
        atime_sec: u64, atime_nsec: u64, mtime_sec: u64, mtime_nsec: u64,
    }
    Rsetattr {}
    Txattrwalk { fid: u32, newfid: u32, name: Vec<u8> }
    Rxattrwalk { size: u64 }
    Txattrcreate { fid: u32, name: Vec<u8>, attr_size: u64, flags: u32 }
    Rxattrcreate {}
    Treaddir { fid: u32, offset: u64, count: u32 }
    Rreaddir { data: Bytes }
    Tfsync { fid: u32, datasync: u32 }
    Rfsync {}
    Tlock {
        fid: u32, lock_type: u8, flags: u32, start: u64, length: u64,
        proc_id: u32, client_id: Vec<u8>,
    }
    Rlock { status: u8 }
    Tgetlock {
        fid: u32, lock_type: u8, start: u64, length: u64, proc_id: u32, client_id: Vec<u8>,
    }
    Rgetlock { lock_type: u8, start: u64, length: u64, proc_id: u32, client_id: Vec<u8> }
    Tlink { dfid: u32, fid: u32, name: Vec<u8> }
    Rlink {}
    Tmkdir { dfid: u32, name: Vec<u8>, mode: u32, gid: u32 }
    Rmkdir { qid: Qid }
    Trenameat { olddirfid: u32, oldname: Vec<u8>, newdirfid: u32, newname: Vec<u8> }
    Rrenameat {}
    Tunlinkat { dirfid: u32, name: Vec<u8>, flags: u32 }
    Runlinkat {}
    Tversion { msize: u32, version: Vec<u8> }
    Rversion { msize: u32, version: Vec<u8> }
    Tauth { afid: u32, uname: Vec<u8>, aname: Vec<u8>, n_uname: u32 }
    Rauth { aqid: Qid }
    Tattach { fid: u32, afid: u32, uname: Vec<u8>, aname: Vec<u8>, n_uname: u32 }
    Rattach { qid: Qid }
    Tflush { oldtag: u16 }
    Rflush {}
    Twalk { fid: u32, newfid: u32, wnames: Vec<Vec<u8>> }
    Rwalk { wqids: Vec<Qid> }
    Tread { fid: u32, offset: u64, count: u32 }
    Rread { data: Bytes }
    Twrite { fid: u32, offset: u64, data: Bytes }
    Rwrite { count: u32 }
    Tclunk { fid: u32 }
    Rclunk {}
    Tremove { fid: u32 }
    Rremove {}
}
