//! Property tests of the packet ciphers: sealing then opening gives the
//! packet back for any key, IV and sequence number, and any flipped bit in
//! length, body or tag is refused with the buffer left undecrypted.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proto_ssh::cipher::{AesGcm, ChaCha20Poly1305, CipherError, PacketCipher, TAG_LEN};

#[derive(Debug, Clone)]
enum Spec {
    ChaCha([u8; 64]),
    Aes128([u8; 16], [u8; 12]),
    Aes256([u8; 32], [u8; 12]),
}

impl Spec {
    fn cipher(&self) -> PacketCipher {
        match self {
            Self::ChaCha(k) => PacketCipher::ChaCha20Poly1305(ChaCha20Poly1305::new(k)),
            Self::Aes128(k, iv) => PacketCipher::AesGcm(AesGcm::new_128(k, iv)),
            Self::Aes256(k, iv) => PacketCipher::AesGcm(AesGcm::new_256(k, iv)),
        }
    }
}

fn chacha_spec() -> impl Strategy<Value = Spec> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut k = [0; 64];
        k[..32].copy_from_slice(&a);
        k[32..].copy_from_slice(&b);
        Spec::ChaCha(k)
    })
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        chacha_spec(),
        (any::<[u8; 16]>(), any::<[u8; 12]>()).prop_map(|(k, iv)| Spec::Aes128(k, iv)),
        (any::<[u8; 32]>(), any::<[u8; 12]>()).prop_map(|(k, iv)| Spec::Aes256(k, iv)),
    ]
}

fn sealed(spec: &Spec, seq: u32, plain: &[u8]) -> (Vec<u8>, [u8; TAG_LEN]) {
    let mut packet = plain.to_vec();
    let mut tag = [0; TAG_LEN];
    spec.cipher().seal(seq, &mut packet, &mut tag).unwrap();
    (packet, tag)
}

proptest! {
    #[test]
    fn round_trip(spec in spec(), seq in any::<u32>(), plain in proptest::collection::vec(any::<u8>(), 4..600)) {
        let (mut packet, tag) = sealed(&spec, seq, &plain);
        let header: [u8; 4] = packet[..4].try_into().unwrap();
        let opener = spec.cipher();
        prop_assert_eq!(
            opener.packet_length(seq, header).to_be_bytes(),
            <[u8; 4]>::try_from(&plain[..4]).unwrap()
        );
        let mut opener = opener;
        opener.open(seq, &mut packet, &tag).unwrap();
        prop_assert_eq!(packet, plain);
    }

    #[test]
    fn any_flipped_bit_is_refused(
        spec in spec(),
        seq in any::<u32>(),
        plain in proptest::collection::vec(any::<u8>(), 4..300),
        bit in any::<prop::sample::Index>(),
    ) {
        let (mut packet, mut tag) = sealed(&spec, seq, &plain);
        let bits = (packet.len() + TAG_LEN) * 8;
        let bit = bit.index(bits);
        if bit / 8 < packet.len() {
            packet[bit / 8] ^= 1 << (bit % 8);
        } else {
            tag[bit / 8 - packet.len()] ^= 1 << (bit % 8);
        }
        let before = packet.clone();
        prop_assert_eq!(spec.cipher().open(seq, &mut packet, &tag), Err(CipherError::BadTag));
        // Nothing was decrypted in place.
        prop_assert_eq!(packet, before);
    }

    #[test]
    fn wrong_sequence_number_is_refused(
        spec in chacha_spec(),
        seq in any::<u32>(),
        other in any::<u32>(),
        plain in proptest::collection::vec(any::<u8>(), 4..100),
    ) {
        // Only chacha: GCM's nonce is its own counter, not the sequence
        // number.
        prop_assume!(seq != other);
        let (mut packet, tag) = sealed(&spec, seq, &plain);
        prop_assert_eq!(spec.cipher().open(other, &mut packet, &tag), Err(CipherError::BadTag));
    }
}
