//! The ssh-agent protocol's messages (draft-miller-ssh-agent), as far as
//! a client that signs needs them: list the identities, sign with one.
//!
//! Sans-IO like the rest of the crate: the caller owns the socket. Every
//! message travels as `uint32 length || payload`, the payload's first
//! byte its type; [`payload_len`] checks a frame's length word before the
//! caller reads that many bytes, and [`Message::decode`] parses the
//! payload. Both directions are here, so that a test agent can be built
//! from the same code and the codec round-trips.

use alloc::vec::Vec;
use core::fmt;

use crate::sig::SigAlg;
use crate::wire::{Put, Reader, WireError};

/// SSH_AGENT_FAILURE.
pub const FAILURE: u8 = 5;
/// SSH2_AGENTC_REQUEST_IDENTITIES.
pub const REQUEST_IDENTITIES: u8 = 11;
/// SSH2_AGENT_IDENTITIES_ANSWER.
pub const IDENTITIES_ANSWER: u8 = 12;
/// SSH2_AGENTC_SIGN_REQUEST.
pub const SIGN_REQUEST: u8 = 13;
/// SSH2_AGENT_SIGN_RESPONSE.
pub const SIGN_RESPONSE: u8 = 14;

/// Sign-request flag: an RSA key signs with rsa-sha2-256.
pub const RSA_SHA2_256: u32 = 2;
/// Sign-request flag: an RSA key signs with rsa-sha2-512.
pub const RSA_SHA2_512: u32 = 4;

/// The largest payload accepted, OpenSSH's own limit (`AGENT_MAX_LEN`):
/// a peer's length word must not make us allocate without bound.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// A message that cannot be what the agent protocol allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentError {
    /// The length word is zero (no type byte) or above [`MAX_PAYLOAD`].
    BadLength(u32),
    /// A message type this codec does not handle.
    UnknownType(u8),
    /// The body does not parse, or has bytes left over.
    Malformed(WireError),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadLength(n) => write!(f, "agent message of {n} bytes"),
            Self::UnknownType(t) => write!(f, "agent message of unknown type {t}"),
            Self::Malformed(e) => write!(f, "malformed agent message: {e}"),
        }
    }
}

impl From<WireError> for AgentError {
    fn from(e: WireError) -> Self {
        Self::Malformed(e)
    }
}

/// One key the agent holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The public key blob (SSH wire encoding); may be a key type or a
    /// certificate that [`crate::sig`] does not know.
    pub key_blob: Vec<u8>,
    /// The comment, usually the file the key came from; not necessarily
    /// UTF-8.
    pub comment: Vec<u8>,
}

/// A message of the subset spoken here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// SSH_AGENT_FAILURE: the request was refused.
    Failure,
    /// SSH2_AGENTC_REQUEST_IDENTITIES.
    RequestIdentities,
    /// SSH2_AGENT_IDENTITIES_ANSWER.
    IdentitiesAnswer(Vec<Identity>),
    /// SSH2_AGENTC_SIGN_REQUEST.
    SignRequest {
        /// The key, as the agent listed it.
        key_blob: Vec<u8>,
        /// What to sign.
        data: Vec<u8>,
        /// [`RSA_SHA2_256`], [`RSA_SHA2_512`] or 0.
        flags: u32,
    },
    /// SSH2_AGENT_SIGN_RESPONSE: the SSH signature encoding (string
    /// algorithm, string blob).
    SignResponse(Vec<u8>),
}

impl Message {
    /// The framed message: length word, then the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::new();
        match self {
            Self::Failure => p.put_u8(FAILURE),
            Self::RequestIdentities => p.put_u8(REQUEST_IDENTITIES),
            Self::IdentitiesAnswer(ids) => {
                p.put_u8(IDENTITIES_ANSWER);
                // A list longer than u32 cannot be built in memory that a
                // frame could carry anyway; saturate rather than wrap.
                p.put_u32(u32::try_from(ids.len()).unwrap_or(u32::MAX));
                for id in ids {
                    p.put_string(&id.key_blob);
                    p.put_string(&id.comment);
                }
            }
            Self::SignRequest {
                key_blob,
                data,
                flags,
            } => {
                p.put_u8(SIGN_REQUEST);
                p.put_string(key_blob);
                p.put_string(data);
                p.put_u32(*flags);
            }
            Self::SignResponse(sig) => {
                p.put_u8(SIGN_RESPONSE);
                p.put_string(sig);
            }
        }
        let mut out = Vec::with_capacity(4 + p.len());
        out.put_u32(u32::try_from(p.len()).unwrap_or(u32::MAX));
        out.extend_from_slice(&p);
        out
    }

    /// Parses one payload (the bytes after the length word).
    pub fn decode(payload: &[u8]) -> Result<Self, AgentError> {
        let Some((&kind, body)) = payload.split_first() else {
            return Err(AgentError::BadLength(0));
        };
        let mut r = Reader::new(body);
        let m = match kind {
            FAILURE => Self::Failure,
            REQUEST_IDENTITIES => Self::RequestIdentities,
            IDENTITIES_ANSWER => {
                let n = r.u32()?;
                // Each entry takes at least 8 bytes: a count beyond what
                // the body can hold is malformed, and bounds the loop.
                if usize::try_from(n).map_or(true, |n| n > r.rest().len() / 8) {
                    return Err(AgentError::Malformed(WireError::Truncated));
                }
                let mut ids = Vec::new();
                for _ in 0..n {
                    let key_blob = r.string()?.to_vec();
                    let comment = r.string()?.to_vec();
                    ids.push(Identity { key_blob, comment });
                }
                Self::IdentitiesAnswer(ids)
            }
            SIGN_REQUEST => Self::SignRequest {
                key_blob: r.string()?.to_vec(),
                data: r.string()?.to_vec(),
                flags: r.u32()?,
            },
            SIGN_RESPONSE => Self::SignResponse(r.string()?.to_vec()),
            other => return Err(AgentError::UnknownType(other)),
        };
        r.finish()?;
        Ok(m)
    }
}

/// The payload length announced by a frame's 4-byte length word, once
/// checked against [`MAX_PAYLOAD`].
pub fn payload_len(header: [u8; 4]) -> Result<usize, AgentError> {
    let n = u32::from_be_bytes(header);
    match usize::try_from(n) {
        Ok(len) if (1..=MAX_PAYLOAD).contains(&len) => Ok(len),
        _ => Err(AgentError::BadLength(n)),
    }
}

/// Splits the first whole frame off `buf`: its payload and the bytes it
/// took; `None` while more bytes are needed.
pub fn split_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, AgentError> {
    let Some(header) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = payload_len(*header)?;
    Ok(buf.get(4..4 + len).map(|payload| (payload, 4 + len)))
}

/// The sign-request flags that ask for `alg`: RSA keys sign with SHA-1
/// unless told otherwise, which no server of ours accepts.
pub fn sign_flags(alg: SigAlg) -> u32 {
    match alg {
        SigAlg::RsaSha256 => RSA_SHA2_256,
        SigAlg::RsaSha512 => RSA_SHA2_512,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn request_identities_is_five_bytes() {
        assert_eq!(Message::RequestIdentities.encode(), [0, 0, 0, 1, 11]);
    }

    #[test]
    fn identities_answer_parses() {
        // Two keys, as OpenSSH's agent answers (blob, comment).
        let mut p = vec![IDENTITIES_ANSWER, 0, 0, 0, 2];
        p.put_string(b"blob-a");
        p.put_string(b"a.key");
        p.put_string(b"blob-b");
        p.put_string(b"");
        let m = Message::decode(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m,
            Message::IdentitiesAnswer(vec![
                Identity {
                    key_blob: b"blob-a".to_vec(),
                    comment: b"a.key".to_vec()
                },
                Identity {
                    key_blob: b"blob-b".to_vec(),
                    comment: Vec::new()
                },
            ])
        );
    }

    #[test]
    fn sign_request_layout() {
        let m = Message::SignRequest {
            key_blob: b"k".to_vec(),
            data: b"dd".to_vec(),
            flags: RSA_SHA2_512,
        };
        assert_eq!(
            m.encode(),
            [0, 0, 0, 16, 13, 0, 0, 0, 1, b'k', 0, 0, 0, 2, b'd', b'd', 0, 0, 0, 4]
        );
    }

    #[test]
    fn failure_and_unknown_types() {
        assert_eq!(Message::decode(&[FAILURE]), Ok(Message::Failure));
        // SSH_AGENT_SUCCESS and the extension failure are not ours.
        assert_eq!(Message::decode(&[6]), Err(AgentError::UnknownType(6)));
        assert_eq!(Message::decode(&[28]), Err(AgentError::UnknownType(28)));
        assert_eq!(Message::decode(&[]), Err(AgentError::BadLength(0)));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        // A count far beyond the body.
        assert!(Message::decode(&[IDENTITIES_ANSWER, 0xff, 0xff, 0xff, 0xff]).is_err());
        // A truncated blob.
        assert!(Message::decode(&[SIGN_RESPONSE, 0, 0, 0, 9, 1]).is_err());
        // Trailing bytes.
        assert!(Message::decode(&[FAILURE, 0]).is_err());
        assert!(Message::decode(&[SIGN_RESPONSE, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn frame_lengths_are_bounded() {
        assert_eq!(payload_len([0, 0, 0, 0]), Err(AgentError::BadLength(0)));
        assert_eq!(payload_len([0, 4, 0, 0]), Ok(MAX_PAYLOAD));
        assert_eq!(
            payload_len([0, 4, 0, 1]),
            Err(AgentError::BadLength(0x40001))
        );
        assert_eq!(split_frame(&[0, 0, 0]), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0, 2, 5]), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0, 1, 5, 9]), Ok(Some((&[5][..], 5))));
    }

    #[test]
    fn flags_follow_the_rsa_algorithm() {
        assert_eq!(sign_flags(SigAlg::RsaSha256), 2);
        assert_eq!(sign_flags(SigAlg::RsaSha512), 4);
        assert_eq!(sign_flags(SigAlg::Ed25519), 0);
        assert_eq!(sign_flags(SigAlg::EcdsaP256), 0);
    }
}
