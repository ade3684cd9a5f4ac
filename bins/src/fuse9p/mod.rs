//! The client's files through FUSE, for kernels without a 9p file system.
//!
//! cpud normally hands the 9P2000.L stream to the kernel (`mount -t 9p -o
//! trans=fd`). Where that gives ENODEV, [`serve`] mounts a FUSE file
//! system instead and forwards each FUSE operation as 9P2000.L requests
//! over the same stream, with the repository's shared 9P client.
//!
//! Every request is a round trip through the SSH forward, so the bridge
//! keeps many out at once: fuser runs [`WORKERS`] threads reading the
//! FUSE device (each operation blocks only its own thread), the 9P client
//! multiplexes their requests by tag, and a large read or write goes out
//! as several 9P messages in flight together. The kernel orders what
//! needs ordering: it sends no release while requests on that handle are
//! out, and no forget while an inode is in use.
//!
//! FUSE inodes are 9P fids walked one name at a time from the parent's
//! fid; open files and directories get a fid of their own, cloned from
//! the inode's fid and opened, whose number is the FUSE file handle. The
//! tables of both live in [`tables`].

use std::ffi::OsStr;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::rt::{CallError, MuxClient, Pending};
use bytes::Bytes;
use fuser::{
    AccessFlags, Config, Errno as FErrno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, Session, SessionACL, TimeOrNow, WriteFlags,
};
use proto_9p::consts::{getattr, open_flags as dotl, setattr, NOFID};
use proto_9p::messages::*;
use proto_9p::{Dirent, Errno};

mod convert;
mod tables;

use convert::{dirent_type, dotl_flags, name_bytes, to_attr, wire_time};
use tables::{Handle, Tables};

/// The msize asked for; the server's answer is used. 1 MiB is what
/// cpud's kernel 9p mount asks for, and the most our 9P server grants.
pub const MSIZE: u32 = 1 << 20;

/// Threads serving FUSE requests: each blocks on one operation's round
/// trips, so this bounds the operations the kernel has out at once. The
/// kernel's own limit on background requests (readahead) is 16.
const WORKERS: usize = 16;

/// 9P requests out at once, from all workers together.
const MAX_IN_FLIGHT: usize = 64;

/// Largest FUSE read or write: the kernel's ceiling (256 pages), so one
/// FUSE request covers what one 9P message of a 1 MiB msize carries.
const MAX_IO: u32 = 1 << 20;

/// Kernel readahead for the mount, in KiB: sequential reads keep this
/// much asked for ahead, as several FUSE reads in flight. The kernel
/// starts FUSE mounts at 128 KiB, a round trip per 128 KiB here.
const READAHEAD_KB: u32 = 4096;

/// How long the kernel may cache attributes and names. The files are
/// the client's and the mount lives as long as one cpu session; changes
/// made through this mount are seen at once, and changes made on the
/// client's side by others show after at most this long. Three seconds
/// spares the round trips of tools that stat the same paths again and
/// again (make, shells searching PATH), while keeping that window short.
const TTL: Duration = Duration::from_secs(3);

/// Treaddir count: about what a FUSE readdir page takes, so that little
/// is read only to be asked for again; more is fetched while it fits.
const READDIR_COUNT: u32 = 16 << 10;

/// Entries looked up together for readdirplus: about one page of FUSE
/// direntplus records, the kernel's usual buffer.
const PLUS_BATCH_BYTES: usize = 4096;

/// A FUSE direntplus record before its name: fuse_entry_out (128 bytes)
/// and fuse_dirent (24).
const DIRENTPLUS_HEADER: usize = 152;

/// AT_REMOVEDIR for Tunlinkat, as Linux defines it (the 9P value).
const AT_REMOVEDIR: u32 = 0x200;

/// Mounts at `mountpoint` a FUSE file system that forwards every
/// operation as 9P2000.L over `stream` (already past any nonce; the 9P
/// session starts with Tversion here), attaching as `uname`. Calls
/// `ready()` once the mount is in place, then serves until the stream
/// closes or the file system is unmounted; returns then.
///
/// When the stream fails, the mount is detached (lazily: processes
/// inside it see EIO) and the function returns once the kernel lets the
/// FUSE connection go.
pub fn serve(
    stream: TcpStream,
    uname: &str,
    mountpoint: &Path,
    ready: impl FnOnce(),
) -> io::Result<()> {
    // Bounded: a peer that never answers Tversion or Tattach must not
    // hang the session setup; the stream is shut down if it takes longer
    // (whatever the runtime waits with). Once the session is up, reads
    // legitimately wait (a fifo, a slow disk on the client).
    let setup_done = setup_watchdog(&stream, SETUP_TIMEOUT)?;
    let client = crate::rt::mux_client(&stream, MSIZE, MAX_IN_FLIGHT).map_err(call_to_io)?;
    // Fid numbers are the bridge's own from here on; the root is 0.
    let root = 0;
    let reply = client
        .call(Tattach {
            fid: root,
            afid: NOFID,
            uname: uname.as_bytes().to_vec(),
            // cpud's kernel mount attaches with an empty aname too.
            aname: Vec::new(),
            n_uname: NOFID,
        })
        .map_err(call_to_io)?;
    let Message::Rattach(Rattach { qid }) = reply else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("9P attach answered with {}", reply.name()),
        ));
    };
    let _ = setup_done.send(());
    let fs = Bridge {
        client,
        tables: Mutex::new(Tables::new(root, qid.path)),
        dead: AtomicBool::new(false),
        mountpoint: mountpoint.to_path_buf(),
    };
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("cpu".into()),
        MountOption::Subtype("9p".into()),
    ];
    // Everyone in the namespace may use the mount; the 9P server does the
    // permission checks, as with the kernel's 9p mount.
    config.acl = SessionACL::All;
    config.n_threads = Some(WORKERS);
    // A /dev/fuse descriptor per worker: no contention on one queue.
    config.clone_fd = true;
    // Session::new returns after the kernel's INIT, so the mount is live.
    let session = Session::new(fs, mountpoint, &config)?;
    widen_readahead(mountpoint);
    ready();
    let r = session.run();
    // The reader thread of the 9P client ends with the stream.
    let _ = stream.shutdown(Shutdown::Both);
    r
}

/// How long the 9P version and attach may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Shuts `stream` down unless told within `limit` (by a send on the
/// returned sender) that the setup is over.
fn setup_watchdog(stream: &TcpStream, limit: Duration) -> io::Result<std::sync::mpsc::Sender<()>> {
    let stream = stream.try_clone()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    });
    Ok(tx)
}

/// Raises the mount's readahead from the kernel's 128 KiB start. Its
/// bdi is named by the mount's device number, read from mountinfo: a
/// stat of the mount point would wait on this very file system, which
/// serves nothing yet. Best effort: without a writable /sys the mount
/// works, only slower.
fn widen_readahead(mountpoint: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let Some(dev) = mount_dev(&info, mountpoint) else {
        return;
    };
    let knob = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    let _ = std::fs::write(knob, READAHEAD_KB.to_string());
}

/// The "major:minor" of the last mount at `mountpoint` in mountinfo
/// text (fields: id, parent, major:minor, root, mount point, ...).
fn mount_dev(info: &str, mountpoint: &Path) -> Option<String> {
    // mountinfo escapes space, tab, newline and backslash as octal.
    let mut want = String::new();
    for c in mountpoint.to_str()?.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => want.push_str(&format!("\\{:03o}", c as u32)),
            c => want.push(c),
        }
    }
    info.lines()
        .rev()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.get(4) == Some(&want.as_str())).then(|| f.get(2).map(|d| d.to_string()))
        })
        .next()
        .flatten()
}

fn call_to_io(e: CallError) -> io::Error {
    match e {
        CallError::Io(e) => e,
        CallError::Errno(n) => io::Error::from_raw_os_error(errno_i32(n)),
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    }
}

fn errno_i32(e: Errno) -> i32 {
    i32::try_from(e.0).unwrap_or(libc::EIO)
}

/// The FUSE file system: the shared 9P client and the tables.
#[derive(Debug)]
struct Bridge {
    client: MuxClient,
    tables: Mutex<Tables>,
    /// Set once the transport failed; everything answers EIO then.
    dead: AtomicBool,
    mountpoint: PathBuf,
}

/// A failed operation: an errno for the kernel.
type Res<T> = Result<T, FErrno>;

/// An inode's fid in use by one operation; see [`tables`].
struct Pin<'a> {
    bridge: &'a Bridge,
    fid: u32,
}

impl Drop for Pin<'_> {
    fn drop(&mut self) {
        let retired = self.bridge.tables().unpin(self.fid);
        if let Some(fid) = retired {
            self.bridge.clunk(fid);
        }
    }
}

/// The answer to a walk: the new fid, or why there is none. Only
/// transport failures are errors; a name that is not there is `None`.
type Walked = Option<u32>;

impl Bridge {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        // The tables are consistent between calls: a panicking holder
        // leaves them usable.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f`, turning 9P failures into errnos. A transport or protocol
    /// failure ends the mount.
    fn run<T>(&self, f: impl FnOnce() -> Result<T, CallError>) -> Res<T> {
        if self.dead.load(Ordering::Relaxed) {
            return Err(FErrno::EIO);
        }
        match f() {
            Ok(v) => Ok(v),
            Err(CallError::Errno(e)) => Err(FErrno::from_i32(errno_i32(e))),
            Err(e) => {
                if !self.dead.swap(true, Ordering::Relaxed) {
                    eprintln!("fuse9p: {e}; detaching {}", self.mountpoint.display());
                    // Lazily, from another thread: the kernel may be
                    // waiting on this very request. The FUSE connection
                    // ends once nothing uses the mount, and serve returns.
                    let mp = self.mountpoint.clone();
                    let _ = std::thread::Builder::new()
                        .name("fuse9p-detach".into())
                        .spawn(move || {
                            let _ = nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH);
                        });
                }
                Err(FErrno::EIO)
            }
        }
    }

    fn pin(&self, ino: INodeNo) -> Result<Pin<'_>, CallError> {
        let fid = self.tables().pin(ino)?;
        Ok(Pin { bridge: self, fid })
    }

    /// Clunks `fid`; its number is free again whatever the answer, as
    /// Tclunk forgets the fid even when it fails.
    fn clunk(&self, fid: u32) {
        let _ = self.client.clunk(fid);
        self.tables().free_fid(fid);
    }

    /// Sends Twalk of `names` (none: a clone) from `fid` to a new fid.
    fn start_walk(&self, fid: u32, names: Vec<Vec<u8>>) -> Result<(u32, Pending), CallError> {
        let newfid = self.tables().new_fid()?;
        match self.client.start(Twalk {
            fid,
            newfid,
            wnames: names,
        }) {
            Ok(p) => Ok((newfid, p)),
            Err(e) => {
                self.tables().free_fid(newfid);
                Err(e)
            }
        }
    }

    /// The end of [`Self::start_walk`] of `want` names: the new fid, or
    /// `None` when the walk failed (a failed or partial walk makes no
    /// fid, only a full one does).
    fn finish_walk(&self, newfid: u32, want: usize, p: Pending) -> Result<Walked, CallError> {
        match p.wait() {
            Ok(Message::Rwalk(Rwalk { wqids })) if wqids.len() == want => Ok(Some(newfid)),
            Ok(Message::Rwalk(_)) | Err(CallError::Errno(_)) => {
                self.tables().free_fid(newfid);
                Ok(None)
            }
            Ok(m) => Err(CallError::Unexpected(m.name())),
            Err(e) => Err(e),
        }
    }

    /// Walks `names` (none: a clone) from `fid` to a new fid.
    fn walk(&self, fid: u32, names: Vec<Vec<u8>>) -> Result<u32, CallError> {
        let want = names.len();
        let (newfid, p) = self.start_walk(fid, names)?;
        self.finish_walk(newfid, want, p)?
            .ok_or(CallError::Errno(Errno::ENOENT))
    }

    fn getattr(&self, fid: u32) -> Result<Rgetattr, CallError> {
        self.client.getattr(fid, getattr::BASIC)
    }

    /// Records `fid` as the inode of the file `attr` describes, counting
    /// one kernel lookup; its FUSE attributes.
    fn register(&self, fid: u32, attr: &Rgetattr) -> FileAttr {
        let regular = attr.mode & libc::S_IFMT == libc::S_IFREG;
        let (ino, stale) = self.tables().register(fid, attr.qid.path, regular);
        if let Some(stale) = stale {
            self.clunk(stale);
        }
        to_attr(INodeNo(ino), attr)
    }

    /// Looks `name` up in `parent`, registering (or refreshing) its inode.
    fn lookup(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, CallError> {
        let fid = {
            let dir = self.pin(parent)?;
            self.walk(dir.fid, vec![name_bytes(name)])?
        };
        match self.getattr(fid) {
            Ok(a) => Ok(self.register(fid, &a)),
            Err(e) => {
                self.clunk(fid);
                Err(e)
            }
        }
    }

    /// Walks to each of `names` in the directory `dir` and gets its
    /// attributes, all requests out together. Per name: the new fid and
    /// attributes, or `None` if it is gone.
    fn lookup_many(
        &self,
        dir: u32,
        names: &[&[u8]],
    ) -> Result<Vec<Option<(u32, Rgetattr)>>, CallError> {
        let mut walks = Vec::with_capacity(names.len());
        for name in names {
            walks.push(self.start_walk(dir, vec![name.to_vec()])?);
        }
        let mut fids = Vec::with_capacity(walks.len());
        for (newfid, p) in walks {
            fids.push(self.finish_walk(newfid, 1, p)?);
        }
        let mut stats = Vec::with_capacity(fids.len());
        for fid in fids {
            let p = match fid {
                Some(fid) => Some(self.client.start(Tgetattr {
                    fid,
                    request_mask: getattr::BASIC,
                })?),
                None => None,
            };
            stats.push((fid, p));
        }
        let mut out = Vec::with_capacity(stats.len());
        for (fid, p) in stats {
            let (Some(fid), Some(p)) = (fid, p) else {
                out.push(None);
                continue;
            };
            match p.wait() {
                Ok(Message::Rgetattr(a)) => out.push(Some((fid, a))),
                Err(CallError::Errno(_)) => {
                    self.clunk(fid);
                    out.push(None);
                }
                Ok(m) => return Err(CallError::Unexpected(m.name())),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Clones the inode's fid and opens it; the fid is the file handle.
    fn open_fid(&self, ino: INodeNo, flags: u32) -> Result<u32, CallError> {
        let newfid = {
            let node = self.pin(ino)?;
            self.walk(node.fid, Vec::new())?
        };
        match self.client.lopen(newfid, flags) {
            Ok(r) => {
                let mut t = self.tables();
                let regular = t.is_regular(ino);
                let h = self.handle_for(r.iounit, regular, flags);
                t.add_handle(newfid, h);
                Ok(newfid)
            }
            Err(e) => {
                self.clunk(newfid);
                Err(e)
            }
        }
    }

    /// How an open fid's I/O is done, given the server's iounit (0: any)
    /// and the open flags.
    fn handle_for(&self, iounit: u32, regular: bool, flags: u32) -> Handle {
        let max = self.client.iounit();
        let unit = if iounit == 0 { max } else { iounit.min(max) };
        Handle {
            unit: unit.max(1),
            parallel_read: regular,
            parallel_write: regular && flags & dotl::APPEND == 0,
        }
    }

    /// Sends a request whose answer carries nothing but its type.
    fn call_expect(&self, msg: impl Into<Message>, want: &'static str) -> Result<(), CallError> {
        let r = self.client.call(msg)?;
        if r.name() == want {
            Ok(())
        } else {
            Err(CallError::Unexpected(r.name()))
        }
    }

    /// One Treaddir of the open directory `fid` from `offset`.
    fn dir_chunk(&self, fid: u32, unit: u32, offset: u64) -> Result<Vec<Dirent>, CallError> {
        let r = self.client.call(Treaddir {
            fid,
            offset,
            count: unit.min(READDIR_COUNT),
        })?;
        let Message::Rreaddir(Rreaddir { data }) = r else {
            return Err(CallError::Unexpected(r.name()));
        };
        Dirent::decode_all(data).map_err(|_| CallError::Unexpected("bad Rreaddir payload"))
    }
}

/// The size of a 9P read or write piece: the largest power of two within
/// `unit`, so that page-aligned FUSE requests split into aligned pieces
/// of one size (a 1 MiB read over a 1 MiB - 24 iounit is two 512 KiB
/// reads, not 1 MiB - 24 and 24 bytes).
fn piece(unit: u32) -> u32 {
    if unit >= 4096 {
        1 << (31 - unit.leading_zeros())
    } else {
        unit.max(1)
    }
}

impl Bridge {
    /// Reads `size` bytes at `offset` of an open file, less at its end.
    fn read_at(&self, fh: FileHandle, offset: u64, size: u32) -> Result<Vec<u8>, CallError> {
        let (fid, h) = self.tables().handle(fh)?;
        let mut out = Vec::with_capacity(size as usize);
        if !h.parallel_read {
            // One piece at a time: a fifo's or device's data has no
            // offsets to split on. The kernel wants all of `size` unless
            // at end of file.
            while out.len() < size as usize {
                let want = (size - out.len() as u32).min(h.unit);
                let pos = offset.saturating_add(out.len() as u64);
                let got = self.client.read(fid, pos, want)?;
                if got.is_empty() {
                    break;
                }
                out.extend_from_slice(&got[..got.len().min(want as usize)]);
            }
            return Ok(out);
        }
        let step = piece(h.unit);
        let mut pending = Vec::new();
        let mut at = 0u32;
        while at < size {
            let count = (size - at).min(step);
            let p = self.client.start(Tread {
                fid,
                offset: offset.saturating_add(u64::from(at)),
                count,
            })?;
            pending.push((count, p));
            at += count;
        }
        // In order; a short piece is the end of the file, and the pieces
        // after it carry nothing meant for this answer.
        let mut short = false;
        for (count, p) in pending {
            let data = match p.wait()? {
                Message::Rread(r) => r.data,
                other => return Err(CallError::Unexpected(other.name())),
            };
            if short {
                continue;
            }
            out.extend_from_slice(&data[..data.len().min(count as usize)]);
            short = data.len() < count as usize;
        }
        Ok(out)
    }

    /// Writes `data` at `offset` of an open file; the bytes written.
    fn write_at(&self, fh: FileHandle, offset: u64, data: &[u8]) -> Result<usize, CallError> {
        let (fid, h) = self.tables().handle(fh)?;
        if !h.parallel_write {
            // In order: with O_APPEND the server picks each offset.
            let mut done = 0usize;
            while done < data.len() {
                let end = data.len().min(done + h.unit as usize);
                let chunk = Bytes::copy_from_slice(&data[done..end]);
                let n = self.client.write(fid, offset + done as u64, chunk)?;
                if n == 0 {
                    break;
                }
                done += (n as usize).min(end - done);
            }
            return Ok(done);
        }
        let step = piece(h.unit) as usize;
        let mut pending = Vec::new();
        for (i, chunk) in data.chunks(step).enumerate() {
            let p = self.client.start(Twrite {
                fid,
                offset: offset + (i * step) as u64,
                data: Bytes::copy_from_slice(chunk),
            })?;
            pending.push((chunk.len(), p));
        }
        // What was written without a gap from `offset`.
        let mut done = 0usize;
        let mut short = false;
        for (len, p) in pending {
            let n = match p.wait()? {
                Message::Rwrite(r) => r.count as usize,
                other => return Err(CallError::Unexpected(other.name())),
            };
            if !short {
                done += n.min(len);
                short = n < len;
            }
        }
        Ok(done)
    }
}

/// Answers a request that names a file with that file's entry.
fn reply_entry(reply: ReplyEntry, r: Res<FileAttr>) {
    match r {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

/// Whether a directory entry is "." or "..": the kernel takes no
/// lookup from readdirplus for those.
fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

/// The FUSE direntplus record size of an entry named `name`.
fn plus_size(name: &[u8]) -> usize {
    (DIRENTPLUS_HEADER + name.len()).next_multiple_of(8)
}

/// Attributes for a "." or ".." record: the kernel reads only the inode
/// number and type of those.
fn dot_attr(d: &Dirent) -> FileAttr {
    FileAttr {
        ino: INodeNo(d.qid.path.max(1)),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::Directory,
        perm: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

impl Bridge {
    /// Makes `name` in `parent` with the 9P call `make` sends (given the
    /// directory's fid), then answers with the new file's entry: mknod,
    /// mkdir, symlink and link differ only in that call.
    fn make_entry(
        &self,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEntry,
        make: impl FnOnce(u32) -> Result<(), CallError>,
    ) {
        let r = self.run(|| {
            {
                let dir = self.pin(parent)?;
                make(dir.fid)?;
            }
            self.lookup(parent, name)
        });
        reply_entry(reply, r);
    }

    fn unlinkat(&self, parent: INodeNo, name: &OsStr, flags: u32, reply: ReplyEmpty) {
        let r = self.run(|| {
            let dir = self.pin(parent)?;
            self.call_expect(
                Tunlinkat {
                    dirfid: dir.fid,
                    name: name_bytes(name),
                    flags,
                },
                "Runlinkat",
            )
        });
        reply_empty(reply, r);
    }

    fn release_fid(&self, fh: FileHandle, reply: ReplyEmpty) {
        let r = self.run(|| {
            let fid = self.tables().remove_handle(fh)?;
            let r = self.client.clunk(fid);
            self.tables().free_fid(fid);
            r
        });
        reply_empty(reply, r);
    }

    /// Fills a readdirplus answer from `offset`: the entries' inodes are
    /// looked up (a batch at a time, all requests out together), so
    /// that a walk of the tree (tar, find, ls -l) needs no lookup each.
    fn fill_plus(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: &mut ReplyDirectoryPlus,
    ) -> Result<(), CallError> {
        let (fid, h) = self.tables().handle(fh)?;
        let dir = self.pin(ino)?;
        let mut offset = offset;
        loop {
            let entries = self.dir_chunk(fid, h.unit, offset)?;
            let Some(last) = entries.last() else {
                return Ok(());
            };
            offset = last.offset;
            let mut rest = &entries[..];
            while !rest.is_empty() {
                let mut n = 0;
                let mut bytes = 0;
                while n < rest.len()
                    && (n == 0 || bytes + plus_size(&rest[n].name) <= PLUS_BATCH_BYTES)
                {
                    bytes += plus_size(&rest[n].name);
                    n += 1;
                }
                let (batch, tail) = rest.split_at(n);
                rest = tail;
                let names: Vec<&[u8]> = batch
                    .iter()
                    .filter(|d| !is_dot(&d.name))
                    .map(|d| &d.name[..])
                    .collect();
                let mut found = self.lookup_many(dir.fid, &names)?.into_iter();
                let mut full = false;
                for d in batch {
                    let name = OsStr::from_bytes(&d.name);
                    if is_dot(&d.name) {
                        if !full {
                            full = reply.add(
                                dot_attr(d).ino,
                                d.offset,
                                name,
                                &Duration::ZERO,
                                &dot_attr(d),
                                Generation(0),
                            );
                        }
                        continue;
                    }
                    // Gone since the Treaddir: left out.
                    let Some((efid, a)) = found.next().flatten() else {
                        continue;
                    };
                    if full {
                        // Not sent, so not the kernel's: let it go.
                        self.clunk(efid);
                        continue;
                    }
                    let attr = self.register(efid, &a);
                    full = reply.add(attr.ino, d.offset, name, &TTL, &attr, Generation(0));
                    if full {
                        let stale = self.tables().forget(attr.ino.0, 1);
                        if let Some(stale) = stale {
                            self.clunk(stale);
                        }
                    }
                }
                if full {
                    return Ok(());
                }
            }
        }
    }
}

fn reply_empty(reply: ReplyEmpty, r: Res<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for Bridge {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // Each is a wish: an older kernel keeps its own limits.
        let _ = config.set_max_write(MAX_IO);
        let _ = config.set_max_readahead(READAHEAD_KB << 10);
        let _ = config.set_max_background(32);
        // readdirplus: a directory listing brings its entries' attributes
        // (a batch of lookups in flight together instead of one lookup
        // round trip per name). Lookups and readdirs of one directory may
        // run at once: the bridge orders nothing itself.
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        Ok(())
    }

    fn destroy(&mut self) {
        // Clunks are pointless here: the stream goes with the client.
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply_entry(reply, self.run(|| self.lookup(parent, name)));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let stale = self.tables().forget(ino.0, nlookup);
        if let Some(fid) = stale {
            if !self.dead.load(Ordering::Relaxed) {
                self.clunk(fid);
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.run(|| {
            let node = self.pin(ino)?;
            self.getattr(node.fid)
        });
        match r {
            Ok(a) => {
                self.tables()
                    .set_regular(ino, a.mode & libc::S_IFMT == libc::S_IFREG);
                reply.attr(&TTL, &to_attr(ino, &a));
            }
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut msg = Tsetattr::default();
        if let Some(m) = mode {
            msg.valid |= setattr::MODE;
            msg.mode = m & 0o7777;
        }
        if let Some(u) = uid {
            msg.valid |= setattr::UID;
            msg.uid = u;
        }
        if let Some(g) = gid {
            msg.valid |= setattr::GID;
            msg.gid = g;
        }
        if let Some(s) = size {
            msg.valid |= setattr::SIZE;
            msg.size = s;
        }
        match atime {
            Some(TimeOrNow::Now) => msg.valid |= setattr::ATIME,
            Some(TimeOrNow::SpecificTime(t)) => {
                msg.valid |= setattr::ATIME | setattr::ATIME_SET;
                (msg.atime_sec, msg.atime_nsec) = wire_time(t);
            }
            None => {}
        }
        match mtime {
            Some(TimeOrNow::Now) => msg.valid |= setattr::MTIME,
            Some(TimeOrNow::SpecificTime(t)) => {
                msg.valid |= setattr::MTIME | setattr::MTIME_SET;
                (msg.mtime_sec, msg.mtime_nsec) = wire_time(t);
            }
            None => {}
        }
        let r = self.run(|| {
            let node = self.pin(ino)?;
            msg.fid = node.fid;
            if msg.valid != 0 {
                self.call_expect(msg, "Rsetattr")?;
            }
            self.getattr(node.fid)
        });
        match r {
            Ok(a) => reply.attr(&TTL, &to_attr(ino, &a)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self.run(|| {
            let node = self.pin(ino)?;
            match self.client.call(Treadlink { fid: node.fid })? {
                Message::Rreadlink(r) => Ok(r.target),
                other => Err(CallError::Unexpected(other.name())),
            }
        });
        match r {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let gid = req.gid();
        // FUSE's 32-bit rdev is the kernel's new_encode_dev.
        let major = (rdev & 0xfff00) >> 8;
        let minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
        self.make_entry(parent, name, reply, |dfid| {
            self.call_expect(
                Tmknod {
                    dfid,
                    name: name_bytes(name),
                    mode: mode & !(umask & 0o777),
                    major,
                    minor,
                    gid,
                },
                "Rmknod",
            )
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let gid = req.gid();
        self.make_entry(parent, name, reply, |dfid| {
            self.call_expect(
                Tmkdir {
                    dfid,
                    name: name_bytes(name),
                    mode: mode & 0o7777 & !umask,
                    gid,
                },
                "Rmkdir",
            )
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.unlinkat(parent, name, 0, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.unlinkat(parent, name, AT_REMOVEDIR, reply);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let gid = req.gid();
        self.make_entry(parent, link_name, reply, |fid| {
            self.call_expect(
                Tsymlink {
                    fid,
                    name: name_bytes(link_name),
                    symtgt: target.as_os_str().as_bytes().to_vec(),
                    gid,
                },
                "Rsymlink",
            )
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        // Trenameat has no flags. NOREPLACE is checked first (racy against
        // other clients of the tree, as with any 9P client); EXCHANGE and
        // WHITEOUT cannot be done.
        let noreplace = flags == RenameFlags::RENAME_NOREPLACE;
        if !flags.is_empty() && !noreplace {
            reply.error(FErrno::EINVAL);
            return;
        }
        let r = self.run(|| {
            let olddir = self.pin(parent)?;
            let newdir = self.pin(newparent)?;
            if noreplace {
                match self.walk(newdir.fid, vec![name_bytes(newname)]) {
                    Ok(fid) => {
                        self.clunk(fid);
                        return Err(CallError::Errno(Errno::EEXIST));
                    }
                    Err(CallError::Errno(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            self.call_expect(
                Trenameat {
                    olddirfid: olddir.fid,
                    oldname: name_bytes(name),
                    newdirfid: newdir.fid,
                    newname: name_bytes(newname),
                },
                "Rrenameat",
            )
        });
        reply_empty(reply, r);
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.make_entry(newparent, newname, reply, |dfid| {
            let node = self.pin(ino)?;
            self.call_expect(
                Tlink {
                    dfid,
                    fid: node.fid,
                    name: name_bytes(newname),
                },
                "Rlink",
            )
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.run(|| self.open_fid(ino, dotl_flags(flags.0, false))) {
            Ok(fid) => reply.opened(FileHandle(u64::from(fid)), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.run(|| self.read_at(fh, offset, size)) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.run(|| self.write_at(fh, offset, data)) {
            Ok(0) if !data.is_empty() => reply.error(FErrno::EIO),
            Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // 9P writes are not buffered here; nothing to push at close.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.release_fid(fh, reply);
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.run(|| {
            let (fid, _) = self.tables().handle(fh)?;
            self.call_expect(
                Tfsync {
                    fid,
                    datasync: u32::from(datasync),
                },
                "Rfsync",
            )
        });
        reply_empty(reply, r);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.run(|| self.open_fid(ino, dotl::RDONLY)) {
            Ok(fid) => reply.opened(FileHandle(u64::from(fid)), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        // 9P and FUSE offsets mean the same: where the next entry starts.
        // Entries that do not fit are asked for again next time.
        let r = self.run(|| {
            let (fid, h) = self.tables().handle(fh)?;
            let mut offset = offset;
            loop {
                let entries = self.dir_chunk(fid, h.unit, offset)?;
                let Some(last) = entries.last() else {
                    return Ok(());
                };
                offset = last.offset;
                for d in &entries {
                    // d_ino 0 hides an entry from some readers.
                    let ino = INodeNo(d.qid.path.max(1));
                    if reply.add(ino, d.offset, dirent_type(d), OsStr::from_bytes(&d.name)) {
                        return Ok(());
                    }
                }
            }
        });
        reply_empty_dir(reply, r);
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        match self.run(|| self.fill_plus(ino, fh, offset, &mut reply)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.release_fid(fh, reply);
    }

    fn fsyncdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.fsync(req, ino, fh, datasync, reply);
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        let r = self.run(|| {
            let node = self.pin(ino)?;
            match self.client.call(Tstatfs { fid: node.fid })? {
                Message::Rstatfs(s) => Ok(s),
                other => Err(CallError::Unexpected(other.name())),
            }
        });
        match r {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        // The server checks permissions when the file is used.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let gid = req.gid();
        let r = self.run(|| {
            // Tlcreate turns the directory fid into the open file: clone.
            let fid = {
                let dir = self.pin(parent)?;
                self.walk(dir.fid, Vec::new())?
            };
            let dflags = dotl_flags(flags, true);
            let created = self.client.call(Tlcreate {
                fid,
                name: name_bytes(name),
                flags: dflags,
                mode: mode & 0o7777 & !umask,
                gid,
            });
            let iounit = match created {
                Ok(Message::Rlcreate(r)) => r.iounit,
                Ok(other) => {
                    self.clunk(fid);
                    return Err(CallError::Unexpected(other.name()));
                }
                Err(e) => {
                    self.clunk(fid);
                    return Err(e);
                }
            };
            // Tlcreate makes regular files only.
            let h = self.handle_for(iounit, true, dflags);
            self.tables().add_handle(fid, h);
            match self.lookup(parent, name) {
                Ok(attr) => Ok((attr, fid)),
                Err(e) => {
                    let _ = self.tables().remove_handle(FileHandle(u64::from(fid)));
                    self.clunk(fid);
                    Err(e)
                }
            }
        });
        match r {
            Ok((attr, fid)) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(u64::from(fid)),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }
}

fn reply_empty_dir(reply: ReplyDirectory, r: Res<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_devices_come_from_mountinfo() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
                    90 22 0:50 / /tmp/a\\040b rw - fuse cpu rw\n\
                    91 22 0:51 / /tmp/a\\040b rw - fuse cpu rw\n";
        assert_eq!(
            mount_dev(info, Path::new("/tmp/a b")).as_deref(),
            Some("0:51")
        );
        assert_eq!(mount_dev(info, Path::new("/tmp/c")), None);
    }

    #[test]
    fn pieces_are_aligned_powers_of_two() {
        assert_eq!(piece((1 << 20) - 24), 512 << 10);
        assert_eq!(piece(1 << 20), 1 << 20);
        assert_eq!(piece(8192 - 24), 4096);
        assert_eq!(piece(1000), 1000);
        assert_eq!(piece(0), 1);
    }

    #[test]
    fn direntplus_sizes_are_padded() {
        assert_eq!(plus_size(b"a"), 160);
        assert_eq!(plus_size(b"12345678"), 160);
        assert_eq!(plus_size(b"123456789"), 168);
        assert!(is_dot(b".") && is_dot(b"..") && !is_dot(b"...."));
    }
}
