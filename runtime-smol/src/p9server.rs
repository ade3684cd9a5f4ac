//! Serves a 9P2000.L session over an async byte stream on smol.
//!
//! The session, the job queue, the worker counts and the backpressure
//! decisions are `runtime_std::p9server::state`'s, shared with the
//! blocking runtime; this module only decides how to wait. The serving
//! future reads and feeds the session. Backend operations are blocking
//! system calls, so they run on smol's blocking pool (`blocking::unblock`),
//! up to `max_workers` at once: a slow read (a fifo, a slow disk) stalls
//! neither the executor nor the connection's other requests. One writer
//! task sends the replies in the order the session produced them (every
//! Rflush after the reply it flushes).
//!
//! The writer task, and with [`serve_tcp`] every connection, runs on
//! smol's global executor (`smol::spawn`), which runs its own thread:
//! the caller only has to drive the returned future.

use std::io::{self, IoSlice};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};

use async_io::Async;
use event_listener::Event;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use proto_9p::server::{execute, Filesystem};
use runtime_std::p9server::state::{Core, Outgoing, MAX_SLICES};

pub use runtime_std::p9server::ServeConfig;

/// Bytes read from the peer at a time, as the blocking server does.
const READ_BUF: usize = 256 << 10;

struct Shared<B: Filesystem> {
    fs: Arc<B>,
    state: Mutex<Core<B::Fid>>,
    /// The writer task waits here for output, or for the end.
    output: Event,
    /// The reader waits here for room (backpressure).
    room: Event,
}

impl<B> Shared<B>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    fn state(&self) -> MutexGuard<'_, Core<B::Fid>> {
        // A panicking operation must not take the connection's other
        // requests with it; the state stays consistent between calls.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts as many workers on the blocking pool as the queue wants.
    fn start_workers(self: &Arc<Self>) {
        let mut st = self.state();
        let mut n = 0;
        while st.want_worker() {
            st.start_worker();
            n += 1;
        }
        drop(st);
        for _ in 0..n {
            let shared = Arc::clone(self);
            blocking::unblock(move || shared.work()).detach();
        }
    }

    /// A worker on the blocking pool: runs queued requests until none is
    /// left, then gives its thread back to the pool.
    fn work(&self) {
        let mut st = self.state();
        while let Some(req) = st.next_job() {
            drop(st);
            let result = execute(&*self.fs, req.op);
            st = self.state();
            if st.job_done(req.id, result) {
                self.room.notify(1);
            }
            self.output.notify(1);
        }
        st.stop_worker();
        drop(st);
        // The writer ends once the connection is closed and the last
        // worker has left.
        self.output.notify(1);
    }
}

/// Serves one 9P session: reads requests from `reader`, writes replies to
/// `writer`, and returns when the peer closes the stream or breaks the
/// framing. Operations still running finish on the blocking pool, and
/// their replies are still sent (by the writer task) if the peer only
/// half-closed.
pub async fn serve<B>(
    fs: Arc<B>,
    reader: impl AsyncRead + Unpin + Send + 'static,
    writer: impl AsyncWrite + Unpin + Send + 'static,
    config: ServeConfig,
) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    let shared = Arc::new(Shared {
        fs,
        state: Mutex::new(Core::new(config)),
        output: Event::new(),
        room: Event::new(),
    });
    smol::spawn(write_loop(Arc::clone(&shared), writer)).detach();
    // Closed however this future ends, dropped included, so that the
    // writer task ends too once the last reply is out.
    let _close = CloseOnDrop(Arc::clone(&shared));
    read_loop(&shared, reader).await
}

/// Ends the session when the serving future is done.
struct CloseOnDrop<B>(Arc<Shared<B>>)
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static;

impl<B> Drop for CloseOnDrop<B>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    fn drop(&mut self) {
        self.0.state().close();
        self.0.output.notify(1);
    }
}

async fn read_loop<B>(shared: &Arc<Shared<B>>, mut reader: impl AsyncRead + Unpin) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    // As in the blocking server: one copy from here into the session.
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let read = reader.read(&mut buf).await;
        if shared.state().read_done(read, &buf)?.is_none() {
            return Ok(());
        }
        shared.start_workers();
        // Errors, Rversion and Rflush are answered without the backend.
        shared.output.notify(1);
        loop {
            let room = {
                let mut st = shared.state();
                let wait = st.must_wait();
                st.set_reader_waiting(wait);
                if !wait {
                    break;
                }
                // Listening under the lock: no wakeup is lost.
                shared.room.listen()
            };
            room.await;
        }
    }
}

/// The writer task: sends what the session has, in its order, until the
/// connection is over and every reply is out, or the peer stops taking
/// them.
async fn write_loop<B, W>(shared: Arc<Shared<B>>, mut writer: W)
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
    W: AsyncWrite + Unpin,
{
    let mut out = Outgoing::default();
    loop {
        let more = {
            let mut st = shared.state();
            let reader_waiting = st.take_output(&mut out);
            if out.is_empty() {
                if st.finished() {
                    return;
                }
                Some(shared.output.listen())
            } else {
                if reader_waiting {
                    shared.room.notify(1);
                }
                None
            }
        };
        if let Some(more) = more {
            more.await;
            continue;
        }
        if let Err(_gone) = write_chunks(&mut writer, &mut out).await {
            // The peer is gone; the reader sees it too.
            shared.state().broken();
            shared.room.notify(1);
            return;
        }
    }
}

/// Writes every chunk with as few system calls as possible.
async fn write_chunks<W: AsyncWrite + Unpin>(w: &mut W, out: &mut Outgoing) -> io::Result<()> {
    while !out.is_empty() {
        let mut slots = [IoSlice::new(&[]); MAX_SLICES];
        let used = out.slices(&mut slots);
        let result = w.write_vectored(&slots[..used]).await;
        out.wrote(result)?;
    }
    w.flush().await
}

/// Serves every connection of `listener`, each in its own task on smol's
/// global executor, until accepting fails.
pub async fn serve_tcp<B>(
    fs: Arc<B>,
    listener: Async<TcpListener>,
    config: ServeConfig,
) -> io::Result<()>
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    loop {
        let conn = match listener.accept().await {
            Ok((conn, _peer)) => conn,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        smol::spawn(serve_conn(Arc::clone(&fs), conn, config)).detach();
    }
}

async fn serve_conn<B>(fs: Arc<B>, conn: Async<TcpStream>, config: ServeConfig)
where
    B: Filesystem + Send + Sync + 'static,
    B::Fid: Send + 'static,
{
    // Replies are whole frames, written as soon as they are ready.
    let _ = conn.get_ref().set_nodelay(true);
    // The writer gets its own descriptor of the socket, as in the
    // blocking server, so neither direction waits on a lock of the other.
    let Ok(writer) = conn.get_ref().try_clone().and_then(Async::new) else {
        return;
    };
    let _ = serve(fs, conn, writer, config).await;
}
