//! Regression tests of the message-order guards, each against the attack
//! it stops: Terrapin, connection messages before login, a client's
//! USERAUTH_SUCCESS, and a flood during key exchange.

#![allow(clippy::unwrap_used)]

mod common;

use core::time::Duration;

use common::{client, logged_in, server};
use proto_ssh::channel::GlobalRequest;
use proto_ssh::cipher::PacketCipher;
use proto_ssh::connection::{Connection, Error};
use proto_ssh::fuzzing::TestRng;
use proto_ssh::packet::Sealer;
use proto_ssh::pair::Pair;
use proto_ssh::transport::{Transport, TransportError, MAX_KEX_QUEUE_MSGS};

/// A plaintext packet as a man in the middle would insert it before the
/// first NEWKEYS.
fn plain(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Sealer::new(PacketCipher::None)
        .seal(payload, &mut TestRng(9), &mut out)
        .unwrap();
    out
}

fn unexpected(e: &Option<Error>) -> &'static str {
    match e {
        Some(Error::Transport(TransportError::Unexpected { why, .. })) => why,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// CVE-2023-48795: an IGNORE slipped in before the server's KEXINIT
/// shifts the client's sequence numbers; strict kex must notice.
#[test]
fn terrapin_packet_before_kexinit_is_refused() {
    let mut p = Pair::new(client("sig_ed25519"), server("sig_ed25519"), 1).unwrap();
    p.collect();
    let line_end = p.to_client.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let rest = p.to_client.split_off(line_end);
    p.to_client.extend_from_slice(&plain(&[2, 0, 0, 0, 0]));
    p.to_client.extend_from_slice(&rest);
    p.drive(20);
    assert_eq!(
        unexpected(&p.client_error),
        "strict kex: KEXINIT was not the first packet"
    );
    assert!(!p.client.is_authenticated());
}

/// Strict kex also refuses anything but kex messages during the first
/// exchange (the other half of the Terrapin fix).
#[test]
fn terrapin_packet_during_first_kex_is_refused() {
    let mut p = Pair::new(client("sig_ed25519"), server("sig_ed25519"), 2).unwrap();
    p.collect();
    p.to_client.extend_from_slice(&plain(&[2, 0, 0, 0, 0]));
    p.drive(20);
    assert_eq!(
        unexpected(&p.client_error),
        "strict kex: only key exchange messages in the first exchange"
    );
}

/// A client transport under test control: it does the key exchange and
/// then sends whatever payloads the test wants, skipping login.
struct RawClient {
    t: Transport,
    rng: TestRng,
}

impl RawClient {
    fn new() -> Self {
        let (t, rng) = common::raw_client_transport(11);
        Self { t, rng }
    }

    /// Exchanges bytes with `server` until quiet; returns the server's
    /// error, if it failed, and the payloads that reached us.
    fn run(&mut self, server: &mut Connection) -> (Option<Error>, Vec<Vec<u8>>) {
        let mut err = None;
        let mut got = Vec::new();
        for _ in 0..20 {
            let mut moved = false;
            while let Some(b) = self.t.poll_transmit() {
                moved = true;
                if let Err(e) = server.handle_input(&b, Duration::ZERO) {
                    err.get_or_insert(e);
                }
            }
            while let Some(mut b) = server.poll_transmit() {
                moved = true;
                while !b.is_empty() {
                    match self.t.feed(&b, Duration::ZERO, &mut self.rng) {
                        Ok((used, packet)) => {
                            b.drain(..used);
                            got.extend(packet.map(|p| p.payload));
                        }
                        Err(e) => {
                            got.push(format!("{e}").into_bytes());
                            break;
                        }
                    }
                }
            }
            if !moved {
                break;
            }
        }
        (err, got)
    }

    fn send(&mut self, payload: &[u8]) {
        self.t.send(payload.to_vec(), &mut self.rng).unwrap();
    }
}

fn raw_server() -> Connection {
    Connection::server(server("sig_ed25519"), Duration::ZERO, Box::new(TestRng(3))).unwrap()
}

/// CVE-2025-32433 / CVE-2018-7750: connection-layer messages before
/// login end the connection, and no channel is ever created.
#[test]
fn channel_messages_before_login_are_refused() {
    // CHANNEL_OPEN "session", GLOBAL_REQUEST "tcpip-forward", and a
    // CHANNEL_REQUEST "exec" on a channel never opened.
    let attacks: [&[u8]; 3] = [
        b"\x5a\x00\x00\x00\x07session\x00\x00\x00\x00\x00\x10\x00\x00\x00\x00\x80\x00",
        b"\x50\x00\x00\x00\x0dtcpip-forward\x01\x00\x00\x00\x00\x00\x00\x00\x00",
        b"\x62\x00\x00\x00\x00\x00\x00\x00\x04exec\x00\x00\x00\x00\x02id",
    ];
    for attack in attacks {
        let mut srv = raw_server();
        let mut c = RawClient::new();
        let (err, _) = c.run(&mut srv);
        assert!(err.is_none(), "{err:?}");
        assert!(c.t.session_id().is_some(), "kex finished");
        c.send(attack);
        let (err, got) = c.run(&mut srv);
        assert_eq!(err, Some(Error::NotAuthenticated { msg: attack[0] }));
        assert!(srv.is_closed() && !srv.is_authenticated());
        assert!(srv.channels().is_err());
        // The client was told why: DISCONNECT with PROTOCOL_ERROR (2).
        let told = String::from_utf8_lossy(got.last().unwrap()).into_owned();
        assert!(told.contains("reason 2"), "{told}");
    }
}

/// CVE-2018-10933: a client that claims USERAUTH_SUCCESS gets nowhere.
#[test]
fn client_userauth_success_is_refused() {
    let mut srv = raw_server();
    let mut c = RawClient::new();
    c.run(&mut srv);
    c.send(b"\x05\x00\x00\x00\x0cssh-userauth");
    c.send(&[52]);
    let (err, _) = c.run(&mut srv);
    assert!(
        matches!(
            err,
            Some(Error::Transport(TransportError::Unexpected { msg: 52, .. }))
        ),
        "{err:?}"
    );
    assert!(!srv.is_authenticated());
}

/// CVE-2025-26466: while our key exchange waits for the peer, its
/// requests make answers that wait too; a flood of them is cut off
/// instead of growing memory.
#[test]
fn flood_during_key_exchange_is_cut_off() {
    let mut p = logged_in(client("sig_ed25519"), server("sig_ed25519"));
    p.server.rekey().unwrap();
    p.collect();
    // The server's KEXINIT is held back: the client does not know.
    let held = std::mem::take(&mut p.to_client);
    for _ in 0..MAX_KEX_QUEUE_MSGS + 10 {
        p.client
            .global_request(
                &GlobalRequest::Unknown {
                    name: "flood@example".into(),
                },
                true,
            )
            .unwrap();
    }
    p.collect();
    p.deliver_to_server();
    assert_eq!(
        p.server_error,
        Some(Error::Transport(TransportError::QueueFull))
    );
    drop(held);
}

/// Below the bound, answers wait for the new keys and then all go out.
#[test]
fn answers_held_during_key_exchange_are_sent_after() {
    let mut p = logged_in(client("sig_ed25519"), server("sig_ed25519"));
    p.server.rekey().unwrap();
    p.collect();
    let held = std::mem::take(&mut p.to_client);
    for _ in 0..100 {
        p.client
            .global_request(&GlobalRequest::Unknown { name: "x@y".into() }, true)
            .unwrap();
    }
    p.collect();
    p.deliver_to_server();
    assert!(p.server_error.is_none());
    p.to_client = held;
    p.drive(20);
    let replies = p
        .client_events
        .iter()
        .filter(|e| {
            matches!(
                e,
                proto_ssh::connection::Event::Channel(
                    proto_ssh::channel::ChannelEvent::GlobalReply { ok: false, .. }
                )
            )
        })
        .count();
    assert_eq!(replies, 100);
    assert!(p.client_error.is_none() && p.server_error.is_none());
}

/// RFC 4253 §11: IGNORE and DEBUG are skipped, and a message nobody
/// defines gets UNIMPLEMENTED with its sequence number; the connection
/// goes on.
#[test]
fn ignore_debug_and_unknown_messages() {
    let mut srv = raw_server();
    let mut c = RawClient::new();
    c.run(&mut srv);
    c.send(b"\x02\x00\x00\x00\x03abc");
    c.send(b"\x04\x00\x00\x00\x00\x05hello\x00\x00\x00\x00");
    c.send(&[150, 1, 2, 3]);
    let (err, got) = c.run(&mut srv);
    assert!(err.is_none(), "{err:?}");
    // Strict kex restarted the numbers at NEWKEYS: IGNORE is 0, DEBUG 1,
    // the unknown message 2.
    assert_eq!(got, vec![vec![3, 0, 0, 0, 2]]);
    c.send(b"\x05\x00\x00\x00\x0cssh-userauth");
    let (err, got) = c.run(&mut srv);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(got[0][0], 6, "SERVICE_ACCEPT after all that");
}
