//! Changes to the name space: Tmkdir, Tmknod, Tsymlink, Tlink, Trename,
//! Trenameat, Tunlinkat, Tremove, and Treadlink.
//!
//! Everything acts on one name in a directory descriptor of the export,
//! with names checked to be single components, so nothing here can reach
//! outside the root. New files get the owner the client asked for where
//! this process may give it (`give_owner`), and stay ours otherwise.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::sync::Arc;

use proto_9p::messages::{Tmkdir, Tmknod, Tsymlink};
use proto_9p::{Errno, Qid};

use super::fid::{lock, Fid, Kind, Loc, Node};
use super::io::{give_owner, mode_fix};
use super::names::checked_name;
use super::{sys, LocalExport};

/// A directory node, or ENOTDIR.
fn dir_node(fid: &Fid) -> Result<&Arc<Node>, Errno> {
    let node = fid.node();
    if node.kind == Kind::Dir {
        Ok(node)
    } else {
        Err(Errno::ENOTDIR)
    }
}

impl LocalExport {
    pub(super) fn do_mkdir(&self, dir: &Fid, msg: &Tmkdir) -> Result<Qid, Errno> {
        let dnode = dir_node(dir)?;
        let name = checked_name(&msg.name)?;
        let mode = msg.mode & 0o7777;
        sys::mkdirat(dnode.fd.as_fd(), &name, mode)?;
        self.new_child(dnode, name, mode, (dir.user(), msg.gid))
    }

    pub(super) fn do_mknod(&self, dir: &Fid, msg: &Tmknod) -> Result<Qid, Errno> {
        let dnode = dir_node(dir)?;
        let name = checked_name(&msg.name)?;
        match msg.mode & libc::S_IFMT {
            libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK => {}
            // Device nodes are made only when they may be opened too.
            libc::S_IFCHR | libc::S_IFBLK if self.options.allow_devices => {}
            libc::S_IFCHR | libc::S_IFBLK => return Err(Errno::EPERM),
            _ => return Err(Errno::EINVAL),
        }
        let mode = msg.mode & (libc::S_IFMT | 0o7777);
        sys::mknodat(dnode.fd.as_fd(), &name, mode, msg.major, msg.minor)?;
        self.new_child(dnode, name, mode & 0o7777, (dir.user(), msg.gid))
    }

    pub(super) fn do_symlink(&self, dir: &Fid, msg: &Tsymlink) -> Result<Qid, Errno> {
        let dnode = dir_node(dir)?;
        let name = checked_name(&msg.name)?;
        // The target is stored, never followed by us, so any text will do.
        let target = CString::new(msg.symtgt.as_slice()).map_err(|_| Errno::EINVAL)?;
        sys::symlinkat(&target, dnode.fd.as_fd(), &name)?;
        let (node, q) = self.child(dnode, name)?;
        let st = sys::statx(node.fd.as_fd(), c"")?;
        if !give_owner(node.fd.as_fd(), &st, dir.user(), msg.gid)? {
            return Ok(q);
        }
        // The chown changed ctime, and with it the qid's version.
        Ok(node.qid(&sys::statx(node.fd.as_fd(), c"")?))
    }

    /// The qid of a file just made; its permission bits are set to those
    /// asked for when our umask took some away.
    fn new_child(
        &self,
        dnode: &Arc<Node>,
        name: CString,
        mode: u32,
        (user, gid): (u32, u32),
    ) -> Result<Qid, Errno> {
        let (node, _) = self.child(dnode, name)?;
        let mut st = sys::statx(node.fd.as_fd(), c"")?;
        if give_owner(node.fd.as_fd(), &st, user, gid)? {
            st = sys::statx(node.fd.as_fd(), c"")?;
        }
        if let Some(fixed) = mode_fix(&st, mode) {
            sys::chmod(&node.proc_path(), fixed)?;
            st = sys::statx(node.fd.as_fd(), c"")?;
        }
        Ok(node.qid(&st))
    }

    pub(super) fn do_link(&self, dir: &Fid, fid: &Fid, name: &[u8]) -> Result<(), Errno> {
        let dnode = dir_node(dir)?;
        let name = checked_name(name)?;
        // linkat with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH; the
        // /proc link, followed, reaches the same inode without it.
        sys::link_followed(&fid.node().proc_path(), dnode.fd.as_fd(), &name)
    }

    pub(super) fn do_rename(&self, fid: &Fid, dir: &Fid, name: &[u8]) -> Result<(), Errno> {
        let node = fid.node();
        let dnode = dir_node(dir)?;
        let newname = checked_name(name)?;
        let mut loc = lock(&node.loc);
        let (odir, oname) = located(node, &loc)?;
        sys::renameat(odir.fd.as_fd(), oname, dnode.fd.as_fd(), &newname)?;
        *loc = Loc::At {
            dir: dnode.clone(),
            name: newname,
        };
        Ok(())
    }

    pub(super) fn do_renameat(
        &self,
        olddir: &Fid,
        oldname: &[u8],
        newdir: &Fid,
        newname: &[u8],
    ) -> Result<(), Errno> {
        let od = dir_node(olddir)?;
        let nd = dir_node(newdir)?;
        let on = checked_name(oldname)?;
        let nn = checked_name(newname)?;
        sys::renameat(od.fd.as_fd(), &on, nd.fd.as_fd(), &nn)
    }

    pub(super) fn do_unlinkat(&self, dir: &Fid, name: &[u8], flags: u32) -> Result<(), Errno> {
        use proto_9p::consts::unlink_flags::REMOVEDIR;
        let dnode = dir_node(dir)?;
        let name = checked_name(name)?;
        if flags & !REMOVEDIR != 0 {
            return Err(Errno::EINVAL);
        }
        sys::unlinkat(dnode.fd.as_fd(), &name, flags & REMOVEDIR != 0)
    }

    pub(super) fn do_remove(&self, fid: &Fid) -> Result<(), Errno> {
        let node = fid.node();
        let loc = lock(&node.loc);
        let (dir, name) = located(node, &loc)?;
        sys::unlinkat(dir.fd.as_fd(), name, node.kind == Kind::Dir)
    }

    pub(super) fn do_readlink(&self, fid: &Fid) -> Result<Vec<u8>, Errno> {
        let node = fid.node();
        if node.kind != Kind::Symlink {
            return Err(Errno::EINVAL);
        }
        sys::readlink(node.fd.as_fd())
    }
}

/// The directory and name of `node`, checked to still lead to it.
fn located<'a>(node: &Node, loc: &'a Loc) -> Result<(&'a Arc<Node>, &'a CString), Errno> {
    match loc {
        Loc::At { dir, name } => {
            let st = sys::statx(dir.fd.as_fd(), name).map_err(|e| match e {
                Errno::ENOENT => Errno::ESTALE,
                e => e,
            })?;
            if node.same_inode(&st) {
                Ok((dir, name))
            } else {
                Err(Errno::ESTALE)
            }
        }
        // As rmdir(2) and rename(2) answer for a mount point.
        Loc::Root => Err(Errno::EBUSY),
        Loc::Unknown => Err(Errno::ESTALE),
    }
}
