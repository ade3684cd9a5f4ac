//! The fuzz entry point for user authentication, shared by the cargo-fuzz
//! target `ssh_auth` and the test replaying its corpus
//! (`tests/auth_fuzz_corpus.rs`).
//!
//! Under cargo-fuzz (`cfg(fuzzing)`) signatures are not checked, so made-up
//! signed requests reach the policy; in the replay test they are, and the
//! seeds carry real ones.

use alloc::vec::Vec;

use ssh_key::private::Ed25519Keypair;
use ssh_key::public::KeyData;
use ssh_key::PrivateKey;

use super::{
    AuthPolicy, ClientAuth, ClientAuthEvent, ServerAuth, ServerAuthConfig, ServerAuthEvent,
    METHOD_NONE, METHOD_PUBLICKEY,
};
use crate::msg::{self, Role};
use crate::wire::Reader;

/// The session identifier of both sides.
pub const SESSION_ID: [u8; 32] = [0x42; 32];
/// The user the client logs in as.
pub const USER: &str = "glenda";
/// Length of the control header at the front of the input.
pub const CONTROL_LEN: usize = 8;

/// Frame tags (the tag byte modulo 4).
pub mod tag {
    /// The frame's bytes are a payload for the server.
    pub const TO_SERVER: u8 = 0;
    /// The frame's bytes are a payload for the client.
    pub const TO_CLIENT: u8 = 1;
    /// Deliver what each side queued to the other until both are quiet.
    pub const PUMP: u8 = 2;
    /// The frame's bytes are a `server-sig-algs` name-list for the client.
    pub const SIG_ALGS: u8 = 3;
}

/// Control byte 0: bit 0 sets a banner, bits 1–3 are `max_attempts`.
pub const CTL_BANNER: u8 = 1;

/// The client's keys: ed25519 keys from the seeds `[1; 32]` and `[2; 32]`.
pub fn client_keys() -> Vec<PrivateKey> {
    [1u8, 2]
        .iter()
        .map(|&s| PrivateKey::from(Ed25519Keypair::from_seed(&[s; 32])))
        .collect()
}

/// A policy whose answers are the bits of the control header, in turn,
/// and which remembers its last question and answer.
#[derive(Debug)]
struct BitPolicy {
    bits: u64,
    next: u32,
    last: Option<(Option<KeyData>, alloc::string::String, bool)>,
}

impl BitPolicy {
    fn bit(&mut self) -> bool {
        let b = (self.bits >> (self.next % 56)) & 1 == 1;
        self.next = self.next.wrapping_add(1);
        b
    }
}

impl AuthPolicy for BitPolicy {
    fn allow_key(&mut self, user: &str, key: &KeyData) -> bool {
        let b = self.bit();
        self.last = Some((Some(key.clone()), user.into(), b));
        b
    }

    fn allow_none(&mut self, user: &str) -> bool {
        let b = self.bit();
        self.last = Some((None, user.into(), b));
        b
    }
}

/// Input: [`CONTROL_LEN`] control bytes (byte 0 configures the server,
/// bytes 1–7 are the policy's answers), then frames: a tag byte (see
/// [`tag`]), a big-endian u16 length and that many bytes (fewer at the
/// end of the input).
///
/// Panics if a side breaks an invariant: a token the policy did not
/// grant, two tokens, a message of the wrong role queued, or output after
/// success.
pub fn auth(data: &[u8]) {
    run(data);
}

/// How a run of [`auth`] ended; the seed generator checks that each seed
/// goes where its name says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The server made an [`super::Authenticated`] token.
    pub server_authenticated: bool,
    /// The client saw USERAUTH_SUCCESS.
    pub client_authenticated: bool,
    /// The server returned an error.
    pub server_error: bool,
    /// The client returned an error.
    pub client_error: bool,
}

/// [`auth`], returning how it ended.
pub fn run(data: &[u8]) -> Outcome {
    let Some((ctl, mut rest)) = data.split_first_chunk::<CONTROL_LEN>() else {
        return Outcome::default();
    };
    let config = ServerAuthConfig {
        banner: (ctl[0] & CTL_BANNER != 0).then(|| "fuzz\r\n".into()),
        max_attempts: u32::from((ctl[0] >> 1) & 7),
    };
    let mut bits = [0u8; 8];
    bits[1..].copy_from_slice(&ctl[1..]);
    let mut h = Harness {
        server: ServerAuth::new(config, SESSION_ID.to_vec()),
        client: ClientAuth::new(USER, client_keys(), SESSION_ID.to_vec()),
        policy: BitPolicy {
            bits: u64::from_be_bytes(bits),
            next: 0,
            last: None,
        },
        server_dead: false,
        client_dead: false,
        tokens: 0,
        client_success: false,
        to_server: Vec::new(),
        to_client: Vec::new(),
    };
    h.client.start();
    h.check_client_output();

    while let Some((&t, after)) = rest.split_first() {
        let (len, after) = match after.split_first_chunk::<2>() {
            Some((l, a)) => (usize::from(u16::from_be_bytes(*l)), a),
            None => (after.len(), &[][..]),
        };
        let (frame, after) = after.split_at(len.min(after.len()));
        rest = after;
        match t % 4 {
            tag::TO_SERVER => h.feed_server(frame),
            tag::TO_CLIENT => h.feed_client(frame),
            tag::PUMP => h.pump(),
            _ => {
                let mut r = Reader::new(frame);
                if let Ok(names) = r.name_list() {
                    h.client.set_server_sig_algs(&names);
                }
            }
        }
    }
    Outcome {
        server_authenticated: h.server.is_authenticated(),
        client_authenticated: h.client.is_authenticated(),
        server_error: h.server_dead,
        client_error: h.client_dead,
    }
}

struct Harness {
    server: ServerAuth,
    client: ClientAuth,
    policy: BitPolicy,
    server_dead: bool,
    client_dead: bool,
    tokens: u32,
    client_success: bool,
    /// What the client queued and the pump has not delivered yet.
    to_server: Vec<Vec<u8>>,
    /// What the server queued and the pump has not delivered yet.
    to_client: Vec<Vec<u8>>,
}

impl Harness {
    /// Feeds the server and checks what it queued.
    fn feed_server(&mut self, payload: &[u8]) {
        if self.server_dead {
            return;
        }
        let was_done = self.server.is_authenticated();
        let r = self.server.handle_message(payload, &mut self.policy);
        if let Some(&n) = payload.first() {
            if !msg::sendable_by(Role::Client, n) {
                assert!(r.is_err(), "server accepted server-only message {n}");
            }
        }
        let before = self.to_client.len();
        while let Some(p) = self.server.poll_payload() {
            let n = p.first().copied();
            assert!(
                matches!(
                    n,
                    Some(
                        msg::SERVICE_ACCEPT
                            | msg::USERAUTH_FAILURE
                            | msg::USERAUTH_SUCCESS
                            | msg::USERAUTH_BANNER
                            | msg::USERAUTH_PK_OK
                    )
                ),
                "server queued {n:?}"
            );
            self.to_client.push(p);
        }
        if was_done {
            assert_eq!(self.to_client.len(), before, "server spoke after success");
        }
        while let Some(e) = self.server.poll_event() {
            if let ServerAuthEvent::Authenticated(token) = e {
                self.tokens += 1;
                assert_eq!(self.tokens, 1, "two tokens");
                let Some((key, user, granted)) = &self.policy.last else {
                    panic!("token without a policy decision");
                };
                assert!(*granted, "token the policy refused");
                assert_eq!(user, token.user());
                assert_eq!(key.as_ref(), token.key(), "token for another key");
                let method = if key.is_some() {
                    METHOD_PUBLICKEY
                } else {
                    METHOD_NONE
                };
                assert_eq!(token.method(), method);
                assert_eq!(self.server.authenticated(), Some(&token));
            }
        }
        assert_eq!(self.server.is_authenticated(), self.tokens == 1);
        self.server_dead = r.is_err();
    }

    /// Feeds the client and checks what it queued.
    fn feed_client(&mut self, payload: &[u8]) {
        if self.client_dead {
            return;
        }
        let was_done = self.client.is_authenticated();
        let r = self.client.handle_message(payload);
        if let Some(&n) = payload.first() {
            if !msg::sendable_by(Role::Server, n) {
                assert!(r.is_err(), "client accepted client-only message {n}");
            }
        }
        let before = self.to_server.len();
        self.check_client_output();
        if was_done {
            assert_eq!(self.to_server.len(), before, "client spoke after success");
        }
        self.client_dead = r.is_err();
    }

    fn check_client_output(&mut self) {
        while let Some(p) = self.client.poll_payload() {
            let n = p.first().copied();
            assert!(
                matches!(n, Some(msg::SERVICE_REQUEST | msg::USERAUTH_REQUEST)),
                "client queued {n:?}"
            );
            self.to_server.push(p);
        }
        while let Some(e) = self.client.poll_event() {
            if e == ClientAuthEvent::Success {
                assert!(!self.client_success, "two successes");
                self.client_success = true;
            }
        }
        assert_eq!(self.client.is_authenticated(), self.client_success);
    }

    /// Delivers queued payloads both ways until both sides are quiet.
    fn pump(&mut self) {
        // Each round is one exchange; a login takes fewer than ten.
        for _ in 0..64 {
            if self.to_server.is_empty() && self.to_client.is_empty() {
                break;
            }
            for p in core::mem::take(&mut self.to_server) {
                self.feed_server(&p);
            }
            for p in core::mem::take(&mut self.to_client) {
                self.feed_client(&p);
            }
        }
    }
}
