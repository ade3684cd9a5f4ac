//! The bridge's bookkeeping: FUSE inodes and their 9P fids, open file
//! handles, and fid numbers. Pure data, kept under one mutex by the
//! bridge and never held across a 9P request.
//!
//! Requests run on several threads, so a fid read from the tables may be
//! in use while another thread would clunk it (a lookup that refreshes
//! an inode's fid, a forget). Users pin a fid while their requests are
//! out; a fid let go while pinned is retired, and clunked by whoever
//! unpins it last. Every method that stops using a fid returns the fid
//! the caller must now clunk, if any.

use std::collections::{HashMap, HashSet};

use crate::rt::CallError;
use fuser::{FileHandle, INodeNo};
use proto_9p::consts::NOFID;
use proto_9p::Errno;

/// An inode the kernel knows: its fid and how many lookups it holds.
#[derive(Debug)]
struct Node {
    fid: u32,
    /// The 9P qid.path: one file, one inode.
    path: u64,
    nlookup: u64,
    /// A regular file, as last seen: reads and writes of several 9P
    /// messages may go out at once (not for fifos or devices, whose
    /// data has no offsets).
    regular: bool,
}

/// An open file or directory: its fid is the FUSE file handle.
#[derive(Debug, Clone, Copy)]
pub(super) struct Handle {
    /// Largest payload of one Tread/Twrite.
    pub(super) unit: u32,
    /// Reads may be split into requests in flight together.
    pub(super) parallel_read: bool,
    /// Writes may be (not with O_APPEND: the server picks the offset).
    pub(super) parallel_write: bool,
}

#[derive(Debug)]
pub(super) struct Tables {
    nodes: HashMap<u64, Node>,
    /// qid.path to inode, so that one file keeps one inode number (hard
    /// links, repeated lookups).
    by_path: HashMap<u64, u64>,
    open: HashMap<u32, Handle>,
    next_ino: u64,
    /// Fid numbers clunked, for reuse: a long session must not run the
    /// 32-bit fid space out and wrap onto live fids.
    free_fids: Vec<u32>,
    next_fid: u32,
    /// Requests using each fid now.
    pins: HashMap<u32, u32>,
    /// Fids let go while pinned: clunked when the last pin goes.
    retired: HashSet<u32>,
}

fn errno(e: Errno) -> CallError {
    CallError::Errno(e)
}

impl Tables {
    pub(super) fn new(root_fid: u32, root_path: u64) -> Self {
        let root = INodeNo::ROOT.0;
        let mut nodes = HashMap::new();
        nodes.insert(
            root,
            Node {
                fid: root_fid,
                path: root_path,
                // The root is never forgotten.
                nlookup: u64::MAX / 2,
                regular: false,
            },
        );
        Tables {
            nodes,
            by_path: HashMap::from([(root_path, root)]),
            open: HashMap::new(),
            next_ino: root + 1,
            free_fids: Vec::new(),
            next_fid: root_fid + 1,
            pins: HashMap::new(),
            retired: HashSet::new(),
        }
    }

    /// A fid number for a new 9P fid.
    pub(super) fn new_fid(&mut self) -> Result<u32, CallError> {
        if let Some(fid) = self.free_fids.pop() {
            return Ok(fid);
        }
        if self.next_fid == NOFID {
            return Err(errno(Errno::EMFILE));
        }
        let fid = self.next_fid;
        self.next_fid += 1;
        Ok(fid)
    }

    /// `fid` was clunked (or never made): its number may be reused.
    pub(super) fn free_fid(&mut self, fid: u32) {
        self.free_fids.push(fid);
    }

    /// The fid of `ino`, pinned until [`Self::unpin`].
    pub(super) fn pin(&mut self, ino: INodeNo) -> Result<u32, CallError> {
        let fid = self
            .nodes
            .get(&ino.0)
            .map(|n| n.fid)
            .ok_or(errno(Errno::ESTALE))?;
        *self.pins.entry(fid).or_insert(0) += 1;
        Ok(fid)
    }

    /// Ends one use of `fid`; the fid to clunk if it was retired.
    #[must_use]
    pub(super) fn unpin(&mut self, fid: u32) -> Option<u32> {
        let n = self.pins.get_mut(&fid)?;
        *n -= 1;
        if *n > 0 {
            return None;
        }
        self.pins.remove(&fid);
        self.retired.remove(&fid).then_some(fid)
    }

    /// Stops using `fid`: it is to be clunked now, or when unpinned.
    #[must_use]
    fn retire(&mut self, fid: u32) -> Option<u32> {
        if self.pins.contains_key(&fid) {
            self.retired.insert(fid);
            None
        } else {
            Some(fid)
        }
    }

    /// Whether `ino` was a regular file when last seen.
    pub(super) fn is_regular(&self, ino: INodeNo) -> bool {
        self.nodes.get(&ino.0).is_some_and(|n| n.regular)
    }

    /// Notes the file type `ino` has now.
    pub(super) fn set_regular(&mut self, ino: INodeNo, regular: bool) {
        if let Some(n) = self.nodes.get_mut(&ino.0) {
            n.regular = regular;
        }
    }

    /// Records `fid` (just walked to the file of qid path `path`) as its
    /// inode, counting one kernel lookup. A known file gets the fresh
    /// fid (the old one may name a file since replaced, should the
    /// server reuse the number) and keeps its inode number. Returns the
    /// inode and the fid to clunk, if any.
    #[must_use]
    pub(super) fn register(&mut self, fid: u32, path: u64, regular: bool) -> (u64, Option<u32>) {
        if let Some(&ino) = self.by_path.get(&path) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.nlookup = node.nlookup.saturating_add(1);
                node.regular = regular;
                // The root keeps its attach fid.
                let stale = if ino == INodeNo::ROOT.0 {
                    fid
                } else {
                    std::mem::replace(&mut node.fid, fid)
                };
                return (ino, self.retire(stale));
            }
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(
            ino,
            Node {
                fid,
                path,
                nlookup: 1,
                regular,
            },
        );
        self.by_path.insert(path, ino);
        (ino, None)
    }

    /// The kernel dropped `n` lookups of `ino`; at none, the inode goes.
    /// Returns the fid to clunk, if any.
    #[must_use]
    pub(super) fn forget(&mut self, ino: u64, n: u64) -> Option<u32> {
        if ino == INodeNo::ROOT.0 {
            return None;
        }
        let node = self.nodes.get_mut(&ino)?;
        node.nlookup = node.nlookup.saturating_sub(n);
        if node.nlookup > 0 {
            return None;
        }
        let node = self.nodes.remove(&ino)?;
        if self.by_path.get(&node.path) == Some(&ino) {
            self.by_path.remove(&node.path);
        }
        self.retire(node.fid)
    }

    /// Records an open fid, the handle the kernel will name it by.
    pub(super) fn add_handle(&mut self, fid: u32, h: Handle) {
        self.open.insert(fid, h);
    }

    /// The fid and handle of a FUSE file handle. The kernel sends no
    /// release while requests on the handle are out, so these need no pin.
    pub(super) fn handle(&self, fh: FileHandle) -> Result<(u32, Handle), CallError> {
        let fid = u32::try_from(fh.0).map_err(|_| errno(Errno::EBADF))?;
        let h = self.open.get(&fid).copied().ok_or(errno(Errno::EBADF))?;
        Ok((fid, h))
    }

    /// Forgets an open fid (to be clunked by the caller).
    pub(super) fn remove_handle(&mut self, fh: FileHandle) -> Result<u32, CallError> {
        let (fid, _) = self.handle(fh)?;
        self.open.remove(&fid);
        Ok(fid)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pinned_fid_is_clunked_by_its_last_user() {
        let mut t = Tables::new(0, 100);
        let f1 = t.new_fid().unwrap();
        let (ino, stale) = t.register(f1, 7, true);
        assert_eq!(stale, None);
        // Two requests use the fid; a new lookup replaces it meanwhile.
        assert_eq!(t.pin(INodeNo(ino)).unwrap(), f1);
        assert_eq!(t.pin(INodeNo(ino)).unwrap(), f1);
        let f2 = t.new_fid().unwrap();
        assert_eq!(t.register(f2, 7, true), (ino, None), "f1 is in use");
        assert_eq!(t.pin(INodeNo(ino)).unwrap(), f2);
        assert_eq!(t.unpin(f1), None);
        assert_eq!(t.unpin(f1), Some(f1), "the last user clunks it");
        assert_eq!(t.unpin(f2), None, "f2 is still the inode's");
        // Both lookups forgotten: f2 goes at once, being unpinned.
        assert_eq!(t.forget(ino, 2), Some(f2));
        assert!(t.pin(INodeNo(ino)).is_err());
    }

    #[test]
    fn forgetting_a_pinned_inode_defers_the_clunk() {
        let mut t = Tables::new(0, 100);
        let f = t.new_fid().unwrap();
        let (ino, _) = t.register(f, 9, false);
        t.pin(INodeNo(ino)).unwrap();
        assert_eq!(t.forget(ino, 1), None);
        assert_eq!(t.unpin(f), Some(f));
    }

    #[test]
    fn the_root_keeps_its_fid() {
        let mut t = Tables::new(0, 100);
        let f = t.new_fid().unwrap();
        // A walk to ".." from the root lands on the root again.
        assert_eq!(t.register(f, 100, false), (INodeNo::ROOT.0, Some(f)));
        assert_eq!(t.pin(INodeNo::ROOT).unwrap(), 0);
        assert_eq!(t.forget(INodeNo::ROOT.0, 1 << 40), None);
    }
}
