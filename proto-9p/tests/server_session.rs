//! The server session's bookkeeping, driven by a client session: version
//! negotiation, fid lifecycle, flush ordering, errors that keep the
//! session alive and framing errors that end it. The backend is played by
//! the test, answering each request by hand.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proto_9p::client::{ClientEvent, ClientSession};
use proto_9p::consts::{NOFID, NOTAG};
use proto_9p::messages::*;
use proto_9p::server::{Event, Op, Reply, Request, ServerConfig, ServerSession};
use proto_9p::{encode_frame, Errno, FramingError, Qid};

type Server = ServerSession<u32>;

struct Pair {
    client: ClientSession,
    server: Server,
}

impl Pair {
    fn new(msize: u32) -> Pair {
        let mut p = Pair {
            client: ClientSession::new(msize),
            server: Server::new(ServerConfig::default()),
        };
        p.pump();
        match p.client.poll_event() {
            Some(ClientEvent::Ready { .. }) => {}
            other => panic!("no Rversion: {other:?}"),
        }
        p
    }

    /// Moves bytes both ways until both sides are quiet.
    fn pump(&mut self) {
        for _ in 0..16 {
            let mut buf = Vec::new();
            let a = self.client.poll_transmit(&mut buf);
            if a {
                self.server.handle_input(&buf).unwrap();
            }
            let mut buf = Vec::new();
            let b = self.server.poll_transmit(&mut buf);
            if b {
                self.client.handle_input(&buf).unwrap();
            }
            if !a && !b {
                return;
            }
        }
        panic!("pump did not settle");
    }

    fn request(&mut self, msg: impl Into<Message>) -> (u16, Option<Request<u32>>) {
        let tag = self.client.request(msg).unwrap();
        self.pump();
        match self.server.poll_event() {
            Some(Event::Request(r)) => (tag, Some(r)),
            None => (tag, None),
            Some(other) => panic!("unexpected {other:?}"),
        }
    }

    fn reply(&mut self) -> (u16, Result<Message, Errno>) {
        self.pump();
        match self.client.poll_event() {
            Some(ClientEvent::Reply { tag, result }) => (tag, result),
            other => panic!("no reply: {other:?}"),
        }
    }

    fn attach(&mut self, fid: u32) {
        let (_, r) = self.request(Tattach {
            fid,
            afid: NOFID,
            ..Default::default()
        });
        let r = r.unwrap();
        self.server.complete(
            r.id,
            Ok(Reply::WithFid(
                Rattach {
                    qid: Qid::default(),
                }
                .into(),
                Some(100 + fid),
            )),
        );
        assert!(self.reply().1.is_ok());
    }
}

fn getattr(fid: u32) -> Tgetattr {
    Tgetattr {
        fid,
        request_mask: 0,
    }
}

fn fid_of(op: &Op<u32>) -> u32 {
    match op {
        Op::Getattr { fid, .. } | Op::Walk { fid, .. } | Op::Clunk { fid } => *fid,
        other => panic!("unexpected op {other:?}"),
    }
}

#[test]
fn version_negotiates_msize_and_dialect() {
    let p = Pair::new(1 << 20);
    assert_eq!(p.client.msize(), 1 << 20);
    assert_eq!(p.server.msize(), 1 << 20);
    let p = Pair::new(8 << 20);
    assert_eq!(p.client.msize(), 1 << 20, "capped at the server's maximum");

    let mut s = Server::new(ServerConfig::default());
    let mut buf = Vec::new();
    let v = Tversion {
        msize: 8192,
        version: b"9P2000.u".to_vec(),
    };
    encode_frame(NOTAG, &v.into(), &mut buf);
    s.handle_input(&buf).unwrap();
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    let reply = proto_9p::decode_frame(Bytes::from(out)).unwrap();
    assert_eq!(
        reply.msg,
        Message::Rversion(Rversion {
            msize: 8192,
            version: b"unknown".to_vec()
        })
    );
    assert_eq!(s.msize(), 0, "nothing is served after a refused version");
}

#[test]
fn requests_before_version_are_refused_but_session_goes_on() {
    let mut s = Server::new(ServerConfig::default());
    let mut buf = Vec::new();
    encode_frame(1, &Tclunk { fid: 1 }.into(), &mut buf);
    s.handle_input(&buf).unwrap();
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    let reply = proto_9p::decode_frame(Bytes::from(out)).unwrap();
    assert_eq!(reply.tag, 1);
    assert_eq!(
        reply.msg,
        Message::Rlerror(Rlerror {
            ecode: Errno::EPROTO.0
        })
    );
}

#[test]
fn fids_are_resolved_and_unknown_ones_refused() {
    let mut p = Pair::new(65536);
    p.attach(1);
    let (_, r) = p.request(getattr(1));
    let r = r.unwrap();
    assert_eq!(fid_of(&r.op), 101, "the backend handle of fid 1");
    p.server.complete(r.id, Err(Errno::EIO));
    assert_eq!(p.reply().1, Err(Errno::EIO));

    let (_, r) = p.request(getattr(7));
    assert!(r.is_none(), "an unknown fid never reaches the backend");
    assert_eq!(p.reply().1, Err(Errno::EBADF));

    // A second attach on a fid in use is refused.
    let (_, r) = p.request(Tattach {
        fid: 1,
        afid: NOFID,
        ..Default::default()
    });
    assert!(r.is_none());
    assert_eq!(p.reply().1, Err(Errno::EBADF));
}

#[test]
fn walk_creates_newfid_only_when_complete() {
    let mut p = Pair::new(65536);
    p.attach(1);
    let names = vec![b"a".to_vec(), b"b".to_vec()];
    let (_, r) = p.request(Twalk {
        fid: 1,
        newfid: 2,
        wnames: names.clone(),
    });
    let r = r.unwrap();
    // While the walk runs, newfid 2 is reserved.
    let (_, dup) = p.request(Twalk {
        fid: 1,
        newfid: 2,
        wnames: vec![],
    });
    assert!(dup.is_none());
    // The partial walk answers first... in any order: complete the walk.
    let partial = Rwalk {
        wqids: vec![Qid::default()],
    };
    p.server
        .complete(r.id, Ok(Reply::WithFid(partial.into(), None)));
    p.pump();
    let mut replies = Vec::new();
    while let Some(ClientEvent::Reply { result, .. }) = p.client.poll_event() {
        replies.push(result);
    }
    assert_eq!(replies.len(), 2);
    assert!(replies.contains(&Err(Errno::EBADF)));
    // After a partial walk, fid 2 does not exist.
    let (_, r) = p.request(Tclunk { fid: 2 });
    assert!(r.is_none());
    assert_eq!(p.reply().1, Err(Errno::EBADF));

    // A complete walk creates it.
    let (_, r) = p.request(Twalk {
        fid: 1,
        newfid: 2,
        wnames: names,
    });
    let full = Rwalk {
        wqids: vec![Qid::default(); 2],
    };
    p.server
        .complete(r.unwrap().id, Ok(Reply::WithFid(full.into(), Some(202))));
    assert!(p.reply().1.is_ok());
    let (_, r) = p.request(Tclunk { fid: 2 });
    let r = r.unwrap();
    assert_eq!(fid_of(&r.op), 202);
    // Clunk removes the fid at once, before the backend answers.
    let (_, again) = p.request(getattr(2));
    assert!(again.is_none());
    p.server.complete(r.id, Ok(Reply::Msg(Rclunk {}.into())));
    p.pump();
    let mut n = 0;
    while p.client.poll_event().is_some() {
        n += 1;
    }
    assert_eq!(n, 2);
}

#[test]
fn rflush_follows_the_flushed_reply() {
    let mut p = Pair::new(65536);
    p.attach(1);
    let (slow_tag, r) = p.request(getattr(1));
    let slow = r.unwrap();
    let flush_tag = p.client.request(Tflush { oldtag: slow_tag }).unwrap();
    p.pump();
    match p.server.poll_event() {
        Some(Event::Flush { id }) => assert_eq!(id, slow.id),
        other => panic!("expected a flush hint, got {other:?}"),
    }
    // Nothing is answered until the slow request completes.
    assert!(p.client.poll_event().is_none());
    p.server.complete(slow.id, Err(Errno::EINTR));
    p.pump();
    let first = p.client.poll_event();
    let second = p.client.poll_event();
    assert!(
        matches!(first, Some(ClientEvent::Reply { tag, .. }) if tag == slow_tag),
        "{first:?}"
    );
    assert!(
        matches!(second, Some(ClientEvent::Reply { tag, result: Ok(Message::Rflush(_)) }) if tag == flush_tag),
        "{second:?}"
    );
    // Flushing a tag that is not in flight is answered at once.
    let (t, r) = p.request(Tflush { oldtag: 999 });
    assert!(r.is_none());
    assert_eq!(p.reply(), (t, Ok(Message::Rflush(Rflush {}))));
}

#[test]
fn late_answers_after_tversion_are_dropped() {
    let mut p = Pair::new(65536);
    p.attach(1);
    let (_, r) = p.request(getattr(1));
    let r = r.unwrap();
    // A new Tversion resets the session.
    let mut buf = Vec::new();
    encode_frame(
        NOTAG,
        &Tversion {
            msize: 65536,
            version: b"9P2000.L".to_vec(),
        }
        .into(),
        &mut buf,
    );
    p.server.handle_input(&buf).unwrap();
    let mut out = Vec::new();
    p.server.poll_transmit(&mut out);
    p.server.complete(r.id, Err(Errno::EIO));
    let mut out2 = Vec::new();
    assert!(!p.server.poll_transmit(&mut out2), "late answer dropped");
    assert_eq!(p.server.in_flight(), 0);
}

#[test]
fn malformed_messages_fail_their_tag_only() {
    let mut s = Server::new(ServerConfig::default());
    let mut buf = Vec::new();
    encode_frame(
        NOTAG,
        &Tversion {
            msize: 65536,
            version: b"9P2000.L".to_vec(),
        }
        .into(),
        &mut buf,
    );
    // A Tclunk with a truncated body, an unknown type, then a valid frame.
    buf.extend_from_slice(&[9, 0, 0, 0, 120, 5, 0, 1, 2]);
    buf.extend_from_slice(&[7, 0, 0, 0, 250, 6, 0]);
    encode_frame(7, &Tclunk { fid: 3 }.into(), &mut buf);
    s.handle_input(&buf).unwrap();
    let mut out = Vec::new();
    s.poll_transmit(&mut out);
    let mut c = Bytes::from(out);
    let mut replies = Vec::new();
    while !c.is_empty() {
        let len = proto_9p::frame_len(&c, 1 << 20).unwrap().unwrap();
        replies.push(proto_9p::decode_frame(c.split_to(len)).unwrap());
    }
    let errs: Vec<(u16, Message)> = replies.into_iter().map(|f| (f.tag, f.msg)).collect();
    assert_eq!(
        errs[1..],
        [
            (
                5,
                Rlerror {
                    ecode: Errno::EPROTO.0
                }
                .into()
            ),
            (
                6,
                Rlerror {
                    ecode: Errno::ENOSYS.0
                }
                .into()
            ),
            (
                7,
                Rlerror {
                    ecode: Errno::EBADF.0
                }
                .into()
            ),
        ]
    );
}

#[test]
fn broken_framing_ends_the_session() {
    let mut s = Server::new(ServerConfig { max_msize: 8192 });
    assert_eq!(
        s.handle_input(&[3, 0, 0, 0]),
        Err(FramingError::TooShort(3))
    );
    let mut s = Server::new(ServerConfig { max_msize: 8192 });
    assert!(matches!(
        s.handle_input(&[0, 0, 1, 0]),
        Err(FramingError::TooLarge { .. })
    ));
}

#[test]
fn reads_are_clamped_to_msize_and_oversized_replies_become_eio() {
    let mut p = Pair::new(8192);
    p.attach(1);
    let (_, r) = p.request(Tread {
        fid: 1,
        offset: 0,
        count: 1 << 20,
    });
    let r = r.unwrap();
    match &r.op {
        Op::Read { msg, .. } => assert_eq!(msg.count, 8192 - 24),
        other => panic!("{other:?}"),
    }
    let too_big = Rread {
        data: Bytes::from(vec![0u8; 9000]),
    };
    p.server.complete(r.id, Ok(Reply::Msg(too_big.into())));
    assert_eq!(p.reply().1, Err(Errno::EIO));
    // And a reply of the wrong type is a backend bug, reported as EIO.
    let (_, r) = p.request(getattr(1));
    p.server
        .complete(r.unwrap().id, Ok(Reply::Msg(Rclunk {}.into())));
    assert_eq!(p.reply().1, Err(Errno::EIO));
}
