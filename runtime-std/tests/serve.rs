//! The 9P server of runtime-std with the local export, over loopback TCP,
//! driven by our client: concurrency, confinement and pipelining.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proto_9p::consts::{getattr, open_flags, NOFID};
use proto_9p::messages::*;
use proto_9p::Errno;
use runtime_std::export::{ExportOptions, LocalExport};
use runtime_std::p9client::{CallError, Client};
use runtime_std::p9server::{serve_tcp, ServeConfig};

/// Starts a server for `root` on a free loopback port; the server thread
/// lives as long as the test process.
fn start(root: &Path) -> Client<TcpStream> {
    start_with(root, ExportOptions::default())
}

fn start_with(root: &Path, options: ExportOptions) -> Client<TcpStream> {
    let export = LocalExport::new(root, options).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || serve_tcp(Arc::new(export), listener, ServeConfig::default()));
    let stream = TcpStream::connect(addr).unwrap();
    // Bounded: a hung server fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    Client::connect(stream, 1 << 20).unwrap()
}

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

#[test]
fn a_blocked_read_does_not_stall_other_requests() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    std::fs::write(dir.path().join("file"), b"hello").unwrap();
    // FIFOs are refused unless asked for: they could block a thread.
    let mut c = start_with(
        dir.path(),
        ExportOptions {
            allow_devices: true,
        },
    );
    c.attach(0, b"/").unwrap();
    c.walk(0, 1, "fifo").unwrap();
    // O_RDWR opens a fifo without waiting for a writer; the read then
    // blocks until data arrives.
    c.lopen(1, open_flags::RDWR).unwrap();
    let slow = c
        .send(Tread {
            fid: 1,
            offset: 0,
            count: 64,
        })
        .unwrap();
    c.walk(0, 2, "file").unwrap();
    let attr = c.getattr(2, getattr::BASIC).unwrap();
    assert_eq!(attr.size, 5);
    // Now feed the fifo from outside; the slow read completes.
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(b"late").unwrap();
    let (tag, result) = c.recv().unwrap();
    assert_eq!(tag, slow);
    match result {
        Ok(Message::Rread(r)) => assert_eq!(&r.data[..], b"late"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dotdot_and_symlinks_stay_inside_the_export() {
    let outer = tempfile::tempdir().unwrap();
    std::fs::write(outer.path().join("secret"), b"secret").unwrap();
    let root = outer.path().join("export");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink("/", root.join("to-root")).unwrap();
    std::os::unix::fs::symlink("../secret", root.join("to-secret")).unwrap();
    let mut c = start(&root);
    let root_qid = c.attach(0, b"/").unwrap();
    let qids = c.walk(0, 1, "../..").unwrap();
    assert_eq!(qids.last(), Some(&root_qid), ".. at the root is the root");
    assert!(c.walk(0, 2, "../secret").is_err());
    assert!(
        c.walk(0, 3, "to-root/etc").is_err(),
        "walks do not follow symlinks"
    );
    // The symlink itself is served as a symlink.
    c.walk(0, 4, "to-secret").unwrap();
    assert!(
        c.lopen(4, open_flags::RDONLY).is_err(),
        "opening does not follow it"
    );
    let target = match c.call(Treadlink { fid: 4 }).unwrap() {
        Message::Rreadlink(r) => r.target,
        other => panic!("{other:?}"),
    };
    assert_eq!(target, b"../secret");
    // An aname outside the export is refused.
    match c.attach(9, b"/../secret") {
        Err(CallError::Errno(_)) => {}
        other => panic!("attach outside the root: {other:?}"),
    }
}

#[test]
fn pipelined_writes_and_reads_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = start(dir.path());
    c.attach(0, b"").unwrap();
    c.walk(0, 1, "").unwrap();
    c.call(Tlcreate {
        fid: 1,
        name: b"data".to_vec(),
        flags: open_flags::RDWR,
        mode: 0o644,
        gid: NOFID,
    })
    .unwrap();
    let chunk = 64 << 10;
    let total = 64;
    let mut tags = Vec::new();
    for i in 0..total {
        let data = Bytes::from(vec![i as u8; chunk]);
        tags.push(
            c.send(Twrite {
                fid: 1,
                offset: (i * chunk) as u64,
                data,
            })
            .unwrap(),
        );
    }
    for _ in 0..total {
        let (tag, r) = c.recv().unwrap();
        assert!(tags.contains(&tag));
        assert!(matches!(r, Ok(Message::Rwrite(Rwrite { count })) if count as usize == chunk));
    }
    let on_disk = std::fs::read(dir.path().join("data")).unwrap();
    assert_eq!(on_disk.len(), chunk * total);
    for (i, block) in on_disk.chunks(chunk).enumerate() {
        assert!(block.iter().all(|b| *b == i as u8), "block {i}");
    }
    let back = c.read(1, (5 * chunk) as u64, chunk as u32).unwrap();
    assert!(back.iter().all(|b| *b == 5));
    assert_eq!(c.clunk(1).map_err(|e| e.to_string()), Ok(()));
    match c.read(1, 0, 1) {
        Err(CallError::Errno(e)) => assert_eq!(e, Errno::EBADF),
        other => panic!("read after clunk: {other:?}"),
    }
}
