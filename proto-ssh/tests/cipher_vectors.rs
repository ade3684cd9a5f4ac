//! Known-answer tests for the packet ciphers. The expected bytes come from
//! `vectors/gen_cipher_vectors.py`, which builds the OpenSSH constructions
//! from OpenSSL's primitives (Python `cryptography` 48): an independent
//! implementation, not our own code run twice.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

use proto_ssh::cipher::{AesGcm, ChaCha20Poly1305, CipherError, PacketCipher, TAG_LEN};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn array<const N: usize>(s: &str) -> [u8; N] {
    hex(s).try_into().unwrap()
}

// Output of `python3 vectors/gen_cipher_vectors.py`.
const CHACHA_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
const CHACHA_PLAIN: &str =
    "000000200b146368616368612074657374207061796c6f6164a0a1a2a3a4a5a6a7a8a9aa";
const CHACHA_SEQ0: &str = "94450e7913ac2159cc85ceb033153912db633e4681dd9c94850dfafe4f5c59b48d9ddcf626c682a19e058eda51d201f0ddc03435";
const CHACHA_SEQ7: &str = "a39afc8a2352762b2fe0423f4c19de83a3afa34d4dde5f571a439c21e3cebe7927fbaafea4fd1830455e3565720280b0667de01a";
const CHACHA_SEQMAX: &str = "b90ee49002866ff3cf67bc83b642cec106a672cf6fd65677ab8f7adaf18043e6894fbf919528c039d86bfcb1127f67b889e5d8a0";
const CHACHA_LONG_PLAIN: &str = "000000d00700070e151c232a31383f464d545b626970777e858c939aa1a8afb6bdc4cbd2d9e0e7eef5fc030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dce3eaf1f8ff060d141b222930373e454c535a61686f767d848b9299a0a7aeb5bcc3cad1d8dfe6edf4fb020910171e252c333a41484f565d646b727980878e959ca3aab1b8bfc6cdd4dbe2e9f0f7fe050c131a21282f363d444b525960676e757c838a91989fa6adb4bbc2c9d0d7dee5ecf3fa01080f161d242b323940474e555c636a7100010203040506";
const CHACHA_LONG_SEQ3: &str = "fb1a925a87451bb52756875bb977c34cf6b3cd210eac3bb94551ccddaaa2a9de1c714a10a03d5ccaf69f0ce59e75efccf00993ac3e501c5bcddb5eddd0705d442be31a278cb232d83d9c06995de40482101b56dea9201ae3ada039b4fd36d85473bdbf72ae33db2d2fbc657d92cb2270c57dc6df6b9f55faac54fa5914179c1990f42901e886eb186ce39bae11da1ce1ae24f3e18a9ebfd878dd5b59d7cebc6ab6063c7cd472e89d3af56d2b39181f6d2fbc8e463f98ecda2c024ca5318e5b2fc6b2b604860c340f533233ea0a0e78c0092e76d5de135798fa928cda5c9a7b1b90fd3c49";
const GCM_IV: &str = "000102030405060708090a0b";
const GCM_IV_WRAP: &str = "a0a1a2a3ffffffffffffffff";
const GCM_PLAIN: &str = "0000002012057373682d7573657261757468b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1";
const AES256_KEY: &str = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";
const AES128_KEY: &str = "808182838485868788898a8b8c8d8e8f";
const AES256_FIRST: &str = "0000002028001f0b1fa131d3a760e1b7cc857c0a317799bcdafb15ea549b542bff0ea99f23c1624b93cb00782ab51441b53e9135";
const AES256_SECOND: &str = "00000020fef11019675647eae97298201949c19f0ebee0d9bf056bf37ba0bc000fe4e2038b426075440f661eb4f979fc828404f4";
const AES128_FIRST: &str = "0000002028c15220f80060edef1c4a882e631696ea39869d3271270c876d159c9ee10c03e039002748eaff88426ea9b64e2b6d03";
const AES128_SECOND: &str = "000000207455bae9ddd60cf1c00cb4c4a45219754834d1415c417adbf67f55000dbbb4a303d6c20599e752e2a165b476ff95f5a7";
const AES256_WRAP_SECOND: &str = "000000206500439ab5e6a84e9e04157cf64cba22c2e10cb2ed02c5580b7a0c2ade0a60e6dfa09322e24c0286b3e46c82f66492f9";

fn chacha() -> PacketCipher {
    PacketCipher::ChaCha20Poly1305(ChaCha20Poly1305::new(&array(CHACHA_KEY)))
}

fn aes256() -> PacketCipher {
    PacketCipher::AesGcm(AesGcm::new_256(&array(AES256_KEY), &array(GCM_IV)))
}

fn aes128() -> PacketCipher {
    PacketCipher::AesGcm(AesGcm::new_128(&array(AES128_KEY), &array(GCM_IV)))
}

/// Seals `plain` and compares with `expected` (packet then tag), then opens
/// `expected` with a fresh cipher and compares with `plain`.
fn check(
    mut sealer: PacketCipher,
    mut opener: PacketCipher,
    seq: u32,
    plain: &str,
    expected: &str,
) {
    let plain = hex(plain);
    let expected = hex(expected);
    let mut packet = plain.clone();
    let mut tag = [0u8; TAG_LEN];
    sealer.seal(seq, &mut packet, &mut tag).unwrap();
    assert_eq!([&packet[..], &tag[..]].concat(), expected);

    let (sealed, tag) = expected.split_at(expected.len() - TAG_LEN);
    let mut packet = sealed.to_vec();
    let length: [u8; 4] = packet[..4].try_into().unwrap();
    assert_eq!(
        opener.packet_length(seq, length) as usize,
        plain.len() - 4,
        "length readable before the packet is opened"
    );
    opener.open(seq, &mut packet, tag).unwrap();
    assert_eq!(packet, plain);
}

#[test]
fn chacha20_poly1305_openssh() {
    check(chacha(), chacha(), 0, CHACHA_PLAIN, CHACHA_SEQ0);
    check(chacha(), chacha(), 7, CHACHA_PLAIN, CHACHA_SEQ7);
    check(chacha(), chacha(), u32::MAX, CHACHA_PLAIN, CHACHA_SEQMAX);
    check(chacha(), chacha(), 3, CHACHA_LONG_PLAIN, CHACHA_LONG_SEQ3);
}

#[test]
fn aes_gcm_invocation_counter_moves_per_packet() {
    for (mut sealer, mut opener, first, second) in [
        (aes256(), aes256(), AES256_FIRST, AES256_SECOND),
        (aes128(), aes128(), AES128_FIRST, AES128_SECOND),
    ] {
        for expected in [first, second] {
            // The sequence number plays no part in GCM's nonce.
            let mut packet = hex(GCM_PLAIN);
            let mut tag = [0u8; TAG_LEN];
            sealer.seal(99, &mut packet, &mut tag).unwrap();
            assert_eq!([&packet[..], &tag[..]].concat(), hex(expected));
            let expected = hex(expected);
            let (ct, tag) = expected.split_at(expected.len() - TAG_LEN);
            let mut ct = ct.to_vec();
            opener.open(5, &mut ct, tag).unwrap();
            assert_eq!(ct, hex(GCM_PLAIN));
        }
    }
}

#[test]
fn aes_gcm_counter_wraps_keeping_fixed_field() {
    let mut c = PacketCipher::AesGcm(AesGcm::new_256(&array(AES256_KEY), &array(GCM_IV_WRAP)));
    let mut tag = [0u8; TAG_LEN];
    let mut packet = hex(GCM_PLAIN);
    c.seal(0, &mut packet, &mut tag).unwrap();
    let mut packet = hex(GCM_PLAIN);
    c.seal(0, &mut packet, &mut tag).unwrap();
    assert_eq!([&packet[..], &tag[..]].concat(), hex(AES256_WRAP_SECOND));
}

#[test]
fn names_and_sizes() {
    assert_eq!(chacha().name(), "chacha20-poly1305@openssh.com");
    assert_eq!(aes256().name(), "aes256-gcm@openssh.com");
    assert_eq!(aes128().name(), "aes128-gcm@openssh.com");
    assert_eq!(PacketCipher::None.name(), "none");
    assert_eq!(
        [
            chacha().block_size(),
            aes256().block_size(),
            PacketCipher::None.block_size()
        ],
        [8, 16, 8]
    );
    assert_eq!(PacketCipher::None.tag_len(), 0);
}

#[test]
fn wrong_sizes_refused() {
    let mut packet = [0u8; 3];
    assert_eq!(
        chacha().open(0, &mut packet, &[0; TAG_LEN]),
        Err(CipherError::BadLength)
    );
    let mut packet = [0u8; 8];
    assert_eq!(
        aes256().open(0, &mut packet, &[0; 15]),
        Err(CipherError::BadLength)
    );
    assert_eq!(
        PacketCipher::None.seal(0, &mut packet, &mut [0; 1]),
        Err(CipherError::BadLength)
    );
}
