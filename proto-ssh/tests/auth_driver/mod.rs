//! A back-to-back driver for the auth tests: a [`ClientAuth`] and a
//! [`ServerAuth`] joined by their payload queues, a policy that records
//! every question it is asked, and builders for hand-made requests.

// Each test file uses a different part of the driver, which is `pub` for
// them, not for a crate.
#![allow(dead_code, unreachable_pub)]

use proto_ssh::auth::{
    publickey_signed_data, AuthError, AuthPolicy, Authenticated, ClientAuth, ClientAuthEvent,
    ServerAuth, ServerAuthConfig, ServerAuthEvent,
};
use proto_ssh::msg;
use proto_ssh::sig::{self, SigAlg};
use proto_ssh::wire::Put;
use ssh_key::private::Ed25519Keypair;
use ssh_key::public::KeyData;
use ssh_key::PrivateKey;

/// The session identifier both sides use unless a test says otherwise.
pub const SESSION_ID: [u8; 32] = [0x42; 32];

/// A committed test key: `ed25519`, `rsa` or `ecdsa`.
pub fn key(name: &str) -> PrivateKey {
    let text = match name {
        "ed25519" => include_str!("../keys/sig_ed25519"),
        "rsa" => include_str!("../keys/sig_rsa"),
        "ecdsa" => include_str!("../keys/sig_ecdsa"),
        "ecdsa384" => include_str!("../keys/sig_ecdsa384"),
        "ecdsa521" => include_str!("../keys/sig_ecdsa521"),
        _ => panic!("no test key {name}"),
    };
    PrivateKey::from_openssh(text).expect("test key parses")
}

/// An ed25519 key made from a one-byte seed, for tests needing many keys.
pub fn seeded_key(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

/// The public half of `k`.
pub fn public(k: &PrivateKey) -> KeyData {
    k.public_key().key_data().clone()
}

/// One question put to the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Key {
        user: String,
        key: KeyData,
    },
    None {
        user: String,
    },
    /// `logged_in`: the token's user and key.
    LoggedIn {
        user: String,
        key: Option<KeyData>,
    },
}

/// A policy that accepts the listed (user, key) pairs and `none` when
/// told to, and records every call.
#[derive(Debug, Default)]
pub struct RecordingPolicy {
    pub allowed: Vec<(String, KeyData)>,
    pub allow_none: bool,
    pub calls: Vec<Call>,
}

impl RecordingPolicy {
    /// A policy accepting `key` for `user`.
    pub fn allowing(user: &str, key: &PrivateKey) -> Self {
        Self {
            allowed: vec![(user.to_string(), public(key))],
            ..Self::default()
        }
    }

    /// The keys the policy was asked about, in order.
    pub fn keys_asked(&self) -> Vec<KeyData> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Key { key, .. } => Some(key.clone()),
                Call::None { .. } | Call::LoggedIn { .. } => None,
            })
            .collect()
    }
}

impl AuthPolicy for RecordingPolicy {
    fn allow_key(&mut self, user: &str, key: &KeyData) -> bool {
        self.calls.push(Call::Key {
            user: user.to_string(),
            key: key.clone(),
        });
        self.allowed.iter().any(|(u, k)| u == user && k == key)
    }

    fn allow_none(&mut self, user: &str) -> bool {
        self.calls.push(Call::None {
            user: user.to_string(),
        });
        self.allow_none
    }

    fn logged_in(&mut self, token: &Authenticated) {
        self.calls.push(Call::LoggedIn {
            user: token.user().to_string(),
            key: token.key().cloned(),
        });
    }
}

/// Which side refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Client and server joined back to back, with everything that passed.
#[derive(Debug)]
pub struct Pair {
    pub client: ClientAuth,
    pub server: ServerAuth,
    pub policy: RecordingPolicy,
    /// Payloads the client sent, in order.
    pub to_server: Vec<Vec<u8>>,
    /// Payloads the server sent, in order.
    pub to_client: Vec<Vec<u8>>,
    pub client_events: Vec<ClientAuthEvent>,
    pub server_events: Vec<ServerAuthEvent>,
}

impl Pair {
    /// A pair for `user` with `keys`, the default server config and
    /// [`SESSION_ID`] on both sides.
    pub fn new(user: &str, keys: Vec<PrivateKey>, policy: RecordingPolicy) -> Self {
        Self::with(user, keys, policy, ServerAuthConfig::default())
    }

    /// As [`Pair::new`] with a server config.
    pub fn with(
        user: &str,
        keys: Vec<PrivateKey>,
        policy: RecordingPolicy,
        config: ServerAuthConfig,
    ) -> Self {
        Self {
            client: ClientAuth::new(user, keys, SESSION_ID.to_vec()),
            server: ServerAuth::new(config, SESSION_ID.to_vec()),
            policy,
            to_server: Vec::new(),
            to_client: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
        }
    }

    /// Starts the client and shuttles payloads until both sides are
    /// quiet, or one refuses.
    pub fn run(&mut self) -> Result<(), (Side, AuthError)> {
        self.client.start();
        self.pump()
    }

    /// Shuttles payloads until both sides are quiet, or one refuses.
    pub fn pump(&mut self) -> Result<(), (Side, AuthError)> {
        loop {
            let mut moved = false;
            while let Some(p) = self.client.poll_payload() {
                moved = true;
                self.to_server.push(p.clone());
                let r = self.server.handle_message(&p, &mut self.policy);
                self.drain_events();
                r.map_err(|e| (Side::Server, e))?;
            }
            while let Some(p) = self.server.poll_payload() {
                moved = true;
                self.to_client.push(p.clone());
                let r = self.client.handle_message(&p);
                self.drain_events();
                r.map_err(|e| (Side::Client, e))?;
            }
            if !moved {
                return Ok(());
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
    }

    /// The server's Authenticated events.
    pub fn tokens(&self) -> Vec<proto_ssh::auth::Authenticated> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerAuthEvent::Authenticated(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }
}

/// SERVICE_REQUEST for `service`.
pub fn service_request(service: &str) -> Vec<u8> {
    let mut p = vec![msg::SERVICE_REQUEST];
    p.put_string(service.as_bytes());
    p
}

/// A server past SERVICE_ACCEPT, its output drained.
pub fn server_in_auth(config: ServerAuthConfig) -> ServerAuth {
    let mut s = ServerAuth::new(config, SESSION_ID.to_vec());
    let mut p = RecordingPolicy::default();
    s.handle_message(&service_request("ssh-userauth"), &mut p)
        .expect("service request");
    assert_eq!(s.poll_payload().expect("accept")[0], msg::SERVICE_ACCEPT);
    s
}

/// USERAUTH_REQUEST up to and including the method name.
pub fn request_head(user: &str, service: &str, method: &str) -> Vec<u8> {
    let mut p = vec![msg::USERAUTH_REQUEST];
    p.put_string(user.as_bytes());
    p.put_string(service.as_bytes());
    p.put_string(method.as_bytes());
    p
}

/// A `none` request.
pub fn none_request(user: &str) -> Vec<u8> {
    request_head(user, "ssh-connection", "none")
}

/// A publickey query for `blob` under algorithm name `alg`.
pub fn query(user: &str, alg: &str, blob: &[u8]) -> Vec<u8> {
    let mut p = request_head(user, "ssh-connection", "publickey");
    p.put_bool(false);
    p.put_string(alg.as_bytes());
    p.put_string(blob);
    p
}

/// A signed publickey request naming `named`'s blob, signed by `signer`
/// over `session_id`.
pub fn signed_request(
    user: &str,
    named: &PrivateKey,
    signer: &PrivateKey,
    alg: SigAlg,
    session_id: &[u8],
) -> Vec<u8> {
    let blob = sig::public_key_blob(named.public_key().key_data());
    let data = publickey_signed_data(session_id, user, "ssh-connection", alg.name(), &blob);
    let signature = sig::sign(signer, alg, &data).expect("signs");
    let mut p = request_head(user, "ssh-connection", "publickey");
    p.put_bool(true);
    p.put_string(alg.name().as_bytes());
    p.put_string(&blob);
    p.put_string(&signature);
    p
}

/// The algorithm name of a publickey USERAUTH_REQUEST.
pub fn request_alg(p: &[u8]) -> (bool, String) {
    let mut r = proto_ssh::wire::Reader::new(&p[1..]);
    for _ in 0..3 {
        r.string().expect("head");
    }
    let signed = r.bool().expect("flag");
    (signed, r.utf8().expect("alg").to_string())
}

/// The USERAUTH_FAILURE every refusal gets.
pub fn failure() -> Vec<u8> {
    let mut p = vec![msg::USERAUTH_FAILURE];
    p.put_name_list(&["publickey"]);
    p.put_bool(false);
    p
}
