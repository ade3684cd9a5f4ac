//! The smol SSH driver end to end: our client and server over TCP on
//! 127.0.0.1 and over a Unix socket pair (exec with stdout and stderr
//! apart, stdin EOF, exit status, a large transfer both ways, remote
//! forwarding), each against the blocking runtime's other half, and
//! OpenSSH's `ssh` against the smol server.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use async_io::{Async, Timer};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt, FutureExt};
use proto_ssh::auth::AuthPolicy;
use proto_ssh::channel::{ChannelKind, ChannelRequest, GlobalRequest};
use proto_ssh::connection::{ClientConfig, ServerConfig};
use proto_ssh::transport::AcceptAnyHostKey;
use runtime_smol::ssh::{
    session, Channel, ExitStatus, Handle, Incoming, RemoteForward, SshConnection,
};
use sha2::{Digest, Sha256};
use ssh_key::public::KeyData;
use ssh_key::PrivateKey;

/// Every test ends within this, whatever happens.
const LIMIT: Duration = Duration::from_secs(120);

fn block_on<T>(f: impl Future<Output = T>) -> T {
    smol::block_on(f.or(async {
        Timer::after(LIMIT).await;
        panic!("test timed out after {LIMIT:?}");
    }))
}

fn key() -> PrivateKey {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto-ssh/tests/keys/sig_ed25519"
    );
    PrivateKey::from_openssh(std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Lets in the holder of one key.
struct KeyHolder(KeyData);

impl AuthPolicy for KeyHolder {
    fn allow_key(&mut self, _user: &str, key: &KeyData) -> bool {
        *key == self.0
    }
}

fn server_config(allowed: KeyData) -> ServerConfig {
    ServerConfig::new(vec![key()], Box::new(KeyHolder(allowed)))
}

fn client_config() -> ClientConfig {
    ClientConfig::new("me", vec![key()], Box::new(AcceptAnyHostKey))
}

/// A smol server: sessions run their command with `/bin/sh -c`,
/// tcpip-forward is served.
async fn serve(conn: SshConnection) {
    let mut forwards = Vec::new();
    while let Some(inc) = conn.accept().await {
        match inc {
            Incoming::Channel(p) => {
                assert!(matches!(p.kind, ChannelKind::Session));
                let ch = p.accept().unwrap();
                smol::spawn(async move {
                    let Some(setup) = session::read_setup(&ch, &session::no_subsystems).await
                    else {
                        return;
                    };
                    let mut cmd = Command::new("/bin/sh");
                    let line = setup.command.unwrap_or_default();
                    cmd.arg("-c").arg(String::from_utf8_lossy(&line).as_ref());
                    session::run(&ch, cmd, setup.pty).await;
                })
                .detach();
            }
            Incoming::Global {
                request: GlobalRequest::TcpipForward { address, port },
                want_reply,
            } => {
                let f = RemoteForward::start(&conn, &address, port).unwrap();
                assert!(want_reply);
                conn.reply_global(true, Some(f.port())).unwrap();
                forwards.push(f);
            }
            Incoming::Global { want_reply, .. } => {
                if want_reply {
                    conn.reply_global(false, None).unwrap();
                }
            }
        }
    }
}

/// A smol server on 127.0.0.1 for one connection; returns its port.
fn start_smol_server() -> u16 {
    let listener = Async::new(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let port = listener.get_ref().local_addr().unwrap().port();
    let allowed = key().public_key().key_data().clone();
    smol::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let conn = SshConnection::server(stream, server_config(allowed)).unwrap();
        serve(conn).await;
    })
    .detach();
    port
}

async fn smol_client(port: u16) -> SshConnection {
    let stream = Async::<TcpStream>::connect(([127, 0, 0, 1], port))
        .await
        .unwrap();
    SshConnection::client(stream, client_config())
        .await
        .unwrap()
}

/// Runs `command`, feeding it `input`; returns stdout, stderr and how it
/// ended.
async fn exec(conn: &SshConnection, command: &str, input: &[u8]) -> (Vec<u8>, Vec<u8>, ExitStatus) {
    let ch = conn.open_session().await.unwrap();
    let req = ChannelRequest::Exec(command.as_bytes().to_vec());
    assert!(ch.request(&req, true).await.unwrap());
    let feed = async {
        let mut w = ch.writer();
        w.write_all(input).await.unwrap();
        // A command that does not read stdin may be over, and its channel
        // closed, before our EOF goes: then there is nobody to tell.
        let _ = w.close().await;
    };
    let out = async {
        let mut v = Vec::new();
        ch.reader().read_to_end(&mut v).await.unwrap();
        v
    };
    let err = async {
        let mut v = Vec::new();
        ch.stderr_reader().read_to_end(&mut v).await.unwrap();
        v
    };
    let ((), (out, err)) = future::zip(feed, future::zip(out, err)).await;
    let status = ch.wait_exit().await.unwrap();
    (out, err, status)
}

/// The checks every pairing of client and server must pass.
async fn exercise(conn: &SshConnection) {
    let (out, err, status) = exec(conn, "echo out; echo err >&2; exit 7", b"").await;
    assert_eq!(out, b"out\n");
    assert_eq!(err, b"err\n");
    assert_eq!(status, ExitStatus::Code(7));

    // stdin reaches the command, and its EOF ends it.
    let (out, _, status) = exec(conn, "cat; echo done", b"some input\n").await;
    assert_eq!(out, b"some input\ndone\n");
    assert_eq!(status, ExitStatus::Code(0));

    let (_, _, status) = exec(conn, "kill -TERM $$", b"").await;
    assert_eq!(status.code(), 143);
}

/// Several windows' worth through `cat` and back, checked by sha256.
async fn large_transfer(conn: &SshConnection) {
    let data: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (out, _, status) = exec(conn, "cat", &data).await;
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(out.len(), data.len());
    assert_eq!(Sha256::digest(&out), Sha256::digest(&data));
}

#[test]
fn smol_client_and_server_over_tcp() {
    block_on(async {
        let port = start_smol_server();
        let conn = smol_client(port).await;
        exercise(&conn).await;
        large_transfer(&conn).await;
        conn.disconnect("done");
        conn.wait_closed().await;
    });
}

#[test]
fn smol_client_and_server_over_a_unix_socket_pair() {
    block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let allowed = key().public_key().key_data().clone();
        let srv = SshConnection::server(Async::new(a).unwrap(), server_config(allowed)).unwrap();
        smol::spawn(serve(srv)).detach();
        let conn = SshConnection::client(Async::new(b).unwrap(), client_config())
            .await
            .unwrap();
        exercise(&conn).await;
        large_transfer(&conn).await;
    });
}

#[test]
fn remote_forward_comes_back_to_the_client() {
    block_on(async {
        let port = start_smol_server();
        let conn = smol_client(port).await;
        let bound = conn
            .global_request(&GlobalRequest::TcpipForward {
                address: "127.0.0.1".into(),
                port: 0,
            })
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        // The client answers each forwarded connection itself.
        let c2 = conn.clone();
        smol::spawn(async move {
            while let Some(Incoming::Channel(p)) = c2.accept().await {
                assert!(matches!(p.kind, ChannelKind::ForwardedTcpip { .. }));
                let ch: Channel = p.accept().unwrap();
                let mut buf = [0u8; 4];
                ch.reader().read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"ping");
                ch.writer().write_all(b"pong").await.unwrap();
                ch.send_eof().unwrap();
            }
        })
        .detach();
        for _ in 0..2 {
            let mut tcp =
                Async::<TcpStream>::connect(([127, 0, 0, 1], u16::try_from(bound).unwrap()))
                    .await
                    .unwrap();
            tcp.write_all(b"ping").await.unwrap();
            let mut back = Vec::new();
            tcp.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"pong");
        }
    });
}

/// A blocking-runtime server on 127.0.0.1 for one connection, serving
/// sessions with runtime-std's session code; returns its port.
fn start_std_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let allowed = key().public_key().key_data().clone();
    std::thread::spawn(move || {
        use runtime_std::ssh as rs;
        let (stream, _) = listener.accept().unwrap();
        let conn = rs::SshConnection::server_tcp(stream, server_config(allowed)).unwrap();
        while let Some(inc) = conn.accept() {
            let rs::Incoming::Channel(p) = inc else {
                continue;
            };
            let ch = p.accept().unwrap();
            std::thread::spawn(move || {
                let Some(setup) = rs::session::read_setup(&ch, &rs::session::no_subsystems) else {
                    return;
                };
                let mut cmd = Command::new("/bin/sh");
                let line = setup.command.unwrap_or_default();
                cmd.arg("-c").arg(String::from_utf8_lossy(&line).as_ref());
                rs::session::run(&ch, cmd, setup.pty);
            });
        }
    });
    port
}

#[test]
fn smol_client_against_std_server() {
    block_on(async {
        let port = start_std_server();
        let conn = smol_client(port).await;
        exercise(&conn).await;
        large_transfer(&conn).await;
    });
}

#[test]
fn std_client_against_smol_server() {
    block_on(async {
        let port = start_smol_server();
        let (out, status) = blocking::unblock(move || {
            use runtime_std::ssh as rs;
            let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let conn = rs::SshConnection::client_tcp(stream, client_config()).unwrap();
            let ch = conn.open_session().unwrap();
            let req = ChannelRequest::Exec(b"cat; echo err >&2; exit 4".to_vec());
            assert!(ch.request(&req, true).unwrap());
            let data = vec![7u8; 3 << 20];
            let writer = {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    rs::write_all(&ch, &data).unwrap();
                    ch.send_eof().unwrap();
                })
            };
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut ch.reader(), &mut out).unwrap();
            let mut err = Vec::new();
            std::io::Read::read_to_end(&mut ch.stderr_reader(), &mut err).unwrap();
            assert_eq!(err, b"err\n");
            writer.join().unwrap();
            (out, ch.wait_exit().unwrap())
        })
        .await;
        assert_eq!(out.len(), 3 << 20);
        assert!(out.iter().all(|&b| b == 7));
        assert_eq!(status, ExitStatus::Code(4));
    });
}

/// OpenSSH's client, if installed, against the smol server: keys made by
/// ssh-keygen in a temporary folder; nothing of ~/.ssh is read or written.
#[test]
fn openssh_client_against_smol_server() {
    let have = |p: &str| Command::new(p).arg("-V").output().is_ok();
    if !have("ssh") || Command::new("ssh-keygen").arg("-?").output().is_err() {
        eprintln!("SKIP: no OpenSSH client here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("user");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&user)
        .status()
        .unwrap();
    assert!(st.success());
    let text = std::fs::read_to_string(&user).unwrap();
    let allowed = PrivateKey::from_openssh(text)
        .unwrap()
        .public_key()
        .key_data()
        .clone();
    let listener = Async::new(TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let port = listener.get_ref().local_addr().unwrap().port();
    block_on(async move {
        smol::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let conn = SshConnection::server(stream, server_config(allowed)).unwrap();
            serve(conn).await;
        })
        .detach();
        let out = blocking::unblock(move || {
            let mut ssh = Command::new("ssh");
            ssh.args([
                "-F",
                "/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=20",
            ])
            .arg("-i")
            .arg(&user)
            .args(["-p", &port.to_string(), "me@127.0.0.1"])
            .arg("read x; echo got $x; echo oops >&2; exit 9")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
            let mut child = ssh.spawn().unwrap();
            std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"hello\n").unwrap();
            child.wait_with_output().unwrap()
        })
        .await;
        assert_eq!(out.stdout, b"got hello\n");
        assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
        assert_eq!(out.status.code(), Some(9));
    });
}
