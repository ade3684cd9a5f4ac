//! Fuzz entry point for the channel layer, shared by the cargo-fuzz target
//! `ssh_channels` and the test that replays its corpus.
//!
//! The input drives a client-role and a server-role [`Channels`]: raw
//! messages into either, and every API call with arguments read from the
//! input, with the payloads each side produces carried to the other.
//! Nothing may panic. While no raw message has been injected, the two
//! sides are only driven through the API, and then neither may ever
//! refuse what the other sent: a refusal is a bug in the sender.

use alloc::string::String;
use alloc::vec::Vec;

use super::{ChannelConfig, ChannelEvent, ChannelId, ChannelRequest, Channels, GlobalRequest};
use crate::version::Role;

/// Small limits, so that windows fill, packets split and the channel
/// limit is reached within a few operations.
fn config() -> ChannelConfig {
    ChannelConfig {
        initial_window: 4096,
        max_packet: 512,
        max_channels: 4,
    }
}

/// The input, read a field at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn id(&mut self) -> ChannelId {
        ChannelId(u32::from(self.u8()))
    }

    fn request(&mut self) -> ChannelRequest {
        let n = u32::from(self.u8());
        match n % 11 {
            0 => ChannelRequest::Exec(Vec::from(&b"/bin/true"[..])),
            1 => ChannelRequest::Shell,
            2 => ChannelRequest::PtyReq {
                term: String::from("ansi"),
                cols: 80,
                rows: n,
                width_px: 0,
                height_px: 0,
                modes: Vec::from(&[53, 0, 0, 0, 1, 0][..]),
            },
            3 => ChannelRequest::Env {
                name: String::from("CPUNONCE"),
                value: Vec::from(&b"0123"[..]),
            },
            4 => ChannelRequest::WindowChange {
                cols: n,
                rows: 24,
                width_px: 0,
                height_px: 0,
            },
            5 => ChannelRequest::Signal(String::from("INT")),
            6 => ChannelRequest::ExitStatus(n),
            7 => ChannelRequest::ExitSignal {
                signal: String::from("KILL"),
                core_dumped: n & 1 == 1,
                message: String::from("killed"),
                lang: String::new(),
            },
            8 => ChannelRequest::Subsystem(String::from("sftp")),
            9 => ChannelRequest::KeepAlive,
            _ => ChannelRequest::Unknown {
                name: String::from("x11-req"),
            },
        }
    }

    fn global(&mut self) -> GlobalRequest {
        let n = u32::from(self.u8());
        match n % 4 {
            0 => GlobalRequest::TcpipForward {
                address: String::from("127.0.0.1"),
                port: n >> 2,
            },
            1 => GlobalRequest::CancelTcpipForward {
                address: String::from("127.0.0.1"),
                port: n >> 2,
            },
            2 => GlobalRequest::KeepAlive,
            _ => GlobalRequest::Unknown {
                name: String::from("no-more-sessions@openssh.com"),
            },
        }
    }
}

/// Both ends and whether a raw message has been injected.
struct Harness {
    sides: [Channels; 2],
    tainted: bool,
}

impl Harness {
    /// Carries up to `limit` payloads from side `from` to the other.
    fn carry(&mut self, from: usize, limit: usize) {
        let [client, server] = &mut self.sides;
        let (a, b) = if from == 0 {
            (client, server)
        } else {
            (server, client)
        };
        for _ in 0..limit {
            let Some(p) = a.poll_payload() else { break };
            assert!(
                p.first().is_some_and(|n| (80..=100).contains(n)),
                "payload outside the connection range"
            );
            let res = b.handle_message(&p);
            assert!(
                self.tainted || res.is_ok(),
                "API-driven peer refused {p:?}: {res:?}"
            );
        }
    }

    /// Drains events, checking what holds whatever the input.
    fn drain(&mut self) {
        let max_packet = config().max_packet as usize;
        for side in &mut self.sides {
            while let Some(e) = side.poll_event() {
                match e {
                    ChannelEvent::Data { data, .. } | ChannelEvent::ExtendedData { data, .. } => {
                        assert!(data.len() <= max_packet, "data above our max packet")
                    }
                    ChannelEvent::Closed { id } | ChannelEvent::OpenFailed { id, .. } => {
                        assert!(!side.is_open(id), "freed channel still open")
                    }
                    _ => {}
                }
            }
            assert!(side.len() <= config().max_channels);
        }
    }

    fn step(&mut self, input: &mut Input<'_>) {
        let op = input.u8();
        let s = usize::from(op & 1);
        // Results of API calls are ignored: refusing a misuse is fine.
        match (op >> 1) % 16 {
            0 => {
                let len = usize::from(input.u8());
                let msg = input.bytes(len);
                self.tainted = true;
                let _ = self.side(s).handle_message(msg);
            }
            1 => self.carry(s, usize::MAX),
            2 => {
                let k = input.u8();
                let ch = self.side(s);
                let _ = match k % 3 {
                    0 => ch.open_session(),
                    1 => ch.open_direct_tcpip("127.0.0.1", 22, "10.0.0.1", 4000),
                    _ => ch.open_forwarded_tcpip("127.0.0.1", 17010, "127.0.0.1", 4001),
                };
            }
            3 => {
                let id = input.id();
                let _ = self.side(s).accept_open(id);
            }
            4 => {
                let (id, reason) = (input.id(), input.u8());
                let _ = self.side(s).reject_open(id, u32::from(reason), "refused");
            }
            5 | 6 => {
                let (id, len) = (input.id(), usize::from(input.u16()));
                let data = alloc::vec![0x5a; len];
                let ch = self.side(s);
                let window = ch.send_window(id);
                let res = if (op >> 1) & 1 == 0 {
                    ch.send_extended_data(id, 1, &data)
                } else {
                    ch.send_data(id, &data)
                };
                if let Ok(n) = res {
                    assert_eq!(n, len.min(window), "send took other than the window");
                }
            }
            7 => {
                let id = input.id();
                let _ = self.side(s).send_eof(id);
            }
            8 => {
                let id = input.id();
                let _ = self.side(s).close(id);
            }
            9 => {
                let (id, n) = (input.id(), usize::from(input.u16()));
                let _ = self.side(s).consumed(id, n);
            }
            10 => {
                let (id, want) = (input.id(), input.u8() & 1 == 1);
                let req = input.request();
                let _ = self.side(s).send_request(id, &req, want);
            }
            11 => {
                let (id, ok) = (input.id(), input.u8() & 1 == 1);
                let _ = self.side(s).reply_request(id, ok);
            }
            12 => {
                let want = input.u8() & 1 == 1;
                let req = input.global();
                self.side(s).global_request(&req, want);
            }
            13 => {
                let ok = input.u8() & 1 == 1;
                let port = u32::from(input.u16());
                let _ = self
                    .side(s)
                    .reply_global(ok, Some(port).filter(|p| *p != 0));
            }
            14 => {
                self.carry(0, usize::MAX);
                self.carry(1, usize::MAX);
                self.carry(0, usize::MAX);
            }
            _ => self.carry(s, 1),
        }
        self.drain();
    }

    fn side(&mut self, s: usize) -> &mut Channels {
        let [client, server] = &mut self.sides;
        if s == 0 {
            client
        } else {
            server
        }
    }
}

/// Runs the input; panics only on a broken invariant.
pub fn channels(data: &[u8]) {
    let mut h = Harness {
        sides: [
            Channels::new(Role::Client, config()),
            Channels::new(Role::Server, config()),
        ],
        tainted: false,
    };
    let mut input = Input(data);
    // Bounded by the input: every step reads at least one byte.
    while !input.0.is_empty() {
        h.step(&mut input);
    }
    // Let everything in flight arrive.
    for _ in 0..4 {
        h.carry(0, usize::MAX);
        h.carry(1, usize::MAX);
        h.drain();
    }
}
