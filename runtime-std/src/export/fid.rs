//! What a fid holds: the node (one file, pinned by an `O_PATH`
//! descriptor, and where it was found) and what the fid made of it.
//!
//! A node is shared by the fids that are clones of each other (a walk of
//! no names, an open, an xattr fid), so a rename through one of them is
//! seen by all. Walking a name makes a new node.
//!
//! Where a node lives, for Tremove and Trename, is kept as its parent
//! node plus its name. That record can go stale: a Trenameat, or another
//! process, may move the file. Before acting on it the export checks that
//! the name still leads to the node's own inode and answers ESTALE if not,
//! so it never removes or moves whatever file took the old name. A
//! Trename through the fid updates the record. The parent node keeps its
//! descriptor open while a child lives, which costs one descriptor per
//! directory on the way, not per child.

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use proto_9p::Qid;

use super::dir::DirStream;
use super::qid;
use super::xattr::XattrWriter;

/// Locks a mutex; a panic elsewhere while holding it leaves state that is
/// still consistent for our uses (each critical section is one update).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The local export's handle of a 9P fid. Clones share state.
#[derive(Clone)]
pub struct Fid(pub(super) Arc<FidState>);

pub(super) struct FidState {
    pub(super) node: Arc<Node>,
    pub(super) open: Open,
    /// The numeric user of the Tattach this fid descends from (the Linux
    /// client attaches once per local user), or NOFID when not given.
    pub(super) user: u32,
}

impl Fid {
    pub(super) fn new(node: Arc<Node>, open: Open, user: u32) -> Fid {
        Fid(Arc::new(FidState { node, open, user }))
    }

    /// The attaching user, for the owner of files made through this fid.
    pub(super) fn user(&self) -> u32 {
        self.0.user
    }

    pub(super) fn node(&self) -> &Arc<Node> {
        &self.0.node
    }

    pub(super) fn open(&self) -> &Open {
        &self.0.open
    }
}

impl fmt::Debug for Fid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fid")
            .field("qid_path", &self.0.node.qpath)
            .field("kind", &self.0.node.kind)
            .field("open", &self.0.open.name())
            .finish()
    }
}

/// The kind of file, fixed for a node since its descriptor pins the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir,
    Symlink,
    Regular,
    /// A character or block device.
    Device,
    /// A FIFO or a socket.
    Special,
}

impl Kind {
    pub(super) fn of_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFREG => Kind::Regular,
            libc::S_IFCHR | libc::S_IFBLK => Kind::Device,
            _ => Kind::Special,
        }
    }
}

/// One file of the export.
pub(super) struct Node {
    /// `O_PATH | O_NOFOLLOW`: names the inode itself, even a symlink.
    pub(super) fd: OwnedFd,
    pub(super) kind: Kind,
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) qpath: u64,
    pub(super) loc: Mutex<Loc>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("kind", &self.kind)
            .field("dev", &self.dev)
            .field("ino", &self.ino)
            .finish()
    }
}

/// Where a node was last known to live.
pub(super) enum Loc {
    /// The export root: it cannot be removed or renamed through 9P.
    Root,
    At {
        dir: Arc<Node>,
        name: CString,
    },
    /// Reached by `..` from a node whose parent had moved.
    Unknown,
}

impl Node {
    /// The `/proc/self/fd` link of the descriptor. Opening it, or passing
    /// it to a call that follows links, reaches exactly this inode, even
    /// when the inode is a symlink; the link is never resolved further.
    pub(super) fn proc_path(&self) -> CString {
        proc_path_of(self.fd.as_raw_fd())
    }

    /// The qid, with the version of the attributes `st` of this node.
    pub(super) fn qid(&self, st: &libc::statx) -> Qid {
        Qid {
            ty: qid::type_of_mode(u32::from(st.stx_mode)),
            version: qid::version(st),
            path: self.qpath,
        }
    }

    pub(super) fn same_inode(&self, st: &libc::statx) -> bool {
        self.dev == qid::dev_of(st) && self.ino == st.stx_ino
    }
}

pub(super) fn proc_path_of(fd: i32) -> CString {
    let mut s = format!("/proc/self/fd/{fd}").into_bytes();
    s.push(0);
    CString::from_vec_with_nul(s).unwrap_or_default()
}

/// What a fid made of its node.
pub(super) enum Open {
    /// Not opened: only walks, metadata and namespace operations.
    None,
    /// An open file (or device, FIFO, socket when allowed).
    File { file: File, writable: bool },
    /// An open directory and its read position.
    Dir(Mutex<DirStream>),
    /// The value (or name list) of an xattr, read by Tread.
    XattrRead(Bytes),
    /// An xattr being written, set at clunk; `None` once taken.
    XattrWrite(Mutex<Option<XattrWriter>>),
}

impl Open {
    fn name(&self) -> &'static str {
        match self {
            Open::None => "none",
            Open::File { .. } => "file",
            Open::Dir(_) => "dir",
            Open::XattrRead(_) => "xattr-read",
            Open::XattrWrite(_) => "xattr-write",
        }
    }
}
