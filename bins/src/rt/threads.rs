//! runtime-std: a thread per connection, per session and per 9P service.

use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use proto_ssh::channel::ChannelRequest;
use proto_ssh::connection::ClientConfig;
use runtime_std::export::LocalExport;
use runtime_std::p9server::{self, ServeConfig};
use runtime_std::ssh::{
    attach_stdio, session, Channel, ExitStatus, Handle, Incoming, PendingChannel, RemoteForward,
    SshConnection,
};

use crate::admission::Ticket;
use crate::client::{self, step_failed, Failure, Plan, NONCE_LEN};
use crate::daemon::{Daemon, SessionGuard, BAD_COMMAND_STATUS};
use crate::dbg9p::Tap;
use crate::keyopts::KeyOptions;
use crate::net::{Listener, Stream};

pub use runtime_std::p9client::{MuxClient, Pending};

/// Serves every connection `listener` accepts, one thread each, those
/// not logged in yet under the daemon's [`crate::admission::Gate`].
pub fn serve_daemon(d: Arc<Daemon>, listener: &Listener) -> io::Result<()> {
    let gate = d.gate.clone();
    thread::Builder::new()
        .name("reaper".into())
        .spawn(move || loop {
            thread::sleep(gate.reap());
        })?;
    loop {
        while let Some(wait) = d.gate.pause() {
            thread::sleep(wait);
        }
        let (stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                thread::sleep(d.gate.accept_failed(&e));
                continue;
            }
        };
        let Some(ticket) = d.gate.admit(&peer) else {
            continue;
        };
        let d2 = d.clone();
        let peer2 = peer.clone();
        let started =
            thread::Builder::new().spawn(move || connection(&d2, stream, &peer2, &ticket));
        if let Err(e) = started {
            d.gate.spawn_failed(&peer, &e);
        }
    }
}

fn connection(d: &Arc<Daemon>, stream: Stream, peer: &str, ticket: &Ticket) {
    let (config, grant) = d.server_config(peer);
    let conn = match SshConnection::server(stream, config) {
        Ok(c) => c,
        Err(e) => {
            d.log(format_args!("{peer}: {e}"));
            return;
        }
    };
    d.gate.attach(ticket, &conn, peer);
    d.log(format_args!("{peer}: connected"));
    let mut forwards = Vec::new();
    while let Some(inc) = conn.accept() {
        let forward = |c: &SshConnection, address: &str, port| {
            RemoteForward::start(c, address, port).map(|f| {
                let bound = f.port();
                (f, bound)
            })
        };
        if let Some((ch, user, guard)) =
            d.dispatch(&conn, inc, peer, &grant, &mut forwards, forward)
        {
            let d2 = d.clone();
            let key = grant.options();
            let started =
                thread::Builder::new().spawn(move || session_child(&d2, &ch, &user, &key, guard));
            if let Err(e) = started {
                d.gate.spawn_failed(peer, &e);
            }
        }
    }
    d.log(format_args!("{peer}: gone"));
}

/// Runs one session as the daemon's session child.
fn session_child(d: &Daemon, ch: &Channel, user: &str, key: &KeyOptions, _guard: SessionGuard) {
    let check = |s: &session::SessionSetup| d.start_check(s, user);
    let Some(setup) = session::read_setup_with(ch, d.session_setup(key), &check) else {
        return;
    };
    match d.session_command(&setup, user, key) {
        Ok(cmd) => {
            let status = session::run(ch, cmd, setup.pty);
            d.session_ended(user, status);
        }
        Err(line) => {
            let _ = ch.write_stderr(line.as_bytes());
            let _ = ch.request(&ChannelRequest::ExitStatus(BAD_COMMAND_STATUS), false);
            let _ = ch.send_eof();
            let _ = ch.close();
        }
    }
}

/// cpu's session: log in, offer 9P, start the command, carry its I/O
/// and signals, and return how it ended.
pub fn run_client(
    stream: Stream,
    config: ClientConfig,
    plan: &Arc<Plan>,
) -> Result<ExitStatus, Failure> {
    let login = SshConnection::client_with_timeout(stream, config, plan.login_timeout);
    let conn = plan.logged_in(login)?;
    let mut port9p = None;
    if plan.ninep.is_some() {
        for req in Plan::forward_requests() {
            port9p = Plan::forward_reply(conn.global_request(&req))?;
            if port9p.is_some() {
                break;
            }
        }
        if port9p.is_none() {
            return Err(Plan::no_forward());
        }
        let (conn, plan) = (conn.clone(), plan.clone());
        thread::spawn(move || {
            while let Some(inc) = conn.accept() {
                let Incoming::Channel(p) = inc else { continue };
                let plan = plan.clone();
                thread::spawn(move || serve_9p(p, &plan));
            }
        });
    }
    let ch = conn
        .open_session()
        .map_err(|e| step_failed("opening a session", e))?;
    for req in plan.setup_requests() {
        ch.request(&req, false)
            .map_err(|e| step_failed("session setup", e))?;
    }
    let accepted = ch.request(&plan.exec_request(port9p), true);
    {
        let ch = ch.clone();
        plan.forward_signals(Box::new(move |sig| {
            if let Some(req) = client::signal_request(sig) {
                let _ = ch.request(&req, false);
            }
        }));
    }
    let raw = plan.started(accepted)?;
    let status = attach_stdio(&ch).ok_or_else(|| plan.no_status(&conn));
    drop(raw);
    conn.disconnect("done");
    status
}

/// Serves 9P on a channel the server opened, once it shows our nonce.
fn serve_9p(p: PendingChannel, plan: &Plan) {
    let Some((export, _)) = &plan.ninep else {
        return;
    };
    let Some(ch) = Plan::accept_9p(p) else {
        return;
    };
    let mut got = [0u8; NONCE_LEN];
    if ch.reader().read_exact(&mut got).is_ok() && plan.nonce_ok(&got) {
        let (export, config) = (export.clone(), ServeConfig::default());
        let reader = Tap::dbg9p(ch.reader(), "<-", plan.dbg9p);
        let writer = Tap::dbg9p(ch.writer(), "->", plan.dbg9p);
        let r = p9server::serve(export, reader, writer, config);
        plan.served_9p(r);
        let _ = ch.send_eof();
    }
    let _ = ch.close();
}

/// `cpu9p`: one 9P session per connection, a thread each.
pub fn serve_9p_tcp(
    export: Arc<LocalExport>,
    listener: TcpListener,
    config: ServeConfig,
) -> io::Result<()> {
    p9server::serve_tcp(export, listener, config)
}

/// The FUSE bridge's 9P client over `stream`.
pub fn mux_client(
    stream: &TcpStream,
    msize: u32,
    max_in_flight: usize,
) -> Result<MuxClient, super::CallError> {
    MuxClient::connect(
        stream.try_clone()?,
        stream.try_clone()?,
        msize,
        max_in_flight,
    )
}
