//! A small SSH client on proto-ssh and the blocking runtime: runs one
//! command, with stdin, stdout and stderr carried apart, and exits with
//! its status (128+N for a signal, 255 when the connection fails). It
//! accepts any host key: it exists for the interop tests.
//!
//! `ssh_client -p PORT -i KEY -l USER [-c CIPHER] [-kex ALG] [-hostkey-alg ALG] [-pq-only]
//!  [-R 0:HOST:PORT] [-rekey-bytes N] [-v] HOST CMD...`

#[path = "common/client.rs"]
mod common;

use std::net::TcpStream;
use std::process::ExitCode;
use std::thread;

use proto_ssh::channel::{ChannelKind, GlobalRequest};
use runtime_std::ssh::{attach_stdio, splice_tcp, Handle, Incoming, SshConnection};

fn main() -> ExitCode {
    common::exit(run())
}

fn run() -> Result<Option<u8>, String> {
    let args = common::parse_args()?;
    let config = common::config(&args)?;
    let stream = TcpStream::connect((args.host.as_str(), args.port))
        .map_err(|e| format!("connect to {}:{}: {e}", args.host, args.port))?;
    let conn = SshConnection::client_tcp(stream, config).map_err(|e| e.to_string())?;
    common::print_algorithms(&args, conn.algorithms());
    if let Some((host, port)) = args.remote.clone() {
        let reply = conn
            .global_request(&GlobalRequest::TcpipForward {
                address: "127.0.0.1".into(),
                port: 0,
            })
            .map_err(|e| e.to_string())?;
        common::forward_reply(reply)?;
        let conn2 = conn.clone();
        thread::spawn(move || {
            while let Some(inc) = conn2.accept() {
                if let Incoming::Channel(p) = inc {
                    if !matches!(p.kind, ChannelKind::ForwardedTcpip { .. }) {
                        let _ = p.reject(1, "not allowed");
                        continue;
                    }
                    match TcpStream::connect((host.as_str(), port)) {
                        Ok(s) => {
                            if let Ok(ch) = p.accept() {
                                thread::spawn(move || splice_tcp(ch, s));
                            }
                        }
                        Err(_) => {
                            let _ = p.reject(2, "connect failed");
                        }
                    }
                }
            }
        });
    }
    let ch = conn.open_session().map_err(|e| e.to_string())?;
    if !ch
        .request(&common::start_request(&args), true)
        .map_err(|e| e.to_string())?
    {
        return Err("the server refused the command".into());
    }
    let status = attach_stdio(&ch);
    conn.disconnect("done");
    conn.wait_closed();
    Ok(status.map(|s| s.code()))
}
