//! The client's files through FUSE, for kernels without a 9p file system.
//!
//! cpud normally hands the 9P2000.L stream to the kernel (`mount -t 9p -o
//! trans=fd`). Where that gives ENODEV, [`serve`] mounts a FUSE file
//! system instead and forwards each FUSE operation as 9P2000.L requests
//! over the same stream, with the repository's blocking 9P client.
//!
//! One 9P session serves everything, one request at a time behind a
//! mutex: simple and correct first. FUSE inodes are 9P fids walked one
//! name at a time from the parent's fid; open files and directories get a
//! fid of their own, cloned from the inode's fid and opened, whose number
//! is the FUSE file handle.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fuser::{
    AccessFlags, Config, Errno as FErrno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
    Session, SessionACL, TimeOrNow, WriteFlags,
};
use proto_9p::consts::{getattr, open_flags as dotl, setattr, NOFID};
use proto_9p::messages::*;
use proto_9p::{Dirent, Errno, Qid};
use runtime_std::p9client::{CallError, Client};

/// The msize asked for; the server's answer is used.
pub const MSIZE: u32 = 1 << 20;

/// How long the kernel may cache attributes and names. One second, as
/// most FUSE file systems: without it every path component of every
/// system call is a 9P walk. Changes made on the client side show after
/// at most this long.
const TTL: Duration = Duration::from_secs(1);

/// Largest Treaddir count: a FUSE readdir reply holds a few pages, so
/// asking for more only wastes the part the kernel cannot take.
const READDIR_COUNT: u32 = 64 << 10;

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
/// FUSE connection go. A closed stream is noticed at the next operation.
pub fn serve<S: Read + Write + Send + 'static>(
    stream: S,
    uname: &str,
    mountpoint: &Path,
    ready: impl FnOnce(),
) -> io::Result<()> {
    let mut client = Client::connect(stream, MSIZE).map_err(call_to_io)?;
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
    let fs = Bridge::new(client, root, qid, mountpoint.to_path_buf());
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("cpu".into()),
        MountOption::Subtype("9p".into()),
    ];
    // Everyone in the namespace may use the mount; the 9P server does the
    // permission checks, as with the kernel's 9p mount.
    config.acl = SessionACL::All;
    // Session::new returns after the kernel's INIT, so the mount is live.
    let session = Session::new(fs, mountpoint, &config)?;
    ready();
    session.run()
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

/// An inode the kernel knows: its fid and how many lookups it holds.
#[derive(Debug)]
struct Node {
    fid: u32,
    path: u64,
    nlookup: u64,
}

#[derive(Debug)]
struct State<S> {
    client: Client<S>,
    nodes: HashMap<u64, Node>,
    /// qid.path to inode, so that one file keeps one inode number (hard
    /// links, repeated lookups).
    by_path: HashMap<u64, u64>,
    /// Open fids (the file handles) and their I/O unit.
    open: HashMap<u32, u32>,
    next_ino: u64,
    /// Fid numbers clunked, for reuse: a long session must not run the
    /// 32-bit fid space out and wrap onto live fids.
    free_fids: Vec<u32>,
    next_fid: u32,
    /// Set once the transport failed; everything answers EIO then.
    dead: bool,
}

/// The FUSE file system: a 9P client behind a mutex.
#[derive(Debug)]
struct Bridge<S> {
    state: Mutex<State<S>>,
    mountpoint: PathBuf,
}

/// A failed operation: an errno for the kernel.
type Res<T> = Result<T, FErrno>;

impl<S: Read + Write + Send + 'static> Bridge<S> {
    fn new(client: Client<S>, root_fid: u32, root_qid: Qid, mountpoint: PathBuf) -> Self {
        let mut nodes = HashMap::new();
        let root = INodeNo::ROOT.0;
        nodes.insert(
            root,
            Node {
                fid: root_fid,
                path: root_qid.path,
                // The root is never forgotten.
                nlookup: u64::MAX / 2,
            },
        );
        let mut by_path = HashMap::new();
        by_path.insert(root_qid.path, root);
        Bridge {
            state: Mutex::new(State {
                client,
                nodes,
                by_path,
                open: HashMap::new(),
                next_ino: root + 1,
                free_fids: Vec::new(),
                next_fid: root_fid + 1,
                dead: false,
            }),
            mountpoint,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<S>> {
        // A panic in another handler leaves the tables usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the client, turning 9P failures into errnos. A
    /// transport or protocol failure ends the mount.
    fn with<T>(&self, f: impl FnOnce(&mut State<S>) -> Result<T, CallError>) -> Res<T> {
        let mut st = self.lock();
        if st.dead {
            return Err(FErrno::EIO);
        }
        match f(&mut st) {
            Ok(v) => Ok(v),
            Err(CallError::Errno(e)) => Err(FErrno::from_i32(errno_i32(e))),
            Err(e) => {
                st.dead = true;
                drop(st);
                eprintln!("fuse9p: {e}; detaching {}", self.mountpoint.display());
                // Lazily, from another thread: the kernel may be waiting on
                // this very request. The FUSE connection ends once nothing
                // uses the mount any more, and serve returns.
                let mp = self.mountpoint.clone();
                let _ = std::thread::Builder::new()
                    .name("fuse9p-detach".into())
                    .spawn(move || {
                        let _ = nix::mount::umount2(&mp, nix::mount::MntFlags::MNT_DETACH);
                    });
                Err(FErrno::EIO)
            }
        }
    }
}

impl<S: Read + Write> State<S> {
    fn fid_of(&self, ino: INodeNo) -> Result<u32, CallError> {
        self.nodes
            .get(&ino.0)
            .map(|n| n.fid)
            .ok_or(CallError::Errno(Errno::ESTALE))
    }

    fn new_fid(&mut self) -> Result<u32, CallError> {
        if let Some(fid) = self.free_fids.pop() {
            return Ok(fid);
        }
        if self.next_fid == NOFID {
            return Err(CallError::Errno(Errno::EMFILE));
        }
        let fid = self.next_fid;
        self.next_fid += 1;
        Ok(fid)
    }

    /// Walks `names` (none: a clone) from `fid` to a new fid.
    fn walk(&mut self, fid: u32, names: Vec<Vec<u8>>) -> Result<(u32, Option<Qid>), CallError> {
        let newfid = self.new_fid()?;
        let want = names.len();
        let r = self.client.call(Twalk {
            fid,
            newfid,
            wnames: names,
        });
        let wqids = match r {
            Ok(Message::Rwalk(Rwalk { wqids })) if wqids.len() == want => wqids,
            // A failed or partial walk makes no fid (only a full one does).
            other => {
                self.free_fids.push(newfid);
                return match other {
                    Ok(Message::Rwalk(_)) => Err(CallError::Errno(Errno::ENOENT)),
                    Ok(m) => Err(CallError::Unexpected(m.name())),
                    Err(e) => Err(e),
                };
            }
        };
        Ok((newfid, wqids.last().copied()))
    }

    /// Clunks `fid`; its number is free again whatever the answer, as
    /// Tclunk forgets the fid even when it fails.
    fn clunk(&mut self, fid: u32) -> Result<(), CallError> {
        let r = self.client.clunk(fid);
        self.free_fids.push(fid);
        r
    }

    fn getattr(&mut self, fid: u32) -> Result<Rgetattr, CallError> {
        self.client.getattr(fid, getattr::BASIC)
    }

    /// Looks `name` up in `parent`, registering (or refreshing) its inode
    /// and counting one kernel lookup.
    fn lookup(&mut self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, CallError> {
        let pfid = self.fid_of(parent)?;
        let (fid, _) = self.walk(pfid, vec![name.as_bytes().to_vec()])?;
        let attr = match self.getattr(fid) {
            Ok(a) => a,
            Err(e) => {
                let _ = self.clunk(fid);
                return Err(e);
            }
        };
        let ino = self.register(fid, attr.qid.path);
        Ok(to_attr(INodeNo(ino), &attr))
    }

    /// Records `fid` as the inode of qid path `path`. A known file gets
    /// the fresh fid (the old one may name a file since replaced, should
    /// the server reuse the number) and keeps its inode number.
    fn register(&mut self, fid: u32, path: u64) -> u64 {
        if let Some(&ino) = self.by_path.get(&path) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.nlookup = node.nlookup.saturating_add(1);
                // The root keeps its attach fid.
                let stale = if ino == INodeNo::ROOT.0 {
                    fid
                } else {
                    std::mem::replace(&mut node.fid, fid)
                };
                if stale != node.fid {
                    let _ = self.clunk(stale);
                }
                return ino;
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
            },
        );
        self.by_path.insert(path, ino);
        ino
    }

    fn forget(&mut self, ino: u64, n: u64) {
        if ino == INodeNo::ROOT.0 {
            return;
        }
        let Some(node) = self.nodes.get_mut(&ino) else {
            return;
        };
        node.nlookup = node.nlookup.saturating_sub(n);
        if node.nlookup > 0 {
            return;
        }
        if let Some(node) = self.nodes.remove(&ino) {
            if self.by_path.get(&node.path) == Some(&ino) {
                self.by_path.remove(&node.path);
            }
            let _ = self.clunk(node.fid);
        }
    }

    /// Clones the inode's fid and opens it; the fid is the file handle.
    fn open(&mut self, ino: INodeNo, flags: u32) -> Result<u32, CallError> {
        let fid = self.fid_of(ino)?;
        let (newfid, _) = self.walk(fid, Vec::new())?;
        match self.client.lopen(newfid, flags) {
            Ok(r) => {
                self.open.insert(newfid, self.unit(r.iounit));
                Ok(newfid)
            }
            Err(e) => {
                let _ = self.clunk(newfid);
                Err(e)
            }
        }
    }

    /// The largest payload for an open file's reads and writes.
    fn unit(&self, iounit: u32) -> u32 {
        let max = self.client.iounit();
        if iounit == 0 {
            max
        } else {
            iounit.min(max)
        }
    }

    fn handle(&self, fh: FileHandle) -> Result<(u32, u32), CallError> {
        let fid = u32::try_from(fh.0).map_err(|_| CallError::Errno(Errno::EBADF))?;
        let unit = self
            .open
            .get(&fid)
            .copied()
            .ok_or(CallError::Errno(Errno::EBADF))?;
        Ok((fid, unit.max(1)))
    }

    fn release(&mut self, fh: FileHandle) -> Result<(), CallError> {
        let (fid, _) = self.handle(fh)?;
        self.open.remove(&fid);
        self.clunk(fid)
    }

    fn call_expect(
        &mut self,
        msg: impl Into<Message>,
        want: &'static str,
    ) -> Result<Message, CallError> {
        let r = self.client.call(msg)?;
        if r.name() == want {
            Ok(r)
        } else {
            Err(CallError::Unexpected(r.name()))
        }
    }
}

/// The FUSE attributes of a Rgetattr.
fn to_attr(ino: INodeNo, a: &Rgetattr) -> FileAttr {
    let kind = match a.mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    };
    let mtime = time(a.mtime_sec, a.mtime_nsec);
    FileAttr {
        ino,
        size: a.size,
        blocks: a.blocks,
        atime: time(a.atime_sec, a.atime_nsec),
        mtime,
        ctime: time(a.ctime_sec, a.ctime_nsec),
        crtime: mtime,
        kind,
        perm: (a.mode & 0o7777) as u16,
        nlink: u32::try_from(a.nlink).unwrap_or(u32::MAX),
        uid: a.uid,
        gid: a.gid,
        rdev: old_dev(a.rdev),
        blksize: u32::try_from(a.blksize).unwrap_or(4096),
        flags: 0,
    }
}

/// A 64-bit dev_t as FUSE's 32-bit one (the kernel's new_encode_dev).
fn old_dev(dev: u64) -> u32 {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)) as u32
}

/// Seconds and nanoseconds since the epoch (signed seconds on the wire).
fn time(sec: u64, nsec: u64) -> SystemTime {
    let nsec = Duration::from_nanos(nsec.min(999_999_999));
    let sec = sec as i64;
    let t = if sec >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(sec.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(sec.unsigned_abs()))
    };
    t.and_then(|t| t.checked_add(nsec)).unwrap_or(UNIX_EPOCH)
}

/// A SystemTime as wire seconds and nanoseconds.
fn wire_time(t: SystemTime) -> (u64, u64) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs(), u64::from(d.subsec_nanos())),
        Err(e) => {
            let d = e.duration();
            // Before the epoch: negative seconds, positive nanoseconds.
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 {
                ((-s) as u64, 0)
            } else {
                ((-s - 1) as u64, u64::from(1_000_000_000 - n))
            }
        }
    }
}

/// Linux open(2) flags as 9P2000.L flags (the same numbers on x86 only).
/// O_CREAT and O_EXCL only for Tlcreate; O_DIRECT and O_NOATIME stay
/// with the kernel's page cache and permission checks.
fn dotl_flags(flags: i32, create: bool) -> u32 {
    let mut out = match flags & libc::O_ACCMODE {
        libc::O_WRONLY => dotl::WRONLY,
        libc::O_RDWR => dotl::RDWR,
        _ => dotl::RDONLY,
    };
    let mut map = vec![
        (libc::O_TRUNC, dotl::TRUNC),
        (libc::O_APPEND, dotl::APPEND),
        (libc::O_DSYNC, dotl::DSYNC),
        (libc::O_SYNC, dotl::SYNC),
        (libc::O_NOFOLLOW, dotl::NOFOLLOW),
    ];
    if create {
        map.push((libc::O_CREAT, dotl::CREATE));
        map.push((libc::O_EXCL, dotl::EXCL));
    }
    for (l, d) in map {
        if flags & l == l {
            out |= d;
        }
    }
    out
}

fn name_bytes(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

fn dirent_type(d: &Dirent) -> FileType {
    // d.ty is a DT_* value from the server's getdents.
    match d.ty {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        libc::DT_REG => FileType::RegularFile,
        _ if d.qid.is_dir() => FileType::Directory,
        _ => FileType::RegularFile,
    }
}

/// Answers a request that names a file with that file's entry.
fn reply_entry(reply: ReplyEntry, r: Res<FileAttr>) {
    match r {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

impl<S: Read + Write + Send + 'static> Bridge<S> {
    /// Makes `name` in `parent` with the 9P call `make` sends (given the
    /// directory's fid), then answers with the new file's entry: mknod,
    /// mkdir, symlink and link differ only in that call.
    fn make_entry(
        &self,
        parent: INodeNo,
        name: &OsStr,
        reply: ReplyEntry,
        make: impl FnOnce(&mut State<S>, u32) -> Result<(), CallError>,
    ) {
        let r = self.with(|st| {
            let dfid = st.fid_of(parent)?;
            make(st, dfid)?;
            st.lookup(parent, name)
        });
        reply_entry(reply, r);
    }
}

impl<S: Read + Write + Send + 'static> Filesystem for Bridge<S> {
    fn destroy(&mut self) {
        // Clunks are pointless here: the stream goes with the client.
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply_entry(reply, self.with(|st| st.lookup(parent, name)));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _ = self.with(|st| {
            st.forget(ino.0, nlookup);
            Ok(())
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.with(|st| {
            let fid = st.fid_of(ino)?;
            st.getattr(fid)
        });
        match r {
            Ok(a) => reply.attr(&TTL, &to_attr(ino, &a)),
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
        let r = self.with(|st| {
            let fid = st.fid_of(ino)?;
            msg.fid = fid;
            if msg.valid != 0 {
                st.call_expect(msg, "Rsetattr")?;
            }
            st.getattr(fid)
        });
        match r {
            Ok(a) => reply.attr(&TTL, &to_attr(ino, &a)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = self.with(|st| {
            let fid = st.fid_of(ino)?;
            match st.client.call(Treadlink { fid })? {
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
        self.make_entry(parent, name, reply, |st, dfid| {
            st.call_expect(
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
            .map(drop)
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
        self.make_entry(parent, name, reply, |st, dfid| {
            st.call_expect(
                Tmkdir {
                    dfid,
                    name: name_bytes(name),
                    mode: mode & 0o7777 & !umask,
                    gid,
                },
                "Rmkdir",
            )
            .map(drop)
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
        self.make_entry(parent, link_name, reply, |st, fid| {
            st.call_expect(
                Tsymlink {
                    fid,
                    name: name_bytes(link_name),
                    symtgt: target.as_os_str().as_bytes().to_vec(),
                    gid,
                },
                "Rsymlink",
            )
            .map(drop)
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
        let r = self.with(|st| {
            if noreplace {
                let dfid = st.fid_of(newparent)?;
                match st.walk(dfid, vec![name_bytes(newname)]) {
                    Ok((fid, _)) => {
                        let _ = st.clunk(fid);
                        return Err(CallError::Errno(Errno::EEXIST));
                    }
                    Err(CallError::Errno(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let olddirfid = st.fid_of(parent)?;
            let newdirfid = st.fid_of(newparent)?;
            st.call_expect(
                Trenameat {
                    olddirfid,
                    oldname: name_bytes(name),
                    newdirfid,
                    newname: name_bytes(newname),
                },
                "Rrenameat",
            )
            .map(drop)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.make_entry(newparent, newname, reply, |st, dfid| {
            let fid = st.fid_of(ino)?;
            st.call_expect(
                Tlink {
                    dfid,
                    fid,
                    name: name_bytes(newname),
                },
                "Rlink",
            )
            .map(drop)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|st| st.open(ino, dotl_flags(flags.0, false))) {
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
        let r = self.with(|st| {
            let (fid, unit) = st.handle(fh)?;
            // The kernel wants all of `size` unless at end of file.
            let mut out = Vec::with_capacity(size as usize);
            while out.len() < size as usize {
                let want = (size - out.len() as u32).min(unit);
                let pos = offset.saturating_add(out.len() as u64);
                let got = st.client.read(fid, pos, want)?;
                if got.is_empty() {
                    break;
                }
                out.extend_from_slice(&got[..got.len().min(want as usize)]);
            }
            Ok(out)
        });
        match r {
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
        let r = self.with(|st| {
            let (fid, unit) = st.handle(fh)?;
            let mut done = 0usize;
            while done < data.len() {
                let end = data.len().min(done + unit as usize);
                let chunk = Bytes::copy_from_slice(&data[done..end]);
                let n = st.client.write(fid, offset + done as u64, chunk)?;
                if n == 0 {
                    break;
                }
                done += (n as usize).min(end - done);
            }
            Ok(done)
        });
        match r {
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
        match self.with(|st| st.release(fh)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = self.with(|st| {
            let (fid, _) = st.handle(fh)?;
            st.call_expect(
                Tfsync {
                    fid,
                    datasync: u32::from(datasync),
                },
                "Rfsync",
            )
            .map(drop)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|st| st.open(ino, dotl::RDONLY)) {
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
        let r = self.with(|st| {
            let (fid, unit) = st.handle(fh)?;
            let r = st.client.call(Treaddir {
                fid,
                offset,
                count: unit.min(READDIR_COUNT),
            })?;
            let Message::Rreaddir(Rreaddir { data }) = r else {
                return Err(CallError::Unexpected(r.name()));
            };
            Dirent::decode_all(data).map_err(|_| CallError::Unexpected("bad Rreaddir payload"))
        });
        match r {
            Ok(entries) => {
                for d in &entries {
                    // d_ino 0 hides an entry from some readers.
                    let ino = INodeNo(d.qid.path.max(1));
                    if reply.add(ino, d.offset, dirent_type(d), OsStr::from_bytes(&d.name)) {
                        break;
                    }
                }
                reply.ok();
            }
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
        match self.with(|st| st.release(fh)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
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
        let r = self.with(|st| {
            let fid = st.fid_of(ino)?;
            match st.client.call(Tstatfs { fid })? {
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
        let r = self.with(|st| {
            let pfid = st.fid_of(parent)?;
            // Tlcreate turns the directory fid into the open file: clone.
            let (fid, _) = st.walk(pfid, Vec::new())?;
            let created = st.client.call(Tlcreate {
                fid,
                name: name_bytes(name),
                flags: dotl_flags(flags, true),
                mode: mode & 0o7777 & !umask,
                gid,
            });
            let iounit = match created {
                Ok(Message::Rlcreate(r)) => r.iounit,
                Ok(other) => {
                    let _ = st.clunk(fid);
                    return Err(CallError::Unexpected(other.name()));
                }
                Err(e) => {
                    let _ = st.clunk(fid);
                    return Err(e);
                }
            };
            let unit = st.unit(iounit);
            st.open.insert(fid, unit);
            match st.lookup(parent, name) {
                Ok(attr) => Ok((attr, fid)),
                Err(e) => {
                    st.open.remove(&fid);
                    let _ = st.clunk(fid);
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

impl<S: Read + Write + Send + 'static> Bridge<S> {
    fn unlinkat(&self, parent: INodeNo, name: &OsStr, flags: u32, reply: ReplyEmpty) {
        let r = self.with(|st| {
            let dirfid = st.fid_of(parent)?;
            st.call_expect(
                Tunlinkat {
                    dirfid,
                    name: name_bytes(name),
                    flags,
                },
                "Runlinkat",
            )
            .map(drop)
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn dev_numbers_round_trip() {
        // makedev(8, 1) and a large minor, as glibc encodes them.
        let dev64 = |maj: u64, min: u64| {
            ((maj & 0xfffff000) << 32)
                | ((maj & 0xfff) << 8)
                | ((min & 0xffffff00) << 12)
                | (min & 0xff)
        };
        assert_eq!(old_dev(dev64(8, 1)), (8 << 8) | 1);
        assert_eq!(
            old_dev(dev64(136, 300)),
            (300 & 0xff) | (136 << 8) | ((300 & !0xff) << 12)
        );
    }

    #[test]
    fn times_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let (s, n) = wire_time(t);
        assert_eq!(time(s, n), t);
        let before = UNIX_EPOCH - Duration::new(10, 250);
        let (s, n) = wire_time(before);
        assert_eq!(time(s, n), before);
        // A hostile nanosecond field does not panic.
        let _ = time(u64::MAX, u64::MAX);
    }

    #[test]
    fn open_flags_translate() {
        assert_eq!(
            dotl_flags(libc::O_RDWR | libc::O_TRUNC, false),
            dotl::RDWR | dotl::TRUNC
        );
        assert_eq!(
            dotl_flags(libc::O_WRONLY | libc::O_CREAT, false),
            dotl::WRONLY
        );
        assert_eq!(
            dotl_flags(libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, true),
            dotl::WRONLY | dotl::CREATE | dotl::EXCL
        );
    }
}
