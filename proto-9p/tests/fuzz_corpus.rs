//! Replays the committed cargo-fuzz seed corpus (`fuzz/corpus/<target>/`)
//! through the same entry points as the fuzz targets, so that a plain
//! `cargo test` on stable checks every seed and every crash reproducer
//! kept in `fuzz/regressions/<target>/`.
//!
//! The seeds are generated from real encoded messages by the ignored test
//! `generate_seed_corpus`:
//! `cargo test -p proto-9p --test fuzz_corpus -- --ignored`.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use bytes::Bytes;
use proto_9p::consts::{NOFID, NOTAG, VERSION_9P2000_L};
use proto_9p::messages::*;
use proto_9p::{encode_frame, fuzzing, Dirent, Message, Qid};

include!("../../fuzz/replay.rs");

#[test]
fn replay_p9_decode() {
    replay("p9_decode", fuzzing::decode);
}

#[test]
fn replay_p9_server_session() {
    replay("p9_server_session", fuzzing::server_session);
}

#[test]
fn replay_p9_client_session() {
    replay("p9_client_session", fuzzing::client_session);
}

/// Server byte streams for the client session: a normal exchange, a
/// refused version, an error answer, a reply to an unknown tag.
fn client_streams() -> Vec<(&'static str, Vec<u8>)> {
    let rversion = |msize| {
        frame(
            NOTAG,
            Rversion {
                msize,
                version: VERSION_9P2000_L.to_vec(),
            },
        )
    };
    let walked = |tag| {
        frame(
            tag,
            Rwalk {
                wqids: vec![qid(0, 7)],
            },
        )
    };
    let mut normal = rversion(8192);
    normal.extend(walked(0));
    normal.extend(frame(1, Rlerror { ecode: 2 }));
    normal.extend(walked(2));
    normal.extend(walked(3));
    let mut refused = frame(
        NOTAG,
        Rversion {
            msize: 8192,
            version: b"unknown".to_vec(),
        },
    );
    refused.extend(walked(0));
    let mut stray = rversion(65536);
    stray.extend(walked(40));
    vec![
        ("normal", fuzzing::client_input(3, 1, &normal)),
        ("refused-version", fuzzing::client_input(1, 0, &refused)),
        ("stray-tag", fuzzing::client_input(0, 2, &stray)),
        ("big-msize", fuzzing::client_input(2, 3, &rversion(1 << 20))),
    ]
}

fn frame(tag: u16, msg: impl Into<Message>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(tag, &msg.into(), &mut out);
    out
}

fn qid(ty: u8, path: u64) -> Qid {
    Qid {
        ty,
        version: 1,
        path,
    }
}

/// Messages as a Linux client and a real server send them.
fn realistic() -> Vec<(&'static str, Vec<u8>)> {
    let mut dirents = Vec::new();
    for (i, name) in [&b"."[..], b"..", b"hello.txt", b"sub"].iter().enumerate() {
        Dirent {
            qid: qid(if i == 2 { 0 } else { 0x80 }, i as u64 + 1),
            offset: i as u64 + 1,
            ty: if i == 2 { 8 } else { 4 },
            name: name.to_vec(),
        }
        .encode(&mut dirents);
    }
    let tversion = frame(
        0xffff,
        Tversion {
            msize: 8192 + 24,
            version: VERSION_9P2000_L.to_vec(),
        },
    );
    let tattach = frame(
        1,
        Tattach {
            fid: 0,
            afid: NOFID,
            uname: b"root".to_vec(),
            aname: b"/".to_vec(),
            n_uname: 0,
        },
    );
    let twalk = frame(
        2,
        Twalk {
            fid: 0,
            newfid: 1,
            wnames: vec![b"usr".to_vec(), b"share".to_vec(), b"doc".to_vec()],
        },
    );
    let mut session = Vec::new();
    for f in [&tversion, &tattach, &twalk] {
        session.extend_from_slice(f);
    }
    session.extend(frame(3, Tlopen { fid: 1, flags: 0 }));
    session.extend(frame(
        4,
        Tread {
            fid: 1,
            offset: 0,
            count: 8168,
        },
    ));
    session.extend(frame(5, Tclunk { fid: 1 }));
    vec![
        ("real-tversion", tversion),
        (
            "real-rversion",
            frame(
                0xffff,
                Rversion {
                    msize: 8192 + 24,
                    version: VERSION_9P2000_L.to_vec(),
                },
            ),
        ),
        ("real-tattach", tattach),
        ("real-twalk", twalk),
        (
            "real-rwalk",
            frame(
                2,
                Rwalk {
                    wqids: vec![qid(0x80, 10), qid(0x80, 11), qid(0x80, 12)],
                },
            ),
        ),
        (
            "real-twalk-16",
            frame(
                2,
                Twalk {
                    fid: 0,
                    newfid: 1,
                    wnames: vec![b"d".to_vec(); 16],
                },
            ),
        ),
        (
            "real-rlopen",
            frame(
                3,
                Rlopen {
                    qid: qid(0, 13),
                    iounit: 0,
                },
            ),
        ),
        (
            "real-twrite",
            frame(
                6,
                Twrite {
                    fid: 1,
                    offset: 4096,
                    data: Bytes::from_static(b"hello, world\n"),
                },
            ),
        ),
        (
            "real-rread",
            frame(
                4,
                Rread {
                    data: Bytes::from(vec![b'x'; 1000]),
                },
            ),
        ),
        (
            "real-rreaddir",
            frame(
                7,
                Rreaddir {
                    data: Bytes::from(dirents.clone()),
                },
            ),
        ),
        ("real-dirents", dirents),
        ("real-rlerror-enoent", frame(8, Rlerror { ecode: 2 })),
        (
            "real-tgetattr",
            frame(
                9,
                Tgetattr {
                    fid: 1,
                    request_mask: 0x3fff,
                },
            ),
        ),
        (
            "real-rgetattr",
            frame(
                9,
                Rgetattr {
                    valid: 0x7ff,
                    qid: qid(0, 13),
                    mode: 0o100644,
                    nlink: 1,
                    size: 13,
                    blksize: 4096,
                    blocks: 8,
                    ..Default::default()
                },
            ),
        ),
        (
            "real-tlcreate",
            frame(
                10,
                Tlcreate {
                    fid: 1,
                    name: b"new.txt".to_vec(),
                    flags: 0o1101,
                    mode: 0o644,
                    gid: 0,
                },
            ),
        ),
        (
            "real-tlock",
            frame(
                11,
                Tlock {
                    fid: 1,
                    lock_type: 1,
                    flags: 1,
                    start: 0,
                    length: 0,
                    proc_id: 1234,
                    client_id: b"host".to_vec(),
                },
            ),
        ),
        (
            "real-trenameat",
            frame(
                12,
                Trenameat {
                    olddirfid: 0,
                    oldname: b"a".to_vec(),
                    newdirfid: 0,
                    newname: b"b".to_vec(),
                },
            ),
        ),
        ("real-tflush", frame(13, Tflush { oldtag: 4 })),
        ("real-session-stream", session),
    ]
}

/// Control bytes of `fuzzing::server_session` (see `Harness::run`).
const FEED: u8 = 0;
/// Feed a piece of `n` (1..=64) bytes.
fn piece(n: u8) -> u8 {
    1 | ((n - 1) << 2)
}
/// Answer pending request `i` through the toy file system.
fn answer(i: u8) -> [u8; 3] {
    [3, i, 5]
}
/// Answer pending request `i` with `EINTR` (when it was flushed).
fn interrupt(i: u8) -> [u8; 3] {
    [3, i, 0]
}

/// A client's byte stream, with the control bytes that feed it.
#[derive(Default)]
struct Script {
    /// Control bytes; `None` feeds the next frame whole.
    steps: Vec<Option<Vec<u8>>>,
    stream: Vec<u8>,
    /// The length of each frame sent.
    frames: Vec<usize>,
}

impl Script {
    /// Sends one frame.
    fn send(&mut self, tag: u16, msg: impl Into<Message>) -> &mut Self {
        let len = encode_frame(tag, &msg.into(), &mut self.stream);
        self.frames.push(len);
        self.steps.push(None);
        self
    }
    /// Sends one frame and has the backend answer it at once.
    fn call(&mut self, tag: u16, msg: impl Into<Message>) -> &mut Self {
        self.send(tag, msg).control(&answer(0))
    }
    fn control(&mut self, bytes: &[u8]) -> &mut Self {
        self.steps.push(Some(bytes.to_vec()));
        self
    }
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.stream.extend_from_slice(bytes);
        self.frames.push(bytes.len());
        self.steps.push(None);
        self
    }
    /// The input, each frame fed whole, or in pieces of `piece(i)` bytes
    /// for frame `i`.
    fn input_with(&self, piece_len: Option<&dyn Fn(usize) -> u8>) -> Vec<u8> {
        let mut control = Vec::new();
        let mut frames = self.frames.iter().enumerate();
        for step in &self.steps {
            match (step, piece_len) {
                (Some(bytes), _) => control.extend_from_slice(bytes),
                (None, None) => control.push(FEED),
                (None, Some(f)) => {
                    let (i, len) = frames.next().unwrap();
                    let p = f(i);
                    control.extend(vec![piece(p); len.div_ceil(usize::from(p))]);
                }
            }
        }
        fuzzing::session_input(&control, &self.stream)
    }
    fn input(&self) -> Vec<u8> {
        self.input_with(None)
    }
}

fn version(msize: u32) -> Tversion {
    Tversion {
        msize,
        version: VERSION_9P2000_L.to_vec(),
    }
}

fn attach(fid: u32) -> Tattach {
    Tattach {
        fid,
        afid: NOFID,
        uname: b"root".to_vec(),
        aname: Vec::new(),
        n_uname: 0,
    }
}

fn walk(fid: u32, newfid: u32, names: &[&str]) -> Twalk {
    Twalk {
        fid,
        newfid,
        wnames: names.iter().map(|n| n.as_bytes().to_vec()).collect(),
    }
}

/// Sessions a Linux client could hold with the toy file system of
/// `proto_9p::fuzzing`, and a few a broken client would.
fn sessions() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();

    let mut s = Script::default();
    s.send(0xffff, version(8192))
        .call(1, attach(0))
        .call(2, walk(0, 1, &["dir", "a"]))
        .call(3, Tlopen { fid: 1, flags: 0 })
        .call(
            4,
            Tread {
                fid: 1,
                offset: 0,
                count: 100,
            },
        )
        .call(5, Tclunk { fid: 1 })
        .call(6, walk(0, 2, &["dir"]))
        .call(
            7,
            Tlopen {
                fid: 2,
                flags: 0o200000,
            },
        )
        .call(
            8,
            Treaddir {
                fid: 2,
                offset: 0,
                count: 4000,
            },
        )
        .call(
            9,
            Tgetattr {
                fid: 0,
                request_mask: 0x3fff,
            },
        )
        .call(10, Tclunk { fid: 2 });
    out.push(("session-read", s.input()));

    // The same stream arriving in small pieces of 3 to 22 bytes.
    let chunked = s.input_with(Some(&|i| 3 + (i % 20) as u8));
    out.push(("session-read-chunked", chunked));

    let mut s = Script::default();
    s.send(1, version(65536))
        .call(1, attach(0))
        .call(2, walk(0, 1, &[]))
        .call(
            3,
            Tlcreate {
                fid: 1,
                name: b"new".to_vec(),
                flags: 0o102,
                mode: 0o644,
                gid: 0,
            },
        )
        .call(
            4,
            Twrite {
                fid: 1,
                offset: 0,
                data: Bytes::from_static(b"some new data"),
            },
        )
        .call(
            5,
            Tsetattr {
                fid: 1,
                valid: 8,
                size: 4,
                ..Default::default()
            },
        )
        .call(
            6,
            Tfsync {
                fid: 1,
                datasync: 1,
            },
        )
        .call(
            7,
            Tlock {
                fid: 1,
                lock_type: 1,
                flags: 0,
                start: 0,
                length: 0,
                proc_id: 7,
                client_id: b"me".to_vec(),
            },
        )
        .call(
            8,
            Tgetlock {
                fid: 1,
                lock_type: 1,
                start: 0,
                length: 10,
                proc_id: 7,
                client_id: b"me".to_vec(),
            },
        )
        .call(9, Tclunk { fid: 1 })
        .call(
            10,
            Tmkdir {
                dfid: 0,
                name: b"sub".to_vec(),
                mode: 0o755,
                gid: 0,
            },
        )
        .call(
            11,
            Trenameat {
                olddirfid: 0,
                oldname: b"new".to_vec(),
                newdirfid: 0,
                newname: b"renamed".to_vec(),
            },
        )
        .call(
            12,
            Tsymlink {
                fid: 0,
                name: b"ln".to_vec(),
                symtgt: b"renamed".to_vec(),
                gid: 0,
            },
        )
        .call(13, walk(0, 3, &["ln"]))
        .call(14, Treadlink { fid: 3 })
        .call(15, Tremove { fid: 3 })
        .call(
            16,
            Tunlinkat {
                dirfid: 0,
                name: b"sub".to_vec(),
                flags: 0x200,
            },
        )
        .call(17, Tstatfs { fid: 0 })
        .call(
            18,
            Txattrwalk {
                fid: 0,
                newfid: 4,
                name: Vec::new(),
            },
        )
        .call(
            19,
            Tmknod {
                dfid: 0,
                name: b"fifo".to_vec(),
                mode: 0o10644,
                major: 0,
                minor: 0,
                gid: 0,
            },
        )
        .call(
            20,
            Tlink {
                dfid: 0,
                fid: 0,
                name: b"x".to_vec(),
            },
        )
        .call(
            21,
            Trename {
                fid: 0,
                dfid: 0,
                name: b"root".to_vec(),
            },
        );
    out.push(("session-write", s.input()));

    // Requests answered out of order; a flush of a pending read, a flush
    // of that flush, and the read interrupted.
    let mut s = Script::default();
    s.send(0, version(8192))
        .call(1, attach(0))
        .call(2, walk(0, 1, &["hello"]))
        .call(3, Tlopen { fid: 1, flags: 0 })
        .send(
            4,
            Tread {
                fid: 1,
                offset: 0,
                count: 5,
            },
        )
        .send(
            5,
            Tgetattr {
                fid: 1,
                request_mask: 1,
            },
        )
        .send(6, Tflush { oldtag: 4 })
        .send(7, Tflush { oldtag: 6 })
        .send(8, Tflush { oldtag: 99 })
        .control(&answer(1))
        .control(&interrupt(0))
        .send(4, Tclunk { fid: 1 })
        .control(&answer(0));
    out.push(("session-flush", s.input()));

    // Tversion while requests are in flight: their answers are dropped.
    let mut s = Script::default();
    s.send(0, version(8192))
        .call(1, attach(0))
        .send(2, walk(0, 1, &["dir"]))
        .send(3, Tstatfs { fid: 0 })
        .send(0, version(4096))
        .control(&answer(0))
        .control(&answer(0))
        .call(1, attach(0));
    out.push(("session-version-reset", s.input()));

    // A broken client: requests before Tversion, a too small msize, a
    // foreign version, R-messages, unknown types, bad bodies, reused tags
    // and fids, and a bad frame size to end it.
    let mut s = Script::default();
    s.send(1, attach(0))
        .send(1, version(512))
        .send(
            1,
            Tversion {
                msize: 8192,
                version: b"9P2000.u".to_vec(),
            },
        )
        .send(1, version(8192))
        .send(2, Rclunk {})
        .send(
            2,
            Tauth {
                afid: 0,
                uname: Vec::new(),
                aname: Vec::new(),
                n_uname: 0,
            },
        )
        .send(
            3,
            Tattach {
                afid: 5,
                ..attach(0)
            },
        )
        .raw(&[7, 0, 0, 0, 200, 4, 0])
        .raw(&[8, 0, 0, 0, 120, 5, 0, 1])
        .send(6, attach(0))
        .send(6, attach(1))
        .control(&answer(0))
        .send(7, attach(0))
        .send(8, walk(9, 10, &["x"]))
        .send(9, Tclunk { fid: 0 })
        .send(10, Tclunk { fid: 0 })
        .control(&answer(0))
        .raw(&[3, 0, 0, 0, 100]);
    out.push(("session-broken-client", s.input()));

    // A broken backend: a reply of the wrong type, one beyond msize.
    let mut s = Script::default();
    s.send(0, version(4096))
        .call(1, attach(0))
        .send(2, walk(0, 1, &["hello"]))
        .control(&[3, 0, 3])
        .call(3, walk(0, 1, &["hello"]))
        .call(4, Tlopen { fid: 1, flags: 0 })
        .send(
            5,
            Tread {
                fid: 1,
                offset: 0,
                count: 100_000,
            },
        )
        .control(&[3, 0, 4])
        .send(6, Tstatfs { fid: 1 })
        .control(&[3, 0, 2, 5]);
    out.push(("session-broken-backend", s.input()));

    // A frame larger than msize ends the connection as soon as its size
    // field is in; the rest need not be sent.
    let mut s = Script::default();
    s.send(0, version(4096))
        .raw(&[0x88, 0x13, 0, 0, Twrite::TYPE, 1, 0]);
    out.push(("session-too-large", s.input()));
    out
}

/// Writes `fuzz/corpus/p9_decode/`: one frame per message type with
/// zero fields, and the realistic messages above; and
/// `fuzz/corpus/p9_server_session/`: the sessions above.
#[test]
#[ignore = "writes the seed corpus into fuzz/corpus; run by hand"]
fn generate_seed_corpus() {
    let dir = fuzz_dir("corpus", "p9_decode");
    fs::create_dir_all(&dir).unwrap();
    for (i, msg) in common::defaults().into_iter().enumerate() {
        let name = format!("default-{}", msg.name().to_lowercase());
        fs::write(dir.join(name), frame(i as u16, msg)).unwrap();
    }
    for (name, data) in realistic() {
        assert!(data.len() < 4096, "{name} is too big for a seed");
        fs::write(dir.join(name), data).unwrap();
    }
    let dir = fuzz_dir("corpus", "p9_client_session");
    fs::create_dir_all(&dir).unwrap();
    for (name, data) in client_streams() {
        fuzzing::client_session(&data);
        fs::write(dir.join(name), data).unwrap();
    }
    let dir = fuzz_dir("corpus", "p9_server_session");
    fs::create_dir_all(&dir).unwrap();
    for (name, data) in sessions() {
        assert!(data.len() < 4096, "{name} is too big for a seed");
        fuzzing::server_session(&data);
        fs::write(dir.join(name), data).unwrap();
    }
}
