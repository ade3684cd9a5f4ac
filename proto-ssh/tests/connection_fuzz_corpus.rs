//! Replays the `ssh_connection` fuzz corpus (`fuzz/corpus/ssh_connection/`)
//! through `proto_ssh::fuzzing::connection`, with the crypto seam off as
//! under cargo-fuzz. The seeds are transcripts of our own client and
//! server, made by the ignored `generate_seed_corpus`:
//! `cargo test -p proto-ssh --test connection_fuzz_corpus -- --ignored`.

#![allow(clippy::unwrap_used)]

use proto_ssh::channel::{ChannelEvent, ChannelRequest, GlobalRequest};
use proto_ssh::connection::{ClientConfig, Event, ServerConfig};
use proto_ssh::fuzzing::{self, TEST_KEY};
use proto_ssh::kex::negotiate::{CipherAlg, KexAlg};
use proto_ssh::pair::Pair;
use proto_ssh::transport::AcceptAnyHostKey;

include!("../../fuzz/replay.rs");

#[test]
fn replay_ssh_connection() {
    fuzzing::set_crypto_off(true);
    replay("ssh_connection", fuzzing::connection);
}

struct AllowAll;

impl proto_ssh::auth::AuthPolicy for AllowAll {
    fn allow_key(&mut self, _u: &str, _k: &ssh_key::public::KeyData) -> bool {
        true
    }
}

fn pair(kex: KexAlg, cipher: CipherAlg) -> Pair {
    let key = ssh_key::PrivateKey::from_openssh(TEST_KEY).unwrap();
    let mut c = ClientConfig::new("fuzz", vec![key.clone()], Box::new(AcceptAnyHostKey));
    c.common.prefs.kex = vec![kex];
    c.common.prefs.ciphers = vec![cipher];
    let s = ServerConfig::new(vec![key], Box::new(AllowAll));
    Pair::new(c, s, 42).unwrap()
}

/// Runs a session script and returns (client-to-server, server-to-client)
/// transcripts.
fn transcript(kex: KexAlg, cipher: CipherAlg, script: u8) -> (Vec<u8>, Vec<u8>) {
    let mut p = pair(kex, cipher);
    let (mut c2s, mut s2c) = (Vec::new(), Vec::new());
    let mut step = |p: &mut Pair| {
        for _ in 0..50 {
            p.collect();
            if p.to_server.is_empty() && p.to_client.is_empty() {
                break;
            }
            c2s.extend_from_slice(&p.to_server);
            s2c.extend_from_slice(&p.to_client);
            p.deliver_to_server();
            p.deliver_to_client();
        }
    };
    step(&mut p);
    assert!(p.authenticated());
    if script >= 1 {
        let cid = p.client.channels().unwrap().open_session().unwrap();
        step(&mut p);
        let sid = p
            .server_events
            .iter()
            .find_map(|e| match e {
                Event::Channel(ChannelEvent::OpenRequest { id, .. }) => Some(*id),
                _ => None,
            })
            .unwrap();
        p.server.channels().unwrap().accept_open(sid).unwrap();
        step(&mut p);
        let ch = p.client.channels().unwrap();
        ch.send_request(
            cid,
            &ChannelRequest::Env {
                name: "LANG".into(),
                value: b"C".to_vec(),
            },
            false,
        )
        .unwrap();
        if script >= 2 {
            ch.send_request(
                cid,
                &ChannelRequest::PtyReq {
                    term: "xterm".into(),
                    cols: 80,
                    rows: 24,
                    width_px: 0,
                    height_px: 0,
                    modes: vec![0],
                },
                true,
            )
            .unwrap();
        }
        ch.send_request(cid, &ChannelRequest::Exec(b"echo hi".to_vec()), true)
            .unwrap();
        step(&mut p);
        p.client.send_data(cid, b"some input").unwrap();
        if script >= 2 {
            p.client
                .channels()
                .unwrap()
                .send_request(
                    cid,
                    &ChannelRequest::WindowChange {
                        cols: 100,
                        rows: 30,
                        width_px: 0,
                        height_px: 0,
                    },
                    false,
                )
                .unwrap();
            p.client
                .channels()
                .unwrap()
                .send_request(cid, &ChannelRequest::Signal("INT".into()), false)
                .unwrap();
        }
        step(&mut p);
        p.server.send_data(sid, b"hi\n").unwrap();
        let sc = p.server.channels().unwrap();
        sc.send_request(sid, &ChannelRequest::ExitStatus(0), false)
            .unwrap();
        sc.send_eof(sid).unwrap();
        sc.close(sid).unwrap();
        step(&mut p);
    }
    if script >= 3 {
        p.client
            .global_request(
                &GlobalRequest::TcpipForward {
                    address: "127.0.0.1".into(),
                    port: 0,
                },
                true,
            )
            .unwrap();
        p.client.rekey().unwrap();
        step(&mut p);
        p.client
            .global_request(&GlobalRequest::KeepAlive, true)
            .unwrap();
        step(&mut p);
    }
    (c2s, s2c)
}

#[test]
#[ignore = "writes fuzz/corpus/ssh_connection"]
fn generate_seed_corpus() {
    fuzzing::set_crypto_off(true);
    let dir = fuzz_dir("corpus", "ssh_connection");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        (
            KexAlg::MlKem768X25519,
            CipherAlg::ChaCha20Poly1305,
            0u8,
            255u8,
        ),
        (KexAlg::Curve25519, CipherAlg::Aes256Gcm, 1, 255),
        (KexAlg::Curve25519Libssh, CipherAlg::Aes128Gcm, 2, 17),
        (KexAlg::MlKem768X25519, CipherAlg::ChaCha20Poly1305, 3, 255),
        (KexAlg::Curve25519, CipherAlg::ChaCha20Poly1305, 3, 3),
    ];
    for (i, (kex, cipher, script, piece)) in cases.into_iter().enumerate() {
        let (c2s, s2c) = transcript(kex, cipher, script);
        for (mode, name, bytes) in [
            (0u8, "server", &c2s),
            (1, "client", &s2c),
            (2, "server-time", &c2s),
        ] {
            let mut seed = vec![mode, piece];
            seed.extend_from_slice(bytes);
            std::fs::write(
                dir.join(format!("{i:02}-{name}-{}-s{script}", kex.name())),
                seed,
            )
            .unwrap();
        }
    }
}

/// The seeds reach the states they were made for: a server fed a
/// transcript logs the client in and opens its channel.
#[test]
fn seeds_reach_login() {
    fuzzing::set_crypto_off(true);
    let (c2s, _) = transcript(KexAlg::Curve25519, CipherAlg::Aes256Gcm, 1);
    let key = ssh_key::PrivateKey::from_openssh(TEST_KEY).unwrap();
    let s = ServerConfig::new(vec![key], Box::new(AllowAll));
    let mut conn = proto_ssh::connection::Connection::server(
        s,
        core::time::Duration::ZERO,
        Box::new(fuzzing::TestRng(0)),
    )
    .unwrap();
    // No application answers the open here, so the data that follows
    // on the channel ends the connection; what counts is what came first.
    let _ = conn.handle_input(&c2s, core::time::Duration::ZERO);
    let (mut login, mut opened) = (false, false);
    while let Some(e) = conn.poll_event() {
        login |= matches!(e, Event::Authenticated { .. });
        opened |= matches!(e, Event::Channel(ChannelEvent::OpenRequest { .. }));
    }
    assert!(login && opened);
}
