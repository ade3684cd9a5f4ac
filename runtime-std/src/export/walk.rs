//! Tattach and Twalk: finding files without leaving the export root.
//!
//! A step is one `openat2` of one name from the current directory's
//! `O_PATH` descriptor with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_MAGICLINKS` and `O_NOFOLLOW`: a symlink is walked to as
//! itself (to be read with Treadlink), never through. Walking on from a
//! symlink fails with ENOTDIR, so no link, to "/" or to "../../..",
//! leads out.
//!
//! `..` cannot be resolved beneath the directory it leaves, so it is
//! handled apart: at the root (same device and inode) it stays at the
//! root; elsewhere it is the kernel's `..` of the directory, which is
//! inside the export as long as the directory is. (A directory moved out
//! of the tree by another process while a fid holds it takes that fid
//! out with it; no 9P operation can move one out.)

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use proto_9p::{Errno, Qid};

use super::fid::{lock, Fid, Kind, Loc, Node, Open};
use super::names::walk_name;
use super::{qid, sys, LocalExport, RESOLVE_CHILD};

impl LocalExport {
    /// Attach: `aname` is walked from the root, component by component,
    /// with the same rules as Twalk ("" and "/" are the root; `..` stops
    /// at the root).
    pub(super) fn do_attach(&self, aname: &[u8], user: u32) -> Result<(Qid, Fid), Errno> {
        let mut node = self.root.clone();
        for name in aname.split(|&b| b == b'/') {
            if name.is_empty() || name == b"." {
                continue;
            }
            node = self.step(&node, name)?.0;
        }
        if node.kind == Kind::Symlink {
            return Err(Errno::ELOOP);
        }
        let st = sys::statx(node.fd.as_fd(), c"")?;
        Ok((node.qid(&st), Fid::new(node, Open::None, user)))
    }

    pub(super) fn do_walk(
        &self,
        fid: &Fid,
        names: &[Vec<u8>],
    ) -> Result<(Vec<Qid>, Option<Fid>), Errno> {
        let mut node = fid.node().clone();
        let mut qids = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            match self.step(&node, name) {
                Ok((next, q)) => {
                    qids.push(q);
                    node = next;
                }
                Err(e) if i == 0 => return Err(e),
                Err(_) => return Ok((qids, None)),
            }
        }
        // No names: a clone, sharing the node (and so its location).
        Ok((qids, Some(Fid::new(node, Open::None, fid.user()))))
    }

    /// One walk step from `cur`.
    fn step(&self, cur: &Arc<Node>, name: &[u8]) -> Result<(Arc<Node>, Qid), Errno> {
        if cur.kind != Kind::Dir {
            return Err(Errno::ENOTDIR);
        }
        if name == b".." {
            return self.parent(cur);
        }
        if name == b"." {
            let st = sys::statx(cur.fd.as_fd(), c"")?;
            return Ok((cur.clone(), cur.qid(&st)));
        }
        let cname = walk_name(name)?;
        self.child(cur, cname)
    }

    /// The node of `name` in directory `dir`, not following a symlink.
    pub(super) fn child(&self, dir: &Arc<Node>, name: CString) -> Result<(Arc<Node>, Qid), Errno> {
        let fd = sys::openat2(
            dir.fd.as_fd(),
            &name,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
            RESOLVE_CHILD,
        )?;
        let st = sys::statx(fd.as_fd(), c"")?;
        let loc = Loc::At {
            dir: dir.clone(),
            name,
        };
        let node = self.make_node(fd, &st, loc)?;
        let q = node.qid(&st);
        Ok((node, q))
    }

    fn parent(&self, cur: &Arc<Node>) -> Result<(Arc<Node>, Qid), Errno> {
        if self.is_root(cur) {
            let st = sys::statx(self.root.fd.as_fd(), c"")?;
            return Ok((self.root.clone(), self.root.qid(&st)));
        }
        let fd = sys::openat(
            Some(cur.fd.as_fd()),
            c"..",
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )?;
        let st = sys::statx(fd.as_fd(), c"")?;
        // Reuse the remembered parent while it is still the parent, so
        // its own location stays known.
        if let Loc::At { dir, .. } = &*lock(&cur.loc) {
            if dir.same_inode(&st) {
                return Ok((dir.clone(), dir.qid(&st)));
            }
        }
        let node = self.make_node(fd, &st, Loc::Unknown)?;
        let q = node.qid(&st);
        Ok((node, q))
    }

    /// Whether `node` is the export root's directory.
    pub(super) fn is_root(&self, node: &Node) -> bool {
        node.dev == self.root.dev && node.ino == self.root.ino
    }

    /// A node for descriptor `fd`, whose attributes are `st`.
    pub(super) fn make_node(
        &self,
        fd: OwnedFd,
        st: &libc::statx,
        loc: Loc,
    ) -> Result<Arc<Node>, Errno> {
        let dev = qid::dev_of(st);
        let loc = if dev == self.root.dev && st.stx_ino == self.root.ino {
            Loc::Root
        } else {
            loc
        };
        Ok(Arc::new(Node {
            fd,
            kind: Kind::of_mode(u32::from(st.stx_mode)),
            dev,
            ino: st.stx_ino,
            qpath: self.qids.path(dev, st.stx_ino)?,
            loc: std::sync::Mutex::new(loc),
        }))
    }
}
