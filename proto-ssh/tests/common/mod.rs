//! Shared set-up of the connection tests: keys, policies, configurations.

#![allow(dead_code, clippy::unwrap_used)]

use core::time::Duration;

use proto_ssh::auth::AuthPolicy;
use proto_ssh::connection::{ClientConfig, ServerConfig};
use proto_ssh::fuzzing::TestRng;
use proto_ssh::kex::negotiate::Preferences;
use proto_ssh::pair::Pair;
use proto_ssh::sig::SigAlg;
use proto_ssh::transport::{
    AcceptAnyHostKey, HostKeyCheck, RekeyLimits, Transport, TransportConfig,
};
use proto_ssh::version::{Role, DEFAULT_SOFTWARE_VERSION};
use ssh_key::public::KeyData;
use ssh_key::PrivateKey;

pub(crate) fn key(name: &str) -> PrivateKey {
    let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    PrivateKey::from_openssh(std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Accepts exactly one key, for any user.
pub(crate) struct OneKey(pub(crate) KeyData);

impl AuthPolicy for OneKey {
    fn allow_key(&mut self, _user: &str, key: &KeyData) -> bool {
        *key == self.0
    }
}

/// Refuses every host key.
pub(crate) struct RefuseHostKey;

impl HostKeyCheck for RefuseHostKey {
    fn check(&mut self, _key: &KeyData) -> bool {
        false
    }
}

/// A client logging in as "me" with `user_key`.
pub(crate) fn client(user_key: &str) -> ClientConfig {
    ClientConfig::new("me", vec![key(user_key)], Box::new(AcceptAnyHostKey))
}

/// A server with an Ed25519 host key that accepts `user_key` only.
pub(crate) fn server(user_key: &str) -> ServerConfig {
    let allowed = key(user_key).public_key().key_data().clone();
    ServerConfig::new(vec![key("sig_ed25519")], Box::new(OneKey(allowed)))
}

/// A pair that has logged in.
pub(crate) fn logged_in(client: ClientConfig, server: ServerConfig) -> Pair {
    let mut p = Pair::new(client, server, 1).unwrap();
    p.drive(50);
    assert!(
        p.authenticated(),
        "client {:?} server {:?}",
        p.client_error,
        p.server_error
    );
    p
}

/// A bare client transport (every algorithm, any host key), for tests
/// that drive a server by hand past the key exchange; its RNG seeded.
pub(crate) fn raw_client_transport(seed: u64) -> (Transport, TestRng) {
    let mut rng = TestRng(seed);
    let t = Transport::new(
        TransportConfig {
            role: Role::Client,
            prefs: Preferences::all(SigAlg::VERIFY_ALL.to_vec()),
            host_keys: Vec::new(),
            host_key_check: Box::new(AcceptAnyHostKey),
            rekey: RekeyLimits::default(),
            software_version: DEFAULT_SOFTWARE_VERSION.into(),
        },
        Duration::ZERO,
        &mut rng,
    )
    .unwrap();
    (t, rng)
}
