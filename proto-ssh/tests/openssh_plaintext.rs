//! The version exchange and the unencrypted packet framing against a real
//! OpenSSH client (`ssh` from the PATH; the test is skipped, saying so, if
//! there is none).
//!
//! We play a server up to the first key exchange message: send our line,
//! read ssh's line and KEXINIT, send a KEXINIT of our own, and read the
//! KEX_ECDH_INIT that ssh sends only if it accepted our framing.

// Test code: a failed expectation should stop the test with a message.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use proto_ssh::cipher::PacketCipher;
use proto_ssh::fuzzing::TestRng;
use proto_ssh::packet::{Opener, Packet, Sealer};
use proto_ssh::version::{
    Identification, Role, VersionParser, VersionStatus, DEFAULT_SOFTWARE_VERSION,
};

const KEXINIT: u8 = 20;
const KEX_ECDH_INIT: u8 = 30;

/// Reads one packet, handing over bytes left from the version exchange.
fn read_packet(sock: &mut TcpStream, opener: &mut Opener, pending: &mut Vec<u8>) -> Packet {
    loop {
        while !pending.is_empty() {
            let fed = opener.feed(pending).unwrap();
            pending.drain(..fed.consumed);
            if let Some(p) = fed.packet {
                return p;
            }
        }
        let mut buf = [0u8; 4096];
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "ssh closed the connection");
        pending.extend_from_slice(&buf[..n]);
    }
}

fn name_list(out: &mut Vec<u8>, names: &str) {
    out.extend_from_slice(&(names.len() as u32).to_be_bytes());
    out.extend_from_slice(names.as_bytes());
}

fn our_kexinit() -> Vec<u8> {
    let mut m = vec![KEXINIT];
    m.extend_from_slice(&[0x5a; 16]);
    for names in [
        "curve25519-sha256,kex-strict-s-v00@openssh.com",
        "ssh-ed25519",
        "chacha20-poly1305@openssh.com",
        "chacha20-poly1305@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "hmac-sha2-256-etm@openssh.com",
        "none",
        "none",
        "",
        "",
    ] {
        name_list(&mut m, names);
    }
    m.push(0);
    m.extend_from_slice(&[0; 4]);
    m
}

#[test]
fn openssh_client_accepts_our_line_and_framing() {
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

    let ours = Identification::local(DEFAULT_SOFTWARE_VERSION).unwrap();
    sock.write_all(&ours.to_wire()).unwrap();

    let mut parser = VersionParser::new(Role::Server);
    let mut pending = Vec::new();
    let theirs = loop {
        let mut buf = [0u8; 512];
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "ssh closed before its identification");
        if let VersionStatus::Complete {
            identification,
            consumed,
        } = parser.feed(&buf[..n]).unwrap()
        {
            pending.extend_from_slice(&buf[consumed..n]);
            break identification;
        }
    };
    assert_eq!(theirs.proto_version(), b"2.0");
    assert!(theirs.software_version().starts_with(b"OpenSSH_"));

    let mut opener = Opener::new(PacketCipher::None);
    let kexinit = read_packet(&mut sock, &mut opener, &mut pending);
    assert_eq!(kexinit.seq, 0);
    assert_eq!(kexinit.payload[0], KEXINIT);
    let text = String::from_utf8_lossy(&kexinit.payload);
    assert!(text.contains("chacha20-poly1305@openssh.com"), "{text}");

    let mut sealer = Sealer::new(PacketCipher::None);
    let mut wire = Vec::new();
    sealer
        .seal(&our_kexinit(), &mut TestRng(1), &mut wire)
        .unwrap();
    sock.write_all(&wire).unwrap();

    // ssh answers our KEXINIT with its curve25519 public key: it parsed
    // our packet. Anything else (a DISCONNECT, EOF) fails here.
    let init = read_packet(&mut sock, &mut opener, &mut pending);
    assert_eq!(init.seq, 1);
    assert_eq!(init.payload[0], KEX_ECDH_INIT);
    assert_eq!(init.payload.len(), 1 + 4 + 32);

    drop(sock);
    let _ = child.kill();
    let _ = child.wait();
}
