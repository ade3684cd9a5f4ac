//! The whole transport (version, KEXINIT, curve25519 kex, host key
//! signature, NEWKEYS, strict kex, ciphers) against a real OpenSSH client:
//! our `Transport` plays the server, and `ssh` proves it accepted the
//! exchange by sending its SERVICE_REQUEST under the new keys, which we
//! must decrypt. Skipped, saying so, without `ssh` in the PATH.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::key;
use proto_ssh::fuzzing::TestRng;
use proto_ssh::kex::negotiate::Preferences;
use proto_ssh::sig::SigAlg;
use proto_ssh::transport::{AcceptAnyHostKey, RekeyLimits, Transport, TransportConfig};
use proto_ssh::version::Role;

const SERVICE_REQUEST: u8 = 5;

fn run(kex: &str, cipher: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let child = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-p",
            &port,
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-o",
            &format!("KexAlgorithms={kex}"),
            "-c",
            cipher,
            "127.0.0.1",
            "true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("skipped: no ssh client in PATH");
        return;
    };
    let (mut sock, _) = listener.accept().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut rng = TestRng(5);
    let config = TransportConfig {
        role: Role::Server,
        prefs: Preferences::all(vec![SigAlg::Ed25519]),
        host_keys: vec![key("sig_ed25519")],
        host_key_check: Box::new(AcceptAnyHostKey),
        rekey: RekeyLimits::default(),
        software_version: proto_ssh::version::DEFAULT_SOFTWARE_VERSION.into(),
    };
    let now = Duration::ZERO;
    let mut t = Transport::new(config, now, &mut rng).unwrap();
    let mut pending = Vec::new();
    let payload = 'outer: loop {
        if let Some(out) = t.poll_transmit() {
            sock.write_all(&out).unwrap();
        }
        while !pending.is_empty() {
            let (used, packet) = t.feed(&pending, now, &mut rng).unwrap();
            pending.drain(..used);
            if let Some(p) = packet {
                break 'outer p.payload;
            }
        }
        if let Some(out) = t.poll_transmit() {
            sock.write_all(&out).unwrap();
        }
        let mut buf = [0u8; 8192];
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "ssh closed the connection ({kex}, {cipher})");
        pending.extend_from_slice(&buf[..n]);
    };
    assert_eq!(payload[0], SERVICE_REQUEST, "{kex} {cipher}");
    assert!(payload.ends_with(b"ssh-userauth"));
    let done = t.poll_kex_done().unwrap();
    assert!(done.first && done.strict, "{done:?}");
    assert_eq!(done.negotiated.kex.name(), kex);
    assert_eq!(done.negotiated.cipher_c2s.name(), cipher);
    drop(sock);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn openssh_client_completes_kex_with_every_cipher() {
    for cipher in [
        "chacha20-poly1305@openssh.com",
        "aes256-gcm@openssh.com",
        "aes128-gcm@openssh.com",
    ] {
        run("curve25519-sha256", cipher);
    }
    run("curve25519-sha256@libssh.org", "aes256-gcm@openssh.com");
}
