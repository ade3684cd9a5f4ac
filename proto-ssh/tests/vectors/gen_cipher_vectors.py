#!/usr/bin/env python3
"""Known-answer vectors for tests/cipher_vectors.rs, computed with the
`cryptography` package (OpenSSL's ChaCha20, Poly1305 and AES-GCM), following
OpenSSH's PROTOCOL.chacha20poly1305 and RFC 5647 independently of our Rust
code. Documentation only: CI does not run it; its output is pasted into the
test. Run: python3 gen_cipher_vectors.py
"""
import struct
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.poly1305 import Poly1305
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def chacha(key, seq, counter, data):
    # OpenSSL's 16-byte IV is a 32-bit little-endian block counter then a
    # 96-bit nonce; with the counter's high bits zero that equals original
    # ChaCha20's 64-bit counter then the 64-bit nonce (here big-endian seq).
    iv = struct.pack("<Q", counter) + struct.pack(">Q", seq)
    return Cipher(algorithms.ChaCha20(key, iv), mode=None).encryptor().update(data)


def chachapoly_seal(key64, seq, packet):
    k2, k1 = key64[:32], key64[32:]
    enc_len = chacha(k1, seq, 0, packet[:4])
    poly_key = chacha(k2, seq, 0, b"\0" * 32)
    enc_body = chacha(k2, seq, 1, packet[4:])
    out = enc_len + enc_body
    return out + Poly1305.generate_tag(poly_key, out)


def gcm_seal(key, iv, packet):
    ct_tag = AESGCM(key).encrypt(iv, packet[4:], packet[:4])
    return packet[:4] + ct_tag


def plain_packet(payload, padding, block, length_separate):
    body = bytes([len(padding)]) + payload + padding
    pkt = struct.pack(">I", len(body)) + body
    assert (len(body) if length_separate else len(pkt)) % block == 0
    return pkt


def rust(name, data):
    print(f"const {name}: &str = \"{data.hex()}\";")


chacha_key = bytes(range(64))
# KEXINIT-like payload, 8-byte blocks, length outside the blocks.
p1 = plain_packet(b"\x14" + b"chacha test payload", bytes(range(0xA0, 0xA0 + 11)), 8, True)
rust("CHACHA_KEY", chacha_key)
rust("CHACHA_PLAIN", p1)
rust("CHACHA_SEQ0", chachapoly_seal(chacha_key, 0, p1))
rust("CHACHA_SEQ7", chachapoly_seal(chacha_key, 7, p1))
rust("CHACHA_SEQMAX", chachapoly_seal(chacha_key, 0xFFFFFFFF, p1))

# A longer packet, several ChaCha20 blocks.
p2 = plain_packet(bytes((i * 7) & 0xFF for i in range(200)), bytes(range(7)), 8, True)
rust("CHACHA_LONG_PLAIN", p2)
rust("CHACHA_LONG_SEQ3", chachapoly_seal(chacha_key, 3, p2))

gcm_iv = bytes.fromhex("000102030405060708090a0b")
gcm_iv_wrap = bytes.fromhex("a0a1a2a3ffffffffffffffff")
p3 = plain_packet(b"\x05" + b"ssh-userauth", bytes(range(0xB0, 0xB0 + 18)), 16, True)
k256 = bytes(range(0x40, 0x60))
k128 = bytes(range(0x80, 0x90))
rust("GCM_IV", gcm_iv)
rust("GCM_IV_WRAP", gcm_iv_wrap)
rust("GCM_PLAIN", p3)
rust("AES256_KEY", k256)
rust("AES128_KEY", k128)
# Two packets in a row: the second uses the invocation counter plus one.
iv2 = gcm_iv[:4] + (int.from_bytes(gcm_iv[4:], "big") + 1).to_bytes(8, "big")
rust("AES256_FIRST", gcm_seal(k256, gcm_iv, p3))
rust("AES256_SECOND", gcm_seal(k256, iv2, p3))
rust("AES128_FIRST", gcm_seal(k128, gcm_iv, p3))
rust("AES128_SECOND", gcm_seal(k128, iv2, p3))
# The counter wraps from 2^64-1 to 0 while the fixed field stays.
rust("AES256_WRAP_SECOND", gcm_seal(k256, gcm_iv_wrap[:4] + b"\0" * 8, p3))
