//! runtime-smol: cpud's connections and sessions are tasks on smol's
//! executor, sockets are `Async`; only what has no async form waits on a
//! thread (sigwait, stdin, FUSE's workers).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_io::Async;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use proto_ssh::channel::ChannelRequest;
use proto_ssh::connection::ClientConfig;
use runtime_smol::p9server;
use runtime_smol::ssh::{
    attach_stdio, session, Channel, ExitStatus, Handle, Incoming, PendingChannel, RemoteForward,
    SshConnection,
};
use runtime_smol::stream::{HalfClose, SharedStream};
use runtime_std::export::LocalExport;
use runtime_std::p9server::ServeConfig;

use crate::admission::Ticket;
use crate::client::{self, step_failed, Failure, Plan, NONCE_LEN};
use crate::daemon::{Daemon, SessionGuard, BAD_COMMAND_STATUS};
use crate::dbg9p::Tap;
use crate::keyopts::KeyOptions;
use crate::net::{Listener, Stream};

pub use runtime_smol::p9client::{MuxClient, Pending};

/// Serves every connection `listener` accepts, a task each.
pub fn serve_daemon(d: Arc<Daemon>, listener: &Listener) -> io::Result<()> {
    let listener = Async::new(listener)?;
    let gate = d.gate.clone();
    smol::spawn(async move {
        loop {
            async_io::Timer::after(gate.reap()).await;
        }
    })
    .detach();
    smol::block_on(async {
        loop {
            while let Some(wait) = d.gate.pause() {
                async_io::Timer::after(wait).await;
            }
            let (stream, peer) = match listener.read_with(|l| l.accept()).await {
                Ok(s) => s,
                Err(e) => {
                    async_io::Timer::after(d.gate.accept_failed(&e)).await;
                    continue;
                }
            };
            let Some(ticket) = d.gate.admit(&peer) else {
                continue;
            };
            match SharedStream::new(stream) {
                Ok(stream) => smol::spawn(connection(d.clone(), stream, peer, ticket)).detach(),
                Err(e) => d.log(format_args!("{peer}: {e}")),
            }
        }
    })
}

async fn connection(d: Arc<Daemon>, stream: SharedStream<Stream>, peer: String, ticket: Ticket) {
    let (config, grant) = d.server_config(&peer);
    let conn = match SshConnection::server(stream, config) {
        Ok(c) => c,
        Err(e) => {
            d.log(format_args!("{peer}: {e}"));
            return;
        }
    };
    d.gate.attach(&ticket, &conn, &peer);
    d.log(format_args!("{peer}: connected"));
    let mut forwards = Vec::new();
    while let Some(inc) = conn.accept().await {
        let forward = |c: &SshConnection, address: &str, port| {
            RemoteForward::start(c, address, port).map(|f| {
                let bound = f.port();
                (f, bound)
            })
        };
        if let Some((ch, user, guard)) =
            d.dispatch(&conn, inc, &peer, &grant, &mut forwards, forward)
        {
            let d = d.clone();
            let key = grant.options();
            smol::spawn(session_child(d, ch, user, key, guard)).detach();
        }
    }
    d.log(format_args!("{peer}: gone"));
}

/// Runs one session as the daemon's session child.
async fn session_child(
    d: Arc<Daemon>,
    ch: Channel,
    user: String,
    key: KeyOptions,
    _guard: SessionGuard,
) {
    let check = |s: &session::SessionSetup| d.start_check(s, &user);
    let Some(setup) = session::read_setup_with(&ch, d.session_setup(&key), &check).await else {
        return;
    };
    match d.session_command(&setup, &user, &key) {
        Ok(cmd) => {
            let status = session::run(&ch, cmd, setup.pty).await;
            d.session_ended(&user, status);
        }
        Err(line) => {
            let _ = ch.write_stderr(line.as_bytes()).await;
            let exit = ChannelRequest::ExitStatus(BAD_COMMAND_STATUS);
            let _ = ch.request(&exit, false).await;
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
    let stream = SharedStream::new(stream).map_err(|e| step_failed("socket", e))?;
    smol::block_on(async {
        let login = SshConnection::client_with_timeout(stream, config, plan.login_timeout).await;
        let conn = plan.logged_in(login)?;
        let mut port9p = None;
        if plan.ninep.is_some() {
            for req in Plan::forward_requests() {
                port9p = Plan::forward_reply(conn.global_request(&req).await)?;
                if port9p.is_some() {
                    break;
                }
            }
            if port9p.is_none() {
                return Err(Plan::no_forward());
            }
            let (conn, plan) = (conn.clone(), plan.clone());
            smol::spawn(async move {
                while let Some(inc) = conn.accept().await {
                    let Incoming::Channel(p) = inc else { continue };
                    smol::spawn(serve_9p(p, plan.clone())).detach();
                }
            })
            .detach();
        }
        let ch = conn
            .open_session()
            .await
            .map_err(|e| step_failed("opening a session", e))?;
        for req in plan.setup_requests() {
            ch.request(&req, false)
                .await
                .map_err(|e| step_failed("session setup", e))?;
        }
        let exec = plan.exec_request(port9p);
        let accepted = ch.request(&exec, true).await;
        {
            // sigwait has no async form: client.rs's thread waits, the
            // request is sent through the connection's task.
            let ch = ch.clone();
            plan.forward_signals(Box::new(move |sig| {
                if let Some(req) = client::signal_request(sig) {
                    let _ = smol::block_on(ch.request(&req, false));
                }
            }));
        }
        let raw = plan.started(accepted)?;
        let status = attach_stdio(&ch).await.ok_or_else(|| plan.no_status(&conn));
        drop(raw);
        conn.disconnect("done");
        status
    })
}

/// Serves 9P on a channel the server opened, once it shows our nonce.
async fn serve_9p(p: PendingChannel, plan: Arc<Plan>) {
    let Some((export, _)) = &plan.ninep else {
        return;
    };
    let Some(ch) = Plan::accept_9p(p) else {
        return;
    };
    let mut got = [0u8; NONCE_LEN];
    if ch.reader().read_exact(&mut got).await.is_ok() && plan.nonce_ok(&got) {
        let (export, config) = (export.clone(), ServeConfig::default());
        let reader = Tap::dbg9p(ch.reader(), "<-", plan.dbg9p);
        let writer = Tap::dbg9p(ch.writer(), "->", plan.dbg9p);
        let r = p9server::serve(export, reader, writer, config).await;
        plan.served_9p(r);
        let _ = ch.send_eof();
    }
    let _ = ch.close();
}

/// `cpu9p`: one 9P session per connection, a task each.
pub fn serve_9p_tcp(
    export: Arc<LocalExport>,
    listener: TcpListener,
    config: ServeConfig,
) -> io::Result<()> {
    smol::block_on(p9server::serve_tcp(export, Async::new(listener)?, config))
}

/// The FUSE bridge's 9P client over `stream`. Its answers are read by a
/// task; FUSE's worker threads wait for them.
pub fn mux_client(
    stream: &TcpStream,
    msize: u32,
    max_in_flight: usize,
) -> Result<MuxClient, super::CallError> {
    let stream = SharedStream::new(stream.try_clone()?)?;
    MuxClient::connect(stream.clone(), stream, msize, max_in_flight)
}

impl HalfClose for Stream {
    fn shutdown_write(&self) {
        match self {
            Stream::Tcp(s) => s.shutdown_write(),
            Stream::Unix(s) => s.shutdown_write(),
            Stream::Vsock(s) => s.shutdown_write(),
        }
    }
}

// The -dbg9p tap on async streams: the same frame tracing as on
// blocking ones.
impl<T: AsyncRead + Unpin, F: FnMut(&str) + Unpin> AsyncRead for Tap<T, F> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = std::task::ready!(Pin::new(this.inner_mut()).poll_read(cx, buf))?;
        this.see(&buf[..n]);
        Poll::Ready(Ok(n))
    }
}

impl<T: AsyncWrite + Unpin, F: FnMut(&str) + Unpin> AsyncWrite for Tap<T, F> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = std::task::ready!(Pin::new(this.inner_mut()).poll_write(cx, buf))?;
        this.see(&buf[..n]);
        Poll::Ready(Ok(n))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().inner_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().inner_mut()).poll_close(cx)
    }
}
