//! Signatures made by `proto_ssh::sig` verify there and with OpenSSH's
//! `ssh-keygen -Y verify`-independent checks: every algorithm round-trips,
//! and a signature never verifies under another key, another algorithm
//! name or altered data.

use proto_ssh::sig::{self, SigAlg, SigError};
use ssh_key::PrivateKey;

fn key(name: &str) -> PrivateKey {
    let text = match name {
        "ed25519" => include_str!("keys/sig_ed25519"),
        "rsa" => include_str!("keys/sig_rsa"),
        "ecdsa384" => include_str!("keys/sig_ecdsa384"),
        "ecdsa521" => include_str!("keys/sig_ecdsa521"),
        _ => include_str!("keys/sig_ecdsa"),
    };
    PrivateKey::from_openssh(text).expect("test key parses")
}

#[test]
fn every_algorithm_round_trips_and_rejects_tampering() {
    let names: &[&str] = if cfg!(feature = "ecdsa-p384-p521") {
        &["ed25519", "rsa", "ecdsa", "ecdsa384", "ecdsa521"]
    } else {
        // Without the feature these keys parse but have no algorithm.
        for name in ["ecdsa384", "ecdsa521"] {
            assert!(sig::algs_for_key(key(name).public_key().key_data()).is_empty());
        }
        &["ed25519", "rsa", "ecdsa"]
    };
    for &name in names {
        let k = key(name);
        let blob = sig::public_key_blob(k.public_key().key_data());
        let algs = sig::algs_for_key(k.public_key().key_data());
        assert!(!algs.is_empty(), "{name}");
        for &alg in algs {
            let s = sig::sign(&k, alg, b"exchange hash")
                .unwrap_or_else(|e| panic!("{name} {alg:?}: {e}"));
            let back = sig::verify(&blob, alg, &s, b"exchange hash").expect("verifies");
            assert_eq!(&back, k.public_key().key_data());
            assert_eq!(
                sig::verify(&blob, alg, &s, b"exchange hasH"),
                Err(SigError::BadSignature)
            );
            for &other in SigAlg::VERIFY_ALL {
                if other != alg {
                    assert!(
                        sig::verify(&blob, other, &s, b"exchange hash").is_err(),
                        "{name} {alg:?} as {other:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn signature_does_not_verify_under_another_key() {
    let a = key("ed25519");
    let b = key("rsa");
    let s = sig::sign(&a, SigAlg::Ed25519, b"data").expect("signs");
    let b_blob = sig::public_key_blob(b.public_key().key_data());
    assert!(sig::verify(&b_blob, SigAlg::Ed25519, &s, b"data").is_err());
    assert_eq!(
        sig::sign(&a, SigAlg::RsaSha256, b"data"),
        Err(SigError::KeyMismatch)
    );
}

#[test]
fn sha1_rsa_is_not_an_algorithm() {
    assert_eq!(SigAlg::from_name("ssh-rsa"), None);
    assert_eq!(SigAlg::from_name("rsa-sha2-256"), Some(SigAlg::RsaSha256));
}

#[test]
fn malformed_inputs_are_errors() {
    let k = key("ed25519");
    let blob = sig::public_key_blob(k.public_key().key_data());
    let mut s = sig::sign(&k, SigAlg::Ed25519, b"d").expect("signs");
    s.push(0);
    assert_eq!(
        sig::verify(&blob, SigAlg::Ed25519, &s, b"d"),
        Err(SigError::Malformed)
    );
    assert_eq!(
        sig::parse_public_key(&blob[..blob.len() - 1]),
        Err(SigError::Malformed)
    );
    let mut long = blob.clone();
    long.push(0);
    assert_eq!(sig::parse_public_key(&long), Err(SigError::Malformed));
}
