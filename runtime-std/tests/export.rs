//! The local export, driven through the `Filesystem` trait on a temporary
//! directory.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use proto_9p::consts::{getattr, lock_status, lock_type, open_flags, qid_type, setattr};
use proto_9p::messages::*;
use proto_9p::server::Filesystem;
use proto_9p::{Dirent, Errno, Qid};
use runtime_std::export::{ExportOptions, Fid, LocalExport};
use tempfile::TempDir;

struct T {
    dir: TempDir,
    fs: LocalExport,
    root: Fid,
    root_qid: Qid,
}

fn setup() -> T {
    setup_with(ExportOptions::default())
}

fn setup_with(options: ExportOptions) -> T {
    let dir = tempfile::tempdir().unwrap();
    // The export lives one level down, so ".." escapes have somewhere to go.
    fs::create_dir(dir.path().join("root")).unwrap();
    fs::write(dir.path().join("secret"), b"outside").unwrap();
    let fs = LocalExport::new(&dir.path().join("root"), options).unwrap();
    let (root_qid, root) = fs.attach(&attach_msg(b"")).unwrap();
    T {
        dir,
        fs,
        root,
        root_qid,
    }
}

fn attach_msg(aname: &[u8]) -> Tattach {
    Tattach {
        fid: 1,
        afid: u32::MAX,
        uname: b"nobody".to_vec(),
        aname: aname.to_vec(),
        n_uname: 65534,
    }
}

impl T {
    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join("root").join(p)
    }

    fn walk(&self, from: &Fid, names: &[&str]) -> Result<(Vec<Qid>, Option<Fid>), Errno> {
        let names: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
        self.fs.walk(from, &names)
    }

    /// Walks `path` (split on '/') from the root, expecting full success.
    fn get(&self, path: &str) -> (Qid, Fid) {
        let names: Vec<&str> = path.split('/').collect();
        let (qids, fid) = self.walk(&self.root, &names).unwrap();
        assert_eq!(qids.len(), names.len(), "walk {path}");
        (*qids.last().unwrap(), fid.unwrap())
    }

    fn open(&self, path: &str, flags: u32) -> Fid {
        let (_, f) = self.get(path);
        self.fs.lopen(&f, flags).unwrap().2
    }

    fn attr(&self, fid: &Fid) -> Rgetattr {
        self.fs.getattr(fid, getattr::ALL).unwrap()
    }
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<Fid>();
    check::<LocalExport>();
}

#[test]
fn read_write_and_errors() {
    let t = setup();
    fs::write(t.path("f"), b"hello world").unwrap();
    let (q, f) = t.get("f");
    assert_eq!(q.ty, qid_type::FILE);
    assert_eq!(t.fs.read(&f, 0, 10), Err(Errno::EBADF), "unopened");
    let r = t.fs.lopen(&f, open_flags::RDONLY).unwrap().2;
    assert_eq!(&t.fs.read(&r, 6, 100).unwrap()[..], b"world");
    assert_eq!(&t.fs.read(&r, 0, 5).unwrap()[..], b"hello");
    assert!(t.fs.read(&r, 100, 10).unwrap().is_empty(), "beyond EOF");
    assert_eq!(t.fs.write(&r, 0, b"x"), Err(Errno::EBADF), "read-only");

    let w = t.open("f", open_flags::RDWR);
    assert_eq!(t.fs.write(&w, 6, b"there").unwrap(), 5);
    assert_eq!(fs::read(t.path("f")).unwrap(), b"hello there");
    t.fs.fsync(&w, false).unwrap();
    t.fs.fsync(&w, true).unwrap();
    assert_eq!(t.fs.fsync(&f, false), Err(Errno::EBADF));

    // O_APPEND appends whatever the offset.
    let a = t.open("f", open_flags::WRONLY | open_flags::APPEND);
    t.fs.write(&a, 0, b"!").unwrap();
    assert_eq!(fs::read(t.path("f")).unwrap(), b"hello there!");

    // O_TRUNC.
    let tr = t.open("f", open_flags::WRONLY | open_flags::TRUNC);
    assert_eq!(t.attr(&tr).size, 0);

    // Directories.
    fs::create_dir(t.path("d")).unwrap();
    let (dq, d) = t.get("d");
    assert!(dq.is_dir());
    assert_eq!(
        t.fs.lopen(&d, open_flags::WRONLY).err(),
        Some(Errno::EISDIR)
    );
    let dopen = t.fs.lopen(&d, open_flags::RDONLY).unwrap().2;
    assert_eq!(t.fs.read(&dopen, 0, 10), Err(Errno::EISDIR));
    assert_eq!(t.fs.readdir(&d, 0, 4096), Err(Errno::EBADF));
    assert_eq!(t.fs.readdir(&r, 0, 4096), Err(Errno::ENOTDIR));
    assert_eq!(
        t.fs.lopen(&f, open_flags::RDONLY | open_flags::DIRECTORY)
            .err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(t.walk(&t.root, &["nope"]).err(), Some(Errno::ENOENT));
    assert_eq!(t.walk(&f, &["x"]).err(), Some(Errno::ENOTDIR));
}

#[test]
fn lcreate_mkdir_and_modes() {
    let t = setup();
    let msg = |name: &str, flags: u32, mode: u32| Tlcreate {
        fid: 0,
        name: name.as_bytes().to_vec(),
        flags,
        mode,
        gid: 0,
    };
    let (_, dir) = t.walk(&t.root, &[]).unwrap();
    let dir = dir.unwrap();
    let (q, _, f) =
        t.fs.lcreate(
            &dir,
            &msg("new", open_flags::RDWR | open_flags::CREATE, 0o666),
        )
        .unwrap();
    assert_eq!(q.ty, qid_type::FILE);
    t.fs.write(&f, 0, b"abc").unwrap();
    assert_eq!(fs::read(t.path("new")).unwrap(), b"abc");
    // Exactly the mode asked for: the client applied its umask already.
    assert_eq!(fs::metadata(t.path("new")).unwrap().mode() & 0o7777, 0o666);
    // The created fid's qid matches a walk's.
    assert_eq!(t.get("new").0.path, q.path);

    let excl = open_flags::RDWR | open_flags::CREATE | open_flags::EXCL;
    assert_eq!(
        t.fs.lcreate(&dir, &msg("new", excl, 0o600)).err(),
        Some(Errno::EEXIST)
    );
    // Without O_EXCL an existing file is opened.
    let (_, _, again) =
        t.fs.lcreate(
            &dir,
            &msg("new", open_flags::RDONLY | open_flags::CREATE, 0o600),
        )
        .unwrap();
    assert_eq!(&t.fs.read(&again, 0, 10).unwrap()[..], b"abc");
    for bad in ["", ".", "..", "a/b"] {
        assert_eq!(
            t.fs.lcreate(&dir, &msg(bad, excl, 0o600)).err(),
            Some(Errno::EINVAL),
            "{bad:?}"
        );
    }
    // A symlink at the name is never followed by a create.
    std::os::unix::fs::symlink("../secret", t.path("ln")).unwrap();
    assert!(t
        .fs
        .lcreate(
            &dir,
            &msg("ln", open_flags::RDWR | open_flags::CREATE, 0o600)
        )
        .is_err());
    assert_eq!(fs::read(t.dir.path().join("secret")).unwrap(), b"outside");

    let q =
        t.fs.mkdir(
            &t.root,
            &Tmkdir {
                dfid: 0,
                name: b"sub".to_vec(),
                mode: 0o777,
                gid: 0,
            },
        )
        .unwrap();
    assert!(q.is_dir());
    assert_eq!(t.get("sub").0.path, q.path);
    assert_eq!(fs::metadata(t.path("sub")).unwrap().mode() & 0o7777, 0o777);
    assert_eq!(
        t.fs.mkdir(
            &t.root,
            &Tmkdir {
                dfid: 0,
                name: b"sub".to_vec(),
                mode: 0o777,
                gid: 0
            }
        )
        .err(),
        Some(Errno::EEXIST)
    );
}

#[test]
fn symlink_readlink_link_rename_unlink() {
    let t = setup();
    fs::write(t.path("f"), b"data").unwrap();
    fs::create_dir(t.path("d")).unwrap();

    let q =
        t.fs.symlink(
            &t.root,
            &Tsymlink {
                fid: 0,
                name: b"sl".to_vec(),
                symtgt: b"f".to_vec(),
                gid: 0,
            },
        )
        .unwrap();
    assert_eq!(q.ty, qid_type::SYMLINK);
    let (wq, sl) = t.get("sl");
    assert_eq!(wq, q);
    assert_eq!(t.fs.readlink(&sl).unwrap(), b"f");
    assert_eq!(
        t.fs.lopen(&sl, open_flags::RDONLY).err(),
        Some(Errno::ELOOP)
    );
    let (_, f) = t.get("f");
    assert_eq!(t.fs.readlink(&f), Err(Errno::EINVAL));

    // link
    let (_, d) = t.get("d");
    t.fs.link(&d, &f, b"hard").unwrap();
    assert_eq!(fs::read(t.path("d/hard")).unwrap(), b"data");
    assert_eq!(t.get("d/hard").0.path, t.get("f").0.path);
    assert_eq!(t.fs.link(&d, &f, b"hard"), Err(Errno::EEXIST));
    assert_eq!(t.attr(&f).nlink, 2);
    // Linking a symlink links the symlink itself.
    t.fs.link(&d, &sl, b"sl2").unwrap();
    assert_eq!(fs::read_link(t.path("d/sl2")).unwrap(), Path::new("f"));

    // renameat
    t.fs.renameat(&t.root, b"f", &d, b"g").unwrap();
    assert!(t.path("d/g").exists() && !t.path("f").exists());
    assert_eq!(t.fs.renameat(&t.root, b"f", &d, b"g"), Err(Errno::ENOENT));
    // f's fid was moved by name behind its back: remove must not guess.
    assert_eq!(t.fs.remove(f.clone()), Err(Errno::ESTALE));

    // rename through a fid, then remove through the same fid.
    let (_, g) = t.get("d/g");
    t.fs.rename(&g, &t.root, b"back").unwrap();
    assert_eq!(fs::read(t.path("back")).unwrap(), b"data");
    t.fs.remove(g).unwrap();
    assert!(!t.path("back").exists());
    assert_eq!(t.fs.remove(t.root.clone()), Err(Errno::EBUSY));

    // unlinkat
    assert_eq!(t.fs.unlinkat(&t.root, b"d", 0), Err(Errno::EISDIR));
    assert_eq!(t.fs.unlinkat(&t.root, b"d", 0x200), Err(Errno::ENOTEMPTY));
    t.fs.unlinkat(&d, b"hard", 0).unwrap();
    t.fs.unlinkat(&d, b"sl2", 0).unwrap();
    t.fs.unlinkat(&t.root, b"d", 0x200).unwrap();
    assert!(!t.path("d").exists());
    assert_eq!(t.fs.unlinkat(&t.root, b"..", 0), Err(Errno::EINVAL));
    assert_eq!(t.fs.unlinkat(&t.root, b"a/b", 0), Err(Errno::EINVAL));
}

#[test]
fn setattr_and_getattr() {
    let t = setup();
    fs::write(t.path("f"), b"0123456789").unwrap();
    let (q0, f) = t.get("f");
    let a = t.attr(&f);
    assert_eq!(a.valid & getattr::BASIC, getattr::BASIC);
    assert_eq!(a.size, 10);
    assert_eq!(a.mode & libc::S_IFMT, libc::S_IFREG);
    assert_eq!(a.qid, q0);
    let md = fs::metadata(t.path("f")).unwrap();
    assert_eq!((a.uid, a.gid, a.nlink), (md.uid(), md.gid(), 1));
    assert_eq!(a.mtime_sec as i64, md.mtime());

    let mut m = Tsetattr {
        valid: setattr::MODE,
        mode: 0o604,
        ..Tsetattr::default()
    };
    t.fs.setattr(&f, &m).unwrap();
    assert_eq!(fs::metadata(t.path("f")).unwrap().mode() & 0o7777, 0o604);

    m = Tsetattr {
        valid: setattr::SIZE,
        size: 4,
        ..Tsetattr::default()
    };
    t.fs.setattr(&f, &m).unwrap();
    assert_eq!(fs::read(t.path("f")).unwrap(), b"0123");
    // On an open fid, ftruncate.
    let w = t.open("f", open_flags::WRONLY);
    m.size = 2;
    t.fs.setattr(&w, &m).unwrap();
    assert_eq!(fs::read(t.path("f")).unwrap(), b"01");

    // Explicit times.
    m = Tsetattr {
        valid: setattr::ATIME | setattr::ATIME_SET | setattr::MTIME | setattr::MTIME_SET,
        atime_sec: 1_000_000,
        atime_nsec: 5,
        mtime_sec: 2_000_000,
        mtime_nsec: 7,
        ..Tsetattr::default()
    };
    t.fs.setattr(&f, &m).unwrap();
    let a = t.attr(&f);
    assert_eq!((a.atime_sec, a.atime_nsec), (1_000_000, 5));
    assert_eq!((a.mtime_sec, a.mtime_nsec), (2_000_000, 7));
    // Only mtime, to now: atime stays.
    m = Tsetattr {
        valid: setattr::MTIME,
        ..Tsetattr::default()
    };
    t.fs.setattr(&f, &m).unwrap();
    let b = t.attr(&f);
    assert_eq!((b.atime_sec, b.atime_nsec), (1_000_000, 5));
    assert!(b.mtime_sec > 1_600_000_000);
    // "now" for atime too.
    m.valid = setattr::ATIME;
    t.fs.setattr(&f, &m).unwrap();
    assert!(t.attr(&f).atime_sec > 1_600_000_000);
    m = Tsetattr {
        valid: setattr::MTIME | setattr::MTIME_SET,
        mtime_nsec: 2_000_000_000,
        ..Tsetattr::default()
    };
    assert_eq!(t.fs.setattr(&f, &m), Err(Errno::EINVAL));

    // Owner: to ourselves (as root, to anyone).
    m = Tsetattr {
        valid: setattr::UID | setattr::GID,
        uid: md.uid(),
        gid: md.gid(),
        ..Tsetattr::default()
    };
    t.fs.setattr(&f, &m).unwrap();
    if md.uid() == 0 {
        m.uid = 1234;
        m.gid = 5678;
        t.fs.setattr(&f, &m).unwrap();
        let a = t.attr(&f);
        assert_eq!((a.uid, a.gid), (1234, 5678));
    }

    // A symlink's own times change, not its target's.
    std::os::unix::fs::symlink("f", t.path("sl")).unwrap();
    let (_, sl) = t.get("sl");
    let before = fs::metadata(t.path("f")).unwrap().mtime();
    m = Tsetattr {
        valid: setattr::MTIME | setattr::MTIME_SET,
        mtime_sec: 3_000,
        ..Tsetattr::default()
    };
    t.fs.setattr(&sl, &m).unwrap();
    assert_eq!(fs::symlink_metadata(t.path("sl")).unwrap().mtime(), 3_000);
    assert_eq!(fs::metadata(t.path("f")).unwrap().mtime(), before);
    assert_eq!(t.attr(&sl).mode & libc::S_IFMT, libc::S_IFLNK);

    // Errors carry the exact errno.
    fs::create_dir(t.path("d")).unwrap();
    let (_, d) = t.get("d");
    m = Tsetattr {
        valid: setattr::SIZE,
        size: 0,
        ..Tsetattr::default()
    };
    assert_eq!(t.fs.setattr(&d, &m), Err(Errno::EISDIR));
}

#[test]
fn statfs_works() {
    let t = setup();
    let s = t.fs.statfs(&t.root).unwrap();
    assert!(s.bsize > 0 && s.blocks > 0 && s.namelen >= 255);
    let mut want = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    let p = CString::new(t.path("").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid path and buffer.
    #[allow(unsafe_code)]
    let want = unsafe {
        assert_eq!(libc::statvfs(p.as_ptr(), want.as_mut_ptr()), 0);
        want.assume_init()
    };
    assert_eq!(s.blocks, want.f_blocks);
    assert_eq!(s.files, want.f_files);
}

#[test]
fn xattrs() {
    let t = setup();
    fs::write(t.path("f"), b"").unwrap();
    let (_, f) = t.get("f");
    let name = b"user.cpu_test".to_vec();
    let value = b"some value";
    let w =
        t.fs.xattrcreate(
            &f,
            &Txattrcreate {
                fid: 0,
                name: name.clone(),
                attr_size: value.len() as u64,
                flags: 0,
            },
        )
        .unwrap();
    assert_eq!(t.fs.write(&w, 0, &value[..4]).unwrap(), 4);
    assert_eq!(t.fs.write(&w, 4, &value[4..]).unwrap(), 6);
    match t.fs.clunk(w) {
        Ok(()) => {}
        Err(Errno::EOPNOTSUPP) => return, // no user xattrs on this file system
        Err(e) => panic!("setxattr: {e}"),
    }
    let (size, r) = t.fs.xattrwalk(&f, &name).unwrap();
    assert_eq!(size, value.len() as u64);
    assert_eq!(&t.fs.read(&r, 0, 100).unwrap()[..], value);
    assert_eq!(&t.fs.read(&r, 5, 2).unwrap()[..], b"va");
    assert!(t.fs.read(&r, 100, 2).unwrap().is_empty());

    let (lsize, l) = t.fs.xattrwalk(&f, b"").unwrap();
    let list = t.fs.read(&l, 0, lsize as u32).unwrap();
    assert!(list.split(|&b| b == 0).any(|n| n == name.as_slice()));

    assert_eq!(
        t.fs.xattrwalk(&f, b"user.missing").err(),
        Some(Errno::ENODATA)
    );
    // A short value is refused at clunk.
    let short =
        t.fs.xattrcreate(
            &f,
            &Txattrcreate {
                fid: 0,
                name: name.clone(),
                attr_size: 10,
                flags: 0,
            },
        )
        .unwrap();
    t.fs.write(&short, 0, b"abc").unwrap();
    assert_eq!(t.fs.clunk(short), Err(Errno::EINVAL));
    // Removal: size 0 with XATTR_REPLACE.
    let rm =
        t.fs.xattrcreate(
            &f,
            &Txattrcreate {
                fid: 0,
                name: name.clone(),
                attr_size: 0,
                flags: libc::XATTR_REPLACE as u32,
            },
        )
        .unwrap();
    t.fs.clunk(rm).unwrap();
    assert_eq!(t.fs.xattrwalk(&f, &name).err(), Some(Errno::ENODATA));
    assert_eq!(
        t.fs.xattrcreate(
            &f,
            &Txattrcreate {
                fid: 0,
                name,
                attr_size: 1 << 20,
                flags: 0
            }
        )
        .err(),
        Some(Errno::E2BIG)
    );
}

#[test]
fn locks() {
    let t = setup();
    fs::write(t.path("f"), b"0123456789").unwrap();
    let a = t.open("f", open_flags::RDWR);
    let b = t.open("f", open_flags::RDWR);
    let lock = |ty: u8, start: u64, length: u64, flags: u32| Tlock {
        fid: 0,
        lock_type: ty,
        flags,
        start,
        length,
        proc_id: 42,
        client_id: b"client".to_vec(),
    };
    let get = |ty: u8| Tgetlock {
        fid: 0,
        lock_type: ty,
        start: 0,
        length: 0,
        proc_id: 43,
        client_id: b"other".to_vec(),
    };
    assert_eq!(
        t.fs.lock(&a, &lock(lock_type::WRLCK, 0, 5, 0)).unwrap(),
        lock_status::SUCCESS
    );
    // A conflicting request, even a blocking one, is answered BLOCKED.
    assert_eq!(
        t.fs.lock(&b, &lock(lock_type::WRLCK, 2, 2, 1)).unwrap(),
        lock_status::BLOCKED
    );
    assert_eq!(
        t.fs.lock(&b, &lock(lock_type::RDLCK, 5, 0, 0)).unwrap(),
        lock_status::SUCCESS,
        "no overlap"
    );
    let g = t.fs.getlock(&b, &get(lock_type::WRLCK)).unwrap();
    assert_eq!(g.lock_type, lock_type::WRLCK);
    assert_eq!((g.start, g.length), (0, 5));
    // No conflict: the request comes back as UNLCK.
    let g = t.fs.getlock(&a, &get(lock_type::RDLCK)).unwrap();
    assert_eq!(g.lock_type, lock_type::UNLCK);
    assert_eq!(g.proc_id, 43);

    t.fs.lock(&a, &lock(lock_type::UNLCK, 0, 0, 0)).unwrap();
    assert_eq!(
        t.fs.lock(&b, &lock(lock_type::WRLCK, 0, 5, 0)).unwrap(),
        lock_status::SUCCESS
    );
    // Dropping b's open releases its locks.
    drop(b);
    assert_eq!(
        t.fs.lock(&a, &lock(lock_type::WRLCK, 0, 0, 0)).unwrap(),
        lock_status::SUCCESS
    );
    let (_, unopened) = t.get("f");
    assert_eq!(
        t.fs.lock(&unopened, &lock(lock_type::WRLCK, 0, 0, 0)),
        Err(Errno::EBADF)
    );
}

fn read_all(t: &T, dir: &Fid, count: u32) -> Vec<Dirent> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let data = t.fs.readdir(dir, offset, count).unwrap();
        if data.is_empty() {
            return out;
        }
        assert!(data.len() <= count as usize);
        let ents = Dirent::decode_all(data).unwrap();
        offset = ents.last().unwrap().offset;
        out.extend(ents);
    }
}

#[test]
fn readdir_ten_thousand() {
    let t = setup();
    fs::create_dir(t.path("big")).unwrap();
    let n = 10_000;
    for i in 0..n {
        fs::write(t.path(&format!("big/file-{i:05}")), b"").unwrap();
    }
    fs::create_dir(t.path("big/sub")).unwrap();
    let d = t.open("big", open_flags::RDONLY | open_flags::DIRECTORY);
    let ents = read_all(&t, &d, 8192);
    let mut names = HashSet::new();
    for e in &ents {
        assert!(names.insert(e.name.clone()), "duplicate {:?}", e.name);
    }
    assert_eq!(names.len(), n + 3);
    assert!(names.contains(b".".as_slice()) && names.contains(b"..".as_slice()));
    let sub = ents.iter().find(|e| e.name == b"sub").unwrap();
    assert_eq!(sub.ty, libc::DT_DIR);
    assert_eq!(sub.qid.ty, qid_type::DIR);
    // Entry qids agree with walks.
    let f7 = ents.iter().find(|e| e.name == b"file-00007").unwrap();
    assert_eq!(f7.qid.path, t.get("big/file-00007").0.path);
    assert_eq!(f7.ty, libc::DT_REG);

    // Rewind with 0, and a seek to the middle from another open: same
    // entries as the first pass from there on.
    assert_eq!(read_all(&t, &d, 8192).len(), ents.len());
    let mid = &ents[5000];
    let d2 = t.open("big", open_flags::RDONLY);
    let data = t.fs.readdir(&d2, mid.offset, 4096).unwrap();
    let next = Dirent::decode_all(data).unwrap();
    assert_eq!(next[0], ents[5001]);
    // A count too small for one entry.
    assert_eq!(t.fs.readdir(&d2, 0, 10), Err(Errno::EINVAL));
}

#[test]
fn readdir_root_dotdot_is_root() {
    let t = setup();
    let (_, c) = t.walk(&t.root, &[]).unwrap();
    let d = t.fs.lopen(&c.unwrap(), open_flags::RDONLY).unwrap().2;
    let ents = read_all(&t, &d, 4096);
    let dd = ents.iter().find(|e| e.name == b"..").unwrap();
    assert_eq!(dd.qid.path, t.root_qid.path);
}

#[test]
fn escapes_fail() {
    let t = setup();
    // ".." from the root stays at the root.
    let (qids, fid) = t.walk(&t.root, &["..", "..", ".."]).unwrap();
    assert!(qids.iter().all(|q| q.path == t.root_qid.path));
    let fid = fid.unwrap();
    assert!(t.walk(&fid, &["secret"]).is_err());
    fs::create_dir(t.path("a")).unwrap();
    let (qids, _) = t.walk(&t.root, &["a", "..", "..", "a"]).unwrap();
    assert_eq!(qids[1].path, t.root_qid.path);
    assert_eq!(qids[2].path, t.root_qid.path);
    assert_eq!(qids[3], qids[0]);

    // "." is the same directory, and keeps its place.
    let (qids, dot) = t.walk(&t.root, &["a", "."]).unwrap();
    assert_eq!(qids[1], qids[0]);
    assert_eq!(
        t.walk(&dot.unwrap(), &[".."]).unwrap().0[0].path,
        t.root_qid.path
    );

    // Symlinks out are walked to as themselves, and no further.
    std::os::unix::fs::symlink("/", t.path("toroot")).unwrap();
    std::os::unix::fs::symlink("../../..", t.path("up")).unwrap();
    std::os::unix::fs::symlink("../secret", t.path("sec")).unwrap();
    for link in ["toroot", "up"] {
        let (qids, fid) = t.walk(&t.root, &[link, "etc"]).unwrap();
        assert_eq!(qids.len(), 1, "stops at the link");
        assert!(fid.is_none());
        assert_eq!(qids[0].ty, qid_type::SYMLINK);
        let (_, l) = t.get(link);
        assert_eq!(t.walk(&l, &["etc"]).err(), Some(Errno::ENOTDIR));
        assert_eq!(t.walk(&l, &[".."]).err(), Some(Errno::ENOTDIR));
    }
    let (_, sec) = t.get("sec");
    assert_eq!(
        t.fs.lopen(&sec, open_flags::RDONLY).err(),
        Some(Errno::ELOOP)
    );
    assert_eq!(t.fs.xattrwalk(&sec, b"user.x").err(), Some(Errno::ENODATA));

    // Names that are not one component.
    assert_eq!(t.walk(&t.root, &["a/.."]).err(), Some(Errno::EINVAL));
    assert_eq!(t.walk(&t.root, &["../secret"]).err(), Some(Errno::EINVAL));
    assert_eq!(t.walk(&t.root, &[""]).err(), Some(Errno::EINVAL));
    assert_eq!(t.walk(&t.root, &["/etc"]).err(), Some(Errno::EINVAL));
    assert_eq!(t.walk(&t.root, &["a", "/"]).unwrap().1.map(|_| ()), None);

    // Creations cannot go through a link either.
    let (_, l) = t.get("toroot");
    assert_eq!(
        t.fs.mkdir(
            &l,
            &Tmkdir {
                dfid: 0,
                name: b"x".to_vec(),
                mode: 0o755,
                gid: 0
            }
        )
        .err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        t.fs.renameat(&t.root, b"a", &t.root, b"../x"),
        Err(Errno::EINVAL)
    );
    assert_eq!(fs::read(t.dir.path().join("secret")).unwrap(), b"outside");
}

#[test]
fn aname() {
    let t = setup();
    fs::create_dir_all(t.path("x/y")).unwrap();
    std::os::unix::fs::symlink("/", t.path("out")).unwrap();
    let (q, _) = t.fs.attach(&attach_msg(b"/")).unwrap();
    assert_eq!(q.path, t.root_qid.path);
    let (q, f) = t.fs.attach(&attach_msg(b"x/y")).unwrap();
    assert_eq!(q, t.get("x/y").0);
    // ".." in the aname stops at the root, like a walk.
    assert_eq!(
        t.walk(&f, &["..", ".."]).unwrap().0[1].path,
        t.root_qid.path
    );
    let (q, _) = t.fs.attach(&attach_msg(b"../..")).unwrap();
    assert_eq!(q.path, t.root_qid.path);
    assert_eq!(
        t.fs.attach(&attach_msg(b"../secret")).err(),
        Some(Errno::ENOENT)
    );
    assert!(t.fs.attach(&attach_msg(b"out")).is_err());
    assert!(t.fs.attach(&attach_msg(b"out/etc")).is_err());
    assert!(t.fs.attach(&attach_msg(b"nope")).is_err());
}

#[test]
fn devices_refused_unless_allowed() {
    for allow in [false, true] {
        let t = setup_with(ExportOptions {
            allow_devices: allow,
        });
        let p = CString::new(t.path("null").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path.
        #[allow(unsafe_code)]
        let r = unsafe { libc::mknod(p.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        if r != 0 {
            eprintln!("mknod needs root; skipped");
            return;
        }
        let (_, f) = t.get("null");
        assert_eq!(t.attr(&f).rdev, libc::makedev(1, 3));
        let res = t.fs.lopen(&f, open_flags::RDWR);
        if allow {
            let o = res.unwrap().2;
            assert!(t.fs.read(&o, 0, 10).unwrap().is_empty());
        } else {
            assert_eq!(res.err(), Some(Errno::EPERM));
        }
        // Creating one through 9P follows the same rule.
        let made = t.fs.mknod(
            &t.root,
            &Tmknod {
                dfid: 0,
                name: b"zero".to_vec(),
                mode: libc::S_IFCHR | 0o600,
                major: 1,
                minor: 5,
                gid: 0,
            },
        );
        assert_eq!(made.is_ok(), allow, "{made:?}");
        // FIFOs can be made, but opened only when allowed.
        let q =
            t.fs.mknod(
                &t.root,
                &Tmknod {
                    dfid: 0,
                    name: b"fifo".to_vec(),
                    mode: libc::S_IFIFO | 0o600,
                    major: 0,
                    minor: 0,
                    gid: 0,
                },
            )
            .unwrap();
        assert_eq!(t.get("fifo").0.path, q.path);
        if !allow {
            let (_, ff) = t.get("fifo");
            assert_eq!(
                t.fs.lopen(&ff, open_flags::RDONLY).err(),
                Some(Errno::EPERM)
            );
        }
    }
}

#[test]
fn qids() {
    let t = setup();
    fs::write(t.path("a"), b"1").unwrap();
    fs::write(t.path("b"), b"1").unwrap();
    let (qa, fa) = t.get("a");
    let (qa2, _) = t.get("a");
    let (qb, _) = t.get("b");
    assert_eq!(qa.path, qa2.path);
    assert_ne!(qa.path, qb.path);
    assert_ne!(qa.path, t.root_qid.path);
    assert_ne!(qa.version, 0);
    let w = t.fs.lopen(&fa, open_flags::WRONLY).unwrap().2;
    t.fs.write(&w, 1, b"more").unwrap();
    let (qa3, _) = t.get("a");
    assert_eq!(qa3.path, qa.path);
    assert_ne!(qa3.version, qa.version, "version changes after a write");
    assert_eq!(t.attr(&fa).qid, qa3);
    // On the root's file system the qid path is the inode number, which
    // the Linux client shows as st_ino.
    assert_eq!(qa.path, fs::metadata(t.path("a")).unwrap().ino());
}

#[test]
fn concurrent_operations() {
    let t = setup();
    for i in 0..8 {
        fs::write(t.path(&format!("f{i}")), vec![i as u8; 4096]).unwrap();
    }
    std::thread::scope(|s| {
        for i in 0..8 {
            let t = &t;
            s.spawn(move || {
                for _ in 0..200 {
                    let name = format!("f{i}");
                    let f = t.open(&name, open_flags::RDWR);
                    let data = t.fs.read(&f, 0, 4096).unwrap();
                    assert!(data.iter().all(|&b| b == i as u8));
                    t.fs.write(&f, 0, &data[..16]).unwrap();
                    t.fs.getattr(&f, getattr::BASIC).unwrap();
                }
            });
        }
    });
}

#[test]
fn umask_is_not_applied_twice() {
    let t = setup();
    let q =
        t.fs.mknod(
            &t.root,
            &Tmknod {
                dfid: 0,
                name: b"reg".to_vec(),
                mode: libc::S_IFREG | 0o677,
                major: 0,
                minor: 0,
                gid: 0,
            },
        )
        .unwrap();
    assert_eq!(q.ty, qid_type::FILE);
    let mode = fs::metadata(t.path("reg")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o677);
}

/// New files get the attaching user and the requested group where this
/// process may give them (as root here: anyone; as a user: its groups),
/// set before the mode so set-id bits survive.
#[test]
fn new_files_get_the_owner_the_client_asks_for() {
    let t = setup();
    let root_runs_this = fs::metadata("/proc/self").unwrap().uid() == 0;
    t.fs.mkdir(
        &t.root,
        &Tmkdir {
            dfid: 0,
            name: b"d".to_vec(),
            mode: 0o2755,
            gid: 65534,
        },
    )
    .unwrap();
    let (_, file) =
        t.fs.lcreate(
            &t.root,
            &Tlcreate {
                fid: 0,
                name: b"f".to_vec(),
                flags: open_flags::WRONLY,
                mode: 0o2750,
                gid: 65534,
            },
        )
        .map(|(q, _, f)| (q, f))
        .unwrap();
    drop(file);
    let me = fs::metadata("/proc/self").unwrap();
    // mkdir(2) ignores S_ISGID in the mode, as it does locally.
    for (name, mode) in [("d", 0o755), ("f", 0o2750)] {
        let md = fs::symlink_metadata(t.path(name)).unwrap();
        let want = if root_runs_this {
            (65534, 65534)
        } else {
            (me.uid(), md.gid())
        };
        assert_eq!((md.uid(), md.gid()), want, "{name}");
        assert_eq!(md.mode() & 0o7777, mode, "{name}");
    }
}
