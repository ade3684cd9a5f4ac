//! The backend seam: what a file system must answer, and the dispatch from
//! a decoded request to it.
//!
//! The server session never calls the backend itself; it hands out
//! [`Request`]s, so that a runtime can run them on as many threads or tasks
//! as it likes and feed the answers back with
//! `ServerSession::complete`. [`execute`] is
//! the one place that maps an operation onto the trait, shared by every
//! runtime.

use alloc::vec::Vec;
use bytes::Bytes;

use crate::messages::*;
use crate::{Errno, Qid};

/// A 9P2000.L file system, seen one operation at a time.
///
/// `Fid` is the backend's handle for what a 9P fid names (for the local
/// export: an `O_PATH` descriptor, and an open file once opened). The
/// session stores one per fid and passes clones to operations, so clones
/// must share state (an `Arc`). Operations that change what a fid is
/// (open, create, xattr) return the replacement handle.
///
/// Every method gets `&self` and may run concurrently with any other.
/// The defaults refuse with the errno the Linux client expects for an
/// unsupported operation.
pub trait Filesystem {
    /// The backend's handle of a fid.
    type Fid: Clone;

    /// Attach to the root of tree `aname`.
    fn attach(&self, msg: &Tattach) -> Result<(Qid, Self::Fid), Errno>;
    /// Walk `names` from `fid`. Empty `names` clones the fid. On success of
    /// every element, returns the qids and the new handle; when an element
    /// other than the first fails, returns the qids walked so far and
    /// `None`; when the first fails, returns its error.
    fn walk(
        &self,
        fid: &Self::Fid,
        names: &[Vec<u8>],
    ) -> Result<(Vec<Qid>, Option<Self::Fid>), Errno>;
    /// Open the file; `flags` are `open_flags` values.
    fn lopen(&self, fid: &Self::Fid, flags: u32) -> Result<(Qid, u32, Self::Fid), Errno>;
    /// Create and open `msg.name` in directory `dir`; the result replaces
    /// `dir`'s handle.
    fn lcreate(&self, dir: &Self::Fid, msg: &Tlcreate) -> Result<(Qid, u32, Self::Fid), Errno>;
    /// Read at most `count` bytes at `offset` from an open fid.
    fn read(&self, fid: &Self::Fid, offset: u64, count: u32) -> Result<Bytes, Errno>;
    /// Write `data` at `offset` to an open fid.
    fn write(&self, fid: &Self::Fid, offset: u64, data: &[u8]) -> Result<u32, Errno>;
    /// The fid is forgotten; the handle is the last one the session held.
    fn clunk(&self, fid: Self::Fid) -> Result<(), Errno> {
        drop(fid);
        Ok(())
    }
    /// Remove the fid's file. The fid is clunked whatever the outcome.
    fn remove(&self, fid: Self::Fid) -> Result<(), Errno> {
        drop(fid);
        Err(Errno::EOPNOTSUPP)
    }
    /// statfs(2) of the fid's file system.
    fn statfs(&self, fid: &Self::Fid) -> Result<Rstatfs, Errno>;
    /// Create a symbolic link in `dir`.
    fn symlink(&self, dir: &Self::Fid, msg: &Tsymlink) -> Result<Qid, Errno>;
    /// Create a node in `dir`.
    fn mknod(&self, dir: &Self::Fid, msg: &Tmknod) -> Result<Qid, Errno>;
    /// Move the file of `fid` into `dir` as `name`.
    fn rename(&self, fid: &Self::Fid, dir: &Self::Fid, name: &[u8]) -> Result<(), Errno>;
    /// Read a symbolic link.
    fn readlink(&self, fid: &Self::Fid) -> Result<Vec<u8>, Errno>;
    /// Get attributes.
    fn getattr(&self, fid: &Self::Fid, request_mask: u64) -> Result<Rgetattr, Errno>;
    /// Set attributes.
    fn setattr(&self, fid: &Self::Fid, msg: &Tsetattr) -> Result<(), Errno>;
    /// Open attribute `name` of `fid` (the name list when empty) for reads.
    fn xattrwalk(&self, fid: &Self::Fid, name: &[u8]) -> Result<(u64, Self::Fid), Errno> {
        let _ = (fid, name);
        Err(Errno::EOPNOTSUPP)
    }
    /// Turn `fid` into a writer of attribute `msg.name`, set at clunk.
    fn xattrcreate(&self, fid: &Self::Fid, msg: &Txattrcreate) -> Result<Self::Fid, Errno> {
        let _ = (fid, msg);
        Err(Errno::EOPNOTSUPP)
    }
    /// Packed [`crate::Dirent`]s from `offset`, at most `count` bytes.
    fn readdir(&self, fid: &Self::Fid, offset: u64, count: u32) -> Result<Bytes, Errno>;
    /// Flush to stable storage.
    fn fsync(&self, fid: &Self::Fid, datasync: bool) -> Result<(), Errno>;
    /// A POSIX record lock; returns a `lock_status` value.
    fn lock(&self, fid: &Self::Fid, msg: &Tlock) -> Result<u8, Errno>;
    /// Test for a conflicting POSIX lock.
    fn getlock(&self, fid: &Self::Fid, msg: &Tgetlock) -> Result<Rgetlock, Errno>;
    /// Hard link the file of `fid` into `dir` as `name`.
    fn link(&self, dir: &Self::Fid, fid: &Self::Fid, name: &[u8]) -> Result<(), Errno>;
    /// Make a directory in `dir`.
    fn mkdir(&self, dir: &Self::Fid, msg: &Tmkdir) -> Result<Qid, Errno>;
    /// Rename between two directories.
    fn renameat(
        &self,
        olddir: &Self::Fid,
        oldname: &[u8],
        newdir: &Self::Fid,
        newname: &[u8],
    ) -> Result<(), Errno>;
    /// Remove a name from a directory (`flags` may hold AT_REMOVEDIR).
    fn unlinkat(&self, dir: &Self::Fid, name: &[u8], flags: u32) -> Result<(), Errno>;
}

/// A request for the backend, with the fids already resolved to handles.
#[derive(Debug)]
#[allow(missing_docs)]
pub enum Op<F> {
    Attach(Tattach),
    Walk {
        fid: F,
        msg: Twalk,
    },
    Lopen {
        fid: F,
        msg: Tlopen,
    },
    Lcreate {
        dir: F,
        msg: Tlcreate,
    },
    Read {
        fid: F,
        msg: Tread,
    },
    Write {
        fid: F,
        msg: Twrite,
    },
    Clunk {
        fid: F,
    },
    Remove {
        fid: F,
    },
    Statfs {
        fid: F,
    },
    Symlink {
        dir: F,
        msg: Tsymlink,
    },
    Mknod {
        dir: F,
        msg: Tmknod,
    },
    Rename {
        fid: F,
        dir: F,
        msg: Trename,
    },
    Readlink {
        fid: F,
    },
    Getattr {
        fid: F,
        msg: Tgetattr,
    },
    Setattr {
        fid: F,
        msg: Tsetattr,
    },
    Xattrwalk {
        fid: F,
        msg: Txattrwalk,
    },
    Xattrcreate {
        fid: F,
        msg: Txattrcreate,
    },
    Readdir {
        fid: F,
        msg: Treaddir,
    },
    Fsync {
        fid: F,
        msg: Tfsync,
    },
    Lock {
        fid: F,
        msg: Tlock,
    },
    Getlock {
        fid: F,
        msg: Tgetlock,
    },
    Link {
        dir: F,
        fid: F,
        msg: Tlink,
    },
    Mkdir {
        dir: F,
        msg: Tmkdir,
    },
    Renameat {
        olddir: F,
        newdir: F,
        msg: Trenameat,
    },
    Unlinkat {
        dir: F,
        msg: Tunlinkat,
    },
}

impl<F> Op<F> {
    /// The T-message type the operation came from.
    pub fn request_type(&self) -> u8 {
        match self {
            Op::Attach(_) => Tattach::TYPE,
            Op::Walk { .. } => Twalk::TYPE,
            Op::Lopen { .. } => Tlopen::TYPE,
            Op::Lcreate { .. } => Tlcreate::TYPE,
            Op::Read { .. } => Tread::TYPE,
            Op::Write { .. } => Twrite::TYPE,
            Op::Clunk { .. } => Tclunk::TYPE,
            Op::Remove { .. } => Tremove::TYPE,
            Op::Statfs { .. } => Tstatfs::TYPE,
            Op::Symlink { .. } => Tsymlink::TYPE,
            Op::Mknod { .. } => Tmknod::TYPE,
            Op::Rename { .. } => Trename::TYPE,
            Op::Readlink { .. } => Treadlink::TYPE,
            Op::Getattr { .. } => Tgetattr::TYPE,
            Op::Setattr { .. } => Tsetattr::TYPE,
            Op::Xattrwalk { .. } => Txattrwalk::TYPE,
            Op::Xattrcreate { .. } => Txattrcreate::TYPE,
            Op::Readdir { .. } => Treaddir::TYPE,
            Op::Fsync { .. } => Tfsync::TYPE,
            Op::Lock { .. } => Tlock::TYPE,
            Op::Getlock { .. } => Tgetlock::TYPE,
            Op::Link { .. } => Tlink::TYPE,
            Op::Mkdir { .. } => Tmkdir::TYPE,
            Op::Renameat { .. } => Trenameat::TYPE,
            Op::Unlinkat { .. } => Tunlinkat::TYPE,
        }
    }
}

/// The backend's answer to an [`Op`].
#[derive(Debug)]
pub enum Reply<F> {
    /// A reply that leaves the fid table as it is.
    Msg(Message),
    /// The reply plus the new fid's handle (attach, walk, xattrwalk) or the
    /// replacement of the fid's handle (lopen, lcreate, xattrcreate).
    /// `None` after a partial walk: no fid is created.
    WithFid(Message, Option<F>),
}

/// Runs one operation against a backend. Every runtime calls this, on
/// whatever thread it likes, and passes the result to
/// `ServerSession::complete`.
pub fn execute<B: Filesystem>(fs: &B, op: Op<B::Fid>) -> Result<Reply<B::Fid>, Errno> {
    let msg = |m: Message| Ok(Reply::Msg(m));
    match op {
        Op::Attach(m) => {
            let (qid, fid) = fs.attach(&m)?;
            Ok(Reply::WithFid(Rattach { qid }.into(), Some(fid)))
        }
        Op::Walk { fid, msg: m } => {
            let (wqids, new) = fs.walk(&fid, &m.wnames)?;
            Ok(Reply::WithFid(Rwalk { wqids }.into(), new))
        }
        Op::Lopen { fid, msg: m } => {
            let (qid, iounit, new) = fs.lopen(&fid, m.flags)?;
            Ok(Reply::WithFid(Rlopen { qid, iounit }.into(), Some(new)))
        }
        Op::Lcreate { dir, msg: m } => {
            let (qid, iounit, new) = fs.lcreate(&dir, &m)?;
            Ok(Reply::WithFid(Rlcreate { qid, iounit }.into(), Some(new)))
        }
        Op::Read { fid, msg: m } => msg(Rread {
            data: fs.read(&fid, m.offset, m.count)?,
        }
        .into()),
        Op::Write { fid, msg: m } => msg(Rwrite {
            count: fs.write(&fid, m.offset, &m.data)?,
        }
        .into()),
        Op::Clunk { fid } => fs.clunk(fid).and(msg(Rclunk {}.into())),
        Op::Remove { fid } => fs.remove(fid).and(msg(Rremove {}.into())),
        Op::Statfs { fid } => msg(fs.statfs(&fid)?.into()),
        Op::Symlink { dir, msg: m } => msg(Rsymlink {
            qid: fs.symlink(&dir, &m)?,
        }
        .into()),
        Op::Mknod { dir, msg: m } => msg(Rmknod {
            qid: fs.mknod(&dir, &m)?,
        }
        .into()),
        Op::Rename { fid, dir, msg: m } => {
            fs.rename(&fid, &dir, &m.name)?;
            msg(Rrename {}.into())
        }
        Op::Readlink { fid } => msg(Rreadlink {
            target: fs.readlink(&fid)?,
        }
        .into()),
        Op::Getattr { fid, msg: m } => msg(fs.getattr(&fid, m.request_mask)?.into()),
        Op::Setattr { fid, msg: m } => {
            fs.setattr(&fid, &m)?;
            msg(Rsetattr {}.into())
        }
        Op::Xattrwalk { fid, msg: m } => {
            let (size, new) = fs.xattrwalk(&fid, &m.name)?;
            Ok(Reply::WithFid(Rxattrwalk { size }.into(), Some(new)))
        }
        Op::Xattrcreate { fid, msg: m } => {
            let new = fs.xattrcreate(&fid, &m)?;
            Ok(Reply::WithFid(Rxattrcreate {}.into(), Some(new)))
        }
        Op::Readdir { fid, msg: m } => msg(Rreaddir {
            data: fs.readdir(&fid, m.offset, m.count)?,
        }
        .into()),
        Op::Fsync { fid, msg: m } => {
            fs.fsync(&fid, m.datasync != 0)?;
            msg(Rfsync {}.into())
        }
        Op::Lock { fid, msg: m } => msg(Rlock {
            status: fs.lock(&fid, &m)?,
        }
        .into()),
        Op::Getlock { fid, msg: m } => msg(fs.getlock(&fid, &m)?.into()),
        Op::Link { dir, fid, msg: m } => {
            fs.link(&dir, &fid, &m.name)?;
            msg(Rlink {}.into())
        }
        Op::Mkdir { dir, msg: m } => msg(Rmkdir {
            qid: fs.mkdir(&dir, &m)?,
        }
        .into()),
        Op::Renameat {
            olddir,
            newdir,
            msg: m,
        } => {
            fs.renameat(&olddir, &m.oldname, &newdir, &m.newname)?;
            msg(Rrenameat {}.into())
        }
        Op::Unlinkat { dir, msg: m } => {
            fs.unlinkat(&dir, &m.name, m.flags)?;
            msg(Runlinkat {}.into())
        }
    }
}
