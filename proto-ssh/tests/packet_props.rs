//! Tests of the binary packet protocol: round trips through any chunking
//! under every cipher, the length checks made on the 4-byte header alone,
//! padding checks, and cipher changes between packets.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proto_ssh::cipher::{AesGcm, CipherError, PacketCipher, TAG_LEN};
use proto_ssh::fuzzing::{chacha, TestRng};
use proto_ssh::packet::{Opener, Packet, PacketError, Sealer, PACKET_MAX_SIZE};

fn cipher(kind: u8) -> PacketCipher {
    match kind % 4 {
        0 => PacketCipher::None,
        1 => chacha(),
        2 => PacketCipher::AesGcm(AesGcm::new_128(&[3; 16], &[4; 12])),
        _ => PacketCipher::AesGcm(AesGcm::new_256(&[5; 32], &[6; 12])),
    }
}

/// Feeds `wire` in pieces whose sizes cycle through `pieces`.
fn open_all(
    opener: &mut Opener,
    wire: &[u8],
    pieces: &[usize],
) -> Result<Vec<Packet>, PacketError> {
    let mut out = Vec::new();
    let mut rest = wire;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).min(rest.len());
        let mut chunk = &rest[..n];
        rest = &rest[n..];
        while !chunk.is_empty() {
            let fed = opener.feed(chunk)?;
            assert!(fed.consumed > 0);
            chunk = &chunk[fed.consumed..];
            out.extend(fed.packet);
        }
    }
    Ok(out)
}

/// A 4-byte header that `cipher` reads as `length` for sequence number 0.
fn header_for(cipher: &PacketCipher, length: u32) -> [u8; 4] {
    // Every cipher here reads the length as the header XOR a keystream
    // (empty for none and GCM), which reading zeros reveals.
    let mask = cipher.packet_length(0, [0; 4]);
    (length ^ mask).to_be_bytes()
}

proptest! {
    #[test]
    fn round_trip_any_chunking(
        kind in any::<u8>(),
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 1..8),
        pieces in proptest::collection::vec(1usize..300, 1..10),
        seed in any::<u64>(),
    ) {
        let mut sealer = Sealer::new(cipher(kind));
        let mut rng = TestRng(seed);
        let mut wire = Vec::new();
        let block = sealer.cipher().block_size();
        let separate = sealer.cipher().length_is_separate();
        let tag_len = sealer.cipher().tag_len();
        for (i, p) in payloads.iter().enumerate() {
            let start = wire.len();
            prop_assert_eq!(sealer.seal(p, &mut rng, &mut wire).unwrap(), i as u32);
            // The framing rules, on what was sealed.
            let total = wire.len() - start - tag_len;
            let length = total - 4;
            prop_assert_eq!(if separate { length } else { total } % block, 0);
            let padding = length - 1 - p.len();
            prop_assert!((4..4 + block).contains(&padding));
        }
        let mut opener = Opener::new(cipher(kind));
        let packets = open_all(&mut opener, &wire, &pieces).unwrap();
        prop_assert_eq!(packets.len(), payloads.len());
        for (i, (packet, payload)) in packets.iter().zip(&payloads).enumerate() {
            prop_assert_eq!(packet.seq, i as u32);
            prop_assert_eq!(&packet.payload, payload);
        }
        prop_assert_eq!(opener.buffered(), 0);
    }

    #[test]
    fn tampered_stream_refused(
        kind in 1u8..4,
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut wire = Vec::new();
        Sealer::new(cipher(kind)).seal(&payload, &mut TestRng(1), &mut wire).unwrap();
        let bit = bit.index(wire.len() * 8);
        wire[bit / 8] ^= 1 << (bit % 8);
        let mut opener = Opener::new(cipher(kind));
        // A changed length fails its checks or the tag; anything else the tag.
        let result = open_all(&mut opener, &wire, &[wire.len()]);
        prop_assert!(!matches!(result, Ok(ref v) if !v.is_empty()));
        if bit >= 32 {
            prop_assert_eq!(result, Err(PacketError::Cipher(CipherError::BadTag)));
        }
    }

    #[test]
    fn lengths_checked_on_the_header_alone(kind in any::<u8>(), length in any::<u32>()) {
        let c = cipher(kind);
        let block = c.block_size() as u32;
        let covered = if c.length_is_separate() { length } else { length.wrapping_add(4) };
        let expected = if length > PACKET_MAX_SIZE {
            Some(PacketError::TooLong(length))
        } else if length < 5 {
            Some(PacketError::TooShort(length))
        } else if covered % block != 0 {
            Some(PacketError::Misaligned { length, block_size: block as usize })
        } else {
            None
        };
        let header = header_for(&c, length);
        let mut opener = Opener::new(c);
        let fed = opener.feed(&header);
        match expected {
            Some(e) => prop_assert_eq!(fed, Err(e)),
            None => {
                prop_assert_eq!(fed.unwrap().consumed, 4);
                prop_assert_eq!(opener.buffered(), 4);
            }
        }
    }
}

#[test]
fn oversize_refused_before_buffering() {
    for kind in 0..4 {
        let c = cipher(kind);
        let mut opener = Opener::new(cipher(kind));
        let header = header_for(&c, PACKET_MAX_SIZE + 1);
        // Three bytes are only held; the fourth completes the header and
        // the length is refused there, whatever follows.
        assert_eq!(opener.feed(&header[..3]).unwrap().consumed, 3);
        assert_eq!(opener.buffered(), 3);
        let mut rest = header[3..].to_vec();
        rest.resize(1 << 20, 0);
        assert_eq!(
            opener.feed(&rest),
            Err(PacketError::TooLong(PACKET_MAX_SIZE + 1))
        );
        assert_eq!(opener.buffered(), 0);
        assert_eq!(opener.feed(b"x"), Err(PacketError::Failed));
    }
}

#[test]
fn largest_packet_accepted() {
    for kind in 0..4 {
        let mut sealer = Sealer::new(cipher(kind));
        let mut wire = Vec::new();
        let too_big = vec![1u8; PACKET_MAX_SIZE as usize];
        assert_eq!(
            sealer.seal(&too_big, &mut TestRng(0), &mut wire),
            Err(PacketError::PayloadTooLarge(too_big.len()))
        );
        assert!(wire.is_empty());
        // The largest payload that fits with 4+ bytes of padding.
        let max = PACKET_MAX_SIZE as usize - 1 - 4 - 16;
        sealer
            .seal(&vec![2u8; max], &mut TestRng(0), &mut wire)
            .unwrap();
        let mut opener = Opener::new(cipher(kind));
        let packets = open_all(&mut opener, &wire, &[65536]).unwrap();
        assert_eq!(packets[0].payload.len(), max);
    }
}

/// A `none` packet with `length` and `padding` written by hand.
fn raw_none(length: u32, padding: u8) -> Vec<u8> {
    let mut wire = length.to_be_bytes().to_vec();
    wire.push(padding);
    wire.resize(4 + length as usize, 0);
    wire
}

#[test]
fn bad_padding_refused() {
    for (padding, ok) in [
        (0, false),
        (3, false),
        (4, true),
        (11, true),
        (12, false),
        (255, false),
    ] {
        let mut opener = Opener::new(PacketCipher::None);
        let result = open_all(&mut opener, &raw_none(12, padding), &[100]);
        if ok {
            assert_eq!(result.unwrap()[0].payload.len(), 11 - usize::from(padding));
        } else {
            assert_eq!(
                result,
                Err(PacketError::BadPadding {
                    padding,
                    length: 12
                })
            );
        }
    }
    // Under chacha too: the padding is checked once the tag has passed.
    let mut c = chacha();
    let mut packet = 8u32.to_be_bytes().to_vec();
    packet.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
    let mut tag = [0; TAG_LEN];
    c.seal(0, &mut packet, &mut tag).unwrap();
    packet.extend_from_slice(&tag);
    let mut opener = Opener::new(chacha());
    assert_eq!(
        open_all(&mut opener, &packet, &[1]),
        Err(PacketError::BadPadding {
            padding: 3,
            length: 8
        })
    );
}

#[test]
fn cipher_changes_between_packets() {
    // NEWKEYS in clear, then a packet under chacha, in one read.
    let mut rng = TestRng(9);
    let mut sealer = Sealer::new(PacketCipher::None);
    let mut wire = Vec::new();
    sealer.seal(&[21], &mut rng, &mut wire).unwrap();
    sealer.set_cipher(chacha());
    sealer.reset_seq();
    sealer.seal(b"\x05after", &mut rng, &mut wire).unwrap();

    let mut opener = Opener::new(PacketCipher::None);
    let fed = opener.feed(&wire).unwrap();
    assert_eq!(fed.packet.unwrap().payload, [21]);
    assert_eq!(opener.seq(), 1);
    opener.set_cipher(chacha());
    opener.reset_seq();
    let fed2 = opener.feed(&wire[fed.consumed..]).unwrap();
    assert_eq!(fed.consumed + fed2.consumed, wire.len());
    let packet = fed2.packet.unwrap();
    assert_eq!((packet.seq, &packet.payload[..]), (0, &b"\x05after"[..]));
}

#[test]
fn smallest_packets() {
    // An empty payload: 16 bytes under none, 12 + tag under chacha, 20 +
    // tag under GCM.
    for (kind, len) in [(0, 16), (1, 12 + 16), (2, 20 + 16)] {
        let mut wire = Vec::new();
        Sealer::new(cipher(kind))
            .seal(&[], &mut TestRng(0), &mut wire)
            .unwrap();
        assert_eq!(wire.len(), len);
    }
}
