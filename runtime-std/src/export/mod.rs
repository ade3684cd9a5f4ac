//! The local export: a directory tree of this host, served over 9P2000.L.
//!
//! It runs as the invoking user and takes no privilege of its own: every
//! operation is a system call made with this process's credentials, so a
//! client can do exactly what the user could do locally, within the root.
//! The uname and n_uname of Tattach are ignored.
//!
//! Confinement rests on descriptors, not paths: each fid holds an
//! `O_PATH` descriptor of its file (`fid.rs`), every lookup is one name
//! resolved beneath a directory descriptor by `openat2` without following
//! any symlink (`walk.rs`), and files are reopened through
//! `/proc/self/fd`, which reaches the very inode the walk found (`io.rs`).
//! `/proc` must therefore be mounted.
//!
//! Every method takes `&self` and may run on any thread at the same time
//! as any other. Shared state is the root, the options and the qid table
//! (`qid.rs`, lock-free in the common case); mutexes are per fid (a
//! directory stream, an xattr being written, a node's location).
//!
//! Errors are the host's errno values, which on x86_64 and aarch64 Linux
//! are the wire values of 9P2000.L.

mod attr;
mod dir;
mod fid;
mod io;
mod lock;
mod names;
mod ns;
mod qid;
mod sys;
mod walk;
mod xattr;

use std::ffi::CString;
use std::io as stdio;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use proto_9p::messages::{
    Rgetattr, Rgetlock, Rstatfs, Tattach, Tgetlock, Tlcreate, Tlock, Tmkdir, Tmknod, Tsetattr,
    Tsymlink, Txattrcreate,
};
use proto_9p::server::Filesystem;
use proto_9p::{Errno, Qid};

pub use fid::Fid;
use fid::{Kind, Loc, Node, Open};

/// How a single name is looked up: beneath the directory, through no
/// symlink at all (a trailing one is opened as itself with O_NOFOLLOW).
const RESOLVE_CHILD: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;

/// What the export permits beyond ordinary files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Open (and create) device nodes, and open FIFOs and sockets. Off by
    /// default: opening a device can have effects on the host, and a FIFO
    /// open can block a server thread.
    pub allow_devices: bool,
}

/// A directory tree of this host, as a 9P2000.L file system.
#[derive(Debug)]
pub struct LocalExport {
    root: Arc<Node>,
    qids: qid::QidPaths,
    options: ExportOptions,
}

impl LocalExport {
    /// Serves the directory `root` (a symlink in `root` itself is
    /// followed: that is the operator's choice, not a client's).
    pub fn new(root: &Path, options: ExportOptions) -> stdio::Result<Self> {
        let path = CString::new(root.as_os_str().as_bytes())
            .map_err(|_| stdio::Error::from(stdio::ErrorKind::InvalidInput))?;
        let fd = sys::openat(
            None,
            &path,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
        .map_err(os_error)?;
        let st = sys::statx(fd.as_fd(), c"").map_err(os_error)?;
        let dev = qid::dev_of(&st);
        let qids = qid::QidPaths::new(dev);
        let root = Arc::new(Node {
            fd,
            kind: Kind::Dir,
            dev,
            ino: st.stx_ino,
            qpath: qids.path(dev, st.stx_ino).map_err(os_error)?,
            loc: Mutex::new(Loc::Root),
        });
        // Reopening goes through /proc/self/fd: fail now, not per request.
        sys::statx(
            sys::openat(None, &root.proc_path(), libc::O_PATH | libc::O_CLOEXEC)
                .map_err(os_error)?
                .as_fd(),
            c"",
        )
        .map_err(os_error)?;
        Ok(LocalExport {
            root,
            qids,
            options,
        })
    }
}

fn os_error(e: Errno) -> stdio::Error {
    stdio::Error::from_raw_os_error(e.0 as i32)
}

/// The errno of a std I/O error.
pub(super) fn io_errno(e: stdio::Error) -> Errno {
    match e.raw_os_error().map(u32::try_from) {
        Some(Ok(n)) if n != 0 => Errno(n),
        _ => Errno::EIO,
    }
}

impl Filesystem for LocalExport {
    type Fid = Fid;

    fn attach(&self, msg: &Tattach) -> Result<(Qid, Fid), Errno> {
        self.do_attach(&msg.aname, msg.n_uname)
    }

    fn walk(&self, fid: &Fid, names: &[Vec<u8>]) -> Result<(Vec<Qid>, Option<Fid>), Errno> {
        self.do_walk(fid, names)
    }

    fn lopen(&self, fid: &Fid, flags: u32) -> Result<(Qid, u32, Fid), Errno> {
        self.do_lopen(fid, flags)
    }

    fn lcreate(&self, dir: &Fid, msg: &Tlcreate) -> Result<(Qid, u32, Fid), Errno> {
        self.do_lcreate(dir, msg)
    }

    fn read(&self, fid: &Fid, offset: u64, count: u32) -> Result<Bytes, Errno> {
        self.do_read(fid, offset, count)
    }

    fn write(&self, fid: &Fid, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        self.do_write(fid, offset, data)
    }

    fn clunk(&self, fid: Fid) -> Result<(), Errno> {
        match fid.open() {
            Open::XattrWrite(w) => xattr::commit(fid.node(), w),
            _ => Ok(()),
        }
    }

    fn remove(&self, fid: Fid) -> Result<(), Errno> {
        self.do_remove(&fid)
    }

    fn statfs(&self, fid: &Fid) -> Result<Rstatfs, Errno> {
        self.do_statfs(fid)
    }

    fn symlink(&self, dir: &Fid, msg: &Tsymlink) -> Result<Qid, Errno> {
        self.do_symlink(dir, msg)
    }

    fn mknod(&self, dir: &Fid, msg: &Tmknod) -> Result<Qid, Errno> {
        self.do_mknod(dir, msg)
    }

    fn rename(&self, fid: &Fid, dir: &Fid, name: &[u8]) -> Result<(), Errno> {
        self.do_rename(fid, dir, name)
    }

    fn readlink(&self, fid: &Fid) -> Result<Vec<u8>, Errno> {
        self.do_readlink(fid)
    }

    fn getattr(&self, fid: &Fid, _request_mask: u64) -> Result<Rgetattr, Errno> {
        self.do_getattr(fid)
    }

    fn setattr(&self, fid: &Fid, msg: &Tsetattr) -> Result<(), Errno> {
        self.do_setattr(fid, msg)
    }

    fn xattrwalk(&self, fid: &Fid, name: &[u8]) -> Result<(u64, Fid), Errno> {
        xattr::walk(fid.node(), name, fid.user())
    }

    fn xattrcreate(&self, fid: &Fid, msg: &Txattrcreate) -> Result<Fid, Errno> {
        xattr::create(fid.node(), msg, fid.user())
    }

    fn readdir(&self, fid: &Fid, offset: u64, count: u32) -> Result<Bytes, Errno> {
        self.do_readdir(fid, offset, count)
    }

    fn fsync(&self, fid: &Fid, datasync: bool) -> Result<(), Errno> {
        self.do_fsync(fid, datasync)
    }

    fn lock(&self, fid: &Fid, msg: &Tlock) -> Result<u8, Errno> {
        self.do_lock(fid, msg)
    }

    fn getlock(&self, fid: &Fid, msg: &Tgetlock) -> Result<Rgetlock, Errno> {
        self.do_getlock(fid, msg)
    }

    fn link(&self, dir: &Fid, fid: &Fid, name: &[u8]) -> Result<(), Errno> {
        self.do_link(dir, fid, name)
    }

    fn mkdir(&self, dir: &Fid, msg: &Tmkdir) -> Result<Qid, Errno> {
        self.do_mkdir(dir, msg)
    }

    fn renameat(
        &self,
        olddir: &Fid,
        oldname: &[u8],
        newdir: &Fid,
        newname: &[u8],
    ) -> Result<(), Errno> {
        self.do_renameat(olddir, oldname, newdir, newname)
    }

    fn unlinkat(&self, dir: &Fid, name: &[u8], flags: u32) -> Result<(), Errno> {
        self.do_unlinkat(dir, name, flags)
    }
}
