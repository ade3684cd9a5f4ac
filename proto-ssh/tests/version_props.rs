//! Property tests of the identification parser: it never panics, it skips
//! any allowed preamble, and how the input is split does not matter.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use proto_ssh::version::{Role, VersionError, VersionParser, VersionStatus};

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::Server)]
}

/// A preamble line a server may send: no NUL, CR or LF inside, not
/// starting with `SSH-`, short enough, with CR LF or LF.
fn preamble_line() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(
            any::<u8>().prop_filter("no NUL/CR/LF", |b| ![0, b'\r', b'\n'].contains(b)),
            0..200,
        ),
        any::<bool>(),
    )
        .prop_filter("not SSH-", |(l, _)| !l.starts_with(b"SSH-"))
        .prop_map(|(mut l, crlf)| {
            l.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            l
        })
}

/// Feeds `input` as given pieces; the result as one `(status, consumed
/// from the start of input)`.
fn feed_split(role: Role, input: &[u8], at: usize) -> Result<(Vec<u8>, usize), VersionError> {
    let mut p = VersionParser::new(role);
    let (a, b) = input.split_at(at);
    match p.feed(a)? {
        VersionStatus::Complete {
            identification,
            consumed,
        } => Ok((identification.line().to_vec(), consumed)),
        VersionStatus::NeedMore => match p.feed(b)? {
            VersionStatus::Complete {
                identification,
                consumed,
            } => Ok((identification.line().to_vec(), a.len() + consumed)),
            // Reported as consumed = MAX to tell it from completion.
            VersionStatus::NeedMore => Ok((Vec::new(), usize::MAX)),
        },
    }
}

proptest! {
    #[test]
    fn never_panics(role in role(), input in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = VersionParser::new(role).feed(&input);
    }

    #[test]
    fn split_anywhere_same_result(
        role in role(),
        input in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(prop_oneof![Just(b'S'), Just(b'H'), Just(b'-'), Just(b'2'), Just(b'.'), Just(b'0'), Just(b'\r'), Just(b'\n'), Just(b' '), Just(b'x')], 0..300),
        ],
        at in any::<prop::sample::Index>(),
    ) {
        let at = at.index(input.len() + 1);
        prop_assert_eq!(feed_split(role, &input, at), feed_split(role, &input, input.len()));
    }

    #[test]
    fn preamble_then_valid_line(
        preamble in proptest::collection::vec(preamble_line(), 0..20),
        software in "[!-,.-~]{1,60}",
        comments in proptest::option::of("[ -~]{0,100}"),
        crlf in any::<bool>(),
        trailing in proptest::collection::vec(any::<u8>(), 0..40),
        at in any::<prop::sample::Index>(),
    ) {
        let mut line = format!("SSH-2.0-{software}").into_bytes();
        if let Some(c) = &comments {
            line.push(b' ');
            line.extend_from_slice(c.as_bytes());
        }
        let mut input: Vec<u8> = preamble.concat();
        input.extend_from_slice(&line);
        input.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
        let end = input.len();
        input.extend_from_slice(&trailing);

        let at = at.index(input.len() + 1);
        let (got, consumed) = feed_split(Role::Client, &input, at).unwrap();
        prop_assert_eq!(&got, &line);
        prop_assert_eq!(consumed, end);

        let VersionStatus::Complete { identification, .. } =
            VersionParser::new(Role::Client).feed(&input).unwrap()
        else {
            panic!("incomplete");
        };
        prop_assert_eq!(identification.software_version(), software.as_bytes());
        prop_assert_eq!(identification.comments(), comments.as_deref().map(str::as_bytes));
        if !preamble.is_empty() {
            prop_assert_eq!(
                VersionParser::new(Role::Server).feed(&input),
                Err(VersionError::UnexpectedText)
            );
        }
    }
}
