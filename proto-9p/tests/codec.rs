//! Property and unit tests of the codec: every message round-trips, and
//! no input makes the decoder panic.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use proptest::prelude::*;
use proto_9p::consts::{HEADER_LEN, MAX_WELEM, NOTAG};
use proto_9p::frame::frame_size;
use proto_9p::messages::*;
use proto_9p::{
    decode_frame, encode_frame, frame_len, BadMessage, DecodeError, Dirent, Fcall, FramingError,
    Message, Qid,
};

fn encode(tag: u16, msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    let n = encode_frame(tag, msg, &mut out);
    assert_eq!(n, out.len(), "encode_frame's return value");
    out
}

/// The header a frame of `body` would have; `size` as given, so tests can
/// lie about it.
fn raw_frame(size: u32, ty: u8, tag: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&size.to_le_bytes());
    out.push(ty);
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn frame(ty: u8, tag: u16, body: &[u8]) -> Vec<u8> {
    raw_frame((HEADER_LEN + body.len()) as u32, ty, tag, body)
}

/// Decodes `buf`; whatever decodes must encode back to the same bytes,
/// since every field has exactly one encoding. Errors must carry the
/// header's tag and type.
fn check_decode(buf: &[u8]) {
    match decode_frame(Bytes::copy_from_slice(buf)) {
        Ok(Fcall { tag, msg }) => assert_eq!(encode(tag, &msg), buf),
        Err(BadMessage {
            tag,
            msg_type,
            error,
        }) => {
            if buf.len() < HEADER_LEN {
                assert_eq!((tag, msg_type, error), (NOTAG, 0, DecodeError::Truncated));
            } else {
                assert_eq!(tag, u16::from_le_bytes([buf[5], buf[6]]));
                assert_eq!(msg_type, buf[4]);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    /// XOR the byte at this index (modulo the length).
    Flip(usize, u8),
    /// Cut the buffer to this length (modulo the length + 1).
    Truncate(usize),
    /// Append bytes.
    Extend(Vec<u8>),
    /// Insert a byte at this index (modulo the length + 1).
    Insert(usize, u8),
    /// Remove the byte at this index (modulo the length).
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    match *m {
        Mutation::Flip(i, x) if !buf.is_empty() => {
            let i = i % buf.len();
            buf[i] ^= x;
        }
        Mutation::Truncate(n) => buf.truncate(n % (buf.len() + 1)),
        Mutation::Extend(ref more) => buf.extend_from_slice(more),
        Mutation::Insert(i, b) => buf.insert(i % (buf.len() + 1), b),
        Mutation::Remove(i) if !buf.is_empty() => {
            buf.remove(i % buf.len());
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// encode_frame, then frame_len and decode_frame, give back the Fcall;
    /// body_len and frame_size agree with the bytes written.
    #[test]
    fn every_message_round_trips(tag in any::<u16>(), msg in common::any_message()) {
        let out = encode(tag, &msg);
        prop_assert_eq!(out.len(), HEADER_LEN + msg.body_len());
        prop_assert_eq!(out.len(), frame_size(&msg));
        prop_assert_eq!(out[4], msg.msg_type());
        prop_assert_eq!(msg.is_request(), msg.msg_type() % 2 == 0);
        // Fewer than four bytes: not known yet; four or more: known.
        for cut in 0..4 {
            prop_assert_eq!(frame_len(&out[..cut], u32::MAX), Ok(None));
        }
        prop_assert_eq!(frame_len(&out[..4], out.len() as u32), Ok(Some(out.len())));
        prop_assert_eq!(
            frame_len(&out, out.len() as u32 - 1),
            Err(FramingError::TooLarge { size: out.len() as u32, msize: out.len() as u32 - 1 })
        );
        let fcall = decode_frame(Bytes::from(out)).unwrap();
        prop_assert_eq!(fcall, Fcall { tag, msg });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Several frames back to back, arriving in arbitrary pieces, are
    /// delimited by frame_len and decode in order.
    #[test]
    fn a_stream_of_frames_splits_back(
        msgs in prop::collection::vec((any::<u16>(), common::any_message()), 1..8),
        chunks in prop::collection::vec(1..600usize, 1..64),
    ) {
        let mut stream = Vec::new();
        for (tag, msg) in &msgs {
            encode_frame(*tag, msg, &mut stream);
        }
        let mut pending: Vec<u8> = Vec::new();
        let mut decoded = Vec::new();
        let mut fed = 0;
        let mut chunk = chunks.iter().cycle();
        while fed < stream.len() {
            let n = (*chunk.next().unwrap()).min(stream.len() - fed);
            pending.extend_from_slice(&stream[fed..fed + n]);
            fed += n;
            while let Some(len) = frame_len(&pending, u32::MAX).unwrap() {
                if pending.len() < len {
                    break;
                }
                let rest = pending.split_off(len);
                let f = core::mem::replace(&mut pending, rest);
                decoded.push(decode_frame(Bytes::from(f)).unwrap());
            }
        }
        prop_assert!(pending.is_empty());
        let want: Vec<Fcall> = msgs.into_iter().map(|(tag, msg)| Fcall { tag, msg }).collect();
        prop_assert_eq!(decoded, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Packed dirents decode back.
    #[test]
    fn dirents_round_trip(
        entries in prop::collection::vec(
            (common::qid(), any::<u64>(), any::<u8>(), common::string())
                .prop_map(|(qid, offset, ty, name)| Dirent { qid, offset, ty, name }),
            0..20,
        ),
    ) {
        let mut data = Vec::new();
        for e in &entries {
            let before = data.len();
            e.encode(&mut data);
            prop_assert_eq!(data.len() - before, e.wire_len());
        }
        prop_assert_eq!(Dirent::decode_all(Bytes::from(data)).unwrap(), entries);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Arbitrary bytes as a frame: no panic, and what decodes re-encodes
    /// to the same bytes.
    #[test]
    fn decode_frame_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        check_decode(&data);
    }

    /// Random bodies under a correct header reach every body decoder,
    /// which random frames almost never do.
    #[test]
    fn decode_body_never_panics(
        ty in any::<u8>(),
        tag in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        check_decode(&frame(ty, tag, &body));
        if let Ok(msg) = Message::decode_body(ty, Bytes::from(body.clone())) {
            let mut again = Vec::new();
            msg.encode_body(&mut again);
            prop_assert_eq!(again, body);
        }
    }

    /// frame_len accepts exactly the sizes 7..=msize.
    #[test]
    fn frame_len_checks_the_size(data in prop::collection::vec(any::<u8>(), 0..12), msize in any::<u32>()) {
        let got = frame_len(&data, msize);
        if data.len() < 4 {
            prop_assert_eq!(got, Ok(None));
        } else {
            let size = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let want = if (size as usize) < HEADER_LEN {
                Err(FramingError::TooShort(size))
            } else if size > msize {
                Err(FramingError::TooLarge { size, msize })
            } else {
                Ok(Some(size as usize))
            };
            prop_assert_eq!(got, want);
        }
    }

    /// Arbitrary Rreaddir payloads: no panic, and what decodes re-encodes.
    #[test]
    fn dirent_decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(entries) = Dirent::decode_all(Bytes::from(data.clone())) {
            let mut again = Vec::new();
            for e in &entries {
                e.encode(&mut again);
            }
            prop_assert_eq!(again, data);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Valid frames with bytes flipped, cut, added or removed.
    #[test]
    fn mutated_frames_never_panic(
        tag in any::<u16>(),
        msg in common::any_message(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut buf = encode(tag, &msg);
        for m in &mutations {
            apply(&mut buf, m);
        }
        let _ = frame_len(&buf, 8192);
        check_decode(&buf);
    }
}

#[test]
fn seventeen_walk_names_are_rejected() {
    let walk = |n: usize| {
        Message::from(Twalk {
            fid: 1,
            newfid: 2,
            wnames: vec![b"a".to_vec(); n],
        })
    };
    let ok = encode(1, &walk(MAX_WELEM));
    assert!(decode_frame(Bytes::from(ok)).is_ok());
    let bad = encode(1, &walk(MAX_WELEM + 1));
    assert_eq!(
        decode_frame(Bytes::from(bad)),
        Err(BadMessage {
            tag: 1,
            msg_type: Twalk::TYPE,
            error: DecodeError::TooManyWalkElements,
        })
    );
}

#[test]
fn seventeen_walk_qids_are_rejected() {
    let bad = encode(
        3,
        &Rwalk {
            wqids: vec![Qid::default(); MAX_WELEM + 1],
        }
        .into(),
    );
    assert_eq!(
        decode_frame(Bytes::from(bad)).unwrap_err().error,
        DecodeError::TooManyWalkElements
    );
}

/// The element count is checked before anything is read or allocated,
/// even when it is absurd.
#[test]
fn huge_walk_count_is_rejected_before_reading() {
    let mut body = Vec::new();
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&2u32.to_le_bytes());
    body.extend_from_slice(&u16::MAX.to_le_bytes());
    let err = decode_frame(Bytes::from(frame(Twalk::TYPE, 9, &body))).unwrap_err();
    assert_eq!(err.error, DecodeError::TooManyWalkElements);
}

#[test]
fn string_longer_than_the_frame_is_truncated() {
    // Rreadlink { target } claiming 10 bytes and giving 3.
    let mut body = 10u16.to_le_bytes().to_vec();
    body.extend_from_slice(b"abc");
    let err = decode_frame(Bytes::from(frame(Rreadlink::TYPE, 4, &body))).unwrap_err();
    assert_eq!(
        err,
        BadMessage {
            tag: 4,
            msg_type: Rreadlink::TYPE,
            error: DecodeError::Truncated,
        }
    );
    // Only one byte of the two-byte length.
    let err = decode_frame(Bytes::from(frame(Rreadlink::TYPE, 4, &[1]))).unwrap_err();
    assert_eq!(err.error, DecodeError::Truncated);
    // A payload count beyond the frame.
    let mut body = Vec::new();
    body.extend_from_slice(&1u32.to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes());
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    body.extend_from_slice(b"xy");
    let err = decode_frame(Bytes::from(frame(Twrite::TYPE, 4, &body))).unwrap_err();
    assert_eq!(err.error, DecodeError::Truncated);
}

#[test]
fn every_truncation_of_every_default_message_fails() {
    for msg in common::defaults() {
        let mut full = encode(7, &msg);
        // Drop bytes from the body while keeping the size field honest:
        // the body decoder must notice.
        while full.len() > HEADER_LEN {
            full.pop();
            let size = full.len() as u32;
            full[..4].copy_from_slice(&size.to_le_bytes());
            assert_eq!(
                decode_frame(Bytes::from(full.clone())).unwrap_err().error,
                DecodeError::Truncated,
                "{}",
                msg.name()
            );
        }
    }
}

#[test]
fn frame_size_outside_7_to_msize_is_a_framing_error() {
    for size in 0..HEADER_LEN as u32 {
        assert_eq!(
            frame_len(&size.to_le_bytes(), 8192),
            Err(FramingError::TooShort(size))
        );
    }
    assert_eq!(frame_len(&7u32.to_le_bytes(), 8192), Ok(Some(7)));
    assert_eq!(frame_len(&8192u32.to_le_bytes(), 8192), Ok(Some(8192)));
    assert_eq!(
        frame_len(&8193u32.to_le_bytes(), 8192),
        Err(FramingError::TooLarge {
            size: 8193,
            msize: 8192
        })
    );
    assert_eq!(
        frame_len(&u32::MAX.to_le_bytes(), 8192),
        Err(FramingError::TooLarge {
            size: u32::MAX,
            msize: 8192
        })
    );
    assert_eq!(frame_len(&[0xff, 0xff, 0xff], 8192), Ok(None));
}

#[test]
fn trailing_bytes_are_rejected() {
    // After the last field, inside the size.
    let mut body = 5u32.to_le_bytes().to_vec();
    body.push(0);
    let err = decode_frame(Bytes::from(frame(Tclunk::TYPE, 2, &body))).unwrap_err();
    assert_eq!(err.error, DecodeError::TrailingBytes);
    // Beyond the size field: the frame was not delimited by frame_len.
    let mut buf = encode(2, &Tclunk { fid: 5 }.into());
    buf.push(0);
    let err = decode_frame(Bytes::from(buf)).unwrap_err();
    assert_eq!(err.error, DecodeError::TrailingBytes);
    // An empty message with a body.
    let err = decode_frame(Bytes::from(frame(Rclunk::TYPE, 2, &[0]))).unwrap_err();
    assert_eq!(err.error, DecodeError::TrailingBytes);
}

#[test]
fn short_and_unknown_frames() {
    let err = decode_frame(Bytes::from_static(&[7, 0, 0, 0, 120, 1])).unwrap_err();
    assert_eq!(
        err,
        BadMessage {
            tag: NOTAG,
            msg_type: 0,
            error: DecodeError::Truncated
        }
    );
    // Numbers that 9P2000.L does not use, among them the gaps between
    // its ranges.
    for ty in [0u8, 1, 2, 5, 10, 28, 200, 255] {
        let err = decode_frame(Bytes::from(frame(ty, 3, &[]))).unwrap_err();
        assert_eq!(err.error, DecodeError::UnknownType(ty));
        assert_eq!((err.tag, err.msg_type), (3, ty));
    }
}

/// Payloads are slices of the frame they came in, not copies.
#[test]
fn payloads_share_memory_with_the_frame() {
    let data = Bytes::from_static(b"hello, zero copy");
    let msgs: [Message; 3] = [
        Twrite {
            fid: 1,
            offset: 42,
            data: data.clone(),
        }
        .into(),
        Rread { data: data.clone() }.into(),
        Rreaddir { data: data.clone() }.into(),
    ];
    for msg in msgs {
        let frame = Bytes::from(encode(10, &msg));
        let start = frame.as_ptr() as usize;
        let inside = start..start + frame.len();
        let payload = match decode_frame(frame.clone()).unwrap().msg {
            Message::Twrite(w) => w.data,
            Message::Rread(r) => r.data,
            Message::Rreaddir(r) => r.data,
            other => panic!("decoded {other:?}"),
        };
        assert_eq!(payload, data);
        let p = payload.as_ptr() as usize;
        assert!(
            inside.contains(&p) && p + payload.len() == inside.end,
            "payload at {p:#x} is not the tail of the frame at {inside:x?}"
        );
    }
}

#[test]
fn dirent_truncation_is_an_error() {
    let entry = Dirent {
        qid: Qid {
            ty: 0x80,
            version: 1,
            path: 2,
        },
        offset: 3,
        ty: 4,
        name: b"name".to_vec(),
    };
    let mut data = Vec::new();
    entry.encode(&mut data);
    entry.encode(&mut data);
    for cut in 1..entry.wire_len() {
        assert_eq!(
            Dirent::decode_all(Bytes::copy_from_slice(&data[..data.len() - cut])),
            Err(DecodeError::Truncated)
        );
    }
    assert_eq!(
        Dirent::decode_all(Bytes::from(data)).unwrap(),
        vec![entry.clone(), entry]
    );
}
