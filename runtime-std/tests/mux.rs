//! The shared 9P client ([`MuxClient`]) against the repository's server
//! over loopback TCP: many threads at once, a blocked request beside
//! others, the in-flight bound and the end of the session.
#![allow(clippy::unwrap_used)]

#[path = "support/p9.rs"]
mod support;

use std::io::Write;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use proto_9p::consts::{getattr, open_flags};
use proto_9p::messages::*;
use runtime_std::export::{ExportOptions, LocalExport};
use runtime_std::p9client::{CallError, MuxClient};
use runtime_std::p9server::{serve_tcp, ServeConfig};

/// Bound on anything a test waits for: a hang fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(20);

/// A client of a server for `root` on a free loopback port, attached as
/// fid 0, and a clone of its stream to break it with.
fn start(root: &Path, max_in_flight: usize) -> (MuxClient, TcpStream) {
    let export = LocalExport::new(
        root,
        ExportOptions {
            allow_devices: true,
        },
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || serve_tcp(Arc::new(export), listener, ServeConfig::default()));
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let reader = stream.try_clone().unwrap();
    let keep = stream.try_clone().unwrap();
    let c = MuxClient::connect(reader, stream, 1 << 20, max_in_flight).unwrap();
    support::attach_root(&c);
    (c, keep)
}

fn walk(c: &MuxClient, fid: u32, newfid: u32, name: &str) {
    let r = c
        .call(Twalk {
            fid,
            newfid,
            wnames: vec![name.as_bytes().to_vec()],
        })
        .unwrap();
    assert!(
        matches!(r, Message::Rwalk(ref w) if w.wqids.len() == 1),
        "{r:?}"
    );
}

/// Deterministic bytes with no short period.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs `f` on a thread and waits at most [`LIMIT`] for it.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(LIMIT).expect("did not finish in time")
}

#[test]
fn many_threads_read_one_file_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(8 << 20 | 4321);
    std::fs::write(dir.path().join("big"), &data).unwrap();
    // A small bound, so that threads also wait for slots.
    let (c, _keep) = start(dir.path(), 4);
    let c = Arc::new(c);
    walk(&c, 0, 1, "big");
    c.lopen(1, open_flags::RDONLY).unwrap();
    let data = Arc::new(data);
    let threads = 8;
    let chunk = 64 << 10;
    let got = bounded({
        let (c, data) = (Arc::clone(&c), Arc::clone(&data));
        move || {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (c, data) = (Arc::clone(&c), Arc::clone(&data));
                    std::thread::spawn(move || {
                        // Thread t reads chunks t, t+threads, ...: the
                        // answers interleave on the connection.
                        let mut off = t * chunk;
                        let mut ok = 0;
                        while off < data.len() {
                            let d = c.read(1, off as u64, chunk as u32).unwrap();
                            let end = data.len().min(off + chunk);
                            assert_eq!(&d[..], &data[off..end], "chunk at {off}");
                            ok += d.len();
                            off += threads * chunk;
                        }
                        ok
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum::<usize>()
        }
    });
    assert_eq!(got, data.len());
}

#[test]
fn requests_started_together_are_answered_each_to_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3 << 20);
    std::fs::write(dir.path().join("f"), &data).unwrap();
    let (c, _keep) = start(dir.path(), 64);
    walk(&c, 0, 1, "f");
    c.lopen(1, open_flags::RDONLY).unwrap();
    let unit = 256 << 10;
    // All out at once from one thread, then collected in order.
    let pending: Vec<_> = (0..data.len() / unit)
        .map(|i| {
            c.start(Tread {
                fid: 1,
                offset: (i * unit) as u64,
                count: unit as u32,
            })
            .unwrap()
        })
        .collect();
    for (i, p) in pending.into_iter().enumerate() {
        match p.wait().unwrap() {
            Message::Rread(r) => assert_eq!(&r.data[..], &data[i * unit..(i + 1) * unit]),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_blocked_request_does_not_stall_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::write(dir.path().join("file"), b"hello").unwrap();
    let (c, _keep) = start(dir.path(), 8);
    let c = Arc::new(c);
    walk(&c, 0, 1, "fifo");
    // O_RDWR opens a fifo without waiting for a writer; the read then
    // blocks in the server until data arrives.
    c.lopen(1, open_flags::RDWR).unwrap();
    // Sent before the others start: it is on the wire all along.
    let p = c
        .start(Tread {
            fid: 1,
            offset: 0,
            count: 64,
        })
        .unwrap();
    let slow = std::thread::spawn(move || p.wait());
    // Other threads get their answers while that read is out. Nothing is
    // written to the fifo until they are all done, so a client that
    // serialised requests would time out here.
    let sizes = bounded({
        let c = Arc::clone(&c);
        move || {
            let hs: Vec<_> = (0..4u32)
                .map(|i| {
                    let c = Arc::clone(&c);
                    std::thread::spawn(move || {
                        walk(&c, 0, 10 + i, "file");
                        let a = c.getattr(10 + i, getattr::BASIC).unwrap();
                        c.clunk(10 + i).unwrap();
                        a.size
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        }
    });
    assert_eq!(sizes, vec![5; 4]);
    assert!(!slow.is_finished(), "the fifo read had nothing to return");
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(b"late").unwrap();
    match bounded(move || slow.join().unwrap()).unwrap() {
        Message::Rread(r) => assert_eq!(&r.data[..], b"late"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_broken_stream_fails_waiting_and_later_calls() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (c, keep) = start(dir.path(), 8);
    let c = Arc::new(c);
    walk(&c, 0, 1, "fifo");
    c.lopen(1, open_flags::RDWR).unwrap();
    // A read that only the end of the session can finish.
    let p = c
        .start(Tread {
            fid: 1,
            offset: 0,
            count: 64,
        })
        .unwrap();
    keep.shutdown(Shutdown::Both).unwrap();
    let r = bounded(move || p.wait());
    assert!(matches!(r, Err(CallError::Io(_))), "{r:?}");
    assert!(c.is_failed());
    assert!(matches!(
        c.getattr(0, getattr::BASIC),
        Err(CallError::Io(_))
    ));
}
