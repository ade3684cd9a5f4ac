//! Entry points shared by the cargo-fuzz targets (`fuzz/fuzz_targets/`) and
//! by the tests that replay their seed corpus (`tests/fuzz_corpus.rs`).
//! Each one runs the code over arbitrary bytes and panics when an
//! invariant breaks.

use alloc::vec::Vec;
use rand_core::{CryptoRng, RngCore};

use crate::cipher::{AesGcm, ChaCha20Poly1305, PacketCipher};
use crate::packet::{Opener, Sealer, PACKET_MAX_SIZE};

/// The fixed chacha key the fuzz target opens packets with; seeds sealed
/// under it get past the tag check.
pub const CHACHA_KEY: [u8; 64] = {
    let mut k = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        k[i] = i as u8;
        i += 1;
    }
    k
};

/// A deterministic generator for padding in fuzzing and tests.
///
/// It is NOT cryptographically secure; `CryptoRng` is claimed only so that
/// it can stand in for the caller's generator where the output does not
/// need to be secret. It exists behind the `fuzzing` feature only.
#[derive(Debug, Clone)]
pub struct TestRng(pub u64);

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let n = chunk.len();
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..n]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

/// The chacha cipher under [`CHACHA_KEY`].
pub fn chacha() -> PacketCipher {
    PacketCipher::ChaCha20Poly1305(ChaCha20Poly1305::new(&CHACHA_KEY))
}

/// Input: one byte choosing the piece size (1..=256), then a byte stream.
///
/// The stream is opened as incoming packets under `none` and under chacha
/// with [`CHACHA_KEY`], fed in pieces of that size; every packet opened
/// under `none` is then sealed again, under each cipher, and opened back.
pub fn packet(data: &[u8]) {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece) + 1;
    let plain = open_stream(PacketCipher::None, stream, piece);
    open_stream(chacha(), stream, piece);

    // What was read must survive a round trip under every cipher.
    let ciphers: [fn() -> PacketCipher; 4] = [
        || PacketCipher::None,
        chacha,
        || PacketCipher::AesGcm(AesGcm::new_128(&[7; 16], &[1; 12])),
        || PacketCipher::AesGcm(AesGcm::new_256(&[9; 32], &[u8::MAX; 12])),
    ];
    for make in ciphers {
        let mut sealer = Sealer::new(make());
        let mut rng = TestRng(piece as u64);
        let mut wire = Vec::new();
        for payload in &plain {
            #[allow(clippy::unwrap_used)] // Payloads that were opened fit.
            sealer.seal(payload, &mut rng, &mut wire).unwrap();
        }
        let back = open_stream(make(), &wire, piece);
        assert_eq!(back, plain, "round trip under {}", sealer.cipher().name());
    }
}

/// Feeds `stream` in pieces of `piece` bytes to an opener, checking its
/// invariants, until the stream ends or is refused; returns the payloads.
fn open_stream(cipher: PacketCipher, stream: &[u8], piece: usize) -> Vec<Vec<u8>> {
    let tag_len = cipher.tag_len();
    let mut opener = Opener::new(cipher);
    let mut payloads = Vec::new();
    for mut chunk in stream.chunks(piece) {
        while !chunk.is_empty() {
            let seq = opener.seq();
            let Ok(fed) = opener.feed(chunk) else {
                assert!(opener.feed(chunk).is_err(), "an error is final");
                return payloads;
            };
            assert!(fed.consumed > 0 && fed.consumed <= chunk.len());
            assert!(opener.buffered() <= 4 + PACKET_MAX_SIZE as usize + tag_len);
            chunk = &chunk[fed.consumed..];
            if let Some(packet) = fed.packet {
                assert_eq!(packet.seq, seq);
                assert_eq!(opener.seq(), seq.wrapping_add(1));
                assert_eq!(opener.buffered(), 0);
                assert!(packet.payload.len() < PACKET_MAX_SIZE as usize);
                payloads.push(packet.payload);
            }
        }
    }
    payloads
}

/// Turns the crypto seam off (or on) for this process: signatures go
/// unchecked and NEWKEYS leaves packets in the clear. For the tests that
/// make and replay the connection corpus; cargo-fuzz builds have it off
/// always.
pub static CRYPTO_OFF: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Sets [`CRYPTO_OFF`].
pub fn set_crypto_off(off: bool) {
    CRYPTO_OFF.store(off, core::sync::atomic::Ordering::Relaxed);
}

/// The Ed25519 key the connection target uses as host key and user key.
pub const TEST_KEY: &str = include_str!("../tests/keys/sig_ed25519");

/// Lets every key and `none` in.
#[derive(Debug)]
struct AllowAll;

impl crate::auth::AuthPolicy for AllowAll {
    fn allow_key(&mut self, _user: &str, _key: &ssh_key::public::KeyData) -> bool {
        true
    }
    fn allow_none(&mut self, _user: &str) -> bool {
        true
    }
}

/// Input: a mode byte (bit 0: play the client instead of the server;
/// bit 1: let time pass between pieces), a piece-size byte, then the
/// peer's byte stream, fed in pieces of that size with the crypto seam
/// off. The connection answers like an application would: it accepts
/// channels, grants requests, echoes data. It must never panic, an error
/// must be final, and channels must exist only after login.
pub fn connection(data: &[u8]) {
    use crate::connection::{ClientConfig, Connection, Event, ServerConfig};
    use core::time::Duration;

    set_crypto_off(true);
    let (Some(&mode), Some(&piece)) = (data.first(), data.get(1)) else {
        return;
    };
    let stream = &data[2..];
    let piece = usize::from(piece) + 1;
    let Ok(key) = ssh_key::PrivateKey::from_openssh(TEST_KEY) else {
        return;
    };
    let rng = alloc::boxed::Box::new(TestRng(u64::from(mode)));
    let made = if mode & 1 == 0 {
        let config = ServerConfig::new(alloc::vec![key], alloc::boxed::Box::new(AllowAll));
        Connection::server(config, Duration::ZERO, rng)
    } else {
        let config = ClientConfig::new(
            "fuzz",
            alloc::vec![key],
            alloc::boxed::Box::new(crate::transport::AcceptAnyHostKey),
        );
        Connection::client(config, Duration::ZERO, rng)
    };
    let Ok(mut conn) = made else { return };
    let mut now = Duration::ZERO;
    let mut logged_in = false;
    for chunk in stream.chunks(piece) {
        if mode & 2 != 0 {
            now += Duration::from_secs(600);
            let _ = conn.handle_timeout(now);
        }
        let result = conn.handle_input(chunk, now);
        while conn.poll_transmit().is_some() {}
        while let Some(ev) = conn.poll_event() {
            match ev {
                Event::Authenticated { .. } => logged_in = true,
                Event::Channel(ev) => {
                    assert!(logged_in, "channel event before login");
                    answer(&mut conn, ev);
                }
                _ => {}
            }
        }
        if conn.is_authenticated() {
            assert!(logged_in, "logged in without saying so");
        } else {
            assert!(conn.channels().is_err());
        }
        if result.is_err() {
            assert!(conn.is_closed(), "an error closes");
            assert!(conn.handle_input(chunk, now).is_err() || chunk.is_empty() || conn.is_closed());
            return;
        }
    }
}

/// What an application does with a channel event in the fuzz target.
fn answer(conn: &mut crate::connection::Connection, ev: crate::channel::ChannelEvent) {
    use crate::channel::ChannelEvent as E;
    match ev {
        E::OpenRequest { id, .. } => {
            if let Ok(c) = conn.channels() {
                let _ = c.accept_open(id);
            }
        }
        E::Request {
            id,
            want_reply: true,
            ..
        } => {
            if let Ok(c) = conn.channels() {
                let _ = c.reply_request(id, true);
            }
        }
        E::GlobalRequest {
            want_reply: true, ..
        } => {
            if let Ok(c) = conn.channels() {
                let _ = c.reply_global(true, Some(2222));
            }
        }
        E::Data { id, data } => {
            if let Ok(c) = conn.channels() {
                let _ = c.consumed(id, data.len());
            }
            let _ = conn.send_data(id, &data);
        }
        E::Eof { id } => {
            if let Ok(c) = conn.channels() {
                let _ = c.send_eof(id);
                let _ = c.close(id);
            }
        }
        _ => {}
    }
}

/// The ssh-agent codec over arbitrary bytes: frames are split off one
/// after another, and every payload that parses must encode back to
/// exactly its frame (the codec is a bijection on what it accepts).
pub fn agent(data: &[u8]) {
    use crate::agent::{split_frame, Message};
    let mut rest = data;
    while let Ok(Some((payload, used))) = split_frame(rest) {
        if let Ok(m) = Message::decode(payload) {
            assert_eq!(m.encode(), rest[..used], "re-encoding differs");
        }
        rest = &rest[used..];
    }
}
