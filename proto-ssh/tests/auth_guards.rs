//! The guards of `proto_ssh::auth`, one test each: the policy sees only
//! the key that signed (CVE-2024-45337), no client can send
//! USERAUTH_SUCCESS (CVE-2018-10933), unknown users and refused keys look
//! the same (CVE-2018-15473), signatures are bound to the session, and
//! messages are parsed to their last byte.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod auth_driver;

use auth_driver::*;
use proto_ssh::auth::{AuthError, ClientAuth, ServerAuthConfig, ServerAuthEvent};
use proto_ssh::msg;
use proto_ssh::sig::{self, SigAlg};
use proto_ssh::wire::{Put, WireError};

fn blob(k: &ssh_key::PrivateKey) -> Vec<u8> {
    sig::public_key_blob(k.public_key().key_data())
}

/// A server past SERVICE_ACCEPT and the free `none` probe, its output and
/// events drained.
fn server() -> proto_ssh::auth::ServerAuth {
    server_with(ServerAuthConfig::default())
}

fn server_with(config: ServerAuthConfig) -> proto_ssh::auth::ServerAuth {
    let mut s = server_in_auth(config);
    s.handle_message(&none_request("glenda"), &mut RecordingPolicy::default())
        .unwrap();
    assert_eq!(s.poll_payload(), Some(failure()));
    while s.poll_event().is_some() {}
    s
}

#[test]
fn cve_2024_45337_token_carries_the_key_that_signed() {
    let a = seeded_key(1);
    let b = seeded_key(2);
    let mut policy = RecordingPolicy::allowing("glenda", &a);
    policy.allowed.push(("glenda".into(), public(&b)));
    let mut s = server();
    // Query A: PK_OK, no token.
    s.handle_message(&query("glenda", "ssh-ed25519", &blob(&a)), &mut policy)
        .unwrap();
    assert_eq!(s.poll_payload().unwrap()[0], msg::USERAUTH_PK_OK);
    assert!(!s.is_authenticated());
    assert_eq!(s.poll_event(), None);
    // Sign with B.
    s.handle_message(
        &signed_request("glenda", &b, &b, SigAlg::Ed25519, &SESSION_ID),
        &mut policy,
    )
    .unwrap();
    let Some(ServerAuthEvent::Authenticated(token)) = s.poll_event() else {
        panic!("no token");
    };
    assert_eq!(token.key(), Some(&public(&b)));
    assert_eq!(policy.keys_asked(), [public(&a), public(&b)]);
    assert_eq!(policy.keys_asked().last(), token.key());
    // The policy is told of the login once, with the key that signed,
    // and never of the query.
    let told: Vec<_> = policy
        .calls
        .iter()
        .filter(|c| matches!(c, Call::LoggedIn { .. }))
        .collect();
    assert_eq!(
        told,
        [&Call::LoggedIn {
            user: "glenda".into(),
            key: Some(public(&b))
        }]
    );
}

#[test]
fn cve_2024_45337_a_queried_key_never_authenticates() {
    let a = seeded_key(1);
    let b = seeded_key(2);
    let mut policy = RecordingPolicy::allowing("glenda", &a);
    let mut s = server();
    s.handle_message(&query("glenda", "ssh-ed25519", &blob(&a)), &mut policy)
        .unwrap();
    assert_eq!(s.poll_payload().unwrap()[0], msg::USERAUTH_PK_OK);
    // B signs for itself: verified, then refused by the policy.
    s.handle_message(
        &signed_request("glenda", &b, &b, SigAlg::Ed25519, &SESSION_ID),
        &mut policy,
    )
    .unwrap();
    assert_eq!(s.poll_payload(), Some(failure()));
    // B signs a request naming A: the signature does not verify, and the
    // policy is not asked.
    s.handle_message(
        &signed_request("glenda", &a, &b, SigAlg::Ed25519, &SESSION_ID),
        &mut policy,
    )
    .unwrap();
    assert_eq!(s.poll_payload(), Some(failure()));
    assert_eq!(policy.keys_asked(), [public(&a), public(&b)]);
    assert!(!s.is_authenticated());
    assert!(s.authenticated().is_none());
    while let Some(e) = s.poll_event() {
        assert!(matches!(e, ServerAuthEvent::Failed { .. }), "{e:?}");
    }
}

#[test]
fn the_policy_is_asked_only_about_verified_keys_when_signing() {
    let a = seeded_key(1);
    let mut policy = RecordingPolicy::allowing("glenda", &a);
    let mut s = server();
    // A signature by A over another session.
    s.handle_message(
        &signed_request("glenda", &a, &a, SigAlg::Ed25519, &[7; 32]),
        &mut policy,
    )
    .unwrap();
    assert_eq!(s.poll_payload(), Some(failure()));
    assert!(policy.calls.is_empty());
    assert!(!s.is_authenticated());
}

#[test]
fn a_signature_over_another_session_fails_end_to_end() {
    let k = key("ed25519");
    let mut pair = Pair::new(
        "glenda",
        vec![k.clone()],
        RecordingPolicy::allowing("glenda", &k),
    );
    pair.client = ClientAuth::new("glenda", vec![k.clone()], vec![0x43; 32]);
    pair.run().unwrap();
    assert!(!pair.client.is_authenticated());
    assert!(pair.client.is_exhausted());
    assert!(pair.tokens().is_empty());
    // Asked once, for the query; not for the signature that failed.
    assert_eq!(pair.policy.keys_asked(), [public(&k)]);
}

#[test]
fn cve_2018_10933_server_refuses_server_messages() {
    let server_only = [
        vec![msg::USERAUTH_SUCCESS],
        failure(),
        {
            let mut p = vec![msg::USERAUTH_BANNER];
            p.put_string(b"hi");
            p.put_string(b"");
            p
        },
        {
            let mut p = vec![msg::USERAUTH_PK_OK];
            p.put_string(b"ssh-ed25519");
            p.put_string(&blob(&seeded_key(1)));
            p
        },
        {
            let mut p = vec![msg::SERVICE_ACCEPT];
            p.put_string(b"ssh-userauth");
            p
        },
    ];
    for m in &server_only {
        // Before SERVICE_REQUEST, during authentication, and after it.
        let mut policy = RecordingPolicy {
            allow_none: true,
            ..RecordingPolicy::default()
        };
        let mut before = proto_ssh::auth::ServerAuth::new(ServerAuthConfig::default(), vec![1]);
        let mut during = server();
        let mut after = server_in_auth(ServerAuthConfig::default());
        after
            .handle_message(&none_request("glenda"), &mut policy)
            .unwrap();
        assert!(after.is_authenticated());
        for s in [&mut before, &mut during, &mut after] {
            while s.poll_payload().is_some() {}
            assert_eq!(
                s.handle_message(m, &mut policy),
                Err(AuthError::Unexpected { msg: m[0] })
            );
            assert_eq!(s.poll_payload(), None);
        }
        assert!(!during.is_authenticated());
    }
    assert_eq!(
        AuthError::Unexpected { msg: 52 }.reason(),
        msg::DisconnectReason::ProtocolError
    );
}

#[test]
fn unknown_user_and_refused_key_get_identical_bytes() {
    let allowed = seeded_key(1);
    let other = seeded_key(2);
    let config = || ServerAuthConfig {
        banner: Some("hello".into()),
        ..ServerAuthConfig::default()
    };
    let run = |user: &str, k: &ssh_key::PrivateKey| {
        let mut policy = RecordingPolicy::allowing("glenda", &allowed);
        let mut s = server_in_auth(config());
        let mut out = Vec::new();
        for m in [
            none_request(user),
            query(user, "ssh-ed25519", &blob(k)),
            signed_request(user, k, k, SigAlg::Ed25519, &SESSION_ID),
        ] {
            s.handle_message(&m, &mut policy).unwrap();
            while let Some(p) = s.poll_payload() {
                out.push(p);
            }
        }
        assert!(!s.is_authenticated());
        (out, s.failures())
    };
    let unknown_user = run("nobody", &allowed);
    let refused_key = run("glenda", &other);
    assert_eq!(unknown_user, refused_key);
    // banner, FAILURE for each.
    assert_eq!(unknown_user.0.len(), 4);
    assert_eq!(unknown_user.0[1..], [failure(), failure(), failure()]);
}

#[test]
fn sha1_rsa_and_mismatched_algorithms_are_refused_without_asking() {
    let rsa = key("rsa");
    let ed = key("ed25519");
    let mut policy = RecordingPolicy::allowing("glenda", &rsa);
    policy.allowed.push(("glenda".into(), public(&ed)));
    let mut s = server_with(ServerAuthConfig {
        max_attempts: 100,
        ..ServerAuthConfig::default()
    });
    for m in [
        query("glenda", "ssh-rsa", &blob(&rsa)),
        query("glenda", "ssh-ed25519", &blob(&rsa)),
        query("glenda", "rsa-sha2-256", &blob(&ed)),
        query("glenda", "ssh-ed25519", b"not a key"),
        query("glenda", "ssh-dss", &blob(&ed)),
    ] {
        s.handle_message(&m, &mut policy).unwrap();
        assert_eq!(s.poll_payload(), Some(failure()));
    }
    assert!(policy.calls.is_empty());
    // A signed ssh-rsa request: refused before any verification.
    let mut m = request_head("glenda", "ssh-connection", "publickey");
    m.put_bool(true);
    m.put_string(b"ssh-rsa");
    m.put_string(&blob(&rsa));
    m.put_string(b"\0\0\0\x07ssh-rsa\0\0\0\x01x");
    s.handle_message(&m, &mut policy).unwrap();
    assert_eq!(s.poll_payload(), Some(failure()));
    assert!(policy.calls.is_empty());
}

#[test]
fn requests_after_success_are_ignored() {
    let k = key("ed25519");
    let mut pair = Pair::new(
        "glenda",
        vec![k.clone()],
        RecordingPolicy::allowing("glenda", &k),
    );
    pair.run().unwrap();
    let calls = pair.policy.calls.len();
    for m in [
        none_request("root"),
        signed_request("root", &k, &k, SigAlg::Ed25519, &SESSION_ID),
        vec![msg::USERAUTH_REQUEST, 1, 2, 3],
    ] {
        assert_eq!(pair.server.handle_message(&m, &mut pair.policy), Ok(()));
        assert_eq!(pair.server.poll_payload(), None);
        assert_eq!(pair.server.poll_event(), None);
    }
    assert_eq!(pair.policy.calls.len(), calls);
    assert_eq!(pair.server.authenticated().unwrap().user(), "glenda");
    // Anything else is still an error.
    assert_eq!(
        pair.server
            .handle_message(&service_request("ssh-userauth"), &mut pair.policy),
        Err(AuthError::Unexpected {
            msg: msg::SERVICE_REQUEST
        })
    );
}

#[test]
fn service_request_comes_first_and_only_for_userauth() {
    let mut policy = RecordingPolicy {
        allow_none: true,
        ..RecordingPolicy::default()
    };
    let mut s = proto_ssh::auth::ServerAuth::new(ServerAuthConfig::default(), vec![1]);
    assert_eq!(
        s.handle_message(&none_request("glenda"), &mut policy),
        Err(AuthError::Unexpected {
            msg: msg::USERAUTH_REQUEST
        })
    );
    assert!(policy.calls.is_empty());
    assert_eq!(
        s.handle_message(&service_request("ssh-connection"), &mut policy),
        Err(AuthError::ServiceNotAvailable)
    );
    assert_eq!(
        AuthError::ServiceNotAvailable.reason(),
        msg::DisconnectReason::ServiceNotAvailable
    );
    assert_eq!(s.poll_payload(), None);
    assert_eq!(
        s.handle_message(&[], &mut policy),
        Err(AuthError::Malformed {
            msg: 0,
            error: WireError::Truncated
        })
    );
    // Numbers this layer does not know, e.g. keyboard-interactive's.
    assert_eq!(
        s.handle_message(&[61], &mut policy),
        Err(AuthError::Unexpected { msg: 61 })
    );
}

#[test]
fn server_refuses_trailing_and_missing_bytes() {
    let k = seeded_key(1);
    let mut policy = RecordingPolicy::allowing("glenda", &k);
    let good = [
        service_request("ssh-userauth"),
        none_request("glenda"),
        query("glenda", "ssh-ed25519", &blob(&k)),
        signed_request("glenda", &k, &k, SigAlg::Ed25519, &SESSION_ID),
    ];
    for (i, m) in good.iter().enumerate() {
        let fresh = || {
            if i == 0 {
                proto_ssh::auth::ServerAuth::new(ServerAuthConfig::default(), SESSION_ID.to_vec())
            } else {
                server()
            }
        };
        let mut long = m.clone();
        long.push(0);
        assert_eq!(
            fresh().handle_message(&long, &mut policy),
            Err(AuthError::Malformed {
                msg: m[0],
                error: WireError::TrailingBytes
            }),
            "message {i}"
        );
        for cut in 1..m.len() {
            let r = fresh().handle_message(&m[..cut], &mut policy);
            assert!(
                matches!(r, Err(AuthError::Malformed { .. })),
                "message {i} cut at {cut}: {r:?}"
            );
        }
        assert_eq!(fresh().handle_message(m, &mut policy), Ok(()));
    }
    // A user name that is not UTF-8, or too long.
    let mut s = server();
    assert!(matches!(
        s.handle_message(
            &request_head("\u{0}", "ssh-connection", "none")[..],
            &mut policy
        ),
        Ok(())
    ));
    let mut bad = vec![msg::USERAUTH_REQUEST];
    bad.put_string(b"\xff");
    bad.put_string(b"ssh-connection");
    bad.put_string(b"none");
    assert_eq!(
        s.handle_message(&bad, &mut policy),
        Err(AuthError::Malformed {
            msg: msg::USERAUTH_REQUEST,
            error: WireError::BadUtf8
        })
    );
    let long_user = "a".repeat(proto_ssh::auth::server::MAX_USER_LEN + 1);
    assert_eq!(
        s.handle_message(&none_request(&long_user), &mut policy),
        Err(AuthError::Malformed {
            msg: msg::USERAUTH_REQUEST,
            error: WireError::BadValue
        })
    );
}

/// A client past SERVICE_ACCEPT and its `none` request, its output drained.
fn client_awaiting_none() -> ClientAuth {
    let mut c = ClientAuth::new("glenda", vec![seeded_key(1)], SESSION_ID.to_vec());
    c.start();
    let mut accept = vec![msg::SERVICE_ACCEPT];
    accept.put_string(b"ssh-userauth");
    c.handle_message(&accept).unwrap();
    while c.poll_payload().is_some() {}
    c
}

#[test]
fn client_refuses_success_before_any_request() {
    let mut c = ClientAuth::new("glenda", vec![seeded_key(1)], SESSION_ID.to_vec());
    assert_eq!(
        c.handle_message(&[msg::USERAUTH_SUCCESS]),
        Err(AuthError::Unexpected {
            msg: msg::USERAUTH_SUCCESS
        })
    );
    c.start();
    assert_eq!(
        c.handle_message(&[msg::USERAUTH_SUCCESS]),
        Err(AuthError::Unexpected {
            msg: msg::USERAUTH_SUCCESS
        })
    );
    assert!(!c.is_authenticated());
}

#[test]
fn client_refuses_success_after_a_query() {
    let mut c = client_awaiting_none();
    c.handle_message(&failure()).unwrap();
    let q = c.poll_payload().unwrap();
    assert!(!request_alg(&q).0);
    assert_eq!(
        c.handle_message(&[msg::USERAUTH_SUCCESS]),
        Err(AuthError::Unexpected {
            msg: msg::USERAUTH_SUCCESS
        })
    );
}

#[test]
fn client_refuses_client_messages_and_wrong_services() {
    let mut c = client_awaiting_none();
    for m in [
        none_request("glenda"),
        service_request("ssh-userauth"),
        vec![61],
    ] {
        assert_eq!(
            c.handle_message(&m),
            Err(AuthError::Unexpected { msg: m[0] })
        );
    }
    let mut c = ClientAuth::new("glenda", vec![], SESSION_ID.to_vec());
    c.start();
    let mut accept = vec![msg::SERVICE_ACCEPT];
    accept.put_string(b"ssh-connection");
    assert_eq!(
        c.handle_message(&accept),
        Err(AuthError::WrongServiceAccepted)
    );
}

#[test]
fn client_refuses_a_pk_ok_for_another_key_or_algorithm() {
    for (alg, key) in [
        ("ssh-ed25519", seeded_key(2)),
        ("ecdsa-sha2-nistp256", seeded_key(1)),
    ] {
        let mut c = client_awaiting_none();
        c.handle_message(&failure()).unwrap();
        let mut ok = vec![msg::USERAUTH_PK_OK];
        ok.put_string(alg.as_bytes());
        ok.put_string(&blob(&key));
        assert_eq!(c.handle_message(&ok), Err(AuthError::PkOkMismatch));
    }
    // PK_OK with no query outstanding.
    let mut c = client_awaiting_none();
    let mut ok = vec![msg::USERAUTH_PK_OK];
    ok.put_string(b"ssh-ed25519");
    ok.put_string(&blob(&seeded_key(1)));
    assert_eq!(
        c.handle_message(&ok),
        Err(AuthError::Unexpected {
            msg: msg::USERAUTH_PK_OK
        })
    );
}

/// Makes a client in the state a message is tested in.
type Fresh = fn() -> ClientAuth;

#[test]
fn client_refuses_trailing_and_missing_bytes() {
    let mut accept = vec![msg::SERVICE_ACCEPT];
    accept.put_string(b"ssh-userauth");
    let mut banner = vec![msg::USERAUTH_BANNER];
    banner.put_string(b"hi");
    banner.put_string(b"");
    let mut ok = vec![msg::USERAUTH_PK_OK];
    ok.put_string(b"ssh-ed25519");
    ok.put_string(&blob(&seeded_key(1)));
    // Each message with the state that expects it.
    let cases: [(Vec<u8>, Fresh); 5] = [
        (accept, || {
            let mut c = ClientAuth::new("glenda", vec![seeded_key(1)], SESSION_ID.to_vec());
            c.start();
            c
        }),
        (banner, client_awaiting_none),
        (failure(), client_awaiting_none),
        (vec![msg::USERAUTH_SUCCESS], client_awaiting_none),
        (ok, || {
            let mut c = client_awaiting_none();
            c.handle_message(&failure()).unwrap();
            c
        }),
    ];
    for (m, fresh) in &cases {
        let mut long = m.clone();
        long.push(1);
        assert_eq!(
            fresh().handle_message(&long),
            Err(AuthError::Malformed {
                msg: m[0],
                error: WireError::TrailingBytes
            })
        );
        for cut in 1..m.len() {
            assert!(
                matches!(
                    fresh().handle_message(&m[..cut]),
                    Err(AuthError::Malformed { .. })
                ),
                "{} cut at {cut}",
                m[0]
            );
        }
        assert_eq!(fresh().handle_message(m), Ok(()));
    }
}

/// Issue 17 point 2 (the PK_OK flood, CVE-2025-26466's unbounded
/// pre-login replies): a query answered with PK_OK costs an attempt, so
/// repeated queries for an authorized key reach the limit (that one is
/// still answered) and the next one is refused instead of answered.
#[test]
fn pk_ok_queries_count_against_the_attempt_limit() {
    let a = seeded_key(1);
    let mut policy = RecordingPolicy::allowing("glenda", &a);
    let max = ServerAuthConfig::default().max_attempts;
    let mut s = server();
    for i in 1..=max {
        s.handle_message(&query("glenda", "ssh-ed25519", &blob(&a)), &mut policy)
            .unwrap();
        assert_eq!(s.poll_payload().unwrap()[0], msg::USERAUTH_PK_OK);
        assert_eq!(s.failures(), i);
    }
    assert_eq!(
        s.handle_message(&query("glenda", "ssh-ed25519", &blob(&a)), &mut policy),
        Err(AuthError::TooManyAttempts)
    );
    assert_eq!(s.poll_payload(), None, "no PK_OK for the refused query");
    assert!(!s.is_authenticated());
}

/// A client that queries before signing, as OpenSSH's does, still logs
/// in while it has attempts left: the query costs one, the signed
/// request that succeeds none, and the query that reaches the limit is
/// answered (the sixth key may be the right one, as with sshd).
#[test]
fn a_query_then_its_signature_logs_in_up_to_the_limit() {
    let a = seeded_key(1);
    let mut policy = RecordingPolicy::allowing("glenda", &a);
    let max = ServerAuthConfig::default().max_attempts;
    let mut s = server();
    for _ in 1..=max {
        s.handle_message(&query("glenda", "ssh-ed25519", &blob(&a)), &mut policy)
            .unwrap();
        assert_eq!(s.poll_payload().unwrap()[0], msg::USERAUTH_PK_OK);
    }
    s.handle_message(
        &signed_request("glenda", &a, &a, SigAlg::Ed25519, &SESSION_ID),
        &mut policy,
    )
    .unwrap();
    assert!(s.is_authenticated());
    assert_eq!(s.failures(), max);
}
