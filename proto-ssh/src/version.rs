//! The identification exchange of RFC 4253 §4.2, as a sans-IO parser.
//!
//! Each side sends one line `SSH-protoversion-softwareversion[ SP comments]`
//! ending in CR LF. A server may send other text lines first; a client must
//! skip them. The parser is fed bytes as they arrive and keeps only the line
//! in progress, so memory stays bounded by [`MAX_LINE_LEN`] whatever the peer
//! sends; the bytes after the identification line belong to the binary
//! packet protocol and are left to the caller (see [`VersionStatus`]).

use alloc::vec::Vec;
use core::fmt;

/// The longest line accepted, terminator included (RFC 4253 §4.2 sets it
/// for the identification line; we hold preamble lines to it too).
pub const MAX_LINE_LEN: usize = 255;
/// How many text lines a server may send before its identification line
/// (OpenSSH's `SSH_MAX_PRE_BANNER_LINES`).
pub const MAX_PREAMBLE_LINES: usize = 1024;
/// How many bytes of text lines a server may send before its identification
/// line, terminators included.
pub const MAX_PREAMBLE_BYTES: usize = 64 * 1024;
/// The software version we announce unless told otherwise.
pub const DEFAULT_SOFTWARE_VERSION: &str = "cpu_rs_0.1";

/// Which side of the connection we are. Only a client skips text lines
/// before the peer's identification: RFC 4253 allows them from servers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We connected; the peer is a server.
    Client,
    /// We accepted; the peer is a client.
    Server,
}

impl Role {
    /// The other side's role.
    pub fn peer(self) -> Self {
        match self {
            Self::Client => Self::Server,
            Self::Server => Self::Client,
        }
    }
}

/// Why the peer's identification was refused. All of them end the
/// connection before any packet is exchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionError {
    /// A line reached [`MAX_LINE_LEN`] bytes without its end.
    LineTooLong,
    /// More than [`MAX_PREAMBLE_LINES`] lines came before the identification.
    TooManyLines,
    /// More than [`MAX_PREAMBLE_BYTES`] came before the identification.
    PreambleTooLong,
    /// A NUL byte, or a CR not followed by LF (OpenSSH refuses both).
    InvalidCharacter,
    /// A client sent a line not starting with `SSH-`.
    UnexpectedText,
    /// The line starts with `SSH-` but lacks a protocol or software version.
    Malformed,
    /// The protocol version is neither `2.0` nor `1.99`.
    UnsupportedVersion,
    /// Our own software version is empty, too long, or holds characters
    /// RFC 4253 forbids there (space, `-`, non-printable).
    BadSoftwareVersion,
    /// `feed` was called after the identification was complete.
    AlreadyComplete,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::LineTooLong => "identification line too long",
            Self::TooManyLines => "too many lines before the identification",
            Self::PreambleTooLong => "too many bytes before the identification",
            Self::InvalidCharacter => "invalid character in identification line",
            Self::UnexpectedText => "client sent text before its identification",
            Self::Malformed => "malformed identification line",
            Self::UnsupportedVersion => "unsupported protocol version",
            Self::BadSoftwareVersion => "invalid local software version",
            Self::AlreadyComplete => "identification already complete",
        })
    }
}

/// An identification line, held without its CR LF: that is the form the
/// exchange hash takes (`V_C`, `V_S`, RFC 4253 §8).
#[derive(Clone, PartialEq, Eq)]
pub struct Identification {
    line: Vec<u8>,
    /// Offset of the `-` ending the protocol version.
    proto_end: usize,
    /// Offset of the space before the comments, or the line's end.
    software_end: usize,
}

impl Identification {
    /// Our own line, `SSH-2.0-<software_version>`.
    pub fn local(software_version: &str) -> Result<Self, VersionError> {
        let ok_char = |b: u8| b.is_ascii_graphic() && b != b'-';
        // "SSH-2.0-" + version + CR LF must fit in MAX_LINE_LEN.
        if software_version.is_empty()
            || software_version.len() + 10 > MAX_LINE_LEN
            || !software_version.bytes().all(ok_char)
        {
            return Err(VersionError::BadSoftwareVersion);
        }
        let mut line = Vec::with_capacity(8 + software_version.len());
        line.extend_from_slice(b"SSH-2.0-");
        line.extend_from_slice(software_version.as_bytes());
        Ok(Self {
            software_end: line.len(),
            line,
            proto_end: 7,
        })
    }

    /// Splits a complete line (without terminator) that starts with `SSH-`.
    fn parse(line: Vec<u8>) -> Result<Self, VersionError> {
        let rest = line.get(4..).ok_or(VersionError::Malformed)?;
        let dash = rest
            .iter()
            .position(|&b| b == b'-')
            .ok_or(VersionError::Malformed)?;
        let proto = &rest[..dash];
        if proto.is_empty() {
            return Err(VersionError::Malformed);
        }
        // 1.99 announces a server that also speaks 2.0 (RFC 4253 §5.1).
        if proto != b"2.0" && proto != b"1.99" {
            return Err(VersionError::UnsupportedVersion);
        }
        let proto_end = 4 + dash;
        let software = &line[proto_end + 1..];
        let software_len = software
            .iter()
            .position(|&b| b == b' ')
            .unwrap_or(software.len());
        if software_len == 0 {
            return Err(VersionError::Malformed);
        }
        Ok(Self {
            software_end: proto_end + 1 + software_len,
            line,
            proto_end,
        })
    }

    /// The whole line without CR LF, as hashed into the exchange hash.
    pub fn line(&self) -> &[u8] {
        &self.line
    }

    /// `2.0` or `1.99`.
    pub fn proto_version(&self) -> &[u8] {
        &self.line[4..self.proto_end]
    }

    /// The software version, such as `OpenSSH_9.2p1`.
    pub fn software_version(&self) -> &[u8] {
        &self.line[self.proto_end + 1..self.software_end]
    }

    /// The comments after the software version, if any.
    pub fn comments(&self) -> Option<&[u8]> {
        self.line.get(self.software_end + 1..)
    }

    /// The line as sent on the wire, with CR LF.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.line.len() + 2);
        out.extend_from_slice(&self.line);
        out.extend_from_slice(b"\r\n");
        out
    }
}

impl fmt::Debug for Identification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Identification")
            .field(&alloc::string::String::from_utf8_lossy(&self.line))
            .finish()
    }
}

/// What one [`VersionParser::feed`] call found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionStatus {
    /// All input was taken; the identification line is not complete yet.
    NeedMore,
    /// The peer's identification. Only the first `consumed` bytes of the
    /// input were taken: the rest is the start of the packet stream.
    Complete {
        /// The peer's line.
        identification: Identification,
        /// How many bytes of this call's input belonged to the line.
        consumed: usize,
    },
}

/// Reads the peer's identification from bytes fed in any pieces.
#[derive(Debug)]
pub struct VersionParser {
    role: Role,
    /// The line in progress, without CR or LF.
    line: Vec<u8>,
    /// A CR ended the bytes so far; only LF may follow.
    saw_cr: bool,
    preamble_lines: usize,
    preamble_bytes: usize,
    complete: bool,
}

impl VersionParser {
    /// A parser for the identification of our peer, when we play `role`.
    pub fn new(role: Role) -> Self {
        Self {
            role,
            line: Vec::new(),
            saw_cr: false,
            preamble_lines: 0,
            preamble_bytes: 0,
            complete: false,
        }
    }

    /// Takes bytes from the peer. LF alone ends a line as well as CR LF,
    /// as in OpenSSH.
    pub fn feed(&mut self, input: &[u8]) -> Result<VersionStatus, VersionError> {
        if self.complete {
            return Err(VersionError::AlreadyComplete);
        }
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' {
                if let Some(identification) = self.end_line()? {
                    self.complete = true;
                    return Ok(VersionStatus::Complete {
                        identification,
                        consumed: i + 1,
                    });
                }
                continue;
            }
            if b == 0 || self.saw_cr {
                return Err(VersionError::InvalidCharacter);
            }
            // The line so far, this byte and at least an LF must fit.
            if self.line.len() + 2 > MAX_LINE_LEN {
                return Err(VersionError::LineTooLong);
            }
            if b == b'\r' {
                self.saw_cr = true;
            } else {
                self.line.push(b);
            }
        }
        Ok(VersionStatus::NeedMore)
    }

    /// Handles a finished line: the identification, or a preamble line.
    fn end_line(&mut self) -> Result<Option<Identification>, VersionError> {
        let terminator = if self.saw_cr { 2 } else { 1 };
        self.saw_cr = false;
        if self.line.starts_with(b"SSH-") {
            let line = core::mem::take(&mut self.line);
            return Identification::parse(line).map(Some);
        }
        if self.role == Role::Server {
            return Err(VersionError::UnexpectedText);
        }
        self.preamble_lines += 1;
        self.preamble_bytes += self.line.len() + terminator;
        if self.preamble_lines > MAX_PREAMBLE_LINES {
            return Err(VersionError::TooManyLines);
        }
        if self.preamble_bytes > MAX_PREAMBLE_BYTES {
            return Err(VersionError::PreambleTooLong);
        }
        self.line.clear();
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use alloc::vec;

    fn parse_all(role: Role, input: &[u8]) -> Result<VersionStatus, VersionError> {
        VersionParser::new(role).feed(input)
    }

    fn complete(status: VersionStatus) -> (Identification, usize) {
        match status {
            VersionStatus::Complete {
                identification,
                consumed,
            } => (identification, consumed),
            VersionStatus::NeedMore => panic!("incomplete"),
        }
    }

    #[test]
    fn openssh_line_with_trailing_packet_bytes() {
        let input = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n\x00\x00\x01\x0c";
        let (id, consumed) = complete(parse_all(Role::Client, input).unwrap());
        assert_eq!(consumed, input.len() - 4);
        assert_eq!(id.line(), b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3");
        assert_eq!(id.proto_version(), b"2.0");
        assert_eq!(id.software_version(), b"OpenSSH_9.2p1");
        assert_eq!(id.comments(), Some(&b"Debian-2+deb12u3"[..]));
    }

    #[test]
    fn lf_only_and_199_accepted() {
        let (id, consumed) = complete(parse_all(Role::Server, b"SSH-1.99-x\n").unwrap());
        assert_eq!(consumed, 11);
        assert_eq!(id.proto_version(), b"1.99");
        assert_eq!(id.software_version(), b"x");
        assert_eq!(id.comments(), None);
    }

    #[test]
    fn preamble_skipped_by_client_refused_by_server() {
        let input = b"hello\r\nwelcome to a host\nSSH-2.0-srv\r\n";
        let (id, consumed) = complete(parse_all(Role::Client, input).unwrap());
        assert_eq!(consumed, input.len());
        assert_eq!(id.software_version(), b"srv");
        assert_eq!(
            parse_all(Role::Server, input),
            Err(VersionError::UnexpectedText)
        );
    }

    #[test]
    fn other_versions_refused() {
        for line in [&b"SSH-1.5-old\r\n"[..], b"SSH-2.1-x\r\n", b"SSH-3.0-x\r\n"] {
            assert_eq!(
                parse_all(Role::Client, line),
                Err(VersionError::UnsupportedVersion)
            );
        }
        for line in [&b"SSH-2.0-\r\n"[..], b"SSH-2.0\r\n", b"SSH--x\r\n"] {
            assert_eq!(parse_all(Role::Client, line), Err(VersionError::Malformed));
        }
    }

    #[test]
    fn bad_characters_refused() {
        assert_eq!(
            parse_all(Role::Client, b"SSH-2.0-a\0b\r\n"),
            Err(VersionError::InvalidCharacter)
        );
        assert_eq!(
            parse_all(Role::Client, b"SSH-2.0-a\rb\r\n"),
            Err(VersionError::InvalidCharacter)
        );
    }

    #[test]
    fn line_length_limit_is_255_with_terminator() {
        let mut line = b"SSH-2.0-".to_vec();
        line.resize(253, b'a');
        line.extend_from_slice(b"\r\n");
        assert!(parse_all(Role::Client, &line).is_ok());
        let mut long = b"SSH-2.0-".to_vec();
        long.resize(254, b'a');
        long.extend_from_slice(b"\r\n");
        assert_eq!(
            parse_all(Role::Client, &long),
            Err(VersionError::LineTooLong)
        );
        // A line that never ends is refused once it reaches the limit.
        assert_eq!(
            parse_all(Role::Client, &vec![b'x'; 300]),
            Err(VersionError::LineTooLong)
        );
    }

    #[test]
    fn preamble_limits() {
        let lines = b"\n".repeat(MAX_PREAMBLE_LINES + 1);
        assert_eq!(
            parse_all(Role::Client, &lines),
            Err(VersionError::TooManyLines)
        );
        let mut ok = b"\n".repeat(MAX_PREAMBLE_LINES);
        ok.extend_from_slice(b"SSH-2.0-x\r\n");
        assert!(parse_all(Role::Client, &ok).is_ok());
        let mut big = Vec::new();
        for _ in 0..300 {
            big.extend_from_slice(&[b'y'; 252]);
            big.extend_from_slice(b"\r\n");
        }
        assert_eq!(
            parse_all(Role::Client, &big),
            Err(VersionError::PreambleTooLong)
        );
    }

    #[test]
    fn feed_after_complete_is_an_error() {
        let mut p = VersionParser::new(Role::Client);
        assert_eq!(p.feed(b"SSH-2.0-"), Ok(VersionStatus::NeedMore));
        complete(p.feed(b"x\r\n").unwrap());
        assert_eq!(p.feed(b"x"), Err(VersionError::AlreadyComplete));
    }

    #[test]
    fn local_line() {
        let id = Identification::local(DEFAULT_SOFTWARE_VERSION).unwrap();
        assert_eq!(id.to_wire(), b"SSH-2.0-cpu_rs_0.1\r\n");
        assert_eq!(id.software_version(), b"cpu_rs_0.1");
        let parsed = complete(parse_all(Role::Server, &id.to_wire()).unwrap()).0;
        assert_eq!(parsed, id);
        for bad in ["", "a b", "a-b", "tab\t", "é"] {
            assert_eq!(
                Identification::local(bad),
                Err(VersionError::BadSoftwareVersion)
            );
        }
        let longest = "v".repeat(MAX_LINE_LEN - 10);
        assert_eq!(
            Identification::local(&longest).unwrap().to_wire().len(),
            255
        );
        assert!(Identification::local(&"v".repeat(MAX_LINE_LEN - 9)).is_err());
    }
}
