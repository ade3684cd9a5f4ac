//! The whole protocol between our client and our server, in memory, with
//! simulated time: every kex and cipher, login, a session, rekeying by
//! bytes and by time with data flowing, keepalives, refusals.

#![allow(clippy::unwrap_used)]

mod common;

use core::time::Duration;

use common::{client, key, logged_in, server, RefuseHostKey};
use proto_ssh::channel::{ChannelEvent, ChannelId, ChannelKind, ChannelRequest};
use proto_ssh::connection::{ClientConfig, Error, Event, Keepalive};
use proto_ssh::kex::negotiate::{CipherAlg, KexAlg, NoCommon};
use proto_ssh::pair::Pair;
use proto_ssh::transport::TransportError;

fn kex_done(events: &[Event]) -> Vec<(KexAlg, CipherAlg, bool)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::KexDone { negotiated, first } => {
                Some((negotiated.kex, negotiated.cipher_c2s, *first))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn every_kex_and_cipher_logs_in() {
    for &kex in KexAlg::ALL {
        for &cipher in CipherAlg::ALL {
            let mut c = client("sig_ed25519");
            c.common.prefs.kex = vec![kex];
            c.common.prefs.ciphers = vec![cipher];
            let p = logged_in(c, server("sig_ed25519"));
            assert_eq!(kex_done(&p.client_events), vec![(kex, cipher, true)]);
            assert_eq!(kex_done(&p.server_events), vec![(kex, cipher, true)]);
            assert_eq!(p.client.session_id(), p.server.session_id());
        }
    }
}

#[test]
fn mlkem_is_preferred_and_rsa_user_keys_work() {
    let p = logged_in(client("sig_rsa"), server("sig_rsa"));
    assert_eq!(kex_done(&p.client_events)[0].0, KexAlg::MlKem768X25519);
    let who = p.server_events.iter().find_map(|e| match e {
        Event::Authenticated { user, key } => Some((user.clone(), key.clone())),
        _ => None,
    });
    let (user, signer) = who.unwrap();
    assert_eq!(user, "me");
    assert_eq!(signer.unwrap(), *key("sig_rsa").public_key().key_data());
}

/// Opens a session from the client, accepted by the server; returns
/// (client id, server id).
fn open_session(p: &mut Pair) -> (ChannelId, ChannelId) {
    let cid = p.client.channels().unwrap().open_session().unwrap();
    p.drive(10);
    let sid = p
        .server_events
        .iter()
        .find_map(|e| match e {
            Event::Channel(ChannelEvent::OpenRequest {
                id,
                kind: ChannelKind::Session,
            }) => Some(*id),
            _ => None,
        })
        .unwrap();
    p.server.channels().unwrap().accept_open(sid).unwrap();
    p.drive(10);
    assert!(p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::Channel(ChannelEvent::Opened { id }) if *id == cid)));
    (cid, sid)
}

/// Sends `data` from the client on `cid`, driving the pair, and returns
/// what the server received on `sid` (consumed as it comes).
fn transfer(p: &mut Pair, cid: ChannelId, sid: ChannelId, data: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut at = 0;
    for _ in 0..100_000 {
        if at < data.len() {
            at += p.client.send_data(cid, &data[at..]).unwrap();
        }
        p.step();
        for e in p.server_events.drain(..) {
            if let Event::Channel(ChannelEvent::Data { id, data }) = e {
                assert_eq!(id, sid);
                p.server
                    .channels()
                    .unwrap()
                    .consumed(sid, data.len())
                    .unwrap();
                got.extend_from_slice(&data);
            }
        }
        if got.len() == data.len() {
            break;
        }
        assert!(p.client_error.is_none() && p.server_error.is_none());
    }
    got
}

#[test]
fn exec_session_carries_data_status_and_close() {
    let mut p = logged_in(client("sig_ed25519"), server("sig_ed25519"));
    let (cid, sid) = open_session(&mut p);
    p.client
        .channels()
        .unwrap()
        .send_request(cid, &ChannelRequest::Exec(b"cat".to_vec()), true)
        .unwrap();
    p.drive(10);
    let exec = p.server_events.iter().any(|e| {
        matches!(e, Event::Channel(ChannelEvent::Request { request: ChannelRequest::Exec(c), want_reply: true, .. }) if c == b"cat")
    });
    assert!(exec);
    p.server
        .channels()
        .unwrap()
        .reply_request(sid, true)
        .unwrap();
    p.drive(10);
    assert!(p.client_events.iter().any(|e| matches!(
        e,
        Event::Channel(ChannelEvent::RequestReply { ok: true, .. })
    )));
    let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    assert_eq!(transfer(&mut p, cid, sid, &data), data);
    p.server_events.clear();
    p.client.channels().unwrap().send_eof(cid).unwrap();
    p.server.send_data(sid, b"done").unwrap();
    p.server
        .channels()
        .unwrap()
        .send_request(sid, &ChannelRequest::ExitStatus(3), false)
        .unwrap();
    p.server.channels().unwrap().send_eof(sid).unwrap();
    p.server.channels().unwrap().close(sid).unwrap();
    p.drive(10);
    let tail: Vec<_> = p
        .client_events
        .iter()
        .filter_map(|e| match e {
            Event::Channel(ChannelEvent::Data { .. }) => Some("data"),
            Event::Channel(ChannelEvent::Request {
                request: ChannelRequest::ExitStatus(3),
                ..
            }) => Some("exit"),
            Event::Channel(ChannelEvent::Eof { .. }) => Some("eof"),
            Event::Channel(ChannelEvent::Closed { .. }) => Some("closed"),
            _ => None,
        })
        .collect();
    assert_eq!(tail, ["data", "exit", "eof", "closed"]);
    assert!(p
        .server_events
        .iter()
        .any(|e| matches!(e, Event::Channel(ChannelEvent::Closed { id }) if *id == sid)));
}

#[test]
fn rekey_by_bytes_keeps_data_flowing() {
    let mut c = client("sig_ed25519");
    c.common.rekey.bytes = 64 * 1024;
    let mut s = server("sig_ed25519");
    s.common.rekey.bytes = 96 * 1024;
    let mut p = logged_in(c, s);
    let (cid, sid) = open_session(&mut p);
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(transfer(&mut p, cid, sid, &data), data);
    let rekeys = kex_done(&p.client_events).iter().filter(|k| !k.2).count();
    assert!(
        rekeys >= 5,
        "{rekeys} rekeys, {:?} {:?}",
        p.client_error,
        p.server_error
    );
    assert!(p.client_events.iter().any(|e| matches!(e, Event::Writable)));
}

#[test]
fn rekey_by_time() {
    let mut p = logged_in(client("sig_ed25519"), server("sig_ed25519"));
    let (cid, sid) = open_session(&mut p);
    p.advance(Duration::from_secs(1800));
    p.drive(10);
    assert_eq!(kex_done(&p.client_events).len(), 1);
    p.advance(Duration::from_secs(1801));
    p.drive(10);
    assert_eq!(kex_done(&p.client_events).len(), 2);
    let data = vec![5u8; 100_000];
    assert_eq!(transfer(&mut p, cid, sid, &data), data);
    // The next one is due an hour after the last.
    let next = p.client.poll_timeout().unwrap();
    assert_eq!(next, p.now + Duration::from_secs(3600));
}

fn keepalive_client() -> ClientConfig {
    let mut c = client("sig_ed25519");
    c.common.keepalive = Some(Keepalive {
        interval: Duration::from_secs(1),
        max_missed: 2,
    });
    c
}

#[test]
fn keepalives_answered_keep_the_connection() {
    let mut p = logged_in(keepalive_client(), server("sig_ed25519"));
    for _ in 0..10 {
        p.advance(Duration::from_secs(1));
        p.drive(10);
    }
    assert!(p.client_error.is_none() && !p.client.is_closed());
    // The replies to keepalives are not the application's business.
    assert!(!p
        .client_events
        .iter()
        .any(|e| matches!(e, Event::Channel(ChannelEvent::GlobalReply { .. }))));
}

#[test]
fn keepalives_unanswered_end_the_connection() {
    let mut p = logged_in(keepalive_client(), server("sig_ed25519"));
    for _ in 0..3 {
        p.advance(Duration::from_secs(1));
        p.to_server.clear();
    }
    assert_eq!(p.client_error, Some(Error::Timeout));
    assert!(p.client.is_closed());
}

#[test]
fn refused_host_key_ends_both_sides() {
    let mut c = client("sig_ed25519");
    c.host_key_check = Box::new(RefuseHostKey);
    let mut p = Pair::new(c, server("sig_ed25519"), 3).unwrap();
    p.drive(20);
    assert_eq!(
        p.client_error,
        Some(Error::Transport(TransportError::HostKeyRejected))
    );
    assert!(
        matches!(
            p.server_error,
            Some(Error::Transport(TransportError::PeerDisconnected {
                reason: 9,
                ..
            }))
        ),
        "{:?}",
        p.server_error
    );
    assert!(!p.server.is_authenticated());
}

/// Refuses servers whose software is not `cpu_rs`, and notes what it saw.
struct OnlyOurs(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl proto_ssh::transport::HostKeyCheck for OnlyOurs {
    fn check(&mut self, _key: &ssh_key::public::KeyData) -> bool {
        true
    }
    fn check_software(&mut self, software_version: &[u8]) -> bool {
        if let Ok(mut seen) = self.0.lock() {
            seen.push(software_version.to_vec());
        }
        software_version.starts_with(b"cpu_rs")
    }
}

#[test]
fn the_server_software_is_checked_before_the_key_exchange() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut c = client("sig_ed25519");
    c.host_key_check = Box::new(OnlyOurs(seen.clone()));
    let p = logged_in(c, server("sig_ed25519"));
    assert!(p.client.is_authenticated());
    assert_eq!(*seen.lock().unwrap(), [b"cpu_rs_0.1".to_vec()]);

    seen.lock().unwrap().clear();
    let mut c = client("sig_ed25519");
    c.host_key_check = Box::new(OnlyOurs(seen.clone()));
    let mut s = server("sig_ed25519");
    s.common.software_version = "OpenSSH_9.2p1".into();
    let mut p = Pair::new(c, s, 5).unwrap();
    p.drive(20);
    assert_eq!(*seen.lock().unwrap(), [b"OpenSSH_9.2p1".to_vec()]);
    assert_eq!(
        p.client_error,
        Some(Error::Transport(TransportError::SoftwareRefused))
    );
    // No key exchange, so no key was offered.
    assert!(kex_done(&p.server_events).is_empty());
    assert!(!p.server.is_authenticated());
}

#[test]
fn pq_only_server_refuses_classical_client() {
    let mut c = client("sig_ed25519");
    c.common.prefs.kex = vec![KexAlg::Curve25519];
    let mut s = server("sig_ed25519");
    s.common.prefs = s.common.prefs.pq_only();
    let mut p = Pair::new(c, s, 4).unwrap();
    p.drive(20);
    assert_eq!(
        p.server_error,
        Some(Error::Transport(TransportError::NoCommon(NoCommon::Kex)))
    );
}

#[test]
fn unknown_key_is_refused() {
    let mut p = Pair::new(client("sig_rsa"), server("sig_ed25519"), 5).unwrap();
    p.drive(30);
    assert_eq!(p.client_error, Some(Error::AuthExhausted));
    assert!(!p.server.is_authenticated());
    assert!(p
        .server_events
        .iter()
        .any(|e| matches!(e, Event::AuthRefused { .. })));
}

/// Rekeys the client starts after enough traffic are never rate-limited
/// (issue 17 point 3): a small `RekeyLimit`, as OpenSSH's interop tests
/// set, rekeys more than ten times in no time at all, and is served.
#[test]
fn rekeys_earned_by_traffic_are_not_rate_limited() {
    use proto_ssh::kex::budget::{PEER_REKEYS_PER_WINDOW, REKEY_EARNED_BYTES};
    let mut c = client("sig_ed25519");
    c.common.rekey.bytes = REKEY_EARNED_BYTES + 16 * 1024;
    let mut p = logged_in(c, server("sig_ed25519"));
    let (cid, sid) = open_session(&mut p);
    let data: Vec<u8> = (0..8_000_000u32).map(|i| (i * 13) as u8).collect();
    assert_eq!(transfer(&mut p, cid, sid, &data), data);
    let rekeys = kex_done(&p.client_events).iter().filter(|k| !k.2).count();
    assert!(rekeys > PEER_REKEYS_PER_WINDOW, "{rekeys} rekeys");
    assert_eq!(p.now, Duration::ZERO, "all within one instant");
    assert!(p.server_error.is_none(), "{:?}", p.server_error);
}
