//! Our client and our server on the blocking runtime, over TCP on
//! 127.0.0.1: an echo session with more data than a window, exit status,
//! and remote forwarding through a real listener back to the client.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use proto_ssh::auth::AuthPolicy;
use proto_ssh::channel::{ChannelKind, ChannelRequest, GlobalRequest};
use proto_ssh::connection::{ClientConfig, ServerConfig};
use proto_ssh::transport::AcceptAnyHostKey;
use runtime_std::ssh::{write_all, ExitStatus, Handle, Incoming, RemoteForward, SshConnection};
use ssh_key::public::KeyData;
use ssh_key::PrivateKey;

fn key() -> PrivateKey {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../proto-ssh/tests/keys/sig_ed25519"
    );
    PrivateKey::from_openssh(std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Only(KeyData);

impl AuthPolicy for Only {
    fn allow_key(&mut self, _user: &str, key: &KeyData) -> bool {
        *key == self.0
    }
}

/// A server that echoes session data and serves tcpip-forward; returns
/// its port.
fn start_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let allowed = key().public_key().key_data().clone();
        let config = ServerConfig::new(vec![key()], Box::new(Only(allowed)));
        let conn = SshConnection::server_tcp(stream, config).unwrap();
        let mut forwards = Vec::new();
        while let Some(inc) = conn.accept() {
            match inc {
                Incoming::Channel(p) => {
                    assert!(matches!(p.kind, ChannelKind::Session));
                    let ch = p.accept().unwrap();
                    thread::spawn(move || {
                        let (req, want) = ch.next_request().unwrap();
                        assert_eq!(req, ChannelRequest::Exec(b"echo".to_vec()));
                        assert!(want);
                        ch.reply(true).unwrap();
                        let mut buf = vec![0u8; 50_000];
                        loop {
                            let n = ch.read(&mut buf).unwrap();
                            if n == 0 {
                                break;
                            }
                            write_all(&ch, &buf[..n]).unwrap();
                        }
                        ch.request(&ChannelRequest::ExitStatus(42), false).unwrap();
                        ch.send_eof().unwrap();
                        ch.close().unwrap();
                    });
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
    });
    port
}

fn connect(port: u16) -> SshConnection {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let config = ClientConfig::new("me", vec![key()], Box::new(AcceptAnyHostKey));
    SshConnection::client_tcp(stream, config).unwrap()
}

#[test]
fn echo_session_with_exit_status() {
    let conn = connect(start_server());
    assert_eq!(conn.algorithms().unwrap()[0], "mlkem768x25519-sha256");
    let ch = conn.open_session().unwrap();
    assert!(ch
        .request(&ChannelRequest::Exec(b"echo".to_vec()), true)
        .unwrap());
    // More than the 8 MiB window, written while it is read back.
    let data: Vec<u8> = (0..12_000_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let (ch, data) = (ch.clone(), data.clone());
        thread::spawn(move || {
            write_all(&ch, &data).unwrap();
            ch.send_eof().unwrap();
        })
    };
    let mut back = Vec::new();
    ch.reader().read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert!(back == data, "echo differs");
    assert_eq!(ch.wait_exit(), Some(ExitStatus::Code(42)));
    conn.disconnect("done");
    conn.wait_closed();
}

#[test]
fn remote_forward_comes_back_to_the_client() {
    let conn = connect(start_server());
    let bound = conn
        .global_request(&GlobalRequest::TcpipForward {
            address: "127.0.0.1".into(),
            port: 0,
        })
        .unwrap()
        .unwrap()
        .unwrap();
    assert_ne!(bound, 0);
    // The client answers forwarded connections with a greeting.
    let c2 = conn.clone();
    thread::spawn(move || {
        while let Some(Incoming::Channel(p)) = c2.accept() {
            assert!(matches!(p.kind, ChannelKind::ForwardedTcpip { .. }));
            let ch = p.accept().unwrap();
            let mut line = [0u8; 5];
            ch.reader().read_exact(&mut line).unwrap();
            write_all(&ch, b"hello ").unwrap();
            write_all(&ch, &line).unwrap();
            ch.send_eof().unwrap();
        }
    });
    let mut s = TcpStream::connect(("127.0.0.1", bound as u16)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"world").unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello world");
    conn.disconnect("done");
}

/// The driver runs over any Read + Write pair, here a Unix socket pair
/// split in halves.
#[test]
fn runs_over_any_byte_stream() {
    use proto_ssh::connection::Connection;
    use std::os::unix::net::UnixStream;
    use std::time::Duration as D;

    let (a, b) = UnixStream::pair().unwrap();
    let allowed = key().public_key().key_data().clone();
    let server = Connection::server(
        ServerConfig::new(vec![key()], Box::new(Only(allowed))),
        D::ZERO,
        Box::new(rand_core::OsRng),
    )
    .unwrap();
    let client = Connection::client(
        ClientConfig::new("me", vec![key()], Box::new(AcceptAnyHostKey)),
        D::ZERO,
        Box::new(rand_core::OsRng),
    )
    .unwrap();
    let (ar, br) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let (ac, bc) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let srv = SshConnection::run(
        server,
        ar,
        a,
        Box::new(move || {
            let _ = ac.shutdown(std::net::Shutdown::Both);
        }),
    )
    .unwrap();
    let cli = SshConnection::run(
        client,
        br,
        b,
        Box::new(move || {
            let _ = bc.shutdown(std::net::Shutdown::Both);
        }),
    )
    .unwrap();
    cli.wait_authenticated(Duration::from_secs(30)).unwrap();
    thread::spawn(move || {
        if let Some(Incoming::Channel(p)) = srv.accept() {
            let ch = p.accept().unwrap();
            write_all(&ch, b"over a socket pair").unwrap();
            ch.send_eof().unwrap();
            ch.close().unwrap();
        }
    });
    let ch = cli.open_session().unwrap();
    let mut got = String::new();
    ch.reader().read_to_string(&mut got).unwrap();
    assert_eq!(got, "over a socket pair");
    cli.disconnect("done");
    cli.wait_closed();
}
