//! Property tests: a model of window accounting between two back-to-back
//! `Channels`, and the request codecs' round trip.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod channel_pair;

use channel_pair::Pair;
use proptest::prelude::*;
use proto_ssh::channel::{
    ChannelConfig, ChannelEvent, ChannelId, ChannelRequest, Channels, GlobalRequest,
};
use proto_ssh::wire::{Reader, WireError};

/// One step of the model, acting on one direction of a session.
#[derive(Debug, Clone)]
enum Op {
    /// The writer offers this many bytes.
    Send(usize),
    /// The reader's application consumes up to this many delivered bytes.
    Consume(usize),
    /// Up to this many messages travel from writer to reader.
    Deliver(usize),
    /// Up to this many messages travel back (window adjusts).
    DeliverBack(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..5000).prop_map(Op::Send),
        (0usize..5000).prop_map(Op::Consume),
        (0usize..8).prop_map(Op::Deliver),
        (0usize..4).prop_map(Op::DeliverBack),
    ]
}

/// The byte at offset `i` of the stream the writer sends.
fn byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// One direction: `w` writes on `wid`, `r` reads on `rid`.
struct Flow {
    initial: usize,
    sent: usize,
    delivered: Vec<u8>,
    consumed: usize,
}

impl Flow {
    fn send(&mut self, w: &mut Channels, wid: ChannelId, n: usize) {
        let data: Vec<u8> = (self.sent..self.sent + n).map(byte).collect();
        let window = w.send_window(wid);
        let taken = w.send_data(wid, &data).unwrap();
        // Takes exactly what the window allows.
        assert_eq!(taken, n.min(window));
        self.sent += taken;
    }

    fn consume(&mut self, r: &mut Channels, rid: ChannelId, n: usize) {
        let n = n.min(self.delivered.len() - self.consumed);
        r.consumed(rid, n).unwrap();
        self.consumed += n;
    }

    /// Moves up to `k` messages from `from` to `to`.
    fn carry(from: &mut Channels, to: &mut Channels, k: usize) {
        for _ in 0..k {
            let Some(p) = from.poll_payload() else { break };
            to.handle_message(&p).unwrap();
        }
    }

    fn collect(&mut self, r: &mut Channels, rid: ChannelId, max_packet: usize) {
        while let Some(e) = r.poll_event() {
            match e {
                ChannelEvent::Data { id, data } => {
                    assert_eq!(id, rid);
                    assert!(!data.is_empty() && data.len() <= max_packet);
                    self.delivered.extend_from_slice(&data);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    fn check(&self, w: &Channels, wid: ChannelId, r: &Channels, rid: ChannelId) {
        // In order, nothing lost or invented so far.
        assert!(self.delivered.len() <= self.sent);
        assert!(self
            .delivered
            .iter()
            .enumerate()
            .all(|(i, b)| *b == byte(i)));
        // Windows never above the initial one (nor "negative": usize).
        assert!(w.send_window(wid) <= self.initial);
        let unread = self.delivered.len() - self.consumed;
        assert!(r.recv_window(rid) + unread <= self.initial);
        // The writer never believes in more window than the reader gave.
        assert!(w.send_window(wid) <= r.recv_window(rid));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn window_accounting(
        initial in 1u32..6000,
        max_packet in 1u32..3000,
        server_writes in any::<bool>(),
        ops in proptest::collection::vec(op(), 0..60),
    ) {
        let mut p = Pair::with_config(ChannelConfig {
            initial_window: initial,
            max_packet,
            max_channels: 4,
        });
        let (c, s) = p.open_session();
        let (w, wid, r, rid) = if server_writes {
            (&mut p.server, s, &mut p.client, c)
        } else {
            (&mut p.client, c, &mut p.server, s)
        };
        let mut f = Flow { initial: initial as usize, sent: 0, delivered: vec![], consumed: 0 };
        let mp = max_packet as usize;
        for op in ops {
            match op {
                Op::Send(n) => f.send(w, wid, n),
                Op::Consume(n) => f.consume(r, rid, n),
                Op::Deliver(k) => Flow::carry(w, r, k),
                Op::DeliverBack(k) => Flow::carry(r, w, k),
            }
            f.collect(r, rid, mp);
            while let Some(e) = w.poll_event() {
                prop_assert_eq!(e, ChannelEvent::Writable { id: wid });
            }
            f.check(w, wid, r, rid);
        }

        // A reader that keeps consuming gets every byte offered.
        let target = f.sent + 20_000;
        for _ in 0..100_000 {
            if f.delivered.len() == target {
                break;
            }
            let shut = w.send_window(wid) == 0;
            if f.sent < target {
                f.send(w, wid, target - f.sent);
            }
            Flow::carry(w, r, usize::MAX);
            f.collect(r, rid, mp);
            f.consume(r, rid, usize::MAX);
            Flow::carry(r, w, usize::MAX);
            let mut got_writable = false;
            while let Some(e) = w.poll_event() {
                prop_assert_eq!(e, ChannelEvent::Writable { id: wid });
                got_writable = true;
            }
            // A window that reopened from zero is announced.
            if shut && w.send_window(wid) > 0 {
                prop_assert!(got_writable);
            }
            f.check(w, wid, r, rid);
            // Quiet in both directions: both views of the window agree.
            prop_assert_eq!(w.send_window(wid), r.recv_window(rid));
        }
        prop_assert_eq!(f.delivered.len(), target);
    }
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..40)
}

fn unknown_name() -> impl Strategy<Value = String> {
    "[a-z0-9-]{1,12}@example\\.org"
}

fn channel_request() -> impl Strategy<Value = ChannelRequest> {
    prop_oneof![
        bytes().prop_map(ChannelRequest::Exec),
        Just(ChannelRequest::Shell),
        (text(), any::<[u32; 4]>(), bytes()).prop_map(|(term, [cols, rows, w, h], modes)| {
            ChannelRequest::PtyReq {
                term,
                cols,
                rows,
                width_px: w,
                height_px: h,
                modes,
            }
        }),
        (text(), bytes()).prop_map(|(name, value)| ChannelRequest::Env { name, value }),
        any::<[u32; 4]>().prop_map(|[cols, rows, w, h]| ChannelRequest::WindowChange {
            cols,
            rows,
            width_px: w,
            height_px: h
        }),
        text().prop_map(ChannelRequest::Signal),
        any::<u32>().prop_map(ChannelRequest::ExitStatus),
        (text(), any::<bool>(), text(), text()).prop_map(|(signal, core_dumped, message, lang)| {
            ChannelRequest::ExitSignal {
                signal,
                core_dumped,
                message,
                lang,
            }
        }),
        text().prop_map(ChannelRequest::Subsystem),
        Just(ChannelRequest::KeepAlive),
        unknown_name().prop_map(|name| ChannelRequest::Unknown { name }),
    ]
}

fn global_request() -> impl Strategy<Value = GlobalRequest> {
    prop_oneof![
        (text(), any::<u32>())
            .prop_map(|(address, port)| GlobalRequest::TcpipForward { address, port }),
        (text(), any::<u32>())
            .prop_map(|(address, port)| GlobalRequest::CancelTcpipForward { address, port }),
        Just(GlobalRequest::KeepAlive),
        unknown_name().prop_map(|name| GlobalRequest::Unknown { name }),
    ]
}

proptest! {
    #[test]
    fn channel_request_round_trip(req in channel_request(), want_reply in any::<bool>()) {
        let mut wire = Vec::new();
        req.encode(want_reply, &mut wire);
        let mut r = Reader::new(&wire);
        prop_assert_eq!(ChannelRequest::decode(&mut r).unwrap(), (req.clone(), want_reply));
        // A known request is read to its last byte: one more is refused.
        if !matches!(req, ChannelRequest::Unknown { .. }) {
            wire.push(0);
            prop_assert_eq!(
                ChannelRequest::decode(&mut Reader::new(&wire)),
                Err(WireError::TrailingBytes)
            );
        }
        // Every strict prefix is refused (unknown ones need the name and flag).
        for cut in 0..wire.len() - 1 {
            let res = ChannelRequest::decode(&mut Reader::new(&wire[..cut]));
            if !matches!(req, ChannelRequest::Unknown { .. }) || cut < 5 + req.name().len() {
                prop_assert!(res.is_err(), "prefix {} decoded", cut);
            }
        }
    }

    #[test]
    fn global_request_round_trip(req in global_request(), want_reply in any::<bool>()) {
        let mut wire = Vec::new();
        req.encode(want_reply, &mut wire);
        let mut r = Reader::new(&wire);
        prop_assert_eq!(GlobalRequest::decode(&mut r).unwrap(), (req.clone(), want_reply));
        if !matches!(req, GlobalRequest::Unknown { .. }) {
            wire.push(0);
            prop_assert_eq!(
                GlobalRequest::decode(&mut Reader::new(&wire)),
                Err(WireError::TrailingBytes)
            );
        }
    }

    /// The same requests travel through a pair of `Channels` unchanged.
    #[test]
    fn requests_through_a_pair(reqs in proptest::collection::vec(channel_request(), 1..8)) {
        let mut p = Pair::new();
        let (c, s) = p.open_session();
        for r in &reqs {
            p.client.send_request(c, r, false).unwrap();
        }
        p.pump();
        for r in reqs {
            prop_assert_eq!(
                p.server.poll_event(),
                Some(ChannelEvent::Request { id: s, request: r, want_reply: false })
            );
        }
    }
}
