//! The smol 9P server and client over loopback TCP, each against the
//! blocking runtime's other half and against each other: a whole file
//! round trip, directory listing, many threads reading at once, a fifo
//! read blocked in the backend beside other requests, backpressure, and
//! the end of a session when its stream breaks.

#![allow(clippy::unwrap_used)]

#[path = "../../runtime-std/tests/support/p9.rs"]
mod support;

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use async_io::Async;
use bytes::Bytes;
use proto_9p::consts::{getattr, open_flags, NOFID};
use proto_9p::messages::*;
use runtime_smol::p9client::{CallError, MuxClient};
use runtime_smol::p9server::ServeConfig;
use runtime_std::export::{ExportOptions, LocalExport};
use runtime_std::p9client::Client;
use sha2::{Digest, Sha256};

/// Bound on anything a test waits for: a hang fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(30);

/// Which server a test talks to.
#[derive(Clone, Copy, Debug)]
enum Server {
    Smol,
    Std,
}

fn export(root: &Path) -> Arc<LocalExport> {
    // Devices (fifos) are refused unless asked for: they could block.
    let options = ExportOptions {
        allow_devices: true,
    };
    Arc::new(LocalExport::new(root, options).unwrap())
}

/// Serves `root` on a free loopback port for the rest of the process.
fn serve(server: Server, root: &Path, config: ServeConfig) -> SocketAddr {
    let fs = export(root);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    match server {
        Server::Smol => {
            let listener = Async::new(listener).unwrap();
            smol::spawn(runtime_smol::p9server::serve_tcp(fs, listener, config)).detach();
        }
        Server::Std => {
            std::thread::spawn(move || runtime_std::p9server::serve_tcp(fs, listener, config));
        }
    }
    addr
}

/// The blocking serial client, with reads bounded by [`LIMIT`].
fn serial(addr: SocketAddr) -> Client<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut c = Client::connect(stream, 1 << 20).unwrap();
    c.attach(0, b"").unwrap();
    c
}

/// The smol shared client, attached as fid 0, and a handle on its socket
/// to break it with.
fn mux(addr: SocketAddr, max_in_flight: usize) -> (Arc<MuxClient>, TcpStream) {
    let stream = TcpStream::connect(addr).unwrap();
    let keep = stream.try_clone().unwrap();
    let writer = Async::new(stream.try_clone().unwrap()).unwrap();
    let reader = Async::new(stream).unwrap();
    let c = MuxClient::connect(reader, writer, 1 << 20, max_in_flight).unwrap();
    support::attach_root(&c);
    (Arc::new(c), keep)
}

fn mux_walk(c: &MuxClient, fid: u32, newfid: u32, name: &str) {
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

/// `len` bytes from a xorshift generator: no short period, so a chunk
/// served from the wrong offset does not compare equal.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs `f` on a thread and waits at most [`LIMIT`] for it; a panic in
/// `f` is the caller's.
fn within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(v) => v,
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the thread sent nothing and did not panic"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("did not finish within {LIMIT:?}"),
    }
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
fn a_file_written_and_read_back_through_the_smol_server() {
    within(a_file_written_and_read_back_through_the_smol_server_run);
}

fn a_file_written_and_read_back_through_the_smol_server_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/old"), b"old").unwrap();
    let mut c = serial(serve(Server::Smol, dir.path(), ServeConfig::default()));
    c.walk(0, 1, "sub").unwrap();
    c.call(Tlcreate {
        fid: 1,
        name: b"new".to_vec(),
        flags: open_flags::RDWR,
        mode: 0o644,
        gid: NOFID,
    })
    .unwrap();
    let data = noise((5 << 20) + 777, 7);
    let unit = c.iounit() as usize;
    for (i, piece) in data.chunks(unit).enumerate() {
        let n = c
            .write(1, (i * unit) as u64, Bytes::copy_from_slice(piece))
            .unwrap();
        assert_eq!(n as usize, piece.len());
    }
    let mut back = Vec::new();
    loop {
        let got = c.read(1, back.len() as u64, unit as u32).unwrap();
        if got.is_empty() {
            break;
        }
        back.extend_from_slice(&got);
    }
    assert_eq!(back.len(), data.len());
    assert_eq!(Sha256::digest(&back), Sha256::digest(&data));
    let on_disk = std::fs::read(dir.path().join("sub/new")).unwrap();
    assert_eq!(Sha256::digest(&on_disk), Sha256::digest(&data));
    c.clunk(1).unwrap();

    c.walk(0, 2, "sub/new").unwrap();
    assert_eq!(
        c.getattr(2, getattr::BASIC).unwrap().size,
        data.len() as u64
    );
    c.walk(0, 3, "sub").unwrap();
    c.lopen(3, open_flags::RDONLY).unwrap();
    let mut names: Vec<_> = c
        .readdir_all(3)
        .unwrap()
        .into_iter()
        .map(|d| String::from_utf8(d.name).unwrap())
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    assert_eq!(names, ["new", "old"]);
    assert!(matches!(
        c.walk(0, 4, "sub/missing"),
        Err(CallError::Errno(_))
    ));
}

/// Eight threads read one file through one smol client, interleaving
/// their answers on the connection, with few enough slots that they also
/// wait for each other.
fn many_threads_read_at_once(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let data = Arc::new(noise((6 << 20) + 4321, 11));
    std::fs::write(dir.path().join("big"), &*data).unwrap();
    let (c, _keep) = mux(serve(server, dir.path(), ServeConfig::default()), 4);
    mux_walk(&c, 0, 1, "big");
    c.lopen(1, open_flags::RDONLY).unwrap();
    let threads = 8;
    let chunk = 64 << 10;
    let total = {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let (c, data) = (Arc::clone(&c), Arc::clone(&data));
                std::thread::spawn(move || {
                    let mut read = 0;
                    for off in (t * chunk..data.len()).step_by(threads * chunk) {
                        let got = c.read(1, off as u64, chunk as u32).unwrap();
                        let end = data.len().min(off + chunk);
                        assert_eq!(&got[..], &data[off..end], "{server:?}: chunk at {off}");
                        read += got.len();
                    }
                    read
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    };
    assert_eq!(total, (6 << 20) + 4321);
}

#[test]
fn many_threads_read_at_once_from_the_smol_server() {
    within(|| many_threads_read_at_once(Server::Smol));
}

#[test]
fn many_threads_read_at_once_from_the_std_server() {
    within(|| many_threads_read_at_once(Server::Std));
}

#[test]
fn a_blocked_backend_read_does_not_stall_the_smol_server() {
    within(a_blocked_backend_read_does_not_stall_the_smol_server_run);
}

fn a_blocked_backend_read_does_not_stall_the_smol_server_run() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    std::fs::write(dir.path().join("file"), b"hello").unwrap();
    let mut c = serial(serve(Server::Smol, dir.path(), ServeConfig::default()));
    c.walk(0, 1, "fifo").unwrap();
    // O_RDWR opens a fifo without waiting for a writer; the read then
    // blocks in the backend until data arrives. Were it run on the
    // executor, nothing below would be answered (the client's reads
    // would time out).
    c.lopen(1, open_flags::RDWR).unwrap();
    let slow = c
        .send(Tread {
            fid: 1,
            offset: 0,
            count: 64,
        })
        .unwrap();
    for fid in 2..10 {
        c.walk(0, fid, "file").unwrap();
        assert_eq!(c.getattr(fid, getattr::BASIC).unwrap().size, 5);
        // Not open: the backend answers an error, also without stalling.
        assert!(matches!(c.read(fid, 0, 64), Err(CallError::Errno(_))));
        c.clunk(fid).unwrap();
    }
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
fn a_client_that_does_not_read_is_held_back_and_then_answered_in_full() {
    within(a_client_that_does_not_read_is_held_back_and_then_answered_in_full_run);
}

fn a_client_that_does_not_read_is_held_back_and_then_answered_in_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = noise(1 << 20, 3);
    std::fs::write(dir.path().join("f"), &data).unwrap();
    // Room for two requests and one reply at a time.
    let config = ServeConfig {
        max_in_flight: 2,
        max_pending_output: 64 << 10,
        max_workers: 2,
        ..ServeConfig::default()
    };
    let mut c = serial(serve(Server::Smol, dir.path(), config));
    c.walk(0, 1, "f").unwrap();
    c.lopen(1, open_flags::RDONLY).unwrap();
    let unit = 64 << 10;
    // Every round's requests go out before any answer is read: the server
    // stops reading while its limits are reached, and must start again
    // as we read, or the next round is never answered.
    for round in 0..3 {
        let mut tags = Vec::new();
        for i in 0..data.len() / unit {
            let tag = c
                .send(Tread {
                    fid: 1,
                    offset: (i * unit) as u64,
                    count: unit as u32,
                })
                .unwrap();
            tags.push((tag, i));
        }
        for _ in 0..tags.len() {
            let (tag, r) = c.recv().unwrap();
            let &(_, i) = tags.iter().find(|(t, _)| *t == tag).unwrap();
            match r {
                Ok(Message::Rread(r)) => {
                    assert_eq!(
                        &r.data[..],
                        &data[i * unit..(i + 1) * unit],
                        "round {round}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn a_broken_stream_fails_waiting_and_later_calls() {
    within(a_broken_stream_fails_waiting_and_later_calls_run);
}

fn a_broken_stream_fails_waiting_and_later_calls_run() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let (c, keep) = mux(serve(Server::Smol, dir.path(), ServeConfig::default()), 8);
    mux_walk(&c, 0, 1, "fifo");
    c.lopen(1, open_flags::RDWR).unwrap();
    // Reads that only the end of the session can finish.
    let pending: Vec<_> = (0..3)
        .map(|_| {
            c.start(Tread {
                fid: 1,
                offset: 0,
                count: 64,
            })
            .unwrap()
        })
        .collect();
    keep.shutdown(Shutdown::Both).unwrap();
    for p in pending {
        let r = p.wait();
        assert!(matches!(r, Err(CallError::Io(_))), "{r:?}");
    }
    assert!(c.is_failed());
    let later = c.getattr(0, getattr::BASIC);
    assert!(matches!(later, Err(CallError::Io(_))), "{later:?}");
}
