//! Logins through the back-to-back driver: every key type, the RSA
//! signature algorithm chosen from `server-sig-algs`, the `none` probe,
//! the banner, refused keys and the attempt limit.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod auth_driver;

use auth_driver::*;
use proto_ssh::auth::{AuthError, ClientAuthEvent, ServerAuthConfig, ServerAuthEvent};
use proto_ssh::msg;
use proto_ssh::wire::Reader;

/// Logs in with `k` and returns the algorithm of the signed request.
fn login(k: &str, server_sig_algs: Option<&str>) -> String {
    let k = key(k);
    let mut pair = Pair::new(
        "glenda",
        vec![k.clone()],
        RecordingPolicy::allowing("glenda", &k),
    );
    if let Some(list) = server_sig_algs {
        let mut raw = Vec::new();
        proto_ssh::wire::Put::put_string(&mut raw, list.as_bytes());
        pair.client
            .set_server_sig_algs(&Reader::new(&raw).name_list().unwrap());
    }
    pair.run().expect("login");
    assert!(pair.client.is_authenticated());
    assert!(pair.server.is_authenticated());
    assert_eq!(pair.client_events.last(), Some(&ClientAuthEvent::Success));
    let tokens = pair.tokens();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].user(), "glenda");
    assert_eq!(tokens[0].method(), "publickey");
    assert_eq!(tokens[0].key(), Some(&public(&k)));
    assert_eq!(pair.server.authenticated(), Some(&tokens[0]));

    // SERVICE_REQUEST, none, query, signed request.
    assert_eq!(pair.to_server.len(), 4);
    assert_eq!(pair.to_server[0], service_request("ssh-userauth"));
    assert_eq!(pair.to_server[1], none_request("glenda"));
    let (q_signed, q_alg) = request_alg(&pair.to_server[2]);
    let (s_signed, s_alg) = request_alg(&pair.to_server[3]);
    assert!(!q_signed && s_signed);
    assert_eq!(q_alg, s_alg);
    // SERVICE_ACCEPT, FAILURE (none), PK_OK, SUCCESS.
    let numbers: Vec<u8> = pair.to_client.iter().map(|p| p[0]).collect();
    assert_eq!(
        numbers,
        [
            msg::SERVICE_ACCEPT,
            msg::USERAUTH_FAILURE,
            msg::USERAUTH_PK_OK,
            msg::USERAUTH_SUCCESS
        ]
    );
    s_alg
}

#[test]
fn ed25519_logs_in() {
    assert_eq!(login("ed25519", None), "ssh-ed25519");
}

#[test]
fn ecdsa_logs_in() {
    assert_eq!(login("ecdsa", None), "ecdsa-sha2-nistp256");
}

/// Keys made by `ssh-keygen -t ecdsa -b 384` and `-b 521`.
#[cfg(feature = "ecdsa-p384-p521")]
#[test]
fn ecdsa_p384_p521_log_in() {
    assert_eq!(login("ecdsa384", None), "ecdsa-sha2-nistp384");
    assert_eq!(login("ecdsa521", None), "ecdsa-sha2-nistp521");
}

/// Without the feature, such a key is not offered at all: nothing that
/// could not be verified is sent, and nobody is logged in.
#[cfg(not(feature = "ecdsa-p384-p521"))]
#[test]
fn ecdsa_p384_p521_are_not_offered_without_the_feature() {
    for (name, alg) in [
        ("ecdsa384", &b"ecdsa-sha2-nistp384"[..]),
        ("ecdsa521", &b"ecdsa-sha2-nistp521"[..]),
    ] {
        let k = key(name);
        let mut pair = Pair::new(
            "glenda",
            vec![k.clone()],
            RecordingPolicy::allowing("glenda", &k),
        );
        let _ = pair.run();
        assert!(!pair.server.is_authenticated(), "{name}");
        assert!(!pair.client.is_authenticated(), "{name}");
        assert!(
            pair.to_server
                .iter()
                .all(|p| !p.windows(alg.len()).any(|w| w == alg)),
            "{name}"
        );
    }
}

#[test]
fn rsa_uses_sha256_without_ext_info() {
    assert_eq!(login("rsa", None), "rsa-sha2-256");
}

#[test]
fn rsa_follows_server_sig_algs() {
    let all = "ssh-ed25519,ecdsa-sha2-nistp256,rsa-sha2-512,rsa-sha2-256";
    assert_eq!(login("rsa", Some(all)), "rsa-sha2-512");
    assert_eq!(
        login("rsa", Some("rsa-sha2-256,rsa-sha2-512")),
        "rsa-sha2-512"
    );
    assert_eq!(
        login("rsa", Some("ssh-ed25519,rsa-sha2-256")),
        "rsa-sha2-256"
    );
}

#[test]
fn rsa_never_uses_sha1() {
    // A server listing only SHA-1 ssh-rsa still gets rsa-sha2-256.
    assert_eq!(login("rsa", Some("ssh-rsa")), "rsa-sha2-256");
    assert_eq!(login("rsa", Some("ssh-rsa,ssh-dss")), "rsa-sha2-256");
}

#[test]
fn none_probe_succeeds_when_allowed() {
    let k = key("ed25519");
    let policy = RecordingPolicy {
        allow_none: true,
        ..RecordingPolicy::default()
    };
    let mut pair = Pair::new("glenda", vec![k], policy);
    pair.run().expect("login");
    assert!(pair.client.is_authenticated());
    let tokens = pair.tokens();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].method(), "none");
    assert_eq!(tokens[0].key(), None);
    // No key was offered.
    assert_eq!(pair.to_server.len(), 2);
    assert_eq!(
        pair.policy.calls,
        [
            Call::None {
                user: "glenda".into()
            },
            Call::LoggedIn {
                user: "glenda".into(),
                key: None
            }
        ]
    );
}

#[test]
fn none_probe_is_refused_by_default_and_is_free() {
    let mut pair = Pair::new("glenda", vec![], RecordingPolicy::default());
    pair.run().expect("runs");
    assert!(!pair.client.is_authenticated());
    assert!(pair.client.is_exhausted());
    assert_eq!(
        pair.client_events,
        [
            ClientAuthEvent::Failure {
                remaining: vec!["publickey".into()],
                partial: false
            },
            ClientAuthEvent::Exhausted
        ]
    );
    assert_eq!(pair.server.failures(), 0);
    assert_eq!(pair.to_client.last(), Some(&failure()));
}

#[test]
fn banner_arrives_once_before_the_first_answer() {
    let k = key("ed25519");
    let config = ServerAuthConfig {
        banner: Some("welcome to plan 9\r\n".into()),
        ..ServerAuthConfig::default()
    };
    let mut pair = Pair::with(
        "glenda",
        vec![k.clone()],
        RecordingPolicy::allowing("glenda", &k),
        config,
    );
    pair.run().expect("login");
    assert_eq!(
        pair.client_events[0],
        ClientAuthEvent::Banner("welcome to plan 9\r\n".into())
    );
    let banners = pair
        .client_events
        .iter()
        .filter(|e| matches!(e, ClientAuthEvent::Banner(_)))
        .count();
    assert_eq!(banners, 1);
    assert_eq!(pair.to_client[1][0], msg::USERAUTH_BANNER);
    // Language tag "".
    assert!(pair.to_client[1].ends_with(&[0, 0, 0, 0]));
    assert!(pair.client.is_authenticated());
}

#[test]
fn wrong_key_is_refused_and_the_client_ends_exhausted() {
    let mine = seeded_key(1);
    let theirs = seeded_key(2);
    let mut pair = Pair::new(
        "glenda",
        vec![mine.clone()],
        RecordingPolicy::allowing("glenda", &theirs),
    );
    pair.run().expect("runs");
    assert!(!pair.client.is_authenticated());
    assert!(!pair.server.is_authenticated());
    assert!(pair.client.is_exhausted());
    assert_eq!(pair.client_events.last(), Some(&ClientAuthEvent::Exhausted));
    assert!(pair.tokens().is_empty());
    // The query was refused, so nothing was signed.
    assert_eq!(pair.to_server.len(), 3);
    assert!(!request_alg(&pair.to_server[2]).0);
    assert_eq!(pair.policy.keys_asked(), [public(&mine)]);
    let failed: Vec<_> = pair
        .server_events
        .iter()
        .map(|e| match e {
            ServerAuthEvent::Failed { user, method } => (user.as_str(), method.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(failed, [("glenda", "none"), ("glenda", "publickey")]);
    assert_eq!(pair.server.failures(), 1);
}

#[test]
fn the_second_key_logs_in_after_the_first_is_refused() {
    let keys = vec![seeded_key(1), key("ecdsa"), seeded_key(3)];
    let policy = RecordingPolicy::allowing("glenda", &keys[1]);
    let mut pair = Pair::new("glenda", keys.clone(), policy);
    pair.run().expect("login");
    assert_eq!(pair.tokens()[0].key(), Some(&public(&keys[1])));
    // The refused key's query, and the second key's query that got PK_OK
    // (queries count, issue 17); the signed request that logged in, none.
    assert_eq!(pair.server.failures(), 2);
}

#[test]
fn attempt_limit_disconnects() {
    let keys: Vec<_> = (1..=5).map(seeded_key).collect();
    let config = ServerAuthConfig {
        max_attempts: 3,
        ..ServerAuthConfig::default()
    };
    let mut pair = Pair::with("glenda", keys, RecordingPolicy::default(), config);
    assert_eq!(pair.run(), Err((Side::Server, AuthError::TooManyAttempts)));
    assert_eq!(
        AuthError::TooManyAttempts.reason(),
        msg::DisconnectReason::NoMoreAuthMethodsAvailable
    );
    // none (free), then three refused queries; the third gets no FAILURE.
    assert_eq!(pair.to_server.len(), 5);
    assert_eq!(pair.server.failures(), 3);
    assert_eq!(pair.server.poll_payload(), None);
    assert!(!pair.client.is_exhausted());
}

#[test]
fn default_attempt_limit_is_six() {
    assert_eq!(ServerAuthConfig::default().max_attempts, 6);
    let keys: Vec<_> = (1..=10).map(seeded_key).collect();
    let mut pair = Pair::new("glenda", keys, RecordingPolicy::default());
    assert_eq!(pair.run(), Err((Side::Server, AuthError::TooManyAttempts)));
    assert_eq!(pair.server.failures(), 6);
}

#[test]
fn a_second_none_counts() {
    let mut s = server_in_auth(ServerAuthConfig::default());
    let mut p = RecordingPolicy::default();
    s.handle_message(&none_request("glenda"), &mut p).unwrap();
    assert_eq!(s.failures(), 0);
    s.handle_message(&none_request("glenda"), &mut p).unwrap();
    assert_eq!(s.failures(), 1);
}

#[test]
fn other_services_get_failure_and_count() {
    let k = key("ed25519");
    let mut s = server_in_auth(ServerAuthConfig::default());
    let mut p = RecordingPolicy::allowing("glenda", &k);
    p.allow_none = true;
    s.handle_message(&none_request("glenda"), &mut p).unwrap();
    assert!(s.is_authenticated());

    let mut s = server_in_auth(ServerAuthConfig::default());
    let mut req = request_head("glenda", "ssh-agent", "none");
    s.handle_message(&req, &mut p).unwrap();
    assert_eq!(s.poll_payload(), Some(failure()));
    req = query(
        "glenda",
        "ssh-ed25519",
        &proto_ssh::sig::public_key_blob(&public(&k)),
    );
    // Same query, other service.
    let mut other = request_head("glenda", "ssh-agent", "publickey");
    other.extend_from_slice(&req[request_head("glenda", "ssh-connection", "publickey").len()..]);
    s.handle_message(&other, &mut p).unwrap();
    assert_eq!(s.poll_payload(), Some(failure()));
    assert_eq!(s.failures(), 1);
    assert!(!s.is_authenticated());
    s.handle_message(&req, &mut p).unwrap();
    assert_eq!(s.poll_payload().unwrap()[0], msg::USERAUTH_PK_OK);
}

#[test]
fn unknown_methods_get_failure_and_count() {
    let mut s = server_in_auth(ServerAuthConfig::default());
    let mut p = RecordingPolicy::default();
    let mut req = request_head("glenda", "ssh-connection", "password");
    proto_ssh::wire::Put::put_bool(&mut req, false);
    proto_ssh::wire::Put::put_string(&mut req, b"secret");
    s.handle_message(&req, &mut p).unwrap();
    assert_eq!(s.poll_payload(), Some(failure()));
    assert_eq!(s.failures(), 1);
    assert!(p.calls.is_empty());
}

/// A key signing elsewhere, as an ssh-agent does: it holds only the
/// public key and asks `holder`; `answer_sha1` plays an old agent that
/// ignores the RSA flags and answers with `ssh-rsa`.
struct Remote {
    public: ssh_key::public::KeyData,
    holder: ssh_key::PrivateKey,
    answer_sha1: bool,
}

impl proto_ssh::sig::Signer for Remote {
    fn public(&self) -> &ssh_key::public::KeyData {
        &self.public
    }

    fn sign_as(
        &self,
        alg: proto_ssh::sig::SigAlg,
        data: &[u8],
    ) -> Result<Vec<u8>, proto_ssh::sig::SigError> {
        let good = proto_ssh::sig::sign(&self.holder, alg, data)?;
        if !self.answer_sha1 {
            return Ok(good);
        }
        let mut r = Reader::new(&good);
        let _name = r.string().unwrap();
        let mut bad = Vec::new();
        proto_ssh::wire::Put::put_string(&mut bad, b"ssh-rsa");
        proto_ssh::wire::Put::put_string(&mut bad, r.string().unwrap());
        Ok(bad)
    }
}

#[test]
fn signers_without_the_private_key_log_in_and_wrong_algorithms_are_skipped() {
    let rsa = key("rsa");
    let remote = |answer_sha1| -> Box<dyn proto_ssh::sig::Signer + Send> {
        Box::new(Remote {
            public: public(&rsa),
            holder: rsa.clone(),
            answer_sha1,
        })
    };
    let mut pair = Pair::new("glenda", vec![], RecordingPolicy::allowing("glenda", &rsa));
    pair.client = proto_ssh::auth::ClientAuth::with_signers(
        "glenda",
        vec![remote(true), remote(false)],
        SESSION_ID.to_vec(),
    );
    pair.run().expect("login");
    assert!(pair.client.is_authenticated());
    // SERVICE_REQUEST, none, query (key 1, whose SHA-1 signature is
    // dropped), query (key 2), signed request: one signed request only.
    assert_eq!(pair.to_server.len(), 5);
    assert!(!request_alg(&pair.to_server[3]).0);
    let (signed, alg) = request_alg(&pair.to_server[4]);
    assert!(signed);
    assert_eq!(alg, "rsa-sha2-256");
}
