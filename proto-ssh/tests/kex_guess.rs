//! RFC 4253 §7.1 guessed kex packets, in both roles: our `Transport`
//! against a hand-driven peer that sets `first_kex_packet_follows` and
//! sends its guess right behind its KEXINIT, as Dropbear's client does.
//! The guess is right only when the first kex and the first host key
//! algorithms of both KEXINITs match; otherwise exactly one kex packet of
//! the peer is dropped and the exchange goes on with the peer's next one.
//! The peer is written out here (plaintext packets, the exchange hash and
//! signature computed by hand) so that it follows the RFC, not our code.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::key;
use proptest::prelude::*;
use proto_ssh::cipher::PacketCipher;
use proto_ssh::fuzzing::TestRng;
use proto_ssh::kex::keys::{exchange_hash, HashInput};
use proto_ssh::kex::method::{server_exchange, ClientEphemeral};
use proto_ssh::kex::negotiate::{
    encode_kexinit, negotiate, CipherAlg, KexAlg, KexInit, Preferences,
};
use proto_ssh::msg;
use proto_ssh::packet::{Opener, Sealer};
use proto_ssh::sig::{self, SigAlg};
use proto_ssh::transport::{
    AcceptAnyHostKey, RekeyLimits, Transport, TransportConfig, TransportError,
};
use proto_ssh::version::Role;
use proto_ssh::wire::{Put, Reader};

const NOW: Duration = Duration::ZERO;

/// The peer: its identification, and plaintext packets both ways (all
/// the first exchange needs before NEWKEYS).
struct Peer {
    id: &'static [u8],
    other_id: Option<Vec<u8>>,
    sealer: Sealer,
    opener: Opener,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    rng: TestRng,
}

impl Peer {
    fn new() -> Self {
        let id = b"SSH-2.0-guesser_1.0";
        let mut out = id.to_vec();
        out.extend_from_slice(b"\r\n");
        Self {
            id,
            other_id: None,
            sealer: Sealer::new(PacketCipher::None),
            opener: Opener::new(PacketCipher::None),
            inbuf: Vec::new(),
            out,
            rng: TestRng(7),
        }
    }

    fn send(&mut self, payload: &[u8]) {
        self.sealer
            .seal(payload, &mut self.rng, &mut self.out)
            .unwrap();
    }

    /// A KEXINIT for `prefs` with first_kex_packet_follows set (the byte
    /// before the reserved u32), sent; returns its payload.
    fn send_guessing_kexinit(&mut self, role: Role, prefs: &Preferences) -> Vec<u8> {
        let mut p = encode_kexinit(role, prefs, [9; 16], true);
        let at = p.len() - 5;
        p[at] = 1;
        assert!(KexInit::parse(&p).unwrap().first_kex_follows);
        self.send(&p);
        p
    }

    /// Takes what `t` sent; returns the payloads of the whole packets.
    fn receive(&mut self, t: &mut Transport) -> Vec<Vec<u8>> {
        while let Some(b) = t.poll_transmit() {
            self.inbuf.extend_from_slice(&b);
        }
        if self.other_id.is_none() {
            let end = self
                .inbuf
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("identification line");
            self.other_id = Some(self.inbuf[..end].to_vec());
            self.inbuf.drain(..end + 2);
        }
        let mut payloads = Vec::new();
        loop {
            let fed = self.opener.feed(&self.inbuf).unwrap();
            self.inbuf.drain(..fed.consumed);
            match fed.packet {
                Some(p) => payloads.push(p.payload),
                None if fed.consumed == 0 || self.inbuf.is_empty() => return payloads,
                None => {}
            }
        }
    }

    /// Hands what we sent to `t`.
    fn deliver(&mut self, t: &mut Transport) -> Result<(), TransportError> {
        let mut rng = TestRng(11);
        let bytes = std::mem::take(&mut self.out);
        let mut at = 0;
        while at < bytes.len() {
            let (used, up) = t.feed(&bytes[at..], NOW, &mut rng)?;
            assert!(up.is_none(), "nothing goes up during the first exchange");
            at += used;
        }
        Ok(())
    }
}

fn transport(role: Role, prefs: Preferences) -> Transport {
    let host_keys = match role {
        Role::Server => vec![key("sig_ed25519")],
        Role::Client => vec![],
    };
    let config = TransportConfig {
        role,
        prefs,
        host_keys,
        host_key_check: Box::new(AcceptAnyHostKey),
        rekey: RekeyLimits::default(),
        software_version: proto_ssh::version::DEFAULT_SOFTWARE_VERSION.into(),
    };
    Transport::new(config, NOW, &mut TestRng(3)).unwrap()
}

fn prefs(kex: &[KexAlg], host_key: &[SigAlg]) -> Preferences {
    Preferences {
        kex: kex.to_vec(),
        host_key: host_key.to_vec(),
        ciphers: CipherAlg::ALL.to_vec(),
    }
}

fn ecdh_init(q_c: &[u8]) -> Vec<u8> {
    let mut p = vec![msg::KEX_ECDH_INIT];
    p.put_string(q_c);
    p
}

/// Our server against a guessing client with `client` preferences. The
/// client sends KEXINIT and, at once, KEX_ECDH_INIT for its first kex;
/// when `right` is false it sends a second KEX_ECDH_INIT for `agreed`
/// after the server's KEXINIT, as RFC 4253 §7.1 tells it to. The reply
/// must be for the INIT that counts: its signature is checked over an
/// exchange hash the client computes itself.
fn server_meets_guess(client: Preferences, right: bool, agreed: KexAlg) {
    let mut t = transport(Role::Server, Preferences::all(vec![SigAlg::Ed25519]));
    let mut peer = Peer::new();
    let i_c = peer.send_guessing_kexinit(Role::Client, &client);
    let guess = ClientEphemeral::new(client.kex[0], &mut peer.rng);
    peer.send(&ecdh_init(guess.public()));
    peer.deliver(&mut t).unwrap();
    let mut got = peer.receive(&mut t);
    let i_s = got.remove(0);
    assert_eq!(i_s[0], msg::KEXINIT);
    let eph = if right {
        guess
    } else {
        // The server dropped the guess: it has nothing to answer yet.
        assert!(got.is_empty(), "server answered a wrong guess: {got:?}");
        let eph = ClientEphemeral::new(agreed, &mut peer.rng);
        peer.send(&ecdh_init(eph.public()));
        peer.deliver(&mut t).unwrap();
        got = peer.receive(&mut t);
        eph
    };
    assert_eq!(got.len(), 2, "KEX_ECDH_REPLY and NEWKEYS");
    assert_eq!(got[0][0], msg::KEX_ECDH_REPLY);
    assert_eq!(got[1], [msg::NEWKEYS]);
    let mut r = Reader::new(&got[0][1..]);
    let k_s = r.string().unwrap();
    let q_s = r.string().unwrap();
    let signature = r.string().unwrap();
    let q_c = eph.public().to_vec();
    let k = eph.finish(q_s).unwrap();
    let v_s = peer.other_id.clone().unwrap();
    let input = HashInput {
        v_c: peer.id,
        v_s: &v_s,
        i_c: &i_c,
        i_s: &i_s,
        k_s,
        q_c: &q_c,
        q_s,
    };
    sig::verify(k_s, SigAlg::Ed25519, signature, &exchange_hash(&input, &k))
        .expect("the reply answers the INIT that counts");
    peer.send(&[msg::NEWKEYS]);
    peer.deliver(&mut t).unwrap();
    let done = t.poll_kex_done().expect("the exchange finished");
    assert_eq!(done.negotiated.kex, agreed);
    assert!(done.first && done.strict);
}

#[test]
fn server_takes_a_right_guess() {
    let client = prefs(
        &[KexAlg::MlKem768X25519, KexAlg::Curve25519],
        &[SigAlg::Ed25519, SigAlg::RsaSha512],
    );
    server_meets_guess(client, true, KexAlg::MlKem768X25519);
}

/// Dropbear's case: the client's first kex is the one agreed (the server
/// takes the client's order) but not the server's first, so the guess is
/// wrong and Dropbear sends its INIT again.
#[test]
fn server_drops_a_guess_whose_kex_is_not_its_first() {
    let client = prefs(
        &[KexAlg::Curve25519, KexAlg::MlKem768X25519],
        &[SigAlg::Ed25519],
    );
    server_meets_guess(client, false, KexAlg::Curve25519);
}

#[test]
fn server_drops_a_guess_whose_host_key_is_not_its_first() {
    let client = prefs(
        &[KexAlg::MlKem768X25519],
        &[SigAlg::RsaSha512, SigAlg::Ed25519],
    );
    server_meets_guess(client, false, KexAlg::MlKem768X25519);
}

/// A guessing server: KEXINIT with first_kex_packet_follows, then a
/// guessed kex packet numbered `guess` that is no valid KEX_ECDH_REPLY.
/// Returns what our client (`ours`) made of it.
fn client_meets_guess(
    ours: Preferences,
    server: Preferences,
    guess: u8,
) -> (Transport, Peer, Vec<u8>, Result<(), TransportError>) {
    let mut t = transport(Role::Client, ours);
    let mut peer = Peer::new();
    let i_s = peer.send_guessing_kexinit(Role::Server, &server);
    peer.send(&[guess, 0xde, 0xad]);
    let r = peer.deliver(&mut t);
    (t, peer, i_s, r)
}

/// A right guess is the exchange's packet: here a malformed reply, which
/// the client must therefore refuse.
#[test]
fn client_takes_a_right_guess() {
    let ours = prefs(
        &[KexAlg::MlKem768X25519, KexAlg::Curve25519],
        &[SigAlg::Ed25519, SigAlg::EcdsaP256],
    );
    let server = prefs(&[KexAlg::MlKem768X25519], &[SigAlg::Ed25519]);
    let (_, _, _, r) = client_meets_guess(ours, server, msg::KEX_ECDH_REPLY);
    assert!(
        matches!(r, Err(TransportError::Malformed { msg: 31, .. })),
        "{r:?}"
    );
}

/// The agreed kex is the server's first (the only one it has) but not
/// ours: a wrong guess, dropped, and the exchange completes after it.
#[test]
fn client_drops_a_guess_whose_kex_is_not_its_first() {
    client_completes_after_wrong_guess(
        prefs(
            &[KexAlg::MlKem768X25519, KexAlg::Curve25519],
            &[SigAlg::Ed25519],
        ),
        prefs(&[KexAlg::Curve25519], &[SigAlg::Ed25519]),
        KexAlg::Curve25519,
    );
}

#[test]
fn client_drops_a_guess_whose_host_key_is_not_its_first() {
    client_completes_after_wrong_guess(
        prefs(&[KexAlg::Curve25519], &[SigAlg::Ed25519, SigAlg::RsaSha512]),
        prefs(&[KexAlg::Curve25519], &[SigAlg::RsaSha512, SigAlg::Ed25519]),
        KexAlg::Curve25519,
    );
}

fn client_completes_after_wrong_guess(ours: Preferences, server: Preferences, agreed: KexAlg) {
    let (mut t, mut peer, i_s, r) = client_meets_guess(ours, server, msg::KEX_ECDH_REPLY);
    r.unwrap();
    finish_as_server(&mut t, &mut peer, &i_s, agreed);
}

/// A wrong guess is dropped unread: even a number that only a client may
/// send (it belongs to the method the server guessed, not to ours).
#[test]
fn client_drops_a_wrong_guess_whatever_its_number() {
    let ours = prefs(&[KexAlg::MlKem768X25519], &[SigAlg::Ed25519]);
    let server = prefs(
        &[KexAlg::Curve25519, KexAlg::MlKem768X25519],
        &[SigAlg::Ed25519],
    );
    let (mut t, mut peer, i_s, r) = client_meets_guess(ours, server, msg::KEX_ECDH_INIT);
    r.unwrap();
    finish_as_server(&mut t, &mut peer, &i_s, KexAlg::MlKem768X25519);
}

/// The hand-driven server answers our client's KEX_ECDH_INIT for `agreed`
/// and the exchange must finish.
fn finish_as_server(t: &mut Transport, peer: &mut Peer, i_s: &[u8], agreed: KexAlg) {
    let got = peer.receive(t);
    assert_eq!(got.len(), 2, "client KEXINIT and KEX_ECDH_INIT: {got:?}");
    let i_c = &got[0];
    let mut r = Reader::new(&got[1][1..]);
    assert_eq!(got[1][0], msg::KEX_ECDH_INIT);
    let q_c = r.string().unwrap();
    let host_key = key("sig_ed25519");
    let k_s = sig::public_key_blob(host_key.public_key().key_data());
    let (q_s, k) = server_exchange(agreed, q_c, &mut peer.rng).unwrap();
    let v_c = peer.other_id.clone().unwrap();
    let input = HashInput {
        v_c: &v_c,
        v_s: peer.id,
        i_c,
        i_s,
        k_s: &k_s,
        q_c,
        q_s: &q_s,
    };
    let h = exchange_hash(&input, &k);
    let signature = sig::sign(&host_key, SigAlg::Ed25519, &h).unwrap();
    let mut reply = vec![msg::KEX_ECDH_REPLY];
    reply.put_string(&k_s);
    reply.put_string(&q_s);
    reply.put_string(&signature);
    peer.send(&reply);
    peer.send(&[msg::NEWKEYS]);
    peer.deliver(t).unwrap();
    assert_eq!(peer.receive(t), vec![vec![msg::NEWKEYS]]);
    let done = t.poll_kex_done().expect("the exchange finished");
    assert_eq!(done.negotiated.kex, agreed);
}

/// Ordered, non-empty selections from `all`.
fn ordered<T: Copy + std::fmt::Debug + 'static>(
    all: &'static [T],
) -> impl Strategy<Value = Vec<T>> {
    Just(all.to_vec())
        .prop_shuffle()
        .prop_flat_map(|v| (1..=v.len()).prop_map(move |n| v[..n].to_vec()))
}

fn side() -> impl Strategy<Value = Preferences> {
    const HK: &[SigAlg] = &[
        SigAlg::Ed25519,
        SigAlg::EcdsaP256,
        SigAlg::RsaSha512,
        SigAlg::RsaSha256,
    ];
    (ordered(KexAlg::ALL), ordered(HK)).prop_map(|(kex, hk)| prefs(&kex, &hk))
}

fn guessing_kexinit(role: Role, prefs: &Preferences) -> Vec<u8> {
    let mut p = encode_kexinit(role, prefs, [0; 16], true);
    let at = p.len() - 5;
    p[at] = 1;
    p
}

proptest! {
    /// Whoever guesses, both sides judge the guess alike (from the first
    /// names of the two lists, which each side sees), a right guess is
    /// for the agreed method and host key, and without the flag nothing
    /// is dropped.
    #[test]
    fn guess_rule(client in side(), server in side()) {
        let c_init = guessing_kexinit(Role::Client, &client);
        let s_init = guessing_kexinit(Role::Server, &server);
        let at_server = negotiate(Role::Server, &server, &KexInit::parse(&c_init).unwrap());
        let at_client = negotiate(Role::Client, &client, &KexInit::parse(&s_init).unwrap());
        prop_assert_eq!(at_server.is_ok(), at_client.is_ok());
        let (Ok(s), Ok(c)) = (at_server, at_client) else { return Ok(()) };
        prop_assert_eq!((s.kex, s.host_key), (c.kex, c.host_key));
        let firsts_match = client.kex[0] == server.kex[0] && client.host_key[0] == server.host_key[0];
        prop_assert_eq!(s.ignore_guess, !firsts_match);
        prop_assert_eq!(c.ignore_guess, !firsts_match);
        if firsts_match {
            prop_assert_eq!((s.kex, s.host_key), (client.kex[0], client.host_key[0]));
        }
        let mut plain = c_init.clone();
        let at = plain.len() - 5;
        plain[at] = 0;
        let s = negotiate(Role::Server, &server, &KexInit::parse(&plain).unwrap()).unwrap();
        prop_assert!(!s.ignore_guess);
    }
}
