//! Directory streams: Treaddir served from getdents64.
//!
//! Each open directory fid keeps its descriptor and a buffer of entries
//! the kernel returned. The 9P offset of an entry is the kernel's `d_off`
//! cookie, the position just after it, so a client continuing from the
//! last entry it got asks for exactly where the stream already is, and
//! reading goes on from the buffer without a system call or a seek. Any
//! other offset is an lseek to that cookie (0 rewinds, and re-reads, so a
//! rewind sees entries created since). Every entry costs O(1); nothing is
//! ever re-read from the start to find an offset.

use std::os::fd::{AsFd, OwnedFd};

use bytes::Bytes;
use proto_9p::wire::Wire;
use proto_9p::{Errno, Qid};

use super::fid::{lock, Fid, Open};
use super::{qid, sys, LocalExport};

const BUF_LEN: usize = 32 * 1024;
/// d_ino[8] d_off[8] d_reclen[2] d_type[1], then the name.
const HEADER: usize = 19;

/// One entry as getdents64 gave it.
#[derive(Debug)]
pub(super) struct RawEntry<'a> {
    pub(super) ino: u64,
    pub(super) ty: u8,
    pub(super) name: &'a [u8],
}

/// An open directory and how far it has been read.
#[derive(Debug)]
pub(super) struct DirStream {
    fd: OwnedFd,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The cookie of the next entry: where the stream is.
    pos: u64,
}

impl DirStream {
    pub(super) fn new(fd: OwnedFd) -> DirStream {
        DirStream {
            fd,
            buf: vec![0; BUF_LEN].into_boxed_slice(),
            start: 0,
            end: 0,
            pos: 0,
        }
    }

    /// fsync(2) of the directory.
    pub(super) fn fsync(&self, datasync: bool) -> Result<(), Errno> {
        sys::fsync(self.fd.as_fd(), datasync)
    }

    /// Moves to `offset` unless the stream is already there.
    pub(super) fn seek(&mut self, offset: u64) -> Result<(), Errno> {
        if offset == self.pos && offset != 0 {
            return Ok(());
        }
        let off = i64::try_from(offset).map_err(|_| Errno::EINVAL)?;
        sys::lseek_set(self.fd.as_fd(), off)?;
        self.start = 0;
        self.end = 0;
        self.pos = offset;
        Ok(())
    }

    /// Packs entries from the current position into at most `count` bytes,
    /// never splitting one; `qid` gives each entry's qid.
    pub(super) fn fill(
        &mut self,
        count: usize,
        mut qid: impl FnMut(&RawEntry<'_>) -> Result<Qid, Errno>,
    ) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::with_capacity(count.min(BUF_LEN * 2));
        loop {
            if self.start == self.end {
                let n = sys::getdents64(self.fd.as_fd(), &mut self.buf)?;
                if n == 0 {
                    break;
                }
                self.start = 0;
                self.end = n;
            }
            let rec = &self.buf[self.start..self.end];
            if rec.len() < HEADER {
                return Err(Errno::EIO);
            }
            let ino = u64::from_ne_bytes(field(rec, 0));
            let off = u64::from_ne_bytes(field(rec, 8));
            let reclen = usize::from(u16::from_ne_bytes(field(rec, 16)));
            if reclen < HEADER || reclen > rec.len() {
                return Err(Errno::EIO);
            }
            let raw_name = &rec[HEADER..reclen];
            let name_len = raw_name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(raw_name.len());
            let entry = RawEntry {
                ino,
                ty: rec[18],
                name: &raw_name[..name_len],
            };
            // qid[13] offset[8] type[1] name[2+n]
            let need = 13 + 8 + 1 + 2 + name_len;
            if out.len() + need > count {
                if out.is_empty() {
                    // Not even one entry fits, as getdents(2) answers.
                    return Err(Errno::EINVAL);
                }
                break;
            }
            let q = match qid(&entry) {
                Ok(q) => q,
                // Hand back what is packed; the entry stays for next time.
                Err(_) if !out.is_empty() => break,
                Err(e) => return Err(e),
            };
            q.encode(&mut out);
            off.encode(&mut out);
            entry.ty.encode(&mut out);
            (name_len as u16).encode(&mut out);
            out.extend_from_slice(entry.name);
            self.start += reclen;
            self.pos = off;
        }
        Ok(out)
    }
}

fn field<const N: usize>(rec: &[u8], at: usize) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&rec[at..at + N]);
    a
}

impl LocalExport {
    /// Entries of an open directory from `offset`. An entry's qid comes
    /// from its `d_ino` on the directory's device, with no stat per entry:
    /// that is the qid a walk gives (the Linux client shows it as the
    /// inode number), except for a mount point, where, as with a local
    /// readdir, it is the inode under the mount. `..` of the root is the
    /// root itself, as a walk says.
    pub(super) fn do_readdir(&self, fid: &Fid, offset: u64, count: u32) -> Result<Bytes, Errno> {
        let stream = match fid.open() {
            Open::Dir(s) => s,
            Open::File { .. } => return Err(Errno::ENOTDIR),
            _ => return Err(Errno::EBADF),
        };
        let node = fid.node();
        let at_root = self.is_root(node);
        let mut s = lock(stream);
        s.seek(offset)?;
        let data = s.fill(count as usize, |e| {
            let path = if at_root && e.name == b".." {
                self.root.qpath
            } else {
                self.qids.path(node.dev, e.ino)?
            };
            Ok(Qid {
                ty: qid::type_of_dtype(e.ty),
                version: 0,
                path,
            })
        })?;
        Ok(Bytes::from(data))
    }
}
